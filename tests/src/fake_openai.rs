//! A fake OpenAI-compatible server: `POST /v1/chat/completions` (streaming
//! SSE or one JSON body), `POST /v1/embeddings` and `GET /v1/models`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

/// How the fake answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behavior {
    /// Answer `echo: <what the last user message says>` (see [`said`]),
    /// streamed a few characters a chunk.
    Echo,
    /// Answer with this HTTP status and OpenAI error message.
    Fail(u16, String),
    /// Start streaming, then wait until [`FakeOpenAi::release`] before the
    /// rest of the answer.
    Hold,
    /// Fail the next request like [`Behavior::Fail`], then echo.
    FailOnce(u16, String),
    /// Echo, waiting this many milliseconds before each chunk (a model that
    /// streams slowly, so channels show the answer growing).
    Drip(u64),
    /// Echo and call tools at once, but hold answers to a tool's result
    /// before their first text until [`FakeOpenAi::release`] (a turn
    /// stopped after its tool ran).
    HoldAfterTools,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The JSON body.
    pub body: Value,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The W3C `traceparent` header, if any.
    pub traceparent: Option<String>,
    /// The usage the fake reported in its answer: (prompt tokens,
    /// completion tokens, cached prompt tokens); `None` when it reported
    /// none (a failure, or a stream that did not ask for usage).
    pub usage: Option<(u64, u64, u64)>,
}

impl Seen {
    /// The names of the tools offered.
    pub fn tools(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `messages` as (role, content) pairs.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.body["messages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        (
                            m["role"].as_str().unwrap_or("").to_string(),
                            m["content"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

struct Shared {
    behavior: Mutex<Behavior>,
    seen: Mutex<Vec<Seen>>,
    arrivals: mpsc::UnboundedSender<Seen>,
    released: watch::Sender<bool>,
    /// Tools called when offered alone: (tool, arguments).
    alone: Mutex<Vec<(String, String)>>,
    /// Embedding rules: (word, vector).
    vectors: Mutex<Vec<(String, Vec<f32>)>>,
    /// Embeddings requests so far.
    embedded: Mutex<Vec<Seen>>,
    /// Whether it obeys `use tool …` written in a tool's result (a model
    /// that falls for a prompt injection).
    gullible: std::sync::atomic::AtomicBool,
    /// The only API key accepted, once set: any other is answered 401 as
    /// OpenAI answers it.
    key: Mutex<Option<String>>,
}

/// OpenAI's answer to a wrong key, when [`FakeOpenAi::require_key`] set one.
fn refused(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let wanted = shared.key.lock().unwrap().clone()?;
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (given != Some(wanted.as_str())).then(|| {
        (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": {
                "message": "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key" } })),
        )
            .into_response()
    })
}

/// The length of the fake's embeddings. The last axis is where inputs no
/// rule of [`FakeOpenAi::embed`] matches point: unrelated to the others.
pub const EMBEDDING_DIMENSIONS: usize = 4;

/// A running fake.
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    arrivals: tokio::sync::Mutex<mpsc::UnboundedReceiver<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The answer the fake gives to `text` in [`Behavior::Echo`].
pub fn echo_answer(text: &str) -> String {
    format!("echo: {text}")
}

/// The answer the fake gives after a tool returned `output`.
pub fn tool_answer(output: &str) -> String {
    format!("tool said: {output}")
}

/// In [`Behavior::Echo`], a user message `use tool <name>` makes the fake
/// call that tool (when offered) with `{"why": "the test"}`, or with the
/// JSON object written after the name (`use tool exec {"command": "ls"}`);
/// the arguments arrive split across chunks. The tool's result is then
/// answered with [`tool_answer`].
fn wanted_tool(body: &Value) -> Option<(String, String)> {
    let last = body["messages"].as_array()?.last()?;
    let content = said(last["content"].as_str()?);
    let rest = content.strip_prefix("use tool ")?.trim();
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n.to_string(), a.trim().to_string()),
        None => (rest.to_string(), r#"{"why": "the test"}"#.to_string()),
    };
    let offered = body["tools"]
        .as_array()?
        .iter()
        .any(|t| t["function"]["name"] == name.as_str());
    (last["role"] == "user" && offered).then_some((name, args))
}

/// What a message says: a message the gateway marked as from someone other
/// than the operator (`<untrusted_message …>` with a line of rules) is read
/// for what is inside, as a model reads it; anything else as it is.
pub fn said(content: &str) -> String {
    let close = "\n</untrusted_message>";
    if !content.starts_with("<untrusted_message ") {
        return content.to_string();
    }
    let Some(end) = content.find(close) else {
        return content.to_string();
    };
    let inner = &content[..end];
    let body = inner.splitn(3, '\n').nth(2).unwrap_or("");
    format!("{body}{}", &content[end + close.len()..])
}

/// In gullible mode, the `use tool` line a tool's result holds, when it
/// names another offered tool.
fn injected_tool(body: &Value) -> Option<(String, String)> {
    let messages = body["messages"].as_array()?;
    let last = messages.last()?;
    if last["role"] != "tool" {
        return None;
    }
    let content = last["content"].as_str()?;
    let line = content.lines().find_map(|l| {
        l.find("use tool ")
            .map(|at| l[at + "use tool ".len()..].trim().to_string())
    })?;
    let (name, args) = match line.split_once(char::is_whitespace) {
        Some((n, a)) => (n.to_string(), a.trim().to_string()),
        None => (line.clone(), "{}".to_string()),
    };
    let called = messages
        .iter()
        .rev()
        .find_map(|m| m["tool_calls"].as_array().and_then(|c| c.first()).cloned())?;
    let offered = body["tools"]
        .as_array()?
        .iter()
        .any(|t| t["function"]["name"] == name.as_str());
    (offered && called["function"]["name"] != name.as_str()).then_some((name, args))
}

/// `text` in three pieces (at character boundaries).
fn thirds(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let third = chars.len().div_ceil(3).max(1);
    chars.chunks(third).map(|c| c.iter().collect()).collect()
}

impl FakeOpenAi {
    /// Start on a free loopback port.
    pub async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            behavior: Mutex::new(Behavior::Echo),
            seen: Mutex::new(Vec::new()),
            arrivals: tx,
            released: watch::Sender::new(false),
            alone: Mutex::new(Vec::new()),
            vectors: Mutex::new(Vec::new()),
            embedded: Mutex::new(Vec::new()),
            gullible: false.into(),
            key: Mutex::new(None),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            shared,
            arrivals: tokio::sync::Mutex::new(rx),
            task,
        }
    }

    /// The base URL to configure (`http://127.0.0.1:<port>/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// From now on, obey a `use tool <name> <arguments>` line found in a
    /// tool's result, as a model taken in by a prompt injection does (a
    /// tool other than the one that returned it, when offered).
    pub fn gullible(&self) {
        self.shared
            .gullible
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// From now on, accept only `key` (`Authorization: Bearer <key>`).
    pub fn require_key(&self, key: &str) {
        *self.shared.key.lock().unwrap() = Some(key.to_string());
    }

    /// Change how it answers from now on.
    pub fn set(&self, behavior: Behavior) {
        if matches!(behavior, Behavior::Hold | Behavior::HoldAfterTools) {
            self.shared.released.send_replace(false);
        }
        *self.shared.behavior.lock().unwrap() = behavior;
    }

    /// Let held answers (and later ones) finish.
    pub fn release(&self) {
        self.shared.released.send_replace(true);
    }

    /// From now on, a request that offers `tool` and no other tool (and
    /// does not end with a tool's result) is answered with one call of
    /// `tool` with `arguments` (JSON text): a model that does what a
    /// narrow request asks.
    pub fn call_when_alone(&self, tool: &str, arguments: &str) {
        self.shared
            .alone
            .lock()
            .unwrap()
            .push((tool.to_string(), arguments.to_string()));
    }

    /// `/v1/embeddings` gives an input containing `word` (in any case)
    /// `vector`, padded or cut to [`EMBEDDING_DIMENSIONS`]; the first
    /// matching rule wins. Inputs no rule matches get the last axis.
    pub fn embed(&self, word: &str, vector: &[f32]) {
        let mut v = vector.to_vec();
        v.resize(EMBEDDING_DIMENSIONS, 0.0);
        self.shared
            .vectors
            .lock()
            .unwrap()
            .push((word.to_lowercase(), v));
    }

    /// Every embeddings request so far.
    pub fn embedding_requests(&self) -> Vec<Seen> {
        self.shared.embedded.lock().unwrap().clone()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Wait for the next request to arrive (at most 30 s).
    pub async fn next_request(&self) -> Seen {
        let mut rx = self.arrivals.lock().await;
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the model was not called within 30 s")
            .expect("fake closed")
    }
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(no) = refused(&shared, &headers) {
        return no;
    }
    axum::Json(json!({ "object": "list", "data": [
            { "id": "fake-model", "object": "model", "created": 0, "owned_by": "fake" },
            { "id": "fake-model-large", "object": "model", "created": 0, "owned_by": "fake" }
        ] }))
    .into_response()
}

/// The vector of `text` by the rules of [`FakeOpenAi::embed`].
fn vector_for(shared: &Shared, text: &str) -> Vec<f32> {
    let text = text.to_lowercase();
    shared
        .vectors
        .lock()
        .unwrap()
        .iter()
        .find(|(word, _)| text.contains(word.as_str()))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| {
            let mut v = vec![0.0; EMBEDDING_DIMENSIONS];
            v[EMBEDDING_DIMENSIONS - 1] = 1.0;
            v
        })
}

/// `POST /v1/embeddings` as OpenAI answers it: `input` is a string or an
/// array of them; the vectors come back listed last first, each with its
/// `index` (clients must not rely on the order).
async fn embeddings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let body = body.0;
    shared.embedded.lock().unwrap().push(Seen {
        body: body.clone(),
        authorization: header(&headers, "authorization"),
        traceparent: header(&headers, "traceparent"),
        usage: None,
    });
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": { "message": "'input' must be a string or an array of strings", "type": "invalid_request_error", "code": null } })),
            )
                .into_response();
        }
    };
    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({ "object": "embedding", "index": i, "embedding": vector_for(&shared, text) }))
        .collect();
    data.reverse();
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    }))
    .into_response()
}

/// A call of the tool a request offers alone, if the fake was told to make
/// one (see [`FakeOpenAi::call_when_alone`]).
fn alone_tool(shared: &Shared, body: &Value) -> Option<(String, String)> {
    let last = body["messages"].as_array()?.last()?;
    if last["role"] == "tool" {
        return None;
    }
    let offered = body["tools"].as_array()?;
    let [only] = offered.as_slice() else {
        return None;
    };
    let name = only["function"]["name"].as_str()?;
    shared
        .alone
        .lock()
        .unwrap()
        .iter()
        .find(|(tool, _)| tool == name)
        .cloned()
}

/// The value of header `name`, if present and readable.
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The cached part of `prompt_tokens` the fake reports: a fixed quarter,
/// so cached-token counters have something to count.
pub fn cached_tokens(prompt_tokens: u64) -> u64 {
    prompt_tokens / 4
}

fn last_user(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|a| a.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .map(said)
        .unwrap_or_default()
}

async fn completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    if let Some(no) = refused(&shared, &headers) {
        return no;
    }
    let body = body.0;
    let behavior = {
        let mut b = shared.behavior.lock().unwrap();
        let now = b.clone();
        if let Behavior::FailOnce(status, message) = now {
            *b = Behavior::Echo;
            Behavior::Fail(status, message)
        } else {
            now
        }
    };
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or(Value::Null);
    let answer = if last["role"] == "tool" {
        tool_answer(last["content"].as_str().unwrap_or(""))
    } else {
        echo_answer(&last_user(&body))
    };
    let tool = wanted_tool(&body)
        .or_else(|| alone_tool(&shared, &body))
        .or_else(|| {
            shared
                .gullible
                .load(std::sync::atomic::Ordering::Relaxed)
                .then(|| injected_tool(&body))
                .flatten()
        });
    let prompt_tokens = body["messages"].as_array().map_or(0, Vec::len) as u64 * 10;
    let completion_tokens = answer.split_whitespace().count() as u64;
    let cached = cached_tokens(prompt_tokens);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": { "cached_tokens": cached },
    });
    let streamed = body["stream"] == json!(true);
    let include_usage = body["stream_options"]["include_usage"] == json!(true);
    let reported = match behavior {
        Behavior::Fail(..) => None,
        _ if !streamed || include_usage => Some((prompt_tokens, completion_tokens, cached)),
        _ => None,
    };
    let seen = Seen {
        body: body.clone(),
        authorization: header(&headers, "authorization"),
        traceparent: header(&headers, "traceparent"),
        usage: reported,
    };
    shared.seen.lock().unwrap().push(seen.clone());
    let released = shared.clone();
    let _ = shared.arrivals.send(seen);
    let model = body["model"].as_str().unwrap_or("fake-model").to_string();
    match behavior {
        Behavior::Fail(status, message) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, axum::Json(json!({ "error": { "message": message, "type": "server_error", "code": null } }))).into_response()
        }
        _ if !streamed => axum::Json(json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": answer }, "finish_reason": "stop" }],
            "usage": usage,
        }))
        .into_response(),
        behavior => {
            // Where the answer stops: after its first piece, or (after a
            // tool) before any text.
            let hold_at = if behavior == Behavior::Hold {
                Some(2)
            } else if behavior == Behavior::HoldAfterTools && last["role"] == "tool" {
                Some(1)
            } else {
                None
            };
            let drip = match behavior {
                Behavior::Drip(ms) => Some(std::time::Duration::from_millis(ms)),
                _ => None,
            };
            let chunk = move |delta: Value, finish: Value| {
                format!(
                    "data: {}\n\n",
                    json!({ "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
                )
            };
            let mut parts: Vec<String> = vec![chunk(json!({ "role": "assistant", "content": "" }), Value::Null)];
            if let Some((name, args)) = tool {
                parts.push(chunk(
                    json!({ "tool_calls": [{ "index": 0, "id": "call_1", "type": "function", "function": { "name": name, "arguments": "" } }] }),
                    Value::Null,
                ));
                for piece in thirds(&args) {
                    parts.push(chunk(json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] }), Value::Null));
                }
                parts.push(chunk(json!({}), json!("tool_calls")));
            } else {
                let chars: Vec<char> = answer.chars().collect();
                for piece in chars.chunks(3) {
                    parts.push(chunk(json!({ "content": piece.iter().collect::<String>() }), Value::Null));
                }
                parts.push(chunk(json!({}), json!("stop")));
            }
            if include_usage {
                parts.push(format!(
                    "data: {}\n\n",
                    json!({ "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake", "choices": [], "usage": usage })
                ));
            }
            parts.push("data: [DONE]\n\n".to_string());
            let stream = futures::stream::iter(parts.into_iter().enumerate()).then(move |(i, part)| {
                let released = released.clone();
                async move {
                    if hold_at == Some(i) {
                        let mut rx = released.released.subscribe();
                        let _ = rx.wait_for(|r| *r).await;
                    }
                    if let Some(d) = drip {
                        tokio::time::sleep(d).await;
                    }
                    Ok::<_, std::convert::Infallible>(part)
                }
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(axum::body::Body::from_stream(stream))
                .unwrap()
        }
    }
}
