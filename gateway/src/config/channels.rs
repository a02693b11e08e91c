//! `[channels]`: the web chat and the chat platform accounts, and the
//! access rules each account applies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[channels]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelsConfig {
    /// `[channels.webchat]`: the built-in web chat and OpenAI-compatible API.
    pub webchat: WebchatConfig,
    /// `[channels.telegram]`: Telegram bot accounts.
    pub telegram: TelegramConfig,
    /// `[channels.discord]`: Discord bot accounts.
    pub discord: DiscordConfig,
    /// `[channels.slack]`: Slack workspaces.
    pub slack: SlackConfig,
}

/// `[channels.telegram]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// `[channels.telegram.accounts.<name>]`: one bot each. Default: none.
    pub accounts: BTreeMap<String, TelegramAccountConfig>,
}

/// How a Telegram account receives updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelegramMode {
    /// `getUpdates` long polling (the default; no public address needed).
    #[default]
    Polling,
    /// Telegram posts to `/hooks/telegram/<account>` on the gateway's port.
    Webhook,
}

/// `[channels.telegram.accounts.<name>]`
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramAccountConfig {
    /// The bot token from @BotFather. Required, here or in `token_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// An environment variable holding the token instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// A self-hosted Bot API server. Default: api.telegram.org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// `polling` | `webhook`. Default `polling`.
    #[serde(default)]
    pub mode: TelegramMode,
    /// Webhook mode: the public URL Telegram posts to (it must reach
    /// `/hooks/telegram/<account>` here); registered at start. Default:
    /// none (register it yourself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Webhook mode: the secret Telegram sends in
    /// `X-Telegram-Bot-Api-Secret-Token`; requests without it are refused.
    /// Required in webhook mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// `pairing` | `allowlist` | `open` | `disabled`. Default `pairing`.
    #[serde(default)]
    pub dm_policy: DmPolicy,
    /// Telegram user ids always allowed. Default: none.
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// `allowlist` | `open` | `disabled`. Default `allowlist`.
    #[serde(default)]
    pub group_policy: GroupPolicy,
    /// Group chat ids answered under `allowlist`. Default: none.
    #[serde(default)]
    pub groups: Vec<String>,
    /// In groups, answer only when mentioned or replied to. Default true.
    #[serde(default = "yes")]
    pub require_mention: bool,
    /// Per-sender rate limit.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// The agent answering this bot. Default: the default agent (or
    /// `[[bindings]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Least milliseconds between two edits of a streaming reply, per
    /// chat. Default 1000.
    #[serde(default = "default_edit_interval_ms")]
    pub edit_interval_ms: u64,
    /// Seconds one `getUpdates` waits. Default 25.
    #[serde(default = "default_poll_timeout_secs")]
    pub poll_timeout_secs: u64,
    /// Seconds past the poll timeout after which a poll that has not
    /// returned is abandoned and restarted. Default 30.
    #[serde(default = "default_watchdog_secs")]
    pub watchdog_secs: u64,
}

impl std::fmt::Debug for TelegramAccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramAccountConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("api_url", &self.api_url)
            .field("mode", &self.mode)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

fn yes() -> bool {
    true
}

fn default_edit_interval_ms() -> u64 {
    1000
}

fn default_poll_timeout_secs() -> u64 {
    25
}

fn default_watchdog_secs() -> u64 {
    30
}

impl TelegramAccountConfig {
    /// The token, from the file or the environment.
    pub fn token(&self) -> Option<String> {
        token_from(&self.token, &self.token_env)
    }

    /// The access rules of this account.
    pub fn access(&self) -> AccessRules {
        AccessRules {
            dm_policy: self.dm_policy,
            allow_from: self.allow_from.clone(),
            group_policy: self.group_policy,
            groups: self.groups.clone(),
            require_mention: self.require_mention,
            rate_limit: self.rate_limit,
            allow_bots: false,
        }
    }
}

/// Who may talk to the assistant in direct messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Unknown senders get a pairing code an operator must approve.
    #[default]
    Pairing,
    /// Only senders on the allowlist (config `allow_from` or approved).
    Allowlist,
    /// Anyone.
    Open,
    /// Nobody.
    Disabled,
}

/// Which groups the assistant answers in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    /// Only the groups listed in `groups`.
    #[default]
    Allowlist,
    /// Any group.
    Open,
    /// No group.
    Disabled,
}

/// A per-sender inbound rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Messages per minute one sender may send. Default 20; 0 turns the
    /// limit off.
    pub per_minute: u32,
    /// How many messages may come at once before the rate applies.
    /// Default 5.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_minute: 20,
            burst: 5,
        }
    }
}

/// The access rules of one channel account, as the pipeline applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRules {
    /// DM policy.
    pub dm_policy: DmPolicy,
    /// Senders always allowed in DMs.
    pub allow_from: Vec<String>,
    /// Group policy.
    pub group_policy: GroupPolicy,
    /// Groups allowed under the `allowlist` group policy.
    pub groups: Vec<String>,
    /// Whether group messages must mention the bot.
    pub require_mention: bool,
    /// The per-sender rate limit.
    pub rate_limit: RateLimitConfig,
    /// Whether messages from other bots are let through.
    pub allow_bots: bool,
}

/// `[channels.webchat]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebchatConfig {
    /// Whether the web chat (`/v1/chat/completions`, `/api/ws` chat) is on.
    /// Default true.
    pub enabled: bool,
    /// DM policy. Default `open`: web chat users already hold the control
    /// token.
    pub dm_policy: DmPolicy,
    /// Web chat users always allowed. Default: none.
    pub allow_from: Vec<String>,
    /// Per-user rate limit. Default 20 per minute, burst 5.
    pub rate_limit: RateLimitConfig,
}

impl Default for WebchatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dm_policy: DmPolicy::Open,
            allow_from: Vec::new(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

impl WebchatConfig {
    /// The access rules of the web chat account.
    pub fn access(&self) -> AccessRules {
        AccessRules {
            dm_policy: self.dm_policy,
            allow_from: self.allow_from.clone(),
            group_policy: GroupPolicy::Disabled,
            groups: Vec::new(),
            require_mention: true,
            rate_limit: self.rate_limit,
            allow_bots: false,
        }
    }
}

/// `[channels.discord]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscordConfig {
    /// `[channels.discord.accounts.<name>]`: one bot each. Default: none.
    pub accounts: BTreeMap<String, DiscordAccountConfig>,
}

/// `[channels.discord.accounts.<name>]`
///
/// The bot needs the MESSAGE CONTENT privileged intent switched on in the
/// Developer Portal (Bot → Privileged Gateway Intents); Switchboard also
/// asks for GUILDS, GUILD_MESSAGES and DIRECT_MESSAGES, which need no
/// switch.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordAccountConfig {
    /// The bot token from the Developer Portal. Required, here or in
    /// `token_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// An environment variable holding the token instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// The REST base URL (scheme and host; `/api/v10/…` is appended), as
    /// for a proxy. Default: `https://discord.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The gateway WebSocket URL. Default: the one `GET /gateway` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
    /// `pairing` | `allowlist` | `open` | `disabled`. Default `pairing`.
    #[serde(default)]
    pub dm_policy: DmPolicy,
    /// Discord user ids always allowed in DMs. Default: none.
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Guild channels: `allowlist` (those in `channels`, or every channel
    /// of the `guilds` when `channels` is empty) | `open` | `disabled`.
    /// Default `allowlist`.
    #[serde(default)]
    pub guild_policy: GroupPolicy,
    /// Guild (server) ids the bot listens in; others are ignored. Default:
    /// none (under `allowlist` that means no guild; under `open`, all).
    #[serde(default)]
    pub guilds: Vec<String>,
    /// Channel ids answered under `allowlist` (threads follow their
    /// channel). Default: none.
    #[serde(default)]
    pub channels: Vec<String>,
    /// In guilds, answer only when mentioned or replied to. Default true.
    #[serde(default = "yes")]
    pub require_mention: bool,
    /// Take messages from other bots (never its own). Default false.
    #[serde(default)]
    pub allow_bots: bool,
    /// Per-sender rate limit.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// The agent answering this bot. Default: the default agent (or
    /// `[[bindings]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Least milliseconds between two edits of a streaming reply. Default
    /// 1000.
    #[serde(default = "default_edit_interval_ms")]
    pub edit_interval_ms: u64,
    /// The most lines in one message (Discord allows 2000 characters; a
    /// tall answer is split into several). Default 40.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
}

fn default_max_lines() -> usize {
    40
}

impl std::fmt::Debug for DiscordAccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordAccountConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("api_url", &self.api_url)
            .field("gateway_url", &self.gateway_url)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl DiscordAccountConfig {
    /// The token, from the file or the environment.
    pub fn token(&self) -> Option<String> {
        token_from(&self.token, &self.token_env)
    }

    /// The access rules of this account. The adapter listens only in
    /// `guilds` (when listed), so "every channel of the listed guilds" is
    /// the open policy behind that filter.
    pub fn access(&self) -> AccessRules {
        let group_policy = match self.guild_policy {
            GroupPolicy::Allowlist if self.channels.is_empty() && !self.guilds.is_empty() => {
                GroupPolicy::Open
            }
            p => p,
        };
        AccessRules {
            dm_policy: self.dm_policy,
            allow_from: self.allow_from.clone(),
            group_policy,
            groups: self.channels.clone(),
            require_mention: self.require_mention,
            rate_limit: self.rate_limit,
            allow_bots: self.allow_bots,
        }
    }
}

/// `[channels.slack]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// `[channels.slack.accounts.<name>]`: one workspace (app) each.
    /// Default: none.
    pub accounts: BTreeMap<String, SlackAccountConfig>,
}

/// `[channels.slack.accounts.<name>]`
///
/// The app needs the bot scopes `app_mentions:read`, `chat:write`,
/// `reactions:write`, `im:history` (and `channels:history` /
/// `groups:history` for channel threads), and the bot events
/// `app_mention`, `message.im`, `message.channels` (`message.groups`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAccountConfig {
    /// The Bot User OAuth Token (`xoxb-…`, OAuth & Permissions).
    /// Required, here or in `bot_token_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token: Option<String>,
    /// An environment variable holding the bot token instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token_env: Option<String>,
    /// The app-level token (`xapp-…`, scope `connections:write`) for
    /// Socket Mode: no public URL needed. Set this or `signing_secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_token: Option<String>,
    /// An environment variable holding the app-level token instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_token_env: Option<String>,
    /// The signing secret (Basic Information) for the Events API: Slack
    /// posts to `/hooks/slack/<account>` on the gateway's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// An environment variable holding the signing secret instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_env: Option<String>,
    /// The Web API base. Default `https://slack.com/api` (GovSlack:
    /// `https://slack-gov.com/api`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// `pairing` | `allowlist` | `open` | `disabled`. Default `pairing`.
    #[serde(default)]
    pub dm_policy: DmPolicy,
    /// Slack user ids (`U…`) always allowed in DMs. Default: none.
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Channels: `allowlist` (those in `channels`) | `open` | `disabled`.
    /// Default `allowlist`.
    #[serde(default)]
    pub channel_policy: GroupPolicy,
    /// Channel ids (`C…`) answered under `allowlist`. Default: none.
    #[serde(default)]
    pub channels: Vec<String>,
    /// In channels, answer only when mentioned (or matched by a
    /// `mention_patterns` word, or in a thread the bot already talks in).
    /// Default true.
    #[serde(default = "yes")]
    pub require_mention: bool,
    /// Words that count as a mention in channels, matched
    /// case-insensitively (e.g. `["assistant"]`). Default: none.
    #[serde(default)]
    pub mention_patterns: Vec<String>,
    /// Take messages from other bots (never its own). Default false.
    #[serde(default)]
    pub allow_bots: bool,
    /// Per-sender rate limit.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// The agent answering this workspace. Default: the default agent (or
    /// `[[bindings]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The slash command answered (e.g. `/assistant`; create it in the
    /// app's settings): `/assistant status`, `/assistant new`, or a
    /// question. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slash_command: Option<String>,
    /// The reaction on a message while it is being answered (emoji name,
    /// empty for none). Default `eyes`.
    #[serde(default = "default_working_reaction")]
    pub working_reaction: String,
    /// The reaction that replaces it when the answer is complete (empty
    /// for none). Default `white_check_mark`.
    #[serde(default = "default_done_reaction")]
    pub done_reaction: String,
    /// Least milliseconds between two updates of a streaming reply.
    /// Default 1500 (Slack allows about one `chat.update` per second).
    #[serde(default = "default_slack_edit_interval_ms")]
    pub edit_interval_ms: u64,
}

fn default_working_reaction() -> String {
    "eyes".into()
}

fn default_done_reaction() -> String {
    "white_check_mark".into()
}

fn default_slack_edit_interval_ms() -> u64 {
    1500
}

impl std::fmt::Debug for SlackAccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("SlackAccountConfig")
            .field("bot_token", &redacted(&self.bot_token))
            .field("bot_token_env", &self.bot_token_env)
            .field("app_token", &redacted(&self.app_token))
            .field("app_token_env", &self.app_token_env)
            .field("signing_secret", &redacted(&self.signing_secret))
            .field("signing_secret_env", &self.signing_secret_env)
            .field("api_url", &self.api_url)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl SlackAccountConfig {
    /// The bot token, from the file or the environment.
    pub fn bot_token(&self) -> Option<String> {
        token_from(&self.bot_token, &self.bot_token_env)
    }

    /// The app-level token, from the file or the environment.
    pub fn app_token(&self) -> Option<String> {
        token_from(&self.app_token, &self.app_token_env)
    }

    /// The signing secret, from the file or the environment.
    pub fn signing_secret(&self) -> Option<String> {
        token_from(&self.signing_secret, &self.signing_secret_env)
    }

    /// The access rules of this account.
    pub fn access(&self) -> AccessRules {
        AccessRules {
            dm_policy: self.dm_policy,
            allow_from: self.allow_from.clone(),
            group_policy: self.channel_policy,
            groups: self.channels.clone(),
            require_mention: self.require_mention,
            rate_limit: self.rate_limit,
            allow_bots: self.allow_bots,
        }
    }
}

fn token_from(token: &Option<String>, var: &Option<String>) -> Option<String> {
    token
        .clone()
        .or_else(|| var.as_deref().and_then(|v| std::env::var(v).ok()))
}
