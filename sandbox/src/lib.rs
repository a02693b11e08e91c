//! Docker sandboxes for Switchboard's agent tools.
//!
//! Tools that touch files or run commands execute inside a container per
//! session (or per agent, or shared), never on the host. This crate will own
//! the image, the container lifecycle, limits, exec and file access on
//! bollard; today it holds the policy vocabulary the config speaks.
//!
//! It depends on no other workspace crate and knows nothing of channels or
//! agents: it runs commands in containers and reports what happened.

use serde::{Deserialize, Serialize};

/// Which sessions get a sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// No sandbox; sandboxed tools are not offered.
    Off,
    /// Every session but the operator's main one.
    NonMain,
    /// Every session (the default).
    #[default]
    All,
}

/// Which sessions share a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxScope {
    /// One container per session (the default).
    #[default]
    Session,
    /// One container per agent.
    Agent,
    /// One container for everything.
    Shared,
}

/// What went wrong in the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The Docker engine did not answer; nothing ran.
    #[error("the Docker engine is not reachable: {0}")]
    EngineUnreachable(String),
}
