//! Unit tests of `planes::holders`: the by-value test, the per-key comparison, the holders
//! outside the roles.

use super::test_container as container;
use super::*;

const PW: &str = "s3cret-pass-w0rd";

#[test]
fn each_key_holds_differs_or_is_unset_in_its_form() {
    use Stand::*;
    let ks: Vec<String> = ["A", "URL", "P_FILE", "UNSET"].map(String::from).to_vec();
    let forms = BTreeMap::from([
        ("URL".to_string(), FORM_URI.to_string()),
        ("P_FILE".to_string(), FORM_FILE.to_string()),
    ]);
    let want = Secret::new(PW.into());
    let url = format!("mongodb://u:{PW}@mongo:27017");
    let c = container("core", &[("A", PW), ("URL", &url), ("P_FILE", "/run/p")]);
    let named: Vec<(&str, &str)> = compare(&c, &ks, &forms, &want)
        .iter()
        .map(|k| (k.key, k.form))
        .collect();
    assert_eq!(
        named,
        [
            ("A", "plain"),
            ("URL", FORM_URI),
            ("P_FILE", FORM_FILE),
            ("UNSET", "plain")
        ]
    );
    /// A container's env, and how `ks` stand in it.
    type Case<'a> = (&'a [(&'a str, &'a str)], [Stand; 4]);
    let cases: [Case; 3] = [
        (
            &[("A", PW), ("URL", &url), ("P_FILE", "/run/p")],
            [Holds, Holds, Holds, Unset],
        ),
        (
            &[("A", "other"), ("URL", "mongodb://u:x@mongo:27017")],
            [Differs, Differs, Unset, Unset],
        ),
        // A URI without a password does not hold it.
        (
            &[("URL", "mongodb://mongo:27017")],
            [Unset, Differs, Unset, Unset],
        ),
    ];
    for (env, want_stands) in cases {
        let c = container("core", env);
        let stands: Vec<Stand> = compare(&c, &ks, &forms, &want)
            .iter()
            .map(|k| k.stand)
            .collect();
        assert_eq!(stands, want_stands, "{env:?}");
    }
    // The form matters: read plainly, a URI holding the value differs from it.
    let c = container("core", &[("A", PW), ("URL", &url)]);
    let plain = BTreeMap::new();
    assert_eq!(compare(&c, &ks, &plain, &want)[1].stand, Differs);
    assert_eq!(stand(&c, "URL", FORM_URI, &want), Holds);
}

#[test]
fn a_carrier_file_holds_or_differs_and_an_unreadable_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db_password");
    std::fs::write(&path, format!("{PW}\n")).unwrap();
    let f = CarrierFile {
        key: "KOMODO_DATABASE_PASSWORD_FILE".into(),
        host_path: path.clone(),
        content: "password".into(),
        readers: vec!["core".into()],
    };
    let want = Secret::new(PW.into());
    assert_eq!(file_stands(&f, &want), Ok(Stand::Holds));
    assert_eq!(
        file_stands(&f, &Secret::new("other".into())),
        Ok(Stand::Differs)
    );
    std::fs::remove_file(&path).unwrap();
    let e = file_stands(&f, &want).unwrap_err();
    assert!(e.contains("db_password") && !e.contains(PW), "{e}");
}

fn others() -> Vec<ContainerInfo> {
    vec![
        container(
            "komodo-backup-1",
            &[("KOMODO_DATABASE_PASSWORD", PW), ("X", "y")],
        ),
        container(
            "komodo-sidecar-1",
            &[(
                "MONGO_URL",
                "mongodb://admin:s3cret%2Dpass-w0rd@mongo:27017/",
            )],
        ),
        container("komodo-other-1", &[("X", "s3cret")]),
    ]
}

#[test]
fn values_are_held_plainly_in_a_uri_or_inside_and_compared_in_their_form() {
    let want = Secret::new(PW.into());
    let s = |v: &str| Secret::new(v.into());
    assert_eq!(how("K", &s(PW), &want), Some(Held::Plain));
    assert_eq!(
        how("U", &s("mongodb://a:s3cret-pass-w0rd@h/?x=1"), &want),
        Some(Held::Uri)
    );
    assert_eq!(
        how("T", &s("--password=s3cret-pass-w0rd"), &want),
        Some(Held::Inside)
    );
    assert_eq!(how("K", &s("other"), &want), None);
    // A short value is only compared whole, never searched for inside others.
    assert_eq!(how("K", &s("xabcx"), &s("abc")), None);
    assert_eq!(how("K", &s(""), &s("")), None);
    let new = s("N3w");
    let k = "KOMODO_DATABASE_URI";
    assert!(holds(FORM_URI, k, &s("mongodb://a:N3w@h/?x=1"), &new));
    assert!(!holds("plain", k, &s("mongodb://a:N3w@h/?x=1"), &new));
    assert!(!holds(FORM_URI, k, &s("mongodb://a:old@h"), &new));
    assert!(!holds(FORM_URI, k, &s("mongodb://h"), &new));
    assert!(holds("plain", "P", &new, &new));
    assert!(holds(FORM_FILE, "P_FILE", &s("/run/x"), &new));
}

#[test]
fn holders_outside_the_roles_are_found_by_value_and_named() {
    let pw = Secret::new(PW.into());
    let others = others();
    let found = foreign(&others, &pw);
    assert_eq!(
        found,
        vec![
            Foreign {
                name: "komodo-backup-1".into(),
                keys: vec![("KOMODO_DATABASE_PASSWORD".into(), Held::Plain)]
            },
            Foreign {
                name: "komodo-sidecar-1".into(),
                keys: vec![("MONGO_URL".into(), Held::Uri)]
            },
        ]
    );
    let e = refuse_foreign(&others, &pw, "the DB password")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("komodo-backup-1 (KOMODO_DATABASE_PASSWORD), komodo-sidecar-1 (MONGO_URL)"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
    refuse_foreign(&others[2..], &pw, "the DB password").unwrap();
}

#[test]
fn plain_and_uri_holders_are_patched_other_forms_refused_by_name() {
    let pw = Secret::new(PW.into());
    let role_keys = vec!["KOMODO_DATABASE_PASSWORD".to_string()];
    let found = patchable(
        &others(),
        &pw,
        "the DB password",
        &role_keys,
        &BTreeMap::new(),
    )
    .unwrap();
    let (mut ck, mut forms) = (BTreeMap::new(), BTreeMap::new());
    add_to_context(&found, &mut ck, &mut forms);
    assert_eq!(
        ck,
        BTreeMap::from([
            (
                "komodo-backup-1".to_string(),
                vec!["KOMODO_DATABASE_PASSWORD".to_string()]
            ),
            (
                "komodo-sidecar-1".to_string(),
                vec!["MONGO_URL".to_string()]
            ),
        ])
    );
    assert_eq!(
        forms,
        BTreeMap::from([("MONGO_URL".to_string(), FORM_URI.to_string())])
    );
    // Inside a command line: refused by container and key.
    let inside = [container(
        "komodo-dump-1",
        &[("ARGS", "--password=s3cret-pass-w0rd --gzip")],
    )];
    let e = patchable(&inside, &pw, "the DB password", &role_keys, &forms)
        .unwrap_err()
        .to_string();
    assert!(e.contains("komodo-dump-1 carries it inside ARGS"), "{e}");
    assert!(
        e.contains("nothing was changed") && !e.contains("s3cret"),
        "{e}"
    );
    // A key the roles carry in another form: which form a patch gives it is ambiguous.
    let clash = [container(
        "komodo-backup-1",
        &[(
            "KOMODO_DATABASE_PASSWORD",
            "mongodb://u:s3cret-pass-w0rd@mongo/",
        )],
    )];
    let e = patchable(&clash, &pw, "the DB password", &role_keys, &forms)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("komodo-backup-1 carries it under KOMODO_DATABASE_PASSWORD as a uri value"),
        "{e}"
    );
}

#[test]
fn rescue_candidates_are_uri_passwords_and_named_keys_never_shown() {
    let c = candidates(&others(), &["KOMODO_DATABASE_PASSWORD"]);
    let sources: Vec<&str> = c.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        sources,
        [
            "komodo-backup-1 KOMODO_DATABASE_PASSWORD",
            "komodo-sidecar-1 MONGO_URL"
        ]
    );
    assert!(c.iter().all(|(_, v)| v.expose() == PW));
}
