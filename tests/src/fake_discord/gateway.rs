//! The fake gateway WebSocket: HELLO, IDENTIFY → READY + GUILD_CREATE,
//! HEARTBEAT → ACK (not on a zombie connection), RESUME → the missed
//! events then RESUMED (or INVALID_SESSION d=false for a session it does
//! not know), a client's close with 1000 or 1001 ending the session, and
//! the close codes for a bad token (4004) and disallowed intents (4014).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    APP_ID, CHANNEL_ID, GUILD_ID, Handshake, Push, Shared, THREAD_ID, TOKEN, bot_user,
    channel_json, dispatch_locked, error,
};

pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    if query.get("v").map(String::as_str) != Some("10") {
        return error(400, 0, "the gateway needs ?v=10");
    }
    ws.on_upgrade(move |socket| connection(shared, format!("/{path}"), socket))
}

async fn connection(shared: Arc<Shared>, path: String, socket: WebSocket) {
    {
        let mut inner = shared.lock();
        inner.open += 1;
        inner.most_open = inner.most_open.max(inner.open);
    }
    serve_socket(shared.clone(), path, socket).await;
    shared.lock().open -= 1;
}

async fn serve_socket(shared: Arc<Shared>, path: String, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Push>();
    let (conn, interval) = {
        let mut inner = shared.lock();
        inner.next_conn += 1;
        (inner.next_conn, inner.heartbeat_ms)
    };
    let hello = json!({"op": 10, "d": {"heartbeat_interval": interval}}).to_string();
    if socket.send(WsMessage::Text(hello.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            push = rx.recv() => match push {
                Some(Push::Frame(f)) => {
                    if socket.send(WsMessage::Text(f.into())).await.is_err() {
                        break;
                    }
                }
                Some(Push::Close(code, reason)) => {
                    let _ = socket.send(WsMessage::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    break;
                }
                // The socket goes away without a close frame.
                Some(Push::Drop) | None => break,
            },
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(WsMessage::Text(t))) => t.to_string(),
                    Some(Ok(WsMessage::Close(frame))) => {
                        // As Discord: closing with 1000 or 1001 ends the
                        // session; any other code leaves it resumable.
                        if frame.is_some_and(|f| f.code == 1000 || f.code == 1001) {
                            let mut inner = shared.lock();
                            if inner.live.as_ref().is_some_and(|(c, _)| *c == conn) {
                                inner.session = None;
                            }
                        }
                        break;
                    }
                    None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(p) = serde_json::from_str::<Value>(&text) else {
                    let _ = socket.send(WsMessage::Close(Some(CloseFrame { code: 4002, reason: "Error while decoding payload.".into() }))).await;
                    break;
                };
                match p["op"].as_u64() {
                    Some(1) => {
                        let ack = {
                            let mut inner = shared.lock();
                            inner.heartbeats += 1;
                            inner.zombie != Some(conn)
                        };
                        shared.changed.notify_waiters();
                        if ack && socket.send(WsMessage::Text(json!({"op": 11}).to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    Some(2) => {
                        if p["d"]["token"].as_str() != Some(TOKEN) {
                            let _ = socket.send(WsMessage::Close(Some(CloseFrame { code: 4004, reason: "Authentication failed.".into() }))).await;
                            break;
                        }
                        let intents = p["d"]["intents"].as_u64().unwrap_or(0);
                        let refuse = shared.lock().disallow_content && intents & (1 << 15) != 0;
                        if refuse {
                            let _ = socket.send(WsMessage::Close(Some(CloseFrame { code: 4014, reason: "Disallowed intent(s).".into() }))).await;
                            break;
                        }
                        identify(&shared, &path, intents, conn, tx.clone());
                    }
                    Some(6) => {
                        let d = &p["d"];
                        let seq = d["seq"].as_u64().unwrap_or(0);
                        let ok = {
                            let mut inner = shared.lock();
                            // Every attempt is recorded, refused or not.
                            inner.handshakes.push(Handshake::Resume {
                                path: path.to_string(),
                                seq,
                            });
                            d["token"].as_str() == Some(TOKEN)
                                && inner.session.as_deref() == d["session_id"].as_str()
                        };
                        if !ok {
                            let _ = socket.send(WsMessage::Text(json!({"op": 9, "d": false}).to_string().into())).await;
                            continue;
                        }
                        resume(&shared, seq, conn, tx.clone());
                    }
                    _ => {}
                }
            }
        }
    }
    let mut inner = shared.lock();
    if inner.live.as_ref().is_some_and(|(c, _)| *c == conn) {
        inner.live = None;
    }
    drop(inner);
    shared.changed.notify_waiters();
}

fn identify(shared: &Shared, path: &str, intents: u64, conn: u64, tx: mpsc::UnboundedSender<Push>) {
    let session = format!("session{conn}");
    {
        let mut inner = shared.lock();
        inner.handshakes.push(Handshake::Identify {
            path: path.to_string(),
            intents,
        });
        inner.session = Some(session.clone());
        inner.seq = 0;
        inner.events.clear();
        inner.live = Some((conn, tx));
        // READY is the first dispatch of a session: nothing the test sends
        // can come between it and the connection going live.
        dispatch_locked(
            &mut inner,
            "READY",
            json!({
                "v": 10, "user": bot_user(), "guilds": [{"id": GUILD_ID, "unavailable": true}],
                "session_id": session, "resume_gateway_url": shared.url("/resume"),
                "shard": [0, 1], "application": {"id": APP_ID, "flags": 1 << 19},
            }),
        );
    }
    shared.dispatch(
        "GUILD_CREATE",
        json!({"id": GUILD_ID, "name": "Test guild", "unavailable": false, "member_count": 3,
               "channels": [channel_json(CHANNEL_ID)], "threads": [channel_json(THREAD_ID)], "members": [], "roles": []}),
    );
}

fn resume(shared: &Shared, seq: u64, conn: u64, tx: mpsc::UnboundedSender<Push>) {
    let mut inner = shared.lock();
    let from = if std::mem::take(&mut inner.replay_everything) {
        0
    } else {
        seq
    };
    for (s, frame) in &inner.events {
        if *s > from {
            let _ = tx.send(Push::Frame(frame.clone()));
        }
    }
    inner.seq += 1;
    let s = inner.seq;
    let resumed = json!({"op": 0, "t": "RESUMED", "s": s, "d": {}}).to_string();
    inner.events.push((s, resumed.clone()));
    let _ = tx.send(Push::Frame(resumed));
    inner.live = Some((conn, tx));
    drop(inner);
    shared.changed.notify_waiters();
}
