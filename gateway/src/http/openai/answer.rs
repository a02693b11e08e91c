//! Answers in OpenAI's Chat Completions shape: a reply as it comes (one JSON
//! body, or SSE chunks), or an answer given before (a repeated
//! `Idempotency-Key`), in whichever form the request asked for.

use std::convert::Infallible;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use switchboard_channel::{ReplyEvent, TokenUsage};

use super::super::memo::Answer;
use super::super::{ApiError, AppState};
use crate::webchat::ReplyWaiter;

/// How the client asked to be answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Form {
    /// SSE chunks rather than one body.
    pub stream: bool,
    /// With `stream`, a last chunk with the usage.
    pub include_usage: bool,
}

/// What names an answer: its id, creation time and model.
#[derive(Debug, Clone)]
pub(super) struct Label {
    /// `chatcmpl-…`.
    pub id: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// The agent.
    pub model: String,
}

/// Where a finished answer is remembered: requests with an idempotency key.
pub(super) struct Memo {
    pub state: Arc<AppState>,
    pub key: String,
}

impl Memo {
    fn remember(&self, label: &Label, text: &str, usage: Option<TokenUsage>) {
        self.state.answers.remember(
            &self.key,
            Answer {
                id: label.id.clone(),
                created: label.created,
                model: label.model.clone(),
                text: text.to_string(),
                usage,
            },
        );
    }
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

fn completion(label: &Label, text: &str, usage: Option<TokenUsage>) -> Value {
    json!({
        "id": label.id,
        "object": "chat.completion",
        "created": label.created,
        "model": label.model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": "stop",
        }],
        "usage": usage_json(usage),
    })
}

fn chunk(label: &Label, delta: Value, finish: Option<&str>) -> Event {
    let c = json!({
        "id": label.id,
        "object": "chat.completion.chunk",
        "created": label.created,
        "model": label.model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    Event::default().data(c.to_string())
}

fn usage_chunk(label: &Label, usage: Option<TokenUsage>) -> Event {
    let c = json!({
        "id": label.id,
        "object": "chat.completion.chunk",
        "created": label.created,
        "model": label.model,
        "choices": [],
        "usage": usage_json(usage),
    });
    Event::default().data(c.to_string())
}

fn stream_error(message: &str, code: &str) -> Event {
    Event::default().data(
        json!({ "error": { "message": message, "type": "server_error", "code": code } })
            .to_string(),
    )
}

const STOPPED: &str = "the gateway stopped before answering; the message is stored and will be answered after it restarts";

/// The answer `waiter` waits for, in `form`; `first` is an event already
/// taken from it.
pub(super) async fn live(
    waiter: ReplyWaiter,
    first: Option<ReplyEvent>,
    label: Label,
    form: Form,
    memo: Option<Memo>,
) -> Result<Response, ApiError> {
    if form.stream {
        let state = StreamState {
            waiter,
            first,
            label,
            include_usage: form.include_usage,
            memo,
            phase: Phase::Role,
        };
        let events = futures::stream::unfold(state, StreamState::next);
        Ok(Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response())
    } else {
        whole(waiter, first, label, memo).await
    }
}

async fn whole(
    mut waiter: ReplyWaiter,
    mut first: Option<ReplyEvent>,
    label: Label,
    memo: Option<Memo>,
) -> Result<Response, ApiError> {
    loop {
        let event = match first.take() {
            Some(e) => Some(e),
            None => waiter.events.recv().await,
        };
        let (text, usage) = match event {
            Some(ReplyEvent::Done { text, usage }) => {
                if let Some(m) = &memo {
                    m.remember(&label, &text, usage);
                }
                (text, usage)
            }
            Some(ReplyEvent::Notice { text }) => (text, None),
            Some(ReplyEvent::Failed { message }) => {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_error",
                    message,
                ));
            }
            Some(ReplyEvent::Working | ReplyEvent::Delta { .. }) => continue,
            None => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                    STOPPED,
                ));
            }
        };
        return Ok(axum::Json(completion(&label, &text, usage)).into_response());
    }
}

/// An answer given before, in `form`.
pub(super) fn given(answer: &Answer, form: Form) -> Response {
    let label = Label {
        id: answer.id.clone(),
        created: answer.created,
        model: answer.model.clone(),
    };
    if !form.stream {
        return axum::Json(completion(&label, &answer.text, answer.usage)).into_response();
    }
    let mut events = vec![
        chunk(&label, json!({ "role": "assistant", "content": "" }), None),
        chunk(&label, json!({ "content": answer.text }), None),
        chunk(&label, json!({}), Some("stop")),
    ];
    if form.include_usage {
        events.push(usage_chunk(&label, answer.usage));
    }
    events.push(Event::default().data("[DONE]"));
    Sse::new(futures::stream::iter(
        events.into_iter().map(Ok::<_, Infallible>),
    ))
    .into_response()
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
    waiter: ReplyWaiter,
    first: Option<ReplyEvent>,
    label: Label,
    include_usage: bool,
    memo: Option<Memo>,
    phase: Phase,
}

impl StreamState {
    /// The next SSE event, or `None` at the end.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        let event = match std::mem::replace(&mut self.phase, Phase::Streaming) {
            Phase::Role => chunk(
                &self.label,
                json!({ "role": "assistant", "content": "" }),
                None,
            ),
            Phase::Streaming => {
                let reply = match self.first.take() {
                    Some(e) => Some(e),
                    None => self.waiter.events.recv().await,
                };
                match reply {
                    Some(ReplyEvent::Working) => Event::default().comment("working"),
                    Some(ReplyEvent::Delta { text }) => {
                        chunk(&self.label, json!({ "content": text }), None)
                    }
                    Some(ReplyEvent::Done { text, usage }) => {
                        if let Some(m) = &self.memo {
                            m.remember(&self.label, &text, usage);
                        }
                        self.phase = if self.include_usage {
                            Phase::Usage(usage)
                        } else {
                            Phase::Done
                        };
                        chunk(&self.label, json!({}), Some("stop"))
                    }
                    Some(ReplyEvent::Notice { text }) => {
                        self.phase = Phase::Done;
                        chunk(&self.label, json!({ "content": text }), Some("stop"))
                    }
                    Some(ReplyEvent::Failed { message }) => {
                        self.phase = Phase::Done;
                        stream_error(&message, "provider_error")
                    }
                    None => {
                        self.phase = Phase::Done;
                        stream_error(STOPPED, "shutting_down")
                    }
                }
            }
            Phase::Usage(usage) => {
                self.phase = Phase::Done;
                usage_chunk(&self.label, usage)
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
