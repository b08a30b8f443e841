//! `komodo-rotate mongo check` through the built binary: exit 0 accepted, 1 rejected,
//! 3 unreachable, 2 bad usage; the password (stdin only) never appears in its output.

mod mongo_support;

use mongo_support::*;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

async fn check(uri: &str, user: &str, stdin: &str) -> (i32, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_komodo-rotate"))
        .args(["mongo", "check", "--uri", uri, "--user", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A usage error exits before reading stdin: a broken pipe here is expected then.
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_follow_the_login_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let u = uri(server.addr());

    let (code, out) = check(&u, "root", &format!("{ROOT_PASSWORD}\n")).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("accepts"), "{out}");

    let wrong = "Wrong-password-in-stdin-0042";
    let (code, out) = check(&u, "root", wrong).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rejected") && out.contains("code 18"), "{out}");
    // Only one trailing newline is stripped: a second one is part of the password, which then
    // cannot even be SASLprepped for SCRAM-SHA-256 (no verdict, not a login).
    let (code, out) = check(&u, "root", &format!("{ROOT_PASSWORD}\n\n")).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("saslprep"), "{out}");
    let (code, out) = check(&u, "nobody", ROOT_PASSWORD).await;
    assert_eq!(code, 1, "{out}");

    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, out) = check(&uri(free), "root", ROOT_PASSWORD).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("could not be reached"), "{out}");

    let (code, out) = check(
        &format!("mongodb://root:{ROOT_PASSWORD}@{}/", server.addr()),
        "root",
        ROOT_PASSWORD,
    )
    .await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("must not carry credentials"), "{out}");
    let (code, out) = check(&u, "root", "").await;
    assert_eq!(code, 2, "{out}");

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_never_holds_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false).await;
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for (uri, pw) in [
        (uri(server.addr()), ROOT_PASSWORD),
        (uri(server.addr()), "Another-wrong-password-77"),
        (uri(free), ROOT_PASSWORD),
        (
            format!("mongodb://root:{ROOT_PASSWORD}@{}/", server.addr()),
            ROOT_PASSWORD,
        ),
    ] {
        let (_, out) = check(&uri, "root", pw).await;
        assert!(!out.contains(pw), "password leaked: {out}");
        assert!(!out.contains(ROOT_PASSWORD), "password leaked: {out}");
        assert_eq!(out.trim_end().lines().count(), 1, "one line: {out}");
    }
    server.shutdown().await;
}
