//! `/api/cron…` (the scheduler's jobs) and `POST /hooks/custom/<name>`
//! (inbound webhooks that start a turn).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::config::{CronJobConfig, MAX_HOOK_BODY_BYTES};
use crate::cron::runner::Cron;
use crate::cron::{parse, template};

/// The control API's cron routes (behind the token).
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/cron", get(list).post(add))
        .route("/api/cron/{name}", get(show).delete(remove))
        .route("/api/cron/{name}/run", post(run))
        .route("/api/cron/{name}/pause", post(pause))
        .route("/api/cron/{name}/resume", post(resume))
        .route("/api/cron/{name}/remove", post(remove))
}

/// The inbound webhooks (open: each checks its own secret).
pub(crate) fn hook_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/hooks/custom/{name}", post(hook))
        .layer(DefaultBodyLimit::max(MAX_HOOK_BODY_BYTES))
}

fn scheduler(state: &AppState) -> Result<&Arc<Cron>, ApiError> {
    state.cron.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cron_unavailable",
            "the scheduler is not running",
        )
    })
}

fn no_job(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_job",
        format!("there is no job `{name}`: list them with `switchboard cron list`"),
    )
}

async fn list(State(s): State<Arc<AppState>>) -> Result<axum::Json<Value>, ApiError> {
    let jobs = scheduler(&s)?.list().await.map_err(ApiError::internal)?;
    Ok(axum::Json(json!({ "jobs": jobs })))
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    history: Option<u32>,
}

async fn show(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let history = q.history.unwrap_or(20).clamp(1, 1000);
    match scheduler(&s)?
        .show(&name, history)
        .await
        .map_err(ApiError::internal)?
    {
        Some((job, upcoming, runs)) => Ok(axum::Json(
            json!({ "job": job, "upcoming": upcoming, "runs": runs }),
        )),
        None => Err(no_job(&name)),
    }
}

async fn run(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    match scheduler(&s)?.run_now(&name).await {
        Ok(Some(slot)) => {
            tracing::info!(job = %name, "a job was started by the operator");
            Ok(axum::Json(
                json!({ "started": true, "job": name, "slot_ms": slot }),
            ))
        }
        Ok(None) => Err(no_job(&name)),
        Err(why) => Err(ApiError::new(StatusCode::CONFLICT, "job_running", why)),
    }
}

async fn set_paused(s: &AppState, name: &str, paused: bool) -> Result<axum::Json<Value>, ApiError> {
    if scheduler(s)?
        .set_paused(name, paused)
        .await
        .map_err(ApiError::internal)?
    {
        tracing::info!(job = %name, paused, "a job was paused or resumed by the operator");
        Ok(axum::Json(json!({ "job": name, "paused": paused })))
    } else {
        Err(no_job(name))
    }
}

async fn pause(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    set_paused(&s, &name, true).await
}

async fn resume(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    set_paused(&s, &name, false).await
}

/// `POST /api/cron`: `{"name": "...", ...the keys of [cron.jobs.<name>]}`.
#[derive(Debug, Deserialize)]
struct AddBody {
    name: String,
    #[serde(flatten)]
    job: Value,
}

async fn add(
    State(s): State<Arc<AppState>>,
    axum::Json(b): axum::Json<AddBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let cron = scheduler(&s)?;
    let job: CronJobConfig = serde_json::from_value(b.job).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_job",
            format!("the job is not valid: {e}; give the keys of [cron.jobs.<name>] (message and one of schedule, every, at)"),
        )
    })?;
    cron.add(&b.name, job)
        .await
        .map_err(|why| ApiError::new(StatusCode::BAD_REQUEST, "bad_job", why))?;
    tracing::info!(job = %b.name, "a job was added at run time");
    Ok(axum::Json(json!({ "added": true, "job": b.name })))
}

async fn remove(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    match scheduler(&s)?.remove(&name).await {
        Ok(true) => Ok(axum::Json(json!({ "removed": true, "job": name }))),
        Ok(false) => Err(no_job(&name)),
        Err(why) => Err(ApiError::new(StatusCode::CONFLICT, "job_in_config", why)),
    }
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// Whether the request proves it knows `secret`: as a bearer token, or as
/// the HMAC-SHA256 of the body in `signature_header` (`sha256=<hex>`).
fn authentic(headers: &HeaderMap, body: &[u8], secret: &str, signature_header: &str) -> bool {
    use hmac::Mac as _;
    use subtle::ConstantTimeEq as _;
    if let Some(token) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return bool::from(token.trim().as_bytes().ct_eq(secret.as_bytes()));
    }
    let Some(sig) = headers
        .get(signature_header)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().strip_prefix("sha256=").unwrap_or(v.trim()))
    else {
        return false;
    };
    let Ok(given) = hex_decode(sig) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn hex_decode(s: &str) -> Result<Vec<u8>, ()> {
    if !s.len().is_multiple_of(2) {
        return Err(());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).ok_or(())?, 16).map_err(|_| ()))
        .collect()
}

async fn hook(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let client = s.client(&headers, &extensions);
    if let Some(refused) = s.throttled(client) {
        return refused;
    }
    let Some(cron) = s.cron.clone() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no_such_hook",
            "no webhooks are configured",
        );
    };
    let Some(hook) = cron.hook(&name).cloned() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no_such_hook",
            &format!("there is no hook `{name}`: add [hooks.{name}] to the config"),
        );
    };
    // The hook's own limit, before anything is read.
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &format!(
                "the body is over this hook's max_body_bytes ({})",
                hook.max_body_bytes
            ),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > hook.max_body_bytes) {
        return too_large();
    }
    let body: Bytes = match axum::body::to_bytes(body, hook.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    if !authentic(&headers, &body, &hook.secret, &hook.signature_header) {
        s.throttle.failed(client);
        tracing::warn!(hook = %name, "a webhook call without the right secret was refused");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "bad_secret",
            &format!(
                "send the hook's secret as `Authorization: Bearer <secret>`, or the body's HMAC-SHA256 as `{}: sha256=<hex>`",
                hook.signature_header
            ),
        );
    }
    let posted: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "bad_json",
                    &format!("the body is not JSON: {e}"),
                );
            }
        }
    };
    let delivery = headers
        .get(hook.delivery_id_header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let rendered = template::render(&hook.message, &posted);
    let deliver = match parse::parse_deliver(&hook.deliver) {
        Ok(d) => d,
        Err(why) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "bad_deliver", &why),
    };
    let agent = hook
        .agent
        .clone()
        .unwrap_or_else(|| cron.default_agent().to_string());
    let session_key = format!("agent:{agent}:hook:{name}");
    let run_id = format!("hook:{name}:{delivery}");
    let message_id = format!("{}{run_id}", switchboard_channel::GATEWAY_MESSAGE_PREFIX);
    let begun = match cron
        .begin(
            &deliver,
            &format!("hook:{name}"),
            &rendered.text,
            &agent,
            &session_key,
            &message_id,
        )
        .await
    {
        Ok(b) => b,
        Err(why) => return refuse(StatusCode::SERVICE_UNAVAILABLE, "not_started", &why),
    };
    let duplicate = begun.duplicate;
    if !duplicate {
        let (cron, name, run_id) = (cron.clone(), name.clone(), run_id.clone());
        tokio::spawn(async move {
            let outcome = match cron.wait(begun).await {
                Ok(answer) => {
                    let body = json!({ "hook": name, "run_id": run_id, "answer": answer });
                    cron.deliver_to_url(&deliver, &body).await
                }
                Err(why) => Err(why),
            };
            match outcome {
                Ok(()) => tracing::info!(hook = %name, "a webhook's turn was answered"),
                Err(why) => tracing::warn!(hook = %name, error = %why, "a webhook's turn failed"),
            }
        });
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "run_id": run_id,
            "duplicate": duplicate,
            "missing_fields": rendered.missing,
        })),
    )
        .into_response()
}
