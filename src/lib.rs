//! komodo-rotate: keep the three planes of a Komodo deployment (MongoDB's live credential, the
//! SOPS-encrypted compose.env, the running containers) in agreement, and rotate their secrets as
//! one transaction. See DESIGN.md in the project's shared folder for the architecture.

pub mod alert;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod config;
pub mod docker;
pub mod error;
pub mod fsutil;
pub mod git;
pub mod kinds;
pub mod metrics;
pub mod mongo;
pub mod ops;
pub mod output;
pub mod planes;
pub mod postgres;
pub mod probe;
pub mod report;
pub mod secret;
pub mod sops;
pub mod text;
pub mod txn;

pub use error::{Error, Result};
