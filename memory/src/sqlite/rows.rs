//! Rows read back into records, and deletes run in batches.

use sqlx::Row;

use super::SqliteStore;

use crate::{IngressRecord, IngressStatus, Role, StoreError, TranscriptEntry};

pub(super) fn transcript_row(row: &sqlx::sqlite::SqliteRow) -> Result<TranscriptEntry, StoreError> {
    Ok(TranscriptEntry {
        seq: row.try_get("seq")?,
        session_id: row.try_get("session_id")?,
        role: Role::parse(&row.try_get::<String, _>("role")?)?,
        content: row.try_get("content")?,
        ingress_id: row.try_get("ingress_id")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn ingress_row(row: &sqlx::sqlite::SqliteRow) -> Result<IngressRecord, StoreError> {
    Ok(IngressRecord {
        id: row.try_get("id")?,
        channel: row.try_get("channel")?,
        account: row.try_get("account")?,
        message_id: row.try_get("message_id")?,
        payload: row.try_get("payload")?,
        status: IngressStatus::parse(&row.try_get::<String, _>("status")?)?,
        attempts: row.try_get("attempts")?,
        error: row.try_get("error")?,
        received_at: row.try_get("received_at")?,
        updated_at: row.try_get("updated_at")?,
        reply_message_id: row.try_get("reply_message_id")?,
        claimed_by: None,
    })
}

/// Rows a retention prune deletes per statement.
const PRUNE_BATCH: i64 = 1000;

/// Run `delete` (the cutoff bound as `?1`, the batch size as `?2`) until
/// it deletes less than a batch, so that a first prune of a large
/// database does not hold the one writer (and with it intake) for long.
pub(super) async fn delete_in_batches(
    store: &SqliteStore,
    delete: &'static str,
    before: i64,
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let done = sqlx::query(delete)
            .bind(before)
            .bind(PRUNE_BATCH)
            .execute(&mut *store.writer().await?)
            .await?
            .rows_affected();
        total += done;
        if done < PRUNE_BATCH as u64 {
            return Ok(total);
        }
    }
}
