//! `verify`: the truth matrix. Read-only: it takes no lock, writes nothing but the optional
//! metrics file, and compares secrets in memory only.

use super::verify_kinds::Holder;
use crate::cli::VerifyArgs;
use crate::config::Config;
use crate::docker::crashloop;
use crate::error::Result;
use crate::planes::{DbPasswordKeys, DockerPlane, EnvPlane};
use crate::report::{Matrix, Status};
use crate::txn::lock::RunLock;
use crate::txn::{Journal, StepStatus};
use std::time::Duration;

use super::verify_db::DB;

pub fn run(args: VerifyArgs) -> Result<i32> {
    let cfg = Config::load(args.config.config.as_deref())?;
    let matrix = super::runtime()?.block_on(build(&cfg))?;
    if args.json {
        println!("{}", matrix.to_json());
    } else {
        print!("{}", matrix.to_text());
    }
    if let Some(p) = &args.prometheus {
        crate::metrics::write(p, &crate::metrics::verify_file(&cfg, &matrix, p))?;
    }
    crate::ops::after_verify(&cfg, &matrix);
    Ok(matrix.exit_code())
}

pub async fn build(cfg: &Config) -> Result<Matrix> {
    let mut m = Matrix::default();
    let env = match EnvPlane::load(cfg) {
        Ok(e) => {
            m.push(
                "compose-env",
                Status::Ok,
                format!(
                    "{} decrypts, MAC verified ({} keys)",
                    e.file.name(),
                    e.keys().len()
                ),
            );
            Some(e)
        }
        Err(e) => {
            m.push("compose-env", Status::Drift, e.to_string());
            None
        }
    };
    let dk = match DockerPlane::load(cfg).await {
        Ok(d) => {
            m.push(
                "containers",
                Status::Ok,
                format!(
                    "mongo {}, core {}, periphery {}{}",
                    d.mongo.name,
                    d.core.name,
                    d.periphery
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if d.oneoffs.is_empty() {
                        String::new()
                    } else {
                        format!("; one-offs left out: {}", d.oneoffs.join(", "))
                    }
                ),
            );
            Some(d)
        }
        Err(e) => {
            m.push("containers", Status::Unknown, e.to_string());
            None
        }
    };

    // The git rows run git (a fetch may wait on the network) on a blocking thread while the
    // DB login and core's crash-loop look run on this one; rows keep their order.
    let git = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || {
            let mut g = Matrix::default();
            super::verify_git::rows(&cfg, &mut g);
            g
        }
    });
    let secrets = async {
        let mut s = Matrix::default();
        if let (Some(env), Some(dk)) = (&env, &dk) {
            secret_rows(cfg, env, dk, &mut s).await;
        }
        s
    };
    let look = async {
        match &dk {
            Some(dk) => Some(
                crashloop::observe_from(
                    &dk.engine,
                    dk.core.clone(),
                    Duration::from_millis(1500),
                    50,
                )
                .await,
            ),
            None => None,
        }
    };
    let (secrets, look) = tokio::join!(secrets, look);
    m.append(secrets);
    if let (Some(dk), Some(look)) = (&dk, look) {
        let looping = look
            .as_ref()
            .ok()
            .filter(|c| c.looping)
            .and_then(|c| c.signature);
        core_rows(dk, look, &mut m);
        // FerretDB: which credential core's crash loop points at (code 1 vs code 18).
        let ferret = matches!(crate::planes::ferret::FerretPlane::find(dk), Ok(Some(_)));
        if let Some((status, line)) = looping
            .filter(|_| ferret)
            .and_then(super::verify_ferret::core_cause)
        {
            m.push_kind(DB, "core-cause", status, line);
        }
    }
    match git.await {
        Ok(g) => m.append(g),
        Err(e) => m.push(
            "git",
            Status::Unknown,
            format!("git checks did not finish: {e}"),
        ),
    }
    if let Some(dk) = &dk {
        let holders: Vec<String> = dk.dependants().map(|c| c.name.clone()).collect();
        match crate::planes::leftovers::verify_line(cfg, &dk.engine, &holders).await {
            None => m.push("leftovers", Status::Ok, "no -next/-prev container"),
            Some(line) => m.push("leftovers", Status::Drift, line),
        }
    }
    // A write killed before its rename leaves its temp file (a carrier file's holds the
    // password in plaintext): named, and removed by the next run.
    let carriers: Vec<std::path::PathBuf> = match (&env, &dk) {
        (Some(env), Some(dk)) => DbPasswordKeys::detect(env, dk)
            .map(|k| k.files.into_iter().map(|f| f.host_path).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let temps = crate::planes::leftovers::temp_files(cfg, &carriers);
    if temps.is_empty() {
        m.push("temp-files", Status::Ok, "no temp file of a killed write");
    } else {
        m.push(
            "temp-files",
            Status::Drift,
            format!(
                "left by a killed write (may hold a secret in plaintext; the next rotate, rescue or resume removes them): {}",
                temps
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    match Journal::load_pending(&cfg.journal_dir()) {
        Ok(None) => m.push("journal", Status::Ok, "no interrupted run"),
        Ok(Some(j)) => {
            let at = j
                .steps
                .iter()
                .find(|r| r.status != StepStatus::Done)
                .map(|r| r.step.name())
                .unwrap_or_else(|| "commit".into());
            m.push(
                "journal",
                Status::Drift,
                format!(
                    "interrupted {} run {} at {at}: run `komodo-rotate resume`",
                    j.command, j.run_id
                ),
            )
        }
        Err(e) => m.push("journal", Status::Drift, e.to_string()),
    }
    match RunLock::is_held(&cfg.lock_path()) {
        Ok(false) => m.push("lock", Status::Ok, "free"),
        Ok(true) => m.push("lock", Status::Info, "a run is in progress"),
        Err(e) => m.push("lock", Status::Unknown, e.to_string()),
    }
    let kept = crate::planes::live::backups(cfg).len();
    m.push(
        "backups",
        Status::Info,
        format!(
            "{kept} kept in {} (keep the newest {}; each holds an old password)",
            cfg.backup_dir().display(),
            cfg.backups.keep
        ),
    );
    Ok(m)
}

/// The rows of every secret kind: the DB password's (login, holders, carriers) and the
/// env-only kinds'.
async fn secret_rows(cfg: &Config, env: &EnvPlane, dk: &DockerPlane, m: &mut Matrix) {
    match DbPasswordKeys::detect(env, dk) {
        Ok(keys) => super::verify_db::compare(cfg, env, dk, &keys, m).await,
        Err(e) => m.push("generation", Status::Drift, e.to_string()),
    }
    let holders: Vec<Holder> = std::iter::once(&dk.mongo)
        .chain(dk.dependants())
        .map(|c| Holder {
            name: &c.name,
            env: &c.env,
        })
        .collect();
    // Values as compose hands them to the containers; a key whose compose reading cannot be
    // determined gets an `unknown` row naming it instead of a comparison.
    for k in super::verify_kinds::ENV_ONLY_ROWS {
        if let Err(e) = env.value(k.key) {
            m.push_kind(k.kind, k.kind, Status::Unknown, e.to_string());
        }
    }
    super::verify_kinds::rows(
        super::verify_kinds::ENV_ONLY_ROWS,
        &|k| env.value(k).ok().flatten(),
        &holders,
        m,
    );
}

/// Core's state (crash loop or not) and each periphery's.
fn core_rows(
    dk: &DockerPlane,
    look: std::result::Result<crashloop::CrashLoop, crate::docker::DockerError>,
    m: &mut Matrix,
) {
    match look {
        Ok(c) if c.looping => m.push(
            "core-state",
            Status::Drift,
            format!(
                "crash-looping ({}, restarts {}, exit {}): {}",
                c.state,
                c.restart_count,
                c.exit_code,
                c.signature
                    .map(|s| s.describe())
                    .unwrap_or("no known log signature")
            ),
        ),
        Ok(c) if c.state == "running" => m.push(
            "core-state",
            Status::Ok,
            format!(
                "running, restarts {} ({} look{})",
                c.restart_count,
                c.looks,
                if c.looks == 1 { "" } else { "s" }
            ),
        ),
        Ok(c) => m.push(
            "core-state",
            Status::Drift,
            format!("{} (exit {})", c.state, c.exit_code),
        ),
        Err(e) => m.push("core-state", Status::Unknown, e.to_string()),
    }
    for p in &dk.periphery {
        if p.is_running() {
            m.push(format!("state {}", p.name), Status::Ok, "running");
        } else {
            m.push(format!("state {}", p.name), Status::Drift, p.state.as_str());
        }
    }
}
