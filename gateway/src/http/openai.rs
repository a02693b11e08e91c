//! `POST /v1/chat/completions` and `GET /v1/models`, OpenAI-compatible, so
//! any OpenAI client can talk to the assistant through the gateway.
//!
//! The `user` field names a persistent web chat session: only the last user
//! message is new input, the history is the gateway's. Without `user` the
//! request is a one-off session seeded with the request's earlier messages.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use switchboard_channel::{ReplyEvent, TokenUsage};
use switchboard_memory::{IngressStatus, Role, TurnCommit, TurnEntry};

use super::{ApiError, AppState, Submitted, submit, webchat_inbound};
use crate::clock::now_ms;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Vec<RequestMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct RequestMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

/// The text of a message: a string, or the text parts of an array.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

async fn models(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let created = state.started_ms / 1000;
    let data: Vec<Value> = state
        .agents
        .iter()
        .map(|a| json!({ "id": a, "object": "model", "created": created, "owned_by": "switchboard" }))
        .collect();
    axum::Json(json!({ "object": "list", "data": data }))
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: ChatRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not a valid chat completion request: {e}"),
        )
    })?;
    let Some((last, earlier)) = req.messages.split_last() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_messages",
            "`messages` is empty: send at least one message with role `user`",
        ));
    };
    if last.role != "user" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "last_message_not_user",
            format!(
                "the last message has role `{}`: the gateway answers the last message, which must have role `user`",
                last.role
            ),
        ));
    }
    let text = content_text(&last.content);
    if text.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_message",
            "the last user message has no text",
        ));
    }
    let agent = req.model.clone().filter(|m| state.agents.contains(m));
    let message_id = headers
        .get("idempotency-key")
        .or_else(|| headers.get("x-request-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| format!("http-{}", uuid::Uuid::new_v4().simple()));
    let user = match req.user.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => u.to_string(),
        None => {
            let user = format!("oneoff-{}", uuid::Uuid::new_v4().simple());
            seed_one_off(&state, &user, agent.as_deref(), earlier).await?;
            user
        }
    };
    let inbound = webchat_inbound(&user, text, message_id);
    let submitted = submit(&state, inbound, agent).await?;
    let model = submitted.agent.clone();
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_ms() / 1000;
    if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        Ok(stream_answer(submitted, id, model, created, include_usage).into_response())
    } else {
        whole_answer(submitted, id, model, created).await
    }
}

/// Write a one-off session's earlier messages as its history.
async fn seed_one_off(
    state: &AppState,
    user: &str,
    agent: Option<&str>,
    earlier: &[RequestMessage],
) -> Result<(), ApiError> {
    let entries: Vec<TurnEntry> = earlier
        .iter()
        .filter_map(|m| {
            let role = match m.role.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "system" | "developer" => Role::System,
                _ => return None,
            };
            let content = content_text(&m.content);
            (!content.is_empty()).then_some(TurnEntry {
                role,
                content,
                ingress_id: None,
            })
        })
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    let probe = webchat_inbound(user, String::new(), String::new());
    let route = state.pipeline.router().route_with(&probe, agent);
    let now = now_ms();
    let session = state
        .store
        .session_open(&route.session_key, &route.agent, now)
        .await
        .map_err(ApiError::internal)?;
    state
        .store
        .commit_turn(TurnCommit {
            session_id: session.session_id,
            entries,
            ingress_ids: vec![],
            status: IngressStatus::Done,
            error: None,
            now,
            usage: None,
        })
        .await
        .map_err(ApiError::internal)
}

fn usage_json(u: Option<TokenUsage>) -> Value {
    let u = u.unwrap_or_default();
    json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": { "cached_tokens": u.cached_tokens },
    })
}

async fn whole_answer(
    mut s: Submitted,
    id: String,
    model: String,
    created: i64,
) -> Result<Response, ApiError> {
    while let Some(event) = s.waiter.events.recv().await {
        let (text, usage) = match event {
            ReplyEvent::Done { text, usage } => (text, usage),
            ReplyEvent::Notice { text } => (text, None),
            ReplyEvent::Failed { message } => {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_error",
                    message,
                ));
            }
            ReplyEvent::Working | ReplyEvent::Delta { .. } => continue,
        };
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": text },
                "finish_reason": "stop",
            }],
            "usage": usage_json(usage),
        });
        return Ok(axum::Json(body).into_response());
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        format!(
            "the gateway stopped before answering; the message (ingress row {}) will be answered after it restarts",
            s.ingress_id
        ),
    ))
}

/// Where a streamed answer is.
enum Phase {
    Role,
    Streaming,
    Usage(Option<TokenUsage>),
    Done,
    End,
}

struct StreamState {
    submitted: Submitted,
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    phase: Phase,
}

impl StreamState {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Event {
        let c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        });
        Event::default().data(c.to_string())
    }

    fn error(message: &str, code: &str) -> Event {
        Event::default().data(
            json!({ "error": { "message": message, "type": "server_error", "code": code } })
                .to_string(),
        )
    }

    /// The next SSE event, or `None` at the end.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        let event = match std::mem::replace(&mut self.phase, Phase::Streaming) {
            Phase::Role => self.chunk(json!({ "role": "assistant", "content": "" }), None),
            Phase::Streaming => match self.submitted.waiter.events.recv().await {
                Some(ReplyEvent::Working) => Event::default().comment("working"),
                Some(ReplyEvent::Delta { text }) => self.chunk(json!({ "content": text }), None),
                Some(ReplyEvent::Done { usage, .. }) => {
                    self.phase = if self.include_usage {
                        Phase::Usage(usage)
                    } else {
                        Phase::Done
                    };
                    self.chunk(json!({}), Some("stop"))
                }
                Some(ReplyEvent::Notice { text }) => {
                    self.phase = Phase::Done;
                    self.chunk(json!({ "content": text }), Some("stop"))
                }
                Some(ReplyEvent::Failed { message }) => {
                    self.phase = Phase::Done;
                    Self::error(&message, "provider_error")
                }
                None => {
                    self.phase = Phase::Done;
                    Self::error(
                        "the gateway stopped before answering; the message will be answered after it restarts",
                        "shutting_down",
                    )
                }
            },
            Phase::Usage(usage) => {
                self.phase = Phase::Done;
                let c = json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage_json(usage),
                });
                Event::default().data(c.to_string())
            }
            Phase::Done => {
                self.phase = Phase::End;
                Event::default().data("[DONE]")
            }
            Phase::End => return None,
        };
        Some((Ok(event), self))
    }
}

fn stream_answer(
    submitted: Submitted,
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let state = StreamState {
        submitted,
        id,
        model,
        created,
        include_usage,
        phase: Phase::Role,
    };
    Sse::new(futures::stream::unfold(state, StreamState::next)).keep_alive(KeepAlive::default())
}
