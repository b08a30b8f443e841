//! The test server at the byte level (framing, legacy hello, SASL error codes, bad input, test
//! controls), and pymongo 4.x as a second, independent client.

mod mongo_support;

use komodo_testcontainers::mongo::wire::{encode_query, encode_request, read_reply};
use mongo_support::*;
use mongodb::bson::{doc, spec::BinarySubtype, Binary, Document};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

async fn call(s: &mut TcpStream, cmd: Document) -> Document {
    s.write_all(&encode_request(7, &cmd)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), read_reply(s))
        .await
        .expect("reply in time")
        .expect("a reply")
}

/// True when the server closed the connection (EOF or reset) instead of replying.
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("the server neither replied nor closed"),
    }
}

fn header(len: i32, op: i32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [len, 1, 0, op] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let addr = server.addr();
    let mut keeper = connect(addr).await;
    let r = call(&mut keeper, doc! {"hello": 1, "$db": "admin"}).await;
    assert_eq!(r.get_bool("isWritablePrimary"), Ok(true));

    let mut bad_bson = header(16 + 4 + 1 + 8, 2013);
    bad_bson.extend_from_slice(&0u32.to_le_bytes());
    bad_bson.push(0);
    bad_bson.extend_from_slice(&[8, 0, 0, 0, 0x42, b'x', 0, 0]); // element type 0x42 does not exist
    let mut compressed = header(16 + 9, 2012);
    compressed.extend_from_slice(&[0; 9]);
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("oversize length", header(48_000_001, 2013)),
        ("negative length", header(-5, 2013)),
        ("unknown opcode", {
            let mut v = header(20, 2010);
            v.extend_from_slice(&[0; 4]);
            v
        }),
        ("bad BSON", bad_bson),
        ("OP_COMPRESSED", compressed),
        (
            "OP_QUERY for a non-hello command",
            encode_query(3, "admin", &doc! {"usersInfo": 1}),
        ),
    ];
    for (what, bytes) in inputs {
        let mut s = connect(addr).await;
        s.write_all(&bytes).await.unwrap();
        assert!(closed(&mut s).await, "{what}: connection should be closed");
        let r = call(&mut keeper, doc! {"ping": 1, "$db": "admin"}).await;
        assert_eq!(
            r.get_f64("ok"),
            Ok(1.0),
            "{what}: other connections keep working"
        );
    }
    // And the server still accepts new clients, driver included.
    let c = client(addr, "root", ROOT_PASSWORD, None).await;
    ping(&c).await.unwrap();
    c.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_and_sasl_errors_match_mongod() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let mut s = connect(server.addr()).await;

    // Legacy OP_QUERY isMaster gets an OP_REPLY with the standalone fields.
    s.write_all(&encode_query(
        1,
        "admin",
        &doc! {"isMaster": 1, "saslSupportedMechs": "admin.root"},
    ))
    .await
    .unwrap();
    let r = read_reply(&mut s).await.unwrap();
    assert_eq!(r.get_bool("ismaster"), Ok(true));
    assert_eq!(r.get_i32("maxWireVersion"), Ok(21));
    assert_eq!(r.get_i32("maxBsonObjectSize"), Ok(16 * 1024 * 1024));
    assert_eq!(r.get_i32("maxMessageSizeBytes"), Ok(48_000_000));
    let mechs = r.get_array("saslSupportedMechs").unwrap();
    assert_eq!(mechs.len(), 2, "{r}");
    for absent in ["setName", "compression", "msg"] {
        assert!(!r.contains_key(absent), "{absent} in {r}");
    }
    // mongod 4.4+: topologyVersion {processId: ObjectId, counter: Int64}.
    let tv = r.get_document("topologyVersion").expect("topologyVersion");
    assert!(tv.get_object_id("processId").is_ok(), "{r}");
    assert_eq!(tv.get_i64("counter"), Ok(0), "{r}");
    let r = call(
        &mut s,
        doc! {"isMaster": 1, "helloOk": true, "saslSupportedMechs": "admin.nobody", "$db": "admin"},
    )
    .await;
    assert!(
        !r.contains_key("saslSupportedMechs"),
        "unknown user: field omitted"
    );
    assert_eq!(r.get_bool("helloOk"), Ok(true));

    let code = |d: &Document| d.get_i32("code").unwrap_or(0);
    let r = call(&mut s, doc! {"ping": 1}).await;
    assert_eq!(code(&r), 40571, "{r}");
    let r = call(&mut s, doc! {"saslContinue": 1, "conversationId": 1, "payload": Binary { subtype: BinarySubtype::Generic, bytes: vec![] }, "$db": "admin"}).await;
    assert_eq!(code(&r), 17, "{r}");
    let payload = |b: &[u8]| Binary {
        subtype: BinarySubtype::Generic,
        bytes: b.to_vec(),
    };
    let r = call(&mut s, doc! {"saslStart": 1, "mechanism": "PLAIN", "payload": payload(b"\0root\0x"), "$db": "admin"}).await;
    assert_eq!(code(&r), 2, "{r}");
    let r = call(&mut s, doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": payload(b"n,,n=nobody,r=abcdefgh"), "$db": "admin"}).await;
    assert_eq!(
        (code(&r), r.get_str("errmsg")),
        (18, Ok("Authentication failed.")),
        "{r}"
    );
    let r = call(&mut s, doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": payload(b"n,,n=root,r=abcdefgh"), "options": {"skipEmptyExchange": true}, "$db": "admin"}).await;
    assert_eq!(r.get_i32("conversationId"), Ok(1), "{r}");
    assert_eq!(r.get_bool("done"), Ok(false));
    let first = String::from_utf8(r.get_binary_generic("payload").unwrap().clone()).unwrap();
    assert!(
        first.starts_with("r=abcdefgh") && first.contains(",s=") && first.ends_with(",i=15000"),
        "{first}"
    );
    let r = call(&mut s, doc! {"saslContinue": 1, "conversationId": 2, "payload": payload(b"c=biws"), "$db": "admin"}).await;
    assert_eq!(code(&r), 17, "{r}");
    // The proof of a wrong password: 18, and the conversation is gone.
    let r = call(&mut s, doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-1", "payload": payload(b"n,,n=root,r=abcdefgh"), "$db": "admin"}).await;
    let nonce = String::from_utf8(r.get_binary_generic("payload").unwrap().clone()).unwrap();
    let nonce = nonce.split(',').next().unwrap().to_owned();
    let fin = format!("c=biws,{nonce},p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let r = call(&mut s, doc! {"saslContinue": 1, "conversationId": 1, "payload": payload(fin.as_bytes()), "$db": "admin"}).await;
    assert_eq!(code(&r), 18, "{r}");
    let r = call(&mut s, doc! {"saslContinue": 1, "conversationId": 1, "payload": payload(fin.as_bytes()), "$db": "admin"}).await;
    assert_eq!(code(&r), 17, "{r}");
    let r = call(&mut s, doc! {"buildInfo": 1, "$db": "admin"}).await;
    assert_eq!(r.get_str("version"), Ok("7.0.14"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_to_come_requests_get_no_reply() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let mut s = connect(server.addr()).await;
    let mut silent = encode_request(1, &doc! {"ping": 1, "$db": "admin"});
    silent[16] |= 0b10; // moreToCome
    s.write_all(&silent).await.unwrap();
    let r = call(&mut s, doc! {"buildInfo": 1, "$db": "admin"}).await;
    assert!(
        r.contains_key("version"),
        "the next reply is buildInfo's, not ping's: {r}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_controls_switch_at_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), true).await;
    let addr = server.addr();
    let mut ctl = connect(addr).await;
    let r = call(
        &mut ctl,
        doc! {"komodoTestControl": 1, "delayMs": 300, "$db": "admin"},
    )
    .await;
    assert_eq!(r.get_i64("delayMs"), Ok(300), "{r}");
    let t = Instant::now();
    call(&mut ctl, doc! {"ping": 1, "$db": "admin"}).await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    let r = call(
        &mut ctl,
        doc! {"komodoTestControl": 1, "reset": true, "dropAfterCommands": 1, "$db": "admin"},
    )
    .await;
    assert_eq!(r.get_i64("delayMs"), Ok(0), "{r}");
    let mut victim = connect(addr).await;
    let r = call(&mut victim, doc! {"ping": 1, "$db": "admin"}).await;
    assert_eq!(r.get_f64("ok"), Ok(1.0));
    victim
        .write_all(&encode_request(2, &doc! {"ping": 1, "$db": "admin"}))
        .await
        .unwrap();
    assert!(
        closed(&mut victim).await,
        "the second command's connection is dropped"
    );
    // One shot: the next connection is served.
    let mut next = connect(addr).await;
    let r = call(&mut next, doc! {"ping": 1, "$db": "admin"}).await;
    assert_eq!(r.get_f64("ok"), Ok(1.0));
    let r = call(
        &mut ctl,
        doc! {"komodoTestControl": 1, "delayMs": "soon", "$db": "admin"},
    )
    .await;
    assert_eq!(r.get_i32("code"), Ok(2), "{r}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymongo_sees_mongod_replies_for_roles_indexes_and_hello() {
    if !pymongo_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/mongo_fidelity.py");
    let out = tokio::process::Command::new("python3")
        // The scripts check with `assert`, which PYTHONOPTIMIZE would strip.
        .env_remove("PYTHONOPTIMIZE")
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
        "pymongo fidelity script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("pymongo-fidelity-ok 4."), "{stdout}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymongo_authenticates_and_changes_the_password() {
    if !pymongo_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/mongo_auth.py");
    let port = server.addr().port().to_string();
    let out = tokio::process::Command::new("python3")
        // The scripts check with `assert`, which PYTHONOPTIMIZE would strip.
        .env_remove("PYTHONOPTIMIZE")
        .arg(script)
        .arg(&port)
        .env("MONGO_PW", ROOT_PASSWORD)
        .env("MONGO_NEW_PW", "pymongo-New-pw-42")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pymongo script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("pymongo-ok 4."), "{stdout}");
    // The change is real for the Rust driver too.
    let c = client(server.addr(), "root", "pymongo-New-pw-42", None).await;
    ping(&c).await.unwrap();
    c.shutdown().await;
    server.shutdown().await;
}
