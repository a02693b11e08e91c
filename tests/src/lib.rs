//! Test support for Switchboard's end-to-end tests.
//!
//! - [`fake_openai`]: a fake OpenAI-compatible Chat Completions server that
//!   speaks the real SSE wire format, records what it was asked, and can be
//!   told to fail, hang or hold its answer, or to call a tool offered
//!   alone; with an `/embeddings` endpoint whose vectors a test chooses;
//!   it records each request's `traceparent` and the usage it reported;
//! - [`fake_discord`]: a fake Discord REST API and gateway WebSocket;
//! - [`fake_slack`]: a fake Slack Web API and Socket Mode WebSocket;
//! - [`fake_anthropic`]: a fake Anthropic Messages API streaming its real
//!   SSE event sequence;
//! - [`gateway`]: starts the real `switchboard` binary on a free port with a
//!   config pointing at the fakes, and drives it over HTTP; finds (and
//!   builds when stale) the `switchboard-tray` binary too;
//! - [`fake_otlp`]: a fake OpenTelemetry collector taking OTLP/HTTP
//!   protobuf exports of spans, which a test waits on;
//! - [`prom`]: a strict reader of the Prometheus text format, for scrapes
//!   of `/metrics`;
//! - [`sse`]: reads an SSE body the way an OpenAI client does;
//! - [`browser`]: a headless Chromium driven over WebDriver, for the
//!   control web UI, with helpers that find things as a person does;
//! - [`postgres`]: a real PostgreSQL server (initdb as a non-root user on a
//!   free port), with a fresh database per test.
//!
//! The tests themselves live in `tests/tests/`.

pub mod browser;
pub mod fake_anthropic;
pub mod fake_discord;
pub mod fake_openai;
pub mod fake_otlp;
pub mod fake_slack;
pub mod fake_telegram;
pub mod gateway;
pub mod postgres;
pub mod prom;
pub mod sse;

/// Wait until `check` holds, checking again whenever `changed` is
/// notified; after `limit`, panic naming `what` and what `detail` says.
pub async fn wait_on<T>(
    changed: &tokio::sync::Notify,
    limit: std::time::Duration,
    what: &str,
    check: impl Fn() -> Option<T>,
    detail: impl Fn() -> String,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let notified = changed.notified();
        if let Some(v) = check() {
            return v;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            if let Some(v) = check() {
                return v;
            }
            panic!("timed out waiting for {what}; {}", detail());
        }
    }
}
