//! Command dispatch and the commands themselves (research/mongo-wire.md §3-§6), with mongod's
//! error codes and shapes.

use super::controls::as_i64;
use super::reply::{bad_value, err, is_state_change, not_implemented, Reply};
pub use super::reply::{lock, CmdError};
use super::scram::{self, Conversation, Mechanism, Step};
use super::store::{roles_bson, User};
use super::{find, queries, users, writes, Shared};
use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};

pub const MAX_BSON_OBJECT_SIZE: i32 = 16 * 1024 * 1024;
const VERSION: &str = "7.0.14";
const GIT_VERSION: &str = "ce59cfc6a3c5e5c067dca0d30697edd68d4f5188";

/// Per-connection state: who authenticated here, and a SASL conversation in progress.
#[derive(Debug)]
pub struct ConnState {
    pub id: i32,
    pub authenticated: Vec<(String, String)>,
    pub conversation: Option<Conversation>,
}

fn auth_failed() -> CmdError {
    err(18, "AuthenticationFailed", "Authentication failed.")
}

/// The handshake commands; the only ones accepted over legacy OP_QUERY.
pub fn is_hello(name: &str) -> bool {
    matches!(name, "hello" | "isMaster" | "ismaster")
}

/// Runs one command and returns the reply document (success or mongod-shaped error).
pub fn dispatch(shared: &Shared, st: &mut ConnState, cmd: &Document, db: Option<&str>) -> Document {
    let name = cmd.keys().next().map(String::as_str).unwrap_or("");
    let Some(db) = db else {
        return err(
            40571,
            "Location40571",
            "OP_MSG requests require a $db argument",
        )
        .to_document();
    };
    let result = run(shared, st, name, cmd, db);
    if !is_hello(name) {
        // Command names and codes only: never a field value.
        match &result {
            Ok(_) => shared.log_detail(format_args!("conn{}: {name} on {db}: ok", st.id)),
            Err(e) => shared.log_detail(format_args!("conn{}: {name} on {db}: {}", st.id, e.code)),
        }
    }
    match result {
        Ok(mut d) => {
            d.insert("ok", 1.0);
            d
        }
        Err(e) => {
            let mut d = e.to_document();
            if is_state_change(e.code) {
                // mongod's state-change errors carry the topologyVersion they come from, so a
                // driver can tell them from stale ones.
                d.insert("topologyVersion", shared.topology_version());
            }
            d
        }
    }
}

enum Access {
    Open,
    Authenticated,
    Write,
    UserAdmin,
}

/// mongod commands the test server does not implement: refused with 238, not 59, so a client
/// learns that the command exists but was not run here.
const NOT_IMPLEMENTED: [&str; 14] = [
    "findAndModify",
    "drop",
    "dropDatabase",
    "create",
    "renameCollection",
    "dropIndexes",
    "collMod",
    "bulkWrite",
    "mapReduce",
    "explain",
    "collStats",
    "dbStats",
    "validate",
    "compact",
];

fn run(shared: &Shared, st: &mut ConnState, name: &str, cmd: &Document, db: &str) -> Reply {
    // mongod checks that a command exists before it checks authentication.
    let access = match name {
        "hello" | "isMaster" | "ismaster" | "saslStart" | "saslContinue" | "ping" | "buildInfo"
        | "buildinfo" | "connectionStatus" | "endSessions" | "logout" => Access::Open,
        "komodoTestControl" if shared.controls_enabled => Access::Open,
        "listDatabases" | "find" | "listCollections" | "listIndexes" | "createIndexes"
        | "count" | "aggregate" | "distinct" | "getMore" | "killCursors" => Access::Authenticated,
        "insert" | "update" | "delete" => Access::Write,
        n if NOT_IMPLEMENTED.contains(&n) => {
            return Err(not_implemented(format!(
                "the command {n} is not supported by the test server"
            )))
        }
        "usersInfo" | "createUser" | "updateUser" | "dropUser" => Access::UserAdmin,
        _ => {
            return Err(err(
                59,
                "CommandNotFound",
                format!("no such command: '{name}'"),
            ))
        }
    };
    if shared.auth {
        match access {
            Access::Open => {}
            Access::Authenticated | Access::Write | Access::UserAdmin => {
                let users = current_users(shared, st);
                if users.is_empty() {
                    return Err(err(
                        13,
                        "Unauthorized",
                        format!("Command {name} requires authentication"),
                    ));
                }
                if matches!(access, Access::Write)
                    && !users.iter().any(|u| writes::may_write(u, db))
                {
                    return Err(err(
                        13,
                        "Unauthorized",
                        format!("not authorized on {db} to execute command {{ {name}: ... }}"),
                    ));
                }
                if matches!(access, Access::UserAdmin)
                    && !users.iter().any(|u| u.may_manage_users_on(db))
                {
                    return Err(err(
                        13,
                        "Unauthorized",
                        format!("not authorized on {db} to execute command {{ {name}: ... }}"),
                    ));
                }
            }
        }
    }
    match name {
        "hello" | "isMaster" | "ismaster" => Ok(hello(shared, st, name, cmd)),
        "saslStart" => sasl_start(shared, st, cmd, db),
        "saslContinue" => sasl_continue(shared, st, cmd, db),
        "ping" | "endSessions" => Ok(Document::new()),
        "logout" => {
            st.authenticated.clear();
            Ok(Document::new())
        }
        "buildInfo" | "buildinfo" => Ok(build_info()),
        "connectionStatus" => connection_status(shared, st, cmd),
        "komodoTestControl" => komodo_test_control(shared, cmd),
        "listDatabases" => queries::list_databases(shared, cmd),
        "listCollections" => queries::list_collections(shared, cmd, db),
        "listIndexes" => queries::list_indexes(shared, cmd, db),
        "createIndexes" => queries::create_indexes(shared, cmd, db),
        "find" => find::find(shared, &current_users(shared, st), cmd, db),
        "count" => find::count(shared, &current_users(shared, st), cmd, db),
        "aggregate" => find::aggregate(shared, &current_users(shared, st), cmd, db),
        "distinct" => find::distinct(shared, &current_users(shared, st), cmd, db),
        "getMore" => find::get_more(cmd),
        "killCursors" => find::kill_cursors(cmd),
        "insert" => writes::insert(shared, cmd, db),
        "update" => writes::update(shared, cmd, db),
        "delete" => writes::delete(shared, cmd, db),
        "usersInfo" => users::users_info(shared, cmd, db),
        "createUser" => users::create_user(shared, cmd, db),
        "updateUser" => users::update_user(shared, cmd, db),
        "dropUser" => users::drop_user(shared, cmd, db),
        _ => Err(err(
            59,
            "CommandNotFound",
            format!("no such command: '{name}'"),
        )),
    }
}

/// The users this connection is authenticated as that still exist (dropUser de-authenticates).
fn current_users(shared: &Shared, st: &mut ConnState) -> Vec<User> {
    let store = lock(&shared.store);
    st.authenticated
        .retain(|(user, db)| store.get(db, user).is_some());
    st.authenticated
        .iter()
        .filter_map(|(user, db)| store.get(db, user).cloned())
        .collect()
}

fn hello(shared: &Shared, st: &mut ConnState, name: &str, cmd: &Document) -> Document {
    let mut d = Document::new();
    d.insert(
        if name == "hello" {
            "isWritablePrimary"
        } else {
            "ismaster"
        },
        true,
    );
    if cmd.get_bool("helloOk") == Ok(true) {
        d.insert("helloOk", true);
    }
    d.insert("maxBsonObjectSize", MAX_BSON_OBJECT_SIZE);
    d.insert("maxMessageSizeBytes", super::wire::MAX_MESSAGE_SIZE);
    d.insert("maxWriteBatchSize", 100_000i32);
    d.insert("localTime", bson::DateTime::now());
    d.insert("logicalSessionTimeoutMinutes", 30i32);
    d.insert("connectionId", st.id);
    d.insert("minWireVersion", 0i32);
    d.insert("maxWireVersion", 21i32);
    d.insert("readOnly", false);
    // mongod 4.4+: which process answered, and a counter it bumps on a state change (here
    // only an injected state-change error bumps it).
    d.insert("topologyVersion", shared.topology_version());
    if let Ok(who) = cmd.get_str("saslSupportedMechs") {
        if let Some((udb, user)) = who.split_once('.') {
            if let Some(u) = lock(&shared.store).get(udb, user) {
                let mechs: Vec<Bson> = u.mechanisms().into_iter().map(Bson::from).collect();
                d.insert("saslSupportedMechs", mechs);
            }
        }
    }
    if let Ok(spec) = cmd.get_document("speculativeAuthenticate") {
        // Any failure is silent: the driver falls back to a plain saslStart.
        let reply = match spec.get_str("db") {
            Ok(sdb) if spec.contains_key("saslStart") => sasl_start(shared, st, spec, sdb).ok(),
            _ => None,
        };
        match reply {
            Some(r) => {
                d.insert("speculativeAuthenticate", r);
            }
            None => st.conversation = None,
        }
    }
    d
}

fn payload_of(cmd: &Document) -> Option<&[u8]> {
    match cmd.get("payload") {
        Some(Bson::Binary(b)) => Some(&b.bytes),
        _ => None,
    }
}

fn binary(bytes: Vec<u8>) -> Binary {
    Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    }
}

fn sasl_start(shared: &Shared, st: &mut ConnState, cmd: &Document, db: &str) -> Reply {
    st.conversation = None;
    let mech_name = cmd.get_str("mechanism").unwrap_or("");
    let Some(mech) = Mechanism::from_name(mech_name) else {
        return Err(bad_value(format!(
            "Unsupported mechanism '{mech_name}' on authentication database '{db}'"
        )));
    };
    let skip_empty = match cmd
        .get_document("options")
        .ok()
        .and_then(|o| o.get("skipEmptyExchange"))
    {
        None => false,
        Some(Bson::Boolean(b)) => *b,
        Some(_) => return Err(bad_value("skipEmptyExchange must be a boolean")),
    };
    let attempt = (|| {
        let payload = payload_of(cmd).ok_or(scram::Failed("payload is not BinData"))?;
        let first = scram::parse_client_first(payload)?;
        let store = lock(&shared.store);
        let user = store
            .get(db, &first.user)
            .ok_or(scram::Failed("UserNotFound"))?;
        let cred = user
            .credentials
            .get(&mech)
            .ok_or(scram::Failed("user has no credentials for this mechanism"))?;
        Conversation::start(
            mech,
            db,
            first,
            cred,
            &scram::random_nonce_suffix(),
            skip_empty,
        )
    })();
    match attempt {
        Ok((conv, server_first)) => {
            st.conversation = Some(conv);
            Ok(doc! {"conversationId": 1i32, "done": false, "payload": binary(server_first)})
        }
        Err(scram::Failed(why)) => {
            shared.log(format_args!(
                "conn{}: {} authentication failed on {db}: {why}",
                st.id,
                mech.name()
            ));
            Err(auth_failed())
        }
    }
}

fn sasl_continue(shared: &Shared, st: &mut ConnState, cmd: &Document, db: &str) -> Reply {
    let Some(mut conv) = st.conversation.take() else {
        return Err(err(17, "ProtocolError", "No SASL session state found"));
    };
    if cmd.get("conversationId").and_then(as_i64) != Some(1) {
        return Err(err(17, "ProtocolError", "sasl: Mismatched conversation id"));
    }
    if conv.db != db {
        return Err(err(
            17,
            "ProtocolError",
            "Attempt to switch database target during SASL authentication.",
        ));
    }
    let step = payload_of(cmd)
        .ok_or(scram::Failed("payload is not BinData"))
        .and_then(|p| conv.step(p));
    match step {
        Ok(Step::Continue(p)) => {
            st.conversation = Some(conv);
            Ok(doc! {"conversationId": 1i32, "done": false, "payload": binary(p)})
        }
        Ok(Step::Done(p)) => {
            shared.log(format_args!(
                "conn{}: authenticated {}@{} with {}",
                st.id,
                conv.user,
                conv.db,
                conv.mech.name()
            ));
            let who = (conv.user, conv.db);
            if !st.authenticated.contains(&who) {
                st.authenticated.push(who);
            }
            Ok(doc! {"conversationId": 1i32, "done": true, "payload": binary(p)})
        }
        Err(scram::Failed(why)) => {
            shared.log(format_args!(
                "conn{}: {} authentication failed for {}@{}: {why}",
                st.id,
                conv.mech.name(),
                conv.user,
                conv.db
            ));
            Err(auth_failed())
        }
    }
}

fn build_info() -> Document {
    doc! {
        "version": VERSION,
        "gitVersion": GIT_VERSION,
        "modules": [],
        "allocator": "system",
        "javascriptEngine": "none",
        "sysInfo": "deprecated",
        "versionArray": [7i32, 0i32, 14i32, 0i32],
        "bits": 64i32,
        "debug": false,
        "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
        "storageEngines": ["komodo-test"],
    }
}

fn connection_status(shared: &Shared, st: &mut ConnState, cmd: &Document) -> Reply {
    if cmd.get_bool("showPrivileges") == Ok(true) {
        // Privileges are not modelled: an empty list would claim the user has none.
        return Err(not_implemented(
            "connectionStatus.showPrivileges is not supported by the test server",
        ));
    }
    let users = current_users(shared, st);
    let info = doc! {
        "authenticatedUsers": users.iter().map(|u| Bson::Document(doc! {"user": &u.user, "db": &u.db})).collect::<Vec<_>>(),
        "authenticatedUserRoles": users.iter().flat_map(|u| roles_bson(&u.roles)).collect::<Vec<_>>(),
    };
    Ok(doc! {"authInfo": info})
}

fn komodo_test_control(shared: &Shared, cmd: &Document) -> Reply {
    let mut c = lock(&shared.controls);
    c.apply(cmd).map_err(bad_value)?;
    shared.log(format_args!("test controls now {:?}", *c));
    Ok(c.report())
}
