//! `[observability]`: metrics, traces and the log's format.

use serde::{Deserialize, Serialize};

/// `[observability]`
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObservabilityConfig {
    /// `"text"` (default): one readable line per event; `"json"`: one JSON
    /// object per line, with the fields of the spans it was logged in
    /// (the message's `trace_id` among them).
    pub log_format: LogFormat,
    /// Serve `GET /metrics` (Prometheus text format; OpenMetrics when the
    /// scraper asks for it). Default true.
    pub metrics: bool,
    /// A separate token Prometheus may scrape `/metrics` with (the control
    /// token keeps working there). May be `"secret:NAME"`. Default: none,
    /// the control token only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<String>,
    /// A separate listener for `/metrics` alone, e.g. `"127.0.0.1:9464"`,
    /// for a scraper that should not reach the control API. It asks for
    /// `metrics_token` when one is set, and for nothing otherwise: bind it
    /// where only the scraper can reach it. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_bind: Option<String>,
    /// What span attributes say of a session key: `"hashed"` (default: a
    /// keyed hash, the same for one session within a run, which tells
    /// sessions apart without naming the person), `"plain"` (the key
    /// itself, which holds the sender's platform id) or `"none"`.
    pub span_session_keys: SpanSessionKeys,
    /// `[observability.otlp]`: where traces go. Default: nowhere, unless
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set.
    pub otlp: OtlpConfig,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            metrics: true,
            metrics_token: None,
            metrics_bind: None,
            span_session_keys: SpanSessionKeys::Hashed,
            otlp: OtlpConfig::default(),
        }
    }
}

impl std::fmt::Debug for ObservabilityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservabilityConfig")
            .field("log_format", &self.log_format)
            .field("metrics", &self.metrics)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("metrics_bind", &self.metrics_bind)
            .field("span_session_keys", &self.span_session_keys)
            .field("otlp", &self.otlp)
            .finish()
    }
}

/// The log's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What span attributes say of a session key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanSessionKeys {
    /// A keyed hash of the key.
    #[default]
    Hashed,
    /// The key itself.
    Plain,
    /// Nothing.
    None,
}

/// `[observability.otlp]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP base URL, e.g. `"http://127.0.0.1:4318"`
    /// (spans go to `<endpoint>/v1/traces` as protobuf). Default: the
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variable (used as it is) or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; none: traces are not exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The `service.name` of the spans. Default `"switchboard"`, or
    /// `OTEL_SERVICE_NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Seconds one export may take before it is given up (the spans of
    /// that batch are dropped; turns never wait for exports). Default 10.
    pub timeout_secs: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: None,
            timeout_secs: 10,
        }
    }
}

impl OtlpConfig {
    /// Where spans are posted: the configured endpoint with `/v1/traces`
    /// appended, else the environment's, else none.
    pub fn traces_url(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        let base = |b: &str| {
            let b = b.trim().trim_end_matches('/');
            if b.ends_with("/v1/traces") {
                b.to_string()
            } else {
                format!("{b}/v1/traces")
            }
        };
        if let Some(e) = self.endpoint.as_deref().filter(|e| !e.trim().is_empty()) {
            return Some(base(e));
        }
        if let Some(e) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").filter(|e| !e.trim().is_empty())
        {
            return Some(e.trim().to_string());
        }
        env("OTEL_EXPORTER_OTLP_ENDPOINT")
            .filter(|e| !e.trim().is_empty())
            .map(|e| base(&e))
    }

    /// The service name: configured, else `OTEL_SERVICE_NAME`, else
    /// `switchboard`.
    pub fn service(&self, env: impl Fn(&str) -> Option<String>) -> String {
        self.service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "switchboard".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_url_comes_from_the_config_then_the_environment() {
        let none = |_: &str| None;
        let mut c = OtlpConfig::default();
        assert_eq!(c.traces_url(none), None);
        c.endpoint = Some("http://127.0.0.1:4318/".into());
        assert_eq!(
            c.traces_url(none).as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c:4318".into());
        assert_eq!(
            c.traces_url(env).as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        c.endpoint = None;
        assert_eq!(
            c.traces_url(env).as_deref(),
            Some("http://c:4318/v1/traces")
        );
        let exact =
            |k: &str| (k == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").then(|| "http://c/x".into());
        assert_eq!(c.traces_url(exact).as_deref(), Some("http://c/x"));
    }
}
