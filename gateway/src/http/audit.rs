//! `GET /api/audit`: the audit log, newest first, with the state of its
//! chain; the Audit page reads the same.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use switchboard_memory::AuditRecord;

use super::{ApiError, AppState};
use crate::audit::{Verification, record_json};

/// Records shown when no `limit` is asked for.
pub(crate) const DEFAULT_LIMIT: u32 = 200;
/// The most records one answer holds.
const MAX_LIMIT: u32 = 10_000;

/// The routes (behind the token, like the rest of the control API).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/audit", get(list))
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    /// ms since the epoch; default: from the start.
    since_ms: Option<i64>,
    /// At most this many (default 200, at most 10,000).
    limit: Option<u32>,
}

/// Records that happened at `since` or later, newest first, at most
/// `limit`, and the chain as verified now.
pub(crate) async fn audit_log(
    state: &AppState,
    since: Option<i64>,
    limit: Option<u32>,
) -> Result<(Vec<AuditRecord>, Verification), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let records = state
        .audit
        .list(since.unwrap_or(0), limit)
        .await
        .map_err(ApiError::internal)?;
    let verification = state.audit.verify().await.map_err(ApiError::internal)?;
    Ok((records, verification))
}

async fn list(
    State(s): State<Arc<AppState>>,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let (records, verification) = audit_log(&s, q.since_ms, q.limit).await?;
    let records: Vec<Value> = records.iter().map(record_json).collect();
    Ok(axum::Json(
        json!({ "records": records, "chain": verification.to_json() }),
    ))
}
