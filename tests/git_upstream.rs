//! Upstream's compose.env against the live secrets (issue 18, item 2): `verify` decrypts the
//! incoming file in memory and reports a `git-upstream` DRIFT naming the keys whose values
//! differ (never a value); `repo unblock` refuses such a merge unless `--allow-env-change`; a
//! re-encryption of the same values is no change; an incoming file it cannot decrypt is
//! `unknown`, never fine; `[git] remote`/`branch` are honoured; and verify writes nothing into
//! the repository's `.git` (it works where `.git` is read-only, as under the hardened unit).

mod git_support;

use age::secrecy::ExposeSecret;
use git_support::*;
use komodo_rotate::sops::encrypt_new;
use std::path::{Path, PathBuf};

const REL: &str = "services/komodo/compose.env";
const LIVE: &str =
    "KOMODO_DB_PASSWORD=live-password-1\nKOMODO_PASSKEY=passkey-1\nKOMODO_TITLE=Komodo\n";
const CHANGED: &str =
    "KOMODO_DB_PASSWORD=other-password-2\nKOMODO_PASSKEY=passkey-1\nKOMODO_TITLE=Komodo\n";
/// Only a setting changes upstream (found by the campaign: seed 1 locked out on a title change).
const SETTING_CHANGED: &str =
    "KOMODO_DB_PASSWORD=live-password-1\nKOMODO_PASSKEY=passkey-1\nKOMODO_TITLE=Komodo Prod\n";

struct Env {
    f: Fixture,
    recipient: String,
}

/// A fixture whose compose.env is real sops ciphertext of LIVE, committed and pushed, with the
/// config pointing at the age key.
fn setup(git_section: &str) -> Env {
    let f = Fixture::new();
    let id = age::x25519::Identity::generate();
    let key = f.tmp.path().join("age.key");
    std::fs::write(&key, id.to_string().expose_secret()).unwrap();
    let recipient = id.to_public().to_string();
    let env = Env { f, recipient };
    std::fs::write(env.f.host.join(REL), env.encrypt(LIVE)).unwrap();
    git_ok(&env.f.host, &["commit", "-q", "-am", "live env"]);
    git_ok(&env.f.host, &["push", "-q", "origin", "main"]);
    std::fs::write(
        &env.f.config,
        format!(
            "compose_env = \"{}\"\nstate_dir = \"{}\"\nage_key_file = \"{}\"\n[discovery]\nproject = \"gitup-none-{}\"\n{git_section}",
            env.f.host.join(REL).display(),
            env.f.state.display(),
            key.display(),
            std::process::id()
        ),
    )
    .unwrap();
    env
}

impl Env {
    fn encrypt(&self, plain: &str) -> String {
        String::from_utf8(
            encrypt_new(plain.as_bytes(), std::slice::from_ref(&self.recipient)).unwrap(),
        )
        .unwrap()
    }
    fn upstream(&self) -> Row {
        let v = self.f.kr_cfg(&["verify"], &["--json"]);
        let (st, d) = check(&v.stdout, "git-upstream").unwrap_or_else(|| panic!("{}", v.text()));
        for secret in ["live-password-1", "other-password-2", "passkey-1"] {
            assert!(!v.text().contains(secret), "a value leaked: {}", v.text());
        }
        Row { st, d }
    }
}

struct Row {
    st: String,
    d: String,
}

/// Every file under `.git` with its bytes: what a read-only `.git` would refuse to change.
fn dot_git(host: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![host.join(".git")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_incoming_password_change_is_drift_and_unblock_refuses_it_unless_allowed() {
    let e = setup("");
    e.f.upstream_commit(
        &[(REL, &e.encrypt(CHANGED))],
        "someone changes the DB password",
    );
    let before = e.f.head(&e.f.host);
    let git_before = dot_git(&e.f.host);
    let r = e.upstream();
    // Read-only: verify sees the new upstream commit without writing anything under .git.
    let after = dot_git(&e.f.host);
    let changed: Vec<_> = after
        .iter()
        .filter(|x| !git_before.contains(x))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        changed.is_empty() && after.len() == git_before.len(),
        "verify wrote into .git: {changed:?}"
    );
    assert!(r.d.contains("1 behind"), "{}", r.d);
    assert_eq!(r.st, "drift", "{}", r.d);
    assert!(
        r.d.contains("KOMODO_DB_PASSWORD") && !r.d.contains("KOMODO_PASSKEY"),
        "{}",
        r.d
    );
    assert!(
        r.d.contains("--allow-env-change") && r.d.contains("origin/main"),
        "{}",
        r.d
    );

    let u = e.f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(u.code, Some(3), "{}", u.text());
    assert!(
        u.stderr.contains("KOMODO_DB_PASSWORD") && u.stderr.contains("--allow-env-change"),
        "{}",
        u.text()
    );
    assert!(u.stderr.contains("nothing changed"), "{}", u.text());
    assert_eq!(e.f.head(&e.f.host), before);
    let u = e.f.kr_cfg(&["repo", "unblock"], &["--allow-env-change"]);
    assert_eq!(u.code, Some(0), "{}", u.text());
    assert_eq!(e.f.head(&e.f.host), e.f.head(&e.f.origin));
}

#[test]
fn a_re_encryption_of_the_same_values_is_no_change() {
    let e = setup("");
    e.f.upstream_commit(&[(REL, &e.encrypt(LIVE))], "re-encrypted, same values");
    let r = e.upstream();
    assert_eq!(r.st, "ok", "{}", r.d);
    let u = e.f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(u.code, Some(0), "{}", u.text());
}

#[test]
fn a_setting_changed_upstream_is_no_secret_change() {
    let e = setup("");
    e.f.upstream_commit(&[(REL, &e.encrypt(SETTING_CHANGED))], "a new title");
    let r = e.upstream();
    assert_eq!(r.st, "ok", "{}", r.d);
    let u = e.f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(u.code, Some(0), "{}", u.text());
    assert_eq!(e.f.head(&e.f.host), e.f.head(&e.f.origin));
}

#[test]
fn an_incoming_file_that_cannot_be_decrypted_is_unknown_and_refused() {
    let e = setup("");
    let stranger = age::x25519::Identity::generate().to_public().to_string();
    let foreign = encrypt_new(LIVE.as_bytes(), &[stranger]).unwrap();
    e.f.upstream_commit(
        &[(REL, std::str::from_utf8(&foreign).unwrap())],
        "new recipients only",
    );
    let r = e.upstream();
    assert_eq!(r.st, "unknown", "{}", r.d);
    let u = e.f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(u.code, Some(3), "{}", u.text());
    assert!(u.stderr.contains("cannot compare"), "{}", u.text());
}

/// `[git] remote`/`branch` name what rotate pushes to; verify looks there, not at the
/// checked-out branch's upstream (which is unchanged here).
#[test]
fn verify_honours_the_configured_remote_and_branch() {
    let e = setup("[git]\nremote = \"deploy\"\nbranch = \"release\"\n");
    git_ok(
        &e.f.host,
        &["remote", "add", "deploy", e.f.origin.to_str().unwrap()],
    );
    let w = e.f.tmp.path().join("release-clone");
    git_ok(
        e.f.tmp.path(),
        &[
            "clone",
            "-q",
            e.f.origin.to_str().unwrap(),
            w.to_str().unwrap(),
        ],
    );
    std::fs::write(w.join(REL), e.encrypt(CHANGED)).unwrap();
    git_ok(&w, &["commit", "-q", "-am", "release changes the password"]);
    git_ok(&w, &["push", "-q", "origin", "HEAD:refs/heads/release"]);
    let r = e.upstream();
    assert_eq!(r.st, "drift", "{}", r.d);
    assert!(
        r.d.contains("deploy/release") && r.d.contains("KOMODO_DB_PASSWORD"),
        "{}",
        r.d
    );
}
