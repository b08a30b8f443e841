//! A MongoDB wire-protocol test server, faithful to research/mongo-wire.md: OP_MSG (and legacy
//! OP_QUERY hello), the handshake a standalone mongod 7.0 gives, SCRAM-SHA-1/256 with speculative
//! authentication, user management, mongod's error codes, the official image's first-init
//! semantics, and runtime-switchable fault injection for the rehearsal stack.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use komodo_testcontainers::mongo::{RootUser, Server, ServerConfig};
//! let dir = std::env::temp_dir().join("mongo-demo");
//! let server = Server::start(ServerConfig::new(dir).root(RootUser::new("root", "example"))).await?;
//! println!("mongodb://{}/", server.addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod catalog;
mod commands;
mod conn;
pub mod controls;
pub mod docs;
mod filter;
mod find;
pub mod front;
pub mod init;
pub mod options;
mod queries;
mod reply;
pub mod scram;
pub mod serve;
mod shape;
pub mod store;
mod unique;
mod update;
mod users;
mod values;
pub mod wire;
mod writes;

use komodo_rotate::secret::Secret;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicI32;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use init::{root_from_env, InitError};

/// The root user of a first initialisation (`MONGO_INITDB_ROOT_USERNAME`/`_PASSWORD`).
#[derive(Debug, Clone)]
pub struct RootUser {
    pub user: String,
    pub password: Secret,
}

impl RootUser {
    pub fn new(user: &str, password: &str) -> Self {
        RootUser {
            user: user.to_owned(),
            password: Secret::new(password.to_owned()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Holds the user store; created when missing.
    pub data_dir: PathBuf,
    /// Created in `admin` with role `root` only when `data_dir` holds no store yet.
    pub root: Option<RootUser>,
    /// Access control. `None` does what the official image's entrypoint does: `--auth` exactly
    /// when root credentials are configured (on every start, not only the first).
    pub auth: Option<bool>,
    /// Accept `komodoTestControl` commands (fault injection).
    pub test_controls: bool,
    /// One line per connection and per failed authentication on stderr (never a secret).
    pub log: bool,
    /// mongod's `--quiet`: no per-connection and per-command lines (startup lines and failed
    /// authentications are still logged, as mongod still logs them).
    pub quiet: bool,
    /// A front end answering some commands its own way (`front`), `None` for the test server.
    pub front: Option<Arc<dyn front::Front>>,
}

impl std::fmt::Debug for dyn front::Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Front")
    }
}

impl ServerConfig {
    /// Loopback, a free port, no root user, controls off, quiet.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            root: None,
            auth: None,
            test_controls: false,
            log: false,
            quiet: false,
            front: None,
        }
    }

    pub fn root(mut self, root: RootUser) -> Self {
        self.root = Some(root);
        self
    }

    pub fn test_controls(mut self, on: bool) -> Self {
        self.test_controls = on;
        self
    }

    pub fn auth(mut self, on: bool) -> Self {
        self.auth = Some(on);
        self
    }

    pub fn front(mut self, front: Arc<dyn front::Front>) -> Self {
        self.front = Some(front);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("root user {user}: {msg}")]
    RootUser { user: String, msg: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub data_dir: PathBuf,
    pub auth: bool,
    pub controls_enabled: bool,
    pub log: bool,
    pub quiet: bool,
    pub store: Mutex<store::UserStore>,
    pub catalog: Mutex<catalog::Catalog>,
    /// Documents of ordinary collections. Lock order: `writes`, `catalog`, then `docs`.
    pub docs: Mutex<docs::DocStore>,
    /// Held by every write command for its whole run (read, change a copy, persist, swap).
    pub writes: Mutex<()>,
    /// `hello`'s `topologyVersion.processId`: new on every start, as mongod's.
    pub process_id: bson::oid::ObjectId,
    /// `topologyVersion.counter`: bumped (waking every awaitable `hello`) when an injected
    /// state-change error says the server's state changed, as mongod does on a real change.
    pub topology: watch::Sender<i64>,
    pub controls: Mutex<controls::Controls>,
    pub next_connection_id: AtomicI32,
    pub next_request_id: AtomicI32,
    pub front: Option<Arc<dyn front::Front>>,
}

impl Shared {
    pub fn topology_version(&self) -> bson::Document {
        bson::doc! {"processId": self.process_id, "counter": *self.topology.borrow()}
    }

    pub fn log(&self, line: std::fmt::Arguments<'_>) {
        if self.log {
            eprintln!("mongo-test-server: {line}");
        }
    }

    /// A per-connection or per-command line: left out under `--quiet`.
    pub fn log_detail(&self, line: std::fmt::Arguments<'_>) {
        if !self.quiet {
            self.log(line);
        }
    }
}

/// A running server. Dropping it stops accepting and closes every connection.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Whether this start created the user store (first initialisation).
    pub initialised: bool,
}

impl Server {
    /// Opens or initialises the data directory, binds, and serves on the current tokio runtime.
    pub async fn start(cfg: ServerConfig) -> Result<Server, StartError> {
        let dir_err = |source| StartError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&cfg.data_dir).map_err(dir_err)?;
        let (users, initialised) = match store::UserStore::load(&cfg.data_dir).map_err(dir_err)? {
            Some(s) => (s, false),
            None => {
                let mut s = store::UserStore::default();
                if let Some(root) = &cfg.root {
                    let user = users::build_user(
                        &root.user,
                        "admin",
                        vec![store::Role {
                            role: "root".into(),
                            db: "admin".into(),
                        }],
                        root.password.expose(),
                        &scram::Mechanism::ALL,
                        true,
                    )
                    .map_err(|e| StartError::RootUser {
                        user: root.user.clone(),
                        msg: e.errmsg,
                    })?;
                    s.insert(user);
                }
                // Like mongod's data files: once written, later init variables are ignored.
                s.save(&cfg.data_dir).map_err(dir_err)?;
                (s, true)
            }
        };
        let (catalog, added) = catalog::Catalog::load(&cfg.data_dir).map_err(dir_err)?;
        if added {
            catalog.save(&cfg.data_dir).map_err(dir_err)?;
        }
        let docs = docs::DocStore::load(&cfg.data_dir).map_err(dir_err)?;
        let listener = TcpListener::bind(cfg.bind)
            .await
            .map_err(|source| StartError::Bind {
                addr: cfg.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: cfg.bind,
            source,
        })?;
        let shared = Arc::new(Shared {
            data_dir: cfg.data_dir.clone(),
            auth: cfg.auth.unwrap_or(cfg.root.is_some()),
            controls_enabled: cfg.test_controls,
            log: cfg.log,
            quiet: cfg.quiet,
            store: Mutex::new(users),
            catalog: Mutex::new(catalog),
            docs: Mutex::new(docs),
            writes: Mutex::new(()),
            process_id: bson::oid::ObjectId::new(),
            topology: watch::Sender::new(0),
            controls: Mutex::new(controls::Controls::default()),
            next_connection_id: AtomicI32::new(1),
            next_request_id: AtomicI32::new(1),
            front: cfg.front.clone(),
        });
        shared.log(format_args!(
            "data {} ({}), access control {}, test controls {}",
            cfg.data_dir.display(),
            if initialised {
                "initialised now"
            } else {
                "existing store kept"
            },
            if shared.auth { "on" } else { "off" },
            if shared.controls_enabled { "on" } else { "off" },
        ));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared, stopped));
        Ok(Server {
            addr,
            stop,
            task: Some(task),
            initialised,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection, and waits for the listener to be released.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until the task ends (it only ends on shutdown).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(conn::serve(stream, peer, shared.clone(), stopped.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    shared.log(format_args!("accept: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}
