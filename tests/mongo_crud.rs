//! CRUD on the wire-protocol test server through the official Rust driver, as a Komodo core uses
//! it (issue 20 item 2): the driver calls core makes at startup, in its order, on a fresh and on
//! an existing data directory; every write read back by a fresh client and after a restart
//! (the store never claims a success it did not make); mongod's error codes; and pymongo's view
//! of the same commands (tests/py/mongo_crud.py).

mod mongo_support;

use komodo_testcontainers::mongo::{RootUser, Server, ServerConfig};
use mongo_support::*;
use mongodb::bson::{doc, oid::ObjectId, Bson, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};

const DB: &str = "komodo";

/// Every document of a cursor (what mungos' `find_collect` does), without a stream crate.
async fn all(mut cur: mongodb::Cursor<Document>) -> Vec<Document> {
    let mut out = Vec::new();
    while cur.advance().await.unwrap() {
        out.push(cur.deserialize_current().unwrap());
    }
    out
}

async fn index(c: &Collection<Document>, key: Document, unique: bool, sparse: bool) {
    let opts = IndexOptions::builder()
        .unique(unique.then_some(true))
        .sparse(sparse.then_some(true))
        .build();
    c.create_index(IndexModel::builder().keys(key).options(opts).build())
        .await
        .unwrap_or_else(|e| panic!("createIndexes on {}: {e}", c.name()));
}

/// `database::Client::new`: the indexes core creates on every start, collection by collection.
async fn core_indexes(db: &Database) {
    let users = db.collection::<Document>("User");
    index(&users, doc! {"username": 1}, true, false).await;
    index(&users, doc! {"enabled": 1}, false, false).await;
    index(&users, doc! {"config.type": 1}, false, false).await;
    index(&users, doc! {"config.data.google_id": 1}, false, true).await;
    index(&users, doc! {"config.data.github_id": 1}, false, true).await;
    let api_keys = db.collection::<Document>("ApiKey");
    index(&api_keys, doc! {"key": 1}, true, false).await;
    index(&api_keys, doc! {"user_id": 1}, false, false).await;
    index(&db.collection("Variable"), doc! {"name": 1}, true, false).await;
    index(
        &db.collection("Update"),
        doc! {"target.id": 1},
        false,
        false,
    )
    .await;
    index(
        &db.collection("Update"),
        doc! {"start_ts": -1},
        false,
        false,
    )
    .await;
    index(&db.collection("Alert"), doc! {"resolved": 1}, false, false).await;
    index(&db.collection("Stats"), doc! {"ts": 1}, false, false).await;
    for resource in ["Server", "Builder", "Procedure", "Tag"] {
        let c = db.collection::<Document>(resource);
        index(&c, doc! {"name": 1}, true, false).await;
        if resource != "Tag" {
            index(&c, doc! {"tags": 1}, false, false).await;
        }
    }
}

/// `on_startup()` as core 2.3.2 runs it (its joined tasks in source order), then a monitoring
/// tick. Returns whether this start created the first server and the init admin.
async fn core_on_startup(db: &Database) -> bool {
    let updates = db.collection::<Document>("Update");
    let log = doc! {"stage": "Komodo shutdown", "success": false};
    updates
        .update_many(
            doc! {"status": "InProgress"},
            doc! {"$set": {"status": "Complete", "success": false}, "$push": {"logs": log}},
        )
        .await
        .unwrap();
    let alerts = db.collection::<Document>("Alert");
    let open = all(alerts.find(doc! {"resolved": false}).await.unwrap()).await;
    let ids: Vec<Bson> = open.iter().filter_map(|a| a.get("_id").cloned()).collect();
    alerts
        .update_many(
            doc! {"_id": {"$in": ids}},
            doc! {"$set": {"resolved": true, "resolved_ts": 1i64}},
        )
        .await
        .unwrap();
    db.collection::<Document>("ApiKey")
        .delete_many(doc! {"user_id": "000000000000000000000002"})
        .await
        .unwrap();
    let servers = db.collection::<Document>("Server");
    let first = servers.find_one(doc! {}).await.unwrap().is_none();
    if first {
        let id = servers
            .insert_one(doc! {"name": "Local", "tags": [], "config": {"enabled": true, "passkey": ""}, "info": {"public_key": ""}})
            .await
            .unwrap()
            .inserted_id;
        servers
            .update_one(doc! {"_id": &id}, doc! {"$set": {"info.public_key": "pk"}})
            .await
            .unwrap();
        let builders = db.collection::<Document>("Builder");
        assert!(builders.find_one(doc! {}).await.unwrap().is_none());
        builders
            .insert_one(doc! {"name": "Local", "tags": [], "config": {"type": "Server", "params": {"server_ids": [id]}}})
            .await
            .unwrap();
    }
    let users = db.collection::<Document>("User");
    let (procedures, tags) = (
        db.collection::<Document>("Procedure"),
        db.collection::<Document>("Tag"),
    );
    let (user, procedure, tag) = tokio::try_join!(
        users.find_one(doc! {}),
        procedures.find_one(doc! {}),
        tags.find_one(doc! {}),
    )
    .unwrap();
    let fresh = user.is_none();
    if fresh {
        // sign_up_local_user: no user yet, so this one becomes an enabled admin.
        assert_eq!(users.count_documents(doc! {}).await.unwrap(), 0);
        users
            .insert_one(
                doc! {"username": "admin", "enabled": true, "admin": true, "super_admin": true,
                "config": {"type": "Local", "data": {"password": "$2b$10$hash"}}},
            )
            .await
            .unwrap();
        assert!(users
            .find_one(doc! {"username": "admin"})
            .await
            .unwrap()
            .is_some());
    }
    if procedure.is_none() && tag.is_none() {
        let tag = db
            .collection::<Document>("Tag")
            .insert_one(doc! {"name": "system", "color": "Red"})
            .await
            .unwrap()
            .inserted_id;
        for (name, schedule) in [
            ("Backup Core Database", "Every day at 01:00"),
            ("Global Auto Update", "Every day at 03:00"),
            ("Rotate Server Keys", "Every day at 06:00"),
        ] {
            let p = db.collection::<Document>("Procedure");
            p.insert_one(doc! {"name": name, "tags": [], "config": {"schedule": schedule}})
                .await
                .unwrap();
            p.update_one(doc! {"name": name}, doc! {"$addToSet": {"tags": &tag}})
                .await
                .unwrap();
            updates
                .insert_one(doc! {"operation": "CreateProcedure", "status": "Complete", "start_ts": 1i64, "logs": []})
                .await
                .unwrap();
        }
    }
    // A monitoring tick: stats in, the newest updates and a server listing back.
    db.collection::<Document>("Stats")
        .insert_many([doc! {"ts": 1i64, "sid": "a"}, doc! {"ts": 2i64, "sid": "a"}])
        .await
        .unwrap();
    let newest = all(updates
        .find(doc! {})
        .sort(doc! {"start_ts": -1})
        .limit(10)
        .projection(doc! {"logs": 0})
        .await
        .unwrap())
    .await;
    assert!(newest.iter().all(|u| !u.contains_key("logs")));
    servers.estimated_document_count().await.unwrap();
    fresh && first
}

async fn start_at(dir: &std::path::Path) -> Server {
    Server::start(ServerConfig::new(dir).root(RootUser::new("root", ROOT_PASSWORD)))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_startup_calls_in_order_succeed_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_at(dir.path()).await;
    let c = client(server.addr(), "root", ROOT_PASSWORD, None).await;
    let db = c.database(DB);
    core_indexes(&db).await;
    assert!(
        core_on_startup(&db).await,
        "a fresh store makes the first server and admin"
    );
    c.shutdown().await;
    server.shutdown().await;

    // A restart on the same data: the writes are there, and a second start changes nothing it
    // should not (indexes idempotent, no second admin or server).
    let server = start_at(dir.path()).await;
    let c = client(server.addr(), "root", ROOT_PASSWORD, None).await;
    let db = c.database(DB);
    core_indexes(&db).await;
    assert!(
        !core_on_startup(&db).await,
        "an existing store keeps its admin"
    );
    let count = |name: &str| {
        let coll = db.collection::<Document>(name);
        async move { coll.count_documents(doc! {}).await.unwrap() }
    };
    assert_eq!(count("User").await, 1);
    assert_eq!(count("Server").await, 1);
    assert_eq!(count("Procedure").await, 3);
    assert_eq!(count("Stats").await, 4);
    let server_doc = db
        .collection::<Document>("Server")
        .find_one(doc! {"name": "Local"})
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(server_doc.get("_id"), Some(Bson::ObjectId(_))));
    assert_eq!(
        server_doc
            .get_document("info")
            .unwrap()
            .get_str("public_key"),
        Ok("pk")
    );
    let p = db
        .collection::<Document>("Procedure")
        .find_one(doc! {"name": "Rotate Server Keys"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.get_array("tags").unwrap().len(), 1);
    // A second admin cannot appear: the unique index says 11000 and nothing is stored.
    let e = db
        .collection::<Document>("User")
        .insert_one(doc! {"username": "admin"})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e).or(write_code(&e)), Some(11000), "{e}");
    assert_eq!(count("User").await, 1);
    c.shutdown().await;
    server.shutdown().await;
}

/// The code of a write error (the driver keeps it apart from command errors).
fn write_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            Some(w.code)
        }
        mongodb::error::ErrorKind::InsertMany(m) => {
            m.write_errors.as_ref()?.first().map(|w| w.code)
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_crud_matches_mongod_and_refuses_what_it_leaves_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_at(dir.path()).await;
    let c = client(server.addr(), "root", ROOT_PASSWORD, None).await;
    let coll = c.database("crud").collection::<Document>("Server");
    index(&coll, doc! {"name": 1}, true, false).await;
    let id = ObjectId::new();
    coll.insert_one(doc! {"_id": id, "name": "a", "n": 1, "tags": ["x"]})
        .await
        .unwrap();
    coll.insert_one(doc! {"name": "b", "n": 2}).await.unwrap();
    // Upsert by equality, then multi.
    let r = coll
        .update_one(doc! {"name": "c"}, doc! {"$inc": {"n": 3}})
        .upsert(true)
        .await
        .unwrap();
    assert_eq!((r.matched_count, r.modified_count), (0, 0));
    assert!(r.upserted_id.is_some());
    let r = coll
        .update_many(doc! {"n": {"$gte": 2}}, doc! {"$set": {"big": true}})
        .await
        .unwrap();
    assert_eq!((r.matched_count, r.modified_count), (2, 2));
    let names: Vec<String> = all(coll
        .find(doc! {"big": true})
        .sort(doc! {"name": -1})
        .skip(1)
        .await
        .unwrap())
    .await
    .into_iter()
    .map(|d| d.get_str("name").unwrap().to_owned())
    .collect();
    assert_eq!(names, ["b"]);
    assert_eq!(coll.count_documents(doc! {"tags": "x"}).await.unwrap(), 1);
    assert_eq!(coll.estimated_document_count().await.unwrap(), 3);
    // Errors: duplicate key, immutable _id, an unsupported operator (238), an unknown one (2).
    let e = coll
        .update_one(doc! {"name": "b"}, doc! {"$set": {"name": "a"}})
        .await
        .unwrap_err();
    assert_eq!(write_code(&e), Some(11000), "{e}");
    let e = coll
        .update_one(doc! {"name": "b"}, doc! {"$set": {"_id": 1}})
        .await
        .unwrap_err();
    assert_eq!(write_code(&e), Some(66), "{e}");
    let e = coll
        .find_one(doc! {"tags": {"$elemMatch": {"$eq": "x"}}})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(238), "{e}");
    let e = coll.find_one(doc! {"n": {"$nope": 1}}).await.unwrap_err();
    assert_eq!(code_of(&e), Some(2), "{e}");
    let e = coll
        .find_one_and_update(doc! {"name": "a"}, doc! {"$set": {"n": 5}})
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(238), "{e}");
    // Delete one of two matches, then the rest.
    assert_eq!(
        coll.delete_one(doc! {"big": true})
            .await
            .unwrap()
            .deleted_count,
        1
    );
    assert_eq!(coll.delete_many(doc! {}).await.unwrap().deleted_count, 2);
    // What a fresh client reads is what the replies said.
    let fresh = client(server.addr(), "root", ROOT_PASSWORD, None).await;
    assert_eq!(
        fresh
            .database("crud")
            .collection::<Document>("Server")
            .count_documents(doc! {})
            .await
            .unwrap(),
        0
    );
    fresh.shutdown().await;
    c.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymongo_crud_as_mongod() {
    if !pymongo_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/mongo_crud.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(server.addr().port().to_string())
        .env("MONGO_PW", ROOT_PASSWORD)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pymongo crud script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("pymongo-crud-ok 4."), "{stdout}");
    server.shutdown().await;
}

/// Whether pymongo can run here (a missing one fails the test under CI=true).
fn pymongo_available() -> bool {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import pymongo; print(pymongo.version)"])
        .output();
    match probe {
        Ok(o) if o.status.success() => true,
        Ok(o) => !tool_missing("pymongo", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => !tool_missing("python3", &e.to_string()),
    }
}
