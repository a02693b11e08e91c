//! A fake OpenTelemetry collector speaking OTLP/HTTP with protobuf bodies
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>): `POST
//! /v1/traces` with an `ExportTraceServiceRequest`, decoded with the
//! `opentelemetry-proto` messages, answered `200` with an empty
//! `ExportTraceServiceResponse`. A body that is not protobuf (or not
//! declared as such) is refused with `400` and counted. It keeps the spans
//! it received, flattened, groups them into [`Trace`]s for a test to wait
//! on, and can be told to answer `503` instead.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use tokio::sync::Notify;

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// An array, a map or bytes, as debug text.
    Other(String),
}

/// One span the collector received.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// The span id, 16 lowercase hex digits.
    pub span_id: String,
    /// The parent's span id; empty for a root.
    pub parent_span_id: String,
    /// Its name.
    pub name: String,
    /// Its attributes, in the order sent.
    pub attributes: Vec<(String, AttrValue)>,
    /// The `service.name` of its resource, when given.
    pub service: Option<String>,
    /// Start and end, nanoseconds since the epoch.
    pub start_end_ns: (u64, u64),
}

impl Span {
    /// Attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Attribute `key` when it is a string.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attr(key)? {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Attribute `key` when it is an integer.
    pub fn attr_int(&self, key: &str) -> Option<i64> {
        match self.attr(key)? {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Whether it has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }
}

/// The spans of one trace, found by one of its spans.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The span it was found by.
    pub root: Span,
    /// Every span of the trace received, `root` among them.
    pub spans: Vec<Span>,
}

impl Trace {
    /// Its spans named `name`.
    pub fn named(&self, name: &str) -> Vec<&Span> {
        self.spans.iter().filter(|s| s.name == name).collect()
    }

    /// Its spans whose names start with `prefix`.
    pub fn starting(&self, prefix: &str) -> Vec<&Span> {
        self.spans
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .collect()
    }

    /// Its only span named `name` (panics unless there is exactly one).
    pub fn one(&self, name: &str) -> &Span {
        let found = self.named(name);
        assert_eq!(found.len(), 1, "one `{name}` span: {:#?}", self.spans);
        found[0]
    }
}

/// One [`Trace`] per span of `spans` named `root`, with the spans of its
/// trace.
pub fn traces(spans: &[Span], root: &str) -> Vec<Trace> {
    spans
        .iter()
        .filter(|s| s.name == root)
        .map(|r| Trace {
            root: r.clone(),
            spans: spans
                .iter()
                .filter(|s| s.trace_id == r.trace_id)
                .cloned()
                .collect(),
        })
        .collect()
}

#[derive(Default)]
struct Inner {
    spans: Vec<Span>,
    /// Requests answered 200.
    accepted: usize,
    /// Requests refused with 400, and why.
    rejected: Vec<String>,
    /// Answer this status instead of accepting.
    failing: Option<u16>,
}

struct Shared {
    inner: Mutex<Inner>,
    changed: Notify,
}

/// A running fake collector.
pub struct FakeOtlp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOtlp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An OTLP endpoint nobody listens on (a free loopback port): exports to
/// it are refused at connect.
pub fn unreachable_endpoint() -> String {
    format!("http://127.0.0.1:{}", crate::gateway::free_port())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value_of(v: Option<&AnyValue>) -> AttrValue {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => AttrValue::Str(s.clone()),
        Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(*d),
        Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
        other => AttrValue::Other(format!("{other:?}")),
    }
}

fn attributes(kvs: &[KeyValue]) -> Vec<(String, AttrValue)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value_of(kv.value.as_ref())))
        .collect()
}

/// The spans of a request, flattened.
fn spans_of(request: ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in request.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .and_then(|attrs| {
                attrs.into_iter().find_map(|(k, v)| match v {
                    AttrValue::Str(s) if k == "service.name" => Some(s),
                    _ => None,
                })
            });
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(Span {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name.clone(),
                    attributes: attributes(&s.attributes),
                    service: service.clone(),
                    start_end_ns: (s.start_time_unix_nano, s.end_time_unix_nano),
                });
            }
        }
    }
    out
}

fn refuse(shared: &Shared, why: String) -> Response {
    shared.inner.lock().unwrap().rejected.push(why.clone());
    shared.changed.notify_waiters();
    (StatusCode::BAD_REQUEST, why).into_response()
}

async fn export(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(code) = shared.inner.lock().unwrap().failing {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (status, "the fake collector was told to fail").into_response();
    }
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.split(';').next().map(str::trim) != Some("application/x-protobuf") {
        return refuse(&shared, format!("content-type {ctype:?} is not protobuf"));
    }
    if let Some(enc) = headers.get("content-encoding") {
        return refuse(
            &shared,
            format!("content-encoding {enc:?} is not supported"),
        );
    }
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => return refuse(&shared, format!("not an ExportTraceServiceRequest: {e}")),
    };
    let spans = spans_of(request);
    {
        let mut inner = shared.inner.lock().unwrap();
        inner.accepted += 1;
        inner.spans.extend(spans);
    }
    shared.changed.notify_waiters();
    (
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

impl FakeOtlp {
    /// Start on a free loopback port.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
        });
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake collector");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// The endpoint to configure (`http://127.0.0.1:<port>`; spans go to
    /// `/v1/traces` under it).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.shared.inner.lock().unwrap().spans.clone()
    }

    /// The spans of trace `trace_id` received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<Span> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }

    /// Export requests accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.inner.lock().unwrap().accepted
    }

    /// Why each refused request was refused.
    pub fn rejected(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().rejected.clone()
    }

    /// Answer every export with `status` (e.g. 503) while `Some`; accept
    /// again with `None`.
    pub fn fail_with(&self, status: Option<u16>) {
        self.shared.inner.lock().unwrap().failing = status;
    }

    /// The first trace with a span named `root` for which `check` holds,
    /// waiting for it as [`FakeOtlp::wait_for`] does.
    pub async fn wait_trace(
        &self,
        limit: Duration,
        what: &str,
        root: &str,
        check: impl Fn(&Trace) -> bool,
    ) -> Trace {
        self.wait_for(limit, what, |spans| {
            traces(spans, root).into_iter().find(|t| check(t))
        })
        .await
    }

    /// Wait until `check` holds for the spans received (checked again on
    /// every export), or panic after `limit` naming `what`.
    pub async fn wait_for<T>(
        &self,
        limit: Duration,
        what: &str,
        check: impl Fn(&[Span]) -> Option<T>,
    ) -> T {
        crate::wait_on(
            &self.shared.changed,
            limit,
            what,
            || check(&self.spans()),
            || {
                let spans = self.spans();
                let names: Vec<(&str, &str, &str, &str)> = spans
                    .iter()
                    .map(|s| {
                        (
                            s.name.as_str(),
                            s.trace_id.as_str(),
                            s.span_id.as_str(),
                            s.parent_span_id.as_str(),
                        )
                    })
                    .collect();
                format!(
                    "{} export(s) accepted, refused: {:?}; spans (name, trace, span, parent): {names:#?}",
                    self.accepted(),
                    self.rejected()
                )
            },
        )
        .await
    }
}
