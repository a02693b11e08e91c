//! The Slack channel of Switchboard, on slack-morphism.
//!
//! One [`SlackChannel`] per workspace (bot token). Events come by Socket
//! Mode (an app-level token; no public URL needed — see [`socket`]) or by
//! the Events API posting to `/hooks/slack/<account>` on the gateway's port
//! (a signing secret; every request's signature and timestamp checked —
//! see [`webhook`]). DMs, channel messages that mention the bot (or match a
//! mention pattern) and threads become [`Inbound`] messages; in channels
//! every conversation is a thread, so the answer goes under the message
//! and a reply in that thread continues the session. Answers stream
//! through the shared [`ReplyStream`]: one message posted, then
//! `chat.update` no more often than the edit interval, in Slack's mrkdwn,
//! split without breaking code blocks; a reaction on the asking message
//! while the assistant works is replaced when it is done; `ratelimited`
//! answers are waited out as Slack says.
//!
//! It depends on `channels/core` and slack-morphism only.

pub mod api;
pub mod events;
pub mod render;
pub mod socket;
mod surface;
mod webhook;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use futures::StreamExt;
use switchboard_channel::download;
use switchboard_channel::stream::{ReplyStream, StreamSettings};
use switchboard_channel::{
    Attachment, Channel, ChannelContext, ChannelError, Inbound, ReplySink, ReplyTarget, Webhook,
};

pub use surface::{LIMIT, Reactions, SlackSurface};

use api::Api;
use events::{Bot, Rules};
use socket::{Payload, Received, SocketMode};

/// The channel's name.
pub const NAME: &str = "slack";

/// One workspace.
#[derive(Clone)]
pub struct SlackSettings {
    /// The account's name in the config.
    pub account: String,
    /// The bot token (`xoxb-…`).
    pub bot_token: String,
    /// The app-level token (`xapp-…`) for Socket Mode.
    pub app_token: Option<String>,
    /// The signing secret for the Events API.
    pub signing_secret: Option<String>,
    /// The Web API base instead of `https://slack.com/api` (GovSlack:
    /// `https://slack-gov.com/api`).
    pub api_url: Option<String>,
    /// How events are turned into messages.
    pub rules: Rules,
    /// The slash command answered (`/assistant`), if any.
    pub slash_command: Option<String>,
    /// Reactions on the message being answered.
    pub reactions: Reactions,
    /// The least time between two updates of a streaming reply.
    pub edit_interval: Duration,
    /// How often Socket Mode pings.
    pub ping_interval: Duration,
    /// Socket Mode envelopes read but not yet stored, at most; when as
    /// many wait, the socket is not read until one is stored (Slack keeps
    /// the rest). Default 64.
    pub envelope_queue: usize,
}

impl std::fmt::Debug for SlackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSettings")
            .field("account", &self.account)
            .field("bot_token", &"<redacted>")
            .field("app_token", &self.app_token.as_ref().map(|_| "<redacted>"))
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl SlackSettings {
    /// Settings with the defaults for everything but the account and bot
    /// token (add an app token or a signing secret).
    pub fn new(account: impl Into<String>, bot_token: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            bot_token: bot_token.into(),
            app_token: None,
            signing_secret: None,
            api_url: None,
            rules: Rules::default(),
            slash_command: None,
            reactions: Reactions {
                working: Some("eyes".into()),
                done: Some("white_check_mark".into()),
            },
            edit_interval: Duration::from_millis(1500),
            ping_interval: Duration::from_secs(15),
            envelope_queue: 64,
        }
    }
}

/// What is wrong with `token` as a bot token (`xoxb-…`), if anything.
pub fn bot_token_problem(token: &str) -> Option<&'static str> {
    token_problem(
        token,
        "xoxb-",
        "is not a bot token (it starts with xoxb-; find it under OAuth & Permissions)",
    )
}

/// What is wrong with `token` as an app-level token for Socket Mode
/// (`xapp-…`), if anything.
pub fn app_token_problem(token: &str) -> Option<&'static str> {
    token_problem(
        token,
        "xapp-",
        "is not an app-level token (it starts with xapp-; make one with the connections:write scope under Basic Information)",
    )
}

/// What is wrong with `secret` as a signing secret, if anything.
pub fn signing_secret_problem(secret: &str) -> Option<&'static str> {
    let secret = secret.trim();
    if secret.is_empty() {
        return Some("is empty: copy the Signing Secret from Basic Information → App Credentials");
    }
    if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Some(
            "is not a signing secret (32 letters and digits under Basic Information → App Credentials; not the client secret or a token)",
        );
    }
    None
}

fn token_problem(token: &str, prefix: &str, wrong: &'static str) -> Option<&'static str> {
    let token = token.trim();
    if token.is_empty() {
        return Some("is empty: paste the token from your Slack app's settings");
    }
    if !token.starts_with(prefix) || token.len() < prefix.len() + 10 {
        return Some(wrong);
    }
    if token.chars().any(char::is_whitespace) {
        return Some("contains spaces: paste the token alone");
    }
    None
}

/// How many threads the bot remembers talking in (a reply there needs no
/// new mention).
const THREADS_KEPT: usize = 10_000;

/// Threads the bot talks in, as a set and in the order they came.
type Threads = (HashSet<(String, String)>, VecDeque<(String, String)>);

/// One Slack workspace.
#[derive(Debug)]
pub struct SlackChannel {
    inner: Arc<Inner>,
}

struct Inner {
    settings: SlackSettings,
    api: Arc<Api>,
    /// Who the bot is, once `auth.test` said.
    bot: Mutex<Option<Bot>>,
    /// The running listener's context, for Events API deliveries.
    ctx: Mutex<Option<ChannelContext>>,
    /// Threads the bot talks in: (channel, thread ts), oldest first.
    threads: Mutex<Threads>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackChannel")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SlackChannel {
    /// A channel for `settings`; fails when the tokens cannot work.
    pub fn new(settings: SlackSettings) -> Result<Self, ChannelError> {
        let key = |k: &str| format!("channels.slack.accounts.{}.{k}", settings.account);
        if let Some(why) = bot_token_problem(&settings.bot_token) {
            return Err(ChannelError::Config(format!("{} {why}", key("bot_token"))));
        }
        if let Some(why) = settings.app_token.as_deref().and_then(app_token_problem) {
            return Err(ChannelError::Config(format!("{} {why}", key("app_token"))));
        }
        if settings.app_token.is_none() && settings.signing_secret.is_none() {
            return Err(ChannelError::Config(format!(
                "{}: set app_token (Socket Mode) or signing_secret (Events API)",
                key("app_token")
            )));
        }
        if let Some(u) = &settings.api_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(ChannelError::Config(format!(
                "{}: `{u}` is not an http:// or https:// URL",
                key("api_url")
            )));
        }
        let api = Api::new(
            settings.api_url.as_deref(),
            &settings.bot_token,
            settings.app_token.as_deref(),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                api: Arc::new(api),
                settings,
                bot: Mutex::new(None),
                ctx: Mutex::new(None),
                threads: Mutex::new((HashSet::new(), VecDeque::new())),
            }),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &SlackSettings {
        &self.inner.settings
    }
}

impl Inner {
    /// Check the bot token and learn who the bot is.
    async fn start(&self) -> Result<Bot, ChannelError> {
        let account = &self.settings.account;
        let me = self.api.auth_test().await.map_err(|e| {
            if e.is_auth() {
                ChannelError::Config(format!(
                    "Slack refused the bot token of account `{account}` ({}): copy the Bot User OAuth Token (xoxb-…) from OAuth & Permissions",
                    e.code.as_deref().unwrap_or("refused")
                ))
            } else {
                ChannelError::Unavailable(format!(
                    "cannot reach Slack for account `{account}`: {e}"
                ))
            }
        })?;
        let bot = Bot {
            user_id: me.user_id,
            bot_id: me.bot_id,
        };
        *lock(&self.bot) = Some(bot.clone());
        Ok(bot)
    }

    fn talks_in(&self, channel: &str, thread: &str) -> bool {
        lock(&self.threads)
            .0
            .contains(&(channel.to_string(), thread.to_string()))
    }

    fn remember_thread(&self, channel: &str, thread: &str) {
        let key = (channel.to_string(), thread.to_string());
        let mut threads = lock(&self.threads);
        let (set, order) = &mut *threads;
        if set.insert(key.clone()) {
            order.push_back(key);
            if order.len() > THREADS_KEPT
                && let Some(old) = order.pop_front()
            {
                set.remove(&old);
            }
        }
    }

    /// The message an Events API body carries, if it is one to answer.
    fn message(&self, body: &serde_json::Value) -> Option<Inbound> {
        let callback: events::Callback = match serde_json::from_value(body.clone()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(account = %self.settings.account, error = %e, "unreadable Slack event");
                return None;
            }
        };
        if callback.kind != "event_callback" {
            return None;
        }
        let event = callback.event?;
        let bot = lock(&self.bot).clone()?;
        let in_thread = event
            .thread_ts
            .as_deref()
            .is_some_and(|t| self.talks_in(&event.channel, t));
        let inbound = events::to_inbound(
            &self.settings.account,
            &bot,
            &self.settings.rules,
            &event,
            in_thread,
        )?;
        if inbound.mentioned
            && let Some(thread) = &inbound.thread_id
        {
            self.remember_thread(&inbound.chat_id, thread);
        }
        Some(inbound)
    }

    /// The message a slash command becomes, if it is ours.
    fn command(&self, fields: &serde_json::Value) -> Option<Inbound> {
        let ours = self.settings.slash_command.as_deref()?;
        let command: events::SlashCommand = serde_json::from_value(fields.clone()).ok()?;
        if !command.command.eq_ignore_ascii_case(ours) {
            tracing::debug!(account = %self.settings.account, command = %command.command, "a slash command that is not ours");
            return None;
        }
        Some(events::command_inbound(&self.settings.account, &command))
    }

    /// Hand Socket Mode envelopes to the gateway in the order they came,
    /// acknowledging each once stored. One at a time: while the gateway
    /// stores one, the queue behind it fills and then holds the socket.
    async fn deliver_all(
        &self,
        ctx: &ChannelContext,
        mut received: mpsc::Receiver<Received>,
    ) -> Result<(), ChannelError> {
        while let Some(r) = received.recv().await {
            let inbound = match &r.payload {
                Payload::Events(body) => self.message(body),
                Payload::Command(fields) => self.command(fields),
            };
            if let Some(inbound) = inbound {
                match ctx.deliver(inbound).await {
                    Ok(()) => {}
                    Err(ChannelError::Closed) => return Err(ChannelError::Closed),
                    // Not acknowledged: Slack delivers it again.
                    Err(e) => {
                        tracing::warn!(account = %self.settings.account, error = %e, "a Slack message was not stored; Slack will deliver it again");
                        ctx.status.problem(e.to_string());
                        continue;
                    }
                }
            }
            // Gone with its connection: Slack delivers it again, and the
            // gateway's deduplication answers it once.
            let _ = r.ack.send(r.envelope_id).await;
        }
        Ok(())
    }

    async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError> {
        self.start().await?;
        *lock(&self.ctx) = Some(ctx.clone());
        if self.settings.app_token.is_none() {
            // Events API only: deliveries come through the webhook.
            ctx.status.state("events api");
            ctx.status.contact();
            ctx.shutdown.cancelled().await;
            return Ok(());
        }
        let (tx, rx) = mpsc::channel(self.settings.envelope_queue.max(1));
        let socket = SocketMode {
            api: &self.api,
            account: &self.settings.account,
            status: &ctx.status,
            shutdown: &ctx.shutdown,
            events: tx,
            ping_interval: self.settings.ping_interval,
        };
        let delivered = self.deliver_all(&ctx, rx);
        tokio::pin!(delivered);
        tokio::select! {
            r = socket.run() => r,
            r = &mut delivered => match r {
                Err(ChannelError::Closed) => Ok(()),
                r => r,
            },
        }
    }

    /// Whether `url` is Slack's (or the configured API host's): only there
    /// does the bot token go with a download.
    fn is_slack_url(&self, url: &reqwest::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let configured = self
            .settings
            .api_url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_string));
        configured.as_deref() == Some(host)
            || (url.scheme() == "https"
                && ["slack.com", "slack-gov.com"]
                    .iter()
                    .any(|d| host == *d || host.ends_with(&format!(".{d}"))))
    }
}

#[async_trait]
impl Channel for SlackChannel {
    fn name(&self) -> &str {
        NAME
    }

    fn account(&self) -> &str {
        &self.inner.settings.account
    }

    async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError> {
        let result = self.inner.run(ctx.clone()).await;
        if let Err(e) = &result {
            ctx.status.problem(e.to_string());
        }
        *lock(&self.inner.ctx) = None;
        result
    }

    async fn open_reply(&self, target: &ReplyTarget) -> Result<Box<dyn ReplySink>, ChannelError> {
        let inner = &self.inner;
        // The message answered, for reactions (a slash command has none).
        let asked = target
            .reply_to
            .as_deref()
            .and_then(events::split_message_id)
            .filter(|(channel, _)| *channel == target.chat_id)
            .map(|(_, ts)| ts);
        let surface = SlackSurface::new(
            inner.api.clone(),
            &target.chat_id,
            target.thread_id.as_deref(),
            asked,
            inner.settings.reactions.clone(),
        );
        Ok(Box::new(
            ReplyStream::new(
                surface,
                StreamSettings {
                    edit_interval: inner.settings.edit_interval,
                    ..StreamSettings::default()
                },
            )
            .resuming(target.resume.clone()),
        ))
    }

    fn webhook(&self) -> Option<Arc<dyn Webhook>> {
        let secret = self.inner.settings.signing_secret.clone()?;
        Some(Arc::new(webhook::EventsApi::new(
            self.inner.clone(),
            &secret,
        )))
    }

    async fn fetch(
        &self,
        attachment: &Attachment,
        out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        max_bytes: u64,
    ) -> Result<u64, ChannelError> {
        let url = attachment
            .file_id
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .ok_or_else(|| ChannelError::Rejected(format!("{} has no URL", attachment.name)))?;
        if !self.inner.is_slack_url(&url) {
            return Err(ChannelError::Rejected(format!(
                "{} is not on Slack's file host; not downloaded",
                attachment.name
            )));
        }
        download::check_size(&attachment.name, attachment.size, max_bytes)?;
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(self.inner.settings.bot_token.trim())
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| {
                ChannelError::Unavailable(format!("download failed: {}", e.without_url()))
            })?;
        let chunks = response
            .bytes_stream()
            .map(|c| c.map_err(reqwest::Error::without_url));
        download::save(chunks, &attachment.name, out, max_bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_told_apart() {
        assert!(bot_token_problem("").unwrap().contains("empty"));
        assert!(
            bot_token_problem("xapp-1-A0123-456-abcdef")
                .unwrap()
                .contains("xoxb-")
        );
        assert!(bot_token_problem("xoxb-1234567890-abcdefghij").is_none());
        assert!(
            app_token_problem("xoxb-1234567890-abcdefghij")
                .unwrap()
                .contains("xapp-")
        );
        assert!(app_token_problem("xapp-1-A0123456-1234-abcdef").is_none());
    }
}
