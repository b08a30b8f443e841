//! The official `mongodb` driver (and the tool's MongoAdmin) against the wire-protocol test
//! server; with KOMODO_ROTATE_TEST_MONGO_IMAGE set, the driver-level scenarios also run against
//! a container of that real image on the local engine.

mod mongo_support;

use komodo_rotate::mongo::{login_works, LoginOutcome, MongoAdmin, MongoError, Target};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::mongo::{RootUser, Server, ServerConfig};
use mongo_support::*;
use mongodb::bson::{doc, Document};
use mongodb::options::AuthMechanism;
use std::net::SocketAddr;
use std::time::Duration;

const NEW_PASSWORD: &str = "second-Root-pw-ZYXWVUTSRQPONMLKJIHGFEDC";
const MECHS: [Option<AuthMechanism>; 3] = [
    None,
    Some(AuthMechanism::ScramSha1),
    Some(AuthMechanism::ScramSha256),
];

fn target(addr: SocketAddr) -> Target {
    Target::new(&uri(addr), "root")
        .unwrap()
        .with_timeout(Duration::from_secs(3))
}

async fn users_info(c: &mongodb::Client) -> Result<Document, mongodb::error::Error> {
    c.database("admin")
        .run_command(doc! {"usersInfo": "root"})
        .await
}

/// Right password: ok with each mechanism; wrong password or unknown user: code 18.
async fn scenario_login(addr: SocketAddr, password: &str) {
    for mech in MECHS {
        let c = client(addr, "root", password, mech.clone()).await;
        ping(&c).await.unwrap_or_else(|e| panic!("{mech:?}: {e}"));
        let info = users_info(&c).await.unwrap();
        let users = info.get_array("users").unwrap();
        assert_eq!(users.len(), 1, "{info}");
        c.shutdown().await;
        for (user, pw) in [("root", "not-the-password"), ("nobody", password)] {
            let c = client(addr, user, pw, mech.clone()).await;
            let e = ping(&c).await.expect_err("a bad login must fail");
            assert!(
                matches!(*e.kind, mongodb::error::ErrorKind::Authentication { .. }),
                "{mech:?} {user}: {e}"
            );
            assert_eq!(code_of(&e), Some(18), "{mech:?} {user}: {e}");
            c.shutdown().await;
        }
    }
}

/// updateUser changes the password; the already-authenticated connection keeps working; fresh
/// clients need the new password; then the old session changes it back (the undo path).
async fn scenario_update(addr: SocketAddr, password: &str) {
    let old = client(addr, "root", password, None).await;
    ping(&old).await.unwrap();
    old.database("admin")
        .run_command(
            doc! {"updateUser": "root", "pwd": NEW_PASSWORD, "writeConcern": {"w": "majority"}},
        )
        .await
        .unwrap();
    ping(&old)
        .await
        .expect("the old connection survives the change");
    users_info(&old)
        .await
        .expect("and still runs privileged commands");
    for mech in MECHS {
        let c = client(addr, "root", password, mech.clone()).await;
        assert_eq!(code_of(&ping(&c).await.unwrap_err()), Some(18), "{mech:?}");
        c.shutdown().await;
        let c = client(addr, "root", NEW_PASSWORD, mech.clone()).await;
        ping(&c).await.unwrap_or_else(|e| panic!("{mech:?}: {e}"));
        c.shutdown().await;
    }
    old.database("admin")
        .run_command(doc! {"updateUser": "root", "pwd": password})
        .await
        .unwrap();
    old.shutdown().await;
}

/// The tool's own client: login_works verdicts, change_password with its proof, undo.
async fn scenario_admin(addr: SocketAddr, password: &str) {
    let t = target(addr);
    let old = Secret::new(password.into());
    let new = Secret::new(NEW_PASSWORD.into());
    assert_eq!(login_works(&t, &old).await, LoginOutcome::Accepted);
    assert_eq!(login_works(&t, &new).await, LoginOutcome::Rejected);
    let admin = MongoAdmin::connect(&t, &old).await.unwrap();
    admin.change_password("root", &new).await.unwrap();
    assert_eq!(login_works(&t, &new).await, LoginOutcome::Accepted);
    assert_eq!(login_works(&t, &old).await, LoginOutcome::Rejected);
    // Undo over the session authenticated with the old password.
    admin.change_password("root", &old).await.unwrap();
    assert_eq!(login_works(&t, &old).await, LoginOutcome::Accepted);
    admin.close().await;
    match MongoAdmin::connect(&t, &new).await {
        Err(e @ MongoError::Rejected { .. }) => {
            assert!(!e.to_string().contains(NEW_PASSWORD));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Replies that must match mongod's for the same request: `hello`'s topologyVersion, an
/// unknown role (31, nothing created), `createIndexes` that really creates (listed by
/// `listIndexes`, idempotent, conflicts 85/86), listing a missing collection (26), and
/// `admin.system.users` readable as stored.
async fn scenario_fidelity(addr: SocketAddr, password: &str) {
    use mongodb::bson::{oid::ObjectId, Bson};
    use mongodb::options::IndexOptions;
    use mongodb::IndexModel;
    let c = client(addr, "root", password, None).await;
    let admin = c.database("admin");

    let hello = admin.run_command(doc! {"hello": 1}).await.unwrap();
    let tv = hello
        .get_document("topologyVersion")
        .expect("topologyVersion");
    let pid: ObjectId = tv
        .get_object_id("processId")
        .expect("processId is an ObjectId");
    assert!(matches!(tv.get("counter"), Some(Bson::Int64(_))), "{tv}");
    let other = client(addr, "root", password, None).await;
    let again = other
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .unwrap();
    assert_eq!(
        again
            .get_document("topologyVersion")
            .unwrap()
            .get_object_id("processId")
            .unwrap(),
        pid,
        "one process, one processId"
    );
    other.shutdown().await;

    for (db, roles) in [
        ("admin", doc! {"r": [{"role": "noSuchRole", "db": "admin"}]}),
        ("admin", doc! {"r": ["readWrite", "alsoNoSuchRole"]}),
        // root exists only on admin.
        ("fidelity", doc! {"r": ["root"]}),
    ] {
        let roles = roles.get_array("r").unwrap().clone();
        let e = c
            .database(db)
            .run_command(doc! {"createUser": "ghost", "pwd": "ghost-pw-1", "roles": roles.clone()})
            .await
            .unwrap_err();
        assert_eq!(code_of(&e), Some(31), "{db} {roles:?}: {e}");
        let e = c
            .database(db)
            .run_command(doc! {"updateUser": "root", "roles": roles.clone()})
            .await
            .unwrap_err();
        assert!(matches!(code_of(&e), Some(31 | 11)), "{db} {roles:?}: {e}");
        let info = c
            .database(db)
            .run_command(doc! {"usersInfo": "ghost"})
            .await
            .unwrap();
        assert!(
            info.get_array("users").unwrap().is_empty(),
            "nothing created: {info}"
        );
    }
    let root_roles = admin.run_command(doc! {"usersInfo": "root"}).await.unwrap();
    assert_eq!(
        root_roles.get_array("users").unwrap()[0]
            .as_document()
            .unwrap()
            .get_array("roles")
            .unwrap(),
        &vec![Bson::Document(doc! {"role": "root", "db": "admin"})],
        "a refused updateUser keeps the roles"
    );
    c.database("fidelity")
        .run_command(doc! {"createUser": "app", "pwd": "app-pw-1", "roles": ["readWrite", {"role": "read", "db": "admin"}]})
        .await
        .expect("built-in roles exist");
    c.database("fidelity")
        .run_command(doc! {"dropUser": "app"})
        .await
        .unwrap();

    let coll = c.database("fidelity").collection::<Document>("indexed");
    let name = coll
        .create_index(
            IndexModel::builder()
                .keys(doc! {"username": 1})
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .unwrap()
        .index_name;
    assert_eq!(name, "username_1");
    let listed = |c: &mongodb::Client| {
        let c = c.clone();
        async move {
            c.database("fidelity")
                .run_command(doc! {"listIndexes": "indexed"})
                .await
                .unwrap()
                .get_document("cursor")
                .unwrap()
                .get_array("firstBatch")
                .unwrap()
                .iter()
                .map(|i| i.as_document().unwrap().clone())
                .collect::<Vec<_>>()
        }
    };
    let ix = listed(&c).await;
    assert_eq!(ix.len(), 2, "{ix:?}");
    assert_eq!(ix[0].get_str("name").unwrap(), "_id_");
    assert_eq!(ix[1].get_str("name").unwrap(), "username_1");
    assert_eq!(ix[1].get_document("key").unwrap(), &doc! {"username": 1});
    assert_eq!(ix[1].get_bool("unique"), Ok(true));
    // The same index again: ok, nothing added.
    let r = c
        .database("fidelity")
        .run_command(doc! {"createIndexes": "indexed", "indexes": [{"key": {"username": 1}, "name": "username_1", "unique": true}]})
        .await
        .unwrap();
    assert_eq!(r.get_i32("numIndexesBefore"), Ok(2), "{r}");
    assert_eq!(r.get_i32("numIndexesAfter"), Ok(2), "{r}");
    // Same name, other key: 86; same key, other name: 85. Nothing added.
    for (spec, code) in [
        (doc! {"key": {"email": 1}, "name": "username_1"}, 86),
        (
            doc! {"key": {"username": 1}, "name": "by_user", "unique": true},
            85,
        ),
    ] {
        let e = c
            .database("fidelity")
            .run_command(doc! {"createIndexes": "indexed", "indexes": [spec.clone()]})
            .await
            .unwrap_err();
        assert_eq!(code_of(&e), Some(code), "{spec}: {e}");
    }
    assert_eq!(listed(&c).await.len(), 2);
    let names = c
        .database("fidelity")
        .list_collection_names()
        .await
        .unwrap();
    assert_eq!(names, vec!["indexed".to_string()]);
    assert!(c
        .list_database_names()
        .await
        .unwrap()
        .contains(&"fidelity".to_string()));
    let e = c
        .database("fidelity")
        .run_command(doc! {"listIndexes": "never-created"})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(26), "{e}");
    let e = c
        .database("fidelity")
        .run_command(doc! {"createIndexes": "indexed", "indexes": [{"key": {"a": 1}}]})
        .await
        .unwrap_err();
    assert!(
        code_of(&e).is_some(),
        "an index without a name is refused: {e}"
    );

    // admin.system.users holds the user as stored (credentials, never a password).
    let mut cur = admin
        .collection::<Document>("system.users")
        .find(doc! {"user": "root"})
        .await
        .unwrap();
    let mut found = Vec::new();
    while cur.advance().await.unwrap() {
        found.push(cur.deserialize_current().unwrap());
    }
    // Client::shutdown waits for every live cursor.
    drop(cur);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].get_str("_id").unwrap(), "admin.root");
    assert!(found[0]
        .get_document("credentials")
        .unwrap()
        .contains_key("SCRAM-SHA-256"));
    assert!(admin
        .list_collection_names()
        .await
        .unwrap()
        .contains(&"system.users".to_string()));
    coll.drop().await.ok();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_scenarios_against_the_test_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    scenario_login(server.addr(), ROOT_PASSWORD).await;
    scenario_update(server.addr(), ROOT_PASSWORD).await;
    scenario_admin(server.addr(), ROOT_PASSWORD).await;
    scenario_fidelity(server.addr(), ROOT_PASSWORD).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_scenarios_against_a_real_mongo_image_when_configured() {
    // Left out of nextest's default run (.config/nextest.toml, profile real-mongo runs it); a
    // set but unusable image fails below (MongoContainer::start panics).
    let Some(image) = real_mongo_image() else {
        eprintln!("SKIP driver_scenarios: KOMODO_ROTATE_TEST_MONGO_IMAGE is unset; nothing ran");
        return;
    };
    let volume = format!("komodo-rotate-test-mongo-{}", std::process::id());
    remove_volume(&volume);
    let c = MongoContainer::start(&image, &volume, ROOT_PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    scenario_login(c.addr, ROOT_PASSWORD).await;
    scenario_update(c.addr, ROOT_PASSWORD).await;
    scenario_admin(c.addr, ROOT_PASSWORD).await;
    scenario_fidelity(c.addr, ROOT_PASSWORD).await;
    c.stop();
    // The incident's drift: the same volume with a different init password keeps the first.
    let c = MongoContainer::start(&image, &volume, NEW_PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let t = target(c.addr);
    assert_eq!(
        login_works(&t, &Secret::new(ROOT_PASSWORD.into())).await,
        LoginOutcome::Accepted
    );
    assert_eq!(
        login_works(&t, &Secret::new(NEW_PASSWORD.into())).await,
        LoginOutcome::Rejected
    );
    c.stop();
    remove_volume(&volume);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_dir_keeps_the_first_password() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), false).await;
    assert!(first.initialised);
    let addr = first.addr();
    let t = target(addr);
    assert_eq!(
        login_works(&t, &Secret::new(ROOT_PASSWORD.into())).await,
        LoginOutcome::Accepted
    );
    first.shutdown().await;

    let mut cfg = ServerConfig::new(dir.path()).root(RootUser::new("root", NEW_PASSWORD));
    cfg.bind = addr;
    let second = Server::start(cfg).await.unwrap();
    assert!(!second.initialised, "an existing store must be kept");
    assert_eq!(
        login_works(&t, &Secret::new(ROOT_PASSWORD.into())).await,
        LoginOutcome::Accepted
    );
    assert_eq!(
        login_works(&t, &Secret::new(NEW_PASSWORD.into())).await,
        LoginOutcome::Rejected
    );
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_holds_mongod_credentials_never_the_password() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let c = client(server.addr(), "root", ROOT_PASSWORD, None).await;
    c.database("admin")
        .run_command(doc! {"updateUser": "root", "pwd": NEW_PASSWORD})
        .await
        .unwrap();
    let path = dir.path().join("admin.system.users.bson");
    let bytes = std::fs::read(&path).unwrap();
    for pw in [ROOT_PASSWORD, NEW_PASSWORD] {
        assert!(
            !bytes.windows(pw.len()).any(|w| w == pw.as_bytes()),
            "plaintext password in the store"
        );
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let info = c
        .database("admin")
        .run_command(doc! {"usersInfo": {"user": "root", "db": "admin"}, "showCredentials": true})
        .await
        .unwrap();
    let user = info.get_array("users").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(user.get_str("_id").unwrap(), "admin.root");
    let roles = user.get_array("roles").unwrap();
    assert_eq!(
        roles[0].as_document().unwrap(),
        &doc! {"role": "root", "db": "admin"}
    );
    let creds = user.get_document("credentials").unwrap();
    for (mech, count, salt_b64_len, key_b64_len) in [
        ("SCRAM-SHA-1", 10_000, 24, 28),
        ("SCRAM-SHA-256", 15_000, 40, 44),
    ] {
        let m = creds.get_document(mech).unwrap();
        assert_eq!(m.get_i32("iterationCount").unwrap(), count);
        assert_eq!(m.get_str("salt").unwrap().len(), salt_b64_len, "{mech}");
        assert_eq!(m.get_str("storedKey").unwrap().len(), key_b64_len, "{mech}");
        assert_eq!(m.get_str("serverKey").unwrap().len(), key_b64_len, "{mech}");
    }
    c.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_unknown_commands_get_mongod_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let anon = anonymous(server.addr()).await;
    ping(&anon).await.expect("ping needs no authentication");
    for cmd in [
        doc! {"usersInfo": 1},
        doc! {"updateUser": "root", "pwd": "x"},
        doc! {"listDatabases": 1},
    ] {
        let e = anon
            .database("admin")
            .run_command(cmd.clone())
            .await
            .unwrap_err();
        assert_eq!(code_of(&e), Some(13), "{cmd}: {e}");
    }
    let e = anon
        .database("admin")
        .run_command(doc! {"fooBar": 1})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(59), "{e}");
    let status = anon
        .database("admin")
        .run_command(doc! {"connectionStatus": 1})
        .await
        .unwrap();
    assert!(status
        .get_document("authInfo")
        .unwrap()
        .get_array("authenticatedUsers")
        .unwrap()
        .is_empty());
    // Test controls are off by default: the command does not exist.
    let e = anon
        .database("admin")
        .run_command(doc! {"komodoTestControl": 1, "failNextUpdateUser": true})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(59), "{e}");
    anon.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_management_follows_mongod() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let addr = server.addr();
    let root = client(addr, "root", ROOT_PASSWORD, None).await;
    let admin = root.database("admin");
    admin
        .run_command(doc! {"createUser": "app", "pwd": "app-pw-1", "roles": ["readWrite"]})
        .await
        .unwrap();
    let dup = admin
        .run_command(doc! {"createUser": "app", "pwd": "x", "roles": []})
        .await
        .unwrap_err();
    assert_eq!(code_of(&dup), Some(51003));
    let e = admin
        .run_command(doc! {"createUser": "noroles", "pwd": "x"})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(40414));
    let e = admin
        .run_command(doc! {"createUser": "m", "pwd": "x", "roles": [], "mechanisms": []})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(2));
    let e = admin
        .run_command(doc! {"updateUser": "ghost", "pwd": "x"})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(11));
    let e = admin
        .run_command(doc! {"updateUser": "app"})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(2));

    // A user without user-admin roles may log in but not manage users.
    let app = client(addr, "app", "app-pw-1", None).await;
    ping(&app).await.unwrap();
    app.database("admin")
        .run_command(doc! {"listDatabases": 1})
        .await
        .unwrap();
    let e = app
        .database("admin")
        .run_command(doc! {"updateUser": "root", "pwd": "stolen"})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(13));

    // mechanisms without pwd keeps a subset; SHA-256 then fails with code 18.
    admin
        .run_command(doc! {"updateUser": "app", "mechanisms": ["SCRAM-SHA-1"]})
        .await
        .unwrap();
    let only256 = client(addr, "app", "app-pw-1", Some(AuthMechanism::ScramSha256)).await;
    assert_eq!(code_of(&ping(&only256).await.unwrap_err()), Some(18));
    let sha1 = client(addr, "app", "app-pw-1", Some(AuthMechanism::ScramSha1)).await;
    ping(&sha1).await.unwrap();
    let e = admin
        .run_command(doc! {"updateUser": "app", "mechanisms": ["SCRAM-SHA-256"]})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(2));

    // dropUser de-authenticates the dropped user's live connections.
    admin.run_command(doc! {"dropUser": "app"}).await.unwrap();
    let e = app
        .database("admin")
        .run_command(doc! {"listDatabases": 1})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(13));
    let e = admin
        .run_command(doc! {"dropUser": "app"})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(11));

    // SASLprep (auth spec): user Ⅸ with password Ⅳ logs in as "IV" and "I\u{AD}V".
    admin
        .run_command(doc! {"createUser": "\u{2168}", "pwd": "\u{2163}", "roles": [], "mechanisms": ["SCRAM-SHA-256"]})
        .await
        .unwrap();
    for pw in ["IV", "I\u{00AD}V", "\u{2163}"] {
        let c = client(addr, "\u{2168}", pw, Some(AuthMechanism::ScramSha256)).await;
        ping(&c).await.unwrap_or_else(|e| panic!("{pw:?}: {e}"));
        c.shutdown().await;
    }
    for c in [app, only256, sha1, root] {
        c.shutdown().await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_update_user_failure_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), true).await;
    let t = target(server.addr());
    let old = Secret::new(ROOT_PASSWORD.into());
    let new = Secret::new(NEW_PASSWORD.into());
    let admin = MongoAdmin::connect(&t, &old).await.unwrap();
    let r = admin
        .run_admin_command(doc! {"komodoTestControl": 1, "failNextUpdateUser": true})
        .await
        .unwrap();
    assert_eq!(r.get_i32("failNextUpdateUser").unwrap(), 91);
    match admin.change_password("root", &new).await {
        Err(e @ MongoError::Command { code: Some(91), .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("updateUser") && msg.contains("root"), "{msg}");
            assert!(
                !msg.contains(NEW_PASSWORD) && !msg.contains(ROOT_PASSWORD),
                "{msg}"
            );
        }
        other => panic!("expected the injected failure, got {other:?}"),
    }
    assert_eq!(login_works(&t, &old).await, LoginOutcome::Accepted);
    assert_eq!(login_works(&t, &new).await, LoginOutcome::Rejected);
    // One shot: the next attempt goes through.
    admin.change_password("root", &new).await.unwrap();
    assert_eq!(login_works(&t, &new).await, LoginOutcome::Accepted);
    admin.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_not_a_rejection() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let t = Target::new(&uri(port), "root")
        .unwrap()
        .with_timeout(Duration::from_millis(800));
    let started = std::time::Instant::now();
    match login_works(&t, &Secret::new(ROOT_PASSWORD.into())).await {
        LoginOutcome::Unreachable(reason) => {
            assert!(!reason.contains(ROOT_PASSWORD), "{reason}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout is honoured"
    );
}

/// What the test server does not implement is refused with 238 NotImplemented (never accepted
/// and dropped), and the indexes it created survive a restart, as mongod's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unimplemented_options_are_refused_and_indexes_persist() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let addr = server.addr();
    let c = client(addr, "root", ROOT_PASSWORD, None).await;
    let admin = c.database("admin");
    for cmd in [
        doc! {"createUser": "r", "pwd": "r-pw-1", "roles": [], "authenticationRestrictions": [{"clientSource": ["127.0.0.1"]}]},
        doc! {"updateUser": "root", "authenticationRestrictions": []},
        doc! {"usersInfo": 1, "filter": {"user": "root"}},
        doc! {"usersInfo": 1, "showPrivileges": true},
        doc! {"connectionStatus": 1, "showPrivileges": true},
        doc! {"find": "system.users", "hint": {"user": 1}},
        doc! {"find": "system.users", "filter": {"roles": {"$elemMatch": {"db": "admin"}}}},
        doc! {"find": "system.users", "projection": {"roles": {"$slice": 1}}},
        doc! {"listCollections": 1, "filter": {"$where": "true"}},
        doc! {"aggregate": "system.users", "pipeline": [{"$lookup": {}}], "cursor": {}},
        doc! {"findAndModify": "system.users", "query": {}},
    ] {
        let e = admin.run_command(cmd.clone()).await.unwrap_err();
        assert_eq!(code_of(&e), Some(238), "{cmd}: {e}");
    }
    // Sort and filter operators are evaluated now (issue 20): answered, not refused.
    for cmd in [
        doc! {"find": "system.users", "sort": {"user": 1}},
        doc! {"find": "system.users", "filter": {"user": {"$ne": "x"}}},
        doc! {"listCollections": 1, "filter": {"name": {"$regex": "^system\\.u"}}},
    ] {
        let r = admin.run_command(cmd.clone()).await.unwrap();
        let batch = r
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap();
        assert_eq!(batch.len(), 1, "{cmd}: {r}");
    }
    let info = admin.run_command(doc! {"usersInfo": "r"}).await.unwrap();
    assert!(info.get_array("users").unwrap().is_empty(), "{info}");
    c.database("komodo")
        .run_command(
            doc! {"createIndexes": "Server", "indexes": [{"key": {"name": 1}, "name": "name_1"}]},
        )
        .await
        .unwrap();
    c.shutdown().await;
    server.shutdown().await;

    let mut cfg = ServerConfig::new(dir.path());
    cfg.bind = addr;
    let again = Server::start(cfg).await.unwrap();
    let c = client(addr, "root", ROOT_PASSWORD, None).await;
    let r = c
        .database("komodo")
        .run_command(doc! {"listIndexes": "Server"})
        .await
        .unwrap();
    let batch = r
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    let names: Vec<&str> = batch
        .iter()
        .map(|i| i.as_document().unwrap().get_str("name").unwrap())
        .collect();
    assert_eq!(names, ["_id_", "name_1"]);
    c.shutdown().await;
    again.shutdown().await;
}
