//! `/ui/live`: a server-sent event stream that tells open pages something
//! changed (component health, channels, pairing requests, approvals,
//! sessions), so they refresh their live parts without a reload. It looks
//! once a second, not on every streamed token, so load does not multiply. Browsers'
//! `EventSource` reconnects by itself after the gateway restarts.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use sha2::{Digest, Sha256};

use super::Signed;
use crate::clock::now_ms;
use crate::http::AppState;

/// How often the gateway looks for changes to push.
const EVERY: Duration = Duration::from_secs(1);

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/ui/live", get(live))
}

/// A digest of what the live parts of the pages show.
async fn fingerprint(state: &AppState) -> String {
    let mut h = Sha256::new();
    let mut status = crate::http::control::status(state);
    // Uptime changes every second; what it shows is not news.
    if let Some(o) = status.as_object_mut() {
        o.remove("uptime_secs");
        if let Some(serde_json::Value::Object(components)) = o.get_mut("components") {
            for c in components.values_mut() {
                if let Some(c) = c.as_object_mut() {
                    // Shown as "n seconds ago", refreshed at most every 5 s.
                    if let Some(t) = c.get("last_event_ms").and_then(serde_json::Value::as_i64) {
                        c.insert("last_event_ms".into(), (t / 5000).into());
                    }
                }
            }
        }
    }
    h.update(status.to_string().as_bytes());
    if let Ok(p) = state.store.pairing_list(None, now_ms()).await {
        h.update(serde_json::to_string(&p).unwrap_or_default().as_bytes());
    }
    if let Ok(a) = state.store.approvals_list(false, 200).await {
        h.update(serde_json::to_string(&a).unwrap_or_default().as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

async fn live(
    State(state): State<Arc<AppState>>,
    _signed: Signed,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(
        (state, String::new()),
        |(state, mut last)| async move {
            loop {
                let now = fingerprint(&state).await;
                if now != last {
                    last.clone_from(&now);
                    let event = Event::default().event("changed").data(now);
                    return Some((Ok(event), (state, last)));
                }
                tokio::time::sleep(EVERY).await;
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
