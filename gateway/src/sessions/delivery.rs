//! Replies owed, and who owns each pending ingress row.
//!
//! A turn stores its answer before it replies, so an answer whose delivery
//! failed (the platform answered 5xx, the network was down, the reply could
//! not even be opened) is not lost: its rows stay pending and
//! [`Deliveries`] sends the stored answer again with backoff — never asking
//! the model again — for `sessions.delivery_retry_secs`, then marks the rows
//! failed and says so in health (`delivery`).
//!
//! [`Claims`] says which pending rows have a live owner in this process (a
//! session actor's queue or turn, or a delivery retry). The periodic sweep
//! picks up only rows nobody owns — an admission that failed after the
//! ingress write, an actor that died — so nothing waits for a restart, and
//! nothing is handled twice.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use switchboard_channel::{ReplyEvent, ReplyTarget};
use switchboard_memory::{IngressStatus, Store};

use crate::channels::ChannelSet;
use crate::clock::now_ms;
use crate::health::{Health, State};

/// The pending ingress rows that have an owner in this process.
#[derive(Debug, Default)]
pub struct Claims {
    ids: Mutex<HashSet<i64>>,
}

/// Ownership of one pending row; released when the last holder drops it.
#[derive(Debug)]
pub struct Claim {
    id: i64,
    claims: Arc<Claims>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Claims {
    /// Take row `id`; `None` when someone in this process already owns it.
    pub fn claim(self: &Arc<Self>, id: i64) -> Option<Arc<Claim>> {
        let fresh = self
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        fresh.then(|| {
            Arc::new(Claim {
                id,
                claims: self.clone(),
            })
        })
    }

    /// Whether row `id` has an owner.
    pub fn is_claimed(&self, id: i64) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
    }
}

/// A stored answer not yet delivered.
pub struct Owed {
    /// Where it goes.
    pub target: ReplyTarget,
    /// The answer as stored.
    pub text: String,
    /// The ingress rows it answers.
    pub rows: Vec<i64>,
    /// Their claims, held until the rows are finished.
    pub claims: Vec<Arc<Claim>>,
    /// Why the last attempt failed (empty: not tried yet).
    pub last_error: String,
    /// The reply it was streamed through, when there was one: sent again
    /// through it, the answer replaces the preview it already showed and
    /// skips the pieces that went out, rather than arriving twice.
    pub sink: Option<Box<dyn switchboard_channel::ReplySink>>,
}

impl std::fmt::Debug for Owed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owed")
            .field("target", &self.target)
            .field("rows", &self.rows)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

/// The first wait before sending an owed answer again.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Most answers retried at once; past that, rows stay pending for the sweep.
const MAX_OWED: u64 = 10_000;

/// Sends owed answers again until they are delivered or their time is up.
#[derive(Debug)]
pub struct Deliveries {
    store: Arc<dyn Store>,
    channels: ChannelSet,
    health: Arc<Health>,
    retry_for: Duration,
    stop: CancellationToken,
    tracker: TaskTracker,
    retrying: AtomicU64,
    failed: AtomicU64,
}

impl Deliveries {
    /// Retry for `retry_for` each; `stop` (shutdown) ends the retries and
    /// leaves their rows pending for the next start.
    pub fn new(
        store: Arc<dyn Store>,
        channels: ChannelSet,
        health: Arc<Health>,
        retry_for: Duration,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let this = Arc::new(Self {
            store,
            channels,
            health,
            retry_for,
            stop,
            tracker: TaskTracker::new(),
            retrying: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        this.report();
        this
    }

    /// Answers being retried now.
    pub fn retrying(&self) -> u64 {
        self.retrying.load(Ordering::Relaxed)
    }

    /// Answers given up on since start.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Send `owed` now and, if that fails, again with backoff.
    pub fn deliver(self: &Arc<Self>, owed: Owed) {
        self.spawn(owed, Duration::ZERO);
    }

    /// `owed` just failed to go out: send it again after a pause.
    pub fn owe(self: &Arc<Self>, owed: Owed) {
        tracing::warn!(
            rows = ?owed.rows,
            channel = %owed.target.channel,
            error = %owed.last_error,
            "reply not delivered; it will be sent again"
        );
        self.spawn(owed, FIRST_RETRY);
    }

    fn spawn(self: &Arc<Self>, owed: Owed, first_wait: Duration) {
        if self.retrying.fetch_add(1, Ordering::Relaxed) >= MAX_OWED {
            // Too many at once: the rows stay pending (their claims go
            // with `owed`) and the sweep offers them again later.
            self.retrying.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(rows = ?owed.rows, "too many replies waiting to be sent again; left for the sweep");
            return;
        }
        self.report();
        let this = self.clone();
        self.tracker.spawn(async move {
            this.retry(owed, first_wait).await;
            this.retrying.fetch_sub(1, Ordering::Relaxed);
            this.report();
        });
    }

    async fn retry(&self, mut owed: Owed, first_wait: Duration) {
        let deadline = tokio::time::Instant::now() + self.retry_for;
        let mut wait = first_wait;
        loop {
            let pause = wait.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            tokio::select! {
                () = self.stop.cancelled() => return, // pending: the next start delivers it
                () = tokio::time::sleep(pause) => {}
            }
            match self.attempt(&mut owed).await {
                Ok(()) => {
                    self.finish(&owed.rows, IngressStatus::Done, None).await;
                    return;
                }
                Err(e) => owed.last_error = e,
            }
            if tokio::time::Instant::now() >= deadline {
                let error = format!(
                    "reply not delivered within {} s: {}",
                    self.retry_for.as_secs(),
                    owed.last_error
                );
                tracing::error!(rows = ?owed.rows, channel = %owed.target.channel, %error, "giving up on a reply");
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.finish(&owed.rows, IngressStatus::Failed, Some(&error))
                    .await;
                return;
            }
            wait = if wait.is_zero() {
                FIRST_RETRY
            } else {
                (wait * 2).min(MAX_RETRY)
            };
        }
    }

    async fn attempt(&self, owed: &mut Owed) -> Result<(), String> {
        let sink = match &mut owed.sink {
            Some(sink) => sink,
            None => owed
                .sink
                .insert(self.channels.try_open_reply(&owed.target).await?),
        };
        sink.send(ReplyEvent::Done {
            text: owed.text.clone(),
            usage: None,
        })
        .await
        .map_err(|e| e.to_string())
    }

    async fn finish(&self, rows: &[i64], status: IngressStatus, error: Option<&str>) {
        let _ = record(self.store.as_ref(), rows, status, error).await;
    }

    fn report(&self) {
        let retrying = self.retrying();
        let failed = self.failed();
        let (state, detail) = match (retrying, failed) {
            (0, 0) => (State::Running, "every reply delivered".to_string()),
            (r, 0) => (
                State::Degraded,
                format!("{r} repl{} waiting to be sent again", plural_y(r)),
            ),
            (r, f) => (
                State::Degraded,
                format!(
                    "{r} repl{} waiting to be sent again; {f} not delivered within {} s (see the logs and `switchboard sessions show`)",
                    plural_y(r),
                    self.retry_for.as_secs()
                ),
            ),
        };
        self.health.set("delivery", state, Some(detail));
    }
}

/// Record how `rows` ended, trying a few times: once their reply went out,
/// a row left pending by a failed write would be sent again by the sweep.
pub(crate) async fn record(
    store: &dyn Store,
    rows: &[i64],
    status: IngressStatus,
    error: Option<&str>,
) -> Result<(), switchboard_memory::StoreError> {
    for id in rows {
        let mut wait = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            match store.ingress_finish(*id, status, error, now_ms()).await {
                Ok(()) => break,
                Err(e) if tries < 4 => {
                    tracing::warn!(ingress_id = id, error = %e, "cannot record a message's end yet; trying again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    tries += 1;
                }
                Err(e) => {
                    // Still pending: the sweep offers it again.
                    tracing::error!(ingress_id = id, error = %e, "cannot record a message's end");
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

fn plural_y(n: u64) -> &'static str {
    if n == 1 { "y" } else { "ies" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_has_one_owner_until_every_holder_lets_go() {
        let claims = Arc::new(Claims::default());
        let a = claims.claim(7).unwrap();
        assert!(claims.claim(7).is_none());
        assert!(claims.is_claimed(7));
        let b = a.clone();
        drop(a);
        assert!(claims.is_claimed(7));
        drop(b);
        assert!(!claims.is_claimed(7));
        assert!(claims.claim(7).is_some());
    }
}
