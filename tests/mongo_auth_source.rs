//! `[mongo] auth_source` other than `admin`: a user defined in the `komodo` database has its
//! password changed there (updateUser) and proven there (the fresh login), against the
//! wire-protocol test server, which keeps users per database as mongod does.

mod mongo_support;

use komodo_rotate::mongo::{login_works, LoginOutcome, MongoAdmin, Target};
use komodo_rotate::secret::Secret;
use mongo_support::*;
use mongodb::bson::doc;
use std::time::Duration;

const APP_OLD: &str = "app-old-pw-0123456789abcdefghijklmnopq";
const APP_NEW: &str = "app-new-pw-ZYXWVUTSRQPONMLKJIHGFEDCBA";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_password_uses_the_configured_auth_source() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let addr = server.addr();
    let root = client(addr, "root", ROOT_PASSWORD, None).await;
    root.database("komodo")
        .run_command(doc! {
            "createUser": "komodo",
            "pwd": APP_OLD,
            "roles": [{"role": "dbOwner", "db": "komodo"}],
        })
        .await
        .unwrap();
    root.shutdown().await;

    let t = Target::new(&uri(addr), "komodo")
        .unwrap()
        .with_auth_source("komodo")
        .with_timeout(Duration::from_secs(3));
    let (old, new) = (Secret::new(APP_OLD.into()), Secret::new(APP_NEW.into()));
    assert_eq!(login_works(&t, &old).await, LoginOutcome::Accepted);
    // Sanity: the same user does not exist in admin, so an admin-bound change would fail.
    let in_admin = Target::new(&uri(addr), "komodo")
        .unwrap()
        .with_timeout(Duration::from_secs(3));
    assert_eq!(login_works(&in_admin, &old).await, LoginOutcome::Rejected);

    let admin = MongoAdmin::connect(&t, &old).await.unwrap();
    admin
        .change_password("komodo", &new)
        .await
        .expect("updateUser and its proof run on the auth source");
    admin.close().await;
    assert_eq!(login_works(&t, &new).await, LoginOutcome::Accepted);
    assert_eq!(login_works(&t, &old).await, LoginOutcome::Rejected);

    // The undo path: a session opened with NEW changes it back, also on the auth source.
    let admin = MongoAdmin::connect(&t, &new).await.unwrap();
    admin.change_password("komodo", &old).await.unwrap();
    admin.close().await;
    assert_eq!(login_works(&t, &old).await, LoginOutcome::Accepted);
    server.shutdown().await;
}
