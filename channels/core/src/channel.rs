//! The adapter contract.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{Inbound, ReplySink, ReplyTarget};

/// What went wrong in a channel adapter.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The account's configuration cannot work (bad token, missing field).
    #[error("{0}")]
    Config(String),
    /// The platform could not be reached or answered with an error that may
    /// pass; the supervisor restarts the listener with backoff.
    #[error("platform unavailable: {0}")]
    Unavailable(String),
    /// The platform refused a request; retrying the same one will not help.
    #[error("platform rejected the request: {0}")]
    Rejected(String),
    /// The gateway is shutting down and no longer takes messages.
    #[error("the gateway is shutting down")]
    Closed,
}

impl ChannelError {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ChannelError::Unavailable(_))
    }
}

/// What a listener reports about its connection, for health: when it last
/// received something, how often its watchdog restarted it, and the
/// problem it has now (a 409 conflict, a refused token, ...).
#[derive(Debug, Default)]
pub struct ChannelStatus {
    inner: Mutex<StatusSnapshot>,
}

/// A copy of a [`ChannelStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusSnapshot {
    /// When the platform last sent an event (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_ms: Option<i64>,
    /// When the listener last heard from the platform at all (a poll that
    /// returned, a heartbeat ack), ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_contact_ms: Option<i64>,
    /// Times the watchdog restarted a listener that stopped making progress.
    pub watchdog_restarts: u64,
    /// What is wrong now, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The connection's state in the platform's words (`polling`,
    /// `webhook`, `connected`, `resuming`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// What an operator should know that is not a fault now and does not
    /// pass with the next contact (messages that may have been missed
    /// while a platform session was lost). Shown until replaced, for as
    /// long as the gateway runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl ChannelStatus {
    fn with(&self, f: impl FnOnce(&mut StatusSnapshot)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }
    /// The platform sent an event.
    pub fn event(&self) {
        self.with(|s| {
            let now = now_ms();
            s.last_event_ms = Some(now);
            s.last_contact_ms = Some(now);
        });
    }
    /// The platform answered (a poll returned, a heartbeat was acked); a
    /// problem reported before is over.
    pub fn contact(&self) {
        self.with(|s| {
            s.last_contact_ms = Some(now_ms());
            s.problem = None;
        });
    }
    /// Something is wrong; shown in health until the next contact.
    pub fn problem(&self, what: impl Into<String>) {
        let what = what.into();
        self.with(|s| s.problem = Some(what));
    }
    /// The watchdog restarted the listener.
    pub fn watchdog_restart(&self) {
        self.with(|s| s.watchdog_restarts += 1);
    }
    /// The connection's state.
    pub fn state(&self, state: impl Into<String>) {
        let state = state.into();
        self.with(|s| s.state = Some(state));
    }
    /// Something an operator should know, shown until replaced; unlike
    /// a problem it does not make the listener degraded.
    pub fn notice(&self, what: impl Into<String>) {
        let what = what.into();
        self.with(|s| s.notice = Some(what));
    }
    /// A copy for health.
    pub fn snapshot(&self) -> StatusSnapshot {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One message handed to the gateway, with the way back for its answer:
/// the gateway answers once the message is stored durably (or why it
/// could not be), and only then may the adapter confirm it to the platform.
#[derive(Debug)]
pub struct Delivery {
    /// The message.
    pub inbound: Inbound,
    /// `Ok` once stored (a duplicate counts: it was stored before).
    pub stored: oneshot::Sender<Result<(), String>>,
}

/// A listener's small durable state: a few short values by key (a
/// platform session to resume, a cursor) that survive a restart. The
/// gateway keeps one per channel account and stores it; the adapter only
/// names the keys, so it still knows nothing of storage.
#[async_trait]
pub trait ChannelState: Send + Sync + std::fmt::Debug {
    /// The value under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<String>, ChannelError>;
    /// Set every `(key, value)` of `entries`, all or none.
    async fn set(&self, entries: &[(&str, &str)]) -> Result<(), ChannelError>;
    /// Remove `keys` (a missing key is no error), all or none.
    async fn remove(&self, keys: &[&str]) -> Result<(), ChannelError>;
    /// Every key starting with `prefix`, with its value, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, ChannelError>;
}

/// A [`ChannelState`] in memory, lost with the process: for tests and for
/// listeners run without a store.
#[derive(Debug, Default)]
pub struct MemoryState {
    values: Mutex<std::collections::BTreeMap<String, String>>,
}

impl MemoryState {
    fn values(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, String>> {
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ChannelState for MemoryState {
    async fn get(&self, key: &str) -> Result<Option<String>, ChannelError> {
        Ok(self.values().get(key).cloned())
    }
    async fn set(&self, entries: &[(&str, &str)]) -> Result<(), ChannelError> {
        let mut values = self.values();
        for (k, v) in entries {
            values.insert((*k).to_string(), (*v).to_string());
        }
        Ok(())
    }
    async fn remove(&self, keys: &[&str]) -> Result<(), ChannelError> {
        let mut values = self.values();
        for k in keys {
            values.remove(*k);
        }
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, ChannelError> {
        Ok(self
            .values()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// What a listener is handed by the gateway: where to send messages, where
/// to report its health, where to keep its state, and when to stop.
#[derive(Debug, Clone)]
pub struct ChannelContext {
    /// Bounded sender into the gateway's inbound pipeline. A full channel is
    /// backpressure: the listener waits rather than dropping messages.
    pub inbound: mpsc::Sender<Delivery>,
    /// Cancelled when the gateway shuts down.
    pub shutdown: CancellationToken,
    /// The listener's health, shown by the gateway.
    pub status: Arc<ChannelStatus>,
    /// The account's durable state (kept across restarts by the gateway).
    pub state: Arc<dyn ChannelState>,
}

impl ChannelContext {
    /// A context with a fresh status and state in memory (for tests and
    /// simple adapters).
    pub fn new(inbound: mpsc::Sender<Delivery>, shutdown: CancellationToken) -> Self {
        Self {
            inbound,
            shutdown,
            status: Arc::new(ChannelStatus::default()),
            state: Arc::new(MemoryState::default()),
        }
    }

    /// The same context keeping its state in `state`.
    #[must_use]
    pub fn with_state(mut self, state: Arc<dyn ChannelState>) -> Self {
        self.state = state;
        self
    }

    /// Hand one message to the gateway and wait until it is stored
    /// durably. Only after `Ok` may the adapter confirm the message to its
    /// platform (advance a poll offset, answer a webhook 200, ack an
    /// envelope): a crash before that leaves the platform to deliver it
    /// again, and the gateway's deduplication answers it once.
    pub async fn deliver(&self, message: Inbound) -> Result<(), ChannelError> {
        let (stored, answer) = oneshot::channel();
        let delivery = Delivery {
            inbound: message,
            stored,
        };
        tokio::select! {
            sent = self.inbound.send(delivery) => sent.map_err(|_| ChannelError::Closed)?,
            () = self.shutdown.cancelled() => return Err(ChannelError::Closed),
        }
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(ChannelError::Unavailable(format!(
                "the gateway could not store the message: {why}"
            ))),
            Err(_) => Err(ChannelError::Closed),
        }
    }
}

/// One configured account of a messaging platform.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// The channel name (`telegram`, `webchat`, ...).
    fn name(&self) -> &str;
    /// The account name from the config.
    fn account(&self) -> &str;
    /// Receive messages until `ctx.shutdown` is cancelled. Returning an error
    /// makes the supervisor restart the listener with backoff.
    async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError>;
    /// Whether every message needs its own reply even when the gateway
    /// answers several in one turn (request/response channels such as the
    /// web chat API). Default false: one reply per turn.
    fn reply_per_message(&self) -> bool {
        false
    }
    /// Open a reply in the conversation `target` names.
    async fn open_reply(&self, target: &ReplyTarget) -> Result<Box<dyn ReplySink>, ChannelError>;
    /// Download `attachment` (by its `file_id`) into `out`, refusing files
    /// over `max_bytes`; returns the bytes written. The gateway opens `out`
    /// itself (inside a sandbox's workspace, without following links), so
    /// an adapter never writes by path. Default: not supported.
    async fn fetch(
        &self,
        attachment: &crate::Attachment,
        out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        max_bytes: u64,
    ) -> Result<u64, ChannelError> {
        let _ = (out, max_bytes);
        Err(ChannelError::Rejected(format!(
            "this channel cannot fetch files ({})",
            attachment.name
        )))
    }
    /// For platforms that push events over HTTP: the handler the gateway
    /// mounts at `/hooks/<channel>/<account>` on its own port. Default none.
    fn webhook(&self) -> Option<Arc<dyn Webhook>> {
        None
    }
}

/// One HTTP request to a channel's webhook.
#[derive(Debug, Clone, Default)]
pub struct WebhookRequest {
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to a webhook request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` of `body`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl WebhookResponse {
    /// A status with a short text body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }
}

/// A channel's HTTP endpoint for pushed events.
#[async_trait]
pub trait Webhook: Send + Sync {
    /// Handle one request.
    async fn handle(&self, request: WebhookRequest) -> WebhookResponse;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_state_lists_by_prefix_in_key_order() {
        let state = MemoryState::default();
        state
            .set(&[
                ("last:2", "b"),
                ("last:1", "a"),
                ("lastly", "x"),
                ("seq", "7"),
            ])
            .await
            .unwrap();
        let listed = state.list("last:").await.unwrap();
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(listed, [pair("last:1", "a"), pair("last:2", "b")]);
        state.remove(&["seq", "nothing"]).await.unwrap();
        assert_eq!(state.get("seq").await.unwrap(), None);
        assert_eq!(state.get("lastly").await.unwrap().as_deref(), Some("x"));
    }
}
