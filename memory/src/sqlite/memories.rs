//! Long-term memories and secrets.

use sqlx::Row;

use super::SqliteStore;
use crate::{MemoryRecord, SecretInfo, StoreError};

impl SqliteStore {
    pub(super) async fn insert_memory(&self, m: MemoryRecord) -> Result<(), StoreError> {
        let tags = serde_json::to_string(&m.tags).unwrap_or_else(|_| "[]".into());
        let vector = m
            .vector
            .as_ref()
            .map(|v| serde_json::to_string(v).unwrap_or_default());
        sqlx::query(
            "INSERT INTO memories (id, agent, owner, text, tags, vector, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&m.id)
        .bind(&m.agent)
        .bind(&m.owner)
        .bind(&m.text)
        .bind(tags)
        .bind(vector)
        .bind(m.created_at)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    pub(super) async fn list_memories(
        &self,
        agent: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Vec<MemoryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM memories WHERE (?1 IS NULL OR agent = ?1) AND (?2 IS NULL OR owner = ?2) \
             ORDER BY created_at, rowid",
        )
        .bind(agent)
        .bind(owner)
        .fetch_all(&mut *self.reader().await?)
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

    pub(super) async fn delete_memory(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM memories WHERE id = ?")
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn set_secret(
        &self,
        name: &str,
        value: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO secrets (name, value, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET value = ?2, updated_at = ?3",
        )
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    pub(super) async fn get_secret(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub(super) async fn list_secrets(&self) -> Result<Vec<SecretInfo>, StoreError> {
        let rows = sqlx::query("SELECT name, updated_at FROM secrets ORDER BY name")
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SecretInfo {
                    name: r.try_get(0)?,
                    updated_at: r.try_get(1)?,
                })
            })
            .collect()
    }

    pub(super) async fn remove_secret(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM secrets WHERE name = ?")
            .bind(name)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
