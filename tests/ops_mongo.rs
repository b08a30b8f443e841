//! Issue 24 item 8 against the wire-protocol test server: `updateUser` cannot hold a run (and
//! its lock) forever (a server that stops answering, as a majority that never acknowledges looks
//! to the client, ends in an error at the target's command deadline), and a `[mongo] uri` with
//! `authSource=`/`authMechanism=` logs in where the URI says, not in `admin`.

mod mongo_support;

use komodo_rotate::mongo::{login_works, LoginOutcome, MongoAdmin, MongoError, Target};
use komodo_rotate::secret::Secret;
use mongo_support::*;
use mongodb::bson::doc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_user_gives_up_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), true).await;
    let t = Target::new(&uri(server.addr()), "root")
        .unwrap()
        .with_timeout(Duration::from_secs(10))
        .with_command_timeout(Duration::from_secs(1));
    let old = Secret::new(ROOT_PASSWORD.into());
    let admin = MongoAdmin::connect(&t, &old).await.unwrap();
    admin
        .run_admin_command(doc! {"komodoTestControl": 1, "delayMs": 8000})
        .await
        .unwrap();
    let started = Instant::now();
    let r = admin
        .update_password("root", &Secret::new("never-Applied-pw-0123456789".into()))
        .await;
    let took = started.elapsed();
    match r {
        Err(e @ MongoError::Command { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("updateUser") && m.contains("no answer within"),
                "{m}"
            );
            assert!(!m.contains("never-Applied"), "{m}");
        }
        other => panic!("expected the deadline, got {other:?} after {took:?}"),
    }
    assert!(took < Duration::from_secs(4), "{took:?}");
    drop(admin);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_of_another_database_logs_in_through_the_uris_auth_source() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let addr = server.addr();
    let root = client(addr, "root", ROOT_PASSWORD, None).await;
    root.database("komodo")
        .run_command(doc! {"createUser": "komodo", "pwd": "komodo-Pw-1", "roles": [{"role": "dbOwner", "db": "komodo"}]})
        .await
        .unwrap();
    root.shutdown().await;
    let pw = Secret::new("komodo-Pw-1".into());
    for opts in [
        "&authSource=komodo",
        "&authSource=komodo&authMechanism=SCRAM-SHA-256",
    ] {
        // As the config hands it over: auth_source at its default.
        let t = Target::new(&format!("{}{opts}", uri(addr)), "komodo")
            .unwrap()
            .with_auth_source("admin")
            .with_timeout(Duration::from_secs(3));
        assert_eq!(login_works(&t, &pw).await, LoginOutcome::Accepted, "{opts}");
    }
    let t = Target::new(&format!("{}&authSource=komodo", uri(addr)), "komodo")
        .unwrap()
        .with_auth_source("admin")
        .with_timeout(Duration::from_secs(3));
    let admin = MongoAdmin::connect(&t, &pw).await.unwrap();
    let new = Secret::new("komodo-Pw-2".into());
    admin.change_password("komodo", &new).await.unwrap();
    admin.close().await;
    assert_eq!(login_works(&t, &new).await, LoginOutcome::Accepted);
    assert_eq!(login_works(&t, &pw).await, LoginOutcome::Rejected);
    server.shutdown().await;
}
