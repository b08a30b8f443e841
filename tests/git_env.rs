//! What git's children see (issue 18, item 10): hooks, credential helpers and ssh get an
//! allow-listed environment (never the age private key, never a `KOMODO_*` value), and a remote
//! URL's credentials are masked in every message, timeouts included.

mod git_support;

use git_support::*;
use komodo_rotate::config::Config;
use komodo_rotate::planes::git_steps;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const AGE_KEY: &str = "AGE-SECRET-KEY-1QQQQTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTQQQQ";
const KOMODO_VALUE: &str = "komodo-db-password-must-not-leak";

/// `repo unblock` fast-forwards (git merge): a post-merge hook dumps the environment it got.
/// The binary runs with the age key, its file, and KOMODO_* values in its own environment.
#[test]
fn hooks_get_an_allow_listed_environment_without_our_secrets() {
    let f = Fixture::new();
    f.upstream_commit(&[("README", "x\n")], "upstream moved");
    let dump = f.tmp.path().join("hook-env");
    let hook = f.host.join(".git/hooks/post-merge");
    std::fs::write(&hook, format!("#!/bin/sh\nenv > '{}'\n", dump.display())).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let key_file = f.tmp.path().join("age.key");
    std::fs::write(&key_file, AGE_KEY).unwrap();
    let mut c = Command::new(BIN);
    c.args(["repo", "unblock", "--config"])
        .arg(&f.config)
        .env_remove("FAILPOINTS")
        .env("SOPS_AGE_KEY", AGE_KEY)
        .env("SOPS_AGE_KEY_FILE", &key_file)
        .env("SOPS_AGE_KEY_CMD", "cat /dev/null")
        .env("KOMODO_DB_PASSWORD", KOMODO_VALUE)
        .env("KOMODO_ROTATE_TEST_VALUE", KOMODO_VALUE)
        .env("LC_TIME", "C")
        .env("GIT_SSH_COMMAND", "ssh -oBatchMode=yes")
        .stdin(std::process::Stdio::null());
    let r = run(c);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let env = std::fs::read_to_string(&dump).expect("the post-merge hook ran");
    for secret in [AGE_KEY, KOMODO_VALUE, key_file.to_str().unwrap()] {
        assert!(!env.contains(secret), "a hook saw {secret}:\n{env}");
    }
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("SOPS_") || n.starts_with("KOMODO_")),
        "{names:?}"
    );
    // What git, ssh and signing need is still there.
    for need in ["HOME", "PATH", "LC_TIME", "GIT_SSH_COMMAND"] {
        assert!(names.contains(&need), "{need} missing: {names:?}");
    }
}

/// A remote given as a URL with credentials ([git] remote) that never answers: the timeout
/// error (which names the git call) masks the token.
#[test]
fn a_credentialed_remote_url_is_masked_in_a_timeout() {
    let f = Fixture::new();
    let port = silent_listener();
    let url = format!("http://bot:ghp_TOKEN42@127.0.0.1:{port}/o.git");
    f.write_config(&format!(
        "[git]\nmode = \"push\"\nremote = \"{url}\"\nbranch = \"main\"\nnetwork_timeout = \"2s\"\n"
    ));
    let cfg = Config::load(Some(&f.config)).unwrap();
    let e = git_steps::preflight(&cfg).unwrap_err().to_string();
    assert!(e.contains("within 2s"), "{e}");
    assert!(!e.contains("ghp_TOKEN42") && !e.contains("bot:"), "{e}");
    assert!(e.contains("***@127.0.0.1"), "{e}");
}
