//! The supervisor: owns every long-running task, restarts failed ones with
//! exponential backoff, shows their state in [`Health`], and stops them all
//! on one shutdown signal.
//!
//! Each run of a service is its own tokio task, so a panic ends that run
//! only: the supervisor sees it as a failure (`panicked: <message>`), shows
//! it in health and restarts the service like any other failure.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::health::{Health, State};

/// The first restart delay; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest restart delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a run asked to restart may take to stop before it is aborted.
const RESTART_GRACE: Duration = Duration::from_secs(5);
/// A service that ran this long before failing starts its backoff afresh.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Owns long-running tasks. Clones share the tasks: a config reload
/// starts and retires services while the gateway runs.
#[derive(Debug, Clone)]
pub struct Supervisor {
    tasks: Arc<Mutex<JoinSet<()>>>,
    shutdown: CancellationToken,
    health: Arc<Health>,
    restarts: Restarts,
}

/// Restarts of a supervised service asked for by an operator (the control
/// UI's **Restart**): the current run is stopped and the next one starts at
/// once, without the failure backoff.
#[derive(Debug, Clone, Default)]
pub struct Restarts {
    runs: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl Restarts {
    /// Stop the current run of `name` so that it starts again; false when
    /// no service of that name runs.
    pub fn restart(&self, name: &str) -> bool {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        match runs.get(name) {
            Some(run) => {
                run.cancel();
                true
            }
            None => false,
        }
    }

    fn begin(&self, name: &str, shutdown: &CancellationToken) -> CancellationToken {
        let run = shutdown.child_token();
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), run.clone());
        run
    }

    fn end(&self, name: &str) {
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

impl Supervisor {
    /// A supervisor whose tasks stop when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken, health: Arc<Health>) -> Self {
        Self {
            tasks: Arc::default(),
            shutdown,
            health,
            restarts: Restarts::default(),
        }
    }

    /// Use `restarts` for operators' restart requests (made before the
    /// supervisor, so the HTTP state can hold it).
    pub fn with_restarts(mut self, restarts: Restarts) -> Self {
        self.restarts = restarts;
        self
    }

    /// Run `make(shutdown)` as the service `name` until shutdown; when it
    /// fails, panics or ends early it is restarted after a growing delay.
    pub fn spawn<F, Fut>(&self, name: &str, make: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let (ended, _) = tokio::sync::oneshot::channel();
        self.run(name, self.shutdown.clone(), ended, make);
    }

    /// [`Supervisor::spawn`], for a service that may be retired before
    /// shutdown (a channel account removed by a config reload).
    pub fn spawn_retirable<F, Fut>(&self, name: &str, make: F) -> Retirable
    where
        F: Fn(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let root = self.shutdown.child_token();
        let (ended, done) = tokio::sync::oneshot::channel();
        self.run(name, root.clone(), ended, make);
        Retirable {
            name: name.to_string(),
            root,
            done: Some(done),
            health: self.health.clone(),
        }
    }

    fn run<F, Fut>(
        &self,
        name: &str,
        root: CancellationToken,
        ended: tokio::sync::oneshot::Sender<()>,
        make: F,
    ) where
        F: Fn(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        let health = self.health.clone();
        let restarts = self.restarts.clone();
        let name = name.to_string();
        let task = async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                health.set(&name, State::Running, None);
                let started = tokio::time::Instant::now();
                let stop = restarts.begin(&name, &root);
                // Its own task, so that a panic ends this run, not the
                // supervision; aborted if the supervision itself is dropped.
                let mut run = AbortOnDropHandle::new(tokio::spawn(make(stop.clone())));
                let result = tokio::select! {
                    r = &mut run => r.unwrap_or_else(|e| Err(join_failure(e))),
                    // An operator's restart or a retirement: a run that
                    // does not stop by itself (it hangs, which is why it
                    // is restarted) is aborted after a grace period. At
                    // shutdown the drain waits instead.
                    () = async {
                        stop.cancelled().await;
                        if !shutdown.is_cancelled() {
                            tokio::time::sleep(RESTART_GRACE).await;
                        } else {
                            std::future::pending::<()>().await;
                        }
                    } => {
                        run.abort();
                        Ok(())
                    }
                };
                if root.is_cancelled() {
                    restarts.end(&name);
                    health.set(&name, State::Stopped, None);
                    let _ = ended.send(());
                    return;
                }
                if stop.is_cancelled() {
                    tracing::info!(service = %name, "restarted by the operator");
                    health.set(
                        &name,
                        State::Restarting,
                        Some("restarted by the operator".into()),
                    );
                    continue;
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
                // An operator's restart during the backoff starts it now.
                let wake = restarts.begin(&name, &root);
                tokio::select! {
                    biased;
                    () = root.cancelled() => {
                        restarts.end(&name);
                        health.set(&name, State::Stopped, None);
                        let _ = ended.send(());
                        return;
                    }
                    () = wake.cancelled() => {}
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Services retired by reloads leave finished tasks behind.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Wait until every task has stopped.
    pub async fn wait(self) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        while let Some(res) = tasks.join_next().await {
            if let Err(e) = res {
                tracing::error!(error = %e, "a supervision task failed");
            }
        }
    }
}

/// A service that can be stopped for good before shutdown; dropped
/// without [`Retirable::retire`], it is stopped all the same (without
/// waiting), so that no listener runs on unowned.
#[derive(Debug)]
pub struct Retirable {
    name: String,
    root: CancellationToken,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
    health: Arc<Health>,
}

impl Retirable {
    /// Stop the service for good and wait until its run has ended (a run
    /// that does not stop is aborted after a grace period); its component
    /// leaves the health report.
    pub async fn retire(mut self) {
        self.root.cancel();
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
        self.health.remove(&self.name);
    }
}

impl Drop for Retirable {
    fn drop(&mut self) {
        self.root.cancel();
    }
}

/// Why a run's task ended without a result: its panic message.
fn join_failure(e: JoinError) -> String {
    if e.is_panic() {
        format!("panicked: {}", panic_message(&*e.into_panic()))
    } else {
        format!("was cancelled: {e}")
    }
}

/// The text a panic was raised with.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Component;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn failing_service_is_restarted_with_backoff_and_stops_on_shutdown() {
        let shutdown = CancellationToken::new();
        let health = Arc::new(Health::new());
        let sup = Supervisor::new(shutdown.clone(), health.clone());
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
        // The third run started, so the first two failures were handled.
        let h = health.snapshot();
        assert!(h["flaky"].restarts >= 2, "restarts are counted");
        assert!(
            h["flaky"]
                .last_failure
                .as_deref()
                .unwrap_or("")
                .contains("failed")
        );
        shutdown.cancel();
        sup.wait().await;
        assert_eq!(health.snapshot()["flaky"].state, State::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn an_operators_restart_stops_even_a_hung_run_and_skips_the_backoff() {
        let shutdown = CancellationToken::new();
        let health = Arc::new(Health::new());
        let restarts = Restarts::default();
        let sup = Supervisor::new(shutdown.clone(), health.clone()).with_restarts(restarts.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        sup.spawn("listener", move |stop| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let tx = tx.clone();
            async move {
                let _ = tx.send((n, tokio::time::Instant::now()));
                match n {
                    // Hung: never looks at its stop token.
                    1 => std::future::pending::<()>().await,
                    // Fails at once: a backoff follows.
                    2 => return Err("down".to_string()),
                    _ => stop.cancelled().await,
                }
                Ok(())
            }
        });
        let (_, t1) = rx.recv().await.unwrap();
        assert!(!restarts.restart("no-such-service"));
        assert!(restarts.restart("listener"));
        let (n, t2) = rx.recv().await.unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            t2 - t1,
            RESTART_GRACE,
            "the hung run was aborted after the grace"
        );
        // Run 2 failed; during its backoff a restart starts run 3 at once.
        until_state(&health, "listener", State::Restarting).await;
        assert!(restarts.restart("listener"));
        let (n, t3) = rx.recv().await.unwrap();
        assert_eq!(n, 3);
        assert!(t3 - t2 < FIRST_BACKOFF, "the backoff was skipped");
        shutdown.cancel();
        sup.wait().await;
        assert_eq!(health.snapshot()["listener"].state, State::Stopped);
    }

    /// The component once it is in `state`, letting other tasks run (paused
    /// time does not advance while tasks are ready).
    async fn until_state(health: &Health, name: &str, state: State) -> Component {
        for _ in 0..100 {
            if let Some(c) = health.snapshot().get(name)
                && c.state == state
            {
                return c.clone();
            }
            tokio::task::yield_now().await;
        }
        panic!("{name} never became {state:?}: {:?}", health.snapshot());
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_service_is_restarted_with_backoff_and_its_panic_shown() {
        let shutdown = CancellationToken::new();
        let health = Arc::new(Health::new());
        let sup = Supervisor::new(shutdown.clone(), health.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        sup.spawn("brittle", move |stop| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let tx = tx.clone();
            async move {
                let _ = tx.send((n, tokio::time::Instant::now()));
                if n <= 2 {
                    panic!("run {n} hit a bug");
                }
                // The third run works until shutdown.
                stop.cancelled().await;
                Ok(())
            }
        });
        let (_, t1) = rx.recv().await.unwrap();
        let (_, t2) = rx.recv().await.unwrap();
        // While it waits for its next run, health says why.
        let c = until_state(&health, "brittle", State::Restarting).await;
        assert_eq!(c.detail.as_deref(), Some("panicked: run 2 hit a bug"));
        let (n, t3) = rx.recv().await.unwrap();
        assert_eq!(n, 3, "restarted after each panic");
        assert_eq!(t2 - t1, FIRST_BACKOFF);
        assert_eq!(
            t3 - t2,
            FIRST_BACKOFF * 2,
            "a panic backs off like an error"
        );
        // Running again: the count and the last panic stay visible.
        let c = until_state(&health, "brittle", State::Running).await;
        assert_eq!(c.restarts, 2);
        assert_eq!(c.last_failure.as_deref(), Some("panicked: run 2 hit a bug"));
        shutdown.cancel();
        sup.wait().await;
        assert_eq!(health.snapshot()["brittle"].state, State::Stopped);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&String::from("formatted 7")), "formatted 7");
        assert_eq!(panic_message(&42_u8), "(no message)");
    }
}
