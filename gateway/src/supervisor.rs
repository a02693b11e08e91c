//! The supervisor: owns every long-running task, restarts failed ones with
//! exponential backoff, shows their state in [`Health`], and stops them all
//! on one shutdown signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::health::{Health, State};

/// The first restart delay; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest restart delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A service that ran this long before failing starts its backoff afresh.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Owns long-running tasks.
#[derive(Debug)]
pub struct Supervisor {
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
    health: Arc<Health>,
}

impl Supervisor {
    /// A supervisor whose tasks stop when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken, health: Arc<Health>) -> Self {
        Self {
            tasks: JoinSet::new(),
            shutdown,
            health,
        }
    }

    /// Run `make(shutdown)` as the service `name` until shutdown; when it
    /// fails (or ends early) it is restarted after a growing delay.
    pub fn spawn<F, Fut>(&mut self, name: &str, make: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        let health = self.health.clone();
        let name = name.to_string();
        self.tasks.spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                health.set(&name, State::Running, None);
                let started = tokio::time::Instant::now();
                let result = make(shutdown.clone()).await;
                if shutdown.is_cancelled() {
                    health.set(&name, State::Stopped, None);
                    return;
                }
                if started.elapsed() >= STABLE_AFTER {
                    backoff = FIRST_BACKOFF;
                }
                let why = match result {
                    Ok(()) => "stopped unexpectedly".to_string(),
                    Err(e) => e,
                };
                tracing::warn!(service = %name, error = %why, retry_in = ?backoff, "service failed; restarting");
                health.set(&name, State::Restarting, Some(why));
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => {
                        health.set(&name, State::Stopped, None);
                        return;
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }

    /// Wait until every task has stopped.
    pub async fn wait(mut self) {
        while let Some(res) = self.tasks.join_next().await {
            if let Err(e) = res {
                tracing::error!(error = %e, "a supervised task panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn failing_service_is_restarted_with_backoff_and_stops_on_shutdown() {
        let shutdown = CancellationToken::new();
        let health = Arc::new(Health::new());
        let mut sup = Supervisor::new(shutdown.clone(), health.clone());
        let runs = Arc::new(AtomicU32::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let counter = runs.clone();
        sup.spawn("flaky", move |_stop| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let tx = tx.clone();
            async move {
                let _ = tx.send((n, tokio::time::Instant::now()));
                Err(format!("attempt {n} failed"))
            }
        });
        let (_, t1) = rx.recv().await.unwrap();
        let (_, t2) = rx.recv().await.unwrap();
        let (_, t3) = rx.recv().await.unwrap();
        assert_eq!(t2 - t1, FIRST_BACKOFF);
        assert_eq!(t3 - t2, FIRST_BACKOFF * 2, "the delay doubles");
        let h = health.snapshot();
        assert!(h["flaky"].restarts >= 2, "restarts are counted");
        assert!(
            h["flaky"]
                .detail
                .as_deref()
                .unwrap_or("")
                .contains("failed")
        );
        shutdown.cancel();
        sup.wait().await;
        assert_eq!(health.snapshot()["flaky"].state, State::Stopped);
    }
}
