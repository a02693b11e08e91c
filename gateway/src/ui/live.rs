//! What is live: one watcher task looks once a second (and only while
//! someone follows) at component health, channels, sessions, pairing
//! requests and approvals, and publishes a snapshot when it changed.
//!
//! Two streams of server-sent events follow it:
//! - `/ui/live` (a signed-in browser): event `changed`, so open pages
//!   refresh their live parts; it ends when the browser's session ends.
//! - `/api/status/stream` (the bearer token; the tray): event `status` with
//!   the snapshot as JSON: `{"status": <as GET /api/status>,
//!   "approvals_waiting": [...], "pairing_waiting": [...]}` (no tool
//!   arguments).
//!
//! Browsers' `EventSource` reconnects by itself after the gateway
//! restarts. Both streams end when the HTTP server stops, so they do not
//! hold shutdown up.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::Signed;
use crate::clock::now_ms;
use crate::http::AppState;

/// How often the watcher looks for changes.
const EVERY: Duration = Duration::from_secs(1);

/// One look at what is live.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// A digest of what the pages show (not of the clock).
    pub fingerprint: String,
    /// The snapshot as JSON (see the module's docs).
    pub body: Value,
}

/// The watcher's latest snapshot, for the streams.
#[derive(Debug)]
pub struct Live {
    tx: watch::Sender<Arc<Snapshot>>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(Arc::new(Snapshot::default())),
        }
    }
}

impl Live {
    /// Run the watcher until the HTTP server stops.
    pub async fn run(state: Arc<AppState>) {
        loop {
            if state.live.tx.receiver_count() > 0 {
                let now = look(&state).await;
                state.live.tx.send_if_modified(|old| {
                    if old.fingerprint == now.fingerprint {
                        false
                    } else {
                        *old = Arc::new(now);
                        true
                    }
                });
            }
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                () = state.http_stop.cancelled() => return,
            }
        }
    }

    fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }
}

/// Look now.
pub async fn look(state: &AppState) -> Snapshot {
    let status = crate::http::control::status(state);
    let pairing = state
        .store
        .pairing_list(None, now_ms())
        .await
        .unwrap_or_default();
    let approvals = state
        .store
        .approvals_list(true, 200)
        .await
        .unwrap_or_default();
    let mut h = Sha256::new();
    let mut steady = status.clone();
    // Uptime changes every second; what it shows is not news.
    if let Some(o) = steady.as_object_mut() {
        o.remove("uptime_secs");
        if let Some(Value::Object(components)) = o.get_mut("components") {
            for c in components.values_mut() {
                if let Some(c) = c.as_object_mut() {
                    // Shown as "n seconds ago": news every 5 s at most.
                    if let Some(t) = c.get("last_event_ms").and_then(Value::as_i64) {
                        c.insert("last_event_ms".into(), (t / 5000).into());
                    }
                }
            }
        }
    }
    h.update(steady.to_string().as_bytes());
    h.update(
        serde_json::to_string(&pairing)
            .unwrap_or_default()
            .as_bytes(),
    );
    h.update(
        serde_json::to_string(&approvals)
            .unwrap_or_default()
            .as_bytes(),
    );
    let fingerprint = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let approvals_waiting: Vec<Value> = approvals
        .iter()
        .filter(|a| a.status == "pending")
        .map(|a| {
            json!({
                "id": a.id,
                "tool": a.tool,
                "agent": a.agent,
                "session_key": a.session_key,
                "created_at": a.created_at,
            })
        })
        .collect();
    let pairing_waiting: Vec<Value> = pairing
        .iter()
        .map(|p| {
            json!({
                "channel": p.channel,
                "account": p.account,
                "sender_id": p.sender_id,
                "sender_name": p.sender_name,
                "code": p.code,
                "created_at": p.created_at,
            })
        })
        .collect();
    Snapshot {
        fingerprint,
        body: json!({
            "status": status,
            "approvals_waiting": approvals_waiting,
            "pairing_waiting": pairing_waiting,
        }),
    }
}

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/ui/live", get(ui_live))
}

/// Routes behind the bearer token.
pub fn api_routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/status/stream", get(status_stream))
}

/// The snapshots from now on: a fresh one first, then each change, until
/// the HTTP server stops or `still` says the follower is gone.
fn follow(
    state: Arc<AppState>,
    still: impl Fn(&AppState) -> bool + Send + 'static,
) -> impl Stream<Item = Arc<Snapshot>> + Send {
    let rx = state.live.subscribe();
    futures::stream::unfold(
        (state, rx, None::<String>, still),
        |(state, mut rx, last, still)| async move {
            let Some(last) = last else {
                let first = Arc::new(look(&state).await);
                let seen = Some(first.fingerprint.clone());
                return Some((first, (state, rx, seen, still)));
            };
            loop {
                tokio::select! {
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                    // Look at the follower now and then even when nothing
                    // changes.
                    () = tokio::time::sleep(EVERY * 5) => {}
                    () = state.http_stop.cancelled() => return None,
                }
                if !still(&state) {
                    return None;
                }
                let now = rx.borrow_and_update().clone();
                if now.fingerprint != last && !now.fingerprint.is_empty() {
                    let seen = Some(now.fingerprint.clone());
                    return Some((now, (state, rx, seen, still)));
                }
            }
        },
    )
}

async fn ui_live(
    State(state): State<Arc<AppState>>,
    signed: Signed,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let id = signed.id;
    let stream = follow(state, move |s| s.ui.is_live(&id))
        .map(|snap| Ok(Event::default().event("changed").data(&snap.fingerprint)));
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn status_stream(
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = follow(state, |_| true)
        .map(|snap| Ok(Event::default().event("status").data(snap.body.to_string())));
    // A short keep-alive: a follower knows within seconds that the gateway
    // went away even when no connection reset tells it.
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(2)))
}
