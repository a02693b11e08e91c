//! The one HTTP port: health (open), and behind the bearer token the
//! OpenAI-compatible web chat API, the control API and the WebSocket.

pub(crate) mod audit;
mod client_limit;
pub(crate) mod control;
pub(crate) mod cron;
pub(crate) mod forget;
mod memo;
pub(crate) mod memory;
pub(crate) mod metrics;
mod openai;
pub mod server;
pub mod throttle;
mod ws;

pub use client_limit::ClientLimit;
pub use memo::{Answer, AnswerMemo};

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use switchboard_channel::{ChatKind, Inbound, Sender, secret_eq};
use switchboard_memory::{IngressStatus, Store};

use crate::clock::now_ms;
use crate::events::EventBus;
use crate::health::Health;
use crate::pipeline::{Admission, Pipeline};
use crate::webchat::{self, ReplyWaiter, WebChat};

/// What every handler shares.
pub struct AppState {
    /// The inbound pipeline.
    pub pipeline: Arc<Pipeline>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Component health.
    pub health: Arc<Health>,
    /// The event bus.
    pub events: EventBus,
    /// The web chat channel, when enabled.
    pub webchat: Option<Arc<WebChat>>,
    /// The channel accounts: those that receive pushed events have their
    /// webhooks at `/hooks/<channel>/<account>`.
    pub channels: crate::channels::ChannelSet,
    /// The approval desk.
    pub approvals: Arc<crate::approvals::Approvals>,
    /// The control token's digest, which every check compares against in
    /// constant time (the plain token is not needed to check one).
    pub token: crate::token::TokenDigest,
    /// The digest of `observability.metrics_token`, when one is set.
    pub scrape_token: Option<crate::token::TokenDigest>,
    /// Agents, by name, with the default first (replaced by a reload).
    pub agents: arc_swap::ArcSwap<Vec<String>>,
    /// Set once the store is open and channels started.
    pub ready: AtomicBool,
    /// When the gateway started, ms since the epoch.
    pub started_ms: i64,
    /// The rate limit of one-off web chat requests (no `user`), per client:
    /// `ClientLimit::new(config.channels.webchat.rate_limit)`.
    pub client_limit: ClientLimit,
    /// Recent answers to requests with an `Idempotency-Key`.
    pub answers: AnswerMemo,
    /// Signed-in browsers of the control UI and their tickets.
    pub ui: Arc<crate::ui::UiAuth>,
    /// The configuration the gateway runs with (replaced by a reload).
    pub config: arc_swap::ArcSwap<crate::config::Config>,
    /// Asks for a config reload.
    pub reload: Option<crate::reload::ReloadHandle>,
    /// The file it was read from, if any (the UI's Config page edits it).
    pub config_path: Option<std::path::PathBuf>,
    /// The data directory.
    pub data_dir: std::path::PathBuf,
    /// Operators' restarts of supervised services (a channel's listener).
    pub restarts: crate::supervisor::Restarts,
    /// Cancelled when the HTTP server stops: streams end then.
    pub http_stop: tokio_util::sync::CancellationToken,
    /// What is live, for the UI's pages and the tray.
    pub live: crate::ui::live::Live,
    /// The scheduler and the inbound webhooks' runs.
    pub cron: Option<Arc<crate::cron::runner::Cron>>,
    /// This gateway as a replica, when `[cluster] enabled`.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Failed authentications, per client address.
    pub throttle: Arc<throttle::AuthThrottle>,
    /// The audit log: security-relevant events in a chain of HMACs.
    pub audit: Arc<crate::audit::Audit>,
    /// `gateway.trusted_proxies`, parsed.
    pub trusted_proxies: Vec<throttle::Net>,
}

impl AppState {
    /// The client a request came from (`X-Forwarded-For` counts only from
    /// a trusted proxy); the loopback address when the connection's peer is
    /// unknown (a request made in-process).
    pub fn client(&self, headers: &HeaderMap, extensions: &axum::http::Extensions) -> IpAddr {
        let peer = extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)), |c| c.0);
        let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        throttle::client_address(peer, forwarded, &self.trusted_proxies)
    }

    /// Before a credential from `client` is compared: the `429` it gets
    /// instead while it is throttled.
    pub fn throttled(&self, client: IpAddr) -> Option<Response> {
        let wait = self.throttle.admit(client).err()?;
        let secs = throttle::retry_after(wait);
        Some(
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures",
                format!(
                    "too many failed sign-ins from your address: try again in {secs} s (the credential was not checked)"
                ),
            )
            .retry_after(secs)
            .into_response(),
        )
    }
}

/// The router of the whole HTTP port.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .merge(openai::routes())
        .merge(control::routes())
        .merge(memory::routes())
        .merge(cron::routes())
        .merge(audit::routes())
        .merge(ws::routes())
        .merge(crate::ui::api_routes())
        .merge(crate::ui::live::api_routes())
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    let ui = if state.config.load().ui.enabled {
        crate::ui::routes()
    } else {
        Router::new()
            .route("/", get(crate::ui::disabled))
            .route("/login", get(crate::ui::disabled))
    };
    let limits = state.config.load().gateway.limits;
    // The UI's forms, the config editor's among them.
    let ui = ui.layer(axum::extract::DefaultBodyLimit::max(
        limits.config_body_bytes,
    ));
    let protected = protected.layer(axum::extract::DefaultBodyLimit::max(limits.chat_body_bytes));
    let hooks = Router::new()
        // Platforms cannot send our token: each hook checks its own secret.
        .route("/hooks/{channel}/{account}", axum::routing::post(hook))
        .layer(axum::extract::DefaultBodyLimit::max(
            limits.webhook_body_bytes,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(hooks)
        .merge(cron::hook_routes())
        // Its own check: a scrape token works here and nowhere else.
        .merge(metrics::routes())
        .merge(protected)
        .merge(ui)
        .fallback(not_found)
        .layer(middleware::map_response(too_large))
        .layer(middleware::from_fn(crate::ui::refuse_cross_site))
        .layer(middleware::from_fn(crate::ui::security_headers))
        .with_state(state)
}

/// A body over its route's limit, said plainly (axum answers `413` with a
/// bare text).
async fn too_large(r: Response) -> Response {
    if r.status() != StatusCode::PAYLOAD_TOO_LARGE
        || r.headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
    {
        return r;
    }
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body is larger than this endpoint takes (gateway.limits: chat_body_bytes, webhook_body_bytes, config_body_bytes): send less",
    )
    .into_response()
}

/// A channel's webhook: the platform authenticates itself to the adapter.
async fn hook(
    State(state): State<Arc<AppState>>,
    axum::extract::Path((channel, account)): axum::extract::Path<(String, String)>,
    extensions: axum::http::Extensions,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let client = state.client(&headers, &extensions);
    if let Some(refused) = state.throttled(client) {
        return refused;
    }
    let Some(hook) = state
        .channels
        .get(&channel, &account)
        .and_then(|c| c.webhook())
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("no webhook for {channel}/{account}: is the account configured with mode = \"webhook\"?"),
        )
            .into_response();
    };
    let request = switchboard_channel::WebhookRequest {
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
    };
    let answer = hook.handle(request).await;
    // The platform's secret or signature did not check out.
    if matches!(answer.status, 401 | 403) {
        state.throttle.failed(client);
    }
    (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(axum::http::header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response()
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut reasons = Vec::new();
    if !state.ready.load(Ordering::Acquire) {
        reasons.push("starting".to_string());
    }
    if let Err(e) = state.store.ping().await {
        reasons.push(format!("store: {e}"));
    }
    reasons.extend(state.health.not_ready());
    if reasons.is_empty() {
        (StatusCode::OK, axum::Json(json!({ "ready": true }))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "ready": false, "reasons": reasons })),
        )
            .into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see docs/protocol.md",
    )
}

/// Authentication of the API: the bearer token, or a browser signed in to
/// the control UI (whose state-changing requests carry its CSRF token in
/// `X-CSRF-Token`). The WebSocket, which browsers open without headers,
/// also takes a one-time ticket (`?ticket=`, from `POST /api/ws/ticket`),
/// never the long-lived token in its URL, and refuses a browser page of
/// another site (cross-site WebSocket hijacking). Failed attempts are
/// throttled per client address ([`throttle`]).
async fn require_token(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let is_ws = req.uri().path() == "/api/ws";
    if is_ws && !crate::ui::same_origin(req.headers()) {
        tracing::warn!("a WebSocket from another site's page was refused");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "this WebSocket was opened by a page of another site, so it was refused; use the control UI on the gateway's own address",
        )
        .into_response();
    }
    let query = req.uri().query().unwrap_or("");
    if query_value(query, "token").is_some() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "token_in_url",
            "the control token does not belong in a URL (it ends up in logs and histories): send it as `Authorization: Bearer <token>`, or open the WebSocket with a one-time ticket from POST /api/ws/ticket (`?ticket=`)",
        )
        .into_response();
    }
    let ticket = is_ws.then(|| query_value(query, "ticket")).flatten();
    let presented = bearer(req.headers());
    let client = state.client(req.headers(), req.extensions());
    if presented.is_some() || ticket.is_some() {
        if let Some(refused) = state.throttled(client) {
            return refused;
        }
    }
    if presented.is_none() {
        if let Some(ticket) = ticket {
            if state.ui.redeem_ws_ticket(&ticket) {
                return next.run(req).await;
            }
            state.throttle.failed(client);
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_ticket",
                "this WebSocket ticket was used already or has expired (a ticket works once, within a minute): get a new one with POST /api/ws/ticket",
            )
            .into_response();
        }
        if let Some(signed) = crate::ui::signed_in(&state, req.headers()) {
            let safe = matches!(
                *req.method(),
                axum::http::Method::GET | axum::http::Method::HEAD
            );
            let csrf = req
                .headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if safe || secret_eq(csrf, &signed.csrf) {
                return next.run(req).await;
            }
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "this request of a signed-in browser lacks its security token (X-CSRF-Token); reload the page and try again",
            )
            .into_response();
        }
    }
    match presented {
        Some(t) if state.token.matches(&t) => next.run(req).await,
        Some(_) => {
            state.throttle.failed(client);
            tracing::warn!(client = %client, "a request with a wrong token was refused");
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the bearer token is wrong: use the token from gateway.auth.token, SWITCHBOARD_TOKEN, or the control-token file in the data directory",
            )
            .into_response()
        }
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "this endpoint needs `Authorization: Bearer <token>`: use the token from gateway.auth.token, SWITCHBOARD_TOKEN, or the control-token file in the data directory",
        )
        .into_response(),
    }
}

/// The value of `name` in a query string.
fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .map(str::to_string)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// An error answer in OpenAI's shape: `{"error": {"message", "type", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, a machine code and a readable message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the client to wait `secs` before trying
    /// again (`Retry-After`).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// What went wrong and what to do, for people.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!(
                "the gateway failed: {e}. Try again; if it persists, the gateway's log has the details"
            ),
        )
    }

    fn body(&self) -> serde_json::Value {
        let kind = match self.status.as_u16() {
            400 | 404 | 409 | 422 => "invalid_request_error",
            401 | 403 => "authentication_error",
            429 => "rate_limit_error",
            _ => "server_error",
        };
        json!({ "error": { "message": self.message, "type": kind, "code": self.code } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = secs.to_string().parse() {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// A web chat message from `user`.
pub(crate) fn webchat_inbound(user: &str, text: String, message_id: String) -> Inbound {
    Inbound {
        channel: webchat::NAME.into(),
        account: webchat::ACCOUNT.into(),
        chat_kind: ChatKind::Dm,
        chat_id: user.to_string(),
        thread_id: None,
        sender: Sender {
            id: user.to_string(),
            name: Some(user.to_string()),
            is_bot: false,
        },
        text,
        attachments: Vec::new(),
        mentioned: true,
        message_id,
        received_at_ms: now_ms(),
    }
}

/// A message accepted into a session, with the wait for its reply.
pub(crate) struct Submitted {
    pub waiter: ReplyWaiter,
    pub session_key: String,
    pub agent: String,
    pub ingress_id: i64,
}

/// The web chat channel, or why there is none.
pub(crate) fn webchat_of(state: &AppState) -> Result<&Arc<WebChat>, ApiError> {
    state.webchat.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "webchat_disabled",
            "the web chat is disabled: set channels.webchat.enabled = true",
        )
    })
}

/// Admit a web chat message and wait for its reply, or say why it was not
/// taken. A message id seen before is refused as a duplicate.
pub(crate) async fn submit(
    state: &AppState,
    inbound: Inbound,
    agent: Option<String>,
) -> Result<Submitted, ApiError> {
    let waiter = webchat_of(state)?.wait_for(&inbound.message_id);
    let message_id = inbound.message_id.clone();
    match admit(state, inbound, agent, waiter).await? {
        Taken::Submitted(s) => Ok(s),
        Taken::Duplicate {
            waiter: _,
            ingress_id,
            status,
        } => Err(duplicate(&message_id, ingress_id, status)),
    }
}

/// What became of a message offered with a waiter.
pub(crate) enum Taken {
    /// Accepted into its session (or answered by the gateway); the reply
    /// comes to the waiter.
    Submitted(Submitted),
    /// Its id was seen before: it was not offered again.
    Duplicate {
        /// The waiter, still waiting on the message's flight.
        waiter: ReplyWaiter,
        /// The earlier row.
        ingress_id: i64,
        /// Its status when it was offered.
        status: IngressStatus,
    },
}

/// Offer `inbound` to the pipeline; `waiter` waits for its reply.
pub(crate) async fn admit(
    state: &AppState,
    inbound: Inbound,
    agent: Option<String>,
    waiter: ReplyWaiter,
) -> Result<Taken, ApiError> {
    let admission = match state.pipeline.admit(inbound, agent).await {
        Ok(a) => a,
        Err(e) => {
            waiter.abandon();
            return Err(ApiError::internal(e));
        }
    };
    taken(state, admission, waiter)
}

/// The answer "seen before" to a repeated message id.
pub(crate) fn duplicate(message_id: &str, ingress_id: i64, status: IngressStatus) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "duplicate_message",
        format!(
            "message `{message_id}` was already received (ingress row {ingress_id}, {}); it is not answered twice. Use a new message id for a new message.",
            status.as_str()
        ),
    )
}

/// What the pipeline's `admission` means for the request whose `waiter`
/// waits: the reply comes, or the error to answer. A message that will not
/// be answered through the waiter's flight ends it, so other requests
/// waiting there look elsewhere.
pub(crate) fn taken(
    state: &AppState,
    admission: Admission,
    mut waiter: ReplyWaiter,
) -> Result<Taken, ApiError> {
    state
        .health
        .touch(&format!("channel:{}/{}", webchat::NAME, webchat::ACCOUNT));
    let refused = match admission {
        Admission::Queued {
            ingress_id,
            session_key,
            agent,
        }
        | Admission::Answered {
            ingress_id,
            session_key,
            agent,
        } => {
            return Ok(Taken::Submitted(Submitted {
                waiter,
                session_key,
                agent,
                ingress_id,
            }));
        }
        Admission::Duplicate { ingress_id, status } => {
            return Ok(Taken::Duplicate {
                waiter,
                ingress_id,
                status,
            });
        }
        Admission::Ignored { reason } => ApiError::new(
            StatusCode::FORBIDDEN,
            "not_allowed",
            format!("the message was not taken: {reason}. Check channels.webchat in the config."),
        ),
        Admission::Pairing => {
            let notice = match waiter.events.try_recv() {
                Ok(switchboard_channel::ReplyEvent::Notice { text }) => Some(text),
                _ => None,
            };
            ApiError::new(
                StatusCode::FORBIDDEN,
                "pairing_required",
                notice.unwrap_or_else(|| "this user is waiting for pairing approval".into()),
            )
        }
        Admission::RateLimited => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            crate::pipeline::ratelimit::NOTICE,
        )
        .retry_after(60),
        Admission::Busy => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "session_busy",
            crate::sessions::BUSY_NOTICE,
        )
        .retry_after(5),
        Admission::Deferred => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the gateway is shutting down; your message was stored and will be answered after it restarts",
        ),
    };
    waiter.abandon();
    Err(refused)
}
