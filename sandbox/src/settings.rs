//! `[sandbox]`: where sandboxed tools run, and the limits they run under.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which sessions get a sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// No sandbox: sandboxed tools are not offered (unless `host_exec`).
    Off,
    /// Every session but an agent's main one (`agent:<name>:main`).
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

/// How the agent's workspace directory is mounted (at `/agent`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkspaceAccess {
    /// Not at all (the default): the sandbox sees only its own `/workspace`.
    #[default]
    None,
    /// Read-only.
    Ro,
    /// Read and write.
    Rw,
}

/// `[sandbox]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSettings {
    /// `off` | `non-main` | `all`: which sessions get a sandbox. Default
    /// `all`.
    pub mode: SandboxMode,
    /// `session` | `agent` | `shared`: which sessions share a container.
    /// Commands in one container run one at a time (so that everything a
    /// command started can be ended with it), so a shared container also
    /// shares its turn. Default `session`.
    pub scope: SandboxScope,
    /// `none` | `ro` | `rw`: how the agent's workspace is mounted at
    /// `/agent`. Default `none`.
    pub workspace: WorkspaceAccess,
    /// The image. Default `switchboard-sandbox:bookworm`, built by
    /// `switchboard sandbox build-image`.
    pub image: String,
    /// The Docker engine's address (`unix:///path` or `tcp://host:port`).
    /// Default: `DOCKER_HOST`, else `unix:///var/run/docker.sock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_host: Option<String>,
    /// The Docker network containers join. Default `none` (no network);
    /// `bridge` gives them the engine's default network, and any network
    /// made with `docker network create` may be named. `host` (and
    /// `container:<id>`) is refused: it would share a network stack that is
    /// not the sandbox's own.
    pub network: String,
    /// `uid:gid` the tools run as inside the container; never root.
    /// Default: the gateway's own uid:gid, or 1000:1000 when the gateway
    /// runs as root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Memory limit per container in MiB (swap included). Default 512.
    pub memory_mb: u64,
    /// CPU limit per container, in cores. Default 1.0.
    pub cpus: f64,
    /// Most processes per container. Default 256.
    pub pids_limit: i64,
    /// Size of the `/tmp` tmpfs in MiB. Default 64.
    pub tmp_mb: u64,
    /// Wall-clock limit of one command in seconds (a tool call may ask for
    /// less). Default 60.
    pub exec_timeout_secs: u64,
    /// Bytes of stdout and of stderr a command may return; the rest is cut
    /// off and the cut said. Default 65536.
    pub max_output_bytes: usize,
    /// A container unused this long is removed. Default 1800.
    pub idle_prune_secs: u64,
    /// A container older than this is removed once idle. Default 86400.
    pub max_age_secs: u64,
    /// Remove this gateway's containers when it shuts down. Default true.
    pub remove_on_shutdown: bool,
    /// Run the shell and file tools directly on the host for sessions the
    /// sandbox does not cover (`mode = "off"`, or the main session with
    /// `non-main`). Dangerous: `switchboard doctor` flags it. Default false,
    /// and then those sessions are not offered the tools at all.
    pub host_exec: bool,
    /// Extra environment variables every command gets, in the container and
    /// on the host, as `NAME = "value"`. Commands start with a cleared
    /// environment: `PATH`, `HOME`, `LANG`, `TERM` and these, never the
    /// gateway's own variables (its tokens and keys). Default: none.
    pub env: BTreeMap<String, String>,
    /// Most MiB the scope's `/workspace` may hold. One file can never pass
    /// it (the command's file size limit), and a command that fills the
    /// workspace past it is stopped. Default 1024.
    pub workspace_max_mb: u64,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            mode: SandboxMode::All,
            scope: SandboxScope::Session,
            workspace: WorkspaceAccess::None,
            image: "switchboard-sandbox:bookworm".into(),
            docker_host: None,
            network: "none".into(),
            user: None,
            memory_mb: 512,
            cpus: 1.0,
            pids_limit: 256,
            tmp_mb: 64,
            exec_timeout_secs: 60,
            max_output_bytes: 65536,
            idle_prune_secs: 1800,
            max_age_secs: 86400,
            remove_on_shutdown: true,
            host_exec: false,
            env: BTreeMap::new(),
            workspace_max_mb: 1024,
        }
    }
}

impl SandboxSettings {
    /// Problems with these settings, each naming its key (relative to
    /// `[sandbox]`) and what to do.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.image.trim().is_empty() {
            out.push((
                "image",
                "must name an image, e.g. \"switchboard-sandbox:bookworm\"".into(),
            ));
        }
        if self.memory_mb < 16 {
            out.push((
                "memory_mb",
                format!(
                    "{} MiB is too little to start a shell; use 16 or more",
                    self.memory_mb
                ),
            ));
        }
        if !(self.cpus > 0.0 && self.cpus <= 1024.0) {
            out.push((
                "cpus",
                format!(
                    "{} is not a CPU count; use a number such as 0.5 or 2",
                    self.cpus
                ),
            ));
        }
        if self.pids_limit < 8 {
            out.push((
                "pids_limit",
                format!(
                    "{} processes cannot run a shell pipeline; use 8 or more",
                    self.pids_limit
                ),
            ));
        }
        if self.tmp_mb == 0 {
            out.push(("tmp_mb", "must be at least 1".into()));
        }
        if self.exec_timeout_secs == 0 {
            out.push(("exec_timeout_secs", "must be at least 1".into()));
        }
        if self.max_output_bytes < 256 {
            out.push(("max_output_bytes", "must be at least 256".into()));
        }
        if let Some(why) = network_problem(&self.network) {
            out.push(("network", why));
        }
        if self.workspace_max_mb == 0 {
            out.push(("workspace_max_mb", "must be at least 1 (MiB)".into()));
        }
        for name in self.env.keys() {
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                out.push((
                    "env",
                    format!("{name:?} is not a variable name; use letters, digits and _, e.g. PIP_INDEX_URL"),
                ));
            }
        }
        if let Some(user) = &self.user {
            match parse_user(user) {
                Some((0, _)) | Some((_, 0)) => out.push((
                    "user",
                    "tools never run as root in the sandbox; use a non-zero uid:gid such as \"1000:1000\"".into(),
                )),
                Some((65534, _)) => out.push((
                    "user",
                    "uid 65534 is the one the sandbox's own init runs as, which commands must not share; use another uid such as 1000".into(),
                )),
                Some(_) => {}
                None => out.push(("user", format!("{user:?} is not uid:gid; write it as \"1000:1000\""))),
            }
        }
        if self.scope == SandboxScope::Shared && self.workspace != WorkspaceAccess::None {
            out.push((
                "workspace",
                "a shared container serves every agent, so no one agent's workspace can be mounted: use scope = \"agent\" or workspace = \"none\"".into(),
            ));
        }
        if let Some(host) = &self.docker_host
            && !(host.starts_with("unix://")
                || host.starts_with("tcp://")
                || host.starts_with("http://"))
        {
            out.push(("docker_host", format!("{host:?} is not an engine address; use unix:///var/run/docker.sock or tcp://host:2375")));
        }
        out
    }

    /// Risks an operator should know of, for `switchboard doctor`.
    pub fn risks(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.host_exec && self.mode != SandboxMode::All {
            out.push(format!(
                "host_exec = true: sessions outside the sandbox (mode = \"{}\") run shell and file tools directly on this machine",
                match self.mode {
                    SandboxMode::Off => "off",
                    SandboxMode::NonMain => "non-main",
                    SandboxMode::All => "all",
                }
            ));
        }
        if self.network != "none" {
            out.push(format!(
                "network = {:?}: sandboxed commands can reach the network",
                self.network
            ));
        }
        if self.workspace == WorkspaceAccess::Rw {
            out.push(
                "workspace = \"rw\": sandboxed commands can change the agent's workspace".into(),
            );
        }
        if self.scope == SandboxScope::Shared {
            out.push("scope = \"shared\": every session's commands share one container and can see each other's files".into());
        }
        out
    }
}

impl SandboxSettings {
    /// The whole environment a command starts with (`KEY=value`): the fixed
    /// base and the operator's `env`, nothing inherited.
    pub fn command_env(&self) -> Vec<String> {
        let mut env: BTreeMap<&str, &str> = BTreeMap::from([
            ("PATH", COMMAND_PATH),
            ("HOME", "/tmp"),
            ("LANG", "C.UTF-8"),
            ("TERM", "dumb"),
        ]);
        for (k, v) in &self.env {
            env.insert(k, v);
        }
        env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// Why containers may not join `network`, if they may not: Docker's
/// `host` mode (and `container:<id>`, joining another container's network)
/// would hand sandboxed commands a network stack that is not their own.
fn network_problem(network: &str) -> Option<String> {
    let n = network.trim();
    let instead = "use \"none\" (no network, the default) or a named bridge network such as \"bridge\" or one made with `docker network create`";
    if n.is_empty() {
        Some(format!("is empty: {instead}"))
    } else if n.eq_ignore_ascii_case("host") {
        Some(format!(
            "\"host\" would put sandboxed commands on this machine's own network, where they reach services listening on localhost (the gateway's control port among them): {instead}"
        ))
    } else if n.starts_with("container:") {
        Some(format!(
            "{n:?} would put sandboxed commands in another container's network, where they reach its localhost services: {instead}"
        ))
    } else {
        None
    }
}

/// The `PATH` commands get.
pub(crate) const COMMAND_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `uid:gid` as numbers.
pub(crate) fn parse_user(user: &str) -> Option<(u32, u32)> {
    let (u, g) = user.split_once(':')?;
    Some((u.trim().parse().ok()?, g.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_safe_ones() {
        let s = SandboxSettings::default();
        assert_eq!(s.mode, SandboxMode::All);
        assert_eq!(s.scope, SandboxScope::Session);
        assert_eq!(s.workspace, WorkspaceAccess::None);
        assert_eq!(s.network, "none");
        assert!(!s.host_exec);
        assert!(s.problems().is_empty());
        assert!(s.risks().is_empty());
    }

    #[test]
    fn root_and_nonsense_are_refused() {
        let s = SandboxSettings {
            user: Some("0:0".into()),
            cpus: 0.0,
            scope: SandboxScope::Shared,
            workspace: WorkspaceAccess::Ro,
            ..Default::default()
        };
        let keys: Vec<_> = s.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["cpus", "user", "workspace"]);
    }

    #[test]
    fn the_host_network_is_refused() {
        for network in ["host", " HOST ", "container:gateway", ""] {
            let s = SandboxSettings {
                network: network.into(),
                ..Default::default()
            };
            let problems = s.problems();
            assert_eq!(problems.len(), 1, "{network:?}: {problems:?}");
            let (key, why) = &problems[0];
            assert_eq!(*key, "network");
            assert!(why.contains("use \"none\""), "{why}");
        }
        let host = SandboxSettings {
            network: "host".into(),
            ..Default::default()
        };
        assert!(host.problems()[0].1.contains("this machine's own network"));
        for network in ["none", "bridge", "sandbox-net"] {
            let s = SandboxSettings {
                network: network.into(),
                ..Default::default()
            };
            assert!(s.problems().is_empty(), "{network:?}");
        }
    }

    #[test]
    fn host_exec_is_a_named_risk() {
        let s = SandboxSettings {
            mode: SandboxMode::Off,
            host_exec: true,
            ..Default::default()
        };
        assert!(s.risks()[0].contains("directly on this machine"));
    }
}
