//! A command run inside a running container (`docker exec`): argv, bytes on its stdin, its
//! stdout/stderr and exit code back. What the command needs that is secret goes on stdin, never
//! in argv or env: argv and env of an exec are visible in `docker inspect` of the exec and in
//! the engine's events. The exec gets no env of ours (it inherits the container's own).

use super::engine::{api, Engine};
use super::DockerError;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// What one exec gave back.
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub code: i64,
}

/// Output beyond this is an error (a runaway command), never kept.
const MAX_OUTPUT: usize = 4 << 20;

/// Runs `argv` in `container` as `user` (the image's default when `None`), writes `stdin` and
/// closes it, and collects the output until the command ends or `deadline` passes (then an
/// error naming the container and the program; the command may still run in the container).
/// Errors never carry stdin's bytes.
pub async fn exec(
    engine: &Engine,
    container: &str,
    user: Option<&str>,
    argv: &[String],
    stdin: &[u8],
    deadline: Duration,
) -> Result<ExecOutput, DockerError> {
    let program = argv.first().map(String::as_str).unwrap_or("");
    let target = format!("{container} ({program})");
    let fut = async {
        let created = engine
            .raw()
            .create_exec(
                container,
                CreateExecOptions::<String> {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(false),
                    cmd: Some(argv.to_vec()),
                    user: user.map(str::to_string),
                    env: Some(Vec::new()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| api("exec create", &target, e))?;
        let started = engine
            .raw()
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| api("exec start", &target, e))?;
        let (mut output, mut input) = match started {
            StartExecResults::Attached { output, input } => (output, input),
            StartExecResults::Detached => {
                return Err(DockerError::Api {
                    op: "exec start",
                    target: target.clone(),
                    status: None,
                    msg: "the engine detached the exec".into(),
                })
            }
        };
        let io_err = |what: &str, e: std::io::Error| DockerError::Api {
            op: "exec stdin",
            target: target.clone(),
            status: None,
            msg: format!("{what}: {}", e.kind()),
        };
        // Written while the output is read: a command that answers before reading all its
        // input must not block on a full pipe.
        let write = async {
            input
                .write_all(stdin)
                .await
                .map_err(|e| io_err("write", e))?;
            input.shutdown().await.map_err(|e| io_err("close", e))
        };
        let read = async {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            while let Some(chunk) = output.next().await {
                match chunk.map_err(|e| api("exec output", &target, e))? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        out.extend_from_slice(&message)
                    }
                    LogOutput::StdErr { message } => err.extend_from_slice(&message),
                    LogOutput::StdIn { .. } => {}
                }
                if out.len() + err.len() > MAX_OUTPUT {
                    return Err(DockerError::Api {
                        op: "exec output",
                        target: target.clone(),
                        status: None,
                        msg: format!("more than {MAX_OUTPUT} bytes of output"),
                    });
                }
            }
            Ok((out, err))
        };
        let (w, r) = futures_util::join!(write, read);
        let (stdout, stderr) = r?;
        // A command that exits without reading all of stdin breaks the pipe: its exit code
        // below is what counts, not the failed write.
        let _ = w;
        let code = exit_code(engine, &created.id, &target).await?;
        Ok(ExecOutput {
            stdout,
            stderr,
            code,
        })
    };
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(DockerError::Api {
            op: "exec",
            target,
            status: None,
            msg: format!("did not finish within {}s", deadline.as_secs()),
        }),
    }
}

/// The exec's exit code, once the engine reports it ended (shortly after its output closed).
async fn exit_code(engine: &Engine, id: &str, target: &str) -> Result<i64, DockerError> {
    loop {
        let i = engine
            .raw()
            .inspect_exec(id)
            .await
            .map_err(|e| api("exec inspect", target, e))?;
        if i.running != Some(true) {
            return i.exit_code.ok_or_else(|| DockerError::Api {
                op: "exec inspect",
                target: target.to_string(),
                status: None,
                msg: "the engine reports no exit code".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
