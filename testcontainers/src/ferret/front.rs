//! The FerretDB-shaped answers, per connection (research/ferretdb-auth.md Q1-Q3). FerretDB's own
//! code is not exercised: this follows what its handlers and DocumentDB's SQL functions were
//! read to do.
//!
//! - `hello`/`isMaster`: the test server's answer plus `saslSupportedMechs: ["SCRAM-SHA-256"]`
//!   (always, as FerretDB) and speculative authentication.
//! - `saslStart`: SCRAM-SHA-256 only (else 334 "... which is not enabled"); the role's secret is
//!   read from `pg_authid` over a NEW PostgreSQL connection made with the URL. That connection
//!   failing is code 1 `InternalError` with PostgreSQL's message; an unknown role is 18.
//! - `saslContinue`: DocumentDB's check of the client proof against StoredKey; wrong is 18
//!   "Authentication failed.".
//! - `ping`: anonymous, but runs `SELECT 1` on a NEW connection (the ferretdb -> postgres leg).
//! - `updateUser {pwd}`: `ALTER ROLE ... PASSWORD '<secret>'`, 28-byte salt, 4096 iterations,
//!   run as the URL's role; only `updateUser`, `pwd` and `lsid` are accepted (DocumentDB).
//! - `usersInfo`/`createUser`/`dropUser`: 238 NotImplemented here (not needed by Komodo).
//! - Anything else needs an authenticated connection (13), takes a pooled backend connection
//!   (so a stopped PostgreSQL fails it with code 1) and runs on the test server's store.

use super::pg::{self, Backend, PgError};
use super::verifier;
use crate::mongo::controls::as_i64;
use crate::mongo::front::{BoxFuture, Front, FrontConn, Inner};
use crate::mongo::scram::{self, Conversation, Mechanism, Step};
use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use std::sync::Arc;

/// The commands FerretDB runs without authentication (`commands.go`).
const ANONYMOUS: [&str; 9] = [
    "hello",
    "isMaster",
    "ismaster",
    "buildInfo",
    "buildinfo",
    "connectionStatus",
    "ping",
    "saslStart",
    "saslContinue",
];

pub struct FerretFront {
    backend: Arc<Backend>,
    log: bool,
}

impl FerretFront {
    pub fn new(backend: Backend, log: bool) -> FerretFront {
        FerretFront {
            backend: Arc::new(backend),
            log,
        }
    }
}

impl Front for FerretFront {
    fn connection(&self, id: i32) -> Box<dyn FrontConn> {
        Box::new(FerretConn {
            id,
            backend: self.backend.clone(),
            log: self.log,
            user: None,
            conversation: None,
        })
    }
}

struct FerretConn {
    id: i32,
    backend: Arc<Backend>,
    log: bool,
    /// The role this connection authenticated as (FerretDB checks only that one succeeded).
    user: Option<(String, String)>,
    conversation: Option<Conversation>,
}

fn error(code: i32, code_name: &str, msg: impl Into<String>) -> Document {
    doc! {"ok": 0.0, "errmsg": msg.into(), "code": code, "codeName": code_name}
}

fn internal(e: PgError) -> Document {
    error(1, "InternalError", e.0)
}

fn auth_failed() -> Document {
    error(18, "AuthenticationFailed", "Authentication failed.")
}

fn ok(mut d: Document) -> Document {
    d.insert("ok", 1.0);
    d
}

fn binary(bytes: Vec<u8>) -> Binary {
    Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    }
}

impl FrontConn for FerretConn {
    fn command<'a>(
        &'a mut self,
        name: &'a str,
        cmd: &'a Document,
        db: Option<&'a str>,
        inner: &'a mut dyn Inner,
    ) -> BoxFuture<'a, Document> {
        Box::pin(async move {
            let Some(db) = db else {
                return inner.run(cmd, None);
            };
            if !ANONYMOUS.contains(&name) && name != "logout" && self.user.is_none() {
                return error(
                    13,
                    "Unauthorized",
                    format!("Command {name} requires authentication"),
                );
            }
            match name {
                "hello" | "isMaster" | "ismaster" => self.hello(cmd, db, inner).await,
                "saslStart" => match self.sasl_start(cmd, db).await {
                    Ok(d) => ok(d),
                    Err(e) => e,
                },
                "saslContinue" => self.sasl_continue(cmd, db),
                "ping" => match self.ping().await {
                    Ok(()) => ok(Document::new()),
                    Err(e) => internal(e),
                },
                "logout" => {
                    self.user = None;
                    ok(Document::new())
                }
                "connectionStatus" => {
                    let users: Vec<Bson> = self
                        .user
                        .iter()
                        .map(|(u, d)| Bson::Document(doc! {"user": u, "db": d}))
                        .collect();
                    ok(
                        doc! {"authInfo": {"authenticatedUsers": users, "authenticatedUserRoles": []}},
                    )
                }
                "updateUser" => self.update_user(cmd).await,
                "usersInfo" | "createUser" | "dropUser" => error(
                    238,
                    "NotImplemented",
                    format!("{name} is not supported by the FerretDB-shaped front end"),
                ),
                "buildInfo" | "buildinfo" => inner.run(cmd, Some(db)),
                _ => {
                    // Every command borrows a backend connection, as FerretDB's do.
                    let c = match self.backend.pooled().await {
                        Ok(c) => c,
                        Err(e) => return internal(e),
                    };
                    let reply = inner.run(cmd, Some(db));
                    self.backend.release(c);
                    reply
                }
            }
        })
    }
}

impl FerretConn {
    fn log(&self, line: std::fmt::Arguments<'_>) {
        if self.log {
            eprintln!("ferretdb-standin: conn{}: {line}", self.id);
        }
    }

    async fn ping(&self) -> Result<(), PgError> {
        let c = self.backend.fresh().await?;
        pg::ping(&c).await
    }

    async fn hello(&mut self, cmd: &Document, db: &str, inner: &mut dyn Inner) -> Document {
        let mut plain = cmd.clone();
        plain.remove("saslSupportedMechs");
        let spec = plain.remove("speculativeAuthenticate");
        let mut reply = inner.run(&plain, Some(db));
        reply.insert("saslSupportedMechs", vec![Bson::from("SCRAM-SHA-256")]);
        if let Some(Bson::Document(spec)) = spec {
            // A failure is silent: the driver then sends saslStart itself and gets the error.
            let sdb = spec.get_str("db").unwrap_or(db).to_owned();
            if spec.contains_key("saslStart") {
                match self.sasl_start(&spec, &sdb).await {
                    Ok(r) => {
                        reply.insert("speculativeAuthenticate", r);
                    }
                    Err(_) => self.conversation = None,
                }
            }
        }
        reply
    }

    async fn sasl_start(&mut self, cmd: &Document, db: &str) -> Result<Document, Document> {
        self.conversation = None;
        let mech = cmd.get_str("mechanism").unwrap_or("");
        if mech != Mechanism::Sha256.name() {
            return Err(error(
                334,
                "MechanismUnavailable",
                format!("Received authentication for mechanism {mech} which is not enabled"),
            ));
        }
        let skip_empty = cmd
            .get_document("options")
            .ok()
            .and_then(|o| o.get_bool("skipEmptyExchange").ok())
            .unwrap_or(false);
        let payload = match cmd.get("payload") {
            Some(Bson::Binary(b)) => b.bytes.clone(),
            _ => return Err(auth_failed()),
        };
        let first = scram::parse_client_first(&payload).map_err(|scram::Failed(why)| {
            self.log(format_args!("saslStart: {why}"));
            auth_failed()
        })?;
        let c = self.backend.fresh().await.map_err(|e| {
            self.log(format_args!("saslStart: backend connection failed: {e}"));
            internal(e)
        })?;
        let secret = pg::role_secret(&c, &first.user).await.map_err(internal)?;
        let Some(cred) = secret.as_deref().and_then(verifier::parse) else {
            self.log(format_args!(
                "saslStart: no SCRAM-SHA-256 secret for the role"
            ));
            return Err(auth_failed());
        };
        let (conv, server_first) = Conversation::start(
            Mechanism::Sha256,
            db,
            first,
            &cred,
            &scram::random_nonce_suffix(),
            skip_empty,
        )
        .map_err(|_| auth_failed())?;
        self.conversation = Some(conv);
        Ok(doc! {"conversationId": 1i32, "done": false, "payload": binary(server_first)})
    }

    fn sasl_continue(&mut self, cmd: &Document, db: &str) -> Document {
        let Some(mut conv) = self.conversation.take() else {
            return error(17, "ProtocolError", "No SASL session state found");
        };
        if cmd.get("conversationId").and_then(as_i64) != Some(1) || conv.db != db {
            return error(17, "ProtocolError", "sasl: Mismatched conversation id");
        }
        let step = match cmd.get("payload") {
            Some(Bson::Binary(b)) => conv.step(&b.bytes),
            _ => Err(scram::Failed("payload is not BinData")),
        };
        match step {
            Ok(Step::Continue(p)) => {
                self.conversation = Some(conv);
                ok(doc! {"conversationId": 1i32, "done": false, "payload": binary(p)})
            }
            Ok(Step::Done(p)) => {
                self.log(format_args!(
                    "authenticated {} with SCRAM-SHA-256",
                    conv.user
                ));
                self.user = Some((conv.user.clone(), conv.db.clone()));
                ok(doc! {"conversationId": 1i32, "done": true, "payload": binary(p)})
            }
            Err(scram::Failed(why)) => {
                self.log(format_args!(
                    "authentication of {} failed: {why}",
                    conv.user
                ));
                auth_failed()
            }
        }
    }

    /// DocumentDB's `update_user`: only `updateUser`, `pwd` and `lsid` (FerretDB drops
    /// `writeConcern`), a non-empty `pwd`, then `ALTER ROLE` as the pool role.
    async fn update_user(&mut self, cmd: &Document) -> Document {
        let bad = |m: String| error(2, "BadValue", m);
        for k in cmd.keys() {
            match k.as_str() {
                "updateUser" | "pwd" | "lsid" | "writeConcern" | "$clusterTime" => {}
                "roles" => return bad("Updating roles is not supported.".into()),
                other => return bad(format!("Unsupported field specified : '{other}'.")),
            }
        }
        let Ok(role) = cmd.get_str("updateUser") else {
            return bad("'updateUser' must be a string".into());
        };
        let pwd = match cmd.get("pwd") {
            Some(Bson::String(p)) if !p.is_empty() => zeroize::Zeroizing::new(p.clone()),
            Some(Bson::String(_)) => return bad("Password cannot be empty.".into()),
            None => return bad("Must specify at least one field to update in updateUser".into()),
            Some(_) => return error(14, "TypeMismatch", "'pwd' must be a string"),
        };
        let secret = verifier::build(&pwd);
        let c = match self.backend.pooled().await {
            Ok(c) => c,
            Err(e) => return internal(e),
        };
        let done = pg::alter_role_secret(&c, role, &secret).await;
        self.backend.release(c);
        match done {
            Ok(true) => {
                self.log(format_args!(
                    "updateUser {role}: ALTER ROLE with a new secret"
                ));
                ok(Document::new())
            }
            Ok(false) => error(11, "UserNotFound", format!("User {role} not found")),
            Err(e) => internal(e),
        }
    }
}
