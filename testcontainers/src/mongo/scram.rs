//! SCRAM-SHA-1 / SCRAM-SHA-256, server side, as mongod does it (research/mongo-wire.md §4):
//! credentials derived from MongoDB's digest (SHA-1) or SASLprep (SHA-256), a two- or three-step
//! conversation, and every failure inside a step collapsed into one "Authentication failed.".

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{EagerHash, Hmac, KeyInit, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2_011::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The two mechanisms mongod stores credentials for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    Sha1,
    Sha256,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha1, Mechanism::Sha256];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha1 => "SCRAM-SHA-1",
            Mechanism::Sha256 => "SCRAM-SHA-256",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-1" => Some(Mechanism::Sha1),
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            _ => None,
        }
    }

    /// mongod's `scramIterationCount` / `scramSHA256IterationCount` defaults.
    pub fn default_iterations(self) -> u32 {
        match self {
            Mechanism::Sha1 => 10_000,
            Mechanism::Sha256 => 15_000,
        }
    }

    /// mongod uses the hash length minus 4 as the salt length.
    pub fn salt_len(self) -> usize {
        match self {
            Mechanism::Sha1 => 16,
            Mechanism::Sha256 => 28,
        }
    }
}

/// What mongod keeps in `credentials.<mechanism>`; never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub iteration_count: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("iteration_count", &self.iteration_count)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password contains characters SASLprep prohibits")]
    SaslPrep,
    #[error("Use of SCRAM-SHA-256 requires undigested passwords")]
    DigestedSha256,
}

/// RFC 4013 SASLprep (stored-string profile), the same implementation the driver uses.
pub fn saslprep(s: &str) -> Result<String, PasswordError> {
    stringprep::saslprep(s)
        .map(|c| c.into_owned())
        .map_err(|_| PasswordError::SaslPrep)
}

/// The string fed to PBKDF2. SHA-1: hex MD5 of `user:mongo:pwd`, unless the client already
/// digested it (`digestPassword: false`). SHA-256: SASLprep of the plaintext.
pub fn pbkdf2_input(
    mech: Mechanism,
    user: &str,
    pwd: &str,
    digest_password: bool,
) -> Result<zeroize::Zeroizing<String>, PasswordError> {
    match (mech, digest_password) {
        (Mechanism::Sha1, true) => Ok(zeroize::Zeroizing::new(mongo_digest(user, pwd))),
        (Mechanism::Sha1, false) => Ok(zeroize::Zeroizing::new(pwd.to_owned())),
        (Mechanism::Sha256, true) => saslprep(pwd).map(zeroize::Zeroizing::new),
        (Mechanism::Sha256, false) => Err(PasswordError::DigestedSha256),
    }
}

/// MongoDB's legacy password digest: lowercase hex of MD5(`user:mongo:pwd`).
pub fn mongo_digest(user: &str, pwd: &str) -> String {
    let mut h = Md5::new();
    h.update(user.as_bytes());
    h.update(b":mongo:");
    h.update(pwd.as_bytes());
    hex::encode(h.finalize())
}

pub fn random_salt(mech: Mechanism) -> Vec<u8> {
    let mut salt = vec![0u8; mech.salt_len()];
    fill_random(&mut salt);
    salt
}

fn fill_random(buf: &mut [u8]) {
    // getrandom only fails when the OS has no entropy source; a test server cannot go on then.
    getrandom::fill(buf).expect("OS random source unavailable");
}

/// Derives the stored credential from the already-prepared PBKDF2 input.
pub fn derive(mech: Mechanism, input: &str, salt: &[u8], iterations: u32) -> Credential {
    match mech {
        Mechanism::Sha1 => derive_with::<Sha1>(input, salt, iterations),
        Mechanism::Sha256 => derive_with::<Sha256>(input, salt, iterations),
    }
}

fn derive_with<D: EagerHash + Digest>(input: &str, salt: &[u8], iterations: u32) -> Credential {
    let mut salted = zeroize::Zeroizing::new(vec![0u8; <D as Digest>::output_size()]);
    pbkdf2::pbkdf2_hmac::<D>(input.as_bytes(), salt, iterations, &mut salted);
    let client_key = zeroize::Zeroizing::new(hmac::<D>(&salted, b"Client Key"));
    Credential {
        iteration_count: iterations,
        salt: salt.to_vec(),
        stored_key: <D as Digest>::digest(&client_key[..]).to_vec(),
        server_key: hmac::<D>(&salted, b"Server Key"),
    }
}

fn hmac<D: EagerHash>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn hash(mech: Mechanism, data: &[u8]) -> Vec<u8> {
    match mech {
        Mechanism::Sha1 => Sha1::digest(data).to_vec(),
        Mechanism::Sha256 => Sha256::digest(data).to_vec(),
    }
}

fn mac(mech: Mechanism, key: &[u8], msg: &[u8]) -> Vec<u8> {
    match mech {
        Mechanism::Sha1 => hmac::<Sha1>(key, msg),
        Mechanism::Sha256 => hmac::<Sha256>(key, msg),
    }
}

/// A failed SCRAM step. The reason is for the server's own log; the wire always gets code 18.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed(pub &'static str);

/// The server nonce suffix: base64 of 24 random bytes (32 characters, no padding), as mongod.
pub fn random_nonce_suffix() -> String {
    let mut b = [0u8; 24];
    fill_random(&mut b);
    B64.encode(b)
}

/// What `saslStart` learned from client-first before the user is looked up.
#[derive(Debug)]
pub struct ClientFirst {
    pub user: String,
    nonce: String,
    bare: String,
}

/// Parses `n,,n=<user>,r=<nonce>` (GS2 header + client-first-message-bare).
pub fn parse_client_first(payload: &[u8]) -> Result<ClientFirst, Failed> {
    let msg = std::str::from_utf8(payload).map_err(|_| Failed("client-first is not UTF-8"))?;
    let mut parts = msg.splitn(3, ',');
    let cb = parts.next().ok_or(Failed("empty client-first"))?;
    let authzid = parts.next().ok_or(Failed("no GS2 header"))?;
    let bare = parts.next().ok_or(Failed("no client-first-message-bare"))?;
    if cb != "n" && cb != "y" {
        return Err(Failed("channel binding is not supported"));
    }
    if bare.starts_with("m=") {
        return Err(Failed("mandatory extension not supported"));
    }
    let mut attrs = bare.split(',');
    let user = attrs
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .ok_or(Failed("first attribute is not n="))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(Failed("second attribute is not r="))?;
    if nonce.len() < 4 {
        return Err(Failed("client nonce too short"));
    }
    let user = decode_saslname(user)?;
    if !authzid.is_empty() {
        match authzid.strip_prefix("a=") {
            Some(a) if decode_saslname(a)? == user => {}
            _ => return Err(Failed("authorization identity differs from the user")),
        }
    }
    Ok(ClientFirst {
        user,
        nonce: nonce.to_owned(),
        bare: bare.to_owned(),
    })
}

fn decode_saslname(s: &str) -> Result<String, Failed> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3).ok_or(Failed("bad =XX escape"))?;
        match code {
            "2C" => out.push(','),
            "3D" => out.push('='),
            _ => return Err(Failed("bad =XX escape")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    AwaitClientFinal,
    AwaitEmpty,
}

/// One in-progress conversation, kept per connection between saslStart and saslContinue.
pub struct Conversation {
    pub mech: Mechanism,
    pub user: String,
    pub db: String,
    skip_empty_exchange: bool,
    combined_nonce: String,
    auth_prefix: String,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
    stage: Stage,
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation")
            .field("mech", &self.mech)
            .field("user", &self.user)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

/// The outcome of a successful `saslContinue` step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Reply with this payload and `done: false`; the conversation goes on.
    Continue(Vec<u8>),
    /// Reply with this payload and `done: true`; the connection is now authenticated.
    Done(Vec<u8>),
}

impl Conversation {
    /// Step 1: builds server-first for a known user's credential. `suffix` is the server's part
    /// of the nonce (random in production, injected by the test vectors).
    pub fn start(
        mech: Mechanism,
        db: &str,
        first: ClientFirst,
        cred: &Credential,
        suffix: &str,
        skip_empty_exchange: bool,
    ) -> Result<(Conversation, Vec<u8>), Failed> {
        let combined_nonce = format!("{}{}", first.nonce, suffix);
        if combined_nonce.contains(',') {
            return Err(Failed("nonce contains a comma"));
        }
        let server_first = format!(
            "r={},s={},i={}",
            combined_nonce,
            B64.encode(&cred.salt),
            cred.iteration_count
        );
        let conv = Conversation {
            mech,
            user: first.user,
            db: db.to_owned(),
            skip_empty_exchange,
            combined_nonce,
            auth_prefix: format!("{},{}", first.bare, server_first),
            stored_key: cred.stored_key.clone(),
            server_key: cred.server_key.clone(),
            stage: Stage::AwaitClientFinal,
        };
        Ok((conv, server_first.into_bytes()))
    }

    /// Steps 2 and 3. Any error ends the conversation (the caller drops it).
    pub fn step(&mut self, payload: &[u8]) -> Result<Step, Failed> {
        match self.stage {
            Stage::AwaitEmpty => {
                if payload.is_empty() {
                    Ok(Step::Done(Vec::new()))
                } else {
                    Err(Failed("unexpected payload in the final empty round"))
                }
            }
            Stage::AwaitClientFinal => {
                let server_final = self.verify_client_final(payload)?;
                if self.skip_empty_exchange {
                    Ok(Step::Done(server_final))
                } else {
                    self.stage = Stage::AwaitEmpty;
                    Ok(Step::Continue(server_final))
                }
            }
        }
    }

    fn verify_client_final(&self, payload: &[u8]) -> Result<Vec<u8>, Failed> {
        let msg = std::str::from_utf8(payload).map_err(|_| Failed("client-final is not UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(',')
            .ok_or(Failed("client-final has no proof"))?;
        let proof = proof
            .strip_prefix("p=")
            .ok_or(Failed("last attribute is not p="))?;
        let mut attrs = without_proof.split(',');
        attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(Failed("first attribute is not c="))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(Failed("second attribute is not r="))?;
        if nonce != self.combined_nonce {
            return Err(Failed("nonce mismatch"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| Failed("proof is not base64"))?;
        let auth_message = format!("{},{}", self.auth_prefix, without_proof);
        let signature = mac(self.mech, &self.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(Failed("proof has the wrong length"));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let candidate = hash(self.mech, &client_key);
        if !bool::from(candidate.ct_eq(&self.stored_key)) {
            return Err(Failed("stored key mismatch"));
        }
        let server_signature = mac(self.mech, &self.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests;
