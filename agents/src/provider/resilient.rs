//! Retries and fallbacks around providers.
//!
//! A model call that fails before it produced anything is retried on the
//! same provider when the error may pass (429, 5xx, unreachable, timeout),
//! waiting what `Retry-After` asks or a doubling backoff; when the retries
//! are spent, or the error will not pass, the next provider of the chain is
//! asked. A call that already streamed output is never repeated: the user
//! would see the answer twice. Each turn starts again at the first provider.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use super::http::spawn_events;
use super::{ModelRequest, Provider, ProviderError, ProviderEvent};

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt, per provider.
    pub max_retries: u32,
    /// The first backoff; it doubles per retry.
    pub first_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a longer one moves on to the
    /// next provider instead of waiting.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A chain of providers tried in order, each with retries.
pub struct FallbackChain {
    chain: Vec<Arc<dyn Provider>>,
    policy: RetryPolicy,
}

impl std::fmt::Debug for FallbackChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .chain
            .iter()
            .map(|p| format!("{}/{}", p.name(), p.model()))
            .collect();
        f.debug_struct("FallbackChain")
            .field("chain", &names)
            .field("policy", &self.policy)
            .finish()
    }
}

impl FallbackChain {
    /// `primary`, then `fallbacks` in order. Panics on nothing: an empty
    /// fallback list is a chain of one.
    pub fn new(
        primary: Arc<dyn Provider>,
        fallbacks: Vec<Arc<dyn Provider>>,
        policy: RetryPolicy,
    ) -> Self {
        let mut chain = vec![primary];
        chain.extend(fallbacks);
        Self { chain, policy }
    }
}

/// What one attempt came to.
enum Attempt {
    /// It finished (successfully or after output began, when its error was
    /// passed on).
    Finished,
    /// It failed before any output.
    FailedEarly(ProviderError),
}

async fn attempt(
    provider: &Arc<dyn Provider>,
    request: ModelRequest,
    tx: &super::http::EventTx,
) -> Attempt {
    let mut stream = provider.stream(request);
    let mut emitted = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                emitted = true;
                if tx.send(Ok(event)).await.is_err() {
                    return Attempt::Finished;
                }
            }
            Err(e) if !emitted => return Attempt::FailedEarly(e),
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return Attempt::Finished;
            }
        }
    }
    Attempt::Finished
}

impl RetryPolicy {
    /// How long to wait before retry number `retry` (0-based) after `e`, or
    /// `None` to give up on this provider.
    pub fn delay(&self, retry: u32, e: &ProviderError) -> Option<Duration> {
        if retry >= self.max_retries || !e.is_retryable() {
            return None;
        }
        if let ProviderError::Http {
            retry_after: Some(secs),
            ..
        } = e
        {
            let asked = Duration::from_secs(*secs);
            return (asked <= self.max_retry_after).then_some(asked);
        }
        let factor = 2u32.saturating_pow(retry);
        Some(
            self.first_backoff
                .saturating_mul(factor)
                .min(self.max_backoff),
        )
    }
}

impl Provider for FallbackChain {
    fn name(&self) -> &str {
        self.chain[0].name()
    }

    fn model(&self) -> &str {
        self.chain[0].model()
    }

    fn probe(&self) -> BoxFuture<'static, Result<(), ProviderError>> {
        self.chain[0].probe()
    }

    fn stream(
        &self,
        request: ModelRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, ProviderError>> {
        let chain = self.chain.clone();
        let policy = self.policy;
        spawn_events(move |tx| async move {
            let mut last_error = None;
            for (i, provider) in chain.iter().enumerate() {
                let mut retry = 0;
                loop {
                    match attempt(provider, request.clone(), &tx).await {
                        Attempt::Finished => return Ok(()),
                        Attempt::FailedEarly(e) => match policy.delay(retry, &e) {
                            Some(wait) => {
                                tracing::warn!(provider = provider.name(), error = %e, retry_in = ?wait, "model call failed; retrying");
                                tokio::time::sleep(wait).await;
                                retry += 1;
                            }
                            None => {
                                if let Some(next) = chain.get(i + 1) {
                                    tracing::warn!(provider = provider.name(), error = %e, next = next.name(), "model call failed; falling back");
                                }
                                last_error = Some(e);
                                break;
                            }
                        },
                    }
                }
            }
            Err(last_error.unwrap_or_else(|| ProviderError::Protocol {
                provider: "none".into(),
                detail: "no provider configured".into(),
            }))
        })
    }
}
