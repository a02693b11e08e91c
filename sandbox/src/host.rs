//! Running tools directly on the host. Only when the operator set
//! `host_exec = true`; `switchboard doctor` names it as a risk. Commands get
//! the same time limit and output cap as in a container, the same cleared
//! environment (never the gateway's tokens and keys), and file tools the
//! same confinement checks — but nothing else stands between them and the
//! machine. A command's process group is killed when it ends, times out or
//! is cancelled; a process that leaves the group (`setsid`) escapes that,
//! which only a container prevents.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::workbench::{scope_dir, scope_key};
use crate::{Capped, ExecOutput, ExecRequest, Place, SandboxError, SandboxSettings};

/// Runs commands on this machine.
#[derive(Debug)]
pub struct HostRunner {
    settings: SandboxSettings,
    state_dir: PathBuf,
}

impl HostRunner {
    /// A runner keeping scope directories under `state_dir`.
    pub fn new(settings: SandboxSettings, state_dir: PathBuf) -> Self {
        Self {
            settings,
            state_dir,
        }
    }

    /// The scope directory commands start in.
    pub fn host_dir(&self, place: &Place) -> PathBuf {
        scope_dir(&self.state_dir, &scope_key(self.settings.scope, place))
    }

    /// Run `req` on the host in `place`'s directory.
    pub async fn exec(&self, place: &Place, req: ExecRequest) -> Result<ExecOutput, SandboxError> {
        let dir = self.host_dir(place);
        std::fs::create_dir_all(&dir)
            .map_err(|e| SandboxError::Host(format!("cannot create {}: {e}", dir.display())))?;
        let timeout = req
            .timeout
            .unwrap_or(Duration::from_secs(self.settings.exec_timeout_secs))
            .min(Duration::from_secs(self.settings.exec_timeout_secs));
        let cap = req.max_output.unwrap_or(self.settings.max_output_bytes);
        let (program, args) = req
            .argv
            .split_first()
            .ok_or_else(|| SandboxError::Host("no command given".into()))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(
                req.workdir
                    .as_deref()
                    .map(PathBuf::from)
                    .unwrap_or(dir.clone()),
            )
            .process_group(0)
            .stdin(if req.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .env_clear();
        for kv in self.settings.command_env() {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
        cmd.env("HOME", &dir);
        for kv in &req.env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| SandboxError::Host(format!("{program}: {e}")))?;
        // Ends the process group however this call ends: finished, timed
        // out, or dropped with its turn.
        let _group = GroupKill(child.id());
        if let (Some(bytes), Some(mut stdin)) = (req.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let mut so = child.stdout.take();
        let mut se = child.stderr.take();
        let mut stdout = Capped::default();
        let mut stderr = Capped::default();
        let run = async {
            let (mut a, mut b) = ([0u8; 8192], [0u8; 8192]);
            loop {
                tokio::select! {
                    n = read(&mut so, &mut a), if so.is_some() => match n {
                        0 => so = None,
                        n => stdout.push(&a[..n], cap),
                    },
                    n = read(&mut se, &mut b), if se.is_some() => match n {
                        0 => se = None,
                        n => stderr.push(&b[..n], cap),
                    },
                    else => break,
                }
            }
            child.wait().await
        };
        let mut out = ExecOutput {
            timeout,
            ..ExecOutput::default()
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(status)) => out.exit_code = status.code().map(i64::from),
            Ok(Err(e)) => return Err(SandboxError::Host(e.to_string())),
            Err(_) => out.timed_out = true,
        }
        out.dropped = stdout.dropped + stderr.dropped;
        out.stdout = stdout.kept;
        out.stderr = stderr.kept;
        Ok(out)
    }
}

/// Kills a command's process group when dropped.
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        let pid = self
            .0
            .and_then(|p| rustix::process::Pid::from_raw(p as i32));
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

async fn read(pipe: &mut Option<impl tokio::io::AsyncRead + Unpin>, buf: &mut [u8]) -> usize {
    match pipe {
        Some(p) => p.read(buf).await.unwrap_or(0),
        None => 0,
    }
}
