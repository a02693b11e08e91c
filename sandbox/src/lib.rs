//! Docker sandboxes for Switchboard's agent tools.
//!
//! Tools that touch files or run commands execute inside a container per
//! session (or per agent, or one shared), never on the host. This crate owns
//! the image ([`image`]), the container lifecycle and limits ([`Sandboxes`],
//! on bollard), exec with a wall-clock timeout that really ends the process
//! and an output cap, and file access confined to the workspace ([`files`]).
//! [`Workbench`] decides, per conversation, where a tool runs: in a
//! container, on the host only when the operator opted in, or nowhere.
//!
//! It depends on no other workspace crate and knows nothing of channels or
//! agents: it runs commands in containers and reports what happened.
//!
//! Inside a container, `/workspace` is the scope's own directory (kept on the
//! host under the data directory, so files survive a container's pruning and
//! channels can drop attachments there); the agent's workspace is mounted at
//! `/agent` read-only or read-write when [`WorkspaceAccess`] says so.

pub mod confined;
mod docker;
mod error;
pub mod files;
mod host;
pub mod image;
mod settings;
mod workbench;

pub use docker::{ContainerInfo, EngineInfo, Sandboxes};
pub use error::SandboxError;
pub use host::HostRunner;
pub use settings::{SandboxMode, SandboxScope, SandboxSettings, WorkspaceAccess};
pub use workbench::{Backend, Place, Workbench};

use std::time::Duration;

/// The label every container of ours carries.
pub const LABEL_MANAGED: &str = "switchboard.managed";
/// The label naming the gateway (by data directory) that owns a container.
pub const LABEL_OWNER: &str = "switchboard.owner";
/// The label holding the scope key (`session:<key>`, `agent:<name>`, `shared`).
pub const LABEL_SCOPE: &str = "switchboard.scope";
/// The label holding the session key that first used the container.
pub const LABEL_SESSION: &str = "switchboard.session";
/// The label holding the agent's name.
pub const LABEL_AGENT: &str = "switchboard.agent";
/// The label holding a hash of the settings the container was made with.
pub const LABEL_CONFIG: &str = "switchboard.config";

/// The container path of the scope's own directory.
pub const WORKSPACE: &str = "/workspace";
/// The container path of the agent's workspace, when mounted.
pub const AGENT_WORKSPACE: &str = "/agent";

/// One command to run.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The program and its arguments (not a shell line: use
    /// `["sh", "-c", line]` for that).
    pub argv: Vec<String>,
    /// Bytes fed to the command's standard input, then closed.
    pub stdin: Option<Vec<u8>>,
    /// Extra `KEY=value` environment entries.
    pub env: Vec<String>,
    /// The working directory (inside the sandbox). Default: the workspace.
    pub workdir: Option<String>,
    /// The wall-clock limit. Default: the settings' `exec_timeout_secs`.
    pub timeout: Option<Duration>,
    /// Bytes kept of each of stdout and stderr. Default: the settings'
    /// `max_output_bytes`.
    pub max_output: Option<usize>,
}

impl ExecRequest {
    /// A shell line run by `sh -c`.
    pub fn shell(line: impl Into<String>) -> Self {
        Self {
            argv: vec!["sh".into(), "-c".into(), line.into()],
            ..Self::default()
        }
    }
}

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code; `None` when it could not be learned (killed on
    /// timeout).
    pub exit_code: Option<i64>,
    /// Standard output, up to the cap.
    pub stdout: Vec<u8>,
    /// Standard error, up to the cap.
    pub stderr: Vec<u8>,
    /// Bytes of output dropped past the cap.
    pub dropped: u64,
    /// The command passed its time limit and was killed.
    pub timed_out: bool,
    /// The limit it was given.
    pub timeout: Duration,
}

impl ExecOutput {
    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// Whether it ran to the end and exited 0.
    pub fn success(&self) -> bool {
        !self.timed_out && self.exit_code == Some(0)
    }
}

/// Collects a stream's bytes up to a cap, counting the rest.
#[derive(Debug, Default)]
pub(crate) struct Capped {
    pub(crate) kept: Vec<u8>,
    pub(crate) dropped: u64,
}

impl Capped {
    pub(crate) fn push(&mut self, bytes: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.kept.len());
        let take = room.min(bytes.len());
        self.kept.extend_from_slice(&bytes[..take]);
        self.dropped += (bytes.len() - take) as u64;
    }
}

/// A short, stable, non-cryptographic hash (FNV-1a, 64 bit) for names and
/// labels that must not change between releases.
pub(crate) fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// `text` reduced to characters safe in a container or directory name,
/// at most `max` of them.
pub(crate) fn slug(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= max {
            break;
        }
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '.').to_string();
    if out.is_empty() { "x".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_keeps_the_head_and_counts_the_rest() {
        let mut c = Capped::default();
        c.push(b"hello ", 8);
        c.push(b"world", 8);
        assert_eq!(c.kept, b"hello wo");
        assert_eq!(c.dropped, 3);
    }

    #[test]
    fn slugs_are_safe_and_bounded() {
        assert_eq!(
            slug("session:agent:main:telegram:dm:42", 64),
            "session-agent-main-telegram-dm-42"
        );
        assert_eq!(slug("../..", 10), "x");
        assert!(slug(&"a".repeat(100), 20).len() <= 20);
    }

    #[test]
    fn the_hash_is_stable() {
        // Fixed value: container names must survive a Rust upgrade.
        assert_ne!(stable_hash(&["a", "b"]), stable_hash(&["ab"]));
        assert_eq!(format!("{:016x}", stable_hash(&[""])), "af63bd4c8601b7df");
    }
}
