//! The gateway's configuration: one documented struct per section.
//!
//! A config file is TOML; every section denies unknown keys and every field
//! states its default. [`load`] reads a file (or nothing), applies
//! `SWITCHBOARD_…` environment overrides, fills the defaults a fresh machine
//! needs (a `local` Ollama provider and a `main` agent) and validates; each
//! error names the key and says what to do.

mod channels;
mod cron;
mod http;
mod load;
mod memory;
mod observability;
#[cfg(test)]
mod reference;
mod store;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use channels::*;
pub use cron::{CronConfig, CronJobConfig, HookConfig, HooksConfig, MAX_HOOK_BODY_BYTES, Misfire};
pub use http::{HttpLimits, TlsConfig};
pub(crate) use load::toml_problem;
pub use load::{
    Bootstrap, ConfigError, ConfigErrors, LoadedConfig, SECRET_KEYS, bootstrap, load, load_str,
    load_str_with_secrets, load_with_secrets, secret_names,
};
pub use memory::{AgentMemoryConfig, DEFAULT_MAX_ENTRIES, MemoryScope};
pub use observability::{LogFormat, ObservabilityConfig, OtlpConfig, SpanSessionKeys};
pub use store::{ClusterConfig, EncryptionConfig, EncryptionMode, StoreConfig};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[gateway]`: listening address, data directory, auth, limits.
    pub gateway: GatewayConfig,
    /// `[providers.<name>]`: model endpoints. Default: one named `local`, an
    /// OpenAI-compatible endpoint at Ollama's address, when none is given.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `[agents.<name>]`: agents. Default: one named `main` on the only
    /// provider, when none is given.
    pub agents: BTreeMap<String, AgentConfig>,
    /// `[channels.*]`: messaging channels and their accounts.
    pub channels: ChannelsConfig,
    /// `[[bindings]]`: which agent answers which channel, account or peer.
    /// The most specific match wins; default: the default agent.
    pub bindings: Vec<BindingConfig>,
    /// `[sessions]`: session keys, queueing and resets.
    pub sessions: SessionsConfig,
    /// `[retention]`: how long messages, transcripts, usage and approval
    /// requests are kept.
    pub retention: RetentionConfig,
    /// `[tools.*]`: settings of the built-in tools.
    pub tools: ToolsConfig,
    /// `[sandbox]`: where the shell and file tools run (Docker containers by
    /// default) and the limits they run under.
    pub sandbox: switchboard_sandbox::SandboxSettings,
    /// `[ui]`: the control web UI served at `/`.
    pub ui: UiConfig,
    /// `[store]`: where the records are kept (SQLite, or PostgreSQL with
    /// `url`) and encryption at rest.
    pub store: StoreConfig,
    /// `[cluster]`: several gateways sharing one PostgreSQL store.
    pub cluster: ClusterConfig,
    /// `[cron.jobs.<name>]`: turns the assistant starts at a time.
    pub cron: CronConfig,
    /// `[hooks.<name>]`: turns another system starts with a POST to
    /// `/hooks/custom/<name>`.
    pub hooks: HooksConfig,
    /// `[observability]`: metrics, traces and the log's format.
    pub observability: ObservabilityConfig,
}

/// `[ui]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Serve the control web UI at `/`. Default true.
    pub enabled: bool,
    /// Hours a signed-in browser stays signed in without being used.
    /// Default 12.
    pub session_idle_hours: u64,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_idle_hours: 12,
        }
    }
}

/// `[tools]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// `[tools.web_fetch]`
    pub web_fetch: WebFetchConfig,
}

/// `[tools.web_fetch]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebFetchConfig {
    /// Let the model fetch loopback, private and link-local addresses
    /// (your own network). Default false.
    pub allow_private: bool,
    /// Bytes of a page read at most; the rest is cut off. Default 262144.
    pub max_bytes: usize,
    /// Seconds a fetch may take, redirects included. Default 20.
    pub timeout_secs: u64,
}

impl Default for WebFetchConfig {
    fn default() -> Self {
        let d = switchboard_agents::tools::WebFetchSettings::default();
        Self {
            allow_private: d.allow_private,
            max_bytes: d.max_bytes,
            timeout_secs: d.timeout.as_secs(),
        }
    }
}

impl WebFetchConfig {
    /// The tool's settings.
    pub fn settings(&self) -> switchboard_agents::tools::WebFetchSettings {
        switchboard_agents::tools::WebFetchSettings {
            allow_private: self.allow_private,
            max_bytes: self.max_bytes.max(1),
            timeout: std::time::Duration::from_secs(self.timeout_secs.max(1)),
            ..Default::default()
        }
    }
}

/// `[gateway]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address of the one HTTP port (control API, web chat, health).
    /// Default `127.0.0.1:7788`. A non-loopback address needs
    /// `gateway.auth.token`. Env: `SWITCHBOARD_BIND`.
    pub bind: String,
    /// Where the database and the generated token live. Default: the
    /// platform's data directory (`~/.local/share/switchboard` on Linux).
    /// Env: `SWITCHBOARD_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `[gateway.auth]`: control API authentication.
    pub auth: AuthConfig,
    /// The agent used when no binding matches. Default: `main` if it exists,
    /// else the only agent.
    pub default_agent: Option<String>,
    /// How many agent runs may be in flight at once, across all sessions.
    /// Default 16.
    pub max_concurrent_runs: usize,
    /// Seconds that shutdown waits for in-flight turns before cancelling
    /// them (they are picked up again at the next start). Default 10.
    pub shutdown_grace_secs: u64,
    /// Capacity of the queue between channel listeners and the pipeline.
    /// Default 1024.
    pub inbound_queue: usize,
    /// `[gateway.tls]`: serve HTTPS. Default: plain HTTP, which a
    /// non-loopback `bind` allows only with `behind_proxy = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Whether a reverse proxy in front terminates TLS (so a non-loopback
    /// `bind` may serve plain HTTP to it). Default false.
    pub behind_proxy: bool,
    /// Proxies whose `X-Forwarded-For` names the client (addresses or
    /// networks, e.g. `["127.0.0.1", "10.0.0.0/8"]`); from anyone else the
    /// header is ignored. Default: none.
    pub trusted_proxies: Vec<String>,
    /// `[gateway.limits]`: body sizes, header timeout, connections.
    pub limits: HttpLimits,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:7788".into(),
            data_dir: None,
            auth: AuthConfig::default(),
            default_agent: None,
            max_concurrent_runs: 16,
            shutdown_grace_secs: 10,
            inbound_queue: 1024,
            tls: None,
            behind_proxy: false,
            trusted_proxies: Vec::new(),
            limits: HttpLimits::default(),
        }
    }
}

/// `[gateway.auth]`
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The bearer token of the control API: 32 or more random characters
    /// (`switchboard token new` makes one; a short, patterned or example
    /// token refuses to start). Default: `SWITCHBOARD_TOKEN`, or one
    /// generated at first start and kept in `<data_dir>/control-token`.
    pub token: Option<String>,
    /// Failed authentications (bearer, UI sign-in, WebSocket, webhook
    /// secrets) one client address may make a minute before it is answered
    /// `429` for a while. Default 10; 0: no limit.
    pub failed_per_minute: u32,
    /// Failed authentications a minute from all addresses together, past
    /// which addresses that failed recently are refused at once (an address
    /// with no failure is still heard). Default 300; 0: no limit.
    pub failed_global_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token: None,
            failed_per_minute: 10,
            failed_global_per_minute: 300,
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("failed_per_minute", &self.failed_per_minute)
            .field("failed_global_per_minute", &self.failed_global_per_minute)
            .finish()
    }
}

/// The kind of a model provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible Chat Completions endpoint.
    Openai,
    /// The Anthropic Messages API.
    Anthropic,
}

/// Anthropic's API root, the default `base_url` of `kind = "anthropic"`.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// `[providers.<name>]`
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `openai` (any OpenAI-compatible endpoint) or `anthropic`. Required.
    pub kind: ProviderKind,
    /// The API base. For `openai` it ends before `/chat/completions` and is
    /// required, e.g. `http://127.0.0.1:11434/v1` (Ollama) or
    /// `https://api.openai.com/v1`; for `anthropic` the default is
    /// `https://api.anthropic.com`.
    #[serde(default)]
    pub base_url: String,
    /// The model to ask. Required.
    pub model: String,
    /// The API key. Default: none, or the variable `api_key_env` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// An environment variable holding the API key (e.g. `OPENAI_API_KEY`),
    /// so the key need not be written here. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Seconds to wait for the connection and for each piece of a streamed
    /// answer. Default 120.
    #[serde(default = "default_provider_timeout")]
    pub timeout_secs: u64,
    /// Sampling temperature. Default: the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Cap on answer tokens. Default: the provider's (4096 for
    /// `anthropic`, which requires one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Retries of a call that failed before answering with a 429, a 5xx, a
    /// timeout or no connection, honouring `Retry-After`. Default 2.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// `[providers.<name>.pricing]`: US dollars per million tokens, which
    /// turn each turn's usage into its cost (stored with the usage, shown in
    /// `/status`, the control API, the UI and the metrics), e.g.
    ///
    /// ```toml
    /// [providers.openai.pricing]
    /// input_per_mtok = 2.50
    /// output_per_mtok = 10.00
    /// cached_per_mtok = 1.25      # default: input_per_mtok
    ///
    /// [providers.openai.pricing.models."gpt-4o-mini"]
    /// input_per_mtok = 0.15
    /// output_per_mtok = 0.60
    /// ```
    ///
    /// Default: none, so cost is not counted (stored as 0, shown as "—").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<crate::telemetry::cost::Pricing>,
}

fn default_provider_timeout() -> u64 {
    120
}

fn default_max_retries() -> u32 {
    2
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_env", &self.api_key_env)
            .field("pricing", &self.pricing)
            .finish_non_exhaustive()
    }
}

impl ProviderConfig {
    /// The default provider of a fresh install: Ollama on this machine.
    pub fn ollama() -> Self {
        Self {
            kind: ProviderKind::Openai,
            base_url: "http://127.0.0.1:11434/v1".into(),
            model: "llama3.2".into(),
            api_key: None,
            api_key_env: None,
            timeout_secs: default_provider_timeout(),
            temperature: None,
            max_tokens: None,
            max_retries: default_max_retries(),
            pricing: None,
        }
    }
}

/// `[agents.<name>]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The provider's name (a `[providers.<name>]` table). Required.
    pub provider: String,
    /// A model overriding the provider's. Default: the provider's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The system prompt. Default "You are a helpful assistant."
    #[serde(default = "default_system_prompt")]
    pub system_prompt: String,
    /// A file holding the system prompt instead, relative to the agent's
    /// workspace (or absolute). Read at start. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt_file: Option<PathBuf>,
    /// The agent's workspace directory. Default
    /// `<data_dir>/workspaces/<agent>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<PathBuf>,
    /// How many transcript entries are sent to the model with each message.
    /// Default 40.
    #[serde(default = "default_history_limit")]
    pub history_limit: u32,
    /// `[agents.<name>.tools]`: which tools the agent may use.
    #[serde(default)]
    pub tools: AgentToolsConfig,
    /// `[agents.<name>.approvals]`: which tool calls wait for the operator.
    #[serde(default)]
    pub approvals: AgentApprovalsConfig,
    /// Model calls with tool use allowed per turn before the agent must
    /// answer. Default 8.
    #[serde(default = "default_max_tool_steps")]
    pub max_tool_steps: u32,
    /// The model's context window in tokens; older messages are compacted
    /// into a summary before a prompt would pass three quarters of it.
    /// Default 32768.
    #[serde(default = "default_context_window")]
    pub context_window: u32,
    /// Messages at the end of the history that compaction keeps whole.
    /// Default 8.
    #[serde(default = "default_keep_recent")]
    pub keep_recent_messages: u32,
    /// Tokens (input + output) the agent may use per day, counted from
    /// local midnight; when spent, new turns are refused with a message.
    /// Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_token_budget: Option<u64>,
    /// Providers tried in order when the provider fails before answering,
    /// for that turn only: `"name"` (its model) or `"name/model"`.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// `[agents.<name>.memory]`: long-term memory (whose it is, embeddings,
    /// recall into the prompt, its size). Default: per person, keyword
    /// search, no recall, 10000 entries.
    #[serde(default)]
    pub memory: AgentMemoryConfig,
}

impl AgentConfig {
    /// The fallbacks as (provider, model override) pairs.
    pub fn fallback_pairs(&self) -> Vec<(&str, Option<&str>)> {
        self.fallbacks
            .iter()
            .map(|f| match f.split_once('/') {
                Some((p, m)) => (p, Some(m)),
                None => (f.as_str(), None),
            })
            .collect()
    }
}

fn default_system_prompt() -> String {
    "You are a helpful assistant.".into()
}

fn default_history_limit() -> u32 {
    40
}

fn default_max_tool_steps() -> u32 {
    8
}

fn default_context_window() -> u32 {
    32768
}

fn default_keep_recent() -> u32 {
    8
}

/// `[agents.<name>.approvals]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentApprovalsConfig {
    /// `never` | `on-miss` (unless allowlisted) | `always`. Default `on-miss`.
    pub mode: switchboard_agents::tools::ApprovalMode,
    /// Tools whose calls are gated; `*` wildcards. Default: the shell and
    /// file-writing tools.
    pub tools: Vec<String>,
    /// Calls that pass without asking under `on-miss`: globs matched against
    /// the tool name and against `"<tool> <arguments JSON>"`. Default: none.
    pub allowlist: Vec<String>,
    /// Seconds before an unanswered request is denied. Default 300.
    pub timeout_secs: u64,
    /// Who may decide requests from a chat with `/approve <id>` or
    /// `/deny <id>`, as `<channel>:<sender id>` (e.g. `"telegram:123456"`,
    /// `"slack:U0123"`), from any conversation they have with the bot.
    /// Default: none named, and then only the person who asked may decide,
    /// in their direct chat with the bot (a request from a group waits for
    /// the operator). The operator may always decide from the CLI, the
    /// control API or the UI.
    pub approvers: Vec<String>,
    /// Whether a turn that has read untrusted content (a fetched page, an
    /// attachment, a message from someone other than the operator) asks
    /// before every call of a shell, file-writing or gated tool for the
    /// rest of the turn, whatever `mode` and `allowlist` say (a turn
    /// answering someone other than the operator, or with an attachment,
    /// is tainted from its start). Default true.
    pub taint: bool,
}

impl Default for AgentApprovalsConfig {
    fn default() -> Self {
        let p = switchboard_agents::tools::ApprovalPolicy::default();
        Self {
            mode: p.mode,
            tools: p.tools,
            allowlist: p.allowlist,
            timeout_secs: 300,
            approvers: Vec::new(),
            taint: p.taint,
        }
    }
}

impl AgentApprovalsConfig {
    /// The policy it describes.
    pub fn policy(&self) -> switchboard_agents::tools::ApprovalPolicy {
        switchboard_agents::tools::ApprovalPolicy {
            mode: self.mode,
            tools: self.tools.clone(),
            allowlist: self.allowlist.clone(),
            taint: self.taint,
        }
    }
}

/// `[agents.<name>.tools]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentToolsConfig {
    /// `minimal` | `messaging` | `coding` | `full`. Default `messaging`.
    pub profile: switchboard_agents::tools::Profile,
    /// Tools added to the profile; `*` wildcards. Default: none.
    pub allow: Vec<String>,
    /// Tools removed whatever else says; `*` wildcards. Default: none.
    pub deny: Vec<String>,
    /// Channels whose DMs may reach shell and file-writing tools.
    /// Default `["webchat"]` (the operator's own).
    pub trusted_channels: Vec<String>,
    /// People who count as the operator wherever they write, as
    /// `<channel>:<sender id>` (e.g. `"telegram:123456"`): their messages
    /// reach the model as they are, not marked as untrusted, and their DMs
    /// reach shell and file-writing tools as a trusted channel's do.
    /// Everyone else's messages (except DMs on `trusted_channels`) reach
    /// the model marked as untrusted. Default: none.
    pub operators: Vec<String>,
    /// Whether group chats may reach shell and file-writing tools.
    /// Default false.
    pub dangerous_in_groups: bool,
    /// `[agents.<name>.tools.channels.<channel>]`: allow and deny lists
    /// applied on top for messages from that channel. Default: none.
    pub channels: BTreeMap<String, ChannelToolsConfig>,
}

/// `[agents.<name>.tools.channels.<channel>]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelToolsConfig {
    /// Tools added for this channel; `*` wildcards. Default: none.
    pub allow: Vec<String>,
    /// Tools removed for this channel; `*` wildcards. Default: none.
    pub deny: Vec<String>,
}

impl Default for AgentToolsConfig {
    fn default() -> Self {
        let p = switchboard_agents::tools::ToolPolicy::default();
        Self {
            profile: p.profile,
            allow: p.allow,
            deny: p.deny,
            trusted_channels: p.trusted_channels,
            operators: p.operators,
            dangerous_in_groups: p.dangerous_in_groups,
            channels: BTreeMap::new(),
        }
    }
}

impl AgentToolsConfig {
    /// The policy it describes.
    pub fn policy(&self) -> switchboard_agents::tools::ToolPolicy {
        switchboard_agents::tools::ToolPolicy {
            profile: self.profile,
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            trusted_channels: self.trusted_channels.clone(),
            operators: self.operators.clone(),
            dangerous_in_groups: self.dangerous_in_groups,
            per_channel: self
                .channels
                .iter()
                .map(|(c, t)| (c.clone(), t.allow.clone(), t.deny.clone()))
                .collect(),
        }
    }
}

impl AgentConfig {
    /// An agent on `provider` with the defaults.
    pub fn on(provider: &str) -> Self {
        Self {
            provider: provider.into(),
            model: None,
            system_prompt: default_system_prompt(),
            system_prompt_file: None,
            workspace: None,
            history_limit: default_history_limit(),
            tools: AgentToolsConfig::default(),
            approvals: AgentApprovalsConfig::default(),
            max_tool_steps: default_max_tool_steps(),
            context_window: default_context_window(),
            keep_recent_messages: default_keep_recent(),
            daily_token_budget: None,
            fallbacks: Vec::new(),
            memory: AgentMemoryConfig::default(),
        }
    }
}

/// `[[bindings]]`: route matching messages to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    /// The agent to use. Required.
    pub agent: String,
    /// Match this channel only. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Match this channel account only. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Match this peer (sender id in DMs, chat id in groups) only.
    /// Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// How DM conversations map to sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DmScope {
    /// One session for every DM on every channel.
    Main,
    /// One session per peer id, across channels.
    PerPeer,
    /// One session per channel and peer (the default).
    #[default]
    PerChannelPeer,
    /// One session per account, channel and peer.
    PerAccountChannelPeer,
}

/// What happens to messages that arrive while a session's agent is running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    /// Each is answered in its own turn, in order (the default).
    #[default]
    Followup,
    /// All that arrived are answered together in one turn.
    Collect,
    /// The running turn is cancelled and the newest message answered.
    Interrupt,
}

/// `[sessions]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// How DMs map to sessions. Default `per-channel-peer`.
    pub dm_scope: DmScope,
    /// Messages arriving during a run. Default `followup`.
    pub queue_mode: QueueMode,
    /// Messages one session may hold waiting; more are refused with a
    /// notice. Default 32.
    pub mailbox: usize,
    /// Start a fresh session after this many minutes without a message.
    /// Default: off.
    pub idle_reset_minutes: Option<u64>,
    /// Start a fresh session at this local hour (0–23) every day.
    /// Default: off.
    pub daily_reset_hour: Option<u8>,
    /// Seconds a session actor stays in memory without work. Default 300.
    pub actor_idle_secs: u64,
    /// Seconds a stored answer whose delivery failed (platform errors,
    /// network down) is sent again, with backoff, before its message is
    /// marked failed and health says so. The model is not asked again.
    /// Default 3600.
    pub delivery_retry_secs: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            dm_scope: DmScope::default(),
            queue_mode: QueueMode::default(),
            mailbox: 32,
            idle_reset_minutes: None,
            daily_reset_hour: None,
            actor_idle_secs: 300,
            delivery_retry_secs: 3600,
        }
    }
}

/// `[retention]`: how long stored records are kept. A task under the
/// supervisor deletes what is older once at start and then every hour. A
/// message still owed an answer and a tool call still waiting for a
/// decision are never deleted, however old.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days a finished message (answered, failed or ignored) stays in the
    /// ingress queue; while it does, a redelivery of it is recognized and
    /// not answered again. At least 1. Default 7.
    pub ingress_days: u32,
    /// Days transcript entries are kept; older ones are deleted and the
    /// assistant no longer sees them (sessions stay). Default: unset,
    /// kept forever.
    pub transcript_days: Option<u32>,
    /// Days token usage records are kept (totals, daily budgets). At
    /// least 1, so that today's budget counts. Default: unset, kept
    /// forever.
    pub usage_days: Option<u32>,
    /// Days decided tool-call approval requests (who allowed or denied
    /// what) are kept after their decision. Default: unset, kept forever.
    pub approvals_days: Option<u32>,
    /// Days audit records are kept; older ones are pruned behind a signed
    /// checkpoint, so the rest still verifies. Default: unset, kept forever.
    pub audit_days: Option<u32>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            ingress_days: 7,
            transcript_days: None,
            usage_days: None,
            approvals_days: None,
            audit_days: None,
        }
    }
}
