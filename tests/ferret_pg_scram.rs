//! The PostgreSQL plane (`komodo_rotate::postgres`) against a REAL PostgreSQL 15 (Debian's
//! binaries, a throwaway cluster on a unix socket). The referees are the server and Debian's
//! `psql`: a verifier the tool built is set through the tool's own SQL and psql session, and a
//! real scram-sha-256 login proves it (the old password refused); a verifier PostgreSQL made
//! itself is checked by the tool's offline `accepts`; the undo puts back the exact bytes.
//!
//! Seeded: `KOMODO_ROTATE_PG_SEED=<n>` replays, `=random` explores; unset, a fixed gate seed.

mod ferret_support;

use ferret_support::cluster::{self, Cluster};
use ferret_support::LocalPsql;
use komodo_rotate::postgres::{Role, Stored, Verifier};
use komodo_rotate::secret::Secret;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seed() -> u64 {
    let s = match std::env::var("KOMODO_ROTATE_PG_SEED").as_deref() {
        Err(_) => 0x6665_7272_6574_2d31,
        Ok("random") => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
        Ok(v) => v
            .parse()
            .expect("KOMODO_ROTATE_PG_SEED: a number or `random`"),
    };
    eprintln!("KOMODO_ROTATE_PG_SEED={s}");
    s
}

/// Characters a generated password draws from: URL-safe (what `rotate` makes for this variant),
/// the rest of printable ASCII (quotes and backslashes for the SQL), and non-ASCII that
/// SASLprep maps (NBSP, soft hyphen, Roman numerals, full-width letters) or keeps.
const ASCII: &str = "abcXYZ0189-._~!\"#$%&'()*+,/:;<=>?@[\\]^`{|} ";
const UNICODE: &[char] = &[
    'é', 'ß', 'Ⅳ', 'ｋ', '\u{A0}', '\u{AD}', '\u{2003}', 'ﬁ', 'Å', 'ω', '中', '\u{200B}',
];

fn password(r: &mut Rng, unicode: bool) -> String {
    let len = 1 + r.below(40);
    let ascii: Vec<char> = ASCII.chars().collect();
    let mut s: String = (0..len)
        .map(|_| {
            if unicode && r.below(4) == 0 {
                UNICODE[r.below(UNICODE.len())]
            } else {
                ascii[r.below(ascii.len())]
            }
        })
        .collect();
    // A password of mapped-to-nothing characters alone is another case (tested below).
    if s.chars().all(|c| c == '\u{AD}' || c == '\u{200B}') {
        s.push('a');
    }
    s
}

fn secret(s: &str) -> Secret {
    Secret::new(s.to_string())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The role's stored secret as psql prints it, and its shape as PostgreSQL itself reads it (SQL
/// over pg_authid, not the tool's parser): iterations and salt length in bytes.
fn raw_in_pg(c: &Cluster, role: &str) -> (String, u32, usize) {
    let row = c.admin(&format!(
        "SELECT split_part(split_part(rolpassword, '$', 2), ':', 1) || ' ' || length(decode(split_part(split_part(rolpassword, '$', 2), ':', 2), 'base64')) || ' ' || rolpassword FROM pg_authid WHERE rolname = '{role}';"
    ));
    let mut it = row.trim_end_matches('\n').splitn(3, ' ');
    let i = it.next().unwrap().parse().unwrap();
    let s = it.next().unwrap().parse().unwrap();
    (it.next().unwrap().to_string(), i, s)
}

#[test]
fn verifiers_the_tool_builds_log_in_to_real_postgres_and_the_old_password_is_refused() {
    if !cluster::available("ferret_pg_scram") {
        return;
    }
    let c = Cluster::start();
    c.admin("CREATE ROLE komodo LOGIN SUPERUSER PASSWORD 'first-init-pw';");
    let psql = LocalPsql(&c);
    let role = Role {
        psql: &psql,
        admin: "postgres",
        name: "komodo",
    };
    let mut r = Rng(seed());
    let mut previous = "first-init-pw".to_string();
    let rt = rt();
    for case in 0..20 {
        let pw = password(&mut r, case % 2 == 1);
        let v = match Verifier::build(&secret(&pw)) {
            Ok(v) => v,
            Err(e) => {
                // Only what SASLprep prohibits is refused; the generator draws none of that.
                panic!("case {case}: build refused {pw:?}: {e}")
            }
        };
        rt.block_on(role.set_verifier(&v))
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        // set_verifier read the bytes back itself; psql reads them again, with their shape.
        let (raw, iterations, salt) = raw_in_pg(&c, "komodo");
        assert_eq!(raw, v.text().expose(), "case {case}");
        assert_eq!((iterations, salt), (4096, 28), "case {case}");
        assert!(c.login("komodo", &pw), "case {case}: {pw:?} must log in");
        assert!(
            !c.login("komodo", &previous),
            "case {case}: the previous password {previous:?} must be refused"
        );
        previous = pw;
    }
}

#[test]
fn verifiers_postgres_makes_are_checked_offline_as_postgres_checks_them() {
    if !cluster::available("ferret_pg_scram") {
        return;
    }
    let c = Cluster::start();
    c.admin("CREATE ROLE komodo LOGIN;");
    let psql = LocalPsql(&c);
    let role = Role {
        psql: &psql,
        admin: "postgres",
        name: "komodo",
    };
    let rt = rt();
    let mut r = Rng(seed() ^ 1);
    // Fixed cases PostgreSQL prepares in its own way: pure ASCII with controls kept raw,
    // SASLprep mapping, prohibited characters (raw fallback), mapped to nothing (raw).
    let mut cases: Vec<String> = [
        "tab\there",
        "bell\u{7}",
        "Ⅳ",
        "I\u{AD}X",
        "a\u{A0}b",
        "\u{AD}",
        "\u{200B}\u{AD}",
        "priv\u{E000}ate",
        "ｋｏｍｏｄｏ",
        "\u{5D0}a",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    cases.extend((0..8).map(|i| password(&mut r, i % 2 == 0)));
    for (case, pw) in cases.iter().enumerate() {
        let lit = pw.replace('\'', "''");
        let lit = if lit.contains('\\') {
            format!("E'{}'", lit.replace('\\', "\\\\"))
        } else {
            format!("'{lit}'")
        };
        c.admin(&format!("ALTER ROLE komodo PASSWORD {lit};"));
        let (text, v) = rt
            .block_on(role.verifier())
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert!(text.expose().starts_with("SCRAM-SHA-256$4096:"));
        assert_eq!(v.salt_len(), 16, "PostgreSQL's own salt length");
        assert!(
            v.client_caveat().unwrap().contains("16-byte salt"),
            "case {case}"
        );
        assert!(
            v.accepts(&secret(pw)),
            "case {case}: {pw:?} is the password PostgreSQL hashed"
        );
        assert!(c.login("komodo", pw), "case {case}: psql agrees");
        for other in [format!("{pw}x"), pw.to_uppercase() + "_", String::from("x")] {
            if &other != pw {
                assert!(!v.accepts(&secret(&other)), "case {case}: {other:?}");
            }
        }
    }
}

#[test]
fn the_undo_restores_the_exact_previous_secret_and_a_string_postgres_would_hash_is_caught() {
    if !cluster::available("ferret_pg_scram") {
        return;
    }
    let c = Cluster::start();
    c.admin("CREATE ROLE komodo LOGIN PASSWORD 'old-Password-1';");
    let psql = LocalPsql(&c);
    let role = Role {
        psql: &psql,
        admin: "postgres",
        name: "komodo",
    };
    let rt = rt();
    let before = match rt.block_on(role.stored()).unwrap() {
        Stored::Secret(s) => s,
        other => panic!("{other:?}"),
    };
    let v = Verifier::build(&secret("new-Password-2")).unwrap();
    rt.block_on(role.set_verifier(&v)).unwrap();
    assert!(c.login("komodo", "new-Password-2"));
    assert!(!c.login("komodo", "old-Password-1"));
    // The undo: no old plaintext, only the saved secret, back byte for byte.
    rt.block_on(role.set_stored(Some(&before))).unwrap();
    let raw = c.admin("SELECT rolpassword FROM pg_authid WHERE rolname = 'komodo';");
    assert_eq!(raw.trim_end_matches('\n'), before.expose());
    assert!(c.login("komodo", "old-Password-1"));
    assert!(!c.login("komodo", "new-Password-2"));
    // No password at all, and back.
    rt.block_on(role.set_stored(None)).unwrap();
    assert_eq!(rt.block_on(role.stored()).unwrap(), Stored::NoPassword);
    rt.block_on(role.set_stored(Some(&before))).unwrap();
    assert!(c.login("komodo", "old-Password-1"));
    // A string PostgreSQL does not parse as a secret is hashed as a plaintext: the read-back
    // sees it, and the error names the role, never the string.
    let broken = secret("SCRAM-SHA-256$4096:not-base64$x:y");
    let e = rt
        .block_on(role.set_stored(Some(&broken)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("role komodo") && e.contains("byte for byte"),
        "{e}"
    );
    assert!(!e.contains("not-base64"), "{e}");
    // A missing role, and psql's own failure, are named.
    let ghost = Role {
        psql: &psql,
        admin: "postgres",
        name: "ghost",
    };
    assert_eq!(rt.block_on(ghost.stored()).unwrap(), Stored::NoRole);
    let e = rt.block_on(ghost.set_verifier(&v)).unwrap_err().to_string();
    assert!(e.contains("exited 3") && e.contains("ghost"), "{e}");
    assert!(!e.contains("SCRAM-SHA-256$4096:"), "{e}");
    let e = rt.block_on(ghost.verifier()).unwrap_err().to_string();
    assert!(e.contains("no role ghost"), "{e}");
}
