//! One task per connection: read a message, run it, reply. A framing error closes this
//! connection only; the server and every other connection go on.

use super::commands::{dispatch, is_hello, lock, ConnState};
use super::wire::{self, Request};
use super::Shared;
use bson::Document;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut st = ConnState {
        id: shared.next_connection_id.fetch_add(1, Ordering::Relaxed),
        authenticated: Vec::new(),
        conversation: None,
    };
    shared.log_detail(format_args!("conn{}: accepted from {peer}", st.id));
    let mut front = shared.front.as_ref().map(|f| f.connection(st.id));
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let why = loop {
        let req = tokio::select! {
            _ = stopped.changed() => break "server shutting down".to_owned(),
            r = wire::read_request(&mut rd) => r,
        };
        let req = match req {
            Ok(Some(r)) => r,
            Ok(None) => break "client closed".to_owned(),
            Err(e) => break format!("closing: {e}"),
        };
        let (request_id, reply_to_legacy, more_to_come, body, db) = match req {
            Request::Msg {
                request_id,
                more_to_come,
                mut body,
            } => {
                let db = match body.remove("$db") {
                    Some(bson::Bson::String(s)) => Some(s),
                    _ => None,
                };
                (request_id, false, more_to_come, body, db)
            }
            Request::Query {
                request_id,
                collection,
                body,
            } => {
                // Since 5.1 mongod takes OP_QUERY only for the handshake.
                let name = first_key(&body);
                match collection.strip_suffix(".$cmd") {
                    Some(db) if is_hello(name) => {
                        (request_id, true, false, body, Some(db.to_owned()))
                    }
                    _ => break format!("closing: legacy OP_QUERY for '{name}' on {collection}"),
                }
            }
        };
        let name = first_key(&body).to_owned();
        let (drop_now, delay_ms) = {
            let mut c = lock(&shared.controls);
            (c.should_drop(&name), c.delay_ms)
        };
        if drop_now {
            break format!("test control: dropped before replying to {name}");
        }
        // Subscribed before the counter is compared, so a change in between is not missed.
        let mut changed = shared.topology.subscribe();
        if let Some(wait) = awaitable_hello_wait(&shared, &name, &body) {
            // The streaming monitor protocol: the answer comes when the state changes, the
            // client's wait is over, or the server stops, as mongod does.
            tokio::select! {
                _ = stopped.changed() => break "server shutting down".to_owned(),
                _ = tokio::time::sleep(wait) => {}
                _ = changed.changed() => {}
            }
        }
        let reply = match front.as_mut() {
            Some(f) if name != "komodoTestControl" => {
                let mut inner = Dispatch {
                    shared: &shared,
                    st: &mut st,
                };
                f.command(&name, &body, db.as_deref(), &mut inner).await
            }
            _ => dispatch(&shared, &mut st, &body, db.as_deref()),
        };
        if delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        if more_to_come {
            continue;
        }
        let id = shared.next_request_id.fetch_add(1, Ordering::Relaxed);
        let bytes = if reply_to_legacy {
            wire::encode_reply(id, request_id, &reply)
        } else {
            wire::encode_msg(id, request_id, &reply)
        };
        if let Err(e) = wr.write_all(&bytes).await {
            break format!("write failed: {e}");
        }
    };
    shared.log_detail(format_args!("conn{}: {why}", st.id));
}

/// The test server's dispatch for a front end ([`super::front::Inner`]).
struct Dispatch<'a> {
    shared: &'a Shared,
    st: &'a mut ConnState,
}

impl super::front::Inner for Dispatch<'_> {
    fn run(&mut self, cmd: &Document, db: Option<&str>) -> Document {
        dispatch(self.shared, self.st, cmd, db)
    }
}

/// An awaitable `hello` (mongod 4.4+): one that names this process's current topologyVersion
/// and a `maxAwaitTimeMS` is answered only after that time, since the topology never changes
/// here. Without it a driver that saw `topologyVersion` would poll in a tight loop.
fn awaitable_hello_wait(shared: &Shared, name: &str, body: &Document) -> Option<Duration> {
    if !is_hello(name) {
        return None;
    }
    let tv = body.get_document("topologyVersion").ok()?;
    if tv.get_object_id("processId").ok()? != shared.process_id
        || tv.get("counter").and_then(super::controls::as_i64) != Some(*shared.topology.borrow())
    {
        return None;
    }
    let ms = body
        .get("maxAwaitTimeMS")
        .and_then(super::controls::as_i64)?;
    u64::try_from(ms).ok().map(Duration::from_millis)
}

fn first_key(d: &Document) -> &str {
    d.keys().next().map(String::as_str).unwrap_or("")
}
