//! Starting and stopping the gateway: only one the tray may own, the
//! systemd user unit `switchboard.service` (`deploy/systemd/switchboard-user.service`)
//! or a `switchboard serve` the tray started itself. It never stops a
//! gateway it does not own, and offers a start only when none answers at a
//! local address.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::mpsc;

use crate::Error;
use crate::locate::Target;
use crate::model::Local;

/// The systemd user unit the tray starts and stops.
pub const UNIT: &str = "switchboard.service";

/// How long a `systemctl` call may take.
const SYSTEMCTL: Duration = Duration::from_secs(10);

/// A gateway the tray started that exits within this is taken to have
/// found its port or data directory in use.
pub const EARLY_EXIT: Duration = Duration::from_secs(15);

/// How to run `switchboard serve`.
#[derive(Debug, Clone)]
pub struct ServeCommand {
    /// The `switchboard` binary.
    pub program: PathBuf,
    /// Its arguments (`--config`, `--data-dir` as the tray was given them,
    /// then `serve`).
    pub args: Vec<OsString>,
    /// Where its log goes.
    pub log: Option<PathBuf>,
}

/// A gateway the tray started, while it runs.
#[derive(Debug, Clone, Copy)]
struct Child {
    pid: u32,
}

/// How a gateway the tray started ended.
#[derive(Debug, Clone, Copy)]
pub struct ChildExit {
    /// Its exit status.
    pub status: ExitStatus,
    /// How long it ran.
    pub ran: Duration,
}

/// What the tray may do with the local gateway.
#[derive(Debug)]
pub struct Power {
    unit: bool,
    serve: Option<ServeCommand>,
    child: Option<Child>,
    local: bool,
    exits: mpsc::Sender<ChildExit>,
}

async fn systemctl(args: &[&str]) -> Result<std::process::Output, String> {
    let run = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(SYSTEMCTL, run).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(format!("cannot run systemctl: {e}")),
        Err(_) => Err(format!(
            "systemctl --user {} did not answer within {} s",
            args.join(" "),
            SYSTEMCTL.as_secs()
        )),
    }
}

/// `program`'s output or exit status as a reason.
fn failure(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.trim();
    if err.is_empty() {
        out.status.to_string()
    } else {
        crate::model::short(err, 200)
    }
}

/// The first `name` found in `dirs`.
pub fn find_in(dirs: impl IntoIterator<Item = PathBuf>, name: &str) -> Option<PathBuf> {
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The `switchboard` binary: next to this one, else on `PATH`.
pub fn find_switchboard() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    find_in(beside.into_iter().chain(path), "switchboard")
}

/// The `switchboard serve` for `target`, with `program`.
pub fn serve_command(program: PathBuf, target: &Target) -> ServeCommand {
    let mut args = Vec::new();
    if let Some(c) = &target.hints.config {
        args.push("--config".into());
        args.push(c.clone().into_os_string());
    }
    if let Some(d) = &target.hints.data_dir {
        args.push("--data-dir".into());
        args.push(d.clone().into_os_string());
    }
    args.push("serve".into());
    ServeCommand {
        program,
        args,
        log: target.data_dir.as_ref().map(|d| d.join("gateway.log")),
    }
}

impl Power {
    /// Look at what this machine offers for `target`: the user unit and a
    /// `switchboard` binary. A gateway the tray starts reports its exit on
    /// `exits`.
    pub async fn probe(target: &Target, exits: mpsc::Sender<ChildExit>) -> Self {
        let unit = target.local
            && systemctl(&["cat", UNIT])
                .await
                .is_ok_and(|out| out.status.success());
        let serve = if target.local {
            find_switchboard().map(|p| serve_command(p, target))
        } else {
            None
        };
        Self {
            unit,
            serve,
            child: None,
            local: target.local,
            exits,
        }
    }

    /// Whether the user unit runs now.
    async fn unit_active(&self) -> bool {
        self.unit
            && systemctl(&["is-active", "--quiet", UNIT])
                .await
                .is_ok_and(|out| out.status.success())
    }

    /// What the tray may do, when a gateway `answers` or not.
    pub async fn local(&self, answers: bool) -> Local {
        let can_start = !answers && self.local && (self.unit || self.serve.is_some());
        let can_stop = answers && (self.child.is_some() || self.unit_active().await);
        Local {
            can_start,
            can_stop,
            note: None,
        }
    }

    /// Start the gateway: the user unit if installed, else `switchboard
    /// serve`. Returns what was done, in words.
    pub async fn start(&mut self) -> Result<String, Error> {
        if !self.local {
            return Err(Error::Power(
                "the gateway is on another machine: start it there".into(),
            ));
        }
        if self.child.is_some() {
            return Err(Error::Power(
                "the gateway the tray started still runs".into(),
            ));
        }
        if self.unit {
            let out = systemctl(&["start", UNIT]).await.map_err(Error::Power)?;
            if !out.status.success() {
                return Err(Error::Power(format!(
                    "systemctl --user start {UNIT} failed: {}. See `journalctl --user -u {UNIT}`",
                    failure(&out)
                )));
            }
            return Ok(format!("started {UNIT} (systemd user unit)"));
        }
        let Some(serve) = self.serve.clone() else {
            return Err(Error::Power(
                "cannot start the gateway: put `switchboard` next to the tray or on PATH, or install the user unit from deploy/systemd/switchboard-user.service".into(),
            ));
        };
        let stderr = match &serve.log {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null())
            }
            None => Stdio::null(),
        };
        let mut child = Command::new(&serve.program)
            .args(&serve.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| Error::Power(format!("cannot start {}: {e}", serve.program.display())))?;
        let Some(pid) = child.id() else {
            return Err(Error::Power("the gateway exited at once".into()));
        };
        let started = Instant::now();
        self.child = Some(Child { pid });
        let exits = self.exits.clone();
        tokio::spawn(async move {
            if let Ok(status) = child.wait().await {
                let _ = exits
                    .send(ChildExit {
                        status,
                        ran: started.elapsed(),
                    })
                    .await;
            }
        });
        let log = serve
            .log
            .as_ref()
            .map(|l| format!("; its log: {}", l.display()))
            .unwrap_or_default();
        Ok(format!("started {} serve{log}", serve.program.display()))
    }

    /// The gateway the tray started has exited.
    pub fn child_exited(&mut self) {
        self.child = None;
    }

    /// Where a gateway the tray starts writes its log.
    pub fn log_path(&self) -> Option<&Path> {
        self.serve.as_ref()?.log.as_deref()
    }

    /// Stop the gateway the tray owns (never another). Returns what was
    /// done, in words.
    pub async fn stop(&mut self) -> Result<String, Error> {
        if let Some(child) = self.child {
            terminate(child.pid).await?;
            return Ok("asked the gateway the tray started to stop".into());
        }
        if self.unit_active().await {
            let out = systemctl(&["stop", UNIT]).await.map_err(Error::Power)?;
            if !out.status.success() {
                return Err(Error::Power(format!(
                    "systemctl --user stop {UNIT} failed: {}",
                    failure(&out)
                )));
            }
            return Ok(format!("stopped {UNIT} (systemd user unit)"));
        }
        Err(Error::Power(
            "this gateway was started neither by the tray nor as switchboard.service: stop it where it was started".into(),
        ))
    }

    /// When the tray quits: a gateway it started stops with it (the user
    /// unit keeps running).
    pub async fn on_quit(&mut self) {
        if let Some(child) = self.child.take() {
            if let Err(e) = terminate(child.pid).await {
                crate::log(e);
            }
        }
    }
}

/// Send SIGTERM to `pid` (the gateway drains its turns and exits).
async fn terminate(pid: u32) -> Result<(), Error> {
    let out = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Power(format!("cannot run kill: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Power(format!(
            "cannot stop the gateway (pid {pid}): {}",
            failure(&out)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locate::{Hints, TokenSource};

    #[test]
    fn serve_passes_on_what_the_tray_was_given() {
        let target = Target {
            url: "http://127.0.0.1:7788".into(),
            token: TokenSource::Given("t".into()),
            data_dir: Some("/home/a/.local/share/switchboard".into()),
            hints: Hints {
                config: Some("/home/a/sb.toml".into()),
                data_dir: None,
                url: None,
            },
            local: true,
        };
        let s = serve_command("/usr/local/bin/switchboard".into(), &target);
        assert_eq!(
            s.args,
            ["--config", "/home/a/sb.toml", "serve"].map(OsString::from)
        );
        assert_eq!(
            s.log.as_deref(),
            Some(Path::new("/home/a/.local/share/switchboard/gateway.log"))
        );
    }

    #[test]
    fn the_binary_is_found_in_the_first_folder_that_has_it() {
        let base = std::env::temp_dir().join(format!("sb-tray-find-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("switchboard"), "").unwrap();
        assert_eq!(
            find_in([a.clone(), b.clone()], "switchboard"),
            Some(b.join("switchboard"))
        );
        assert_eq!(find_in([a], "switchboard"), None);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[tokio::test]
    async fn a_gateway_the_tray_does_not_own_is_never_stopped() {
        let (tx, _rx) = mpsc::channel(1);
        let mut power = Power {
            unit: false,
            serve: None,
            child: None,
            local: true,
            exits: tx,
        };
        let local = power.local(true).await;
        assert!(!local.can_stop && !local.can_start);
        assert!(
            power
                .stop()
                .await
                .unwrap_err()
                .to_string()
                .contains("stop it where it was started")
        );
        assert!(
            power.local(false).await == Local::default(),
            "nothing to start it with"
        );
    }
}
