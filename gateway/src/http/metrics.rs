//! `GET /metrics`: the registry in the Prometheus text format, or
//! OpenMetrics (with exemplars) when the scraper's `Accept` asks for it.
//!
//! On the gateway's port it takes the control token or, when set,
//! `observability.metrics_token`; on `observability.metrics_bind`'s own
//! listener, `metrics_token` when set and nothing otherwise.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState, bearer};
use crate::health::State as Health;
use crate::telemetry::metrics::{
    ChannelLabels, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, wants_openmetrics,
};

/// `/metrics` on the gateway's port.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/metrics", get(on_gateway_port))
}

/// The router of `observability.metrics_bind`'s listener: `/metrics` only.
pub fn standalone(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(on_own_port))
        .with_state(state)
}

async fn on_gateway_port(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
) -> Response {
    let presented = bearer(&headers);
    let client = state.client(&headers, &extensions);
    if presented.is_some()
        && let Some(refused) = state.throttled(client)
    {
        return refused;
    }
    let scrape = state.scrape_token.as_ref();
    let ok = presented
        .as_deref()
        .is_some_and(|t| state.token.matches(t) || scrape.is_some_and(|s| s.matches(t)));
    if !ok {
        if presented.is_some() {
            state.throttle.failed(client);
        }
        return refused(presented.is_some());
    }
    metrics(&state, &headers).await
}

async fn on_own_port(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
) -> Response {
    if let Some(scrape) = state.scrape_token.as_ref() {
        let presented = bearer(&headers);
        let client = state.client(&headers, &extensions);
        if presented.is_some()
            && let Some(refused) = state.throttled(client)
        {
            return refused;
        }
        if !presented.as_deref().is_some_and(|t| scrape.matches(t)) {
            if presented.is_some() {
                state.throttle.failed(client);
            }
            return refused(presented.is_some());
        }
    }
    metrics(&state, &headers).await
}

fn refused(presented: bool) -> Response {
    let (code, message) = if presented {
        (
            "invalid_token",
            "the bearer token is wrong: scrape with observability.metrics_token or the control token",
        )
    } else {
        (
            "missing_token",
            "/metrics needs `Authorization: Bearer <token>`: give the scraper observability.metrics_token (Prometheus: `authorization: { credentials: ... }`) or the control token",
        )
    };
    ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response()
}

async fn metrics(state: &AppState, headers: &HeaderMap) -> Response {
    if !state.config.load().observability.metrics {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics_off",
            "metrics are turned off: set observability.metrics = true",
        )
        .into_response();
    }
    refresh(state).await;
    let openmetrics = wants_openmetrics(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let telemetry = &state.pipeline.sessions().context().telemetry;
    let body = telemetry.metrics.render(openmetrics);
    let kind = if openmetrics {
        OPENMETRICS_CONTENT_TYPE
    } else {
        PROMETHEUS_CONTENT_TYPE
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// Set the gauges read from their sources at scrape time.
async fn refresh(state: &AppState) {
    let sessions = state.pipeline.sessions();
    let ctx = sessions.context();
    let m = &ctx.telemetry.metrics;
    m.sessions_in_memory.set(sessions.active() as i64);
    m.runs_active.set(sessions.running() as i64);
    match state.store.ingress_pending_count().await {
        Ok(n) => {
            m.ingress_pending.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Err(e) => tracing::warn!(error = %e, "cannot count the pending messages"),
    }
    for (name, c) in state.health.snapshot() {
        let Some((channel, account)) = name
            .strip_prefix("channel:")
            .and_then(|n| n.split_once('/'))
        else {
            continue;
        };
        let labels = ChannelLabels {
            channel: channel.to_string(),
            account: account.to_string(),
        };
        m.channel_up
            .get_or_create(&labels)
            .set(i64::from(c.state == Health::Running));
        if let Some(ms) = c.last_event_ms {
            m.channel_last_event
                .get_or_create(&labels)
                .set(ms as f64 / 1000.0);
        }
    }
    let containers = ctx
        .workbench
        .as_ref()
        .and_then(|w| w.sandboxes())
        .map_or(0, |s| s.containers());
    m.sandbox_containers
        .set(i64::try_from(containers).unwrap_or(i64::MAX));
}
