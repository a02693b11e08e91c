//! Raw access for encryption at rest and forgetting a person, in
//! PostgreSQL. A cell's row cursor is the row's key: the sequence number
//! of transcript entries and ingress rows, a memory's insertion position,
//! the id of an approval and the name of a secret.

use sqlx::Row;

use super::PgStore;
use crate::{Cell, Column, ForgetReport, StoreError};

/// The statement reading one sealed column: row key, the parts of its
/// binding context, subject and value, after a row key, in key order.
fn select(column: Column) -> &'static str {
    match column {
        Column::TranscriptContent => {
            "SELECT t.seq::TEXT, t.session_id, NULL, NULL, s.subject, t.content FROM transcript t \
             LEFT JOIN sessions s ON s.session_id = t.session_id \
             WHERE t.seq > $1::BIGINT ORDER BY t.seq LIMIT $2"
        }
        Column::IngressPayload => {
            "SELECT id::TEXT, channel, account, message_id, subject, payload \
             FROM ingress WHERE id > $1::BIGINT ORDER BY id LIMIT $2"
        }
        Column::ApprovalArguments => {
            "SELECT a.id, a.id, NULL, NULL, s.subject, a.arguments FROM approvals a \
             LEFT JOIN sessions s ON s.key = a.session_key \
             WHERE a.id > $1 ORDER BY a.id LIMIT $2"
        }
        Column::MemoryText => {
            "SELECT pos::TEXT, id, NULL, NULL, nullif(owner, ''), text FROM memories \
             WHERE pos > $1::BIGINT ORDER BY pos LIMIT $2"
        }
        Column::SecretValue => {
            "SELECT name, name, NULL, NULL, NULL, value FROM secrets \
             WHERE name > $1 ORDER BY name LIMIT $2"
        }
    }
}

fn update(column: Column) -> &'static str {
    match column {
        Column::TranscriptContent => "UPDATE transcript SET content = $1 WHERE seq = $2::BIGINT",
        Column::IngressPayload => "UPDATE ingress SET payload = $1 WHERE id = $2::BIGINT",
        Column::ApprovalArguments => "UPDATE approvals SET arguments = $1 WHERE id = $2",
        Column::MemoryText => {
            "UPDATE memories SET text = $1, tags = '[]', vector = NULL WHERE pos = $2::BIGINT"
        }
        Column::SecretValue => "UPDATE secrets SET value = $1 WHERE name = $2",
    }
}

/// Whether the column's cursor is a number (else text).
fn numbered(column: Column) -> bool {
    matches!(
        column,
        Column::TranscriptContent | Column::IngressPayload | Column::MemoryText
    )
}

impl PgStore {
    pub(super) async fn read_cells(
        &self,
        column: Column,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Cell>, StoreError> {
        let after = match after {
            None if numbered(column) => "0".to_string(),
            None => String::new(),
            Some(a) if numbered(column) && a.parse::<i64>().is_err() => {
                return Err(StoreError::Corrupt(format!("row cursor {a}")));
            }
            Some(a) => a.to_string(),
        };
        let rows = sqlx::query(select(column))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let mut context: String = r.try_get(1)?;
                // An ingress row's context is its channel, account and
                // message id joined by NUL, which PostgreSQL text cannot hold.
                for part in [2, 3] {
                    if let Some(p) = r.try_get::<Option<String>, _>(part)? {
                        context.push('\0');
                        context.push_str(&p);
                    }
                }
                Ok(Cell {
                    row: r.try_get(0)?,
                    context,
                    subject: r.try_get(4)?,
                    value: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub(super) async fn write_cells(
        &self,
        column: Column,
        values: &[(String, String)],
    ) -> Result<(), StoreError> {
        if numbered(column)
            && let Some((row, _)) = values.iter().find(|(r, _)| r.parse::<i64>().is_err())
        {
            return Err(StoreError::Corrupt(format!("row cursor {row}")));
        }
        let mut tx = self.pool.begin().await?;
        for (row, value) in values {
            sqlx::query(update(column))
                .bind(value)
                .bind(row)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Reclaim the space of deleted and overwritten rows. PostgreSQL gives
    /// no way to overwrite them in its files and write-ahead log; what it
    /// keeps is ciphertext under destroyed keys when encryption is on.
    pub(super) async fn scrub_tables(&self) -> Result<(), StoreError> {
        sqlx::raw_sql(
            "VACUUM transcript, ingress, approvals, memories, secrets, store_meta, sessions, usage",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn delete_person(
        &self,
        subject: &str,
        channel: &str,
        sender_id: &str,
        sealed_prefixes: &[String],
    ) -> Result<ForgetReport, StoreError> {
        let mut report = ForgetReport::default();
        let mut tx = self.pool.begin().await?;
        macro_rules! run {
            ($sql:expr, $($arg:expr),*) => {
                sqlx::query($sql)$(.bind($arg))*.execute(&mut *tx).await?.rows_affected()
            };
        }
        report.transcript_entries += run!(
            "DELETE FROM transcript WHERE session_id IN (SELECT session_id FROM sessions WHERE subject = $1)",
            subject
        );
        run!(
            "DELETE FROM usage WHERE session_key IN (SELECT key FROM sessions WHERE subject = $1)",
            subject
        );
        report.approvals += run!(
            "DELETE FROM approvals WHERE session_key IN (SELECT key FROM sessions WHERE subject = $1)",
            subject
        );
        report.sessions += run!("DELETE FROM sessions WHERE subject = $1", subject);
        report.ingress_rows += run!("DELETE FROM ingress WHERE subject = $1", subject);
        report.memories += run!("DELETE FROM memories WHERE owner = $1", subject);
        run!(
            "DELETE FROM store_meta WHERE key = $1",
            format!("{}{subject}", crate::sealed::SUBJECT_KEY)
        );
        report.pairing_requests += run!(
            "DELETE FROM pairing WHERE channel = $1 AND sender_id = $2",
            channel,
            sender_id
        );
        report.allowlist_entries += run!(
            "DELETE FROM allowlist WHERE channel = $1 AND sender_id = $2",
            channel,
            sender_id
        );
        if !sealed_prefixes.is_empty() {
            // Any of the prefixes: `starts_with` against each element.
            const ANY: &str = "EXISTS (SELECT 1 FROM unnest($1::TEXT[]) p WHERE starts_with";
            report.transcript_entries += run!(
                sqlx::AssertSqlSafe(format!("DELETE FROM transcript WHERE {ANY}(content, p))")),
                sealed_prefixes
            );
            report.ingress_rows += run!(
                sqlx::AssertSqlSafe(format!("DELETE FROM ingress WHERE {ANY}(payload, p))")),
                sealed_prefixes
            );
            report.approvals += run!(
                sqlx::AssertSqlSafe(format!("DELETE FROM approvals WHERE {ANY}(arguments, p))")),
                sealed_prefixes
            );
            report.memories += run!(
                sqlx::AssertSqlSafe(format!("DELETE FROM memories WHERE {ANY}(text, p))")),
                sealed_prefixes
            );
        }
        tx.commit().await?;
        Ok(report)
    }
}
