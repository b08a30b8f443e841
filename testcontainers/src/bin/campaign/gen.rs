//! The generator: a seeded PRNG (splitmix64) and the operations it draws. Each operation's
//! parameters are drawn from a sub-generator seeded by (seed, index), so the first K operations
//! of `--ops N` are the same for every N >= K: a prefix of a sequence replays as itself.

use std::fmt;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// A holder the world can pause or stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    Core,
    Periphery,
}

/// A fault that holds during one tool run, then is undone (the world heals "after a while").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transient {
    Pause(Holder),
    Stop(Holder),
    MongoStopped,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `rotate --secret K...`.
    Rotate {
        kinds: Vec<String>,
    },
    /// `rotate`, SIGKILLed after `delay_ms`.
    RotateKilled {
        kinds: Vec<String>,
        delay_ms: u64,
    },
    /// `rotate` with `FAILPOINTS=<before|after>:<step>=return|return(crash)` (step by index
    /// into the plan `--dry-run` prints, modulo its length). Failpoints builds only.
    RotateFailpoint {
        kind: String,
        step: u64,
        after: bool,
        crash: bool,
    },
    /// `rotate` while another process `sops set`s another key after `delay_ms`.
    RotateForeignSet {
        kind: String,
        delay_ms: u64,
        /// In a failpoints build, sometimes the run also fails `before:` step N (index into
        /// the plan, modulo its length): the rollback meets the colleague's edit.
        fail_at: Option<u64>,
    },
    /// `rotate` with a transient fault in the world during the run.
    RotateDuring {
        kind: String,
        fault: Transient,
    },
    Rescue,
    Resume,
    Verify,
    RepoUnblock,
    /// `sops set` of a key no kind rotates (KOMODO_TITLE).
    ForeignSopsSet,
    /// The deploy pipeline: `docker-compose up -d` (whole file, or `--no-deps core periphery`).
    ComposeUp {
        no_deps: bool,
    },
    /// A hand edit of the DB password in compose.env (`sops set`), not deployed.
    HandEditDbPassword,
    /// A commit pushed upstream from a second clone, touching compose.env or not.
    UpstreamCommit {
        touch_env: bool,
    },
    /// An upstream commit adding a file and an untracked copy of it on the host (identical
    /// bytes or not), blocking the pull.
    UntrackedBlock {
        identical: bool,
    },
    /// A reboot: the lock dir emptied, every container restarted.
    Reboot,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Rotate { kinds } => write!(f, "rotate {}", kinds.join("+")),
            Op::RotateKilled { kinds, delay_ms } => {
                write!(f, "rotate {} SIGKILL@{delay_ms}ms", kinds.join("+"))
            }
            Op::RotateFailpoint {
                kind,
                step,
                after,
                crash,
            } => write!(
                f,
                "rotate {kind} failpoint {}#{step}{}",
                if *after { "after" } else { "before" },
                if *crash { " crash" } else { "" }
            ),
            Op::RotateForeignSet {
                kind,
                delay_ms,
                fail_at,
            } => {
                write!(f, "rotate {kind} + foreign sops set @{delay_ms}ms")?;
                match fail_at {
                    Some(n) => write!(f, " + failpoint before#{n}"),
                    None => Ok(()),
                }
            }
            Op::RotateDuring { kind, fault } => write!(f, "rotate {kind} during {fault:?}"),
            Op::Rescue => write!(f, "rescue"),
            Op::Resume => write!(f, "resume"),
            Op::Verify => write!(f, "verify"),
            Op::RepoUnblock => write!(f, "repo unblock"),
            Op::ForeignSopsSet => write!(f, "world: foreign sops set KOMODO_TITLE"),
            Op::ComposeUp { no_deps } => write!(
                f,
                "world: docker-compose up -d{}",
                if *no_deps {
                    " --no-deps core periphery"
                } else {
                    ""
                }
            ),
            Op::HandEditDbPassword => write!(f, "world: hand edit of the DB password"),
            Op::UpstreamCommit { touch_env } => write!(
                f,
                "world: upstream commit{}",
                if *touch_env {
                    " touching compose.env"
                } else {
                    ""
                }
            ),
            Op::UntrackedBlock { identical } => write!(
                f,
                "world: untracked file blocking the pull ({})",
                if *identical { "identical" } else { "differing" }
            ),
            Op::Reboot => write!(f, "world: reboot"),
        }
    }
}

/// The operation families, for `--kinds`-independent coverage accounting.
pub fn family(op: &Op) -> &'static str {
    match op {
        Op::Rotate { kinds } if kinds.len() > 1 => "rotate-multi",
        Op::Rotate { .. } => "rotate",
        Op::RotateKilled { .. } => "sigkill",
        Op::RotateFailpoint { .. } => "failpoint",
        Op::RotateForeignSet { .. } => "foreign-set-in-flight",
        Op::RotateDuring {
            fault: Transient::MongoStopped,
            ..
        } => "mongo-stopped",
        Op::RotateDuring {
            fault: Transient::Pause(_),
            ..
        } => "holder-paused",
        Op::RotateDuring { .. } => "holder-stopped",
        Op::Rescue => "rescue",
        Op::Resume => "resume",
        Op::Verify => "verify",
        Op::RepoUnblock => "repo-unblock",
        Op::ForeignSopsSet => "foreign-set",
        Op::ComposeUp { no_deps: false } => "compose-up",
        Op::ComposeUp { no_deps: true } => "compose-up-no-deps",
        Op::HandEditDbPassword => "hand-edit",
        Op::UpstreamCommit { .. } => "upstream-commit",
        Op::UntrackedBlock { .. } => "untracked-block",
        Op::Reboot => "reboot",
    }
}

pub const FAMILIES: &[&str] = &[
    "rotate",
    "rotate-multi",
    "sigkill",
    "failpoint",
    "foreign-set-in-flight",
    "mongo-stopped",
    "holder-paused",
    "holder-stopped",
    "rescue",
    "resume",
    "verify",
    "repo-unblock",
    "foreign-set",
    "compose-up",
    "compose-up-no-deps",
    "hand-edit",
    "upstream-commit",
    "untracked-block",
    "reboot",
];

/// Operation `i` of the sequence of `seed`: a pure function of (seed, i, kinds, failpoints).
pub fn op(seed: u64, i: u64, kinds: &[String], failpoints: bool) -> Op {
    let mut r =
        Rng::new(seed.wrapping_mul(0x1000_0000_01b3) ^ i.wrapping_mul(0xff51_afd7_ed55_8ccd));
    let _ = r.next();
    let kind = r.pick(kinds).clone();
    let holder = if r.chance(50) {
        Holder::Core
    } else {
        Holder::Periphery
    };
    // Weighted table: tool operations about half the time.
    let roll = r.below(100);
    match roll {
        0..=13 => Op::Rotate { kinds: vec![kind] },
        14..=17 => {
            let mut ks: Vec<String> = kinds.iter().filter(|_| r.chance(60)).cloned().collect();
            if ks.len() < 2 {
                ks = kinds.iter().take(2).cloned().collect();
            }
            Op::Rotate { kinds: ks }
        }
        18..=25 => Op::RotateKilled {
            kinds: vec![kind],
            delay_ms: 200 + r.below(9000),
        },
        26..=31 if failpoints => Op::RotateFailpoint {
            kind,
            step: r.below(16),
            after: r.chance(50),
            crash: r.chance(30),
        },
        26..=31 => Op::RotateKilled {
            kinds: vec![kind],
            delay_ms: 200 + r.below(4000),
        },
        32..=34 => {
            let delay_ms = 100 + r.below(3000);
            // Drawn after the others: the other operations' draws stay as they were.
            let fail_at = (failpoints && r.chance(40)).then(|| r.below(16));
            Op::RotateForeignSet {
                kind,
                delay_ms,
                fail_at,
            }
        }
        35..=36 => Op::RotateDuring {
            kind,
            fault: Transient::MongoStopped,
        },
        37..=38 => Op::RotateDuring {
            kind,
            fault: Transient::Pause(holder),
        },
        39..=40 => Op::RotateDuring {
            kind,
            fault: Transient::Stop(holder),
        },
        41..=45 => Op::Rescue,
        46..=51 => Op::Resume,
        52..=61 => Op::Verify,
        62..=65 => Op::RepoUnblock,
        66..=70 => Op::ForeignSopsSet,
        71..=75 => Op::ComposeUp {
            no_deps: r.chance(50),
        },
        76..=80 => Op::HandEditDbPassword,
        81..=86 => Op::UpstreamCommit {
            touch_env: r.chance(50),
        },
        87..=92 => Op::UntrackedBlock {
            identical: r.chance(70),
        },
        _ => Op::Reboot,
    }
}

/// The operations of `seed`. With `cover`, the first operations are one of each family (in an
/// order drawn from the seed), then the weighted draw: a short fixed seed exercises everything.
pub fn sequence(seed: u64, n: u64, kinds: &[String], failpoints: bool, cover: bool) -> Vec<Op> {
    let mut fams: Vec<&str> = FAMILIES
        .iter()
        .copied()
        .filter(|f| failpoints || *f != "failpoint")
        .collect();
    let mut r = Rng::new(seed ^ 0xc0fe);
    for k in (1..fams.len()).rev() {
        fams.swap(k, r.below(k as u64 + 1) as usize);
    }
    (0..n)
        .map(|i| match fams.get(i as usize).filter(|_| cover) {
            // The first draw of this family among the indices i*4096.. (pure in seed and i).
            Some(f) => (0..4096)
                .map(|j| op(seed, (i + 1) * 4096 + j, kinds, failpoints))
                .find(|o| family(o) == *f)
                .unwrap_or_else(|| op(seed, i, kinds, failpoints)),
            None => op(seed, i, kinds, failpoints),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_replay_as_themselves() {
        let kinds = vec!["db-password".to_string(), "jwt-secret".to_string()];
        for cover in [false, true] {
            let long = sequence(7, 50, &kinds, true, cover);
            let short = sequence(7, 20, &kinds, true, cover);
            assert_eq!(&long[..20], &short[..]);
            assert_ne!(sequence(8, 20, &kinds, true, cover), short);
        }
        let covered: std::collections::BTreeSet<_> =
            sequence(7, FAMILIES.len() as u64, &kinds, true, true)
                .iter()
                .map(family)
                .collect();
        assert_eq!(covered.len(), FAMILIES.len());
    }
}
