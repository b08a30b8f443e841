//! The SOPS dotenv store: reads, verifies, edits and writes `compose.env` exactly as Go sops
//! 3.x does (research/sops-dotenv.md pins the format), without running sops.
//!
//! - [`dotenv`]: sops' line grammar (not compose's);
//! - [`cipher`]: the AES-256-GCM value envelope with its 32-byte IV;
//! - [`mac`]: the SHA-512 file MAC and its Go-RFC3339 timestamp AAD;
//! - [`metadata`]: the flattened `sops_*` lines;
//! - [`keys`]: age identities and recipients, and the data-key envelope;
//! - [`store`]: [`SopsFile`] (load, decrypt, rule queries); [`decrypted`]: [`Decrypted`];
//! - [`edit`]: line-preserving edits; [`write`]: [`encrypt_new`], [`write_verified`].

mod cipher;
mod decrypted;
mod dotenv;
mod edit;
mod error;
pub(crate) mod keys;
mod mac;
mod metadata;
mod store;
mod write;

pub use decrypted::{Decrypted, KeyInfo};
pub use edit::VerifiedEdit;
pub use error::SopsError;
pub use keys::Identities;
pub use store::SopsFile;
pub use write::{
    encrypt_new, encrypt_new_named, write_edit, write_verified, write_verified_checked,
    WRITTEN_SOPS_VERSION,
};
