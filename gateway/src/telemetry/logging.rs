//! The process's log: stderr as text or JSON, the control UI's Logs page,
//! and, when an OTLP endpoint is configured for `serve`, spans exported
//! through `tracing-opentelemetry`.
//!
//! A process has one `tracing` subscriber, set once at start; what it
//! installed that must be found again later (the tracer provider, to flush
//! at exit; the state of its exports, for health) is kept here.
//!
//! Message text and model output are never logged at the default level:
//! the gateway's log lines name channels, sessions and ids, not content.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::otlp::{self, ExportState};
use crate::config::{LogFormat, ObservabilityConfig};

/// What was installed with the subscriber.
struct Installed {
    provider: Option<SdkTracerProvider>,
    state: Option<ExportState>,
    traces_url: Option<String>,
    /// Whether the gateway's stderr is JSON lines.
    json: bool,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Set up the log (and, when `export` and an endpoint is configured, the
/// export of spans), behind the one filter `SWITCHBOARD_LOG` (else
/// `RUST_LOG`, else `info,sqlx=warn`). Spans' HTTP requests run on
/// `runtime`. A second call does nothing.
pub fn init(config: &ObservabilityConfig, export: bool, runtime: tokio::runtime::Handle) {
    let filter = std::env::var("SWITCHBOARD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    crate::ui::logs::tail().set_filter(&filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    let env = |k: &str| std::env::var(k).ok();
    let traces_url = export.then(|| config.otlp.traces_url(env)).flatten();
    let mut failed = None;
    let exported = traces_url.as_deref().and_then(|url| {
        match otlp::provider(
            url,
            &config.otlp.service(env),
            Duration::from_secs(config.otlp.timeout_secs.max(1)),
            runtime,
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                failed = Some(e);
                None
            }
        }
    });
    // Our spans only: log events stay in the log (their fields may name a
    // session or a sender, which spans name only as the setting says), and
    // libraries' spans are not ours to export.
    let otel = exported.as_ref().map(|(provider, _)| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("switchboard"))
            .with_threads(false)
            .with_location(false)
            .with_tracked_inactivity(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() && meta.target().starts_with("switchboard")
            }))
    });
    let _ = tracing_subscriber::registry()
        .with(otel)
        .with(tracing_subscriber::EnvFilter::new(filter))
        .with(stderr)
        .with(crate::ui::logs::layer())
        .try_init();
    if let Some(e) = failed {
        tracing::warn!(error = %e, "traces are not exported");
    }
    let (provider, state) = match exported {
        Some((p, s)) => (Some(p), Some(s)),
        None => (None, None),
    };
    let _ = INSTALLED.set(Installed {
        provider,
        state,
        traces_url,
        json: export && config.log_format == LogFormat::Json,
    });
}

/// Tell the person at the terminal `text` (a first start's new key, a
/// long upgrade's progress): as it is, or, when the gateway logs JSON, as
/// one JSON line like the log's, so that a collector reading stderr can
/// parse every line.
#[allow(clippy::print_stderr)]
pub fn say(text: &str) {
    if INSTALLED.get().is_some_and(|i| i.json) {
        let line = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "INFO",
            "fields": { "message": text },
        });
        eprintln!("{line}");
    } else {
        eprintln!("{text}");
    }
}

/// Whether spans are exported.
pub fn exporting() -> bool {
    INSTALLED.get().is_some_and(|i| i.provider.is_some())
}

/// Where spans go, when they are exported.
pub fn traces_url() -> Option<&'static str> {
    INSTALLED
        .get()
        .filter(|i| i.provider.is_some())
        .and_then(|i| i.traces_url.as_deref())
}

/// The state of span exports, when spans are exported.
pub fn export_state() -> Option<ExportState> {
    INSTALLED.get().and_then(|i| i.state.clone())
}

/// Send the spans still held (at most a few seconds) and stop exporting.
/// Called once, at exit, from outside the runtime's tasks.
pub fn shutdown() {
    if let Some(p) = INSTALLED.get().and_then(|i| i.provider.as_ref()) {
        if let Err(e) = p.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::debug!(error = %e, "the last spans could not be sent");
        }
    }
}
