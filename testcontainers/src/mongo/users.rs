//! User management (`usersInfo`, `createUser`, `updateUser`, `dropUser`) with mongod's error
//! codes: users are stored as mongod stores them, roles must be built-in roles (no `createRole`
//! exists here, so any other name is 31 RoleNotFound, as mongod answers for an unknown role).

use super::controls::{as_i64, code_name};
use super::reply::{bad_value, err, lock, not_implemented, CmdError, Reply};
use super::scram::{self, Mechanism, PasswordError};
use super::store::{new_user_id, Role, User, UserStore};
use super::Shared;
use bson::{doc, Bson, Document};
use std::collections::BTreeMap;

/// mongod 7.0's built-in roles that exist on every database.
const DATABASE_ROLES: [&str; 6] = [
    "read",
    "readWrite",
    "dbAdmin",
    "dbOwner",
    "userAdmin",
    "enableSharding",
];

/// mongod 7.0's built-in roles that exist only on `admin`.
const ADMIN_ROLES: [&str; 15] = [
    "clusterAdmin",
    "clusterManager",
    "clusterMonitor",
    "hostManager",
    "backup",
    "restore",
    "readAnyDatabase",
    "readWriteAnyDatabase",
    "userAdminAnyDatabase",
    "dbAdminAnyDatabase",
    "root",
    "__system",
    "__queryableBackup",
    "directShardOperations",
    "searchCoordinator",
];

/// Whether `role@db` is one of mongod's built-in roles.
pub fn role_exists(role: &Role) -> bool {
    DATABASE_ROLES.contains(&role.role.as_str())
        || (role.db == "admin" && ADMIN_ROLES.contains(&role.role.as_str()))
}

pub fn users_info(shared: &Shared, cmd: &Document, db: &str) -> Reply {
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
    for unsupported in ["filter", "showPrivileges", "showAuthenticationRestrictions"] {
        if cmd
            .get(unsupported)
            .is_some_and(|v| v != &Bson::Boolean(false))
        {
            return Err(not_implemented(format!(
                "usersInfo.{unsupported} is not supported by the test server"
            )));
        }
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

/// The `roles` field: each role named as `"<role>"` (in `db`) or `{role, db}`, and each one a
/// role that exists (mongod: 31 RoleNotFound, naming the first missing role).
fn parse_roles(v: &Bson, db: &str) -> Result<Vec<Role>, CmdError> {
    let Bson::Array(items) = v else {
        return Err(err(14, "TypeMismatch", "roles must be an array"));
    };
    let roles = parse_role_names(items, db)?;
    if let Some(missing) = roles.iter().find(|r| !role_exists(r)) {
        return Err(err(
            31,
            "RoleNotFound",
            format!("Could not find role: {}@{}", missing.role, missing.db),
        ));
    }
    Ok(roles)
}

fn parse_role_names(items: &[Bson], db: &str) -> Result<Vec<Role>, CmdError> {
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

/// Fields the store does not keep: refused (238 NotImplemented) rather than accepted and dropped,
/// so no reply claims a change that was not made.
fn refuse_unsupported(cmd: &Document, command: &str) -> Result<(), CmdError> {
    if cmd.contains_key("authenticationRestrictions") {
        return Err(not_implemented(format!(
            "{command}.authenticationRestrictions is not supported by the test server"
        )));
    }
    Ok(())
}

fn user_name<'a>(cmd: &'a Document, field: &str) -> Result<&'a str, CmdError> {
    match cmd.get_str(field) {
        Ok(s) if !s.is_empty() => Ok(s),
        _ => Err(bad_value(format!("{field} must be a non-empty user name"))),
    }
}

pub fn create_user(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let name = user_name(cmd, "createUser")?;
    refuse_unsupported(cmd, "createUser")?;
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

pub fn update_user(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let name = user_name(cmd, "updateUser")?;
    refuse_unsupported(cmd, "updateUser")?;
    let pwd = parse_pwd(cmd)?;
    let mechs = parse_mechanisms(cmd)?;
    let digest = parse_digest(cmd)?;
    let roles = cmd.get("roles").map(|v| parse_roles(v, db)).transpose()?;
    let custom = cmd.get_document("customData").ok().cloned();
    if pwd.is_none() && mechs.is_none() && roles.is_none() && custom.is_none() {
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
        if super::reply::is_state_change(code) {
            // What mongod does when its state really changes: awaitable hellos answer now.
            shared.topology.send_modify(|c| *c += 1);
        }
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

pub fn drop_user(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let name = user_name(cmd, "dropUser")?;
    commit(shared, |s| {
        s.remove(db, name)
            .map(|_| ())
            .ok_or_else(|| err(11, "UserNotFound", format!("User '{name}@{db}' not found")))
    })
}
