//! Running one command in a scope's container: the attach stream with its
//! cap, the time limit, and ending everything the command started.
//!
//! Commands in one container run one at a time (the slot's run lock), and
//! when one ends — finished, timed out, or dropped because its turn was
//! cancelled — every process of the command user in the container is
//! killed ([`SWEEP`]); the container's init and keeper run as another user.
//! No marker, process group or session is trusted: a command that cleared
//! its environment, called `setsid`, double-forked or renamed itself is
//! still a process of that user, and goes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{Live, Sandboxes};
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
        lock: tokio::sync::OwnedMutexGuard<()>,
        workspace: &std::path::Path,
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
        self.execs.fetch_add(1, Ordering::Relaxed);
        let mut env = self.settings.command_env();
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
        // From here on something may run: whatever way this call ends, the
        // container is swept before the next command gets it.
        let mut sweep = Sweep {
            job: Some((docker.clone(), live.id.clone(), self.user, lock)),
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
        let limit = self.settings.workspace_max_mb.saturating_mul(1024 * 1024);
        let mut full = None;
        let drained = tokio::time::timeout(timeout, async {
            let mut check = tokio::time::interval(WORKSPACE_CHECK);
            loop {
                tokio::select! {
                    item = output.next() => match item {
                        Some(Ok(LogOutput::StdOut { message })) => stdout.push(&message, cap),
                        Some(Ok(LogOutput::StdErr { message }))
                        | Some(Ok(LogOutput::Console { message })) => stderr.push(&message, cap),
                        Some(Ok(LogOutput::StdIn { .. })) => {}
                        Some(Err(e)) => return Err(e),
                        None => return Ok(()),
                    },
                    _ = check.tick() => {
                        let used = workspace_usage(workspace).await;
                        if used > limit {
                            // Stopped here; the sweep below ends it.
                            full = Some(used);
                            return Ok(());
                        }
                    }
                }
            }
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
            Ok(Ok(())) if full.is_none() => {
                out.exit_code = exit_code(&docker, &exec).await;
            }
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = sweep.now().await;
                return Ok(Err(self.fail("stream the command's output", e).await));
            }
            Err(_) => {
                out.timed_out = true;
                drop(output);
            }
        }
        let ended = sweep.now().await;
        if let Some(used) = full {
            out.exit_code = None;
            let holds = if used == u64::MAX {
                "more than 200000 files".to_string()
            } else {
                format!("{} MiB", used / (1024 * 1024))
            };
            stderr.push(
                format!(
                    "\n[stopped: /workspace holds {holds}, over its limit of {} MiB (sandbox.workspace_max_mb); delete files to go on]\n",
                    self.settings.workspace_max_mb
                )
                .as_bytes(),
                cap + 512,
            );
        }
        out.stdout = stdout.kept;
        out.stderr = stderr.kept;
        out.dropped = stdout.dropped + stderr.dropped;
        Ok(Ok(if ended {
            Ran::Finished(out)
        } else {
            Ran::KillFailed(out)
        }))
    }
}

/// The exit code of a finished exec (the engine may take a moment to
/// record it after the output ends).
async fn exit_code(docker: &Docker, exec: &str) -> Option<i64> {
    for _ in 0..100 {
        match docker.inspect_exec(exec).await {
            Ok(i) if i.running != Some(true) => return i.exit_code,
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(_) => return None,
        }
    }
    None
}

/// How often a running command's workspace is measured.
const WORKSPACE_CHECK: Duration = Duration::from_millis(500);

/// Bytes on disk under `dir` (links not followed). A tree of more than
/// 200,000 entries counts as over any limit: it is not measured further,
/// so it cannot hide files past that count or make this slow.
async fn workspace_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut total = 0u64;
        let mut seen = 0usize;
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                seen += 1;
                if seen > 200_000 {
                    return u64::MAX;
                }
                let Ok(meta) = e.path().symlink_metadata() else {
                    continue;
                };
                total += meta.blocks() * 512;
                if meta.is_dir() {
                    stack.push(e.path());
                }
            }
        }
        total
    })
    .await
    .unwrap_or(0)
}

/// Kills every process of the command user (`$1`) in the container:
/// `kill -9 -1` signals each process the sender may signal but itself and
/// PID 1, in one step the kernel takes atomically with respect to `fork`,
/// and a thread group whose leader already exited goes with it. The
/// container's init and keeper run as another user ([`super::KEEPER_USER`]),
/// which the command user, without capabilities, cannot signal (so `kill`
/// always "succeeds"; what is left is read from `/proc`). Exits 0 once
/// nothing of the user's is left but zombies, 1 when processes keep coming
/// back. Shell builtins only, but for `sleep`.
const SWEEP: &str = r#"
i=0
while :; do
  kill -9 -1 2>/dev/null
  left=
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = "$$" ] && continue
    uid=; state=
    while read -r k a b; do
      case "$k" in State:) state=$a;; Uid:) uid=$a; break;; esac
    done < "$d/status" 2>/dev/null
    [ "$uid" = "$1" ] && [ "$state" != Z ] && left=1
  done
  [ -z "$left" ] && exit 0
  i=$((i+1))
  [ $i -ge 300 ] && exit 1
  sleep 0.01
done
"#;

/// The sweep owed after a command, with the container's run lock: done by
/// [`Sweep::now`], or from a task of its own when the command's future is
/// dropped (its turn was cancelled), the lock held until it is done.
struct Sweep {
    job: Option<SweepJob>,
}

/// The engine, the container, the command user, and the run lock.
type SweepJob = (Docker, String, (u32, u32), tokio::sync::OwnedMutexGuard<()>);

impl Sweep {
    /// Sweep now; false when the processes could not be ended from inside,
    /// and then the container is removed before its lock is let go, so no
    /// other command starts in it.
    async fn now(&mut self) -> bool {
        match self.job.take() {
            Some((docker, container, user, _lock)) => {
                let ended = sweep(&docker, &container, user).await;
                if !ended {
                    tracing::warn!(%container, "a command's processes could not be ended; removing the container");
                    let _ = docker
                        .remove_container(&container, Some(super::force_remove()))
                        .await;
                }
                ended
            }
            None => true,
        }
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        if let Some((docker, container, user, lock)) = self.job.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if !sweep(&docker, &container, user).await {
                    tracing::warn!(%container, "a cancelled command's processes could not be ended; removing the container");
                    let _ = docker
                        .remove_container(&container, Some(super::force_remove()))
                        .await;
                }
                drop(lock);
            });
        }
    }
}

/// Run [`SWEEP`] in `container`; true when it left nothing behind.
pub(super) async fn sweep(docker: &Docker, container: &str, (uid, gid): (u32, u32)) -> bool {
    let config = ExecConfig {
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            SWEEP.into(),
            "sh".into(),
            uid.to_string(),
        ]),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        user: Some(format!("{uid}:{gid}")),
        ..Default::default()
    };
    let attempt = async {
        let exec = docker.create_exec(container, config).await.ok()?.id;
        match docker.start_exec(&exec, None).await.ok()? {
            StartExecResults::Attached { mut output, .. } => while output.next().await.is_some() {},
            StartExecResults::Detached => return None,
        }
        exit_code(docker, &exec).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), attempt).await,
        Ok(Some(0))
    )
}
