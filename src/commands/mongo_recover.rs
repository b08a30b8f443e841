//! `mongo set-password --no-auth`: the step of the last-resort runbook that needs MongoDB. It
//! talks to a throw-away mongod started on the real data volume without access control
//! (research/komodo.md §4.5), runs `updateUser {pwd}` there, and proves nothing else: the proof
//! is the real container accepting the password after it is started again (`verify`).
//!
//! Refused for anything but a loopback address: an unauthenticated mongod must never be reached
//! over a network, and this command must never be pointed at one by mistake.

use crate::error::{Error, Result};
use crate::secret::Secret;
use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use std::time::Duration;

pub fn run(uri: &str, user: &str, new: Secret) -> Result<i32> {
    let usage = |m: String| Error::Usage(format!("mongo set-password: {m}"));
    let rest = uri
        .strip_prefix("mongodb://")
        .ok_or_else(|| usage("--uri must start with mongodb://".into()))?;
    if rest.contains('@') {
        return Err(usage(
            "--uri must not hold credentials: the recovery mongod runs without access control"
                .into(),
        ));
    }
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    if !matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        return Err(usage(format!(
            "--uri host {name} is not a loopback address; publish the recovery container on 127.0.0.1"
        )));
    }
    if user.is_empty() {
        return Err(usage("--user is empty".into()));
    }
    super::runtime()?.block_on(async {
        let mut opts = ClientOptions::parse(uri)
            .await
            .map_err(|e| usage(format!("--uri: {}", one_line(&e.to_string()))))?;
        opts.server_selection_timeout = Some(Duration::from_secs(5));
        opts.connect_timeout = Some(Duration::from_secs(5));
        opts.direct_connection = Some(true);
        let client = mongodb::Client::with_options(opts)
            .map_err(|e| usage(format!("--uri: {}", one_line(&e.to_string()))))?;
        let cmd = doc! { "updateUser": user, "pwd": new.expose(), "writeConcern": {"w": "majority"} };
        let result = client.database("admin").run_command(cmd).await;
        client.shutdown().await;
        match result {
            Ok(_) => {
                eprintln!("komodo-rotate: {user}@admin on {host} has the new password; stop this mongod and start the real one");
                Ok(0)
            }
            Err(e) => {
                // The driver's message can quote the command; drop anything that holds the value.
                let msg = one_line(&e.to_string());
                let msg = if msg.contains(new.expose()) { "the command failed".to_string() } else { msg };
                Err(Error::Precondition(format!(
                    "updateUser {user} on {host} failed (is this mongod running without --auth, and does {user} exist in admin?): {msg}"
                )))
            }
        }
    })
}

fn one_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}
