use super::*;

fn write(dir: &Path, body: &str) -> PathBuf {
    std::fs::write(dir.join("compose.env"), "X=1\n").unwrap();
    let p = dir.join("komodo-rotate.toml");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn minimal_config_gets_official_compose_defaults() {
    let d = tempfile::tempdir().unwrap();
    let cfg = Config::load(Some(&write(d.path(), "compose_env = \"compose.env\"\n"))).unwrap();
    assert_eq!(cfg.compose_env, d.path().join("compose.env"));
    assert_eq!(cfg.discovery.project, "komodo");
    assert_eq!(cfg.discovery.services.core, "core");
    assert_eq!(cfg.discovery.services.periphery, vec!["periphery"]);
    assert_eq!(cfg.mongo.auth_source, "admin");
    assert_eq!(cfg.health.timeout, Duration::from_secs(90));
    assert_eq!(cfg.health.stable_for, Duration::from_secs(10));
    assert_eq!(cfg.state_dir, PathBuf::from("/var/lib/komodo-rotate"));
    assert_eq!(cfg.backups.keep, 5);
}

#[test]
fn backups_keep_is_read_and_zero_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "compose_env = \"compose.env\"\n[backups]\nkeep = 2\n",
    );
    assert_eq!(Config::load(Some(&p)).unwrap().backups.keep, 2);
    let p = write(
        d.path(),
        "compose_env = \"compose.env\"\n[backups]\nkeep = 0\n",
    );
    let e = Config::load(Some(&p)).unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::USAGE);
    assert!(e.to_string().contains("backups.keep"), "{e}");
}

#[test]
fn unknown_key_is_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "compose_env = \"compose.env\"\n[health]\nstable-for = \"5s\"\n",
    );
    let e = Config::load(Some(&p)).unwrap_err().to_string();
    assert!(e.contains("stable-for"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn missing_compose_env_is_a_config_error() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.toml");
    std::fs::write(&p, "compose_env = \"nope.env\"\n").unwrap();
    let e = Config::load(Some(&p)).unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::USAGE);
    assert!(e.to_string().contains("nope.env"));
}

#[test]
fn git_section_defaults_and_refusals() {
    let d = tempfile::tempdir().unwrap();
    let cfg = Config::load(Some(&write(d.path(), "compose_env = \"compose.env\"\n"))).unwrap();
    assert_eq!(cfg.git.mode, GitMode::Auto);
    assert_eq!(cfg.git.network_timeout, Duration::from_secs(30));
    assert_eq!(
        cfg.git.message("db-password", "r1"),
        "komodo-rotate: rotate db-password (run r1)"
    );
    let ok = write(
            d.path(),
            "compose_env = \"compose.env\"\n[git]\nmode = \"push\"\nremote = \"up\"\nnetwork_timeout = \"5s\"\n",
        );
    let cfg = Config::load(Some(&ok)).unwrap();
    assert_eq!(cfg.git.mode, GitMode::Push);
    assert_eq!(cfg.git.remote, "up");
    for (body, needle) in [
        ("[git]\nmode = \"always\"\n", "always"),
        (
            "[git]\ncommit_message = \"set {value}\"\n",
            "commit_message",
        ),
        ("[git]\ncommit_message = \" \"\n", "commit_message"),
        ("[git]\nnetwork_timeout = \"0s\"\n", "network_timeout"),
        ("[git]\npush = true\n", "push"),
    ] {
        let p = write(d.path(), &format!("compose_env = \"compose.env\"\n{body}"));
        let e = Config::load(Some(&p)).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::USAGE, "{body}");
        let e = e.to_string();
        assert!(e.contains(needle) && !e.contains('\n'), "{body}: {e}");
    }
}

#[test]
fn bad_duration_names_the_value() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "compose_env = \"compose.env\"\n[health]\ntimeout = \"90\"\n",
    );
    let e = Config::load(Some(&p)).unwrap_err().to_string();
    assert!(e.contains("\"90\""), "{e}");
}

#[test]
fn core_url_is_checked_at_load() {
    let d = tempfile::tempdir().unwrap();
    let ok = write(
        d.path(),
        "compose_env = \"compose.env\"\n[health]\ncore_url = \"http://core:9120/\"\n",
    );
    assert_eq!(
        Config::load(Some(&ok)).unwrap().health.core_url,
        "http://core:9120/"
    );
    let bad = write(
        d.path(),
        "compose_env = \"compose.env\"\n[health]\ncore_url = \"https://core:9120/\"\n",
    );
    let e = Config::load(Some(&bad)).unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::USAGE);
    assert!(e.to_string().contains("health.core_url"), "{e}");
}
