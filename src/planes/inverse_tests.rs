//! Unit tests of `planes::inverse`: the set-back by value, a key the run added, a third value.

use super::*;
use crate::sops::encrypt_new;
use secrecy::ExposeSecret;

pub(crate) fn ids_and_recipient() -> (Identities, String) {
    let id = age::x25519::Identity::generate();
    let r = id.to_public().to_string();
    let ids = Identities::from_key_text(id.to_string().expose_secret(), "test").unwrap();
    (ids, r)
}

fn key(k: &str, old: Option<&str>, new: &str) -> RunKey {
    RunKey {
        key: k.into(),
        old: old.map(|o| Secret::new(o.into())),
        new: Secret::new(new.into()),
    }
}

/// `path` now holds `plain` (dotenv), encrypted to `r`.
fn put(path: &Path, r: &str, plain: &str) {
    std::fs::write(
        path,
        encrypt_new(plain.as_bytes(), &[r.to_string()]).unwrap(),
    )
    .unwrap();
}

/// The run's edit: `keys`, over a file that held `before` (plaintext dotenv).
fn edit(ids: &Identities, r: &str, before: &str, keys: Vec<RunKey>) -> RunEdit {
    let bytes = encrypt_new(before.as_bytes(), &[r.to_string()]).unwrap();
    let before = SopsFile::parse(bytes, "before")
        .unwrap()
        .decrypt(ids)
        .unwrap();
    RunEdit { keys, before }
}

fn get(path: &Path, ids: &Identities, k: &str) -> Option<String> {
    SopsFile::load(path)
        .unwrap()
        .decrypt(ids)
        .unwrap()
        .get(k)
        .map(|v| v.expose().to_string())
}

/// Seeded: the file after a run wrote NEW and a colleague set other keys. The set-back keeps
/// every other key's edit, puts OLD back, keeps the recipients, and a second call is a no-op;
/// a run key changed by someone else is refused by name, nothing written.
#[test]
fn run_keys_go_back_other_edits_stay_and_a_foreign_run_key_is_a_conflict() {
    let (ids, r) = ids_and_recipient();
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("compose.env");
    let mut seed: u64 = 0x5eed_1818;
    for case in 0..6 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let others = 1 + (seed >> 33) as usize % 4;
        let mut plain = String::from("KOMODO_TITLE=before\nKOMODO_JWT_SECRET=NEW-jwt\n");
        for i in 0..others {
            plain.push_str(&format!("K{i}=colleague-{case}-{i}\n"));
        }
        put(&path, &r, &plain);
        let keys = edit(
            &ids,
            &r,
            "KOMODO_TITLE=before\nKOMODO_JWT_SECRET=OLD-jwt\n",
            vec![key("KOMODO_JWT_SECRET", Some("OLD-jwt"), "NEW-jwt")],
        );
        let kept = set_back(&path, &ids, &keys).unwrap().expect("set back");
        let colleague: Vec<String> = (0..others).map(|i| format!("K{i}")).collect();
        assert_eq!(
            kept,
            KeptEdit {
                file: path.display().to_string(),
                commit: None,
                set_back: vec!["KOMODO_JWT_SECRET".into()],
                removed: vec![],
                kept: colleague,
            }
        );
        assert_eq!(
            get(&path, &ids, "KOMODO_JWT_SECRET").as_deref(),
            Some("OLD-jwt")
        );
        for i in 0..others {
            assert_eq!(
                get(&path, &ids, &format!("K{i}")),
                Some(format!("colleague-{case}-{i}"))
            );
        }
        assert_eq!(SopsFile::load(&path).unwrap().recipients(), vec![r.clone()]);
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            set_back(&path, &ids, &keys).unwrap().is_none(),
            "already old: no-op"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
    let plain = "KOMODO_JWT_SECRET=THIRD\n";
    put(&path, &r, plain);
    let bytes = std::fs::read(&path).unwrap();
    let conflict = edit(
        &ids,
        &r,
        "KOMODO_JWT_SECRET=O\n",
        vec![key("KOMODO_JWT_SECRET", Some("O"), "N")],
    );
    let e = set_back(&path, &ids, &conflict).unwrap_err().to_string();
    assert!(
        e.contains("compose.env") && e.contains("KOMODO_JWT_SECRET") && e.contains("conflict"),
        "{e}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing written");
}

/// The operator's line and the audit record name the file, the run's keys set back and the
/// other keys whose edits were kept (changed, added or removed since), never a value.
#[test]
fn the_undo_by_value_says_which_keys_went_back_and_which_edits_were_kept() {
    let (ids, r) = ids_and_recipient();
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("compose.env");
    let now = "KOMODO_TITLE=theirs\nKOMODO_JWT_SECRET=NEW-jwt\nADDED=secret-a\nSAME=s\n";
    put(&path, &r, now);
    let run = edit(
        &ids,
        &r,
        "KOMODO_TITLE=t0\nKOMODO_JWT_SECRET=OLD-jwt\nGONE=secret-g\nSAME=s\n",
        vec![key("KOMODO_JWT_SECRET", Some("OLD-jwt"), "NEW-jwt")],
    );
    let kept = set_back(&path, &ids, &run).unwrap().expect("set back");
    assert_eq!(kept.set_back, ["KOMODO_JWT_SECRET"]);
    assert_eq!(kept.kept, ["KOMODO_TITLE", "ADDED", "GONE"]);
    let line = kept_line(&kept);
    for want in [
        path.display().to_string().as_str(),
        "set back: KOMODO_JWT_SECRET",
        "kept",
        "KOMODO_TITLE, ADDED, GONE",
    ] {
        assert!(line.contains(want), "{want:?} missing: {line}");
    }
    let json = serde_json::to_string(&kept).unwrap();
    for secret in ["theirs", "NEW-jwt", "OLD-jwt", "secret-a", "secret-g", "t0"] {
        assert!(
            !line.contains(secret) && !json.contains(secret),
            "{line} {json}"
        );
    }
    let git = KeptEdit {
        commit: Some("abc123".into()),
        kept: vec![],
        ..kept
    };
    let line = kept_line(&git);
    assert!(
        line.contains("git commit abc123") && line.contains("no other key differs"),
        "{line}"
    );
    let sink = KeptEdits::default();
    sink.note(git.clone());
    assert_eq!(sink.take(), [git]);
    assert!(sink.take().is_empty());
}

/// A key the run added (absent before it) is removed by the set-back, as `sops unset` would,
/// with every other edit kept and the MAC over what is left; a replay is a no-op.
#[test]
fn a_key_the_run_added_is_removed_and_other_edits_stay() {
    let (ids, r) = ids_and_recipient();
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("compose.env");
    let before = "KOMODO_TITLE=t0\nKOMODO_JWT_SECRET=OLD-jwt\n";
    for (keys, back) in [
        (
            vec![
                key("KOMODO_JWT_SECRET", Some("OLD-jwt"), "NEW-jwt"),
                key("NEWKEY", None, "NEW-n"),
            ],
            vec!["KOMODO_JWT_SECRET".to_string()],
        ),
        (vec![key("NEWKEY", None, "NEW-n")], vec![]),
    ] {
        let jwt = if back.is_empty() {
            "OLD-jwt"
        } else {
            "NEW-jwt"
        };
        put(
            &path,
            &r,
            &format!("KOMODO_TITLE=theirs\nKOMODO_JWT_SECRET={jwt}\nNEWKEY=NEW-n\nLATER=x\n"),
        );
        let run = edit(&ids, &r, before, keys);
        let kept = set_back(&path, &ids, &run).unwrap().expect("set back");
        assert_eq!(kept.set_back, back);
        assert_eq!(kept.removed, ["NEWKEY"]);
        assert_eq!(kept.kept, ["KOMODO_TITLE", "LATER"]);
        assert!(kept_line(&kept).contains("removed (this run had added them): NEWKEY"));
        let f = SopsFile::load(&path).unwrap();
        let now = f.decrypt(&ids).unwrap();
        assert_eq!(now.keys(), ["KOMODO_TITLE", "KOMODO_JWT_SECRET", "LATER"]);
        assert_eq!(now.get("KOMODO_JWT_SECRET").unwrap().expose(), "OLD-jwt");
        assert_eq!(now.get("KOMODO_TITLE").unwrap().expose(), "theirs");
        assert_eq!(f.recipients(), vec![r.clone()]);
        let bytes = std::fs::read(&path).unwrap();
        assert!(set_back(&path, &ids, &run).unwrap().is_none(), "a replay");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
}
