//! The control API of long-term memory: list, search, export and delete,
//! for the CLI's `switchboard memory …`. Texts are decrypted by the store;
//! vectors never leave the gateway.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use switchboard_memory::MemoryRecord;

use super::{ApiError, AppState};
use crate::memories::{Memories, MemoryError};

/// The most memories one list or search answers with.
const MAX_LIMIT: usize = 10_000;
/// How many unless asked for another number.
const DEFAULT_LIMIT: usize = 100;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/memory", get(list))
        .route("/api/memory/export", get(export))
        .route("/api/memory/{id}", delete(remove))
        .route("/api/memory/{id}/delete", post(remove))
}

/// Which memories: of an agent and/or an owner (`""` is the agent-wide
/// scope), matching `q`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MemoryQuery {
    pub agent: Option<String>,
    pub owner: Option<String>,
    pub q: Option<String>,
    pub limit: Option<usize>,
}

/// A memory as the API shows it: without its vector.
#[derive(Debug, Serialize)]
pub(crate) struct MemoryView {
    id: String,
    agent: String,
    owner: String,
    text: String,
    tags: Vec<String>,
    created_at: i64,
    /// Whether it has an embedding.
    embedded: bool,
    /// Its rank score, in a ranked search.
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
}

impl MemoryView {
    fn of(r: MemoryRecord, score: Option<f32>) -> Self {
        Self {
            embedded: r.vector.is_some(),
            id: r.id,
            agent: r.agent,
            owner: r.owner,
            text: r.text,
            tags: r.tags,
            created_at: r.created_at,
            score,
        }
    }
}

fn service(state: &AppState) -> Option<&Arc<Memories>> {
    state.pipeline.sessions().context().memories.as_ref()
}

/// The stored memories of `q.agent` and `q.owner` (each optional), oldest
/// first.
async fn records(state: &AppState, q: &MemoryQuery) -> Result<Vec<MemoryRecord>, ApiError> {
    state
        .store
        .memory_list(q.agent.as_deref(), q.owner.as_deref())
        .await
        .map_err(ApiError::internal)
}

/// Memories newest first; with `q`, those matching it: ranked as the tools
/// rank them when both agent and owner are given, else those whose text or
/// a tag contains it (any case).
pub(crate) async fn memory_list(state: &AppState, q: &MemoryQuery) -> Result<Value, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let query = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let (Some(query), Some(agent), Some(owner), Some(m)) =
        (query, &q.agent, &q.owner, service(state))
    {
        let hits = m
            .search(agent, owner, query, limit)
            .await
            .map_err(|e| match e {
                MemoryError::Store(e) => ApiError::internal(e),
                other => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "memory_unavailable",
                    other.to_string(),
                ),
            })?;
        let list: Vec<MemoryView> = hits
            .into_iter()
            .map(|h| MemoryView::of(h.record, Some(h.score)))
            .collect();
        return Ok(json!({ "memories": list, "ranked": true }));
    }
    let needle = query.map(str::to_lowercase);
    let list: Vec<MemoryView> = records(state, q)
        .await?
        .into_iter()
        .rev()
        .filter(|r| {
            needle.as_deref().is_none_or(|n| {
                r.text.to_lowercase().contains(n)
                    || r.tags.iter().any(|t| t.to_lowercase().contains(n))
            })
        })
        .take(limit)
        .map(|r| MemoryView::of(r, None))
        .collect();
    Ok(json!({ "memories": list, "ranked": false }))
}

/// Every memory of `q.agent` and `q.owner` (each optional), oldest first,
/// without vectors.
pub(crate) async fn memory_export(state: &AppState, q: &MemoryQuery) -> Result<Value, ApiError> {
    let list: Vec<MemoryView> = records(state, q)
        .await?
        .into_iter()
        .map(|r| MemoryView::of(r, None))
        .collect();
    Ok(json!(list))
}

/// Delete one memory, from the store and from the search index.
pub(crate) async fn memory_delete(state: &AppState, id: &str) -> Result<Value, ApiError> {
    let deleted = match service(state) {
        Some(m) => m.delete(id).await,
        None => state.store.memory_delete(id).await,
    }
    .map_err(ApiError::internal)?;
    if !deleted {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_memory",
            format!(
                "there is no memory `{id}` (deleted already?): list them with `switchboard memory list`"
            ),
        ));
    }
    tracing::info!(id, "memory deleted by the operator");
    Ok(json!({ "deleted": true, "id": id }))
}

async fn list(
    State(s): State<Arc<AppState>>,
    Query(q): Query<MemoryQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    memory_list(&s, &q).await.map(axum::Json)
}

async fn export(
    State(s): State<Arc<AppState>>,
    Query(q): Query<MemoryQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    memory_export(&s, &q).await.map(axum::Json)
}

async fn remove(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    memory_delete(&s, &id).await.map(axum::Json)
}
