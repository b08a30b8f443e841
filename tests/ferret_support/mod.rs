//! Support for the FerretDB-variant tests (`tests/ferret_*.rs`, issue 21): a throwaway
//! PostgreSQL cluster and a `postgres::Psql` that runs the tool's psql sessions on it.

#![allow(dead_code)]

#[path = "../common/ci.rs"]
pub mod ci;
pub mod cluster;

use komodo_rotate::postgres::{Output, Psql};

/// The tool's psql sessions (its argv, its SQL on stdin) run with Debian's real psql on a
/// cluster's socket: what `docker exec <postgres> psql` does on the container's socket.
pub struct LocalPsql<'a>(pub &'a cluster::Cluster);

impl Psql for LocalPsql<'_> {
    fn at(&self) -> String {
        self.0.sock_dir().display().to_string()
    }

    async fn run(&self, argv: &[String], stdin: &[u8]) -> Result<Output, String> {
        use tokio::io::AsyncWriteExt;
        assert_eq!(argv[0], "psql", "the tool runs psql");
        let mut child =
            tokio::process::Command::new(std::path::Path::new(cluster::BIN).join("psql"))
                .args(&argv[1..])
                .arg("-h")
                .arg(self.0.sock_dir())
                .env_remove("PGPASSWORD")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())?;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).await.map_err(|e| e.to_string())?;
        drop(input);
        let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
        Ok(Output {
            stdout: out.stdout,
            stderr: out.stderr,
            code: out.status.code().unwrap_or(-1) as i64,
        })
    }
}
