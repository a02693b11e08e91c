//! The Telegram channel of Switchboard, on teloxide.
//!
//! One [`TelegramChannel`] per bot account. It receives by long polling
//! (`getUpdates`, one poller per token, watched by a watchdog that restarts
//! a poll that stopped making progress) or by webhook on the gateway's own
//! port (the secret-token header required; without a configured secret
//! every request is refused). Private chats, groups and
//! supergroups become [`Inbound`] messages — forum topics as threads, a
//! mention of the bot or a reply to it counting as a mention — and replies
//! stream through the shared [`ReplyStream`]: typing while the agent works,
//! one message edited in place, the final text split at 4096 UTF-16 units,
//! Telegram HTML with a plain-text fallback.
//!
//! It depends on `channels/core` and teloxide only.

mod convert;
pub mod render;
mod surface;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use teloxide::payloads::setters::*;
use teloxide::requests::Requester;
use teloxide::types::{AllowedUpdate, BotCommand, Me, Update, UpdateId};
use teloxide::{ApiError, Bot, RequestError};

use switchboard_channel::stream::{ReplyStream, StreamSettings};
use switchboard_channel::{
    Attachment, Channel, ChannelContext, ChannelError, ReplySink, ReplyTarget, Webhook,
    WebhookRequest, WebhookResponse, secret_eq,
};

pub use convert::to_inbound;
pub use surface::TelegramSurface;

/// The channel's name.
pub const NAME: &str = "telegram";

/// The header Telegram sends a webhook's secret token in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// How updates arrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// `getUpdates` long polling (no public address needed).
    #[default]
    Polling,
    /// Telegram posts updates to the gateway's `/hooks/telegram/<account>`.
    Webhook,
}

/// One bot account.
#[derive(Clone)]
pub struct TelegramSettings {
    /// The account's name in the config.
    pub account: String,
    /// The bot token from @BotFather.
    pub token: String,
    /// A self-hosted Bot API server instead of api.telegram.org.
    pub api_url: Option<String>,
    /// Polling or webhook.
    pub mode: Mode,
    /// The public URL Telegram should post to (webhook mode); when unset,
    /// the webhook is assumed to be registered already.
    pub webhook_url: Option<String>,
    /// The secret Telegram sends with every webhook request. Required in
    /// webhook mode: without one the webhook refuses every request.
    pub webhook_secret: Option<String>,
    /// How long one `getUpdates` waits for updates.
    pub poll_timeout: Duration,
    /// A poll that has not returned after this long is abandoned and a new
    /// one started.
    pub watchdog: Duration,
    /// The least time between two edits of a streaming reply.
    pub edit_interval: Duration,
}

impl std::fmt::Debug for TelegramSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSettings")
            .field("account", &self.account)
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl TelegramSettings {
    /// The webhook secret, when one is set (blank counts as unset).
    fn secret(&self) -> Option<&str> {
        self.webhook_secret
            .as_deref()
            .filter(|s| !s.trim().is_empty())
    }

    /// Settings with the defaults for everything but the account and token.
    pub fn new(account: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            token: token.into(),
            api_url: None,
            mode: Mode::Polling,
            webhook_url: None,
            webhook_secret: None,
            poll_timeout: Duration::from_secs(25),
            watchdog: Duration::from_secs(60),
            edit_interval: Duration::from_secs(1),
        }
    }
}

/// Whether `token` looks like a bot token (`<digits>:<35 characters>`).
pub fn token_problem(token: &str) -> Option<&'static str> {
    let token = token.trim();
    if token.is_empty() {
        return Some("is empty: paste the token @BotFather gave you");
    }
    match token.split_once(':') {
        Some((id, secret))
            if !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && secret.len() >= 30
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            None
        }
        _ => Some("is not a bot token (it looks like 123456789:AA…, from @BotFather)"),
    }
}

/// One Telegram bot account.
#[derive(Debug)]
pub struct TelegramChannel {
    inner: Arc<Inner>,
}

struct Inner {
    settings: TelegramSettings,
    bot: Bot,
    me: Mutex<Option<Me>>,
    /// The running listener's context, for webhook deliveries.
    live: Mutex<Option<ChannelContext>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramChannel")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn api_error(e: &RequestError) -> String {
    match e {
        RequestError::Network(n) => format!("network error: {}", root_cause(n.as_ref())),
        e => e.to_string(),
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl TelegramChannel {
    /// A channel for `settings`; fails when the token or URL cannot work.
    pub fn new(settings: TelegramSettings) -> Result<Self, ChannelError> {
        if let Some(why) = token_problem(&settings.token) {
            return Err(ChannelError::Config(format!(
                "channels.telegram.accounts.{}.token {why}",
                settings.account
            )));
        }
        // Long polls outlast reqwest's usual timeout: give them room, the
        // watchdog decides when one is stuck.
        let client = teloxide::net::default_reqwest_settings()
            .timeout(settings.poll_timeout.max(settings.watchdog) + Duration::from_secs(30))
            .build()
            .map_err(|e| ChannelError::Config(format!("cannot make an HTTP client: {e}")))?;
        let mut bot = Bot::with_client(settings.token.trim(), client);
        if let Some(api) = &settings.api_url {
            let url = url::Url::parse(api).map_err(|e| {
                ChannelError::Config(format!(
                    "channels.telegram.accounts.{}.api_url: `{api}` is not a URL ({e})",
                    settings.account
                ))
            })?;
            bot = bot.set_api_url(url);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                bot,
                me: Mutex::new(None),
                live: Mutex::new(None),
            }),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &TelegramSettings {
        &self.inner.settings
    }
}

impl Inner {
    /// Ask who we are (the token is checked here) and register commands.
    async fn start(&self) -> Result<Me, ChannelError> {
        let me = match self.bot.get_me().await {
            Ok(me) => me,
            Err(RequestError::Api(ApiError::InvalidToken)) => {
                return Err(ChannelError::Config(format!(
                    "Telegram refused the bot token of account `{}` (getMe: Unauthorized): get a new one from @BotFather",
                    self.settings.account
                )));
            }
            Err(e) => {
                return Err(ChannelError::Unavailable(format!(
                    "cannot reach Telegram for account `{}`: {}",
                    self.settings.account,
                    api_error(&e)
                )));
            }
        };
        let commands = vec![
            BotCommand::new("new", "Start a new conversation"),
            BotCommand::new("reset", "Forget this conversation"),
            BotCommand::new("status", "Show the session, model and usage"),
            BotCommand::new("approve", "Approve a waiting tool call: /approve ID"),
            BotCommand::new("deny", "Deny a waiting tool call: /deny ID"),
        ];
        if let Err(e) = self.bot.set_my_commands(commands).await {
            tracing::warn!(account = %self.settings.account, error = %api_error(&e), "cannot register the bot's commands");
        }
        *self.me.lock().unwrap_or_else(|e| e.into_inner()) = Some(me.clone());
        tracing::info!(account = %self.settings.account, bot = %me.username(), "telegram bot connected");
        Ok(me)
    }

    async fn hand_over(
        &self,
        ctx: &ChannelContext,
        me: &Me,
        update: Update,
    ) -> Result<(), ChannelError> {
        if let Some(inbound) = to_inbound(&self.settings.account, me, &update) {
            ctx.status.event();
            ctx.deliver(inbound).await?;
        }
        Ok(())
    }

    /// Long-poll until shutdown.
    async fn poll(&self, ctx: &ChannelContext, me: &Me) -> Result<(), ChannelError> {
        if let Err(e) = self.bot.delete_webhook().await {
            tracing::debug!(error = %api_error(&e), "deleteWebhook failed");
        }
        ctx.status.state("polling");
        let mut offset: Option<UpdateId> = None;
        let timeout = self.settings.poll_timeout.as_secs().max(1) as u32;
        loop {
            let mut req = self
                .bot
                .get_updates()
                .timeout(timeout)
                .allowed_updates(vec![AllowedUpdate::Message]);
            if let Some(o) = offset {
                req = req.offset(o.as_offset());
            }
            let watchdog = self.settings.poll_timeout + self.settings.watchdog;
            let answer = tokio::select! {
                () = ctx.shutdown.cancelled() => return Ok(()),
                a = tokio::time::timeout(watchdog, req.into_future()) => a,
            };
            match answer {
                Err(_) => {
                    ctx.status.watchdog_restart();
                    tracing::warn!(account = %self.settings.account, waited = ?watchdog, "getUpdates made no progress; the watchdog restarts the poll");
                }
                Ok(Ok(updates)) => {
                    ctx.status.contact();
                    for update in updates {
                        let id = update.id;
                        // Stored before it is confirmed: on an error the
                        // poll starts over and Telegram sends it again.
                        self.hand_over(ctx, me, update).await?;
                        // The next poll asks for what follows this one,
                        // which confirms it to Telegram.
                        offset = Some(id);
                    }
                }
                Ok(Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates))) => {
                    let msg = "409 Conflict: another program is polling with this bot token (only one poller per token can receive); stop it or give this account its own bot";
                    ctx.status.problem(msg);
                    tracing::warn!(account = %self.settings.account, "{msg}");
                    self.pause(ctx, Duration::from_secs(5)).await?;
                }
                Ok(Err(RequestError::Api(ApiError::InvalidToken))) => {
                    return Err(ChannelError::Config(format!(
                        "Telegram refused the bot token of account `{}`",
                        self.settings.account
                    )));
                }
                Ok(Err(RequestError::RetryAfter(s))) => {
                    ctx.status
                        .problem(format!("rate limited by Telegram for {} s", s.seconds()));
                    self.pause(ctx, s.duration()).await?;
                }
                Ok(Err(e)) => {
                    let msg = format!("getUpdates failed: {}", api_error(&e));
                    ctx.status.problem(msg.clone());
                    tracing::warn!(account = %self.settings.account, "{msg}");
                    self.pause(ctx, Duration::from_secs(2)).await?;
                }
            }
        }
    }

    async fn pause(&self, ctx: &ChannelContext, d: Duration) -> Result<(), ChannelError> {
        tokio::select! {
            () = ctx.shutdown.cancelled() => Err(ChannelError::Closed),
            () = tokio::time::sleep(d) => Ok(()),
        }
    }
}

#[async_trait]
impl Channel for TelegramChannel {
    fn name(&self) -> &str {
        NAME
    }

    fn account(&self) -> &str {
        &self.inner.settings.account
    }

    async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError> {
        self.inner.run(ctx).await
    }

    async fn open_reply(&self, target: &ReplyTarget) -> Result<Box<dyn ReplySink>, ChannelError> {
        let surface = TelegramSurface::new(self.inner.bot.clone(), target)?;
        Ok(Box::new(
            ReplyStream::new(
                surface,
                StreamSettings {
                    edit_interval: self.inner.settings.edit_interval,
                    ..StreamSettings::default()
                },
            )
            .resuming(target.resume.clone()),
        ))
    }

    async fn fetch(
        &self,
        attachment: &Attachment,
        out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        max_bytes: u64,
    ) -> Result<u64, ChannelError> {
        use teloxide::net::Download;
        let id = attachment
            .file_id
            .as_deref()
            .ok_or_else(|| ChannelError::Rejected(format!("{} has no file id", attachment.name)))?;
        let bot = &self.inner.bot;
        let file = bot
            .get_file(teloxide::types::FileId(id.to_string()))
            .await
            .map_err(|e| ChannelError::Unavailable(format!("getFile failed: {}", api_error(&e))))?;
        if u64::from(file.size) > max_bytes {
            return Err(ChannelError::Rejected(format!(
                "{} is {} KB, over the {} KB limit",
                attachment.name,
                file.size / 1024,
                max_bytes / 1024
            )));
        }
        bot.download_file(&file.path, out)
            .await
            .map_err(|e| ChannelError::Unavailable(format!("download failed: {e}")))?;
        Ok(u64::from(file.size))
    }

    fn webhook(&self) -> Option<Arc<dyn Webhook>> {
        (self.inner.settings.mode == Mode::Webhook)
            .then(|| Arc::new(TelegramWebhook(self.inner.clone())) as Arc<dyn Webhook>)
    }
}

impl Inner {
    async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError> {
        let me = match self.start().await {
            Ok(me) => me,
            Err(e) => {
                ctx.status.problem(e.to_string());
                return Err(e);
            }
        };
        ctx.status.contact();
        let result = match self.settings.mode {
            Mode::Polling => self.poll(&ctx, &me).await,
            Mode::Webhook => {
                let Some(secret) = self.settings.secret() else {
                    ctx.status.problem(NO_SECRET.to_string());
                    return Err(ChannelError::Config(NO_SECRET.into()));
                };
                if let Some(url) = &self.settings.webhook_url {
                    let req = self
                        .bot
                        .set_webhook(url::Url::parse(url).map_err(|e| {
                            ChannelError::Config(format!("webhook_url `{url}` is not a URL ({e})"))
                        })?)
                        .secret_token(secret.to_string());
                    req.await.map_err(|e| {
                        ChannelError::Unavailable(format!("setWebhook failed: {}", api_error(&e)))
                    })?;
                }
                ctx.status.state("webhook");
                *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(ctx.clone());
                ctx.shutdown.cancelled().await;
                *self.live.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(())
            }
        };
        match result {
            Err(ChannelError::Closed) => Ok(()),
            r => r,
        }
    }
}

/// The webhook side of a [`TelegramChannel`].
#[derive(Debug, Clone)]
struct TelegramWebhook(Arc<Inner>);

#[async_trait]
impl Webhook for TelegramWebhook {
    async fn handle(&self, request: WebhookRequest) -> WebhookResponse {
        let channel = &self.0;
        // Without a secret anyone who finds the URL could post updates in
        // any user's name: refuse everything rather than trust the request.
        let Some(secret) = channel.settings.secret() else {
            return WebhookResponse::text(403, NO_SECRET);
        };
        let given = request.header(SECRET_HEADER).unwrap_or("");
        if !secret_eq(given, secret) {
            return WebhookResponse::text(401, "wrong or missing X-Telegram-Bot-Api-Secret-Token");
        }
        let update: Update = match serde_json::from_slice(&request.body) {
            Ok(u) => u,
            Err(e) => return WebhookResponse::text(400, format!("not a Telegram update: {e}")),
        };
        let ctx = channel
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let me = channel.me.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (Some(ctx), Some(me)) = (ctx, me) else {
            // Telegram retries later: nothing is lost.
            return WebhookResponse::text(503, "the Telegram channel is not running yet");
        };
        match channel.hand_over(&ctx, &me, update).await {
            Ok(()) => WebhookResponse::text(200, ""),
            // Not stored: Telegram delivers it again later.
            Err(e) => WebhookResponse::text(503, e.to_string()),
        }
    }
}

/// What a webhook without a secret answers, and why it does not start.
const NO_SECRET: &str = "this webhook has no secret, so it refuses every request: set webhook_secret (16 or more of A-Z, a-z, 0-9, _ and -) for this account";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_before_anything_is_sent() {
        assert!(token_problem("").unwrap().contains("empty"));
        assert!(token_problem("hello").is_some());
        assert!(token_problem("123:short").is_some());
        assert!(token_problem("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw").is_none());
        let err = TelegramChannel::new(TelegramSettings::new("main", " ")).unwrap_err();
        assert!(
            err.to_string()
                .contains("channels.telegram.accounts.main.token is empty")
        );
    }

    const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

    fn webhook_with(secret: Option<&str>) -> Arc<dyn Webhook> {
        let mut settings = TelegramSettings::new("main", TOKEN);
        settings.mode = Mode::Webhook;
        settings.webhook_secret = secret.map(str::to_string);
        TelegramChannel::new(settings)
            .unwrap()
            .webhook()
            .expect("webhook mode has a webhook")
    }

    fn post(secret_header: Option<&str>) -> WebhookRequest {
        WebhookRequest {
            headers: secret_header
                .map(|v| vec![(SECRET_HEADER.to_string(), v.to_string())])
                .unwrap_or_default(),
            body: br#"{"update_id": 1}"#.to_vec(),
        }
    }

    #[tokio::test]
    async fn a_webhook_without_a_secret_refuses_every_request() {
        for secret in [None, Some(""), Some("   ")] {
            let hook = webhook_with(secret);
            for header in [None, Some(""), Some("anything")] {
                let answer = hook.handle(post(header)).await;
                assert_eq!(answer.status, 403, "secret {secret:?}, header {header:?}");
                let body = String::from_utf8(answer.body).unwrap();
                assert!(body.contains("set webhook_secret"), "{body}");
            }
        }
    }

    #[tokio::test]
    async fn a_webhook_with_a_secret_checks_the_header() {
        let hook = webhook_with(Some("0123456789abcdef-secret"));
        for header in [
            None,
            Some(""),
            Some("0123456789abcdef-secreT"),
            Some("0123456789abcdef"),
        ] {
            assert_eq!(hook.handle(post(header)).await.status, 401, "{header:?}");
        }
        // The right secret gets past the check (the channel is not running,
        // so the update is left for Telegram to deliver again: 503).
        let answer = hook.handle(post(Some("0123456789abcdef-secret"))).await;
        assert!(
            ![401, 403].contains(&answer.status),
            "the right secret was refused: {answer:?}"
        );
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let s = TelegramSettings::new("main", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw");
        assert!(!format!("{s:?}").contains("AAHdq"));
    }
}
