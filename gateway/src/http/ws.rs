//! `/api/ws`: request, response and event JSON frames (see
//! `docs/protocol.md`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use switchboard_channel::ReplyEvent;

use super::control;
use super::{ApiError, AppState, submit, webchat_inbound};
use crate::audit::Actor;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/ws", get(upgrade))
}

async fn upgrade(State(state): State<Arc<AppState>>, by: Actor, ws: WebSocketUpgrade) -> Response {
    // What this socket decides is recorded as `ws`, from its client's address.
    let by = by.named("ws");
    // Requests are small; a megabyte is plenty and bounds what one client
    // can make the gateway hold.
    let max = state.config.load().gateway.limits.ws_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| connection(state, by, socket))
}

#[derive(Debug, Deserialize)]
struct RequestFrame {
    #[serde(default)]
    id: Value,
    method: String,
    #[serde(default)]
    params: Value,
}

#[derive(Debug, Deserialize)]
struct ChatSend {
    text: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    agent: Option<String>,
}

/// Frames waiting to be written; bounded so a client that does not read
/// cannot grow the gateway's memory.
const OUTBOX: usize = 512;

async fn connection(state: Arc<AppState>, by: Actor, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut outbox) = mpsc::channel::<Value>(OUTBOX);
    let writer = tokio::spawn(async move {
        while let Some(frame) = outbox.recv().await {
            if sink
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut subscribed = false;
    while let Some(Ok(msg)) = stream.next().await {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => break,
            _ => continue,
        };
        let frame: RequestFrame = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                let _ = out
                    .send(error_frame(
                        &Value::Null,
                        "bad_frame",
                        &format!(
                            "not a request frame ({e}); send {{\"id\", \"method\", \"params\"}}"
                        ),
                    ))
                    .await;
                continue;
            }
        };
        let reply = handle(&state, &by, &out, &frame, &mut subscribed).await;
        let frame = match reply {
            Ok(None) => continue, // already answered
            Ok(Some(result)) => {
                json!({ "type": "response", "id": frame.id, "ok": true, "result": result })
            }
            Err(e) => {
                let body = e.body();
                error_frame(
                    &frame.id,
                    body["error"]["code"].as_str().unwrap_or("error"),
                    body["error"]["message"].as_str().unwrap_or(""),
                )
            }
        };
        if out.send(frame).await.is_err() {
            break;
        }
    }
    drop(out);
    let _ = writer.await;
}

fn error_frame(id: &Value, code: &str, message: &str) -> Value {
    json!({ "type": "response", "id": id, "ok": false, "error": { "code": code, "message": message } })
}

fn param<T: serde::de::DeserializeOwned>(params: &Value) -> Result<T, ApiError> {
    serde_json::from_value(params.clone()).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_params",
            format!("bad params: {e}"),
        )
    })
}

fn required<'a>(params: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    params.get(name).and_then(Value::as_str).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_params",
            format!("params.{name} is required (a string)"),
        )
    })
}

async fn handle(
    state: &Arc<AppState>,
    by: &Actor,
    out: &mpsc::Sender<Value>,
    frame: &RequestFrame,
    subscribed: &mut bool,
) -> Result<Option<Value>, ApiError> {
    let p = &frame.params;
    if frame.method == "chat.send" {
        return chat_send(state, out, &frame.id, param(p)?)
            .await
            .map(|()| None);
    }
    let result = match frame.method.as_str() {
        "sessions.list" => {
            control::sessions_list(
                state,
                p.get("limit")
                    .and_then(Value::as_u64)
                    .map(|n| n.min(u64::from(u32::MAX)) as u32),
            )
            .await
        }
        "sessions.get" => {
            let limit = p
                .get("limit")
                .and_then(Value::as_u64)
                .map(|n| n.min(u64::from(u32::MAX)) as u32);
            control::session_show(state, required(p, "key")?, limit).await
        }
        "sessions.reset" => control::session_reset(state, required(p, "key")?).await,
        "sessions.cancel" => Ok(control::session_cancel(state, required(p, "key")?)),
        "pairing.list" => {
            control::pairing_list(state, p.get("channel").and_then(Value::as_str)).await
        }
        "pairing.approve" => {
            control::pairing_decide(
                state,
                required(p, "channel")?,
                required(p, "code")?,
                true,
                by,
            )
            .await
        }
        "pairing.deny" => {
            control::pairing_decide(
                state,
                required(p, "channel")?,
                required(p, "code")?,
                false,
                by,
            )
            .await
        }
        "health.get" => Ok(control::status(state)),
        "approvals.list" => {
            control::approvals_list(
                state,
                p.get("all").and_then(Value::as_bool).unwrap_or(false),
            )
            .await
        }
        "approvals.approve" => control::approval_decide(state, required(p, "id")?, true, by).await,
        "approvals.deny" => control::approval_decide(state, required(p, "id")?, false, by).await,
        "usage.get" => {
            control::usage_by_agent(state, p.get("since_ms").and_then(Value::as_i64)).await
        }
        "events.subscribe" => {
            if !*subscribed {
                *subscribed = true;
                let mut rx = state.events.subscribe();
                let out = out.clone();
                tokio::spawn(async move {
                    loop {
                        match rx.recv().await {
                            Ok(ev) => {
                                let Ok(mut v) = serde_json::to_value(&ev) else {
                                    continue;
                                };
                                let name = v.get("event").cloned().unwrap_or(Value::Null);
                                let data =
                                    v.get_mut("data").map(Value::take).unwrap_or(Value::Null);
                                let mut data = if data.is_object() { data } else { json!({}) };
                                data["session_key"] = json!(ev.session_key);
                                data["channel"] = json!(ev.channel);
                                data["message_id"] = json!(ev.message_id);
                                if out
                                    .send(json!({ "type": "event", "event": name, "data": data }))
                                    .await
                                    .is_err()
                                {
                                    break;
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                let lagged = json!({ "type": "event", "event": "events.lagged", "data": { "missed": n } });
                                if out.send(lagged).await.is_err() {
                                    break;
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        }
                    }
                });
            }
            Ok(json!({ "subscribed": true }))
        }
        other => Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "unknown_method",
            format!("unknown method `{other}`; see docs/protocol.md for the list"),
        )),
    };
    result.map(Some)
}

/// Admit a message, answer the request, then stream its events.
async fn chat_send(
    state: &Arc<AppState>,
    out: &mpsc::Sender<Value>,
    id: &Value,
    req: ChatSend,
) -> Result<(), ApiError> {
    if req.text.trim().is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "empty_message",
            "params.text is empty",
        ));
    }
    let user = req
        .user
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "web".into());
    let message_id = req
        .message_id
        .unwrap_or_else(|| format!("ws-{}", uuid::Uuid::new_v4().simple()));
    let inbound = webchat_inbound(&user, req.text, message_id.clone());
    let mut submitted = submit(state, inbound, req.agent).await?;
    let session_key = submitted.session_key.clone();
    let result = json!({
        "message_id": message_id,
        "session_key": session_key,
        "agent": submitted.agent,
        "ingress_id": submitted.ingress_id,
    });
    let response = json!({ "type": "response", "id": id, "ok": true, "result": result });
    if out.send(response).await.is_err() {
        return Ok(());
    }
    let out = out.clone();
    tokio::spawn(async move {
        while let Some(event) = submitted.waiter.events.recv().await {
            let (name, mut data) = match event {
                ReplyEvent::Working => ("chat.started", json!({})),
                ReplyEvent::Delta { text } => ("chat.delta", json!({ "text": text })),
                ReplyEvent::Done { text, usage } => {
                    ("chat.done", json!({ "text": text, "usage": usage }))
                }
                ReplyEvent::Failed { message } => ("chat.error", json!({ "message": message })),
                ReplyEvent::Notice { text } => ("chat.notice", json!({ "text": text })),
            };
            data["message_id"] = json!(message_id);
            data["session_key"] = json!(session_key);
            let last = name != "chat.started" && name != "chat.delta";
            if out
                .send(json!({ "type": "event", "event": name, "data": data }))
                .await
                .is_err()
                || last
            {
                break;
            }
        }
    });
    Ok(())
}
