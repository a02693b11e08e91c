//! A fake Discord: the REST API under `/api/v10` and a gateway WebSocket
//! speaking the real protocol (<https://discord.com/developers/docs/events/gateway>):
//! HELLO with a heartbeat interval, IDENTIFY → READY (with a
//! `resume_gateway_url` that differs from the gateway URL) and GUILD_CREATE,
//! DISPATCH with sequence numbers, HEARTBEAT → HEARTBEAT_ACK, RESUME →
//! the missed events replayed then RESUMED, RECONNECT, INVALID_SESSION,
//! and the close codes 4004 (bad token) and 4014 (disallowed intents).
//!
//! Events dispatched while no connection is live are kept for the session
//! and replayed on resume, as Discord does, until the session expires
//! ([`FakeDiscord::expire_session`], or a client closing with 1000/1001
//! ends it): a RESUME of an unknown session gets INVALID_SESSION (d=false).
//! REST answers with Discord's shapes, including 429 with `Retry-After`
//! and a JSON `retry_after`, 400 "Invalid Form Body" for a message over
//! 2000 characters, and each channel's message history
//! (`GET /channels/{id}/messages?after=&limit=`, the oldest `limit` after
//! `after`, newest first, without `guild_id`, as Discord sends them). The
//! messages the bot posted are kept per channel as a reader sees them
//! (after edits).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

mod gateway;

/// The fake bot's token.
pub const TOKEN: &str =
    "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GxFake1.switchboard-tests-fake-discord-token_01";
/// The bot's user id.
pub const BOT_ID: &str = "1098765432109876543";
/// The bot's application id.
pub const APP_ID: &str = "1098765432109876000";
/// The guild the bot is in.
pub const GUILD_ID: &str = "800000000000000001";
/// A text channel of that guild.
pub const CHANNEL_ID: &str = "800000000000000010";
/// A public thread in that channel.
pub const THREAD_ID: &str = "800000000000000020";
/// A second guild, for filtering.
pub const OTHER_GUILD_ID: &str = "800000000000000002";
/// A text channel of the second guild.
pub const OTHER_CHANNEL_ID: &str = "800000000000000030";

/// A message the bot posted, as a reader sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// Its id.
    pub id: String,
    /// Its text now.
    pub content: String,
    /// How many times it was edited.
    pub edits: usize,
    /// The message it replies to.
    pub reply_to: Option<String>,
    /// Its `allowed_mentions`.
    pub allowed_mentions: Value,
    /// When it was posted.
    pub at: Instant,
    /// When it was last changed.
    pub changed: Instant,
}

/// One REST call.
#[derive(Debug, Clone)]
pub struct Call {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path after `/api/v10`.
    pub path: String,
    /// The query string, without `?` (empty when none).
    pub query: String,
    /// The JSON body.
    pub body: Value,
    /// When it came.
    pub at: Instant,
}

/// One gateway connection's handshake, as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// IDENTIFY on the given path (`/gateway` or `/resume`).
    Identify {
        /// Where it connected.
        path: String,
        /// The intents it asked for.
        intents: u64,
    },
    /// RESUME on the given path with the given sequence.
    Resume {
        /// Where it connected.
        path: String,
        /// The last sequence it had seen.
        seq: u64,
    },
}

pub(crate) enum Push {
    Frame(String),
    Drop,
    Close(u16, &'static str),
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) next_id: u64,
    pub(crate) shown: BTreeMap<String, Vec<Shown>>,
    /// channel → every message posted in it (users' and the bot's), as
    /// the history endpoint returns them.
    pub(crate) history: BTreeMap<String, Vec<Value>>,
    pub(crate) calls: Vec<Call>,
    /// "METHOD /path-prefix" → answers to give instead (status, retry after).
    pub(crate) failures: Vec<(String, u16, Option<f64>)>,
    pub(crate) session: Option<String>,
    pub(crate) seq: u64,
    pub(crate) events: Vec<(u64, String)>,
    pub(crate) live: Option<(u64, mpsc::UnboundedSender<Push>)>,
    pub(crate) next_conn: u64,
    /// Gateway sockets open now, and the most ever open at once.
    pub(crate) open: usize,
    pub(crate) most_open: usize,
    pub(crate) zombie: Option<u64>,
    pub(crate) replay_everything: bool,
    pub(crate) handshakes: Vec<Handshake>,
    pub(crate) heartbeats: usize,
    pub(crate) heartbeat_ms: u64,
    pub(crate) disallow_content: bool,
    pub(crate) commands: Option<Value>,
    /// interaction id → (token, channel, callback types answered)
    pub(crate) interactions: HashMap<String, (String, String, Vec<u64>)>,
    /// interaction token → the original response's message id
    pub(crate) originals: HashMap<String, String>,
}

pub(crate) struct Shared {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) changed: Notify,
    pub(crate) addr: Mutex<Option<SocketAddr>>,
}

/// A running fake Discord.
#[derive(Clone)]
pub struct FakeDiscord {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

pub(crate) fn error(status: u16, code: u64, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"message": message, "code": code})),
    )
        .into_response()
}

pub(crate) fn bot_user() -> Value {
    json!({"id": BOT_ID, "username": "switchboard-test", "discriminator": "0",
           "global_name": null, "avatar": null, "bot": true, "flags": 0})
}

fn user(id: u64) -> Value {
    json!({"id": id.to_string(), "username": format!("user{id}"), "discriminator": "0",
           "global_name": format!("User {id}"), "avatar": null})
}

/// The DM channel between the bot and `user`.
pub fn dm_channel(user: u64) -> String {
    (700_000_000_000_000_000u64 + user).to_string()
}

fn message_json(id: &str, channel: &str, author: Value, content: &str) -> Value {
    json!({
        "id": id, "channel_id": channel, "author": author, "content": content,
        "timestamp": "2026-11-21T10:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": [], "pinned": false, "type": 0, "flags": 0,
    })
}

pub(crate) fn channel_json(id: &str) -> Option<Value> {
    let guild = |id: &str, name: &str, g: &str| {
        json!({"id": id, "type": 0, "guild_id": g, "name": name, "position": 0,
               "permission_overwrites": [], "nsfw": false, "parent_id": null})
    };
    Some(match id {
        CHANNEL_ID => guild(CHANNEL_ID, "general", GUILD_ID),
        OTHER_CHANNEL_ID => guild(OTHER_CHANNEL_ID, "elsewhere", OTHER_GUILD_ID),
        THREAD_ID => json!({"id": THREAD_ID, "type": 11, "guild_id": GUILD_ID, "name": "a thread",
                            "parent_id": CHANNEL_ID, "owner_id": "42",
                            "thread_metadata": {"archived": false, "auto_archive_duration": 1440,
                                                "archive_timestamp": "2026-11-21T10:00:00.000000+00:00", "locked": false}}),
        _ => return None,
    })
}

/// Number and send (or keep) one dispatch, under the caller's lock.
pub(crate) fn dispatch_locked(inner: &mut Inner, t: &str, d: Value) {
    inner.seq += 1;
    let s = inner.seq;
    let frame = json!({"op": 0, "t": t, "s": s, "d": d}).to_string();
    inner.events.push((s, frame.clone()));
    if let Some((_, tx)) = &inner.live {
        let _ = tx.send(Push::Frame(frame));
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr.lock().unwrap().unwrap())
    }

    /// Number and send (or keep) one dispatch.
    pub(crate) fn dispatch(&self, t: &str, d: Value) {
        dispatch_locked(&mut self.lock(), t, d);
        self.changed.notify_waiters();
    }

    /// Post message `m` from a user: into its channel's history (as REST
    /// shows it, without the guild) and as a MESSAGE_CREATE.
    fn post_from_user(&self, m: Value) {
        let channel = m["channel_id"].as_str().unwrap_or_default().to_string();
        let mut stored = m.clone();
        if let Some(o) = stored.as_object_mut() {
            o.remove("guild_id");
            o.remove("member");
        }
        let mut inner = self.lock();
        inner.history.entry(channel).or_default().push(stored);
        dispatch_locked(&mut inner, "MESSAGE_CREATE", m);
        drop(inner);
        self.changed.notify_waiters();
    }

    fn new_id(&self) -> String {
        let mut inner = self.lock();
        inner.next_id += 1;
        (900_000_000_000_000_000u64 + inner.next_id).to_string()
    }
}

async fn rest(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = format!("/{path}");
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let query_string = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_webhook = path.starts_with("/webhooks/") || path.starts_with("/interactions/");
    {
        let mut inner = shared.lock();
        inner.calls.push(Call {
            method: method.to_string(),
            path: path.clone(),
            query: query_string,
            body: body.clone(),
            at: Instant::now(),
        });
        let key = format!("{method} {path}");
        if let Some(i) = inner
            .failures
            .iter()
            .position(|(k, _, _)| key.starts_with(k.as_str()))
        {
            let (_, status, retry) = inner.failures.remove(i);
            drop(inner);
            shared.changed.notify_waiters();
            if let Some(secs) = retry {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({"message": "You are being rate limited.", "retry_after": secs, "global": false})),
                )
                    .into_response();
                let h = r.headers_mut();
                h.insert("retry-after", format!("{secs}").parse().unwrap());
                h.insert("x-ratelimit-limit", "5".parse().unwrap());
                h.insert("x-ratelimit-remaining", "0".parse().unwrap());
                h.insert(
                    "x-ratelimit-reset-after",
                    format!("{secs}").parse().unwrap(),
                );
                h.insert("x-ratelimit-bucket", "fakebucket".parse().unwrap());
                return r;
            }
            return error(status, 0, "injected failure");
        }
    }
    shared.changed.notify_waiters();
    // Interaction callbacks and webhooks authenticate by their token.
    if !is_webhook && auth != format!("Bot {TOKEN}") {
        return error(401, 0, "401: Unauthorized");
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["users", "@me"]) => axum::Json(bot_user()).into_response(),
        ("GET", ["gateway"]) => axum::Json(json!({"url": shared.url("/gateway")})).into_response(),
        ("GET", ["gateway", "bot"]) => axum::Json(json!({
            "url": shared.url("/gateway"), "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}
        }))
        .into_response(),
        ("PUT", ["applications", app, "commands"]) if *app == APP_ID => {
            let list: Vec<Value> = body
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    c["id"] = json!(format!("60000000000000000{i}"));
                    c["application_id"] = json!(APP_ID);
                    c["version"] = json!("1");
                    c
                })
                .collect();
            shared.lock().commands = Some(json!(list));
            axum::Json(json!(list)).into_response()
        }
        ("GET", ["channels", id]) => match channel_json(id) {
            Some(c) => axum::Json(c).into_response(),
            None => error(404, 10003, "Unknown Channel"),
        },
        ("GET", ["channels", channel, "messages"]) => {
            let after: u64 = param("after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let limit: usize = param("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(50)
                .clamp(1, 100);
            let id = |m: &Value| m["id"].as_str().and_then(|i| i.parse::<u64>().ok());
            let mut page: Vec<Value> = shared
                .lock()
                .history
                .get(*channel)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|m| id(m).is_some_and(|i| i > after))
                .collect();
            page.sort_by_key(|m| id(m));
            page.truncate(limit);
            page.reverse();
            axum::Json(json!(page)).into_response()
        }
        ("POST", ["channels", _, "typing"]) => StatusCode::NO_CONTENT.into_response(),
        ("POST", ["channels", channel, "messages"]) => post(&shared, channel, &body),
        ("PATCH", ["channels", channel, "messages", id]) => edit(&shared, channel, id, &body),
        ("POST", ["interactions", id, token, "callback"]) => {
            let mut inner = shared.lock();
            let Some((t, channel, answers)) = inner.interactions.get_mut(*id) else {
                return error(404, 10062, "Unknown interaction");
            };
            if t != token {
                return error(401, 50027, "Invalid Webhook Token");
            }
            if !answers.is_empty() {
                return error(400, 40060, "Interaction has already been acknowledged.");
            }
            answers.push(body["type"].as_u64().unwrap_or(0));
            let channel = channel.clone();
            let token = token.to_string();
            drop(inner);
            // "The bot is thinking…" until the response is edited.
            let _ = post(&shared, &channel, &json!({"content": ""}));
            let id = shared
                .lock()
                .shown
                .get(&channel)
                .and_then(|v| v.last().map(|s| s.id.clone()));
            if let Some(id) = id {
                shared.lock().originals.insert(token, id);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("PATCH", ["webhooks", app, token, "messages", id]) if *app == APP_ID => {
            let inner = shared.lock();
            let Some(channel) = channel_of_token(&inner, token) else {
                return error(401, 50027, "Invalid Webhook Token");
            };
            let id = if *id == "@original" {
                match inner.originals.get(*token) {
                    Some(o) => o.clone(),
                    None => return error(404, 10008, "Unknown Message"),
                }
            } else {
                id.to_string()
            };
            drop(inner);
            edit(&shared, &channel, &id, &body)
        }
        ("POST", ["webhooks", app, token]) if *app == APP_ID => {
            let channel = channel_of_token(&shared.lock(), token);
            match channel {
                Some(c) => post(&shared, &c, &body),
                None => error(401, 50027, "Invalid Webhook Token"),
            }
        }
        _ => error(404, 0, "404: Not Found"),
    }
}

fn channel_of_token(inner: &Inner, token: &str) -> Option<String> {
    inner
        .interactions
        .values()
        .find(|(t, _, _)| t == token)
        .map(|(_, c, _)| c.clone())
}

fn check_content(body: &Value) -> Result<String, Response> {
    let content = body["content"].as_str().unwrap_or("").to_string();
    if content.chars().count() > 2000 {
        return Err((
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": 50035, "message": "Invalid Form Body",
                "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}})),
        )
            .into_response());
    }
    Ok(content)
}

fn post(shared: &Shared, channel: &str, body: &Value) -> Response {
    let content = match check_content(body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = shared.new_id();
    let now = Instant::now();
    let reply_to = body["message_reference"]["message_id"]
        .as_str()
        .map(str::to_string);
    let mut inner = shared.lock();
    inner
        .history
        .entry(channel.to_string())
        .or_default()
        .push(message_json(&id, channel, bot_user(), &content));
    inner
        .shown
        .entry(channel.to_string())
        .or_default()
        .push(Shown {
            id: id.clone(),
            content: content.clone(),
            edits: 0,
            reply_to,
            allowed_mentions: body["allowed_mentions"].clone(),
            at: now,
            changed: now,
        });
    drop(inner);
    shared.changed.notify_waiters();
    axum::Json(message_json(&id, channel, bot_user(), &content)).into_response()
}

fn edit(shared: &Shared, channel: &str, id: &str, body: &Value) -> Response {
    let content = match check_content(body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut inner = shared.lock();
    let Some(m) = inner
        .shown
        .get_mut(channel)
        .and_then(|v| v.iter_mut().find(|m| m.id == id))
    else {
        return error(404, 10008, "Unknown Message");
    };
    m.content = content.clone();
    m.edits += 1;
    m.changed = Instant::now();
    drop(inner);
    shared.changed.notify_waiters();
    axum::Json(message_json(id, channel, bot_user(), &content)).into_response()
}

impl FakeDiscord {
    /// Start on a free loopback port; heartbeats every `heartbeat`.
    pub async fn start(heartbeat: Duration) -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                heartbeat_ms: heartbeat.as_millis() as u64,
                ..Inner::default()
            }),
            changed: Notify::new(),
            addr: Mutex::new(None),
        });
        let app = Router::new()
            .route("/api/v10/{*path}", any(rest))
            .route("/{path}", get(gateway::upgrade))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *shared.addr.lock().unwrap() = Some(addr);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, shared }
    }

    /// The REST base URL (`api_url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A direct message from `user`; returns its id.
    pub fn dm(&self, user: u64, text: &str) -> String {
        let id = self.shared.new_id();
        let m = message_json(&id, &dm_channel(user), self::user(user), text);
        self.shared.post_from_user(m);
        id
    }

    /// A message from `user` in guild channel `channel` (of `guild`);
    /// `mention` puts `<@bot>` in front and the bot in `mentions`.
    pub fn guild_message(
        &self,
        guild: &str,
        channel: &str,
        user: u64,
        text: &str,
        mention: bool,
    ) -> String {
        let id = self.shared.new_id();
        let content = if mention {
            format!("<@{BOT_ID}> {text}")
        } else {
            text.to_string()
        };
        let mut m = message_json(&id, channel, self::user(user), &content);
        m["guild_id"] = json!(guild);
        m["member"] = json!({"roles": [], "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false});
        if mention {
            m["mentions"] = json!([bot_user()]);
        }
        self.shared.post_from_user(m);
        id
    }

    /// `user` uses slash command `/name` in `channel` (a guild channel when
    /// `guild`, else their DM); returns the interaction id.
    pub fn slash(&self, name: &str, user: u64, channel: &str, guild: Option<&str>) -> String {
        let id = self.shared.new_id();
        let token = format!("interaction-token-{id}");
        self.shared
            .lock()
            .interactions
            .insert(id.clone(), (token.clone(), channel.to_string(), Vec::new()));
        let mut i = json!({
            "id": id, "application_id": APP_ID, "type": 2, "token": token, "version": 1,
            "data": {"id": "600000000000000000", "name": name, "type": 1},
            "channel_id": channel, "channel": {"id": channel, "type": if guild.is_some() { 0 } else { 1 }},
            "app_permissions": "0", "locale": "en-US", "entitlements": [], "authorizing_integration_owners": {}, "context": if guild.is_some() { 0 } else { 1 },
        });
        match guild {
            Some(g) => {
                i["guild_id"] = json!(g);
                i["member"] = json!({"user": self::user(user), "roles": [], "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "permissions": "0"});
            }
            None => i["user"] = self::user(user),
        }
        self.shared.dispatch("INTERACTION_CREATE", i);
        id
    }

    /// The callback types answered to interaction `id`.
    pub fn interaction_answers(&self, id: &str) -> Vec<u64> {
        self.shared
            .lock()
            .interactions
            .get(id)
            .map(|(_, _, a)| a.clone())
            .unwrap_or_default()
    }

    /// What the bot posted in `channel`, as shown now.
    pub fn shown(&self, channel: &str) -> Vec<Shown> {
        self.shared
            .lock()
            .shown
            .get(channel)
            .cloned()
            .unwrap_or_default()
    }

    /// Every REST call.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The REST calls whose `METHOD /path` starts with `prefix`.
    pub fn calls_to(&self, prefix: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| format!("{} {}", c.method, c.path).starts_with(prefix))
            .collect()
    }

    /// The handshakes so far, oldest first.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.shared.lock().handshakes.clone()
    }

    /// Heartbeats received so far.
    pub fn heartbeats(&self) -> usize {
        self.shared.lock().heartbeats
    }

    /// The most gateway sockets that were ever open at once (a bot opens
    /// one; two are two sessions of one bot).
    pub fn most_connections_at_once(&self) -> usize {
        self.shared.lock().most_open
    }

    /// Whether a gateway connection is live.
    pub fn connected(&self) -> bool {
        self.shared.lock().live.is_some()
    }

    /// The slash commands registered.
    pub fn commands(&self) -> Option<Value> {
        self.shared.lock().commands.clone()
    }

    /// Answer the next REST call matching `METHOD /path-prefix` with 429
    /// and `Retry-After: secs`.
    pub fn rate_limit_next(&self, prefix: &str, secs: f64) {
        self.shared
            .lock()
            .failures
            .push((prefix.to_string(), 429, Some(secs)));
    }

    /// Answer the next REST call matching `prefix` with `status`.
    pub fn fail_next(&self, prefix: &str, status: u16) {
        self.shared
            .lock()
            .failures
            .push((prefix.to_string(), status, None));
    }

    /// Cut the live connection without a close frame (events dispatched
    /// from now on wait for a resume).
    pub fn drop_connection(&self) {
        let live = self.shared.lock().live.take();
        if let Some((_, tx)) = live {
            let _ = tx.send(Push::Drop);
        }
    }

    /// The live connection turns into a zombie: still open, but it neither
    /// acknowledges heartbeats nor carries events (they wait for a
    /// resume). A new connection works again.
    pub fn stop_acks(&self) {
        let mut inner = self.shared.lock();
        inner.zombie = inner.live.take().map(|(c, _)| c);
    }

    /// The next RESUME gets every event of the session again, as if
    /// Discord had lost track of what was delivered.
    pub fn replay_everything_on_resume(&self) {
        self.shared.lock().replay_everything = true;
    }

    /// Send RECONNECT (op 7) on the live connection.
    pub fn request_reconnect(&self) {
        if let Some((_, tx)) = &self.shared.lock().live {
            let _ = tx.send(Push::Frame(json!({"op": 7, "d": null}).to_string()));
        }
    }

    /// The session expires, as Discord's does a while after its
    /// connection went away: its missed events are dropped and the next
    /// RESUME gets INVALID_SESSION (d=false). Messages posted from now on
    /// are still in the channels' history.
    pub fn expire_session(&self) {
        let mut inner = self.shared.lock();
        inner.session = None;
        inner.events.clear();
    }

    /// The messages in `channel`'s history (users' and the bot's), oldest
    /// first.
    pub fn history(&self, channel: &str) -> Vec<Value> {
        self.shared
            .lock()
            .history
            .get(channel)
            .cloned()
            .unwrap_or_default()
    }

    /// Send INVALID_SESSION (op 9) on the live connection; a session that
    /// cannot be resumed is forgotten.
    pub fn invalidate_session(&self, resumable: bool) {
        let mut inner = self.shared.lock();
        if !resumable {
            inner.session = None;
        }
        if let Some((_, tx)) = &inner.live {
            let _ = tx.send(Push::Frame(json!({"op": 9, "d": resumable}).to_string()));
        }
    }

    /// Refuse IDENTIFY with MESSAGE_CONTENT (close 4014) while `on`.
    pub fn disallow_message_content(&self, on: bool) {
        self.shared.lock().disallow_content = on;
    }

    /// Close the live connection with `code`.
    pub fn close(&self, code: u16, reason: &'static str) {
        if let Some((_, tx)) = &self.shared.lock().live {
            let _ = tx.send(Push::Close(code, reason));
        }
    }

    /// Wait until `check` holds (checked on every change), or panic after
    /// `limit` with `what`.
    pub async fn wait<T>(
        &self,
        limit: Duration,
        what: &str,
        check: impl Fn(&Self) -> Option<T>,
    ) -> T {
        crate::wait_on(
            &self.shared.changed,
            limit,
            what,
            || check(self),
            || {
                format!(
                    "handshakes: {:?}; calls: {:#?}",
                    self.handshakes(),
                    self.calls()
                        .iter()
                        .map(|c| format!("{} {}", c.method, c.path))
                        .collect::<Vec<_>>()
                )
            },
        )
        .await
    }
}

/// Messages queued for a channel, oldest first (for conformance).
pub fn texts(shown: &[Shown]) -> Vec<String> {
    shown.iter().map(|s| s.content.clone()).collect()
}
