//! `POST /v1/chat/completions` and `GET /v1/models`, OpenAI-compatible, so
//! any OpenAI client can talk to the assistant through the gateway.
//!
//! The `user` field names a persistent web chat session: only the last user
//! message is new input, the history is the gateway's. Without `user` the
//! request is a one-off session seeded with the request's earlier messages;
//! one-off requests are rate limited per client (token and address) before
//! anything is done for them, and their session is removed after the answer.
//!
//! An `Idempotency-Key` (or `X-Request-Id`) is the message id. A request
//! repeating one that is being answered waits beside it for the same answer
//! (see [`crate::webchat`]); one repeating a finished one gets the answer
//! given (kept in [`super::memo`], or read from the store), in the form it
//! asks for; one repeating a message that was refused before it was answered
//! (rate limit, a full queue) offers it again. The model is asked once.

mod answer;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use switchboard_channel::{Inbound, ReplyEvent};
use switchboard_memory::{IngressStatus, Role, TurnCommit, TurnEntry};

use super::client_limit::{client_key, fingerprint};
use super::memo::Answer;
use super::{
    ApiError, AppState, Submitted, Taken, admit, bearer, duplicate, taken, webchat_inbound,
    webchat_of,
};
use crate::clock::now_ms;
use crate::pipeline::routing::Route;
use crate::webchat::ReplyWaiter;
use answer::{Form, Label, Memo};

/// Times a request with a key looks for its answer again after the request
/// it waited beside ended without one, before it gives up.
const KEYED_ROUNDS: usize = 3;

/// The error a row refused for a full session queue carries (set by the
/// pipeline): such a message was never answered and may be offered again.
const QUEUE_FULL: &str = "session queue full";
/// The error of a row whose stored answer did not reach its caller (set by
/// the sessions): a repeat gets the stored answer.
const NOT_DELIVERED: &str = "reply not delivered";

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

/// A one-off request's earlier messages, as the history of its session.
fn history(earlier: &[RequestMessage]) -> Vec<TurnEntry> {
    earlier
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
        .collect()
}

async fn models(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let created = state.started_ms / 1000;
    let data: Vec<Value> = state
        .agents
        .load()
        .iter()
        .map(|a| json!({ "id": a, "object": "model", "created": created, "owned_by": "switchboard" }))
        .collect();
    axum::Json(json!({ "object": "list", "data": data }))
}

/// One request, read and checked.
struct Ask {
    inbound: Inbound,
    /// The agent asked for (`model`), when it exists.
    agent: Option<String>,
    /// Where it goes.
    route: Route,
    /// Without `user`: a one-off session with this history.
    one_off: Option<Vec<TurnEntry>>,
    form: Form,
}

/// The key a client's `Idempotency-Key` stands for: a digest of its
/// scope, the request (model and messages) and the key.
fn scoped_key(scope: &str, model: Option<&str>, messages: &[RequestMessage], key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update([0]);
    h.update(model.unwrap_or("").as_bytes());
    for m in messages {
        h.update([0]);
        h.update(m.role.as_bytes());
        h.update([0]);
        h.update(content_text(&m.content).as_bytes());
    }
    h.update([0]);
    h.update(key.as_bytes());
    let digest: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("idem-{digest}")
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
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
    let key = headers
        .get("idempotency-key")
        .or_else(|| headers.get("x-request-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let named = req
        .user
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    if named.is_none() {
        // Before anything is done: every one-off request is a new sender
        // to the pipeline, so its per-sender limit cannot hold them.
        let client = client_key(
            bearer(&headers).as_deref(),
            connect.as_ref().map(|Extension(ConnectInfo(addr))| *addr),
        );
        if let Err(wait) = state.client_limit.check(&client) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many requests without `user` from this client: try again in {wait} s (the limit is channels.webchat.rate_limit)"
                ),
            )
            .retry_after(wait));
        }
    }
    // A key is the client's own: scoped to the named user (or, for
    // one-off requests, to the client: token and address) and to the
    // request, so another user's key, or the same key sent with another
    // request, never gets someone else's answer.
    let key = key.map(|k| {
        let scope = match &named {
            Some(u) => format!("user\0{u}"),
            None => format!(
                "client\0{}",
                client_key(
                    bearer(&headers).as_deref(),
                    connect.as_ref().map(|Extension(ConnectInfo(addr))| *addr),
                )
            ),
        };
        scoped_key(&scope, req.model.as_deref(), &req.messages, &k)
    });
    let one_off = named.is_none().then(|| history(earlier));
    let user = named.unwrap_or_else(|| match &key {
        // Repeats of a keyed one-off request come to the same session.
        Some(k) => format!("oneoff-{:016x}", fingerprint(k.as_bytes())),
        None => format!("oneoff-{}", uuid::Uuid::new_v4().simple()),
    });
    let message_id = key
        .clone()
        .unwrap_or_else(|| format!("http-{}", uuid::Uuid::new_v4().simple()));
    let inbound = webchat_inbound(&user, text, message_id);
    let agent = req
        .model
        .clone()
        .filter(|m| state.agents.load().contains(m));
    let route = state
        .pipeline
        .router()
        .route_with(&inbound, agent.as_deref());
    let form = Form {
        stream: req.stream,
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
    };
    let ask = Ask {
        inbound,
        agent,
        route,
        one_off,
        form,
    };
    match key {
        Some(key) => keyed(&state, key, ask).await,
        None => plain(&state, ask).await,
    }
}

/// A request without a key: a new message.
async fn plain(state: &Arc<AppState>, ask: Ask) -> Result<Response, ApiError> {
    let webchat = webchat_of(state)?;
    let message_id = ask.inbound.message_id.clone();
    if let Some(entries) = &ask.one_off {
        seed(state, &ask.route, entries.clone()).await?;
    }
    let waiter = webchat.wait_for(&message_id);
    // Waits beside the request until the reply ends, even if the client
    // goes away, to remove the one-off session then.
    let keeper = ask.one_off.is_some().then(|| webchat.wait_for(&message_id));
    let created = waiter.started_ms() / 1000;
    let submitted = match admit(state, ask.inbound, ask.agent, waiter).await {
        Ok(Taken::Submitted(s)) => s,
        Ok(Taken::Duplicate {
            ingress_id, status, ..
        }) => return Err(duplicate(&message_id, ingress_id, status)),
        Err(e) => {
            if ask.one_off.as_ref().is_some_and(|h| !h.is_empty()) {
                // Refused: the history written for it goes again.
                forget_one_off(state, &ask.route).await;
            }
            return Err(e);
        }
    };
    if let Some(keeper) = keeper {
        forget_when_answered(state.clone(), keeper, &submitted, ask.route.clone());
    }
    let label = Label {
        id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        created,
        model: submitted.agent.clone(),
    };
    answer::live(submitted.waiter, None, label, ask.form, None).await
}

/// A request with an idempotency key: the first with it is offered; a
/// repeat waits beside it, or gets the answer it got.
async fn keyed(state: &Arc<AppState>, key: String, ask: Ask) -> Result<Response, ApiError> {
    let webchat = webchat_of(state)?;
    let mut notice = None;
    for _ in 0..KEYED_ROUNDS {
        if let Some(given) = state.answers.get(&key) {
            return Ok(answer::given(&given, ask.form));
        }
        let mut waiter = webchat.wait_for(&key);
        let label = Label {
            id: format!("chatcmpl-{:016x}", fingerprint(key.as_bytes())),
            created: waiter.started_ms() / 1000,
            model: ask.route.agent.clone(),
        };
        let memo = || Memo {
            state: state.clone(),
            key: key.clone(),
        };
        if waiter.joined() {
            // Another request with this key is in flight: wait beside it.
            match waiter.events.recv().await {
                // It ended without an answer for us: look again.
                None => continue,
                Some(ReplyEvent::Notice { text }) => {
                    notice = Some(text);
                    continue;
                }
                Some(first) => {
                    return answer::live(waiter, Some(first), label, ask.form, Some(memo())).await;
                }
            }
        }
        if let Some(entries) = &ask.one_off {
            // A repeat comes to the same session: its history is there.
            if let Err(e) = seed_once(state, &ask.route, entries).await {
                waiter.abandon();
                return Err(e);
            }
        }
        return match admit(state, ask.inbound.clone(), ask.agent.clone(), waiter).await? {
            Taken::Submitted(s) => {
                answer::live(s.waiter, None, label, ask.form, Some(memo())).await
            }
            Taken::Duplicate {
                waiter, ingress_id, ..
            } => {
                let repeat = Repeat {
                    state,
                    ask: &ask,
                    key: &key,
                    label,
                    notice,
                };
                repeat.answer(waiter, ingress_id).await
            }
        };
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "request_in_progress",
        "another request with this Idempotency-Key was being answered and ended without an answer; send it again",
    ))
}

/// A repeated key whose message is not in flight.
struct Repeat<'a> {
    state: &'a Arc<AppState>,
    ask: &'a Ask,
    key: &'a str,
    label: Label,
    /// A notice the request that was waited beside got.
    notice: Option<String>,
}

impl Repeat<'_> {
    /// Answer as the stored row of the message says: with the answer given,
    /// the same error, by waiting for the answer still to come, or by
    /// offering again a message refused before it was answered.
    async fn answer(self, waiter: ReplyWaiter, ingress_id: i64) -> Result<Response, ApiError> {
        let state = self.state;
        let store = &state.store;
        let row = match store.ingress_get(ingress_id).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                waiter.abandon();
                return Err(duplicate(self.key, ingress_id, IngressStatus::Done));
            }
            Err(e) => {
                waiter.abandon();
                return Err(ApiError::internal(e));
            }
        };
        let refused = match row.status {
            IngressStatus::Ignored => true,
            IngressStatus::Failed => row.error.as_deref() == Some(QUEUE_FULL),
            IngressStatus::Pending | IngressStatus::Done => false,
        };
        let memo = Memo {
            state: state.clone(),
            key: self.key.to_string(),
        };
        if refused {
            return self.offer_again(waiter, ingress_id, memo).await;
        }
        // Answered (a row may stay pending a moment after its answer was
        // stored and sent), or answered and not delivered.
        let undelivered = row.error.as_deref() == Some(NOT_DELIVERED);
        if row.status != IngressStatus::Failed || undelivered {
            let stored = match store.answer_for_ingress(ingress_id).await {
                Ok(a) => a,
                Err(e) => {
                    waiter.abandon();
                    return Err(ApiError::internal(e));
                }
            };
            if let Some(entry) = stored {
                waiter.abandon();
                let given = Answer {
                    id: self.label.id,
                    created: row.received_at / 1000,
                    model: self.label.model,
                    text: entry.content,
                    usage: None,
                };
                return Ok(answer::given(&given, self.ask.form));
            }
        }
        match row.status {
            // Queued, or picked up again after a restart: its reply will
            // come to this waiter's flight.
            IngressStatus::Pending => {
                answer::live(waiter, None, self.label, self.ask.form, Some(memo)).await
            }
            IngressStatus::Done => {
                waiter.abandon();
                match self.notice {
                    Some(text) => {
                        let given = Answer {
                            id: self.label.id,
                            created: self.label.created,
                            model: self.label.model,
                            text,
                            usage: None,
                        };
                        Ok(answer::given(&given, self.ask.form))
                    }
                    None => Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "duplicate_message",
                        format!(
                            "message `{}` was answered, and that answer is not stored (a chat command's answer, or one older than retention.transcript_days); use a new Idempotency-Key to ask again",
                            self.key
                        ),
                    )),
                }
            }
            // The turn failed: the same error as the first time.
            IngressStatus::Failed | IngressStatus::Ignored => {
                waiter.abandon();
                let why = row.error.unwrap_or_else(|| "the turn failed".into());
                Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_error",
                    format!("Sorry, I couldn't answer: {why}"),
                ))
            }
        }
    }

    /// Offer a message that was refused before it was answered once more
    /// (the pipeline checks it all again). Only the request that holds the
    /// key's flight does this, so two repeats cannot both.
    async fn offer_again(
        self,
        waiter: ReplyWaiter,
        ingress_id: i64,
        memo: Memo,
    ) -> Result<Response, ApiError> {
        let state = self.state;
        let reopened = state
            .store
            .ingress_finish(ingress_id, IngressStatus::Pending, None, now_ms())
            .await;
        let admission = match reopened {
            Ok(()) => {
                state
                    .pipeline
                    .process(ingress_id, self.ask.inbound.clone(), self.ask.agent.clone())
                    .await
            }
            Err(e) => Err(e),
        };
        let admission = match admission {
            Ok(a) => a,
            Err(e) => {
                waiter.abandon();
                return Err(ApiError::internal(e));
            }
        };
        match taken(state, admission, waiter)? {
            Taken::Submitted(s) => {
                answer::live(s.waiter, None, self.label, self.ask.form, Some(memo)).await
            }
            Taken::Duplicate {
                waiter,
                ingress_id,
                status,
            } => {
                waiter.abandon();
                Err(duplicate(self.key, ingress_id, status))
            }
        }
    }
}

/// Write a one-off session's history unless the session is there already.
async fn seed_once(state: &AppState, route: &Route, entries: &[TurnEntry]) -> Result<(), ApiError> {
    if entries.is_empty() {
        return Ok(());
    }
    let there = state
        .store
        .session_get(&route.session_key)
        .await
        .map_err(ApiError::internal)?;
    match there {
        Some(_) => Ok(()),
        None => seed(state, route, entries.to_vec()).await,
    }
}

/// Write a one-off session's earlier messages as its history.
async fn seed(state: &AppState, route: &Route, entries: Vec<TurnEntry>) -> Result<(), ApiError> {
    if entries.is_empty() {
        return Ok(());
    }
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

/// Remove the one-off session of `submitted` once its reply ended, whether
/// or not the client still waits. A reply that ended unanswered (a
/// shutdown) leaves it: the message is answered there after the restart.
fn forget_when_answered(
    state: Arc<AppState>,
    mut keeper: ReplyWaiter,
    submitted: &Submitted,
    route: Route,
) {
    let ingress_id = submitted.ingress_id;
    tokio::spawn(async move {
        while keeper.events.recv().await.is_some() {}
        drop(keeper);
        let finished = match state.store.ingress_get(ingress_id).await {
            Ok(Some(row)) if row.status != IngressStatus::Pending => true,
            Ok(_) => matches!(
                state.store.answer_for_ingress(ingress_id).await,
                Ok(Some(_))
            ),
            Err(_) => false,
        };
        if finished {
            forget_one_off(&state, &route).await;
        }
    });
}

/// Remove a one-off session with its transcript (its usage is kept).
async fn forget_one_off(state: &AppState, route: &Route) {
    if let Err(e) = state.store.session_delete(&route.session_key).await {
        tracing::warn!(session_key = %route.session_key, error = %e, "cannot remove a one-off session");
    }
}
