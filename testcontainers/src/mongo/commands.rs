//! Command dispatch and the commands themselves (research/mongo-wire.md §3-§6), with mongod's
//! error codes and shapes.

use super::controls::{as_i64, code_name};
use super::scram::{self, Conversation, Mechanism, PasswordError, Step};
use super::store::{new_user_id, roles_bson, Role, User, UserStore};
use super::Shared;
use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use std::collections::BTreeMap;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError {
    pub code: i32,
    pub code_name: &'static str,
    pub errmsg: String,
}

fn err(code: i32, code_name: &'static str, errmsg: impl Into<String>) -> CmdError {
    CmdError {
        code,
        code_name,
        errmsg: errmsg.into(),
    }
}

fn bad_value(msg: impl Into<String>) -> CmdError {
    err(2, "BadValue", msg)
}

fn auth_failed() -> CmdError {
    err(18, "AuthenticationFailed", "Authentication failed.")
}

impl CmdError {
    pub fn to_document(&self) -> Document {
        doc! {"ok": 0.0, "errmsg": &self.errmsg, "code": self.code, "codeName": self.code_name}
    }
}

type Reply = Result<Document, CmdError>;

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
    match result {
        Ok(mut d) => {
            d.insert("ok", 1.0);
            d
        }
        Err(e) => e.to_document(),
    }
}

enum Access {
    Open,
    Authenticated,
    UserAdmin,
}

fn run(shared: &Shared, st: &mut ConnState, name: &str, cmd: &Document, db: &str) -> Reply {
    // mongod checks that a command exists before it checks authentication.
    let access = match name {
        "hello" | "isMaster" | "ismaster" | "saslStart" | "saslContinue" | "ping" | "buildInfo"
        | "buildinfo" | "connectionStatus" | "endSessions" | "logout" => Access::Open,
        "komodoTestControl" if shared.controls_enabled => Access::Open,
        "listDatabases" | "find" | "listCollections" | "listIndexes" | "createIndexes" => {
            Access::Authenticated
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
            Access::Authenticated | Access::UserAdmin => {
                let users = current_users(shared, st);
                if users.is_empty() {
                    return Err(err(
                        13,
                        "Unauthorized",
                        format!("Command {name} requires authentication"),
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
        "connectionStatus" => Ok(connection_status(shared, st, cmd)),
        "komodoTestControl" => komodo_test_control(shared, cmd),
        "listDatabases" => Ok(list_databases(cmd)),
        "find" | "listCollections" | "listIndexes" => Ok(empty_cursor(name, cmd, db)),
        "createIndexes" => create_indexes(cmd),
        "usersInfo" => users_info(shared, cmd, db),
        "createUser" => create_user(shared, cmd, db),
        "updateUser" => update_user(shared, cmd, db),
        "dropUser" => drop_user(shared, cmd, db),
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

/// A poisoned lock only means another connection panicked mid-command; its data is still whole
/// because every change is built on a copy and swapped in.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

fn connection_status(shared: &Shared, st: &mut ConnState, cmd: &Document) -> Document {
    let users = current_users(shared, st);
    let mut info = doc! {
        "authenticatedUsers": users.iter().map(|u| Bson::Document(doc! {"user": &u.user, "db": &u.db})).collect::<Vec<_>>(),
        "authenticatedUserRoles": users.iter().flat_map(|u| roles_bson(&u.roles)).collect::<Vec<_>>(),
    };
    if cmd.get_bool("showPrivileges") == Ok(true) {
        info.insert("authenticatedUserPrivileges", Vec::<Bson>::new());
    }
    doc! {"authInfo": info}
}

fn komodo_test_control(shared: &Shared, cmd: &Document) -> Reply {
    let mut c = lock(&shared.controls);
    c.apply(cmd).map_err(bad_value)?;
    shared.log(format_args!("test controls now {:?}", *c));
    Ok(c.report())
}

fn list_databases(cmd: &Document) -> Document {
    let names = ["admin", "config", "local"];
    if cmd.get_bool("nameOnly") == Ok(true) {
        let dbs: Vec<Bson> = names
            .iter()
            .map(|n| Bson::Document(doc! {"name": *n}))
            .collect();
        return doc! {"databases": dbs};
    }
    let dbs: Vec<Bson> = names
        .iter()
        .map(|n| Bson::Document(doc! {"name": *n, "sizeOnDisk": 8192i64, "empty": false}))
        .collect();
    doc! {"databases": dbs, "totalSize": 24576i64, "totalSizeMb": 0i64}
}

/// The test server keeps no documents: every collection reads as empty.
fn empty_cursor(name: &str, cmd: &Document, db: &str) -> Document {
    let ns = match name {
        "listCollections" => format!("{db}.$cmd.listCollections"),
        _ => format!("{db}.{}", cmd.get_str(name).unwrap_or("")),
    };
    let first_batch: Vec<Bson> = if name == "listIndexes" {
        vec![Bson::Document(
            doc! {"v": 2i32, "key": {"_id": 1i32}, "name": "_id_"},
        )]
    } else {
        Vec::new()
    };
    doc! {"cursor": {"firstBatch": first_batch, "id": 0i64, "ns": ns}}
}

fn create_indexes(cmd: &Document) -> Reply {
    let n = cmd
        .get_array("indexes")
        .map_err(|_| {
            err(
                40414,
                "Location40414",
                "BSON field 'createIndexes.indexes' is missing but a required field",
            )
        })?
        .len() as i32;
    Ok(
        doc! {"numIndexesBefore": 1i32, "numIndexesAfter": 1 + n, "createdCollectionAutomatically": false},
    )
}

fn users_info(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let store = lock(&shared.store);
    let mut wanted: Vec<&User> = Vec::new();
    match cmd.get("usersInfo") {
        Some(v @ (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))) if as_i64(v) == Some(1) => {
            wanted.extend(store.users().filter(|u| u.db == db));
        }
        Some(Bson::Document(d)) if d.get_bool("forAllDBs") == Ok(true) => {
            wanted.extend(store.users());
        }
        Some(Bson::Array(items)) => {
            for v in items {
                wanted.extend(named_user(&store, v, db)?);
            }
        }
        Some(v) => wanted.extend(named_user(&store, v, db)?),
        None => return Err(bad_value("usersInfo requires an argument")),
    }
    let show_credentials = cmd.get_bool("showCredentials") == Ok(true);
    let show_custom = cmd.get_bool("showCustomData") != Ok(false);
    let mut seen = std::collections::BTreeSet::new();
    let users: Vec<Bson> = wanted
        .into_iter()
        .filter(|u| seen.insert((u.db.clone(), u.user.clone())))
        .map(|u| {
            let mut d = u.to_document(show_credentials);
            if !show_custom {
                d.remove("customData");
            }
            let mechs: Vec<Bson> = u.mechanisms().into_iter().map(Bson::from).collect();
            d.insert("mechanisms", mechs);
            Bson::Document(d)
        })
        .collect();
    Ok(doc! {"users": users})
}

/// One `usersInfo` name: `"<name>"` (in the command's db) or `{user, db}`.
fn named_user<'a>(store: &'a UserStore, v: &Bson, db: &str) -> Result<Option<&'a User>, CmdError> {
    let invalid = || bad_value("User and role names must be either strings or objects");
    match v {
        Bson::String(s) => Ok(store.get(db, s)),
        Bson::Document(d) => match (d.get_str("user"), d.get_str("db")) {
            (Ok(u), Ok(udb)) => Ok(store.get(udb, u)),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

fn parse_roles(v: &Bson, db: &str) -> Result<Vec<Role>, CmdError> {
    let Bson::Array(items) = v else {
        return Err(err(14, "TypeMismatch", "roles must be an array"));
    };
    items
        .iter()
        .map(|r| match r {
            Bson::String(s) => Ok(Role {
                role: s.clone(),
                db: db.to_owned(),
            }),
            Bson::Document(d) => match (d.get_str("role"), d.get_str("db")) {
                (Ok(role), Ok(rdb)) => Ok(Role {
                    role: role.to_owned(),
                    db: rdb.to_owned(),
                }),
                _ => Err(bad_value(
                    "User and role names must be either strings or objects",
                )),
            },
            _ => Err(bad_value(
                "User and role names must be either strings or objects",
            )),
        })
        .collect()
}

fn parse_mechanisms(cmd: &Document) -> Result<Option<Vec<Mechanism>>, CmdError> {
    let Some(v) = cmd.get("mechanisms") else {
        return Ok(None);
    };
    let Bson::Array(items) = v else {
        return Err(err(14, "TypeMismatch", "mechanisms must be an array"));
    };
    if items.is_empty() {
        return Err(bad_value("mechanisms field must not be empty"));
    }
    let mut out = Vec::new();
    for m in items {
        let name = m.as_str().unwrap_or("");
        let mech = Mechanism::from_name(name)
            .ok_or_else(|| bad_value(format!("Unknown auth mechanism '{name}'")))?;
        if !out.contains(&mech) {
            out.push(mech);
        }
    }
    Ok(Some(out))
}

fn parse_digest(cmd: &Document) -> Result<bool, CmdError> {
    match cmd.get("digestPassword") {
        None => Ok(true),
        Some(Bson::Boolean(b)) => Ok(*b),
        Some(_) => Err(err(14, "TypeMismatch", "digestPassword must be a boolean")),
    }
}

fn parse_pwd(cmd: &Document) -> Result<Option<&str>, CmdError> {
    match cmd.get("pwd") {
        None => Ok(None),
        Some(Bson::String(s)) if s.is_empty() => Err(bad_value("pwd field must not be empty")),
        Some(Bson::String(s)) => Ok(Some(s)),
        Some(_) => Err(err(14, "TypeMismatch", "pwd must be a string")),
    }
}

/// SCRAM credentials for each mechanism, fresh salts, mongod's default iteration counts.
fn build_credentials(
    user: &str,
    pwd: &str,
    mechs: &[Mechanism],
    digest: bool,
) -> Result<BTreeMap<Mechanism, scram::Credential>, CmdError> {
    let mut creds = BTreeMap::new();
    for &m in mechs {
        let input = scram::pbkdf2_input(m, user, pwd, digest).map_err(|e| match e {
            PasswordError::DigestedSha256 => bad_value(e.to_string()),
            PasswordError::SaslPrep => bad_value(format!("Error preparing password: {e}")),
        })?;
        let cred = scram::derive(m, &input, &scram::random_salt(m), m.default_iterations());
        creds.insert(m, cred);
    }
    Ok(creds)
}

pub(crate) fn build_user(
    name: &str,
    db: &str,
    roles: Vec<Role>,
    pwd: &str,
    mechs: &[Mechanism],
    digest: bool,
) -> Result<User, CmdError> {
    if pwd.is_empty() {
        return Err(bad_value("pwd field must not be empty"));
    }
    Ok(User {
        user: name.to_owned(),
        db: db.to_owned(),
        user_id: new_user_id(),
        roles,
        credentials: build_credentials(name, pwd, mechs, digest)?,
        custom_data: None,
    })
}

/// Applies `change` to a copy of the store, persists the copy, then swaps it in: a failed
/// write leaves both the file and the served users as they were.
fn commit(shared: &Shared, change: impl FnOnce(&mut UserStore) -> Result<(), CmdError>) -> Reply {
    let mut store = lock(&shared.store);
    let mut next = store.clone();
    change(&mut next)?;
    next.save(&shared.data_dir).map_err(|e| {
        err(
            1,
            "InternalError",
            format!("could not persist the user store: {}", e.kind()),
        )
    })?;
    *store = next;
    Ok(Document::new())
}

fn user_name<'a>(cmd: &'a Document, field: &str) -> Result<&'a str, CmdError> {
    match cmd.get_str(field) {
        Ok(s) if !s.is_empty() => Ok(s),
        _ => Err(bad_value(format!("{field} must be a non-empty user name"))),
    }
}

fn create_user(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let name = user_name(cmd, "createUser")?;
    if db == "local" {
        return Err(bad_value("Cannot create users in the local database"));
    }
    if lock(&shared.store).get(db, name).is_some() {
        return Err(err(
            51003,
            "Location51003",
            format!("User \"{name}@{db}\" already exists"),
        ));
    }
    let roles = match cmd.get("roles") {
        Some(v) => parse_roles(v, db)?,
        None => {
            return Err(err(
                40414,
                "Location40414",
                "BSON field 'createUser.roles' is missing but a required field",
            ))
        }
    };
    let pwd = parse_pwd(cmd)?.ok_or_else(|| {
        bad_value("Must provide a 'pwd' field for all user documents, except those with '$external' as the user's source db")
    })?;
    let mechs = parse_mechanisms(cmd)?.unwrap_or_else(|| Mechanism::ALL.to_vec());
    let digest = parse_digest(cmd)?;
    let mut user = build_user(name, db, roles, pwd, &mechs, digest)?;
    user.custom_data = cmd.get_document("customData").ok().cloned();
    commit(shared, |s| {
        if s.get(db, name).is_some() {
            return Err(err(
                51003,
                "Location51003",
                format!("User \"{name}@{db}\" already exists"),
            ));
        }
        s.insert(user);
        Ok(())
    })
}

fn update_user(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let name = user_name(cmd, "updateUser")?;
    let pwd = parse_pwd(cmd)?;
    let mechs = parse_mechanisms(cmd)?;
    let digest = parse_digest(cmd)?;
    let roles = cmd.get("roles").map(|v| parse_roles(v, db)).transpose()?;
    let custom = cmd.get_document("customData").ok().cloned();
    if pwd.is_none()
        && mechs.is_none()
        && roles.is_none()
        && custom.is_none()
        && !cmd.contains_key("authenticationRestrictions")
    {
        return Err(bad_value(
            "Must specify at least one field to update in updateUser",
        ));
    }
    if lock(&shared.store).get(db, name).is_none() {
        return Err(err(
            11,
            "UserNotFound",
            format!("User {name}@{db} not found"),
        ));
    }
    if let Some(code) = lock(&shared.controls).fail_next_update_user.take() {
        let (code_name, msg) = code_name(code).unwrap_or(("InternalError", "injected failure"));
        shared.log(format_args!(
            "updateUser {name}@{db}: injected failure {code}"
        ));
        return Err(err(code, code_name, msg));
    }
    let new_creds = match pwd {
        Some(p) => Some(build_credentials(
            name,
            p,
            mechs.as_deref().unwrap_or(&Mechanism::ALL),
            digest,
        )?),
        None => None,
    };
    commit(shared, |s| {
        let user = s
            .get_mut(db, name)
            .ok_or_else(|| err(11, "UserNotFound", format!("User {name}@{db} not found")))?;
        match (new_creds, &mechs) {
            (Some(c), _) => user.credentials = c,
            (None, Some(keep)) => {
                if keep.iter().any(|m| !user.credentials.contains_key(m)) {
                    return Err(bad_value(
                        "mechanisms field must be a subset of previously set mechanisms",
                    ));
                }
                user.credentials.retain(|m, _| keep.contains(m));
            }
            (None, None) => {}
        }
        if let Some(r) = roles {
            user.roles = r;
        }
        if custom.is_some() {
            user.custom_data = custom;
        }
        Ok(())
    })
}

fn drop_user(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let name = user_name(cmd, "dropUser")?;
    commit(shared, |s| {
        s.remove(db, name)
            .map(|_| ())
            .ok_or_else(|| err(11, "UserNotFound", format!("User '{name}@{db}' not found")))
    })
}
