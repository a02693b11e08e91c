//! A fake Telegram Bot API server speaking the real JSON protocol
//! (<https://core.telegram.org/bots/api>): `POST /bot<token>/<method>` with
//! a JSON, form or query-string body, method names matched
//! case-insensitively as Telegram does, answers `{"ok": true, "result": …}`
//! or `{"ok": false, "error_code", "description", "parameters"}`.
//!
//! It keeps the chats' messages as a user would see them (after edits),
//! checks `parse_mode = HTML` markup the way Telegram does (unknown or
//! unbalanced tags are refused with "can't parse entities"), answers
//! "message is not modified", long-polls `getUpdates` with offsets, and can
//! be told to fail a method, hang a poll or answer 409.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The fake bot's token.
pub const TOKEN: &str = "123456789:AAHfakeTokenForSwitchboardTests_0123";
/// The fake bot's user id.
pub const BOT_ID: i64 = 123456789;
/// The fake bot's username.
pub const BOT_USERNAME: &str = "switchboard_test_bot";

/// A message in a chat, as its reader sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// Its message id.
    pub id: i64,
    /// Its visible text (HTML rendered to text).
    pub text: String,
    /// The text as sent (HTML when `html`).
    pub raw: String,
    /// Whether it was sent with `parse_mode = HTML`.
    pub html: bool,
    /// The forum topic.
    pub thread_id: Option<i64>,
    /// The message it replies to.
    pub reply_to: Option<i64>,
    /// How many times it was edited.
    pub edits: usize,
    /// When it was sent.
    pub at: Instant,
}

/// One API call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// The method as written by the client.
    pub method: String,
    /// Its parameters.
    pub params: Value,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    updates: VecDeque<Value>,
    next_update: i64,
    next_message: i64,
    chats: BTreeMap<i64, Vec<Shown>>,
    calls: Vec<Call>,
    failures: HashMap<String, VecDeque<(u16, String, Option<u64>)>>,
    hang_polls: usize,
    conflict: bool,
    /// The poll being answered now; a newer one ends it with 409, as
    /// Telegram does when two bot instances poll.
    polling: Option<u64>,
    next_poll: u64,
    terminated: std::collections::HashSet<u64>,
    token_refused: bool,
    /// file_id → (file_path, bytes, reported size)
    files: HashMap<String, (String, Vec<u8>, u64)>,
}

struct Shared {
    inner: Mutex<Inner>,
    changed: Notify,
}

/// A running fake Bot API.
#[derive(Clone)]
pub struct FakeTelegram {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

fn ok(result: Value) -> Response {
    axum::Json(json!({ "ok": true, "result": result })).into_response()
}

fn fail(code: u16, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({ "ok": false, "error_code": code, "description": description });
    if let Some(s) = retry_after {
        body["parameters"] = json!({ "retry_after": s });
    }
    (
        axum::http::StatusCode::from_u16(code).unwrap(),
        axum::Json(body),
    )
        .into_response()
}

/// Telegram's check of HTML markup: known tags only, properly nested.
pub fn check_html(text: &str) -> Result<String, String> {
    const TAGS: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "tg-spoiler",
        "span",
        "blockquote",
        "tg-emoji",
    ];
    let mut stack: Vec<String> = Vec::new();
    let mut visible = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(['<', '&']) {
        visible.push_str(&rest[..start]);
        rest = &rest[start..];
        if rest.starts_with('&') {
            let end = rest
                .find(';')
                .ok_or("Can't parse entities: unclosed entity")?;
            visible.push_str(match &rest[..=end] {
                "&lt;" => "<",
                "&gt;" => ">",
                "&amp;" => "&",
                "&quot;" => "\"",
                other => return Err(format!("Can't parse entities: unsupported entity {other}")),
            });
            rest = &rest[end + 1..];
            continue;
        }
        let end = rest
            .find('>')
            .ok_or("Can't parse entities: unclosed start tag")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                _ => {
                    return Err(format!(
                        "Can't find end tag corresponding to start tag {name}"
                    ));
                }
            }
        } else {
            let name = tag.split_whitespace().next().unwrap_or("");
            if !TAGS.contains(&name) {
                return Err(format!(
                    "Can't parse entities: unsupported start tag \"{name}\""
                ));
            }
            stack.push(name.to_string());
        }
    }
    visible.push_str(rest);
    match stack.pop() {
        Some(open) => Err(format!(
            "Can't parse entities: can't find end tag corresponding to start tag \"{open}\""
        )),
        None => Ok(visible),
    }
}

/// Parameters from the query string and the body (JSON or form).
fn params(query: Option<String>, headers: &HeaderMap, body: &[u8]) -> Value {
    let mut out = serde_json::Map::new();
    let mut form = |text: &str| {
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = urldecode(v);
            let v = serde_json::from_str(&v).unwrap_or(Value::String(v));
            out.insert(urldecode(k), v);
        }
    };
    if let Some(q) = &query {
        form(q);
    }
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(boundary) = ctype.split("boundary=").nth(1) {
        // multipart/form-data (teloxide sends setWebhook this way).
        let boundary = format!("--{}", boundary.trim_matches('"'));
        let text = String::from_utf8_lossy(body);
        for part in text.split(boundary.as_str()) {
            let Some((head, value)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            let Some(name) = head
                .split("name=\"")
                .nth(1)
                .and_then(|n| n.split('"').next())
            else {
                continue;
            };
            let value = value.trim_end_matches("\r\n").to_string();
            let value = serde_json::from_str(&value).unwrap_or(Value::String(value));
            out.insert(name.to_string(), value);
        }
    } else if ctype.contains("json") {
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
            out.extend(m);
        }
    } else if !body.is_empty() {
        form(&String::from_utf8_lossy(body));
    }
    Value::Object(out)
}

fn urldecode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

async fn api(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return fail(404, "Not Found", None);
    };
    let params = params(query, &headers, &body);
    let lower = method.to_lowercase();
    let failure = {
        let mut inner = shared.inner.lock().unwrap();
        if token != TOKEN || inner.token_refused {
            return fail(401, "Unauthorized", None);
        }
        inner.calls.push(Call {
            method: method.clone(),
            params: params.clone(),
            at: Instant::now(),
        });
        inner.failures.get_mut(&lower).and_then(VecDeque::pop_front)
    };
    shared.changed.notify_waiters();
    if let Some((code, text, retry)) = failure {
        return fail(code, &text, retry);
    }
    match lower.as_str() {
        "getme" => ok(json!({
            "id": BOT_ID, "is_bot": true, "first_name": "Switchboard Test", "username": BOT_USERNAME,
            "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
            "can_connect_to_business": false, "has_main_web_app": false
        })),
        "getupdates" => get_updates(shared, params).await,
        "sendmessage" => send_message(&shared, &params),
        "editmessagetext" => edit_message(&shared, &params),
        "getfile" => {
            let id = params["file_id"].as_str().unwrap_or("").to_string();
            let inner = shared.inner.lock().unwrap();
            match inner.files.get(&id) {
                Some((path, _, size)) => ok(
                    json!({ "file_id": id, "file_unique_id": format!("u{id}"), "file_size": size, "file_path": path }),
                ),
                None => fail(400, "Bad Request: invalid file_id", None),
            }
        }
        "sendchataction" | "setmycommands" | "deletewebhook" | "setwebhook"
        | "deletemycommands" => ok(json!(true)),
        _ => fail(404, "Not Found: method not found", None),
    }
}

async fn download(
    State(shared): State<Arc<Shared>>,
    Path((bot, path)): Path<(String, String)>,
) -> Response {
    if bot.strip_prefix("bot") != Some(TOKEN) {
        return fail(401, "Unauthorized", None);
    }
    let inner = shared.inner.lock().unwrap();
    match inner.files.values().find(|(p, _, _)| *p == path) {
        Some((_, bytes, _)) => bytes.clone().into_response(),
        None => fail(404, "Not Found", None),
    }
}

async fn get_updates(shared: Arc<Shared>, params: Value) -> Response {
    let offset = int(&params["offset"]).unwrap_or(0);
    let timeout = int(&params["timeout"]).unwrap_or(0).clamp(0, 50) as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let hang = {
        let mut inner = shared.inner.lock().unwrap();
        if inner.conflict {
            return fail(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                None,
            );
        }
        let hang = inner.hang_polls > 0;
        inner.hang_polls = inner.hang_polls.saturating_sub(1);
        hang
    };
    if hang {
        // Never answers: the client has to give up on it.
        std::future::pending::<()>().await;
    }
    let me = {
        let mut inner = shared.inner.lock().unwrap();
        inner.next_poll += 1;
        let me = inner.next_poll;
        if let Some(older) = inner.polling.replace(me) {
            inner.terminated.insert(older);
            shared.changed.notify_waiters();
        }
        me
    };
    loop {
        let notified = shared.changed.notified();
        {
            let mut inner = shared.inner.lock().unwrap();
            if inner.terminated.remove(&me) {
                return fail(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                    None,
                );
            }
            // An offset confirms every update before it.
            inner
                .updates
                .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            if !inner.updates.is_empty() || tokio::time::Instant::now() >= deadline {
                if inner.polling == Some(me) {
                    inner.polling = None;
                }
                return ok(Value::Array(inner.updates.iter().cloned().collect()));
            }
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

/// The `text` and `parse_mode` of a send or edit, checked as Telegram
/// does: (as sent, as shown, whether HTML).
fn message_text(p: &Value) -> Result<(String, String, bool), Response> {
    let raw = p["text"].as_str().unwrap_or("").to_string();
    if raw.trim().is_empty() {
        return Err(fail(400, "Bad Request: message text is empty", None));
    }
    let html = p["parse_mode"]
        .as_str()
        .is_some_and(|m| m.eq_ignore_ascii_case("html"));
    let text = if html {
        check_html(&raw).map_err(|e| fail(400, &format!("Bad Request: {e}"), None))?
    } else {
        raw.clone()
    };
    if text.encode_utf16().count() > 4096 {
        return Err(fail(400, "Bad Request: message is too long", None));
    }
    Ok((raw, text, html))
}

/// A `Message` the bot sent, as the API returns it.
fn sent_json(id: i64, chat: i64, text: &str, edited: bool) -> Value {
    let mut m = json!({
        "message_id": id, "date": 1_700_000_000, "text": text,
        "chat": { "id": chat, "type": if chat > 0 { "private" } else { "supergroup" }, "first_name": "x", "title": "x" },
        "from": { "id": BOT_ID, "is_bot": true, "first_name": "Switchboard Test", "username": BOT_USERNAME }
    });
    if edited {
        m["edit_date"] = json!(1_700_000_001);
    }
    m
}

fn send_message(shared: &Shared, p: &Value) -> Response {
    let Some(chat) = int(&p["chat_id"]) else {
        return fail(400, "Bad Request: chat_id is empty", None);
    };
    let (raw, text, html) = match message_text(p) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut inner = shared.inner.lock().unwrap();
    inner.next_message += 1;
    let id = inner.next_message + 1000;
    let shown = Shown {
        id,
        text: text.clone(),
        raw,
        html,
        thread_id: int(&p["message_thread_id"]),
        reply_to: int(&p["reply_parameters"]["message_id"]).or(int(&p["reply_to_message_id"])),
        edits: 0,
        at: Instant::now(),
    };
    inner.chats.entry(chat).or_default().push(shown);
    drop(inner);
    shared.changed.notify_waiters();
    ok(sent_json(id, chat, &text, false))
}

fn edit_message(shared: &Shared, p: &Value) -> Response {
    let (Some(chat), Some(id)) = (int(&p["chat_id"]), int(&p["message_id"])) else {
        return fail(
            400,
            "Bad Request: message identifier is not specified",
            None,
        );
    };
    let (raw, text, html) = match message_text(p) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut inner = shared.inner.lock().unwrap();
    let Some(msg) = inner
        .chats
        .get_mut(&chat)
        .and_then(|m| m.iter_mut().find(|m| m.id == id))
    else {
        return fail(400, "Bad Request: message to edit not found", None);
    };
    if msg.raw == raw && msg.html == html {
        return fail(
            400,
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
            None,
        );
    }
    msg.text = text.clone();
    msg.raw = raw;
    msg.html = html;
    msg.edits += 1;
    drop(inner);
    shared.changed.notify_waiters();
    ok(sent_json(id, chat, &text, true))
}

impl FakeTelegram {
    /// Start on a free loopback port.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                next_update: 1,
                ..Inner::default()
            }),
            changed: Notify::new(),
        });
        let app = Router::new()
            .route("/{bot}/{method}", any(api))
            .route("/file/{bot}/{*path}", axum::routing::get(download))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, shared }
    }

    /// The `api_url` to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn push_update(&self, message: Value) -> i64 {
        let mut inner = self.shared.inner.lock().unwrap();
        let id = inner.next_update;
        inner.next_update += 1;
        inner
            .updates
            .push_back(json!({ "update_id": id, "message": message }));
        drop(inner);
        self.shared.changed.notify_waiters();
        id
    }

    /// The JSON of a message from user `from` in `chat`.
    pub fn message(&self, chat: Value, from: i64, name: &str, text: &str) -> Value {
        let mut inner = self.shared.inner.lock().unwrap();
        inner.next_message += 1;
        let id = inner.next_message;
        json!({
            "message_id": id, "date": 1_700_000_000, "chat": chat, "text": text,
            "from": { "id": from, "is_bot": false, "first_name": name }
        })
    }

    /// `message` (as returned by [`FakeTelegram::dm`] or
    /// [`FakeTelegram::group`]) again in a new update, as Telegram does
    /// when unsure it was delivered; returns the new update's id.
    pub fn redeliver(&self, message: &Value) -> i64 {
        self.push_update(message.clone())
    }

    /// A private message from user `from`; returns the update.
    pub fn dm(&self, from: i64, name: &str, text: &str) -> Value {
        let chat = json!({ "id": from, "type": "private", "first_name": name });
        let m = self.message(chat, from, name, text);
        self.push_update(m.clone());
        m
    }

    /// A message in supergroup `chat` (negative id); `extra` is merged into
    /// the message (e.g. `reply_to_message`, `message_thread_id`).
    pub fn group(&self, chat: i64, from: i64, name: &str, text: &str, extra: Value) -> Value {
        let c = json!({ "id": chat, "type": "supergroup", "title": "Test group", "is_forum": extra.get("is_topic_message").is_some() });
        let mut m = self.message(c, from, name, text);
        if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        self.push_update(m.clone());
        m
    }

    /// A private message from `from` carrying a document `name` with
    /// `bytes` (Telegram reports `size`, which may differ to test limits).
    pub fn document(&self, from: i64, name: &str, bytes: &[u8], size: u64, caption: &str) -> Value {
        let chat = json!({ "id": from, "type": "private", "first_name": "Doc" });
        let mut m = self.message(chat, from, "Doc", "");
        let mut inner = self.shared.inner.lock().unwrap();
        let id = format!("doc{}", inner.files.len() + 1);
        let path = format!("documents/file_{}.bin", inner.files.len() + 1);
        inner.files.insert(id.clone(), (path, bytes.to_vec(), size));
        drop(inner);
        let obj = m.as_object_mut().unwrap();
        obj.remove("text");
        obj.insert("caption".into(), json!(caption));
        obj.insert(
            "document".into(),
            json!({ "file_id": id, "file_unique_id": format!("u{id}"), "file_name": name, "mime_type": "text/plain", "file_size": size }),
        );
        self.push_update(m.clone());
        m
    }

    /// An update as Telegram would post it to a webhook (not queued).
    pub fn webhook_update(&self, from: i64, name: &str, text: &str) -> Value {
        let chat = json!({ "id": from, "type": "private", "first_name": name });
        let m = self.message(chat, from, name, text);
        let mut inner = self.shared.inner.lock().unwrap();
        let id = inner.next_update;
        inner.next_update += 1;
        json!({ "update_id": id, "message": m })
    }

    /// The messages of `chat`, as shown now.
    pub fn chat(&self, chat: i64) -> Vec<Shown> {
        self.shared
            .inner
            .lock()
            .unwrap()
            .chats
            .get(&chat)
            .cloned()
            .unwrap_or_default()
    }

    /// Every call received.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.inner.lock().unwrap().calls.clone()
    }

    /// Calls of `method` (any case).
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method.eq_ignore_ascii_case(method))
            .collect()
    }

    /// Fail the next call of `method` with `code`, `description` and, if
    /// given, `retry_after` seconds.
    pub fn fail_next(&self, method: &str, code: u16, description: &str, retry_after: Option<u64>) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .failures
            .entry(method.to_lowercase())
            .or_default()
            .push_back((code, description.into(), retry_after));
    }

    /// The next `n` polls never answer.
    pub fn hang_polls(&self, n: usize) {
        self.shared.inner.lock().unwrap().hang_polls = n;
    }

    /// Answer every poll with 409 Conflict (another poller) while `on`.
    pub fn conflict(&self, on: bool) {
        self.shared.inner.lock().unwrap().conflict = on;
        self.shared.changed.notify_waiters();
    }

    /// Refuse the token (401) while `on`.
    pub fn refuse_token(&self, on: bool) {
        self.shared.inner.lock().unwrap().token_refused = on;
    }

    /// The messages of `chat` once its last one reads `text`, waiting at
    /// most `within`.
    pub async fn answered(&self, chat: i64, text: &str, within: Duration) -> Vec<Shown> {
        self.wait(within, &format!("`{text}` in chat {chat}"), |tg| {
            let msgs = tg.chat(chat);
            msgs.last().is_some_and(|m| m.text == text).then_some(msgs)
        })
        .await
    }

    /// Wait until `check` holds for the fake's state (checked on every
    /// change), or panic after `limit` with `what`.
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
                    "calls: {:#?}",
                    self.calls().iter().map(|c| &c.method).collect::<Vec<_>>()
                )
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_checked_like_telegram() {
        assert_eq!(check_html("<b>x</b> &lt;y&gt;").unwrap(), "x <y>");
        assert!(check_html("<b>x").is_err());
        assert!(check_html("<b><i>x</b></i>").is_err());
        assert!(check_html("<div>x</div>").is_err());
        assert_eq!(
            check_html("<pre><code class=\"language-rust\">a</code></pre>").unwrap(),
            "a"
        );
    }
}
