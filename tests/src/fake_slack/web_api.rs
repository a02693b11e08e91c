//! The fake Web API methods under `/api/` and the files users shared.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    APP_ID, APP_TOKEN, BOT_ID, BOT_TOKEN, BOT_USER, Call, Reaction, Shared, Shown, TEAM, ok, refuse,
};

/// The arguments of a Web API call: JSON, form fields or the query.
fn args(headers: &HeaderMap, query: &HashMap<String, String>, body: &[u8]) -> Value {
    let json_body = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let mut args = if json_body {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    } else {
        let form = form_pairs(body);
        serde_json::to_value(form).unwrap_or(Value::Null)
    };
    if !args.is_object() {
        args = json!({});
    }
    for (k, v) in query {
        args[k] = json!(v);
    }
    args
}

fn form_pairs(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn text_of(args: &Value) -> String {
    args["text"].as_str().unwrap_or("").to_string()
}

pub(crate) async fn web_api(
    State(shared): State<Arc<Shared>>,
    Path(method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let args = args(&headers, &query, &body);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| args["token"].as_str().map(str::to_string))
        .unwrap_or_default();
    {
        let mut inner = shared.lock();
        inner.calls.push(Call {
            method: method.clone(),
            args: args.clone(),
            at: Instant::now(),
        });
        if let Some(i) = inner.failures.iter().position(|(m, _)| *m == method) {
            let (_, failure) = inner.failures.remove(i);
            drop(inner);
            shared.changed.notify_waiters();
            return match failure {
                Ok(secs) => {
                    let mut r = (
                        StatusCode::TOO_MANY_REQUESTS,
                        axum::Json(json!({"ok": false, "error": "ratelimited"})),
                    )
                        .into_response();
                    r.headers_mut()
                        .insert("retry-after", secs.to_string().parse().unwrap());
                    r
                }
                Err(code) => refuse(&code),
            };
        }
    }
    shared.changed.notify_waiters();
    if token.is_empty() {
        return refuse("not_authed");
    }
    if token != BOT_TOKEN && token != APP_TOKEN {
        return refuse("invalid_auth");
    }
    if method == "apps.connections.open" {
        if token != APP_TOKEN {
            return refuse("not_allowed_token_type");
        }
        let ticket = format!("ticket-{}", shared.new_ts());
        shared.lock().tickets.insert(ticket.clone());
        let addr = shared.addr.lock().unwrap().unwrap();
        return ok(json!({"url": format!("ws://{addr}/link/?ticket={ticket}&app_id={APP_ID}")}));
    }
    if token != BOT_TOKEN {
        return refuse("not_allowed_token_type");
    }
    match method.as_str() {
        "auth.test" => ok(json!({
            "url": "https://fake-team.slack.com/", "team": "Fake Team", "user": "switchboard",
            "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": false,
        })),
        "chat.postMessage" => post(&shared, &args),
        "chat.update" => update(&shared, &args),
        "reactions.add" | "reactions.remove" => react(&shared, &args, method == "reactions.add"),
        _ => refuse("unknown_method"),
    }
}

fn post(shared: &Shared, args: &Value) -> Response {
    let Some(channel) = args["channel"].as_str().map(str::to_string) else {
        return refuse("channel_not_found");
    };
    let text = text_of(args);
    if text.is_empty() && args["blocks"].is_null() {
        return refuse("no_text");
    }
    if text.chars().count() > 40_000 {
        return refuse("msg_too_long");
    }
    let thread_ts = args["thread_ts"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let ts = shared.new_ts();
    let now = Instant::now();
    shared
        .lock()
        .shown
        .entry(channel.clone())
        .or_default()
        .push(Shown {
            ts: ts.clone(),
            text: text.clone(),
            thread_ts: thread_ts.clone(),
            edits: 0,
            at: now,
            changed: now,
        });
    let mut message = json!({"type": "message", "text": text, "user": BOT_USER, "bot_id": BOT_ID, "ts": ts, "team": TEAM});
    if let Some(t) = &thread_ts {
        message["thread_ts"] = json!(t);
    }
    // Slack tells the app about its own message too.
    let mut echo = message.clone();
    echo["channel"] = json!(channel);
    echo["event_ts"] = json!(ts);
    echo["channel_type"] = json!(if channel.starts_with('D') {
        "im"
    } else {
        "channel"
    });
    shared.event(echo);
    shared.changed.notify_waiters();
    ok(json!({"channel": channel, "ts": ts, "message": message}))
}

fn update(shared: &Shared, args: &Value) -> Response {
    let channel = args["channel"].as_str().unwrap_or("");
    let ts = args["ts"].as_str().unwrap_or("");
    let text = text_of(args);
    if text.chars().count() > 40_000 {
        return refuse("msg_too_long");
    }
    let mut inner = shared.lock();
    if inner.user_messages.contains_key(ts) {
        return refuse("cant_update_message");
    }
    let Some(m) = inner
        .shown
        .get_mut(channel)
        .and_then(|v| v.iter_mut().find(|m| m.ts == ts))
    else {
        return refuse("message_not_found");
    };
    m.text = text.clone();
    m.edits += 1;
    m.changed = Instant::now();
    drop(inner);
    shared.changed.notify_waiters();
    ok(json!({"channel": channel, "ts": ts, "text": text,
              "message": {"text": text, "user": BOT_USER, "bot_id": BOT_ID}}))
}

fn react(shared: &Shared, args: &Value, add: bool) -> Response {
    let channel = args["channel"].as_str().unwrap_or("").to_string();
    let ts = args["timestamp"].as_str().unwrap_or("").to_string();
    let name = args["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return refuse("invalid_name");
    }
    let mut inner = shared.lock();
    let exists = inner.user_messages.contains_key(&ts)
        || inner
            .shown
            .get(&channel)
            .is_some_and(|v| v.iter().any(|m| m.ts == ts));
    if !exists {
        return refuse("message_not_found");
    }
    let on = current(&inner.reactions, &channel, &ts).contains(&name);
    if add && on {
        return refuse("already_reacted");
    }
    if !add && !on {
        return refuse("no_reaction");
    }
    inner.reactions.push(Reaction {
        channel,
        ts,
        name,
        added: add,
    });
    drop(inner);
    shared.changed.notify_waiters();
    ok(json!({}))
}

pub(crate) fn current(log: &[Reaction], channel: &str, ts: &str) -> BTreeSet<String> {
    let mut on = BTreeSet::new();
    for r in log.iter().filter(|r| r.channel == channel && r.ts == ts) {
        if r.added {
            on.insert(r.name.clone());
        } else {
            on.remove(&r.name);
        }
    }
    on
}

/// `url_private_download`: the file, for a request with the bot token.
pub(crate) async fn file(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {BOT_TOKEN}"));
    let mut inner = shared.lock();
    inner.downloads.push((path.clone(), authorized));
    let bytes = inner.files.get(&path).cloned();
    drop(inner);
    shared.changed.notify_waiters();
    match bytes {
        // Slack shows a login page to a request without the token.
        _ if !authorized => (StatusCode::OK, "<html>sign in</html>").into_response(),
        Some(b) => b.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
