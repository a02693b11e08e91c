//! Spans out over OTLP/HTTP (protobuf): the tracer provider behind the
//! `tracing-opentelemetry` layer, its HTTP client, and what the last export
//! did (an unreachable collector is a degraded component, never an error a
//! user sees).
//!
//! Spans are exported in batches from the SDK's own thread; a full queue
//! drops spans rather than wait, so a turn never waits for the collector.

use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use tokio::sync::watch;

/// What the last export did: `None` when it worked (or none ran yet),
/// else why it failed.
pub type ExportState = watch::Receiver<Option<String>>;

/// How long spans wait to be sent with others.
const BATCH_DELAY: Duration = Duration::from_millis(500);
/// Spans held for export at most; more are dropped.
const MAX_QUEUE: usize = 4096;

/// A tracer provider exporting to `url` (the full `/v1/traces` URL) as
/// `service`, its HTTP requests run on `runtime`; and the state of its
/// exports.
pub fn provider(
    url: &str,
    service: &str,
    timeout: Duration,
    runtime: tokio::runtime::Handle,
) -> Result<(SdkTracerProvider, ExportState), String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the OTLP client: {e}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OtlpClient { client, runtime })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(timeout)
        .build()
        .map_err(|e| format!("observability.otlp.endpoint {url}: {e}"))?;
    let (tx, rx) = watch::channel(None);
    let processor = BatchSpanProcessor::builder(Watched {
        inner: exporter,
        state: tx,
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_scheduled_delay(BATCH_DELAY)
            .with_max_queue_size(MAX_QUEUE)
            .build(),
    )
    .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build();
    Ok((provider, rx))
}

/// The exporter's HTTP client: the gateway's reqwest, its requests run on
/// the gateway's runtime (the SDK's export thread has none).
#[derive(Debug)]
struct OtlpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<bytes::Bytes>,
    ) -> Result<opentelemetry_http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let run = async move {
            let mut req = client.request(parts.method, parts.uri.to_string());
            for (name, value) in &parts.headers {
                req = req.header(name, value);
            }
            let resp = req.body(body).send().await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes))
        };
        let (status, headers, bytes) = self.runtime.spawn(run).await??;
        let mut out = opentelemetry_http::Response::new(bytes);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

/// An exporter that says how each export went.
#[derive(Debug)]
struct Watched<E> {
    inner: E,
    state: watch::Sender<Option<String>>,
}

impl<E: SpanExporter> SpanExporter for Watched<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        let now = result.as_ref().err().map(|e| e.to_string());
        self.state.send_if_modified(|s| {
            let changed = *s != now;
            *s = now;
            changed
        });
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
