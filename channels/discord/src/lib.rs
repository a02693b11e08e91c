//! The Discord channel of Switchboard: serenity for REST, a gateway
//! connection of our own (see [`gateway`] for why).
//!
//! One [`DiscordChannel`] per bot account. DMs and guild text channels
//! become [`Inbound`] messages — threads as thread sessions, a mention or a
//! reply to the bot counting as a mention — and replies stream through the
//! shared [`ReplyStream`]: typing while the agent works, one message edited
//! in place, the final text split at 2000 characters (and a line cap)
//! without breaking code blocks; a 429 is waited out as Discord says. The
//! slash commands `/new`, `/reset` and `/status` are registered for the
//! application and answered in their own response.
//!
//! Nothing Discord sends is lost across a restart: an event counts as
//! handled (its sequence number is saved) only once the gateway stored
//! it, the session is saved (`saved.rs`) and resumed by the next run, so
//! Discord replays what came meanwhile; when the session could not be
//! resumed, DMs and the catch-up channels are read back through their
//! message history (`catch_up.rs`) and the status says messages may have
//! been missed. Events wait in a bounded queue (a full one stops reading
//! the socket) and the channel kinds in a bounded map.
//!
//! It depends on `channels/core` and serenity only; its state it keeps
//! through the [`ChannelContext`]'s channel state, knowing nothing of
//! storage.

mod catch_up;
mod channel_map;
mod convert;
pub mod gateway;
pub mod model;
mod rest;
mod saved;
mod surface;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serenity::model::id::{ApplicationId, ChannelId, InteractionId};
use tokio::sync::mpsc;

use futures::StreamExt;
use switchboard_channel::download;
use switchboard_channel::stream::{ReplyStream, StreamSettings};
use switchboard_channel::{
    Attachment, Channel, ChannelContext, ChannelError, ChatKind, ReplySink, ReplyTarget,
};

pub use convert::{Place, command_inbound, to_inbound};
pub use saved::Resumable;
pub use surface::{CommandResponse, DiscordSurface, LIMIT};

use channel_map::ChannelMap;
use gateway::{Dispatch, Event, Gateway};
use rest::Rest;
use saved::{LastSeen, Saved};

/// The channel's name.
pub const NAME: &str = "discord";

/// Events received and not yet handed over, at most. A full queue stops
/// reading the socket until the gateway took some: Discord buffers the
/// rest (heartbeats go on meanwhile).
pub const EVENT_QUEUE: usize = 256;

/// One bot account.
#[derive(Clone)]
pub struct DiscordSettings {
    /// The account's name in the config.
    pub account: String,
    /// The bot token from the Developer Portal.
    pub token: String,
    /// The REST base URL instead of `https://discord.com` (a proxy);
    /// requests go to `<api_url>/api/v10/…`.
    pub api_url: Option<String>,
    /// The gateway URL instead of the one `GET /gateway` names.
    pub gateway_url: Option<String>,
    /// Guild ids the bot listens in; empty: every guild it is in.
    pub guilds: Vec<String>,
    /// Take messages from other bots (never from itself).
    pub allow_bots: bool,
    /// The least time between two edits of a streaming reply.
    pub edit_interval: Duration,
    /// The most lines in one message.
    pub max_lines: usize,
    /// Guild channels read back through their history (with their
    /// threads) when a session was lost; DMs always are. Default none.
    pub catch_up_channels: Vec<String>,
}

impl std::fmt::Debug for DiscordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordSettings")
            .field("account", &self.account)
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url)
            .field("gateway_url", &self.gateway_url)
            .field("guilds", &self.guilds)
            .finish_non_exhaustive()
    }
}

impl DiscordSettings {
    /// Settings with the defaults for everything but the account and token.
    pub fn new(account: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            token: token.into(),
            api_url: None,
            gateway_url: None,
            guilds: Vec::new(),
            allow_bots: false,
            edit_interval: Duration::from_secs(1),
            max_lines: 40,
            catch_up_channels: Vec::new(),
        }
    }
}

/// Whether `token` looks like a bot token (three dot-separated base64url
/// parts, as the Developer Portal shows it).
pub fn token_problem(token: &str) -> Option<&'static str> {
    let token = token.trim();
    if token.is_empty() {
        return Some(
            "is empty: paste the bot token from the Discord Developer Portal (Bot → Reset Token)",
        );
    }
    if token.starts_with("Bot ") || token.starts_with("Bearer ") {
        return Some("starts with `Bot `: paste only the token itself");
    }
    let parts: Vec<&str> = token.split('.').collect();
    let base64url = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if parts.len() != 3 || !parts.iter().all(base64url) || token.len() < 50 {
        return Some(
            "is not a bot token (it has three parts separated by dots, like MTE….Gx….abc…; the client secret and public key are not it)",
        );
    }
    None
}

/// How long Discord accepts answers to an interaction.
const INTERACTION_TTL: Duration = Duration::from_secs(15 * 60);

/// One Discord bot account.
#[derive(Debug)]
pub struct DiscordChannel {
    inner: Arc<Inner>,
}

struct Inner {
    settings: DiscordSettings,
    rest: Arc<Rest>,
    /// The bot's user id and application, once READY said them.
    bot: Mutex<Option<(String, String)>>,
    /// What we know of channel kinds: thread → parent (bounded).
    channels: Mutex<ChannelMap>,
    /// Slash commands waiting for their answer: interaction id → token.
    interactions: Mutex<HashMap<String, (String, Instant)>>,
    commands_registered: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordChannel")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DiscordChannel {
    /// A channel for `settings`; fails when the token or URLs cannot work.
    pub fn new(settings: DiscordSettings) -> Result<Self, ChannelError> {
        let key = |k: &str| format!("channels.discord.accounts.{}.{k}", settings.account);
        if let Some(why) = token_problem(&settings.token) {
            return Err(ChannelError::Config(format!("{} {why}", key("token"))));
        }
        for (k, url, schemes) in [
            ("api_url", &settings.api_url, ["http://", "https://"]),
            ("gateway_url", &settings.gateway_url, ["ws://", "wss://"]),
        ] {
            if let Some(u) = url
                && !schemes.iter().any(|s| u.starts_with(s))
            {
                return Err(ChannelError::Config(format!(
                    "{}: `{u}` is not a {} URL",
                    key(k),
                    schemes.join(" or ")
                )));
            }
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ChannelError::Config(format!("cannot make an HTTP client: {e}")))?;
        let rest = Rest::new(client, &settings.token, settings.api_url.as_deref());
        Ok(Self {
            inner: Arc::new(Inner {
                rest: Arc::new(rest),
                settings,
                bot: Mutex::new(None),
                channels: Mutex::new(ChannelMap::default()),
                interactions: Mutex::new(HashMap::new()),
                commands_registered: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &DiscordSettings {
        &self.inner.settings
    }
}

impl Inner {
    fn rest(&self) -> &Rest {
        &self.rest
    }

    /// Check the token and find the gateway: its URL, and who the bot is.
    async fn start(&self) -> Result<(String, model::User), ChannelError> {
        let account = &self.settings.account;
        let me = self.rest().me().await.map_err(|e| match e.status {
            Some(401) => ChannelError::Config(format!(
                "Discord refused the bot token of account `{account}` (401 Unauthorized): copy a new one from the Developer Portal (Bot → Reset Token)"
            )),
            _ => ChannelError::Unavailable(format!(
                "cannot reach Discord for account `{account}`: {e}"
            )),
        })?;
        if !me.bot {
            tracing::warn!(account = %account, "the Discord token is not a bot's; bots are what Switchboard supports");
        }
        let url = match &self.settings.gateway_url {
            Some(url) => url.clone(),
            None => self.rest().gateway().await.map_err(|e| {
                ChannelError::Unavailable(format!(
                    "cannot ask Discord for the gateway URL (account `{account}`): {e}"
                ))
            })?,
        };
        Ok((url, me))
    }

    /// Register `/new`, `/reset` and `/status` for the application, once.
    async fn register_commands(&self, app: &str) {
        use std::sync::atomic::Ordering;
        if self.commands_registered.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(app) = app.parse::<u64>() else { return };
        let command = |name: &str, description: &str| serde_json::json!({"name": name, "description": description, "type": 1});
        let commands = serde_json::json!([
            command("new", "Start a new conversation"),
            command("reset", "Forget this conversation"),
            command("status", "Show the session, model and usage"),
        ]);
        if let Err(e) = self
            .rest()
            .set_commands(ApplicationId::new(app), &commands)
            .await
        {
            self.commands_registered.store(false, Ordering::SeqCst);
            tracing::warn!(account = %self.settings.account, error = %e, "cannot register the slash commands");
        }
    }

    /// Where `channel` is: a DM, a guild channel or a thread. Unknown guild
    /// channels are looked up once.
    async fn place(&self, guild: Option<&str>, channel: &str) -> Place {
        if guild.is_none() {
            return Place::Dm;
        }
        let known = lock(&self.channels).get(channel);
        let parent = match known {
            Some(p) => p,
            None => {
                let looked_up = match channel.parse::<u64>() {
                    Ok(id) if id != 0 => self.rest().channel(ChannelId::new(id)).await,
                    _ => return Place::Channel,
                };
                match looked_up {
                    Ok(c) => {
                        let parent = c.is_thread().then_some(c.parent_id).flatten();
                        lock(&self.channels).insert(channel.to_string(), parent.clone());
                        parent
                    }
                    // Not remembered: the next message asks again.
                    Err(e) => {
                        tracing::warn!(account = %self.settings.account, channel, error = %e, "cannot tell whether a channel is a thread; treating it as a channel");
                        None
                    }
                }
            }
        };
        match parent {
            Some(parent) => Place::Thread { parent },
            None => Place::Channel,
        }
    }

    fn listens_in(&self, guild: Option<&str>) -> bool {
        match guild {
            None => true,
            Some(g) => {
                self.settings.guilds.is_empty() || self.settings.guilds.iter().any(|x| x == g)
            }
        }
    }

    /// Hand events to the gateway in the order they came, counting each
    /// as handled once it is (see `saved.rs`).
    async fn deliver_all(
        &self,
        ctx: &ChannelContext,
        mut events: mpsc::Receiver<Event>,
        saved: &mut Saved,
    ) -> Result<(), ChannelError> {
        while let Some(Event { seq, dispatch }) = events.recv().await {
            match dispatch {
                Dispatch::Ready {
                    ready,
                    resume_url,
                    after_loss,
                } => {
                    let app = ready
                        .application
                        .as_ref()
                        .map(|a| a.id.clone())
                        .unwrap_or_default();
                    *lock(&self.bot) = Some((ready.user.id.clone(), app.clone()));
                    if !app.is_empty() {
                        self.register_commands(&app).await;
                    }
                    // Before the new session is saved: a crash during the
                    // catch-up finds the old one, fails to resume it and
                    // catches up again from where each channel was left.
                    if after_loss {
                        self.catch_up(ctx, saved).await?;
                    }
                    saved
                        .session_started(&ready.session_id, &resume_url, seq, &app)
                        .await;
                }
                Dispatch::Channels(list) => {
                    let mut known = lock(&self.channels);
                    for c in list {
                        let parent = if c.is_thread() {
                            c.parent_id.clone()
                        } else {
                            None
                        };
                        known.insert(c.id, parent);
                    }
                    drop(known);
                    saved.handled(seq);
                }
                Dispatch::Message(m) => {
                    let last = self.message(ctx, &m).await?;
                    let last = last.as_ref().map(|l| (m.channel_id.as_str(), l));
                    saved.message_handled(seq, last).await;
                }
                Dispatch::Interaction(i) => {
                    self.command(ctx, i).await?;
                    saved.message_handled(seq, None).await;
                }
            }
        }
        Ok(())
    }

    /// One posted message: handed over when it is for us. Returns where
    /// its channel now stands when the channel is caught up on after a
    /// lost session.
    async fn message(
        &self,
        ctx: &ChannelContext,
        m: &model::Message,
    ) -> Result<Option<LastSeen>, ChannelError> {
        if !self.listens_in(m.guild_id.as_deref()) {
            return Ok(None);
        }
        let Some((bot_id, _)) = lock(&self.bot).clone() else {
            return Ok(None);
        };
        let place = self.place(m.guild_id.as_deref(), &m.channel_id).await;
        self.offer(ctx, &bot_id, m, &place).await?;
        Ok(self.catches_up(&place, &m.channel_id).then(|| LastSeen {
            message: m.id.clone(),
            guild: m.guild_id.clone(),
            parent: match &place {
                Place::Thread { parent } => Some(parent.clone()),
                _ => None,
            },
        }))
    }

    /// Hand `m` over if it is for us (not the bot's own, not a system
    /// message, ...); returns whether it was.
    async fn offer(
        &self,
        ctx: &ChannelContext,
        bot_id: &str,
        m: &model::Message,
        place: &Place,
    ) -> Result<bool, ChannelError> {
        let account = &self.settings.account;
        match to_inbound(account, bot_id, self.settings.allow_bots, m, place) {
            Some(inbound) => {
                self.hand_over(ctx, inbound).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether a channel's history is read after a lost session: DMs, the
    /// catch-up channels and their threads.
    fn catches_up(&self, place: &Place, channel: &str) -> bool {
        let listed = |c: &str| self.settings.catch_up_channels.iter().any(|x| x == c);
        match place {
            Place::Dm => true,
            Place::Channel => listed(channel),
            Place::Thread { parent } => listed(parent),
        }
    }

    /// A slash command: answer "thinking…" at once (Discord allows three
    /// seconds), then hand it on as a text command whose reply edits that
    /// response.
    async fn command(
        &self,
        ctx: &ChannelContext,
        i: model::Interaction,
    ) -> Result<(), ChannelError> {
        if i.kind != 2 || !self.listens_in(i.guild_id.as_deref()) {
            return Ok(());
        }
        let channel = i
            .channel_id
            .clone()
            .or_else(|| i.channel.as_ref().map(|c| c.id.clone()))
            .unwrap_or_default();
        let place = match (&i.guild_id, &i.channel) {
            (None, _) => Place::Dm,
            (Some(_), Some(c)) if c.is_thread() && c.parent_id.is_some() => Place::Thread {
                parent: c.parent_id.clone().unwrap_or_default(),
            },
            (Some(g), _) => self.place(Some(g), &channel).await,
        };
        let Some(inbound) = command_inbound(&self.settings.account, &i, &place) else {
            return Ok(());
        };
        match i.id.parse::<u64>() {
            Ok(id) if id != 0 => match self.rest().defer(InteractionId::new(id), &i.token).await {
                Ok(()) => {
                    let mut waiting = lock(&self.interactions);
                    waiting.retain(|_, (_, at)| at.elapsed() < INTERACTION_TTL);
                    waiting.insert(i.id.clone(), (i.token.clone(), Instant::now()));
                }
                Err(e) => {
                    tracing::warn!(account = %self.settings.account, error = %e, "cannot acknowledge a slash command; answering in the channel");
                }
            },
            _ => return Ok(()),
        }
        self.hand_over(ctx, inbound).await
    }

    /// Hand one message to the gateway until it is stored. Discord sends
    /// an event once to a live connection, so a store that fails is
    /// retried here (with growing waits, said in health) rather than the
    /// event counted as handled; only shutdown ends the wait (and the next
    /// run resumes from the last event handled).
    async fn hand_over(
        &self,
        ctx: &ChannelContext,
        inbound: switchboard_channel::Inbound,
    ) -> Result<(), ChannelError> {
        let mut wait = Duration::from_millis(500);
        loop {
            match ctx.deliver(inbound.clone()).await {
                Ok(()) => return Ok(()),
                Err(ChannelError::Closed) => return Err(ChannelError::Closed),
                Err(e) => {
                    let what = format!("{e}; trying again in {wait:?}");
                    tracing::warn!(account = %self.settings.account, message = %inbound.message_id, "{what}");
                    ctx.status.problem(what);
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => return Err(ChannelError::Closed),
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError> {
        let (url, me) = self.start().await?;
        let mut saved = Saved::new(ctx.state.clone(), &self.settings.account);
        let loaded = saved.load(&me.id).await;
        // A resumed session sends no READY: who the bot is comes from
        // `GET /users/@me` and the application from the last READY.
        let app = loaded.application.clone().unwrap_or_default();
        *lock(&self.bot) = Some((me.id.clone(), app.clone()));
        if !app.is_empty() {
            self.register_commands(&app).await;
        }
        if loaded.session.is_some() {
            tracing::info!(account = %self.settings.account, "resuming the Discord session of the last run");
        }
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let gateway = Gateway {
            token: self.settings.token.trim(),
            url,
            account: &self.settings.account,
            status: &ctx.status,
            shutdown: &ctx.shutdown,
            events: tx,
            resume: loaded.session,
        };
        // The connection never waits for the gateway's store: heartbeats
        // go on while messages are handed over in order.
        let result = {
            let delivered = self.deliver_all(&ctx, rx, &mut saved);
            tokio::pin!(delivered);
            tokio::select! {
                r = gateway.run() => r,
                r = &mut delivered => match r {
                    Err(ChannelError::Closed) => Ok(()),
                    r => r,
                },
            }
        };
        saved.flush().await;
        result
    }

    /// The slash command a reply answers, if it still can be answered.
    fn command_response(&self, target: &ReplyTarget) -> Option<CommandResponse> {
        let id = target
            .reply_to
            .as_deref()?
            .strip_prefix(convert::INTERACTION)?;
        let (token, at) = lock(&self.interactions).get(id).cloned()?;
        let app = lock(&self.bot).as_ref()?.1.parse::<u64>().ok()?;
        (at.elapsed() < INTERACTION_TTL).then(|| CommandResponse {
            app: ApplicationId::new(app),
            token,
        })
    }
}

#[async_trait]
impl Channel for DiscordChannel {
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
        result
    }

    async fn open_reply(&self, target: &ReplyTarget) -> Result<Box<dyn ReplySink>, ChannelError> {
        let inner = &self.inner;
        let channel = match target.chat_kind {
            ChatKind::Thread => target.thread_id.as_deref().unwrap_or(&target.chat_id),
            _ => &target.chat_id,
        };
        let command = inner.command_response(target);
        // In guilds, the answer replies to the message that asked.
        let reply_to = (target.chat_kind != ChatKind::Dm && command.is_none())
            .then_some(target.reply_to.as_deref())
            .flatten();
        let surface = DiscordSurface::new(
            inner.rest.clone(),
            channel,
            reply_to,
            command,
            inner.settings.max_lines,
        )?
        .resuming(target.resume.as_deref());
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

    async fn fetch(
        &self,
        attachment: &Attachment,
        out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        max_bytes: u64,
    ) -> Result<u64, ChannelError> {
        let url = attachment
            .file_id
            .as_deref()
            .ok_or_else(|| ChannelError::Rejected(format!("{} has no URL", attachment.name)))?;
        download::check_size(&attachment.name, attachment.size, max_bytes)?;
        let response = self
            .inner
            .rest
            .download(url)
            .await
            .map_err(|e| ChannelError::Unavailable(format!("download failed: {e}")))?;
        let chunks = response
            .bytes_stream()
            .map(|c| c.map_err(reqwest::Error::without_url));
        download::save(chunks, &attachment.name, out, max_bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GxAbCd.abcdefghijklmnopqrstuvwxyz0123456789AB";

    #[test]
    fn tokens_are_checked_before_anything_is_sent() {
        assert!(token_problem("").unwrap().contains("empty"));
        assert!(
            token_problem(&format!("Bot {TOKEN}"))
                .unwrap()
                .contains("only the token")
        );
        assert!(token_problem("0123456789abcdef0123456789abcdef").is_some());
        assert!(token_problem(TOKEN).is_none());
        let err = DiscordChannel::new(DiscordSettings::new("main", "nope")).unwrap_err();
        assert!(
            err.to_string()
                .contains("channels.discord.accounts.main.token")
        );
        let mut s = DiscordSettings::new("main", TOKEN);
        s.gateway_url = Some("http://x".into());
        let err = DiscordChannel::new(s).unwrap_err().to_string();
        assert!(
            err.contains("gateway_url") && err.contains("ws://"),
            "{err}"
        );
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let s = DiscordSettings::new("main", TOKEN);
        assert!(!format!("{s:?}").contains("GxAbCd"));
        let c = DiscordChannel::new(s).unwrap();
        assert!(!format!("{c:?}").contains("GxAbCd"));
    }
}
