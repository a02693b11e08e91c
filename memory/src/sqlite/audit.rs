//! The audit log: records appended at the next seq only, listed, and
//! pruned behind a checkpoint. The HMACs are the caller's; this file only
//! keeps the order.

use sqlx::{Connection, Row};

use super::SqliteStore;
use crate::StoreError;
use crate::records::{AuditCheckpoint, AuditRecord};

fn record_row(r: &sqlx::sqlite::SqliteRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        source: r.try_get("source")?,
        detail: r.try_get("detail")?,
        prev: r.try_get("prev")?,
        mac: r.try_get("mac")?,
    })
}

fn checkpoint_row(r: &sqlx::sqlite::SqliteRow) -> Result<AuditCheckpoint, StoreError> {
    Ok(AuditCheckpoint {
        seq: r.try_get("seq")?,
        mac: r.try_get("mac")?,
        at: r.try_get("at")?,
        checkpoint_mac: r.try_get("checkpoint_mac")?,
    })
}

/// Whether `e` is a primary key (or unique) violation.
fn taken(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| {
        d.is_unique_violation() || d.message().contains("UNIQUE constraint failed")
    })
}

impl SqliteStore {
    pub(super) async fn append_audit(&self, r: AuditRecord) -> Result<i64, StoreError> {
        let seq = r.seq;
        // One statement, so atomic: written only at one past the last
        // record (or the checkpoint), never twice at one seq.
        let done = sqlx::query(
            "INSERT INTO audit (seq, at, actor, action, target, source, detail, prev, mac) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 \
             WHERE ?1 = COALESCE((SELECT MAX(seq) FROM audit), \
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
        .execute(&mut *self.writer().await?)
        .await;
        let conflict = || {
            StoreError::Conflict(format!(
                "audit record {seq} is not the next one (another writer appended first)"
            ))
        };
        match done {
            Ok(d) if d.rows_affected() == 1 => Ok(seq),
            Ok(_) => Err(conflict()),
            Err(e) if taken(&e) => Err(conflict()),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn last_audit(&self) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        if let Some(r) = row {
            return Ok(Some((r.try_get("seq")?, r.try_get("mac")?)));
        }
        Ok(self.checkpoint_audit().await?.map(|c| (c.seq, c.mac)))
    }

    pub(super) async fn list_audit(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit WHERE at >= ? ORDER BY seq DESC LIMIT ?")
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.iter().map(record_row).collect()
    }

    pub(super) async fn all_audit(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit ORDER BY seq")
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.iter().map(record_row).collect()
    }

    pub(super) async fn prune_audit(&self, c: AuditCheckpoint) -> Result<u64, StoreError> {
        // The delete comes first, so the transaction holds the write lock
        // from its first statement; it deletes nothing unless the record
        // the checkpoint names is there as named.
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let done = sqlx::query(
            "DELETE FROM audit WHERE seq <= ?1 \
             AND EXISTS (SELECT 1 FROM audit WHERE seq = ?1 AND mac = ?2)",
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
            "INSERT INTO audit_checkpoint (id, seq, mac, at, checkpoint_mac) VALUES (1, ?, ?, ?, ?) \
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

    pub(super) async fn checkpoint_audit(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        let row =
            sqlx::query("SELECT seq, mac, at, checkpoint_mac FROM audit_checkpoint WHERE id = 1")
                .fetch_optional(&mut *self.reader().await?)
                .await?;
        row.as_ref().map(checkpoint_row).transpose()
    }
}
