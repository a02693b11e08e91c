//! A session's generations: a compaction's new one, written in one
//! transaction with its entries, and removing a session with its
//! transcript.

use super::SqliteStore;
use crate::{SessionRecord, Store, StoreError, TurnEntry};

impl SqliteStore {
    pub(super) async fn compact_session(
        &self,
        key: &str,
        from: &str,
        fresh: &str,
        entries: Vec<TurnEntry>,
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let fresh = fresh.to_string();
        // Only from generation `from`; the entries only where it moved on.
        let mut sql = String::from(
            "UPDATE sessions SET session_id = ?, updated_at = ?, last_active_at = ?, turns = 0 \
             WHERE key = ? AND session_id = ?;",
        );
        for _ in &entries {
            sql.push_str(
                "INSERT INTO transcript (session_id, role, content, ingress_id, created_at) \
                 SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE session_id = ?);",
            );
        }
        self.transact(&sql, |mut query| {
            query = query
                .bind(fresh.clone())
                .bind(now)
                .bind(now)
                .bind(key)
                .bind(from);
            for e in entries {
                query = query
                    .bind(fresh.clone())
                    .bind(e.role.as_str())
                    .bind(e.content)
                    .bind(e.ingress_id)
                    .bind(now)
                    .bind(fresh.clone());
            }
            query
        })
        .await?;
        Ok(self
            .session_get(key)
            .await?
            .filter(|s| s.session_id == fresh))
    }

    pub(super) async fn delete_session(&self, key: &str) -> Result<bool, StoreError> {
        if self.session_get(key).await?.is_none() {
            return Ok(false);
        }
        self.transact(
            "DELETE FROM transcript WHERE session_id = (SELECT session_id FROM sessions WHERE key = ?);\
             DELETE FROM sessions WHERE key = ?;",
            |query| query.bind(key).bind(key),
        )
        .await?;
        Ok(true)
    }
}
