//! Running one command in a scope's container: the attach stream with its
//! cap, the time limit, and ending everything the command started.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{Live, PATH, Sandboxes};
use crate::{Capped, ExecOutput, ExecRequest, SandboxError, WORKSPACE};

/// A container that is gone (404) or stopped (409) under us.
pub(super) struct Gone;

pub(super) enum Ran {
    Finished(ExecOutput),
    /// Timed out, and the processes could not be ended from inside.
    KillFailed(ExecOutput),
}
pub(super) use Ran::{Finished, KillFailed};

impl Sandboxes {
    /// Run `req` in the container `live`.
    pub(super) async fn run(
        &self,
        live: &Live,
        req: &ExecRequest,
    ) -> Result<Result<Ran, SandboxError>, Gone> {
        let docker = match self.docker().await {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        let timeout = req
            .timeout
            .unwrap_or(Duration::from_secs(self.settings.exec_timeout_secs))
            .min(Duration::from_secs(self.settings.exec_timeout_secs));
        let cap = req.max_output.unwrap_or(self.settings.max_output_bytes);
        let marker = format!(
            "{:x}-{:x}",
            std::process::id(),
            self.execs.fetch_add(1, Ordering::Relaxed)
        );
        let mut env = vec![
            PATH.to_string(),
            "HOME=/tmp".into(),
            format!("SWITCHBOARD_EXEC={marker}"),
        ];
        env.extend(req.env.iter().cloned());
        let config = ExecConfig {
            cmd: Some(req.argv.clone()),
            attach_stdin: Some(req.stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            env: Some(env),
            user: Some(format!("{}:{}", self.user.0, self.user.1)),
            working_dir: Some(req.workdir.clone().unwrap_or_else(|| WORKSPACE.into())),
            ..Default::default()
        };
        let exec = match docker.create_exec(&live.id, config).await {
            Ok(e) => e.id,
            Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => return Err(Gone),
            Err(e) => return Ok(Err(self.fail("start the command", e).await)),
        };
        let (mut output, mut input) = match docker.start_exec(&exec, None).await {
            Ok(StartExecResults::Attached { output, input }) => (output, input),
            Ok(StartExecResults::Detached) => {
                return Ok(Err(SandboxError::Engine {
                    action: "attach to the command".into(),
                    detail: "the engine detached it".into(),
                }));
            }
            Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => return Err(Gone),
            Err(e) => return Ok(Err(self.fail("start the command", e).await)),
        };
        let feeder = req.stdin.clone().map(|bytes| {
            tokio::spawn(async move {
                let _ = input.write_all(&bytes).await;
                let _ = input.shutdown().await;
            })
        });
        let mut stdout = Capped::default();
        let mut stderr = Capped::default();
        let drained = tokio::time::timeout(timeout, async {
            while let Some(item) = output.next().await {
                match item {
                    Ok(LogOutput::StdOut { message }) => stdout.push(&message, cap),
                    Ok(LogOutput::StdErr { message }) | Ok(LogOutput::Console { message }) => {
                        stderr.push(&message, cap)
                    }
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await;
        if let Some(f) = feeder {
            f.abort();
        }
        let mut out = ExecOutput {
            timeout,
            ..ExecOutput::default()
        };
        match drained {
            Ok(Ok(())) => {
                out.exit_code = self.exit_code(&docker, &exec).await;
            }
            Ok(Err(e)) => return Ok(Err(self.fail("stream the command's output", e).await)),
            Err(_) => {
                out.timed_out = true;
                drop(output);
                let ended = self.kill_marked(&docker, &live.id, &marker).await;
                out.stdout = std::mem::take(&mut stdout.kept);
                out.stderr = std::mem::take(&mut stderr.kept);
                out.dropped = stdout.dropped + stderr.dropped;
                return Ok(Ok(if ended {
                    Ran::Finished(out)
                } else {
                    Ran::KillFailed(out)
                }));
            }
        }
        out.stdout = stdout.kept;
        out.stderr = stderr.kept;
        out.dropped = stdout.dropped + stderr.dropped;
        Ok(Ok(Ran::Finished(out)))
    }

    /// The exit code of a finished exec (the engine may take a moment to
    /// record it after the output ends).
    async fn exit_code(&self, docker: &Docker, exec: &str) -> Option<i64> {
        for _ in 0..100 {
            match docker.inspect_exec(exec).await {
                Ok(i) if i.running != Some(true) => return i.exit_code,
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(_) => return None,
            }
        }
        None
    }

    /// Kill every process started by the exec tagged `marker` (children
    /// inherit the tag, even those that left the process group). False when
    /// that could not be done from inside the container.
    async fn kill_marked(&self, docker: &Docker, container: &str, marker: &str) -> bool {
        const KILL: &str = r#"
i=0
while [ $i -lt 50 ]; do
  found=
  for d in /proc/[0-9]*; do
    if tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qx "SWITCHBOARD_EXEC=$1"; then
      kill -9 "${d#/proc/}" 2>/dev/null && found=1
    fi
  done
  [ -z "$found" ] && exit 0
  i=$((i+1))
done
exit 1
"#;
        let config = ExecConfig {
            cmd: Some(vec![
                "sh".into(),
                "-c".into(),
                KILL.into(),
                "sh".into(),
                marker.into(),
            ]),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            user: Some(format!("{}:{}", self.user.0, self.user.1)),
            ..Default::default()
        };
        let attempt = async {
            let exec = docker.create_exec(container, config).await.ok()?.id;
            match docker.start_exec(&exec, None).await.ok()? {
                StartExecResults::Attached { mut output, .. } => {
                    while output.next().await.is_some() {}
                }
                StartExecResults::Detached => return None,
            }
            self.exit_code(docker, &exec).await
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(10), attempt).await,
            Ok(Some(0))
        )
    }
}
