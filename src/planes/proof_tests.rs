//! Unit tests of `planes::proof`: the carrier-file predicate names each file off the value.

use super::*;
use crate::planes::run::CarrierFile;
use std::path::Path;

#[test]
fn files_hold_names_each_file_not_on_the_value() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a");
    std::fs::write(&a, b"N3w\n").unwrap();
    let b = d.path().join("b");
    std::fs::write(&b, b"mongodb://u:old@h\n").unwrap();
    let file = |p: &Path, content: &str| CarrierFile {
        key: "K_FILE".into(),
        host_path: p.to_path_buf(),
        content: content.into(),
        readers: vec![],
    };
    let ctx = RunContext {
        files: vec![file(&a, "password"), file(&b, "uri")],
        ..Default::default()
    };
    let e = files_hold(&ctx, &Secret::new("N3w".into()), "new").unwrap_err();
    assert!(
        e.contains(&b.display().to_string()) && !e.contains(&a.display().to_string()),
        "{e}"
    );
    assert!(!e.contains("old@"), "{e}");
    std::fs::write(&b, b"mongodb://u:N3w@h\n").unwrap();
    files_hold(&ctx, &Secret::new("N3w".into()), "new").unwrap();
    std::fs::remove_file(&a).unwrap();
    assert!(files_hold(&ctx, &Secret::new("N3w".into()), "new").is_err());
}
