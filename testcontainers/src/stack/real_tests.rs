use super::*;
use crate::stack::compose::{compose_file_with, ferretdb_file_text};
use crate::stack::{CoreCarrier, Generation};
use std::collections::BTreeSet;
use std::path::Path;

/// Every compose file the stack can write today: (label, text).
fn all_files() -> Vec<(String, String)> {
    let mut out = vec![("ferretdb".to_string(), ferretdb_file_text().to_string())];
    for g in [Generation::V1, Generation::V2] {
        for c in [
            CoreCarrier::Plain,
            CoreCarrier::Uri,
            CoreCarrier::PasswordFile,
        ] {
            out.push((format!("{g:?}/{c:?}"), compose_file_with(g, c)));
        }
    }
    out
}

fn both() -> RealImages {
    RealImages {
        core: Some("registry.example/komodo-core:2.3.2".into()),
        periphery: Some("komodo-periphery@sha256:0123abcd".into()),
    }
}

fn yaml(text: &str) -> serde_norway::Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

fn service<'a>(doc: &'a serde_norway::Value, name: &str) -> &'a serde_norway::Value {
    &doc["services"][name]
}

#[test]
fn without_real_images_every_compose_file_is_written_byte_for_byte_as_today() {
    for (label, text) in all_files() {
        let written = apply(&text, &RealImages::default()).unwrap();
        assert_eq!(written, text, "{label}");
    }
}

#[test]
fn real_images_replace_the_stand_ins_and_leave_none_of_their_controls() {
    for (label, text) in all_files() {
        for images in [
            both(),
            RealImages {
                core: both().core,
                periphery: None,
            },
            RealImages {
                core: None,
                periphery: both().periphery,
            },
        ] {
            let out = apply(&text, &images).unwrap();
            let (doc, orig) = (yaml(&out), yaml(&text));
            let (core, periphery) = (service(&doc, "core"), service(&doc, "periphery"));
            // Every other service, and every key of the edited ones but image/healthcheck/
            // environment/volumes, as before.
            for (name, svc) in orig["services"].as_mapping().unwrap() {
                let name = name.as_str().unwrap();
                let new = service(&doc, name);
                if name != "core" && name != "periphery" {
                    assert_eq!(new, svc, "{label}: {name} untouched");
                    continue;
                }
                for (k, v) in svc.as_mapping().unwrap() {
                    let k = k.as_str().unwrap();
                    if !["image", "healthcheck", "environment", "volumes"].contains(&k) {
                        assert_eq!(&new[k], v, "{label}: {name}.{k}");
                    }
                }
            }
            let core_text = serde_norway::to_string(core).unwrap();
            let per_text = serde_norway::to_string(periphery).unwrap();
            match &images.core {
                Some(image) => {
                    assert_eq!(core["image"].as_str(), Some(image.as_str()), "{label}");
                    for gone in ["core-standin", "/control", "CORE_STANDIN_"] {
                        assert!(!core_text.contains(gone), "{label}: {gone}\n{out}");
                    }
                    let test: Vec<&str> = core["healthcheck"]["test"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .collect();
                    assert_eq!(&test[..3], ["CMD", "bash", "-c"], "{label}");
                    assert!(test[3].contains("/dev/tcp/127.0.0.1/9120"), "{label}");
                    assert!(test[3].contains("GET /version HTTP/1.0\\r\\n"), "{label}");
                    // compose reads `$$` as `$`.
                    assert!(test[3].contains("case \"$$s\" in *\" 200 \"*)"), "{label}");
                    // The core environment keeps everything but the stand-in's key.
                    for (k, v) in orig["services"]["core"]["environment"]
                        .as_mapping()
                        .unwrap()
                    {
                        let k = k.as_str().unwrap();
                        if !k.starts_with("CORE_STANDIN_") {
                            assert_eq!(&core["environment"][k], v, "{label}: {k}");
                        }
                    }
                    if label.ends_with("PasswordFile") {
                        assert!(core_text.contains("/run/secrets:ro"), "{label}");
                    }
                    if label.starts_with("V1/") && !label.ends_with("PasswordFile") {
                        assert!(core.get("volumes").is_none(), "{label}: no empty volumes");
                    }
                }
                None => assert_eq!(core, &orig["services"]["core"], "{label}"),
            }
            match &images.periphery {
                Some(image) => {
                    assert_eq!(periphery["image"].as_str(), Some(image.as_str()));
                    assert!(periphery.get("healthcheck").is_none(), "{label}");
                    assert!(!per_text.contains("periphery-standin"), "{label}");
                    assert_eq!(
                        periphery["volumes"], orig["services"]["periphery"]["volumes"],
                        "{label}"
                    );
                }
                None => assert_eq!(periphery, &orig["services"]["periphery"], "{label}"),
            }
            assert!(out.contains("## rehearsal: image mode ("), "{label}");
        }
    }
}

#[test]
fn an_image_variable_that_is_no_image_reference_is_refused_by_name() {
    for bad in [
        "-x", "a b", "a\nb", "a'b", "a\"b", "a#b", "a{b}", "${X}", "é",
    ] {
        let e = image_ref(CORE_IMAGE_ENV, bad).unwrap_err();
        assert!(e.starts_with("KOMODO_ROTATE_TEST_CORE_IMAGE: "), "{e}");
    }
    for good in [
        "ghcr.io/moghtech/komodo-core:2.3.2",
        "komodo-core",
        "localhost:5000/k/core@sha256:ab12",
    ] {
        assert_eq!(image_ref(PERIPHERY_IMAGE_ENV, good).unwrap(), good);
    }
    assert!(image_ref(CORE_IMAGE_ENV, &"a".repeat(256)).is_err());
}

#[test]
fn controls_are_lacking_exactly_where_a_real_image_replaces_their_stand_in() {
    let core = RealImages {
        core: both().core,
        periphery: None,
    };
    let per = RealImages {
        core: None,
        periphery: both().periphery,
    };
    use StandinControl::*;
    for c in [FailNextStart, PasskeyProbe] {
        assert!(!c.lacking(&RealImages::default()), "{c:?}");
        assert!(c.lacking(&both()), "{c:?}");
        assert!(c.lacking(&core), "{c:?}");
    }
    assert!(!FailNextStart.lacking(&per));
    assert!(PasskeyProbe.lacking(&per));
}

/// The tests that name a stand-in-only control (`require_standin("<test>", ..)` in `tests/`)
/// are exactly the ones the `real-images` nextest profile leaves out (besides the real-mongo
/// test, which the default profile leaves out too), and each names a test of its own file.
#[test]
fn the_real_images_profile_leaves_out_exactly_the_tests_that_name_a_stand_in_control() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let call = regex::Regex::new(r#"require_standin\(\s*"([A-Za-z0-9_]+)""#).unwrap();
    let mut named = BTreeSet::new();
    let mut stack = vec![root.join("tests")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for c in call.captures_iter(&text) {
                let test = c[1].to_string();
                assert!(
                    text.contains(&format!("fn {test}(")),
                    "{}: require_standin names {test}, no test of this file",
                    path.display()
                );
                named.insert(test);
            }
        }
    }
    assert!(named.len() >= 5, "{named:?}");
    let config = std::fs::read_to_string(root.join(".config/nextest.toml")).unwrap();
    let doc: toml::Value = toml::from_str(&config).unwrap();
    let filter = doc["profile"]["real-images"]["default-filter"]
        .as_str()
        .expect("profile.real-images.default-filter");
    let left_out: BTreeSet<String> = regex::Regex::new(r"test\(=([A-Za-z0-9_]+)\)")
        .unwrap()
        .captures_iter(filter)
        .map(|c| c[1].to_string())
        .filter(|t| t != "driver_scenarios_against_a_real_mongo_image_when_configured")
        .collect();
    assert!(filter.trim_start().starts_with("not ("), "{filter}");
    assert_eq!(
        left_out, named,
        "nextest's real-images profile vs require_standin calls"
    );
}
