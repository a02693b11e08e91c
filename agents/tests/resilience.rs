//! Retries and fallbacks, with scripted providers and paused time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use switchboard_agents::{
    ChatMessage, FallbackChain, ModelRequest, Provider, ProviderError, ProviderEvent, RetryPolicy,
};
use tokio::time::Instant;

/// One scripted answer: events, then optionally an error.
type Script = (Vec<ProviderEvent>, Option<ProviderError>);

struct Scripted {
    name: String,
    scripts: Mutex<VecDeque<Script>>,
    calls: Mutex<Vec<Instant>>,
}

impl Scripted {
    fn new(name: &str, scripts: Vec<Script>) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            scripts: Mutex::new(scripts.into()),
            calls: Mutex::new(vec![]),
        })
    }
    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }
}

impl Provider for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn model(&self) -> &str {
        "m"
    }
    fn stream(
        &self,
        _request: ModelRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, ProviderError>> {
        self.calls.lock().unwrap().push(Instant::now());
        let (events, error) = self
            .scripts
            .lock()
            .unwrap()
            .pop_front()
            .expect("a scripted answer");
        futures::stream::iter(events.into_iter().map(Ok).chain(error.map(Err))).boxed()
    }
}

fn http(status: u16, retry_after: Option<u64>) -> ProviderError {
    ProviderError::Http {
        provider: "p".into(),
        status,
        message: format!("status {status}"),
        retry_after,
    }
}

fn text(t: &str) -> ProviderEvent {
    ProviderEvent::TextDelta(t.into())
}

async fn run(chain: &FallbackChain) -> Vec<Result<ProviderEvent, ProviderError>> {
    chain
        .stream(vec![ChatMessage::user("hi")].into())
        .collect()
        .await
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_what_retry_after_asks() {
    let p = Scripted::new(
        "p",
        vec![(vec![], Some(http(429, Some(7)))), (vec![text("ok")], None)],
    );
    let chain = FallbackChain::new(p.clone(), vec![], RetryPolicy::default());
    let out = run(&chain).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].as_ref().unwrap(), &text("ok"));
    let calls = p.calls();
    assert_eq!(calls[1] - calls[0], Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn a_500_then_success_backs_off_and_a_400_is_not_retried() {
    let p = Scripted::new(
        "p",
        vec![
            (vec![], Some(http(500, None))),
            (vec![], Some(http(503, None))),
            (vec![text("ok")], None),
        ],
    );
    let chain = FallbackChain::new(p.clone(), vec![], RetryPolicy::default());
    assert_eq!(run(&chain).await[0].as_ref().unwrap(), &text("ok"));
    let calls = p.calls();
    assert_eq!(calls[1] - calls[0], Duration::from_millis(500));
    assert_eq!(
        calls[2] - calls[1],
        Duration::from_millis(1000),
        "the backoff doubles"
    );

    let bad = Scripted::new("p", vec![(vec![], Some(http(400, None)))]);
    let chain = FallbackChain::new(bad.clone(), vec![], RetryPolicy::default());
    let out = run(&chain).await;
    assert!(matches!(
        out[0],
        Err(ProviderError::Http { status: 400, .. })
    ));
    assert_eq!(bad.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn spent_retries_fall_back_to_the_next_provider() {
    let primary = Scripted::new("primary", vec![(vec![], Some(http(503, None))); 3]);
    let backup = Scripted::new("backup", vec![(vec![text("from backup")], None)]);
    let chain = FallbackChain::new(
        primary.clone(),
        vec![backup.clone()],
        RetryPolicy::default(),
    );
    let out = run(&chain).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].as_ref().unwrap(), &text("from backup"));
    assert_eq!(primary.calls().len(), 3, "one try and two retries");
    assert_eq!(backup.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn output_already_streamed_is_never_repeated() {
    let p = Scripted::new("p", vec![(vec![text("half")], Some(http(500, None)))]);
    let backup = Scripted::new("backup", vec![]);
    let chain = FallbackChain::new(p.clone(), vec![backup.clone()], RetryPolicy::default());
    let out = run(&chain).await;
    assert_eq!(out[0].as_ref().unwrap(), &text("half"));
    assert!(matches!(
        out[1],
        Err(ProviderError::Http { status: 500, .. })
    ));
    assert_eq!(p.calls().len(), 1);
    assert!(backup.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_last_error_is_reported_when_every_provider_fails() {
    let a = Scripted::new("a", vec![(vec![], Some(http(401, None)))]);
    let b = Scripted::new("b", vec![(vec![], Some(http(403, None)))]);
    let chain = FallbackChain::new(a, vec![b], RetryPolicy::default());
    let out = run(&chain).await;
    assert_eq!(out.len(), 1);
    assert!(matches!(
        out[0],
        Err(ProviderError::Http { status: 403, .. })
    ));
}
