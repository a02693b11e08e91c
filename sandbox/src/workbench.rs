//! Where a conversation's shell and file tools run: in its sandbox, on the
//! host (only when the operator opted in), or nowhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{
    AGENT_WORKSPACE, ExecOutput, ExecRequest, HostRunner, SandboxError, SandboxMode, SandboxScope,
    SandboxSettings, Sandboxes, WORKSPACE, WorkspaceAccess, slug, stable_hash,
};

/// The conversation a tool call serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Place {
    /// The session key (`agent:main:telegram:dm:42`).
    pub session_key: String,
    /// The agent's name.
    pub agent: String,
}

impl Place {
    /// A place for `session_key` of `agent`.
    pub fn new(session_key: impl Into<String>, agent: impl Into<String>) -> Self {
        Self {
            session_key: session_key.into(),
            agent: agent.into(),
        }
    }

    /// Whether this is an agent's main session (`agent:<name>:main`).
    pub fn is_main(&self) -> bool {
        let parts: Vec<&str> = self.session_key.split(':').collect();
        parts.len() == 3 && parts[0] == "agent" && parts[2] == "main"
    }
}

/// Where a call runs.
#[derive(Debug, Clone, Copy)]
pub enum Backend<'a> {
    /// In a container.
    Sandbox(&'a Sandboxes),
    /// On the host (opted into with `host_exec`).
    Host(&'a HostRunner),
}

/// The scope key of `place` under `scope`.
pub(crate) fn scope_key(scope: SandboxScope, place: &Place) -> String {
    match scope {
        SandboxScope::Session => format!("session:{}", place.session_key),
        SandboxScope::Agent => format!("agent:{}", place.agent),
        SandboxScope::Shared => "shared".into(),
    }
}

/// The host directory of a scope key.
pub(crate) fn scope_dir(state_dir: &Path, key: &str) -> PathBuf {
    state_dir.join(format!(
        "{}-{:08x}",
        slug(key, 48),
        stable_hash(&[key]) as u32
    ))
}

/// Where each conversation's sandboxed tools run.
#[derive(Debug)]
pub struct Workbench {
    settings: SandboxSettings,
    sandboxes: Option<Arc<Sandboxes>>,
    host: Option<HostRunner>,
    agent_workspaces: BTreeMap<String, PathBuf>,
}

impl Workbench {
    /// A workbench keeping scope directories under `state_dir`.
    pub fn new(
        settings: SandboxSettings,
        state_dir: impl Into<PathBuf>,
        agent_workspaces: BTreeMap<String, PathBuf>,
    ) -> Self {
        let state_dir = state_dir.into();
        let sandboxes = (settings.mode != SandboxMode::Off).then(|| {
            Arc::new(Sandboxes::new(
                settings.clone(),
                state_dir.clone(),
                agent_workspaces.clone(),
            ))
        });
        let host = settings
            .host_exec
            .then(|| HostRunner::new(settings.clone(), state_dir.join("host")));
        Self {
            settings,
            sandboxes,
            host,
            agent_workspaces,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &SandboxSettings {
        &self.settings
    }

    /// The container manager, unless the mode is `off`.
    pub fn sandboxes(&self) -> Option<&Arc<Sandboxes>> {
        self.sandboxes.as_ref()
    }

    /// Whether `place` gets a sandbox.
    pub fn covers(&self, place: &Place) -> bool {
        match self.settings.mode {
            SandboxMode::All => true,
            SandboxMode::NonMain => !place.is_main(),
            SandboxMode::Off => false,
        }
    }

    /// Whether `place` is offered the shell and file tools at all.
    pub fn offers(&self, place: &Place) -> bool {
        self.covers(place) || self.host.is_some()
    }

    /// Where `place`'s calls run.
    pub fn backend(&self, place: &Place) -> Result<Backend<'_>, SandboxError> {
        match (&self.sandboxes, &self.host) {
            (Some(s), _) if self.covers(place) => Ok(Backend::Sandbox(s)),
            (_, Some(h)) => Ok(Backend::Host(h)),
            _ => Err(SandboxError::NotAvailable),
        }
    }

    /// Run a command for `place`.
    pub async fn exec(&self, place: &Place, req: ExecRequest) -> Result<ExecOutput, SandboxError> {
        match self.backend(place)? {
            Backend::Sandbox(s) => s.exec(place, req).await,
            Backend::Host(h) => h.exec(place, req).await,
        }
    }

    /// The directory where `place`'s files live, on the host: channels put
    /// attachments there and the tools find them under `/workspace`.
    pub fn host_dir(&self, place: &Place) -> Result<PathBuf, SandboxError> {
        match self.backend(place)? {
            Backend::Sandbox(s) => Ok(s.host_dir(place)),
            Backend::Host(h) => Ok(h.host_dir(place)),
        }
    }

    /// A new (or emptied) file at `parts` (such as `["inbox", "a.pdf"]`) in
    /// `place`'s workspace, opened from the host without following any link
    /// a command planted there ([`crate::confined::create_file`]).
    pub fn create_file(
        &self,
        place: &Place,
        parts: &[&str],
    ) -> Result<std::fs::File, SandboxError> {
        let (dir, owner) = match self.backend(place)? {
            Backend::Sandbox(s) => (s.host_dir(place), Some(s.user())),
            Backend::Host(h) => (h.host_dir(place), None),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| SandboxError::Host(format!("cannot create {}: {e}", dir.display())))?;
        crate::confined::create_file(&dir, parts, owner)
    }

    /// The roots file tools may touch for `place`: the workspace first
    /// (relative paths resolve there), then the agent's workspace when
    /// mounted, each with whether it is writable.
    pub fn roots(&self, place: &Place) -> Result<Vec<(String, bool)>, SandboxError> {
        let agent_mount = self.settings.workspace != WorkspaceAccess::None
            && self.settings.scope != SandboxScope::Shared;
        let writable = self.settings.workspace == WorkspaceAccess::Rw;
        match self.backend(place)? {
            Backend::Sandbox(_) => {
                let mut roots = vec![(WORKSPACE.to_string(), true)];
                if agent_mount {
                    roots.push((AGENT_WORKSPACE.to_string(), writable));
                }
                Ok(roots)
            }
            Backend::Host(h) => {
                let mut roots = vec![(h.host_dir(place).to_string_lossy().into_owned(), true)];
                if agent_mount && let Some(dir) = self.agent_workspaces.get(&place.agent) {
                    roots.push((dir.to_string_lossy().into_owned(), writable));
                }
                Ok(roots)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(mode: SandboxMode, host_exec: bool) -> Workbench {
        Workbench::new(
            SandboxSettings {
                mode,
                host_exec,
                ..Default::default()
            },
            "/nonexistent",
            BTreeMap::new(),
        )
    }

    #[test]
    fn modes_decide_who_is_offered_tools() {
        let main = Place::new("agent:main:main", "main");
        let dm = Place::new("agent:main:telegram:dm:42", "main");
        let all = bench(SandboxMode::All, false);
        assert!(all.covers(&main) && all.covers(&dm));
        let non_main = bench(SandboxMode::NonMain, false);
        assert!(!non_main.offers(&main));
        assert!(non_main.covers(&dm));
        let off = bench(SandboxMode::Off, false);
        assert!(!off.offers(&dm));
        assert!(matches!(off.backend(&dm), Err(SandboxError::NotAvailable)));
        let host = bench(SandboxMode::Off, true);
        assert!(matches!(host.backend(&dm), Ok(Backend::Host(_))));
    }

    #[test]
    fn scopes_share_as_configured() {
        let a = Place::new("agent:main:telegram:dm:1", "main");
        let b = Place::new("agent:main:telegram:dm:2", "main");
        assert_ne!(
            scope_key(SandboxScope::Session, &a),
            scope_key(SandboxScope::Session, &b)
        );
        assert_eq!(
            scope_key(SandboxScope::Agent, &a),
            scope_key(SandboxScope::Agent, &b)
        );
        assert_eq!(scope_key(SandboxScope::Shared, &a), "shared");
    }
}
