//! The control API: status, sessions and pairing, as REST for the CLI and
//! as functions the WebSocket shares.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::approvals::Resolution;
use crate::approvals::rules::no_longer_waiting;
use crate::audit::{Actor, action};
use crate::clock::now_ms;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/status",
            get(|State(s): State<Arc<AppState>>| async move { axum::Json(status(&s)) }),
        )
        .route("/api/sessions", get(list_sessions))
        .route("/api/sessions/{key}", get(show_session))
        .route("/api/sessions/{key}/reset", post(reset_session))
        .route("/api/sessions/{key}/cancel", post(cancel_session))
        .route("/api/usage", get(usage))
        .route("/api/approvals", get(list_approvals))
        .route("/api/approvals/{id}/approve", post(approve_call))
        .route("/api/approvals/{id}/deny", post(deny_call))
        .route("/api/pairing", get(list_pairing))
        .route("/api/pairing/{channel}/{code}/approve", post(approve))
        .route("/api/pairing/{channel}/{code}/deny", post(deny))
        .route("/api/allowlist", get(list_allowed))
        .route("/api/allowlist/remove", post(remove_allowed))
        .route("/api/forget", post(super::forget::forget_handler))
        .route(
            "/api/channels/{channel}/{account}/restart",
            post(restart_channel),
        )
        .route(
            "/api/config/reload",
            post(|State(s): State<Arc<AppState>>, by: Actor| async move {
                config_reload(&s, &by, "api").await.map(axum::Json)
            }),
        )
}

/// Read the config again and apply what changed (`switchboard config
/// reload`, SIGHUP, a save from the UI). A config that does not load or
/// cannot be built is refused with `422` and changes nothing.
pub(crate) async fn config_reload(
    state: &AppState,
    by: &Actor,
    via: &str,
) -> Result<Value, ApiError> {
    let Some(reload) = &state.reload else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "reload_unavailable",
            "this gateway cannot reload its config; restart it instead",
        ));
    };
    match reload.reload(via).await {
        Ok(outcome) => {
            let detail = json!(outcome);
            let target = state.config_path.as_ref().map_or_else(
                || "(no config file)".to_string(),
                |p| p.display().to_string(),
            );
            state
                .audit
                .record(by, action::CONFIG_RELOADED, &target, detail.clone())
                .await;
            let mut v = detail;
            v["reloaded"] = json!(true);
            v["summary"] = json!(outcome.summary());
            Ok(v)
        }
        Err(crate::reload::ReloadError::Invalid(e)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            format!("the config was not reloaded and nothing was changed: {e}"),
        )),
        Err(crate::reload::ReloadError::Failed(e)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_failed",
            format!("the config was not reloaded and nothing was changed: {e}"),
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LimitQuery {
    pub limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SinceQuery {
    /// ms since the epoch; default: the last local midnight.
    pub since_ms: Option<i64>,
}

/// Tokens per agent since a moment (default: today).
pub(crate) async fn usage_by_agent(
    state: &AppState,
    since: Option<i64>,
) -> Result<Value, ApiError> {
    let since = since.unwrap_or_else(crate::clock::local_midnight_ms);
    let rows = state
        .store
        .usage_by_agent(since)
        .await
        .map_err(ApiError::internal)?;
    let agents: serde_json::Map<String, Value> = rows
        .into_iter()
        .map(|(a, t)| (a, counts_json(&t)))
        .collect();
    Ok(json!({ "since_ms": since, "agents": agents }))
}

/// Token counts as JSON, with their cost in dollars (`cost_usd`) next to
/// `cost_micros`.
fn counts_json(t: &switchboard_memory::TokenCounts) -> Value {
    let mut v = json!(t);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "cost_usd".into(),
            json!(crate::telemetry::cost::micros_to_usd(t.cost_micros)),
        );
    }
    v
}

async fn usage(
    State(s): State<Arc<AppState>>,
    Query(q): Query<SinceQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    usage_by_agent(&s, q.since_ms).await.map(axum::Json)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AllQuery {
    /// Include decided requests.
    #[serde(default)]
    pub all: bool,
}

/// Approval requests, newest first.
pub(crate) async fn approvals_list(state: &AppState, all: bool) -> Result<Value, ApiError> {
    let list = state
        .store
        .approvals_list(!all, 200)
        .await
        .map_err(ApiError::internal)?;
    Ok(json!({ "approvals": list }))
}

/// Decide one approval request as `by` (recorded in the audit log).
pub(crate) async fn approval_decide(
    state: &AppState,
    id: &str,
    approve: bool,
    by: &Actor,
) -> Result<Value, ApiError> {
    match state
        .approvals
        .resolve(id, approve, by)
        .await
        .map_err(ApiError::internal)?
    {
        Resolution::Decided(r) => Ok(json!({ "approval": r })),
        Resolution::NotWaiting(r) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "approval_not_waiting",
            format!(
                "{} Nothing was run; list the waiting ones with `switchboard approvals list`",
                no_longer_waiting(&r)
            ),
        )),
        Resolution::Unknown => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_approval",
            format!(
                "there is no approval request `{id}`: list the waiting ones with `switchboard approvals list`"
            ),
        )),
        Resolution::Refused(why) => Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", why)),
    }
}

async fn list_approvals(
    State(s): State<Arc<AppState>>,
    Query(q): Query<AllQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    approvals_list(&s, q.all).await.map(axum::Json)
}

// Who decides through the REST API is the request's [`Actor`]: `cli`
// when it comes from `switchboard`'s own command line, else `api` (or
// `ui` for a signed-in browser's script).

async fn approve_call(
    State(s): State<Arc<AppState>>,
    by: Actor,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    approval_decide(&s, &id, true, &by).await.map(axum::Json)
}

async fn deny_call(
    State(s): State<Arc<AppState>>,
    by: Actor,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    approval_decide(&s, &id, false, &by).await.map(axum::Json)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ChannelQuery {
    pub channel: Option<String>,
}

/// The gateway's health and counters.
pub(crate) fn status(state: &AppState) -> Value {
    let sessions = state.pipeline.sessions();
    let ctx = sessions.context();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": (now_ms() - state.started_ms) / 1000,
        "ready": state.ready.load(std::sync::atomic::Ordering::Acquire),
        "default_agent": state.agents.load().first(),
        "agents": state.agents.load().as_slice(),
        "sessions_in_memory": sessions.active(),
        "runs_in_flight": sessions.running(),
        "runs_waiting_for_a_slot": ctx.runs_waiting.load(std::sync::atomic::Ordering::Relaxed),
        "turns_done": ctx.turns_done.load(std::sync::atomic::Ordering::Relaxed),
        "turns_failed": ctx.turns_failed.load(std::sync::atomic::Ordering::Relaxed),
        "components": state.health.snapshot(),
        // For replicas: who is alive, their last heartbeats, who holds
        // which lease. `null` for a gateway on its own.
        "cluster": state.cluster.as_ref().map(|c| c.view()),
    })
}

pub(crate) async fn sessions_list(state: &AppState, limit: Option<u32>) -> Result<Value, ApiError> {
    let list = state
        .store
        .sessions_list(limit.unwrap_or(100).min(10_000))
        .await
        .map_err(ApiError::internal)?;
    Ok(json!({ "sessions": list }))
}

pub(crate) async fn session_show(
    state: &AppState,
    key: &str,
    limit: Option<u32>,
) -> Result<Value, ApiError> {
    let Some(session) = state
        .store
        .session_get(key)
        .await
        .map_err(ApiError::internal)?
    else {
        return Err(no_session(key));
    };
    let transcript = state
        .store
        .transcript(&session.session_id, limit.unwrap_or(200).min(10_000))
        .await
        .map_err(ApiError::internal)?;
    let usage = state
        .store
        .usage_for_session(key, session.updated_at)
        .await
        .map_err(ApiError::internal)?;
    let all_time = state
        .store
        .usage_for_session(key, 0)
        .await
        .map_err(ApiError::internal)?;
    Ok(
        json!({ "session": session, "transcript": transcript, "usage": counts_json(&usage), "usage_all_generations": counts_json(&all_time) }),
    )
}

pub(crate) async fn session_reset(state: &AppState, key: &str) -> Result<Value, ApiError> {
    let Some(session) = state
        .store
        .session_get(key)
        .await
        .map_err(ApiError::internal)?
    else {
        return Err(no_session(key));
    };
    let fresh = state
        .store
        .session_reset(key, &session.agent, now_ms())
        .await
        .map_err(ApiError::internal)?;
    Ok(json!({ "session": fresh, "previous_session_id": session.session_id }))
}

/// Cancel the running turn of a session.
pub(crate) fn session_cancel(state: &AppState, key: &str) -> Value {
    json!({ "cancelled": state.pipeline.sessions().cancel(key) })
}

async fn cancel_session(
    State(s): State<Arc<AppState>>,
    Path(key): Path<String>,
) -> axum::Json<Value> {
    axum::Json(session_cancel(&s, &key))
}

fn no_session(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_session",
        format!("there is no session `{key}`: list them with `switchboard sessions list`"),
    )
}

pub(crate) async fn pairing_list(
    state: &AppState,
    channel: Option<&str>,
) -> Result<Value, ApiError> {
    let list = state
        .store
        .pairing_list(channel, now_ms())
        .await
        .map_err(ApiError::internal)?;
    Ok(json!({ "pending": list }))
}

/// Approve or deny a pairing code as `by` (recorded in the audit log).
pub(crate) async fn pairing_decide(
    state: &AppState,
    channel: &str,
    code: &str,
    approve: bool,
    by: &Actor,
) -> Result<Value, ApiError> {
    let found = if approve {
        state.pipeline.approve_pairing(channel, code, by).await
    } else {
        state.pipeline.deny_pairing(channel, code, by).await
    }
    .map_err(ApiError::internal)?;
    match found {
        Some(r) => Ok(json!({ "approved": approve, "request": r })),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_code",
            format!(
                "no pending pairing code `{code}` on channel `{channel}` (codes expire after 1 hour): list them with `switchboard pairing list`"
            ),
        )),
    }
}

/// Senders on the stored allowlist (approved pairings), of one channel or
/// of all. Senders in a channel's `allow_from` in the config are not here.
pub(crate) async fn allow_list(state: &AppState, channel: Option<&str>) -> Result<Value, ApiError> {
    let list = state
        .store
        .allow_list(channel)
        .await
        .map_err(ApiError::internal)?;
    Ok(json!({ "allowed": list }))
}

/// Take a sender off the stored allowlist: their next message is treated
/// like a stranger's again (under `dm_policy = "pairing"` they get a code).
/// Recorded in the audit log as done `by`.
pub(crate) async fn allow_remove(
    state: &AppState,
    channel: &str,
    account: &str,
    sender_id: &str,
    by: &Actor,
) -> Result<Value, ApiError> {
    let removed = state
        .store
        .allow_remove(channel, account, sender_id)
        .await
        .map_err(ApiError::internal)?;
    if !removed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_allowlisted",
            format!(
                "sender `{sender_id}` is not on the allowlist of {channel}/{account} (removed already?): list it with GET /api/allowlist or on the Pairing page"
            ),
        ));
    }
    tracing::info!(channel, account, sender = %sender_id, "sender removed from the allowlist");
    state
        .audit
        .record(
            by,
            action::ALLOWLIST_REMOVED,
            &crate::approvals::rules::sender_ref(channel, sender_id),
            json!({ "account": account }),
        )
        .await;
    Ok(json!({
        "removed": true,
        "channel": channel,
        "account": account,
        "sender_id": sender_id,
    }))
}

/// Restart the listener of channel account `channel`/`account`: its
/// current run is stopped and the next starts at once.
pub(crate) fn channel_restart(
    state: &AppState,
    channel: &str,
    account: &str,
) -> Result<Value, ApiError> {
    let name = format!("channel:{channel}/{account}");
    if !state.restarts.restart(&name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_listener",
            format!(
                "there is no running listener {name}; check the channel and account names with `switchboard status` (only configured accounts run one)"
            ),
        ));
    }
    tracing::info!(component = %name, "listener restart asked for");
    Ok(json!({ "restarting": true, "component": name }))
}

#[derive(Debug, Deserialize)]
struct AllowRemoveBody {
    channel: String,
    account: String,
    sender_id: String,
}

async fn list_allowed(
    State(s): State<Arc<AppState>>,
    Query(q): Query<ChannelQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    allow_list(&s, q.channel.as_deref()).await.map(axum::Json)
}

async fn remove_allowed(
    State(s): State<Arc<AppState>>,
    by: Actor,
    axum::Json(b): axum::Json<AllowRemoveBody>,
) -> Result<axum::Json<Value>, ApiError> {
    allow_remove(&s, &b.channel, &b.account, &b.sender_id, &by)
        .await
        .map(axum::Json)
}

async fn restart_channel(
    State(s): State<Arc<AppState>>,
    Path((channel, account)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    channel_restart(&s, &channel, &account).map(axum::Json)
}

async fn list_sessions(
    State(s): State<Arc<AppState>>,
    Query(q): Query<LimitQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    sessions_list(&s, q.limit).await.map(axum::Json)
}

async fn show_session(
    State(s): State<Arc<AppState>>,
    Path(key): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    session_show(&s, &key, q.limit).await.map(axum::Json)
}

async fn reset_session(
    State(s): State<Arc<AppState>>,
    Path(key): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    session_reset(&s, &key).await.map(axum::Json)
}

async fn list_pairing(
    State(s): State<Arc<AppState>>,
    Query(q): Query<ChannelQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    pairing_list(&s, q.channel.as_deref()).await.map(axum::Json)
}

async fn approve(
    State(s): State<Arc<AppState>>,
    by: Actor,
    Path((channel, code)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    pairing_decide(&s, &channel, &code, true, &by)
        .await
        .map(axum::Json)
}

async fn deny(
    State(s): State<Arc<AppState>>,
    by: Actor,
    Path((channel, code)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    pairing_decide(&s, &channel, &code, false, &by)
        .await
        .map(axum::Json)
}
