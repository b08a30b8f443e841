//! The user store: `admin.system.users` documents, shaped as mongod stores them (salt, counts,
//! storedKey, serverKey; never a password), persisted in the data directory as a BSON dump
//! (`admin.system.users.bson`, one document after another, like mongodump) and replaced
//! atomically on every change.

use super::scram::{Credential, Mechanism};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub const STORE_FILE: &str = "admin.system.users.bson";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub role: String,
    pub db: String,
}

#[derive(Debug, Clone)]
pub struct User {
    pub user: String,
    pub db: String,
    pub user_id: [u8; 16],
    pub roles: Vec<Role>,
    pub credentials: BTreeMap<Mechanism, Credential>,
    pub custom_data: Option<Document>,
}

impl User {
    pub fn mechanisms(&self) -> Vec<&'static str> {
        self.credentials.keys().map(|m| m.name()).collect()
    }

    /// Users holding these roles may manage users, as in mongod's built-in roles.
    pub fn may_manage_users_on(&self, db: &str) -> bool {
        self.roles.iter().any(|r| {
            (r.db == "admin" && matches!(r.role.as_str(), "root" | "userAdminAnyDatabase"))
                || (r.db == db && matches!(r.role.as_str(), "userAdmin" | "dbOwner"))
        })
    }

    pub fn to_document(&self, with_credentials: bool) -> Document {
        let mut d = doc! {
            "_id": format!("{}.{}", self.db, self.user),
            "userId": Binary { subtype: BinarySubtype::Uuid, bytes: self.user_id.to_vec() },
            "user": &self.user,
            "db": &self.db,
        };
        if with_credentials {
            let mut creds = Document::new();
            for (m, c) in &self.credentials {
                creds.insert(
                    m.name(),
                    doc! {
                        "iterationCount": c.iteration_count as i32,
                        "salt": B64.encode(&c.salt),
                        "storedKey": B64.encode(&c.stored_key),
                        "serverKey": B64.encode(&c.server_key),
                    },
                );
            }
            d.insert("credentials", creds);
        }
        d.insert("roles", roles_bson(&self.roles));
        if let Some(cd) = &self.custom_data {
            d.insert("customData", cd.clone());
        }
        d
    }

    fn from_document(d: &Document) -> Result<User, String> {
        let s = |k: &str| {
            d.get_str(k)
                .map(str::to_owned)
                .map_err(|_| format!("no {k}"))
        };
        let user_id: [u8; 16] = match d.get("userId") {
            Some(Bson::Binary(b)) => b.bytes.as_slice().try_into().map_err(|_| "bad userId")?,
            _ => return Err("no userId".into()),
        };
        let mut credentials = BTreeMap::new();
        if let Ok(creds) = d.get_document("credentials") {
            for (name, c) in creds {
                let mech = Mechanism::from_name(name).ok_or("unknown mechanism")?;
                let c = c.as_document().ok_or("bad credential")?;
                let field = |k: &str| {
                    c.get_str(k)
                        .ok()
                        .and_then(|v| B64.decode(v).ok())
                        .ok_or(format!("bad {k}"))
                };
                let iterations = c.get_i32("iterationCount").map_err(|_| "bad count")?;
                credentials.insert(
                    mech,
                    Credential {
                        iteration_count: u32::try_from(iterations).map_err(|_| "bad count")?,
                        salt: field("salt")?,
                        stored_key: field("storedKey")?,
                        server_key: field("serverKey")?,
                    },
                );
            }
        }
        let mut roles = Vec::new();
        for r in d.get_array("roles").map_err(|_| "no roles")? {
            let r = r.as_document().ok_or("bad role")?;
            roles.push(Role {
                role: r.get_str("role").map_err(|_| "bad role")?.to_owned(),
                db: r.get_str("db").map_err(|_| "bad role")?.to_owned(),
            });
        }
        Ok(User {
            user: s("user")?,
            db: s("db")?,
            user_id,
            roles,
            credentials,
            custom_data: d.get_document("customData").ok().cloned(),
        })
    }
}

pub fn roles_bson(roles: &[Role]) -> Vec<Bson> {
    roles
        .iter()
        .map(|r| Bson::Document(doc! {"role": &r.role, "db": &r.db}))
        .collect()
}

pub fn new_user_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).expect("OS random source unavailable");
    // RFC 4122 version 4, variant 1: what mongod's UUID::gen() produces.
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

/// Users keyed by (db, name), as mongod keys them.
#[derive(Debug, Clone, Default)]
pub struct UserStore {
    users: BTreeMap<(String, String), User>,
}

impl UserStore {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STORE_FILE)
    }

    /// Loads the store of `dir`; `Ok(None)` when the directory was never initialised.
    pub fn load(dir: &Path) -> io::Result<Option<UserStore>> {
        let path = Self::path(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |msg: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {msg}", path.display()),
            )
        };
        let mut store = UserStore::default();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let doc = Document::from_reader(&mut rest).map_err(|e| bad(e.to_string()))?;
            let user = User::from_document(&doc).map_err(bad)?;
            store.insert(user);
        }
        Ok(Some(store))
    }

    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let mut out = Vec::new();
        for u in self.users.values() {
            u.to_document(true)
                .to_writer(&mut out)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        komodo_rotate::fsutil::write_atomic(
            &Self::path(dir),
            &out,
            komodo_rotate::fsutil::Mode::Exactly(0o600),
        )
    }

    pub fn get(&self, db: &str, user: &str) -> Option<&User> {
        self.users.get(&(db.to_owned(), user.to_owned()))
    }

    pub fn get_mut(&mut self, db: &str, user: &str) -> Option<&mut User> {
        self.users.get_mut(&(db.to_owned(), user.to_owned()))
    }

    pub fn insert(&mut self, user: User) {
        self.users
            .insert((user.db.clone(), user.user.clone()), user);
    }

    pub fn remove(&mut self, db: &str, user: &str) -> Option<User> {
        self.users.remove(&(db.to_owned(), user.to_owned()))
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}
