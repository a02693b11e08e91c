//! A fake Anthropic Messages API: `POST /v1/messages` streaming the real SSE
//! event sequence, and `GET /v1/models`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// A running fake; it answers `claude: <last user text>`.
pub struct FakeAnthropic {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(Value, HeaderMap)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The answer the fake gives to `text`.
pub fn claude_answer(text: &str) -> String {
    format!("claude: {text}")
}

impl FakeAnthropic {
    /// Start on a free loopback port.
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/models", get(|| async { axum::Json(json!({ "data": [{ "id": "claude-test", "type": "model" }], "has_more": false })) }))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, seen, task }
    }

    /// The base URL to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Request bodies and headers received so far.
    pub fn seen(&self) -> Vec<(Value, HeaderMap)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn messages(
    State(seen): State<Arc<Mutex<Vec<(Value, HeaderMap)>>>>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let body = body.0;
    seen.lock().unwrap().push((body.clone(), headers.clone()));
    if headers.get("x-api-key").is_none() {
        let err = json!({ "type": "error", "error": { "type": "authentication_error", "message": "x-api-key header is required" } });
        return (StatusCode::UNAUTHORIZED, axum::Json(err)).into_response();
    }
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_array())
        .and_then(|c| c.iter().rev().find(|b| b["type"] == "text"))
        .and_then(|b| b["text"].as_str())
        .unwrap_or("")
        .to_string();
    let answer = claude_answer(&last);
    let mut events = vec![
        json!({ "type": "message_start", "message": { "id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": body["model"], "stop_reason": null, "usage": { "input_tokens": 12, "output_tokens": 1 } } }),
        json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
        json!({ "type": "ping" }),
    ];
    let chars: Vec<char> = answer.chars().collect();
    for piece in chars.chunks(4) {
        events.push(json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": piece.iter().collect::<String>() } }));
    }
    events.push(json!({ "type": "content_block_stop", "index": 0 }));
    events.push(json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn", "stop_sequence": null }, "usage": { "output_tokens": 6 } }));
    events.push(json!({ "type": "message_stop" }));
    let text: String = events
        .iter()
        .map(|e| format!("event: {}\ndata: {}\n\n", e["type"].as_str().unwrap(), e))
        .collect();
    ([("content-type", "text/event-stream")], text).into_response()
}
