//! A directed sequence: operations written one a line as the campaign prints them
//! (`--script FILE`), for replaying a scenario whose random draw would take long to find. The
//! seed still drives the world's values; the contract and the referee are the same.

use crate::gen::{Holder, Op, Transient};

fn kinds(s: &str) -> Result<Vec<String>, String> {
    let k: Vec<String> = s
        .split('+')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect();
    if k.is_empty() {
        return Err("no kind".into());
    }
    Ok(k)
}

fn transient(s: &str) -> Result<Transient, String> {
    Ok(match s {
        "MongoStopped" => Transient::MongoStopped,
        "Pause(Core)" => Transient::Pause(Holder::Core),
        "Pause(Periphery)" => Transient::Pause(Holder::Periphery),
        "Stop(Core)" => Transient::Stop(Holder::Core),
        "Stop(Periphery)" => Transient::Stop(Holder::Periphery),
        o => return Err(format!("unknown fault {o:?}")),
    })
}

fn ms(s: &str, prefix: &str) -> Result<u64, String> {
    s.strip_prefix(prefix)
        .and_then(|x| x.strip_suffix("ms"))
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| format!("{s:?}: want {prefix}<N>ms"))
}

/// One operation in the form `Display` prints it.
pub fn parse_op(line: &str) -> Result<Op, String> {
    let l = line.trim();
    let w: Vec<&str> = l.split_whitespace().collect();
    let op = match w.as_slice() {
        ["rescue"] => Op::Rescue,
        ["resume"] => Op::Resume,
        ["verify"] => Op::Verify,
        ["repo", "unblock"] => Op::RepoUnblock,
        ["rotate", k] => Op::Rotate { kinds: kinds(k)? },
        ["rotate", k, d] if d.starts_with("SIGKILL@") => Op::RotateKilled {
            kinds: kinds(k)?,
            delay_ms: ms(d, "SIGKILL@")?,
        },
        ["rotate", k, "failpoint", at, rest @ ..] => {
            let (after, step) = match at.split_once('#') {
                Some(("after", n)) => (true, n),
                Some(("before", n)) => (false, n),
                _ => return Err(format!("{at:?}: want before#N or after#N")),
            };
            Op::RotateFailpoint {
                kind: k.to_string(),
                step: step
                    .parse()
                    .map_err(|_| format!("{step:?}: a step index"))?,
                after,
                crash: match rest {
                    [] => false,
                    ["crash"] => true,
                    _ => return Err(format!("{rest:?}: want nothing or crash")),
                },
            }
        }
        ["rotate", k, "+", "foreign", "sops", "set", d, rest @ ..] => Op::RotateForeignSet {
            kind: k.to_string(),
            delay_ms: ms(d, "@")?,
            fail_at: match rest {
                [] => None,
                ["+", "failpoint", at] => Some(
                    at.strip_prefix("before#")
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| format!("{at:?}: want before#N"))?,
                ),
                _ => return Err(format!("{rest:?}: want nothing or + failpoint before#N")),
            },
        },
        ["rotate", k, "during", f] => Op::RotateDuring {
            kind: k.to_string(),
            fault: transient(f)?,
        },
        ["world:", "foreign", "sops", "set", "KOMODO_TITLE"] => Op::ForeignSopsSet,
        ["world:", "docker-compose", "up", "-d"] => Op::ComposeUp { no_deps: false },
        ["world:", "docker-compose", "up", "-d", "--no-deps", "core", "periphery"] => {
            Op::ComposeUp { no_deps: true }
        }
        ["world:", "hand", "edit", "of", "the", "DB", "password"] => Op::HandEditDbPassword,
        ["world:", "upstream", "commit"] => Op::UpstreamCommit { touch_env: false },
        ["world:", "upstream", "commit", "touching", "compose.env"] => {
            Op::UpstreamCommit { touch_env: true }
        }
        ["world:", "untracked", "file", "blocking", "the", "pull", how] => Op::UntrackedBlock {
            identical: match *how {
                "(identical)" => true,
                "(differing)" => false,
                o => return Err(format!("{o:?}: want (identical) or (differing)")),
            },
        },
        ["world:", "reboot"] => Op::Reboot,
        _ => return Err("not an operation the campaign knows".into()),
    };
    Ok(op)
}

/// A script: one operation a line; blank lines and `#` comments skipped; a leading `N.` (as
/// the campaign's reports number them) allowed.
pub fn parse(text: &str) -> Result<Vec<Op>, String> {
    let mut ops = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        let l = match l.split_once(". ") {
            Some((num, rest)) if num.trim().parse::<u64>().is_ok() => rest,
            _ => l,
        };
        if l.is_empty() {
            continue;
        }
        ops.push(parse_op(l).map_err(|e| format!("line {}: {l:?}: {e}", n + 1))?);
    }
    if ops.is_empty() {
        return Err("no operations".into());
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drawn_operation_reads_back_as_itself() {
        let kinds: Vec<String> = crate::DEFAULT_KINDS.split(',').map(String::from).collect();
        for seed in 0..40 {
            for fp in [false, true] {
                for op in crate::gen::sequence(seed, 60, &kinds, fp, seed % 2 == 0) {
                    assert_eq!(parse_op(&op.to_string()), Ok(op.clone()), "{op}");
                }
            }
        }
        let s = parse("# a scenario\n  1. world: hand edit of the DB password\nrotate jwt-secret+db-password\n\n").unwrap();
        assert_eq!(s.len(), 2);
        assert!(parse("rotate").is_err() && parse("# nothing\n").is_err());
    }
}
