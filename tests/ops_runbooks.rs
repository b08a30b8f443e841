//! Runbooks, scheduling files, completions and the man page, without Docker: every runbook
//! exists and every `komodo-rotate` command in its `sh` blocks parses with the real CLI; every
//! block is either run by `tests/ops_stack.rs` (it says its exit code) or marked `no-test`; the
//! runbook paths the tool prints exist; the systemd units pass `systemd-analyze verify`.

mod ops_support;

use clap::Parser;
use komodo_rotate::cli::Cli;
use ops_support::*;
use std::path::Path;
use std::process::Command;

/// Any non-empty `CI` other than `false`/`0` is CI; the guards of every test binary ask this.
#[test]
fn ci_detection_takes_any_value_but_false_and_0() {
    for v in ["true", "1", "yes", "TRUE", "gitlab"] {
        assert!(ci::is_ci_value(Some(v)), "CI={v} is CI");
    }
    for v in [None, Some(""), Some("false"), Some("0"), Some("False")] {
        assert!(!ci::is_ci_value(v), "CI={v:?} is not CI");
    }
}

/// The runbook reader finds blocks indented inside list items and every command of a line.
#[test]
fn runbook_reader_sees_indented_blocks_and_every_command() {
    let md =
        "1. step\n   ```sh exit=0\n   a && komodo-rotate verify\n   ```\n```sh no-test\nx\n```\n";
    let b = blocks_of("t.md", md);
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!(b[0].text, "a && komodo-rotate verify\n");
    assert_eq!(b[0].expected_exit(), Some(0));
    for (line, want) in [
        (
            "a && komodo-rotate verify",
            vec!["a", "komodo-rotate verify"],
        ),
        ("a; b || c | d & e", vec!["a", "b", "c", "d", "e"]),
        (
            "x=\"$(komodo-rotate verify --json | jq .v)\"",
            vec!["komodo-rotate verify --json", "jq .v"],
        ),
        (
            "if ! FOO=1 komodo-rotate resume; then :; fi",
            vec!["komodo-rotate resume", ":", "fi"],
        ),
        ("printf 'a;b' # c && d", vec!["printf 'a;b'"]),
        (
            "sudo komodo-rotate rotate `komodo-rotate x`",
            vec!["komodo-rotate x", "komodo-rotate rotate $SUBST"],
        ),
    ] {
        assert_eq!(simple_commands(line), want, "{line}");
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_komodo-rotate");
const RUNBOOKS: [&str; 7] = [
    "scheduled-rotation.md",
    "pre-rotation-check.md",
    "crash-loop-rescue.md",
    "interrupted-run.md",
    "lost-env.md",
    "no-password-survives.md",
    "blocked-pull.md",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A shell word list good enough for the runbooks' own lines: quotes stripped, anything with a
/// variable or a command substitution replaced by a placeholder value.
fn words(segment: &str) -> Vec<String> {
    segment
        .split_whitespace()
        .map(|w| {
            let w = w.trim_matches('"').trim_matches('\'');
            if w.contains('$') {
                "placeholder".to_string()
            } else {
                w.to_string()
            }
        })
        .collect()
}

#[test]
fn every_runbook_command_parses_with_the_real_cli() {
    let mut n = 0;
    for name in RUNBOOKS.iter().chain(["README.md"].iter()) {
        let blocks = runbook(name);
        for b in blocks.iter().filter(|b| b.is_sh()) {
            let only_vars = b
                .commands()
                .iter()
                .all(|c| c.trim().is_empty() || c.trim_start().starts_with(": \"${"));
            assert!(
                b.expected_exit().is_some() || b.no_test() || only_vars,
                "{}:{}: an sh block must say exit=N (run by ops_stack) or no-test",
                b.file,
                b.line
            );
            // dash (Debian's /bin/sh) parses the block: no bash-only syntax under an `sh` label.
            let syntax = Command::new("sh")
                .arg("-nc")
                .arg(&b.text)
                .output()
                .expect("sh");
            assert!(
                syntax.status.success(),
                "{}:{}: not POSIX sh: {}",
                b.file,
                b.line,
                String::from_utf8_lossy(&syntax.stderr)
            );
            for cmd in b.commands() {
                for seg in simple_commands(&cmd) {
                    let seg = seg.trim();
                    if seg != "komodo-rotate" && !seg.starts_with("komodo-rotate ") {
                        continue;
                    }
                    let argv = words(seg);
                    if let Err(e) = Cli::try_parse_from(&argv) {
                        panic!("{}:{}: `{seg}` does not parse: {e}", b.file, b.line);
                    }
                    n += 1;
                }
            }
        }
    }
    assert!(
        n >= 20,
        "only {n} komodo-rotate commands found in the runbooks"
    );
}

#[test]
fn the_runbooks_the_tool_names_exist() {
    for p in [
        komodo_rotate::planes::execute::RUNBOOK_INTERRUPTED,
        komodo_rotate::commands::rescue::RUNBOOK_NO_PASSWORD,
        komodo_rotate::commands::repo::RUNBOOK_BLOCKED_PULL,
    ] {
        assert!(
            root().join(p).is_file(),
            "{p} is printed by the tool but missing"
        );
    }
    for name in RUNBOOKS {
        let text = std::fs::read_to_string(root().join("runbooks").join(name)).unwrap();
        for section in ["## Steps", "Success looks like", "## If it fails"] {
            assert!(
                text.contains(section)
                    || (name == "scheduled-rotation.md" && section == "## Steps"),
                "{name} lacks {section:?}"
            );
        }
    }
}

#[test]
fn systemd_units_verify_and_are_hardened() {
    let dir = root().join("contrib/systemd");
    let svc = std::fs::read_to_string(dir.join("komodo-rotate.service")).unwrap();
    for needle in [
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/komodo-rotate /opt/komodo",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "EnvironmentFile=/etc/komodo-rotate/env",
        "--if-older-than 30d",
        "--prometheus ",
    ] {
        assert!(svc.contains(needle), "komodo-rotate.service lacks {needle}");
    }
    // The ExecStart lines of units and cron parse with the real CLI.
    let cron = std::fs::read_to_string(root().join("contrib/cron/komodo-rotate")).unwrap();
    let mut lines: Vec<String> = cron
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.find("komodo-rotate ")
                .map(|i| l[i..].split('>').next().unwrap().to_string())
        })
        .collect();
    for unit in ["komodo-rotate.service", "komodo-rotate-verify.service"] {
        let t = std::fs::read_to_string(dir.join(unit)).unwrap();
        let exec = t
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        lines.push(exec.replacen("/usr/local/bin/komodo-rotate", "komodo-rotate", 1));
    }
    assert_eq!(lines.len(), 4, "{lines:?}");
    for l in &lines {
        Cli::try_parse_from(words(l)).unwrap_or_else(|e| panic!("`{l}`: {e}"));
    }

    let have = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        let msg = "systemd_units: systemd-analyze is missing (apt-get install systemd)";
        if ops_support::ci::under_ci() {
            panic!("{msg}");
        }
        eprintln!("SKIP {msg}");
        return;
    }
    // systemd-analyze checks that ExecStart's binary exists; point it at one that does.
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["verify".to_string(), "--man=no".to_string()];
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let t = std::fs::read_to_string(&p)
            .unwrap()
            .replace("/usr/local/bin/komodo-rotate", BIN);
        let out = tmp.path().join(p.file_name().unwrap());
        std::fs::write(&out, t).unwrap();
        args.push(out.to_string_lossy().into_owned());
    }
    let out = Command::new("systemd-analyze")
        .args(&args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // systemd-analyze exits 0 on a value it ignores ("Failed to parse boolean value, ignoring"):
    // every line it prints fails the test, but for these named complaints about the host (a
    // container without a running systemd), none of which is about the units.
    const HOST_ONLY: [&str; 3] = [
        "System has not been booted with systemd",
        "Failed to connect to bus",
        "Failed to connect to system scope bus",
    ];
    let own: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !HOST_ONLY.iter().any(|h| l.contains(h)))
        .collect();
    assert!(
        out.status.success() && own.is_empty(),
        "systemd-analyze verify ({}): {}",
        out.status,
        own.join("\n")
    );
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let s = String::from_utf8(out.stdout).unwrap();
        for sub in ["salvage-env", "if-older-than", "prometheus"] {
            assert!(s.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let bad = Command::new(BIN)
        .args(["completions", "cmd.exe"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let out = Command::new(BIN).arg("man").output().unwrap();
    assert!(out.status.success());
    let man = String::from_utf8(out.stdout).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH"),
        "{}",
        &man[..200.min(man.len())]
    );
    for needle in [
        ".SH \"EXIT STATUS\"",
        "rollback incomplete",
        "salvage\\-env",
        "verify",
    ] {
        assert!(man.contains(needle), "man page lacks {needle}");
    }
}

#[test]
fn rotate_if_older_than_needs_a_unit() {
    let out = Command::new(BIN)
        .args([
            "rotate",
            "--if-older-than",
            "30",
            "--config",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("\"30\"") && e.contains("unit"), "{e}");
}

#[test]
fn the_test_parser_is_strict() {
    let ok = "# HELP a_b x\n# TYPE a_b gauge\na_b{c=\"d\\\"e\"} 1.5\na_b{c=\"f\"} 2\n";
    assert_eq!(parse_prometheus(ok).unwrap().len(), 2);
    for bad in [
        "a 1\n",                                        // no TYPE
        "# TYPE a gauge\na{c=\"d\"} x\n",               // not a float
        "# TYPE a gauge\na{c=\"d\"} 1\na{c=\"d\"} 2\n", // duplicate
        "# TYPE a gauge\na{c=d} 1\n",                   // unquoted
        "# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n",   // TYPE a after a closed... split
        "# TYPE a gauge\na 1",                          // no newline
        "# TYPE 1a gauge\n",                            // bad name
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}
