//! `POST /api/forget`: forget one person.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::audit::{Actor, action};

/// Who to forget.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForgetBody {
    /// The channel, e.g. `telegram`.
    pub channel: String,
    /// Their sender id on it.
    pub sender: String,
}

/// Stop the person's running turns, then delete everything of theirs
/// and destroy their keys. Recorded in the audit log as done `by`, naming
/// the person by a keyed digest of their id only (the log keeps no id of
/// someone forgotten).
pub(crate) async fn forget(
    state: &AppState,
    channel: &str,
    sender: &str,
    by: &Actor,
) -> Result<Value, ApiError> {
    if channel.trim().is_empty() || sender.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "give both `channel` (e.g. telegram) and `sender` (their sender id, as on the Pairing page)",
        ));
    }
    let subject = switchboard_memory::subject_of(channel, sender);
    let sessions = state
        .store
        .sessions_list(u32::MAX)
        .await
        .map_err(ApiError::internal)?;
    // A turn still running would write to the session after it is gone.
    for s in sessions
        .iter()
        .filter(|s| s.subject.as_deref() == Some(&subject))
    {
        state.pipeline.sessions().cancel(&s.key);
    }
    let report = state
        .store
        .forget(channel, sender)
        .await
        .map_err(ApiError::internal)?;
    if let Some(m) = state.pipeline.sessions().context().memories.as_ref() {
        m.forget_owner(&subject).await;
    }
    tracing::info!(
        channel,
        sessions = report.sessions,
        keys = report.keys,
        "a person was forgotten"
    );
    let target = format!("{channel}:#{}", state.audit.pseudonym(&subject));
    state
        .audit
        .record(
            by,
            action::FORGET,
            &target,
            json!({ "channel": channel, "removed": report }),
        )
        .await;
    Ok(json!({ "channel": channel, "sender": sender, "removed": report }))
}

pub(crate) async fn forget_handler(
    State(s): State<Arc<AppState>>,
    by: Actor,
    axum::Json(b): axum::Json<ForgetBody>,
) -> Result<axum::Json<Value>, ApiError> {
    forget(&s, &b.channel, &b.sender, &by).await.map(axum::Json)
}
