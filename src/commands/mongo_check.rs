//! `komodo-rotate mongo check --uri URI --user USER`: the password comes from stdin (one trailing
//! line ending stripped, `secret::read_secret`). Exit 0 when it logs in, 1 when MongoDB rejects it, 3 when no verdict.

use crate::cli::MongoCommand;
use crate::error::exit;
use crate::mongo::{login_works, LoginOutcome, MongoError, Target};
use crate::secret::Secret;
use crate::Result;

pub fn run(cmd: MongoCommand) -> Result<i32> {
    match cmd {
        MongoCommand::Check {
            uri,
            user,
            auth_source,
        } => check(&uri, &user, &auth_source),
        MongoCommand::SetPassword {
            uri, user, config, ..
        } => super::mongo_recover::run(&uri, &user, config.as_deref(), read_password()?),
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
    let pw = crate::secret::read_secret(std::io::stdin().lock(), "stdin")?;
    if pw.is_empty() {
        return Err(crate::Error::Usage("mongo: no password on stdin".into()));
    }
    Ok(pw)
}
