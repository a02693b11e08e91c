//! A fake Slack: the Web API methods the adapter uses under `/api/`
//! (<https://api.slack.com/methods>) and a Socket Mode WebSocket
//! (<https://api.slack.com/apis/socket-mode>).
//!
//! Web API calls take JSON or form bodies with the token as
//! `Authorization: Bearer` (or a `token` field), and answer Slack's way:
//! HTTP 200 with `{"ok": false, "error": …}` for a refused call, 429 with
//! `Retry-After` and `{"ok": false, "error": "ratelimited"}` when rate
//! limited. `apps.connections.open` wants the app-level token and hands
//! out a one-time `ws://…/link/?ticket=…` URL. A connection gets `hello`
//! first, then `events_api` / `slash_commands` envelopes; an envelope not
//! acknowledged (`{"envelope_id": …}`) before its connection ends is sent
//! again on the next one with `retry_attempt` raised, and events raised
//! while nothing is connected wait for a connection, as on Slack. Like
//! Slack, the bot's own posts come back to it as `message` events, and a
//! message mentioning the bot in a channel comes as both a `message` and an
//! `app_mention` event.
//!
//! The bot's messages are kept per conversation as a reader sees them
//! (after updates, entities decoded).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

mod socket;
mod web_api;

use socket::{Envelope, Push, frame};

/// The bot token (`xoxb-…`).
pub const BOT_TOKEN: &str = "xoxb-1111111111-2222222222-fakeslackbottoken0001";
/// The app-level token (`xapp-…`).
pub const APP_TOKEN: &str = "xapp-1-A0FAKEAPP01-3333333333-fakeslackapptoken0001";
/// The signing secret for Events API requests.
pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// The bot user's id.
pub const BOT_USER: &str = "U0FAKEBOT1";
/// The bot's id.
pub const BOT_ID: &str = "B0FAKEBOT1";
/// The workspace.
pub const TEAM: &str = "T0FAKETEAM";
/// The app.
pub const APP_ID: &str = "A0FAKEAPP01";
/// A public channel the bot is in.
pub const CHANNEL: &str = "C0GENERAL1";
/// A second channel.
pub const OTHER_CHANNEL: &str = "C0RANDOM01";

/// The user id of test user `n`.
pub fn user(n: u64) -> String {
    format!("U{n}")
}

/// The DM conversation between the bot and test user `n`.
pub fn dm_channel(n: u64) -> String {
    format!("D{n}")
}

/// A message the bot posted, as a reader sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// Its `ts`.
    pub ts: String,
    /// Its text now, as sent (mrkdwn).
    pub text: String,
    /// The thread it is in.
    pub thread_ts: Option<String>,
    /// How many times it was updated.
    pub edits: usize,
    /// When it was posted.
    pub at: Instant,
    /// When it was last changed.
    pub changed: Instant,
}

impl Shown {
    /// The text as a reader sees it (`&amp;`, `&lt;`, `&gt;` decoded).
    pub fn visible(&self) -> String {
        self.text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }
}

/// One Web API call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The method (`chat.postMessage`).
    pub method: String,
    /// Its arguments (JSON or form fields).
    pub args: Value,
    /// When it came.
    pub at: Instant,
}

/// A reaction added or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// The conversation.
    pub channel: String,
    /// The message.
    pub ts: String,
    /// The emoji name.
    pub name: String,
    /// Added (true) or removed.
    pub added: bool,
}

#[derive(Default)]
struct Inner {
    next_ts: u64,
    next_envelope: u64,
    shown: BTreeMap<String, Vec<Shown>>,
    calls: Vec<Call>,
    /// method → answers to give instead: Ok(retry after secs) = 429,
    /// Err(code) = `{"ok": false, "error": code}`.
    failures: Vec<(String, Result<u64, String>)>,
    reactions: Vec<Reaction>,
    tickets: BTreeSet<String>,
    /// Envelopes not acknowledged yet, oldest first.
    pending: Vec<Envelope>,
    /// Envelope ids acknowledged.
    acked: Vec<String>,
    live: Option<(u64, mpsc::UnboundedSender<Push>)>,
    connections: u64,
    /// Messages posted by users: ts → (channel, text).
    user_messages: HashMap<String, (String, String)>,
    /// Files users shared: path → bytes.
    files: HashMap<String, Vec<u8>>,
    /// Downloads of shared files: (path, whether the bot token came).
    downloads: Vec<(String, bool)>,
}

struct Shared {
    inner: Mutex<Inner>,
    changed: Notify,
    addr: Mutex<Option<SocketAddr>>,
}

/// A running fake Slack.
#[derive(Clone)]
pub struct FakeSlack {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

fn ok(mut body: Value) -> Response {
    body["ok"] = json!(true);
    axum::Json(body).into_response()
}

fn refuse(code: &str) -> Response {
    axum::Json(json!({"ok": false, "error": code})).into_response()
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    fn new_ts(&self) -> String {
        let mut inner = self.lock();
        inner.next_ts += 1;
        format!("1763700000.{:06}", inner.next_ts)
    }

    /// Queue an envelope and send it if a connection is live.
    fn envelope(&self, kind: &'static str, payload: Value) -> String {
        self.push(kind, payload, 0)
    }

    fn push(&self, kind: &'static str, payload: Value, retry_attempt: u64) -> String {
        let mut inner = self.lock();
        inner.next_envelope += 1;
        let id = format!("0000{:04}-fake-envelope", inner.next_envelope);
        let envelope = Envelope {
            id: id.clone(),
            kind,
            payload,
            retry_attempt,
        };
        if let Some((_, tx)) = &inner.live {
            let _ = tx.send(Push::Frame(frame(&envelope)));
        }
        inner.pending.push(envelope);
        drop(inner);
        self.changed.notify_waiters();
        id
    }

    /// An Events API body around `event`.
    fn event(&self, event: Value) -> String {
        let id = {
            let mut inner = self.lock();
            inner.next_envelope += 1;
            format!("Ev0FAKE{:06}", inner.next_envelope)
        };
        self.envelope("events_api", callback(&id, event));
        id
    }
}

fn callback(event_id: &str, event: Value) -> Value {
    json!({
        "token": "verification-token-unused", "team_id": TEAM, "api_app_id": APP_ID,
        "event": event, "type": "event_callback", "event_id": event_id, "event_time": 1763700000,
        "authorizations": [{"enterprise_id": null, "team_id": TEAM, "user_id": BOT_USER, "is_bot": true, "is_enterprise_install": false}],
        "is_ext_shared_channel": false, "event_context": "4-fake",
    })
}

impl FakeSlack {
    /// Start on a free port.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
            addr: Mutex::new(None),
        });
        let app = Router::new()
            .route("/api/{method}", any(web_api::web_api))
            .route("/link/", get(socket::link))
            .route("/files-pri/{*path}", get(web_api::file))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *shared.addr.lock().unwrap() = Some(addr);
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, shared }
    }

    /// The Web API base, for `api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// User `n` writes `text` to the bot in a DM; returns the message `ts`.
    pub fn dm(&self, n: u64, text: &str) -> String {
        let channel = dm_channel(n);
        let ts = self.user_message(&channel, text);
        self.shared.event(json!({
            "type": "message", "channel": channel, "user": user(n), "text": text, "ts": ts,
            "event_ts": ts, "channel_type": "im", "team": TEAM,
        }));
        ts
    }

    /// User `n` shares file `name` holding `bytes` in a DM with `text`;
    /// returns the message `ts`.
    pub fn dm_file(&self, n: u64, text: &str, name: &str, bytes: &[u8]) -> String {
        let channel = dm_channel(n);
        let ts = self.user_message(&channel, text);
        let path = format!("{TEAM}-F{}/{name}", ts.replace('.', ""));
        self.shared
            .lock()
            .files
            .insert(path.clone(), bytes.to_vec());
        let url = format!("http://{}/files-pri/{path}", self.addr);
        self.shared.event(json!({
            "type": "message", "subtype": "file_share", "channel": channel, "user": user(n),
            "text": text, "ts": ts, "event_ts": ts, "channel_type": "im", "team": TEAM,
            "files": [{"id": format!("F{}", ts.replace('.', "")), "name": name, "title": name,
                       "mimetype": "text/plain", "filetype": "text", "size": bytes.len(),
                       "url_private": url, "url_private_download": format!("{url}?download=1")}],
        }));
        ts
    }

    /// Downloads of shared files so far: (path, whether the bot token
    /// came with it).
    pub fn downloads(&self) -> Vec<(String, bool)> {
        self.shared.lock().downloads.clone()
    }

    /// User `n` writes `text` in `channel` (in thread `thread_ts` when
    /// given); returns its `ts`. A mention of the bot (`<@BOT_USER>`) also
    /// raises `app_mention`, as on Slack.
    pub fn channel_message(
        &self,
        n: u64,
        channel: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> String {
        let ts = self.user_message(channel, text);
        let mut event = json!({
            "type": "message", "channel": channel, "user": user(n), "text": text, "ts": ts,
            "event_ts": ts, "channel_type": "channel", "team": TEAM,
        });
        if let Some(t) = thread_ts {
            event["thread_ts"] = json!(t);
            event["parent_user_id"] = json!(user(n));
        }
        self.shared.event(event.clone());
        if text.contains(&format!("<@{BOT_USER}>")) {
            let mut mention = event;
            mention["type"] = json!("app_mention");
            mention.as_object_mut().unwrap().remove("channel_type");
            self.shared.event(mention);
        }
        ts
    }

    /// Deliver an `events_api` envelope around `event` as it is (for events
    /// the helpers above do not make); returns the `event_id`.
    pub fn raw_event(&self, event: Value) -> String {
        self.shared.event(event)
    }

    /// Deliver the same event again, as Slack does when it thinks the
    /// first delivery failed: a new envelope, the same `event_id`,
    /// `retry_attempt` 1.
    pub fn redeliver(&self, event_id: &str, event: Value) {
        self.shared.push("events_api", callback(event_id, event), 1);
    }

    /// The event a DM from user `n` with `text` and `ts` is.
    pub fn dm_event(n: u64, text: &str, ts: &str) -> Value {
        json!({"type": "message", "channel": dm_channel(n), "user": user(n), "text": text,
               "ts": ts, "event_ts": ts, "channel_type": "im", "team": TEAM})
    }

    fn user_message(&self, channel: &str, text: &str) -> String {
        let ts = self.shared.new_ts();
        self.shared
            .lock()
            .user_messages
            .insert(ts.clone(), (channel.to_string(), text.to_string()));
        ts
    }

    /// User `n` runs slash command `command` with `text` in `channel`.
    pub fn slash(&self, n: u64, channel: &str, command: &str, text: &str) {
        let trigger = format!("trigger.{}", self.shared.new_ts());
        self.shared.envelope(
            "slash_commands",
            json!({
                "token": "verification-token-unused", "team_id": TEAM, "team_domain": "fake-team",
                "channel_id": channel, "channel_name": "general", "user_id": user(n),
                "user_name": format!("user{n}"), "command": command, "text": text,
                "api_app_id": APP_ID, "is_enterprise_install": "false",
                "response_url": format!("http://{}/commands/{trigger}", self.addr),
                "trigger_id": trigger,
            }),
        );
    }

    /// Ask the connected app to reconnect (`disconnect` envelope with
    /// `reason`), then close the socket as Slack does a moment later.
    pub fn disconnect(&self, reason: &str) {
        let inner = self.shared.lock();
        if let Some((_, tx)) = &inner.live {
            let _ = tx.send(Push::Frame(
                json!({"type": "disconnect", "reason": reason,
                       "debug_info": {"host": "fake-slack"}})
                .to_string(),
            ));
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = tx.send(Push::Drop);
            });
        }
    }

    /// Drop the live connection without a word.
    pub fn drop_connection(&self) {
        if let Some((_, tx)) = &self.shared.lock().live {
            let _ = tx.send(Push::Drop);
        }
    }

    /// Answer the next call of `method` with 429 and `Retry-After: secs`.
    pub fn rate_limit_next(&self, method: &str, secs: u64) {
        self.shared
            .lock()
            .failures
            .push((method.to_string(), Ok(secs)));
    }

    /// Answer the next call of `method` with `{"ok": false, "error": code}`.
    pub fn fail_next(&self, method: &str, code: &str) {
        self.shared
            .lock()
            .failures
            .push((method.to_string(), Err(code.to_string())));
    }

    /// The bot's messages in `channel`, oldest first.
    pub fn shown(&self, channel: &str) -> Vec<Shown> {
        self.shared
            .lock()
            .shown
            .get(channel)
            .cloned()
            .unwrap_or_default()
    }

    /// Every Web API call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The calls of `method`.
    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Every reaction added or removed, in order.
    pub fn reactions(&self) -> Vec<Reaction> {
        self.shared.lock().reactions.clone()
    }

    /// The reactions on message `ts` now.
    pub fn reactions_on(&self, channel: &str, ts: &str) -> BTreeSet<String> {
        web_api::current(&self.shared.lock().reactions, channel, ts)
    }

    /// Envelope ids acknowledged so far.
    pub fn acked(&self) -> Vec<String> {
        self.shared.lock().acked.clone()
    }

    /// How many envelopes wait for an acknowledgement.
    pub fn unacked(&self) -> usize {
        self.shared.lock().pending.len()
    }

    /// Socket Mode connections opened so far.
    pub fn connections(&self) -> u64 {
        self.shared.lock().connections
    }

    /// Whether a connection is live (it was greeted with `hello`).
    pub fn connected(&self) -> bool {
        self.shared.lock().live.is_some()
    }

    /// Wait (up to `limit`) until `check` holds, re-checking on every change.
    pub async fn wait<T>(
        &self,
        limit: Duration,
        what: &str,
        check: impl Fn(&FakeSlack) -> Option<T>,
    ) -> T {
        crate::wait_on(
            &self.shared.changed,
            limit,
            what,
            || check(self),
            || {
                format!(
                    "calls: {:?}",
                    self.calls().iter().map(|c| &c.method).collect::<Vec<_>>()
                )
            },
        )
        .await
    }
}

/// The texts of `shown`, as a reader sees them.
pub fn texts(shown: &[Shown]) -> Vec<String> {
    shown.iter().map(Shown::visible).collect()
}

/// The `X-Slack-Signature` of `body` sent at `timestamp` with `secret`
/// (<https://api.slack.com/authentication/verifying-requests-from-slack>).
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// Now, as Slack's request timestamp.
pub fn timestamp_now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

/// An Events API body for `event` (what Slack posts to a Request URL).
pub fn events_api_body(event_id: &str, event: Value) -> String {
    callback(event_id, event).to_string()
}
