use super::*;

fn none(_: &str) -> Option<String> {
    None
}

fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |n| {
        pairs
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn interpolation_follows_compose() {
    let set = vars(&[("A", "a"), ("E", ""), ("P", "/srv")]);
    let cases: &[(&str, Result<&str, &str>)] = &[
        ("${A:+alt}", Ok("alt")),
        ("${E:+alt}", Ok("")),
        ("${U:+alt}", Ok("")),
        ("${A+alt}", Ok("alt")),
        ("${E+alt}", Ok("alt")),
        ("${U+alt}", Ok("")),
        ("${A:-d}", Ok("a")),
        ("${E:-d}", Ok("d")),
        ("${E-d}", Ok("")),
        ("${U-d-e}", Ok("d-e")),
        ("${U:-${P}/x}", Ok("/srv/x")),
        ("${A:+${P}/with-dash}", Ok("/srv/with-dash")),
        ("${A:?must be set}", Ok("a")),
        ("${U:?must be set}", Err("U")),
        ("${E:?must be set}", Err("E")),
        ("${E?must be set}", Ok("")),
        ("$P/compose.env", Ok("/srv/compose.env")),
        ("$$P", Ok("$P")),
        ("${U}", Err("U")),
    ];
    for (input, want) in cases {
        let got = interpolate(input, &set);
        assert_eq!(
            got.as_deref(),
            want.map_err(String::from).as_deref(),
            "{input}"
        );
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn merge_keys_extends_and_include_are_followed() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path();
    // Komodo's compose with the env_file in an anchor merged into core.
    let main = write(
        base,
        "compose.yaml",
        "x-env: &env\n  env_file: ./compose.env\n\
         include:\n  - ./sub/periphery.yaml\n\
         services:\n  core:\n    <<: *env\n    image: komodo-core\n\
         \x20 worker:\n    extends: core\n    env_file: extra.env\n\
         \x20 far:\n    extends:\n      file: ./other/base.yaml\n      service: base\n",
    );
    write(
        base,
        "sub/periphery.yaml",
        "services:\n  periphery:\n    env_file: [periphery.env]\n",
    );
    write(
        base,
        "other/base.yaml",
        "services:\n  base:\n    env_file: ${DIR:-.}/base.env\n",
    );
    let f = |svc| env_files_in_file(&main, svc, base, &none).unwrap();
    assert_eq!(f("core"), vec![base.join("./compose.env")]);
    assert_eq!(
        f("worker"),
        vec![base.join("./compose.env"), base.join("extra.env")]
    );
    assert_eq!(f("periphery"), vec![base.join("sub/periphery.env")]);
    assert_eq!(f("far"), vec![base.join("other/./base.env")]);
    let bad = write(base, "bad.yaml", "services:\n  a:\n    extends: nope\n");
    let e = env_files_in_file(&bad, "a", base, &none).unwrap_err();
    assert!(e.contains("\"nope\""), "{e}");
    let looped = write(base, "loop.yaml", "services:\n  a:\n    extends: a\n");
    assert!(env_files_in_file(&looped, "a", base, &none).is_err());
}

#[test]
fn the_projects_dotenv_is_read_as_compose_reads_it() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        ".env",
        "# comment\nKOMODO_ENV=/opt/komodo/compose.env # where\nexport Q=\"a \\\"b\\\"\"\nS='lit $x'\nNOEQ\n",
    );
    let m = project_dotenv(d.path());
    assert_eq!(m["KOMODO_ENV"], "/opt/komodo/compose.env");
    assert_eq!(m["Q"], "a \"b\"");
    assert_eq!(m["S"], "lit $x");
    assert!(!m.contains_key("NOEQ"));
    assert!(project_dotenv(&d.path().join("missing")).is_empty());
}
