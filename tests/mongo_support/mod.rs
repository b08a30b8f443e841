//! Shared by the tests/mongo_*.rs binaries: start the wire-protocol test server, build driver
//! clients with explicit credentials, and (when KOMODO_ROTATE_TEST_MONGO_IMAGE is set) run a
//! real mongo image on the local engine.
#![allow(dead_code)]

// One file, included by each support module a test binary may combine.
#[allow(clippy::duplicate_mod)]
#[path = "../common/ci.rs"]
pub mod ci;

use komodo_testcontainers::mongo::{RootUser, Server, ServerConfig};
use mongodb::bson::doc;
use mongodb::options::{AuthMechanism, ClientOptions, Credential};
use mongodb::Client;
use std::net::SocketAddr;
use std::time::Duration;

pub const ROOT_PASSWORD: &str = "first-Root-pw-0123456789abcdefghijklmn";

pub async fn start(dir: &std::path::Path, controls: bool) -> Server {
    let mut cfg = ServerConfig::new(dir)
        .root(RootUser::new("root", ROOT_PASSWORD))
        .test_controls(controls);
    // KOMODO_ROTATE_TEST_MONGO_LOG=1: the server's connection and command log on stderr.
    cfg.log = std::env::var_os("KOMODO_ROTATE_TEST_MONGO_LOG").is_some();
    Server::start(cfg).await.expect("test server starts")
}

pub fn uri(addr: SocketAddr) -> String {
    format!("mongodb://{addr}/?directConnection=true")
}

pub async fn client(
    addr: SocketAddr,
    user: &str,
    password: &str,
    mechanism: Option<AuthMechanism>,
) -> Client {
    let mut opts = ClientOptions::parse(uri(addr)).await.unwrap();
    opts.credential = Some(
        Credential::builder()
            .username(user.to_owned())
            .password(password.to_owned())
            .source("admin".to_owned())
            .mechanism(mechanism)
            .build(),
    );
    opts.server_selection_timeout = Some(Duration::from_secs(3));
    opts.connect_timeout = Some(Duration::from_secs(3));
    Client::with_options(opts).unwrap()
}

pub async fn anonymous(addr: SocketAddr) -> Client {
    let mut opts = ClientOptions::parse(uri(addr)).await.unwrap();
    opts.server_selection_timeout = Some(Duration::from_secs(3));
    Client::with_options(opts).unwrap()
}

/// The server's error code of a failed driver call (command or authentication error).
pub fn code_of(e: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::ErrorKind;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let me = err.downcast_ref::<mongodb::error::Error>().or_else(|| {
            err.downcast_ref::<Box<mongodb::error::Error>>()
                .map(|b| &**b)
        });
        if let Some(me) = me {
            if let ErrorKind::Command(c) = me.kind.as_ref() {
                return Some(c.code);
            }
        }
        cur = err.source();
    }
    None
}

pub async fn ping(c: &Client) -> Result<(), mongodb::error::Error> {
    c.database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .map(|_| ())
}

/// Whether an external tool a test needs is missing: fail under CI=true, else skip with a reason.
pub fn tool_missing(what: &str, why: &str) -> bool {
    if ci::under_ci() {
        panic!("CI=true but {what} is unavailable: {why} (run scripts/setup-test-env)");
    }
    eprintln!("SKIPPED: {what} is unavailable ({why}); set CI=true to make this a failure");
    true
}

/// A container of a real `mongo` image (KOMODO_ROTATE_TEST_MONGO_IMAGE), removed on drop.
pub struct MongoContainer {
    pub id: String,
    pub addr: SocketAddr,
    pub volume: String,
}

pub fn real_mongo_image() -> Option<String> {
    match std::env::var("KOMODO_ROTATE_TEST_MONGO_IMAGE") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            eprintln!(
                "note: KOMODO_ROTATE_TEST_MONGO_IMAGE is unset: running against the wire-protocol test server only"
            );
            None
        }
    }
}

fn docker(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "docker {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl MongoContainer {
    /// Runs `image` with the init variables on `volume` (created when missing), published on
    /// 127.0.0.1, and waits until `root` logs in with `password` (or 60 s pass).
    /// The password reaches the container through an env file, never through argv.
    pub async fn start(image: &str, volume: &str, password: &str) -> Result<Self, String> {
        let envdir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let envfile = envdir.path().join("mongo.env");
        std::fs::write(
            &envfile,
            format!("MONGO_INITDB_ROOT_USERNAME=root\nMONGO_INITDB_ROOT_PASSWORD={password}\n"),
        )
        .map_err(|e| e.to_string())?;
        let id = docker(&[
            "run",
            "-d",
            "--env-file",
            envfile.to_str().unwrap_or_default(),
            "-p",
            "127.0.0.1::27017",
            "-v",
            &format!("{volume}:/data/db"),
            image,
        ])?;
        let port = docker(&["port", &id, "27017/tcp"])?;
        let addr: SocketAddr = port
            .lines()
            .find_map(|l| l.parse().ok())
            .ok_or_else(|| format!("unexpected docker port output {port:?}"))?;
        let c = MongoContainer {
            id,
            addr,
            volume: volume.to_owned(),
        };
        // Init runs a temporary mongod first; wait for the real one (a fresh or kept password).
        for _ in 0..60 {
            let probe = anonymous(addr).await;
            let up = ping(&probe).await.is_ok();
            probe.shutdown().await;
            if up {
                tokio::time::sleep(Duration::from_secs(2)).await;
                return Ok(c);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(format!("mongo container {} never answered", c.id))
    }

    pub fn stop(&self) {
        let _ = docker(&["rm", "-f", &self.id]);
    }
}

impl Drop for MongoContainer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn remove_volume(name: &str) {
    let _ = docker(&["volume", "rm", "-f", name]);
}
