//! `rehearsal up|down|status|images [--variant mongo|ferretdb] [--drift[=seed|pipeline]]
//! [--generation v1|v2] [--project NAME] [--dir DIR]`
//!
//! `--drift` (`=seed`): mongo initialised with A, then compose.env changed to B and only core
//! and periphery redeployed (the seed incident). `--drift=pipeline`: the same edit, then `compose
//! up -d` of the whole file, which recreates mongo too (a deploy pipeline's redeploy).
//!
//! Brings a Komodo-shaped deployment up on the local engine (see `komodo_testcontainers::stack`).
//! The stand-in binaries are looked up next to this executable; the `testcontainers/rehearsal`
//! wrapper builds them all first. Prints names, states and ports, never a secret. `images` only
//! builds (or reuses) the stand-in images, so tests started in parallel find them made,
//! the FerretDB variant's too (its PostgreSQL image from Debian's packages, once).
//! `--variant ferretdb` makes the stack from Komodo's `ferretdb.compose.yaml` shape: a real
//! PostgreSQL and a FerretDB-shaped front end (`komodo_testcontainers::stack::ferret`).
//! `KOMODO_ROTATE_TEST_CORE_IMAGE` / `KOMODO_ROTATE_TEST_PERIPHERY_IMAGE` run those (locally
//! loaded) images instead of the stand-ins (`komodo_testcontainers::stack::real`).

use komodo_rotate::docker::Engine;
use komodo_testcontainers::stack::{self, Generation, StackOptions, Variant};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: rehearsal up|down|status|images [--variant mongo|ferretdb] [--drift[=seed|pipeline]] [--generation v1|v2] [--project NAME] [--dir DIR]";

struct Args {
    cmd: String,
    drift: bool,
    pipeline: bool,
    generation: Generation,
    variant: Variant,
    project: String,
    dir: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        cmd: String::new(),
        drift: false,
        pipeline: false,
        generation: Generation::V2,
        variant: Variant::Mongo,
        project: "komodo".into(),
        dir: PathBuf::from(".rehearsal"),
    };
    while let Some(x) = it.next() {
        let mut val = |f: &str| {
            it.next()
                .ok_or_else(|| format!("{f} needs a value\n{USAGE}"))
        };
        match x.as_str() {
            "up" | "down" | "status" | "images" if a.cmd.is_empty() => a.cmd = x,
            "--drift" | "--drift=seed" => a.drift = true,
            "--drift=pipeline" => {
                a.drift = true;
                a.pipeline = true;
            }
            "--generation" => a.generation = val("--generation")?.parse()?,
            "--variant" => a.variant = val("--variant")?.parse()?,
            "--project" => a.project = val("--project")?,
            "--dir" => a.dir = PathBuf::from(val("--dir")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    if a.cmd.is_empty() {
        return Err(USAGE.into());
    }
    Ok(a)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rehearsal: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rehearsal: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(a: Args) -> Result<(), String> {
    let engine = Engine::connect().await.map_err(|e| e.to_string())?;
    let bin_dir = std::env::current_exe()
        .map_err(|e| format!("own path: {e}"))?
        .parent()
        .map(PathBuf::from)
        .ok_or("own path has no parent")?;
    match a.cmd.as_str() {
        "images" => {
            stack::ensure_images(&engine, &bin_dir).await?;
            stack::ensure_ferret_images(&engine, &bin_dir).await?;
            println!("rehearsal images ready (from {})", bin_dir.display());
        }
        "up" => {
            let mut opts = StackOptions::new(&a.project, &a.dir, &bin_dir);
            opts.drift = a.drift;
            opts.pipeline = a.pipeline;
            opts.generation = a.generation;
            opts.variant = a.variant;
            let s = stack::up(&engine, &opts).await?;
            println!(
                "rehearsal {} up{}: {} (127.0.0.1:{}), {}{} (127.0.0.1:{}), {}",
                s.project,
                if a.pipeline {
                    " with the pipeline's drift (mongo recreated, core crash-looping)"
                } else if a.drift {
                    " with drift (core crash-looping)"
                } else {
                    ""
                },
                s.mongo,
                s.mongo_port,
                match (&s.postgres, s.postgres_port) {
                    (Some(pg), Some(port)) => format!("{pg} (127.0.0.1:{port}), "),
                    _ => String::new(),
                },
                s.core,
                s.core_port,
                s.periphery
            );
            let images = opts.resolved_images()?;
            for (service, var, image) in [
                ("core", stack::real::CORE_IMAGE_ENV, &images.core),
                (
                    "periphery",
                    stack::real::PERIPHERY_IMAGE_ENV,
                    &images.periphery,
                ),
            ] {
                if let Some(image) = image {
                    println!("image mode: {service} runs {image} ({var}), without the stand-in's controls");
                }
            }
            println!(
                "files: {}, {}, {}",
                s.compose_env().display(),
                s.age_key().display(),
                s.config().display()
            );
            println!(
                "try: SOPS_AGE_KEY_FILE={} komodo-rotate verify --config {}",
                s.age_key().display(),
                s.config().display()
            );
        }
        "down" => {
            stack::down(&engine, &a.project, Some(&a.dir)).await?;
            println!("rehearsal {} down", a.project);
        }
        _ => {
            for line in stack::status(&engine, &a.project).await? {
                println!("{line}");
            }
        }
    }
    Ok(())
}
