//! The PostgreSQL backend, for several gateways sharing one database.
//!
//! The same records as the SQLite store, in the same shapes; its own
//! migrations (`migrations/postgres`), applied at connect under sqlx's
//! advisory lock, so replicas starting together migrate once. TLS to the
//! server is rustls's, chosen by the URL (`sslmode=require`,
//! `verify-ca` or `verify-full` with `sslrootcert=`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};

use crate::records::{AuditCheckpoint, AuditRecord};
use crate::store::new_session_id;
use crate::{
    AllowEntry, ApprovalRecord, Cell, Column, CronJobRecord, CronRunRecord, ForgetReport,
    IngressAccept, IngressRecord, IngressStatus, MemoryRecord, NewPairing, PairingRequest,
    SecretInfo, SessionRecord, Store, StoreError, TokenCounts, TranscriptEntry, TurnBegin,
    TurnCommit, TurnEntry,
};

mod cluster;
mod more;
mod sealing;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections a gateway keeps to the server at most.
const POOL_SIZE: u32 = 16;

/// A store in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Where it is, without user or password (for messages).
    location: String,
    /// The replica that owns the ingress rows this store accepts, and for
    /// how long (ms), once the gateway runs as a replica.
    claimant: std::sync::Arc<std::sync::OnceLock<(String, i64)>>,
}

/// `url` as it may be shown: scheme, host, port and database, never the
/// user name or password.
pub fn redact_url(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => format!(
            "postgres://{}:{}/{}",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("")
        ),
        Err(_) => "a PostgreSQL URL that does not parse".into(),
    }
}

impl PgStore {
    /// Connect to the database `url` names (`postgres://user:pass@host:port/db`,
    /// with `?sslmode=…` for TLS) and apply migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let location = redact_url(url);
        let open_error = |source| StoreError::Open {
            path: location.clone(),
            source,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(open_error)?
            .application_name("switchboard");
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(open_error)?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            location,
            claimant: Default::default(),
        })
    }

    /// Where the database is (host, port, name; no credentials).
    pub fn location(&self) -> &str {
        &self.location
    }
}

/// Rows a retention prune deletes per statement.
const PRUNE_BATCH: i64 = 1000;

impl PgStore {
    /// Run `delete` (the cutoff as `$1`, the batch size as `$2`) until it
    /// deletes less than a batch.
    async fn delete_in_batches(
        &self,
        delete: &'static str,
        before: i64,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let done = sqlx::query(delete)
                .bind(before)
                .bind(PRUNE_BATCH)
                .execute(&self.pool)
                .await?
                .rows_affected();
            total += done;
            if done < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

const INSERT_ENTRY: &str = "INSERT INTO transcript (session_id, role, content, ingress_id, created_at) \
     VALUES ($1, $2, $3, $4, $5)";

const SUM_TOKENS: &str = "COALESCE(SUM(input_tokens), 0)::BIGINT AS input_tokens, \
     COALESCE(SUM(output_tokens), 0)::BIGINT AS output_tokens, \
     COALESCE(SUM(cached_tokens), 0)::BIGINT AS cached_tokens, COUNT(*) AS turns, \
     COALESCE(SUM(cost_micros), 0)::BIGINT AS cost_micros";

#[async_trait]
impl Store for PgStore {
    async fn session_get(&self, key: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(
            sqlx::query_as::<_, SessionRecord>("SELECT * FROM sessions WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn session_open_as(
        &self,
        key: &str,
        agent: &str,
        subject: Option<&str>,
        now: i64,
    ) -> Result<SessionRecord, StoreError> {
        if let Some(found) = self.session_get(key).await? {
            if found.subject.is_some() || subject.is_none() {
                return Ok(found);
            }
            sqlx::query("UPDATE sessions SET subject = $1 WHERE key = $2 AND subject IS NULL")
                .bind(subject)
                .bind(key)
                .execute(&self.pool)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO sessions (key, session_id, agent, created_at, updated_at, last_active_at, subject) \
                 VALUES ($1, $2, $3, $4, $4, $4, $5) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(new_session_id())
            .bind(agent)
            .bind(now)
            .bind(subject)
            .execute(&self.pool)
            .await?;
        }
        self.session_get(key)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("session {key}")))
    }

    async fn session_reset_as(
        &self,
        key: &str,
        agent: &str,
        subject: Option<&str>,
        now: i64,
    ) -> Result<SessionRecord, StoreError> {
        Ok(sqlx::query_as::<_, SessionRecord>(
            "INSERT INTO sessions (key, session_id, agent, created_at, updated_at, last_active_at, subject) \
             VALUES ($1, $2, $3, $4, $4, $4, $5) \
             ON CONFLICT (key) DO UPDATE SET session_id = $2, agent = $3, updated_at = $4, \
             last_active_at = $4, turns = 0, subject = coalesce(sessions.subject, $5) \
             RETURNING *",
        )
        .bind(key)
        .bind(new_session_id())
        .bind(agent)
        .bind(now)
        .bind(subject)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn session_by_id(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(
            sqlx::query_as::<_, SessionRecord>("SELECT * FROM sessions WHERE session_id = $1")
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn session_compact_into(
        &self,
        key: &str,
        from: &str,
        to: &str,
        entries: Vec<TurnEntry>,
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query_as::<_, SessionRecord>(
            "UPDATE sessions SET session_id = $1, updated_at = $2, last_active_at = $2, turns = 0 \
             WHERE key = $3 AND session_id = $4 RETURNING *",
        )
        .bind(to)
        .bind(now)
        .bind(key)
        .bind(from)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(moved) = moved else {
            return Ok(None);
        };
        for e in entries {
            sqlx::query(INSERT_ENTRY)
                .bind(to)
                .bind(e.role.as_str())
                .bind(e.content)
                .bind(e.ingress_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(moved))
    }

    async fn session_delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone: Option<String> =
            sqlx::query_scalar("DELETE FROM sessions WHERE key = $1 RETURNING session_id")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(session_id) = gone else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM transcript WHERE session_id = $1")
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn sessions_list(&self, limit: u32) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(sqlx::query_as::<_, SessionRecord>(
            "SELECT * FROM sessions ORDER BY last_active_at DESC, key LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn transcript(
        &self,
        session_id: &str,
        limit: u32,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        Ok(sqlx::query_as::<_, TranscriptEntry>(
            "SELECT * FROM (SELECT * FROM transcript WHERE session_id = $1 ORDER BY seq DESC LIMIT $2) t \
             ORDER BY seq ASC",
        )
        .bind(session_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn answer_for_ingress(
        &self,
        ingress_id: i64,
    ) -> Result<Option<TranscriptEntry>, StoreError> {
        Ok(sqlx::query_as::<_, TranscriptEntry>(
            "SELECT a.* FROM transcript u JOIN transcript a \
             ON a.session_id = u.session_id AND a.seq > u.seq AND a.role = 'assistant' \
             AND (a.ingress_id IS NULL OR a.ingress_id <= u.ingress_id) \
             WHERE u.ingress_id = $1 AND u.role = 'user' ORDER BY a.seq LIMIT 1",
        )
        .bind(ingress_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn transcript_append(
        &self,
        session_id: &str,
        entry: TurnEntry,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(INSERT_ENTRY)
            .bind(session_id)
            .bind(entry.role.as_str())
            .bind(entry.content)
            .bind(entry.ingress_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn turn_begin(&self, begin: TurnBegin) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !begin.ingress_ids.is_empty() {
            sqlx::query(
                "UPDATE ingress SET attempts = attempts + 1, updated_at = $1 WHERE id = ANY($2)",
            )
            .bind(begin.now)
            .bind(&begin.ingress_ids)
            .execute(&mut *tx)
            .await?;
        }
        for entry in &begin.entries {
            sqlx::query(INSERT_ENTRY)
                .bind(&begin.session_id)
                .bind(entry.role.as_str())
                .bind(&entry.content)
                .bind(entry.ingress_id)
                .bind(begin.now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for entry in &commit.entries {
            sqlx::query(INSERT_ENTRY)
                .bind(&commit.session_id)
                .bind(entry.role.as_str())
                .bind(&entry.content)
                .bind(entry.ingress_id)
                .bind(commit.now)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE sessions SET last_active_at = $1, turns = turns + 1 WHERE session_id = $2",
        )
        .bind(commit.now)
        .bind(&commit.session_id)
        .execute(&mut *tx)
        .await?;
        if let Some(u) = &commit.usage {
            sqlx::query(
                "INSERT INTO usage (session_key, session_id, agent, input_tokens, output_tokens, cached_tokens, cost_micros, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&u.session_key)
            .bind(&commit.session_id)
            .bind(&u.agent)
            .bind(u.tokens.input_tokens)
            .bind(u.tokens.output_tokens)
            .bind(u.tokens.cached_tokens)
            .bind(u.tokens.cost_micros)
            .bind(commit.now)
            .execute(&mut *tx)
            .await?;
        }
        if !commit.ingress_ids.is_empty() {
            sqlx::query(
                "UPDATE ingress SET status = $1, error = $2, updated_at = $3 WHERE id = ANY($4)",
            )
            .bind(commit.status.as_str())
            .bind(commit.error.as_deref())
            .bind(commit.now)
            .bind(&commit.ingress_ids)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn usage_for_session(
        &self,
        session_key: &str,
        since: i64,
    ) -> Result<TokenCounts, StoreError> {
        Ok(
            sqlx::query_as::<_, TokenCounts>(sqlx::AssertSqlSafe(format!(
                "SELECT {SUM_TOKENS} FROM usage WHERE session_key = $1 AND created_at >= $2"
            )))
            .bind(session_key)
            .bind(since)
            .fetch_one(&self.pool)
            .await?,
        )
    }

    async fn usage_for_agent(&self, agent: &str, since: i64) -> Result<TokenCounts, StoreError> {
        Ok(
            sqlx::query_as::<_, TokenCounts>(sqlx::AssertSqlSafe(format!(
                "SELECT {SUM_TOKENS} FROM usage WHERE agent = $1 AND created_at >= $2"
            )))
            .bind(agent)
            .bind(since)
            .fetch_one(&self.pool)
            .await?,
        )
    }

    async fn usage_by_agent(&self, since: i64) -> Result<Vec<(String, TokenCounts)>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT agent, {SUM_TOKENS} FROM usage WHERE created_at >= $1 GROUP BY agent ORDER BY agent"
        )))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("agent")?,
                    <TokenCounts as sqlx::FromRow<_>>::from_row(r)?,
                ))
            })
            .collect()
    }

    async fn ingress_accept_as(
        &self,
        channel: &str,
        account: &str,
        message_id: &str,
        payload: &str,
        subject: Option<&str>,
        now: i64,
    ) -> Result<IngressAccept, StoreError> {
        // A replica owns what it accepts from the first moment: no other
        // one's sweep takes a row that is being handed on here.
        let (holder, ttl) = match self.claimant.get() {
            Some((h, ttl)) => (Some(h.as_str()), *ttl),
            None => (None, 0),
        };
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO ingress (channel, account, message_id, payload, status, received_at, updated_at, subject, \
             claimed_by, claim_until) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $5, $6, $7, \
             CASE WHEN $7::TEXT IS NULL THEN NULL ELSE switchboard_now_ms() + $8 END) \
             ON CONFLICT (channel, account, message_id) DO NOTHING RETURNING id",
        )
        .bind(channel)
        .bind(account)
        .bind(message_id)
        .bind(payload)
        .bind(now)
        .bind(subject)
        .bind(holder)
        .bind(ttl)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(id) = inserted {
            return Ok(IngressAccept::Accepted(id));
        }
        let row = sqlx::query(
            "SELECT id, status FROM ingress WHERE channel = $1 AND account = $2 AND message_id = $3",
        )
        .bind(channel)
        .bind(account)
        .bind(message_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(IngressAccept::Duplicate {
            id: row.try_get(0)?,
            status: IngressStatus::parse(&row.try_get::<String, _>(1)?)?,
        })
    }

    async fn ingress_reply_message(&self, ids: &[i64], message_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE ingress SET reply_message_id = $1 WHERE id = ANY($2)")
            .bind(message_id)
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn ingress_started(&self, id: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE ingress SET attempts = attempts + 1, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn ingress_finish(
        &self,
        id: i64,
        status: IngressStatus,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE ingress SET status = $1, error = $2, updated_at = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(error)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn ingress_get(&self, id: i64) -> Result<Option<IngressRecord>, StoreError> {
        Ok(
            sqlx::query_as::<_, IngressRecord>("SELECT * FROM ingress WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn ingress_pending(&self) -> Result<Vec<IngressRecord>, StoreError> {
        Ok(sqlx::query_as::<_, IngressRecord>(
            "SELECT * FROM ingress WHERE status = 'pending' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn ingress_pending_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ingress WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn ingress_prune(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM ingress WHERE status <> 'pending' AND updated_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn transcript_prune(&self, before: i64) -> Result<u64, StoreError> {
        self.delete_in_batches(
            "DELETE FROM transcript WHERE seq IN (SELECT seq FROM transcript \
             WHERE created_at < $1 AND (ingress_id IS NULL OR ingress_id NOT IN \
             (SELECT id FROM ingress WHERE status = 'pending')) LIMIT $2)",
            before,
        )
        .await
    }

    async fn usage_prune(&self, before: i64) -> Result<u64, StoreError> {
        self.delete_in_batches(
            "DELETE FROM usage WHERE id IN (SELECT id FROM usage WHERE created_at < $1 LIMIT $2)",
            before,
        )
        .await
    }

    async fn approvals_prune(&self, before: i64) -> Result<u64, StoreError> {
        self.delete_in_batches(
            "DELETE FROM approvals WHERE id IN (SELECT id FROM approvals \
             WHERE status <> 'pending' AND COALESCE(decided_at, created_at) < $1 LIMIT $2)",
            before,
        )
        .await
    }

    async fn pairing_insert(&self, request: NewPairing) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pairing (channel, account, sender_id, sender_name, chat_id, code, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $8, $5, $6, $7) \
             ON CONFLICT (channel, account, sender_id) DO UPDATE SET sender_name = $4, chat_id = $8, \
             code = $5, created_at = $6, expires_at = $7 WHERE pairing.expires_at <= $6",
        )
        .bind(&request.channel)
        .bind(&request.account)
        .bind(&request.sender_id)
        .bind(&request.sender_name)
        .bind(&request.code)
        .bind(request.created_at)
        .bind(request.expires_at)
        .bind(&request.chat_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn pairing_list(
        &self,
        channel: Option<&str>,
        now: i64,
    ) -> Result<Vec<PairingRequest>, StoreError> {
        Ok(sqlx::query_as::<_, PairingRequest>(
            "SELECT * FROM pairing WHERE expires_at > $1 AND ($2::TEXT IS NULL OR channel = $2) \
             ORDER BY created_at, channel, account, sender_id",
        )
        .bind(now)
        .bind(channel)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn pairing_approve(
        &self,
        channel: &str,
        code: &str,
        by: &str,
        now: i64,
    ) -> Result<Option<PairingRequest>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query_as::<_, PairingRequest>(
            "DELETE FROM pairing WHERE channel = $1 AND code = $2 AND expires_at > $3 RETURNING *",
        )
        .bind(channel)
        .bind(code)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(request) = &found {
            sqlx::query(
                "INSERT INTO allowlist (channel, account, sender_id, added_at, added_by) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&request.channel)
            .bind(&request.account)
            .bind(&request.sender_id)
            .bind(now)
            .bind(by)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    async fn pairing_deny(
        &self,
        channel: &str,
        code: &str,
        now: i64,
    ) -> Result<Option<PairingRequest>, StoreError> {
        Ok(sqlx::query_as::<_, PairingRequest>(
            "DELETE FROM pairing WHERE channel = $1 AND code = $2 AND expires_at > $3 RETURNING *",
        )
        .bind(channel)
        .bind(code)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn pairing_purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM pairing WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn allow_add(&self, entry: AllowEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO allowlist (channel, account, sender_id, added_at, added_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&entry.channel)
        .bind(&entry.account)
        .bind(&entry.sender_id)
        .bind(entry.added_at)
        .bind(&entry.added_by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn allow_contains(
        &self,
        channel: &str,
        account: &str,
        sender_id: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM allowlist WHERE channel = $1 AND account = $2 AND sender_id = $3",
        )
        .bind(channel)
        .bind(account)
        .bind(sender_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn allow_list(&self, channel: Option<&str>) -> Result<Vec<AllowEntry>, StoreError> {
        Ok(sqlx::query_as::<_, AllowEntry>(
            "SELECT * FROM allowlist WHERE ($1::TEXT IS NULL OR channel = $1) \
             ORDER BY channel, account, sender_id",
        )
        .bind(channel)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn allow_remove(
        &self,
        channel: &str,
        account: &str,
        sender_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM allowlist WHERE channel = $1 AND account = $2 AND sender_id = $3",
        )
        .bind(channel)
        .bind(account)
        .bind(sender_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn approval_insert(&self, r: ApprovalRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO approvals (id, session_key, agent, tool, arguments, status, decided_by, created_at, expires_at, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&r.id)
        .bind(&r.session_key)
        .bind(&r.agent)
        .bind(&r.tool)
        .bind(&r.arguments)
        .bind(&r.status)
        .bind(&r.decided_by)
        .bind(r.created_at)
        .bind(r.expires_at)
        .bind(r.decided_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn approval_decide(
        &self,
        id: &str,
        status: &str,
        by: &str,
        now: i64,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        Ok(sqlx::query_as::<_, ApprovalRecord>(
            "UPDATE approvals SET status = $1, decided_by = $2, decided_at = $3 \
             WHERE id = $4 AND status = 'pending' RETURNING *",
        )
        .bind(status)
        .bind(by)
        .bind(now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn approval_get(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        Ok(
            sqlx::query_as::<_, ApprovalRecord>("SELECT * FROM approvals WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn approvals_list(
        &self,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        Ok(sqlx::query_as::<_, ApprovalRecord>(
            "SELECT * FROM approvals WHERE (NOT $1 OR status = 'pending') \
             ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(pending_only)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn coordination(&self) -> Option<&dyn crate::Coordination> {
        Some(self)
    }

    async fn channel_state_get(
        &self,
        channel: &str,
        account: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.state_get(channel, account, key).await
    }

    async fn channel_state_set(
        &self,
        channel: &str,
        account: &str,
        entries: &[(String, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        self.state_set(channel, account, entries, now).await
    }

    async fn channel_state_remove(
        &self,
        channel: &str,
        account: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        self.state_remove(channel, account, keys).await
    }

    async fn channel_state_list(
        &self,
        channel: &str,
        account: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.state_list(channel, account, prefix).await
    }

    async fn memory_insert(&self, record: MemoryRecord) -> Result<(), StoreError> {
        self.insert_memory(record).await
    }

    async fn memory_list(
        &self,
        agent: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Vec<MemoryRecord>, StoreError> {
        self.list_memories(agent, owner).await
    }

    async fn memory_delete(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_one("DELETE FROM memories WHERE id = $1", id)
            .await
    }

    async fn secret_set(&self, name: &str, value: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO secrets (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = $2, updated_at = $3",
        )
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn secret_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn secrets_list(&self) -> Result<Vec<SecretInfo>, StoreError> {
        let rows = sqlx::query("SELECT name, updated_at FROM secrets ORDER BY name")
            .fetch_all(&self.pool)
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

    async fn secret_remove(&self, name: &str) -> Result<bool, StoreError> {
        self.delete_one("DELETE FROM secrets WHERE name = $1", name)
            .await
    }

    async fn forget_rows(
        &self,
        subject: &str,
        channel: &str,
        sender_id: &str,
        sealed_prefixes: &[String],
    ) -> Result<ForgetReport, StoreError> {
        self.delete_person(subject, channel, sender_id, sealed_prefixes)
            .await
    }

    async fn cells(
        &self,
        column: Column,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Cell>, StoreError> {
        self.read_cells(column, after, limit).await
    }

    async fn cells_write(
        &self,
        column: Column,
        values: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.write_cells(column, values).await
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM store_meta WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn meta_list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, value FROM store_meta WHERE starts_with(key, $1) ORDER BY key",
        )
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO store_meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = $2",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        self.scrub_tables().await
    }

    async fn cron_job_ensure(
        &self,
        name: &str,
        source: &str,
        spec: Option<&str>,
        now: i64,
    ) -> Result<CronJobRecord, StoreError> {
        Ok(sqlx::query_as::<_, CronJobRecord>(
            "INSERT INTO cron_jobs (name, source, spec, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET source = $2, spec = coalesce($3, cron_jobs.spec) \
             RETURNING *",
        )
        .bind(name)
        .bind(source)
        .bind(spec)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn cron_jobs(&self) -> Result<Vec<CronJobRecord>, StoreError> {
        Ok(
            sqlx::query_as::<_, CronJobRecord>("SELECT * FROM cron_jobs ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn cron_job_state(
        &self,
        name: &str,
        paused: bool,
        reason: Option<&str>,
        failures: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE cron_jobs SET paused = $1, paused_reason = $2, failures = $3 WHERE name = $4",
        )
        .bind(paused)
        .bind(reason)
        .bind(failures)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn cron_job_remove(&self, name: &str) -> Result<bool, StoreError> {
        self.delete_one("DELETE FROM cron_jobs WHERE name = $1", name)
            .await
    }

    async fn cron_run_record(
        &self,
        job: &str,
        slot: i64,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO cron_runs (job, slot, status, reason, recorded_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (job, slot) DO NOTHING",
        )
        .bind(job)
        .bind(slot)
        .bind(status)
        .bind(reason)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn cron_run_finish(
        &self,
        job: &str,
        slot: i64,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cron_runs SET status = $1, reason = $2, finished_at = $3 WHERE job = $4 AND slot = $5",
        )
        .bind(status)
        .bind(reason)
        .bind(now)
        .bind(job)
        .bind(slot)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn cron_runs(&self, job: &str, limit: u32) -> Result<Vec<CronRunRecord>, StoreError> {
        Ok(sqlx::query_as::<_, CronRunRecord>(
            "SELECT * FROM cron_runs WHERE job = $1 ORDER BY slot DESC LIMIT $2",
        )
        .bind(job)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn audit_append(&self, record: AuditRecord) -> Result<i64, StoreError> {
        self.append_audit(record).await
    }

    async fn audit_last(&self) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        if let Some(r) = row {
            return Ok(Some((r.try_get("seq")?, r.try_get("mac")?)));
        }
        Ok(self.audit_checkpoint().await?.map(|c| (c.seq, c.mac)))
    }

    async fn audit_list(&self, since: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(sqlx::query_as::<_, AuditRecord>(
            "SELECT * FROM audit WHERE at >= $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(
            sqlx::query_as::<_, AuditRecord>("SELECT * FROM audit ORDER BY seq")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn audit_prune(&self, checkpoint: AuditCheckpoint) -> Result<u64, StoreError> {
        self.prune_audit(checkpoint).await
    }

    async fn audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        Ok(sqlx::query_as::<_, AuditCheckpoint>(
            "SELECT seq, mac, at, checkpoint_mac FROM audit_checkpoint WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }
}
