//! Containers on the Docker engine, through bollard: one per scope, made on
//! first use, reused, pruned when idle or old, hardened by default.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use tokio::sync::Mutex;

use crate::settings::parse_user;
use crate::workbench::{scope_dir, scope_key};

mod exec;
mod lifecycle;

use crate::{
    AGENT_WORKSPACE, ExecOutput, ExecRequest, LABEL_AGENT, LABEL_CONFIG, LABEL_MANAGED,
    LABEL_OWNER, LABEL_SCOPE, LABEL_SESSION, Place, SandboxError, SandboxScope, SandboxSettings,
    WORKSPACE, WorkspaceAccess, slug, stable_hash,
};
use exec::{Finished, Gone, KillFailed};

/// The `uid:gid` the container's init and keeper run as: never the
/// commands' user (`nobody`'s numbers; no account is needed in the image).
pub(crate) const KEEPER_USER: &str = "65534:65534";

/// What the engine says of itself, for `doctor` and health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// Where we reached it.
    pub address: String,
    /// The engine's version.
    pub version: String,
    /// The API version we speak with it (negotiated).
    pub api_version: String,
    /// Its operating system and architecture.
    pub platform: String,
}

/// One of our containers, as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Its name.
    pub name: String,
    /// Its id (short).
    pub id: String,
    /// The scope key it serves.
    pub scope: String,
    /// The session that first used it.
    pub session: String,
    /// The agent it serves.
    pub agent: String,
    /// `running`, `exited`, ...
    pub state: String,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// The owning gateway (a hash of its data directory).
    pub owner: String,
    /// The image it runs.
    pub image: String,
}

#[derive(Debug, Clone)]
struct Live {
    id: String,
    created: Instant,
}

#[derive(Debug)]
struct Slot {
    /// Held while the container is made, so concurrent calls of one scope
    /// never race on creating or naming it.
    live: Mutex<Option<Live>>,
    /// Held by a command from its start until the container has been swept
    /// after it: one command at a time per container, so the sweep ends
    /// only what that command left.
    run_lock: Arc<Mutex<()>>,
    busy: AtomicUsize,
    last_used: StdMutex<Instant>,
}

/// Counts a call in flight on a slot, so pruning leaves the slot alone.
struct Busy<'a>(&'a Slot);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        *self.0.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

/// This gateway's sandbox containers.
#[derive(Debug)]
pub struct Sandboxes {
    settings: SandboxSettings,
    owner: String,
    state_dir: PathBuf,
    agent_workspaces: BTreeMap<String, PathBuf>,
    user: (u32, u32),
    config_hash: String,
    docker: Mutex<Option<Docker>>,
    slots: StdMutex<HashMap<String, Arc<Slot>>>,
    execs: AtomicU64,
}

impl Sandboxes {
    /// Sandboxes whose scope directories live under `state_dir` (the
    /// gateway uses `<data_dir>/sandboxes`); `agent_workspaces` maps agent
    /// names to the directories mounted at `/agent` when the settings say
    /// so. Nothing is contacted until first use.
    pub fn new(
        settings: SandboxSettings,
        state_dir: impl Into<PathBuf>,
        agent_workspaces: BTreeMap<String, PathBuf>,
    ) -> Self {
        let state_dir = state_dir.into();
        let owner = format!(
            "{:012x}",
            stable_hash(&[&state_dir.to_string_lossy()]) & 0xffff_ffff_ffff
        );
        let user = settings
            .user
            .as_deref()
            .and_then(parse_user)
            .unwrap_or_else(default_user);
        let config_hash = format!(
            "{:016x}",
            stable_hash(&[
                &settings.image,
                &settings.network,
                &format!("{:?}", settings.workspace),
                &format!("{}:{}", user.0, user.1),
                &settings.memory_mb.to_string(),
                &settings.cpus.to_string(),
                &settings.pids_limit.to_string(),
                &settings.tmp_mb.to_string(),
                &settings.workspace_max_mb.to_string(),
                &settings.command_env().join("\n"),
                KEEPER_USER,
            ])
        );
        Self {
            settings,
            owner,
            state_dir,
            agent_workspaces,
            user,
            config_hash,
            docker: Mutex::new(None),
            slots: StdMutex::new(HashMap::new()),
            execs: AtomicU64::new(0),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &SandboxSettings {
        &self.settings
    }

    /// How many containers this process holds now (a slot busy making or
    /// using its container counts as one).
    pub fn containers(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .values()
            .filter(|s| s.live.try_lock().map_or(true, |live| live.is_some()))
            .count()
    }

    /// Whether this process has run anything in a container yet.
    pub fn used(&self) -> bool {
        self.execs.load(Ordering::Relaxed) > 0
    }

    /// The `uid:gid` commands run as.
    pub(crate) fn user(&self) -> (u32, u32) {
        self.user
    }

    /// The label value naming this gateway's containers.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The engine's address as configured.
    pub fn address(&self) -> String {
        match &self.settings.docker_host {
            Some(h) => h.clone(),
            None => std::env::var("DOCKER_HOST")
                .unwrap_or_else(|_| "unix:///var/run/docker.sock".into()),
        }
    }

    /// The scope key a conversation's tools run under.
    pub fn scope_key(&self, place: &Place) -> String {
        scope_key(self.settings.scope, place)
    }

    /// The host directory mounted at `/workspace` for `place`.
    pub fn host_dir(&self, place: &Place) -> PathBuf {
        scope_dir(&self.state_dir, &self.scope_key(place))
    }

    /// The container's name for a scope key.
    fn container_name(&self, key: &str) -> String {
        format!(
            "switchboard-{}-{}-{:08x}",
            &self.owner[..8],
            slug(key, 40),
            stable_hash(&[key]) as u32
        )
    }

    /// Connect (once; again after the engine went away) and negotiate the
    /// API version.
    pub(crate) async fn docker(&self) -> Result<Docker, SandboxError> {
        let mut guard = self.docker.lock().await;
        if let Some(d) = &*guard {
            return Ok(d.clone());
        }
        let address = self.address();
        let unreachable = |e: DockerError| SandboxError::EngineUnreachable {
            address: address.clone(),
            detail: e.to_string(),
        };
        let docker = if let Some(path) = address.strip_prefix("unix://") {
            Docker::connect_with_unix(path, 600, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(&address, 600, bollard::API_DEFAULT_VERSION)
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        *guard = Some(docker.clone());
        Ok(docker)
    }

    /// Turn a bollard error into ours; a connection failure also forgets
    /// the connection so the next call reconnects.
    pub(crate) async fn fail(&self, action: &str, e: DockerError) -> SandboxError {
        match e {
            DockerError::DockerResponseServerError {
                status_code,
                message,
            } => SandboxError::Engine {
                action: action.into(),
                detail: format!("{message} (HTTP {status_code})"),
            },
            DockerError::DockerStreamError { error } => SandboxError::Engine {
                action: action.into(),
                detail: error,
            },
            other => {
                *self.docker.lock().await = None;
                SandboxError::EngineUnreachable {
                    address: self.address(),
                    detail: other.to_string(),
                }
            }
        }
    }

    /// Ask the engine who it is.
    pub async fn engine(&self) -> Result<EngineInfo, SandboxError> {
        let docker = self.docker().await?;
        let v = match docker.version().await {
            Ok(v) => v,
            Err(e) => return Err(self.fail("report its version", e).await),
        };
        Ok(EngineInfo {
            address: self.address(),
            version: v.version.unwrap_or_default(),
            api_version: docker.client_version().to_string(),
            platform: format!(
                "{}/{}",
                v.os.unwrap_or_default(),
                v.arch.unwrap_or_default()
            ),
        })
    }

    /// Whether the configured image is in the engine.
    pub async fn image_present(&self) -> Result<bool, SandboxError> {
        image_present(&self.docker().await?, &self.settings.image)
            .await
            .map_err(|e| SandboxError::Engine {
                action: "inspect the image".into(),
                detail: e.to_string(),
            })
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(Slot {
                    live: Mutex::new(None),
                    run_lock: Arc::new(Mutex::new(())),
                    busy: AtomicUsize::new(0),
                    last_used: StdMutex::new(Instant::now()),
                })
            })
            .clone()
    }

    /// Run one command in `place`'s container, making the container first
    /// when there is none.
    pub async fn exec(&self, place: &Place, req: ExecRequest) -> Result<ExecOutput, SandboxError> {
        let key = self.scope_key(place);
        let slot = self.slot(&key);
        slot.busy.fetch_add(1, Ordering::SeqCst);
        let _busy = Busy(&slot);
        let mut last_error = None;
        for _attempt in 0..2 {
            let lock = slot.run_lock.clone().lock_owned().await;
            let live = self.ensure(&key, place, &slot).await?;
            match self.run(&live, &req, lock, &self.host_dir(place)).await {
                Err(Gone) => {
                    // Removed or stopped behind our back: make it again.
                    tracing::info!(scope = %key, "sandbox container went away; recreating it");
                    *slot.live.lock().await = None;
                    last_error = Some(SandboxError::Engine {
                        action: "run the command".into(),
                        detail: "the container disappeared twice in a row".into(),
                    });
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(KillFailed(out))) => {
                    // The command could not be ended from inside (a fork
                    // bomb leaves no room for `kill`): end the container.
                    let docker = self.docker().await?;
                    let _ = docker
                        .remove_container(&live.id, Some(force_remove()))
                        .await;
                    *slot.live.lock().await = None;
                    return Ok(out);
                }
                Ok(Ok(Finished(out))) => return Ok(out),
            }
        }
        Err(last_error.unwrap_or(SandboxError::NotAvailable))
    }

    /// The scope's container, made (or adopted from an earlier run) when
    /// missing.
    async fn ensure(&self, key: &str, place: &Place, slot: &Slot) -> Result<Live, SandboxError> {
        let mut live = slot.live.lock().await;
        if let Some(l) = &*live {
            return Ok(l.clone());
        }
        let docker = self.docker().await?;
        let name = self.container_name(key);
        match docker.inspect_container(&name, None).await {
            Ok(found) => {
                let labels = found
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default();
                let id = found.id.clone().unwrap_or_else(|| name.clone());
                if labels.get(LABEL_CONFIG) == Some(&self.config_hash) {
                    let running = found
                        .state
                        .as_ref()
                        .and_then(|s| s.running)
                        .unwrap_or(false);
                    if !running && let Err(e) = docker.start_container(&id, None).await {
                        return Err(self.fail("start the sandbox container", e).await);
                    }
                    // Left by an earlier run that may have stopped mid-command:
                    // nothing of that command may still run.
                    if !running || exec::sweep(&docker, &id, self.user).await {
                        let l = Live {
                            id,
                            created: Instant::now(),
                        };
                        *live = Some(l.clone());
                        return Ok(l);
                    }
                    tracing::warn!(container = %name, "an earlier run's processes could not be ended; replacing the container");
                }
                // Made with other settings (or not clean): replace it.
                tracing::info!(container = %name, "replacing the sandbox container");
                if let Err(e) = docker.remove_container(&id, Some(force_remove())).await {
                    return Err(self.fail("remove an outdated sandbox container", e).await);
                }
            }
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(self.fail("inspect the sandbox container", e).await),
        }
        match image_present(&docker, &self.settings.image).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(SandboxError::ImageMissing {
                    image: self.settings.image.clone(),
                });
            }
            Err(e) => return Err(self.fail("inspect the sandbox image", e).await),
        }
        let host_dir = self.host_dir(place);
        self.prepare_dir(&host_dir)?;
        let body = self.container_body(key, place, &host_dir)?;
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await;
        let id = match created {
            Ok(r) => r.id,
            Err(e) => return Err(self.fail("create the sandbox container", e).await),
        };
        if let Err(e) = docker.start_container(&id, None).await {
            let _ = docker.remove_container(&id, Some(force_remove())).await;
            return Err(self.fail("start the sandbox container", e).await);
        }
        tracing::info!(container = %name, scope = %key, "sandbox container started");
        let l = Live {
            id,
            created: Instant::now(),
        };
        *live = Some(l.clone());
        Ok(l)
    }

    /// Make `dir` and hand it to the sandbox user.
    fn prepare_dir(&self, dir: &Path) -> Result<(), SandboxError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SandboxError::Host(format!("cannot create {}: {e}", dir.display())))?;
        hand_over(dir, self.user);
        Ok(())
    }

    fn container_body(
        &self,
        key: &str,
        place: &Place,
        host_dir: &Path,
    ) -> Result<ContainerCreateBody, SandboxError> {
        let s = &self.settings;
        let mut binds = vec![format!("{}:{WORKSPACE}:rw", host_dir.display())];
        if s.workspace != WorkspaceAccess::None && s.scope != SandboxScope::Shared {
            let dir = self.agent_workspaces.get(&place.agent).ok_or_else(|| {
                SandboxError::Host(format!(
                    "agent `{}` has no workspace directory to mount",
                    place.agent
                ))
            })?;
            let mode = if s.workspace == WorkspaceAccess::Rw {
                hand_over(dir, self.user);
                "rw"
            } else {
                "ro"
            };
            binds.push(format!("{}:{AGENT_WORKSPACE}:{mode}", dir.display()));
        }
        let memory = (s.memory_mb * 1024 * 1024) as i64;
        let workspace_max = s.workspace_max_mb.saturating_mul(1024 * 1024);
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_OWNER.to_string(), self.owner.clone()),
            (LABEL_SCOPE.to_string(), key.to_string()),
            (LABEL_SESSION.to_string(), place.session_key.clone()),
            (LABEL_AGENT.to_string(), place.agent.clone()),
            (LABEL_CONFIG.to_string(), self.config_hash.clone()),
        ]);
        Ok(ContainerCreateBody {
            image: Some(s.image.clone()),
            cmd: Some(vec!["sleep".into(), "2147483647".into()]),
            // Init and keeper run as a user commands cannot signal, so the
            // sweep after each command can kill everything of theirs.
            user: Some(KEEPER_USER.into()),
            working_dir: Some(WORKSPACE.into()),
            env: Some(s.command_env()),
            labels: Some(labels),
            network_disabled: Some(s.network == "none"),
            host_config: Some(HostConfig {
                binds: Some(binds),
                tmpfs: Some(HashMap::from([(
                    "/tmp".to_string(),
                    format!("rw,nosuid,nodev,size={}m,mode=1777", s.tmp_mb),
                )])),
                readonly_rootfs: Some(true),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                memory: Some(memory),
                memory_swap: Some(memory),
                nano_cpus: Some((s.cpus * 1e9) as i64),
                pids_limit: Some(s.pids_limit),
                // No one file, in the workspace or anywhere, grows past the
                // workspace's limit (the writer gets SIGXFSZ).
                ulimits: Some(vec![ResourcesUlimits {
                    name: Some("fsize".into()),
                    soft: Some(workspace_max as i64),
                    hard: Some(workspace_max as i64),
                }]),
                init: Some(true),
                network_mode: Some(s.network.clone()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

fn force_remove() -> RemoveContainerOptions {
    RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    }
}

pub(crate) async fn image_present(docker: &Docker, image: &str) -> Result<bool, DockerError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The gateway's own uid:gid, or 1000:1000 when it runs as root (tools
/// never run as root).
fn default_user() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self") {
        Ok(m) if m.uid() != 0 && m.gid() != 0 && m.uid() != 65534 => (m.uid(), m.gid()),
        _ => (1000, 1000),
    }
}

/// Give `dir` to the sandbox user when we may (we run as root); otherwise
/// it is already ours and the sandbox runs as us.
fn hand_over(dir: &Path, (uid, gid): (u32, u32)) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    if meta.uid() == uid {
        return;
    }
    if let Err(e) = std::os::unix::fs::chown(dir, Some(uid), Some(gid)) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot hand the directory to the sandbox user; commands may not write there");
    }
}
