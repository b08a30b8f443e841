//! A throwaway PostgreSQL 15 cluster (Debian's `postgresql-15` binaries) in a temp dir, on a
//! unix socket only: `initdb`, `pg_ctl start`, stopped (immediate) and deleted on drop. The
//! test harness's own code, never the tool's. pg_hba: the `postgres` superuser by trust (plays
//! `docker exec postgres psql` over the container's local socket), every other role by
//! scram-sha-256 (plays FerretDB's connection: the password is really checked). Runs `initdb`
//! and the server as the `postgres` OS user when the tests run as root (CI).
//!
//! `psql` here is always Debian's real client; a login's password goes to that child only,
//! through `PGPASSWORD` in the child's own env.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Cluster {
    dir: tempfile::TempDir,
    pub sock: PathBuf,
    data: PathBuf,
    as_postgres: bool,
}

/// True when the binaries are here; under CI their absence fails the test, else it is skipped
/// with a line saying so.
pub fn available(test: &str) -> bool {
    let ok = Path::new(BIN).join("initdb").exists() && Path::new(BIN).join("psql").exists();
    if !ok {
        let msg = format!("{test}: needs Debian's postgresql-15 in {BIN} (scripts/setup-test-env)");
        if super::ci::under_ci() {
            panic!("{msg}");
        }
        eprintln!("SKIP {msg}");
    }
    ok
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("kr-pg-")
            .tempdir()
            .expect("temp dir");
        let as_postgres = is_root();
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).unwrap();
        if as_postgres {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(st.success(), "chown the cluster dir to postgres");
        }
        let c = Cluster {
            dir,
            sock,
            data,
            as_postgres,
        };
        c.server_cmd(
            "initdb",
            &[
                "-D",
                c.data.to_str().unwrap(),
                "-N",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
        );
        std::fs::write(
            c.data.join("pg_hba.conf"),
            "local all postgres trust\nlocal all all scram-sha-256\n",
        )
        .unwrap();
        let opts = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c password_encryption=scram-sha-256",
            c.sock.display()
        );
        let log = c.dir.path().join("log");
        c.server_cmd(
            "pg_ctl",
            &[
                "-D",
                c.data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
        c
    }

    fn server_cmd(&self, bin: &str, args: &[&str]) {
        let path = Path::new(BIN).join(bin);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{bin}: {e}"));
        assert!(
            out.status.success(),
            "{bin} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Debian's psql on this cluster's socket (the caller adds its own arguments).
    pub fn psql(&self) -> Command {
        let mut c = Command::new(Path::new(BIN).join("psql"));
        c.arg("-h")
            .arg(&self.sock)
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env("PGCONNECT_TIMEOUT", "10");
        c
    }

    /// Runs `sql` as the superuser (stdin), stopping at the first error; the output rows.
    pub fn admin(&self, sql: &str) -> String {
        let out = self.admin_output(sql);
        assert!(
            out.status.success(),
            "psql admin: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn admin_output(&self, sql: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .psql()
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Does `password` log in as `role` over scram-sha-256? Real psql, password in its env.
    pub fn login(&self, role: &str, password: &str) -> bool {
        let out = self
            .psql()
            .args(["-X", "-A", "-t", "-w", "-U", role, "-d", "postgres", "-c"])
            .arg("SELECT 'in'")
            .env("PGPASSWORD", password)
            .stdin(Stdio::null())
            .output()
            .expect("psql login");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            assert_eq!(stdout.trim(), "in");
            true
        } else {
            assert!(
                stderr.contains("password authentication failed"),
                "login as {role} failed for another reason: {stderr}"
            );
            false
        }
    }

    pub fn sock_dir(&self) -> &Path {
        &self.sock
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let path = Path::new(BIN).join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let _ = cmd
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
