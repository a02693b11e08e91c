//! What went wrong in the sandbox, said so a model or an operator can act.

/// What went wrong in the sandbox. Every variant means nothing ran on the
/// host.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The Docker engine did not answer; nothing ran.
    #[error(
        "the Docker engine at {address} is not reachable ({detail}); nothing ran. Start Docker (e.g. `sudo systemctl start docker`) or check [sandbox] docker_host"
    )]
    EngineUnreachable {
        /// Where we looked for it.
        address: String,
        /// What the connection said.
        detail: String,
    },
    /// The image is not in the engine.
    #[error(
        "the sandbox image `{image}` is not in the Docker engine; build it with `switchboard sandbox build-image` (or set [sandbox] image)"
    )]
    ImageMissing {
        /// The image's name.
        image: String,
    },
    /// The engine refused or failed a request.
    #[error("the Docker engine refused to {action}: {detail}")]
    Engine {
        /// What we asked of it.
        action: String,
        /// Its answer.
        detail: String,
    },
    /// A path given to a file tool is outside the workspace.
    #[error("{0}")]
    Path(String),
    /// A file operation failed inside the sandbox.
    #[error("{0}")]
    File(String),
    /// The host runner could not start a command.
    #[error("could not run the command on the host: {0}")]
    Host(String),
    /// No sandbox serves this conversation and host execution is off.
    #[error(
        "shell and file tools are not available in this conversation: the sandbox does not cover it ([sandbox] mode) and host_exec is off"
    )]
    NotAvailable,
}
