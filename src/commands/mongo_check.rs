//! `komodo-rotate mongo check --uri URI --user USER`: the password comes from stdin (one trailing
//! newline stripped). Exit 0 when it logs in, 1 when MongoDB rejects it, 3 when no verdict.

use crate::cli::MongoCommand;
use crate::error::exit;
use crate::mongo::{login_works, LoginOutcome, MongoError, Target};
use crate::secret::Secret;
use crate::Result;
use std::io::Read;
use zeroize::Zeroizing;

pub fn run(cmd: MongoCommand) -> Result<i32> {
    match cmd {
        MongoCommand::Check {
            uri,
            user,
            auth_source,
        } => check(&uri, &user, &auth_source),
        MongoCommand::SetPassword { uri, user, .. } => {
            super::mongo_recover::run(&uri, &user, read_password()?)
        }
    }
}

fn check(uri: &str, user: &str, auth_source: &str) -> Result<i32> {
    let target = Target::new(uri, user)
        .map_err(|e| crate::Error::Usage(e.to_string()))?
        .with_auth_source(auth_source);
    let password = read_password()?;
    let outcome = super::runtime()?.block_on(login_works(&target, &password));
    Ok(match outcome {
        LoginOutcome::Accepted => {
            eprintln!(
                "komodo-rotate: MongoDB at {} accepts the password of {user}@{auth_source}",
                target.server()
            );
            exit::OK
        }
        LoginOutcome::Rejected => {
            eprintln!(
                "komodo-rotate: {}",
                MongoError::Rejected {
                    server: target.server().to_owned(),
                    user: format!("{user}@{auth_source}"),
                }
            );
            exit::DRIFT
        }
        LoginOutcome::Unreachable(reason) => {
            eprintln!(
                "komodo-rotate: {}",
                MongoError::Unreachable {
                    server: target.server().to_owned(),
                    user: format!("{user}@{auth_source}"),
                    reason,
                }
            );
            exit::PRECONDITION
        }
    })
}

fn read_password() -> Result<Secret> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .read_to_end(&mut buf)
        .map_err(|e| crate::Error::io("stdin", e))?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    if buf.is_empty() {
        return Err(crate::Error::Usage(
            "mongo check: no password on stdin".into(),
        ));
    }
    Secret::from_utf8(std::mem::take(&mut *buf))
        .map_err(|_| crate::Error::Usage("mongo check: the password on stdin is not UTF-8".into()))
}
