//! Telemetry: what an operator graphs, follows and pays for.
//!
//! - [`metrics`]: one `prometheus-client` registry behind `GET /metrics`;
//! - traces: `tracing` spans named after the steps of a message's path
//!   (`message` → `admit`, `queue`, `turn` → `chat <model>`,
//!   `execute_tool <tool>`; `deliver`), sent over OTLP by [`otlp`] when an
//!   endpoint is configured, and joined by the model provider
//!   (`traceparent`) and sandboxed commands (`TRACEPARENT`);
//! - [`logging`]: the log's format, and the trace id on every line logged
//!   inside a message's span;
//! - [`cost`]: provider price tables turning usage into money;
//! - [`model`]: the wrapper that measures each model request.
//!
//! It knows nothing of channels or sessions beyond names: callers hand it
//! labels, never message text or user ids.

pub mod cost;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod otlp;
pub mod turn;

use std::fmt::Write as _;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use opentelemetry::trace::TraceContextExt as _;
use rand::RngCore as _;
use sha2::Sha256;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::{ObservabilityConfig, SpanSessionKeys};
pub use metrics::Metrics;

/// The telemetry of one gateway: its metrics and how spans are labelled.
#[derive(Debug)]
pub struct Telemetry {
    /// The metrics.
    pub metrics: Metrics,
    session_keys: SpanSessionKeys,
    /// Session-key hashes' HMAC, keyed once with a key random per run
    /// (each hash starts from a copy).
    hasher: Hmac<Sha256>,
    /// Whether spans are exported (then trace ids are OpenTelemetry's).
    exporting: bool,
}

impl Telemetry {
    /// Telemetry as `config` asks; `exporting` says whether an OTLP
    /// exporter is installed.
    pub fn new(config: &ObservabilityConfig, exporting: bool) -> Self {
        let mut hash_key = [0u8; 32];
        rand::rng().fill_bytes(&mut hash_key);
        Self {
            metrics: Metrics::new(),
            session_keys: config.span_session_keys,
            hasher: Hmac::<Sha256>::new_from_slice(&hash_key).expect("any key length"),
            exporting,
        }
    }

    /// Telemetry for tests and tools: metrics, no export.
    pub fn disabled() -> Arc<Self> {
        Arc::new(Self::new(&ObservabilityConfig::default(), false))
    }

    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// What a span attribute says of session `key`, per
    /// `observability.span_session_keys`.
    pub fn session_attr(&self, key: &str) -> Option<String> {
        match self.session_keys {
            SpanSessionKeys::Plain => Some(key.to_string()),
            SpanSessionKeys::None => None,
            SpanSessionKeys::Hashed => {
                let mut mac = self.hasher.clone();
                mac.update(key.as_bytes());
                let digest = mac.finalize().into_bytes();
                let mut out = String::with_capacity(16);
                for b in &digest[..8] {
                    let _ = write!(out, "{b:02x}");
                }
                Some(out)
            }
        }
    }

    /// The root span of one inbound message (no parent, whatever span is
    /// current), its `trace_id` field filled so every line logged inside
    /// it carries the trace.
    pub fn message_span(&self, channel: &str, account: &str) -> tracing::Span {
        let span = tracing::info_span!(
            parent: None,
            "message",
            channel = %channel,
            account = %account,
            session = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        let id = trace_id(&span).unwrap_or_else(random_trace_id);
        span.record("trace_id", id.as_str());
        span
    }

    /// Record session `key` on `span` (per the setting).
    pub fn record_session(&self, span: &tracing::Span, key: &str) {
        if let Some(v) = self.session_attr(key) {
            span.record("session", v.as_str());
        }
    }

    /// A function giving the `traceparent` of the span current where it is
    /// called, when spans are exported.
    pub fn traceparent_fn(&self) -> Option<switchboard_agents::TraceParent> {
        self.exporting
            .then(|| Arc::new(|| traceparent(&tracing::Span::current())) as _)
    }
}

/// The OpenTelemetry trace id of `span`, when spans are exported.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The W3C `traceparent` of `span`, when spans are exported.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let span_ref = cx.span();
    let sc = span_ref.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// A trace id of our own, for the log when spans are not exported.
fn random_trace_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let mut out = String::with_capacity(32);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_are_hashed_by_default_and_stable_within_a_run() {
        let t = Telemetry::new(&ObservabilityConfig::default(), false);
        let a = t.session_attr("agent:main:telegram:dm:42").unwrap();
        assert_eq!(a.len(), 16);
        assert!(!a.contains("42") || a != "agent:main:telegram:dm:42");
        assert_eq!(
            t.session_attr("agent:main:telegram:dm:42").as_deref(),
            Some(a.as_str())
        );
        assert_ne!(t.session_attr("agent:main:telegram:dm:43").unwrap(), a);
        // Another run, another key: hashes cannot be compared across runs.
        let other = Telemetry::new(&ObservabilityConfig::default(), false);
        assert_ne!(other.session_attr("agent:main:telegram:dm:42").unwrap(), a);
        let plain = Telemetry::new(
            &ObservabilityConfig {
                span_session_keys: SpanSessionKeys::Plain,
                ..ObservabilityConfig::default()
            },
            false,
        );
        assert_eq!(
            plain.session_attr("agent:main:telegram:dm:42").as_deref(),
            Some("agent:main:telegram:dm:42")
        );
    }
}
