//! The gateway's side of the sandbox: building the workbench from the
//! config, the start-up check, the pruning task, and what `doctor` and
//! `switchboard sandbox …` report.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchboard_sandbox::image::Recipe;
use switchboard_sandbox::{SandboxMode, Sandboxes, Workbench};
use tokio_util::sync::CancellationToken;

use crate::cli::{ImageSource, SandboxCommand};
use crate::config::Config;
use crate::health::{Health, State};

/// The health component of the sandbox.
pub const COMPONENT: &str = "sandbox";

/// Agent `name`'s workspace directory.
pub fn agent_workspace(config: &Config, data_dir: &Path, name: &str) -> PathBuf {
    config
        .agents
        .get(name)
        .and_then(|a| a.workspace.clone())
        .unwrap_or_else(|| data_dir.join("workspaces").join(name))
}

/// Where scope directories live.
pub fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("sandboxes")
}

/// The workbench the config describes.
pub fn workbench(config: &Config, data_dir: &Path) -> Workbench {
    let workspaces: BTreeMap<String, PathBuf> = config
        .agents
        .keys()
        .map(|name| (name.clone(), agent_workspace(config, data_dir, name)))
        .collect();
    Workbench::new(config.sandbox.clone(), state_dir(data_dir), workspaces)
}

/// What the sandbox looks like: engine, image, policy. Each line is
/// (ok, text); used at start-up (logged, and in health) and by `doctor`.
pub async fn report(bench: &Workbench) -> Vec<(bool, String)> {
    let s = bench.settings();
    let mut out = Vec::new();
    let mode = match s.mode {
        SandboxMode::All => "every session",
        SandboxMode::NonMain => "every session but the agents' main ones",
        SandboxMode::Off => "no session",
    };
    out.push((
        true,
        format!(
            "policy: sandbox for {mode}; scope {:?}; agent workspace {:?}; network {:?}; {} MiB, {} CPU, {} processes, {} s per command",
            s.scope, s.workspace, s.network, s.memory_mb, s.cpus, s.pids_limit, s.exec_timeout_secs
        )
        .to_lowercase(),
    ));
    if s.mode == SandboxMode::Off && !s.host_exec {
        out.push((
            true,
            "shell and file tools are not offered (mode = \"off\", host_exec = false)".into(),
        ));
    }
    for risk in s.risks() {
        out.push((false, format!("risk: {risk}")));
    }
    let Some(sb) = bench.sandboxes() else {
        return out;
    };
    match sb.engine().await {
        Ok(e) => {
            out.push((
                true,
                format!(
                    "engine: Docker {} at {} (API {}, {})",
                    e.version, e.address, e.api_version, e.platform
                ),
            ));
            match sb.image_present().await {
                Ok(true) => out.push((true, format!("image: {} is present", s.image))),
                Ok(false) => out.push((
                    false,
                    format!(
                        "image: {} is missing; build it with `switchboard sandbox build-image`",
                        s.image
                    ),
                )),
                Err(e) => out.push((false, format!("image: {e}"))),
            }
        }
        Err(e) => out.push((false, format!("engine: {e}"))),
    }
    out
}

/// Check the engine and image at start-up: log what is wrong and show it
/// in health. Tools fail closed with the same message until it is fixed.
pub async fn check_at_start(bench: Arc<Workbench>, health: Arc<Health>) {
    if bench.sandboxes().is_none() {
        health.set(COMPONENT, State::Stopped, Some("mode = \"off\"".into()));
        return;
    }
    let lines = report(&bench).await;
    let problems: Vec<&str> = lines
        .iter()
        .filter(|(ok, l)| !ok && !l.starts_with("risk:"))
        .map(|(_, l)| l.as_str())
        .collect();
    for (ok, line) in &lines {
        if *ok {
            tracing::info!("sandbox {line}");
        } else {
            tracing::warn!("sandbox {line}");
        }
    }
    if problems.is_empty() {
        health.set(
            COMPONENT,
            State::Running,
            Some(bench.settings().image.clone()),
        );
    } else {
        health.set(
            COMPONENT,
            State::Failed,
            Some(format!(
                "{}; sandboxed tools fail until fixed",
                problems.join("; ")
            )),
        );
    }
}

/// Prune idle and old containers every so often, until `stop`.
pub async fn prune_loop(sb: Arc<Sandboxes>, stop: CancellationToken) -> Result<(), String> {
    let every = Duration::from_secs((sb.settings().idle_prune_secs / 2).clamp(5, 60));
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
        match sb.prune_idle().await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(count = removed.len(), containers = ?removed, "pruned idle sandbox containers");
            }
            Ok(_) => {}
            // The engine being away is reported by the tools that need it;
            // pruning tries again next time.
            Err(e) => tracing::debug!(error = %e, "cannot prune sandbox containers now"),
        }
    }
}

/// `switchboard sandbox …`
pub async fn cli(config: &Config, command: &SandboxCommand, json: bool) -> anyhow::Result<()> {
    let dir = crate::serve::data_dir(config)?;
    let bench = workbench(config, &dir);
    // Listing, pruning and building need the engine even when the mode is
    // `off`: make a manager for these commands alone.
    let sb = match bench.sandboxes() {
        Some(sb) => sb.clone(),
        None => Arc::new(Sandboxes::new(
            config.sandbox.clone(),
            state_dir(&dir),
            BTreeMap::new(),
        )),
    };
    match command {
        SandboxCommand::BuildImage {
            from,
            tag,
            suite,
            mirror,
            cache,
            busybox,
        } => {
            let recipe = match from {
                ImageSource::Dockerfile => Recipe::Dockerfile,
                ImageSource::Busybox => Recipe::Busybox {
                    binary: busybox.clone(),
                },
                ImageSource::Debootstrap => Recipe::Debootstrap {
                    suite: suite.clone(),
                    mirror: mirror.clone(),
                    cache: cache.clone().unwrap_or_else(default_cache),
                },
            };
            let tag = tag.clone().unwrap_or_else(|| config.sandbox.image.clone());
            eprintln!("building sandbox image {tag} ({from:?})");
            let started = std::time::Instant::now();
            sb.build_image(&recipe, &tag, Arc::new(|line: &str| eprintln!("{line}")))
                .await?;
            println!(
                "Built {tag} in {:.0} s. Sandboxed tools use it when [sandbox] image = {tag:?}.",
                started.elapsed().as_secs_f64()
            );
        }
        SandboxCommand::List { all } => {
            let list = sb.list(*all).await?;
            if json {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "name": c.name, "id": c.id, "scope": c.scope, "session": c.session,
                            "agent": c.agent, "state": c.state, "created": c.created,
                            "owner": c.owner, "image": c.image,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if list.is_empty() {
                println!("No sandbox containers.");
            } else {
                let now = chrono::Utc::now().timestamp();
                println!("{:<58} {:<8} {:>8}  SCOPE", "NAME", "STATE", "AGE");
                for c in list {
                    println!(
                        "{:<58} {:<8} {:>8}  {}",
                        c.name,
                        c.state,
                        age(now - c.created),
                        c.scope
                    );
                }
            }
        }
        SandboxCommand::Prune { force } => {
            let (removed, busy) = sb.prune(*force).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "removed": removed, "busy": busy })
                );
            } else {
                for name in &removed {
                    println!("removed {name}");
                }
                for name in &busy {
                    println!(
                        "kept {name}: it is running a command (use --force to remove it anyway)"
                    );
                }
                if removed.is_empty() && busy.is_empty() {
                    println!("No sandbox containers to remove.");
                }
            }
        }
    }
    Ok(())
}

fn default_cache() -> PathBuf {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root {
        PathBuf::from("/var/cache/switchboard")
    } else {
        dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("switchboard")
    }
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
