//! The inbound dispatcher: hands what channel listeners receive to the
//! pipeline, and tells each listener once its message is stored (or why
//! not), so it confirms to the platform only what cannot be lost.
//!
//! It runs under the supervisor. The queue outlives a run, so a dispatcher
//! restarted after a panic goes on with the messages still waiting; the one
//! in hand when it panicked is not confirmed to its listener, whose platform
//! delivers it again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use switchboard_channel::Delivery;

use super::Pipeline;

/// How long, after the shutdown signal, messages listeners still hand over
/// are taken.
const DRAIN_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// The dispatcher of one gateway.
#[derive(Debug)]
pub struct Intake {
    pipeline: Arc<Pipeline>,
    queue: Arc<Mutex<mpsc::Receiver<Delivery>>>,
}

impl Intake {
    /// A dispatcher of what arrives on `queue`.
    pub fn new(pipeline: Arc<Pipeline>, queue: mpsc::Receiver<Delivery>) -> Self {
        Self {
            pipeline,
            queue: Arc::new(Mutex::new(queue)),
        }
    }

    /// Hand messages on until `stop`, then take what listeners still hand
    /// over for a few seconds (until they have all let go). The
    /// supervisor's task.
    pub async fn run(&self, stop: CancellationToken) -> Result<(), String> {
        let mut queue = self.queue.lock().await;
        loop {
            tokio::select! {
                biased;
                d = queue.recv() => match d {
                    Some(d) => self.hand_over(d).await,
                    // No listener is left; nothing more will come.
                    None => {
                        stop.cancelled().await;
                        return Ok(());
                    }
                },
                () = stop.cancelled() => break,
            }
        }
        let drain = async {
            while let Some(d) = queue.recv().await {
                self.hand_over(d).await;
            }
        };
        let _ = tokio::time::timeout(DRAIN_AT_SHUTDOWN, drain).await;
        Ok(())
    }

    async fn hand_over(&self, Delivery { inbound, stored }: Delivery) {
        let result = self.pipeline.admit(inbound, None).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "cannot admit a message");
        }
        let _ = stored.send(result.map(drop).map_err(|e| e.to_string()));
    }
}
