//! A front end in front of the test server: something else that speaks the same wire protocol
//! but answers some commands its own way (the FerretDB-shaped front end answers the handshake,
//! SCRAM, `ping` and `updateUser` from PostgreSQL) and hands the rest to the test server's own
//! dispatch, so the CRUD a Komodo core issues runs on the same store.
//!
//! Each connection gets a [`FrontConn`] of its own (its own authentication state); every command
//! but the test controls goes through it. The server's framing, connection handling, test
//! controls and awaitable `hello` stay as they are.

use bson::Document;
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The test server's own dispatch for one connection, as the front end may call it.
pub trait Inner: Send {
    /// Runs `cmd` on `db` as the test server would and returns its reply.
    fn run(&mut self, cmd: &Document, db: Option<&str>) -> Document;
}

/// Makes the per-connection state of a front end.
pub trait Front: Send + Sync + 'static {
    fn connection(&self, id: i32) -> Box<dyn FrontConn>;
}

/// One connection's front end.
pub trait FrontConn: Send {
    /// Answers `cmd` (named `name`, sent on `db`), calling `inner` for what it leaves to the
    /// test server. The reply is sent as returned.
    fn command<'a>(
        &'a mut self,
        name: &'a str,
        cmd: &'a Document,
        db: Option<&'a str>,
        inner: &'a mut dyn Inner,
    ) -> BoxFuture<'a, Document>;
}
