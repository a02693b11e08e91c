//! What HTTP model providers share: settings, the client, error mapping, and
//! running a streamed request as a task tied to its answer stream.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::{ProviderError, ProviderEvent, SseParser};

/// How to reach one model endpoint. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct ProviderSettings {
    /// The provider's name in the config, used in messages.
    pub name: String,
    /// The base URL, e.g. `http://127.0.0.1:11434/v1` (OpenAI-compatible)
    /// or `https://api.anthropic.com` (Anthropic).
    pub base_url: String,
    /// The API key, if the endpoint needs one.
    pub api_key: Option<String>,
    /// The model to ask.
    pub model: String,
    /// How long to wait for the connection and for each piece of the answer.
    pub idle_timeout: Duration,
    /// Optional sampling temperature.
    pub temperature: Option<f32>,
    /// Optional cap on answer tokens.
    pub max_tokens: Option<u32>,
    /// The W3C `traceparent` of the current span, sent with each request
    /// so the provider's side of a call joins the turn's trace. Default
    /// none: no header.
    pub traceparent: Option<TraceParent>,
}

/// Gives the W3C `traceparent` header of the span current where it is
/// called, if traces are exported.
pub type TraceParent = std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// Where a provider's events go while its request runs.
pub(crate) type EventTx = mpsc::Sender<Result<ProviderEvent, ProviderError>>;

/// An HTTP client bound to one provider's settings.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    pub(crate) settings: ProviderSettings,
    pub(crate) client: reqwest::Client,
}

impl HttpClient {
    pub(crate) fn new(settings: ProviderSettings) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.idle_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { settings, client }
    }

    /// `base_url` joined with `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.settings.base_url.trim_end_matches('/'))
    }

    /// The error for a request that passed the idle timeout.
    pub(crate) fn timeout(&self) -> ProviderError {
        ProviderError::Timeout {
            provider: self.settings.name.clone(),
            seconds: self.settings.idle_timeout.as_secs(),
        }
    }

    pub(crate) fn transport_error(&self, e: &reqwest::Error) -> ProviderError {
        if e.is_timeout() {
            return self.timeout();
        }
        ProviderError::Unreachable {
            provider: self.settings.name.clone(),
            url: super::error::shown_url(&self.settings.base_url),
            reason: root_cause(e),
        }
    }

    /// An error answer: its status, `Retry-After`, and the provider's
    /// message (`error.message` in both OpenAI's and Anthropic's shapes).
    pub(crate) async fn http_error(&self, resp: reqwest::Response) -> ProviderError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.get("error"))
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| body.chars().take(300).collect());
        ProviderError::Http {
            provider: self.settings.name.clone(),
            status,
            message,
            retry_after,
        }
    }

    pub(crate) fn protocol(&self, detail: String) -> ProviderError {
        ProviderError::Protocol {
            provider: self.settings.name.clone(),
            detail,
        }
    }

    /// Send `req`, waiting at most the idle timeout for the answer's head;
    /// an error status becomes [`ProviderError::Http`].
    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let req = match self.settings.traceparent.as_ref().and_then(|t| t()) {
            Some(tp) => req.header("traceparent", tp),
            None => req,
        };
        let resp = tokio::time::timeout(self.settings.idle_timeout, req.send())
            .await
            .map_err(|_| self.timeout())?
            .map_err(|e| self.transport_error(&e))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.http_error(resp).await)
        }
    }

    /// The `data` of each event of a `text/event-stream` answer, each
    /// awaited within the idle timeout.
    pub(crate) fn events(&self, resp: reqwest::Response) -> EventStream<'_> {
        EventStream {
            http: self,
            body: resp.bytes_stream().boxed(),
            parser: SseParser::new(),
            ready: std::collections::VecDeque::new(),
            ended: false,
        }
    }
}

/// Server-sent events of one answer, read as they arrive.
pub(crate) struct EventStream<'a> {
    http: &'a HttpClient,
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
    ready: std::collections::VecDeque<String>,
    ended: bool,
}

impl EventStream<'_> {
    /// The next event's `data`, or `None` when the body ended.
    pub(crate) async fn next(&mut self) -> Result<Option<String>, ProviderError> {
        loop {
            if let Some(data) = self.ready.pop_front() {
                return Ok(Some(data));
            }
            if self.ended {
                return Ok(None);
            }
            let piece = tokio::time::timeout(self.http.settings.idle_timeout, self.body.next())
                .await
                .map_err(|_| self.http.timeout())?;
            match piece {
                Some(Ok(bytes)) => {
                    let datas = self
                        .parser
                        .feed(&bytes)
                        .map_err(|e| self.http.protocol(e))?;
                    self.ready.extend(datas);
                }
                Some(Err(e)) => return Err(self.http.transport_error(&e)),
                None => {
                    self.ended = true;
                    self.ready.extend(self.parser.finish());
                }
            }
        }
    }
}

/// Whether a response is an event stream.
pub(crate) fn is_event_stream(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Run `work` as a task feeding the returned stream; an error it returns
/// becomes the stream's last item. Dropping the stream (a cancelled turn)
/// aborts the task, and with it the request.
pub(crate) fn spawn_events<F, Fut>(
    work: F,
) -> BoxStream<'static, Result<ProviderEvent, ProviderError>>
where
    F: FnOnce(EventTx) -> Fut,
    Fut: Future<Output = Result<(), ProviderError>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let fut = work(tx.clone());
    // In the caller's span: the request is part of its model call.
    let task = AbortOnDrop(tokio::spawn(
        async move {
            if let Err(e) = fut.await {
                let _ = tx.send(Err(e)).await;
            }
        }
        .in_current_span(),
    ));
    futures::stream::unfold((rx, task), |(mut rx, task)| async move {
        rx.recv().await.map(|e| (e, (rx, task)))
    })
    .boxed()
}

/// Aborts a task when dropped: ties a spawned producer to the stream that
/// reads it.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The innermost cause of a transport error, which is the readable one
/// ("Connection refused (os error 111)").
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// How long a start-up probe waits for the provider.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A probe's error, with the probe's own timeout in a timeout's message.
pub(crate) fn probe_error(e: ProviderError) -> ProviderError {
    match e {
        ProviderError::Timeout { provider, .. } => ProviderError::Timeout {
            provider,
            seconds: PROBE_TIMEOUT.as_secs(),
        },
        e => e,
    }
}
