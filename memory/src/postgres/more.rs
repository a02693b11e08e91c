//! The PostgreSQL store's channel state, memories and audit log.

use sqlx::Row;

use super::PgStore;
use crate::records::{AuditCheckpoint, AuditRecord};
use crate::{MemoryRecord, StoreError};

impl PgStore {
    /// Run a `DELETE … WHERE <key> = $1`; whether a row went.
    pub(super) async fn delete_one(
        &self,
        sql: &'static str,
        key: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql).bind(key).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn state_get(
        &self,
        channel: &str,
        account: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM channel_state WHERE channel = $1 AND account = $2 AND key = $3",
        )
        .bind(channel)
        .bind(account)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
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
        let (keys, values): (Vec<&str>, Vec<&str>) = entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .unzip();
        // One statement, so all or none; a key given twice keeps its last value.
        sqlx::query(
            "INSERT INTO channel_state (channel, account, key, value, updated_at) \
             SELECT DISTINCT ON (k) $1, $2, k, v, $5 \
             FROM unnest($3::TEXT[], $4::TEXT[]) WITH ORDINALITY AS e(k, v, n) ORDER BY k, n DESC \
             ON CONFLICT (channel, account, key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(channel)
        .bind(account)
        .bind(keys)
        .bind(values)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
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
        sqlx::query(
            "DELETE FROM channel_state WHERE channel = $1 AND account = $2 AND key = ANY($3)",
        )
        .bind(channel)
        .bind(account)
        .bind(keys)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn state_list(
        &self,
        channel: &str,
        account: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, value FROM channel_state \
             WHERE channel = $1 AND account = $2 AND starts_with(key, $3) ORDER BY key",
        )
        .bind(channel)
        .bind(account)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    pub(super) async fn insert_memory(&self, m: MemoryRecord) -> Result<(), StoreError> {
        let tags = serde_json::to_string(&m.tags).unwrap_or_else(|_| "[]".into());
        let vector = m
            .vector
            .as_ref()
            .map(|v| serde_json::to_string(v).unwrap_or_default());
        sqlx::query(
            "INSERT INTO memories (id, agent, owner, text, tags, vector, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&m.id)
        .bind(&m.agent)
        .bind(&m.owner)
        .bind(&m.text)
        .bind(tags)
        .bind(vector)
        .bind(m.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn list_memories(
        &self,
        agent: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Vec<MemoryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM memories WHERE ($1::TEXT IS NULL OR agent = $1) \
             AND ($2::TEXT IS NULL OR owner = $2) ORDER BY created_at, pos",
        )
        .bind(agent)
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                MemoryRecord::from_columns(
                    row.try_get("id")?,
                    row.try_get("agent")?,
                    row.try_get("owner")?,
                    row.try_get("text")?,
                    row.try_get::<&str, _>("tags")?,
                    row.try_get::<Option<&str>, _>("vector")?,
                    row.try_get("created_at")?,
                )
            })
            .collect()
    }

    pub(super) async fn append_audit(&self, r: AuditRecord) -> Result<i64, StoreError> {
        let seq = r.seq;
        let done = sqlx::query(
            "INSERT INTO audit (seq, at, actor, action, target, source, detail, prev, mac) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
             WHERE $1 = COALESCE((SELECT MAX(seq) FROM audit), \
             (SELECT seq FROM audit_checkpoint WHERE id = 1), 0) + 1",
        )
        .bind(r.seq)
        .bind(r.at)
        .bind(&r.actor)
        .bind(&r.action)
        .bind(&r.target)
        .bind(&r.source)
        .bind(&r.detail)
        .bind(&r.prev)
        .bind(&r.mac)
        .execute(&self.pool)
        .await;
        let conflict = || {
            StoreError::Conflict(format!(
                "audit record {seq} is not the next one (another writer appended first)"
            ))
        };
        match done {
            Ok(d) if d.rows_affected() == 1 => Ok(seq),
            Ok(_) => Err(conflict()),
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Err(conflict())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn prune_audit(&self, c: AuditCheckpoint) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "DELETE FROM audit WHERE seq <= $1 \
             AND EXISTS (SELECT 1 FROM audit WHERE seq = $1 AND mac = $2)",
        )
        .bind(c.seq)
        .bind(&c.mac)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "audit record {} is not there with the HMAC the checkpoint names",
                c.seq
            )));
        }
        sqlx::query(
            "INSERT INTO audit_checkpoint (id, seq, mac, at, checkpoint_mac) VALUES (1, $1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, mac = excluded.mac, \
             at = excluded.at, checkpoint_mac = excluded.checkpoint_mac",
        )
        .bind(c.seq)
        .bind(&c.mac)
        .bind(c.at)
        .bind(&c.checkpoint_mac)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
