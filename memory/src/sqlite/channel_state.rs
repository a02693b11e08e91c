//! Channel adapters' own small state (a Discord session, last message
//! ids), by channel account and key.

use sqlx::Row;

use super::SqliteStore;
use crate::StoreError;

impl SqliteStore {
    pub(super) async fn state_get(
        &self,
        channel: &str,
        account: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT value FROM channel_state WHERE channel = ? AND account = ? AND key = ?",
        )
        .bind(channel)
        .bind(account)
        .bind(key)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        Ok(row.map(|r| r.try_get::<String, _>("value")).transpose()?)
    }

    pub(super) async fn state_set(
        &self,
        channel: &str,
        account: &str,
        entries: &[(String, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let one = "INSERT INTO channel_state (channel, account, key, value, updated_at) \
                   VALUES (?, ?, ?, ?, ?) \
                   ON CONFLICT (channel, account, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;";
        let sql = one.repeat(entries.len());
        self.transact(&sql, |mut query| {
            for (key, value) in entries {
                query = query
                    .bind(channel)
                    .bind(account)
                    .bind(key)
                    .bind(value)
                    .bind(now);
            }
            query
        })
        .await
    }

    pub(super) async fn state_remove(
        &self,
        channel: &str,
        account: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let one = "DELETE FROM channel_state WHERE channel = ? AND account = ? AND key = ?;";
        let sql = one.repeat(keys.len());
        self.transact(&sql, |mut query| {
            for key in keys {
                query = query.bind(channel).bind(account).bind(key);
            }
            query
        })
        .await
    }

    pub(super) async fn state_list(
        &self,
        channel: &str,
        account: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, value FROM channel_state \
             WHERE channel = ?1 AND account = ?2 AND substr(key, 1, length(?3)) = ?3 \
             ORDER BY key",
        )
        .bind(channel)
        .bind(account)
        .bind(prefix)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|r| -> Result<(String, String), StoreError> {
                Ok((r.try_get("key")?, r.try_get("value")?))
            })
            .collect()
    }
}
