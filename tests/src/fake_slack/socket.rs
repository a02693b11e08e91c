//! The fake Socket Mode WebSocket: `hello`, then envelopes; acks are
//! recorded and what was not acknowledged is sent again on the next
//! connection with `retry_attempt` raised.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{APP_ID, Shared};

pub(crate) struct Envelope {
    pub(crate) id: String,
    pub(crate) kind: &'static str,
    pub(crate) payload: Value,
    pub(crate) retry_attempt: u64,
}

pub(crate) enum Push {
    Frame(String),
    Drop,
}

pub(crate) fn frame(e: &Envelope) -> String {
    json!({
        "envelope_id": e.id, "payload": e.payload, "type": e.kind,
        "accepts_response_payload": e.kind != "events_api",
        "retry_attempt": e.retry_attempt,
        "retry_reason": if e.retry_attempt > 0 { "timeout" } else { "" },
    })
    .to_string()
}

pub(crate) async fn link(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let ticket = query.get("ticket").cloned().unwrap_or_default();
    if !shared.lock().tickets.remove(&ticket) {
        return (StatusCode::UNAUTHORIZED, "invalid or used ticket").into_response();
    }
    ws.on_upgrade(move |socket| connection(shared, socket))
}

async fn connection(shared: Arc<Shared>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Push>();
    let hello = json!({"type": "hello", "num_connections": 1,
        "debug_info": {"host": "fake-slack", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": APP_ID}});
    if socket
        .send(WsMessage::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let conn = {
        let mut inner = shared.lock();
        inner.connections += 1;
        let conn = inner.connections;
        // Slack keeps one of our connections: the old one goes.
        if let Some((_, old)) = inner.live.replace((conn, tx.clone())) {
            let _ = old.send(Push::Drop);
        }
        // What was not acknowledged comes again.
        for e in &inner.pending {
            let _ = tx.send(Push::Frame(frame(e)));
        }
        conn
    };
    shared.changed.notify_waiters();
    loop {
        tokio::select! {
            push = rx.recv() => match push {
                Some(Push::Frame(f)) => {
                    if socket.send(WsMessage::Text(f.into())).await.is_err() {
                        break;
                    }
                }
                Some(Push::Drop) | None => break,
            },
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(WsMessage::Text(t))) => t.to_string(),
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                if let Some(id) = v["envelope_id"].as_str() {
                    let mut inner = shared.lock();
                    inner.pending.retain(|e| e.id != id);
                    inner.acked.push(id.to_string());
                    drop(inner);
                    shared.changed.notify_waiters();
                }
            }
        }
    }
    let mut inner = shared.lock();
    if inner.live.as_ref().is_some_and(|(c, _)| *c == conn) {
        inner.live = None;
    }
    // Unacknowledged envelopes are retried on the next connection.
    for e in &mut inner.pending {
        e.retry_attempt += 1;
    }
    drop(inner);
    shared.changed.notify_waiters();
}
