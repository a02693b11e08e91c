//! Raw access for encryption at rest (reading and rewriting sealed
//! columns, the store's metadata, wiping freed pages) and forgetting a
//! person.

use sqlx::{Connection, Row};

use super::SqliteStore;
use crate::{Cell, Column, ForgetReport, StoreError};

/// The statement reading one sealed column: row id, binding context,
/// subject and value, after a row id, in row order.
fn select(column: Column) -> &'static str {
    match column {
        Column::TranscriptContent => {
            "SELECT t.rowid, t.session_id, s.subject, t.content FROM transcript t \
             LEFT JOIN sessions s ON s.session_id = t.session_id \
             WHERE t.rowid > ? ORDER BY t.rowid LIMIT ?"
        }
        Column::IngressPayload => {
            "SELECT rowid, channel || char(0) || account || char(0) || message_id, subject, payload \
             FROM ingress WHERE rowid > ? ORDER BY rowid LIMIT ?"
        }
        Column::ApprovalArguments => {
            "SELECT a.rowid, a.id, s.subject, a.arguments FROM approvals a \
             LEFT JOIN sessions s ON s.key = a.session_key \
             WHERE a.rowid > ? ORDER BY a.rowid LIMIT ?"
        }
        Column::MemoryText => {
            "SELECT rowid, id, nullif(owner, ''), text FROM memories \
             WHERE rowid > ? ORDER BY rowid LIMIT ?"
        }
        Column::SecretValue => {
            "SELECT rowid, name, NULL, value FROM secrets WHERE rowid > ? ORDER BY rowid LIMIT ?"
        }
    }
}

fn update(column: Column) -> &'static str {
    match column {
        Column::TranscriptContent => "UPDATE transcript SET content = ? WHERE rowid = ?;",
        Column::IngressPayload => "UPDATE ingress SET payload = ? WHERE rowid = ?;",
        Column::ApprovalArguments => "UPDATE approvals SET arguments = ? WHERE rowid = ?;",
        Column::MemoryText => {
            "UPDATE memories SET text = ?, tags = '[]', vector = NULL WHERE rowid = ?;"
        }
        Column::SecretValue => "UPDATE secrets SET value = ? WHERE rowid = ?;",
    }
}

impl SqliteStore {
    pub(super) async fn read_cells(
        &self,
        column: Column,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Cell>, StoreError> {
        let after: i64 = match after {
            None => 0,
            Some(a) => a
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("row cursor {a}")))?,
        };
        let rows = sqlx::query(select(column))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Cell {
                    row: r.try_get::<i64, _>(0)?.to_string(),
                    context: r.try_get(1)?,
                    subject: r.try_get(2)?,
                    value: r.try_get(3)?,
                })
            })
            .collect()
    }

    pub(super) async fn write_cells(
        &self,
        column: Column,
        values: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(values.len());
        for (row, value) in values {
            let id: i64 = row
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("row cursor {row}")))?;
            rows.push((id, value.clone()));
        }
        let sql = update(column).repeat(rows.len());
        self.transact(&sql, |mut query| {
            for (id, value) in rows {
                query = query.bind(value).bind(id);
            }
            query
        })
        .await
    }

    pub(super) async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM store_meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub(super) async fn list_meta(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, value FROM store_meta WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
        )
        .bind(prefix)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub(super) async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO store_meta (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = ?2",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    /// Empty the write-ahead log into the database and truncate it.
    async fn checkpoint(&self) -> Result<(), StoreError> {
        if !self.in_memory {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *self.writer().await?)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn scrub_files(&self) -> Result<(), StoreError> {
        self.checkpoint().await?;
        sqlx::query("VACUUM")
            .execute(&mut *self.writer().await?)
            .await?;
        self.checkpoint().await
    }

    pub(super) async fn delete_person(
        &self,
        subject: &str,
        channel: &str,
        sender_id: &str,
        sealed_prefixes: &[String],
    ) -> Result<ForgetReport, StoreError> {
        let mut report = ForgetReport::default();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        macro_rules! run {
            ($sql:expr, $($arg:expr),*) => {
                sqlx::query($sql)$(.bind($arg))*.execute(&mut *tx).await?.rows_affected()
            };
        }
        report.transcript_entries += run!(
            "DELETE FROM transcript WHERE session_id IN (SELECT session_id FROM sessions WHERE subject = ?)",
            subject
        );
        run!(
            "DELETE FROM usage WHERE session_key IN (SELECT key FROM sessions WHERE subject = ?)",
            subject
        );
        report.approvals += run!(
            "DELETE FROM approvals WHERE session_key IN (SELECT key FROM sessions WHERE subject = ?)",
            subject
        );
        report.sessions += run!("DELETE FROM sessions WHERE subject = ?", subject);
        report.ingress_rows += run!("DELETE FROM ingress WHERE subject = ?", subject);
        report.memories += run!("DELETE FROM memories WHERE owner = ?", subject);
        run!(
            "DELETE FROM store_meta WHERE key = ?",
            format!("{}{subject}", crate::sealed::SUBJECT_KEY)
        );
        report.pairing_requests += run!(
            "DELETE FROM pairing WHERE channel = ? AND sender_id = ?",
            channel,
            sender_id
        );
        report.allowlist_entries += run!(
            "DELETE FROM allowlist WHERE channel = ? AND sender_id = ?",
            channel,
            sender_id
        );
        for prefix in sealed_prefixes {
            let n = i64::try_from(prefix.len()).unwrap_or(i64::MAX);
            report.transcript_entries += run!(
                "DELETE FROM transcript WHERE substr(content, 1, ?) = ?",
                n,
                prefix
            );
            report.ingress_rows += run!(
                "DELETE FROM ingress WHERE substr(payload, 1, ?) = ?",
                n,
                prefix
            );
            report.approvals += run!(
                "DELETE FROM approvals WHERE substr(arguments, 1, ?) = ?",
                n,
                prefix
            );
            report.memories += run!(
                "DELETE FROM memories WHERE substr(text, 1, ?) = ?",
                n,
                prefix
            );
        }
        tx.commit().await?;
        // The checkpoint needs the writer.
        drop(conn);
        self.checkpoint().await?;
        Ok(report)
    }
}
