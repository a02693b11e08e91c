//! The embedded SQLite backend (WAL mode, migrations applied at open).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, Sqlite};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::records::{AuditCheckpoint, AuditRecord};
use crate::{
    AllowEntry, ApprovalRecord, Cell, Column, CronJobRecord, CronRunRecord, ForgetReport,
    IngressAccept, IngressRecord, IngressStatus, MemoryRecord, NewPairing, PairingRequest,
    SecretInfo, SessionRecord, Store, StoreError, TokenCounts, TranscriptEntry, TurnBegin,
    TurnCommit, TurnEntry,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A store in one SQLite file.
///
/// Writes go through one connection (`write`) and reads through two others
/// (`read`): SQLite admits one writer at a time, and writers sharing
/// connections would wait for each other in SQLite's busy handler, which
/// sleeps for milliseconds, instead of in the connection's queue, which
/// wakes the next one as soon as it is free. In WAL mode readers never
/// wait for the writer.
///
/// The connections are held, not pooled: sqlx's pool tests a connection
/// on each return with a ping, a second trip to the connection's thread
/// (two more thread wake-ups) for every statement.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: Arc<[Conn]>,
    write: Arc<Conn>,
    /// The read connection to wait for when both are busy.
    next_read: Arc<AtomicUsize>,
    /// An in-memory database lives and dies with its one connection.
    in_memory: bool,
}

/// One connection, used by one caller at a time.
#[derive(Debug)]
struct Conn(Mutex<Slot>);

#[derive(Debug)]
struct Slot {
    /// `None` once the store is closed.
    conn: Option<SqliteConnection>,
    /// A batch was dropped half-way: its transaction may be open still.
    dirty: bool,
}

/// A connection while one caller uses it.
type Held<'a> = MappedMutexGuard<'a, SqliteConnection>;

impl Conn {
    fn new(conn: SqliteConnection) -> Self {
        Self(Mutex::new(Slot {
            conn: Some(conn),
            dirty: false,
        }))
    }

    async fn hold(&self) -> Result<Held<'_>, StoreError> {
        Self::ready(self.0.lock().await).await
    }

    /// The connection of `slot`, with what a batch dropped half-way left
    /// open rolled back.
    async fn ready(mut slot: MutexGuard<'_, Slot>) -> Result<Held<'_>, StoreError> {
        if slot.dirty
            && let Some(conn) = slot.conn.as_mut()
        {
            // Without a transaction open this fails; no matter.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            slot.dirty = false;
        }
        MutexGuard::try_map(slot, |s| s.conn.as_mut())
            .map_err(|_| StoreError::from(sqlx::Error::PoolClosed))
    }
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path` and apply
    /// migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode survives a process crash; only a power loss
            // can take back the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Deleted values are overwritten, not left in free pages, and
            // sorts and temporary tables stay in memory: nothing of a
            // record outlives it in a file.
            .pragma("secure_delete", "ON")
            .pragma("temp_store", "MEMORY");
        Self::connect(options, &path.display().to_string()).await
    }

    /// A private in-memory database, for tests.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(|source| {
            StoreError::Open {
                path: ":memory:".into(),
                source,
            }
        })?;
        Self::connect(options, ":memory:").await
    }

    async fn connect(options: SqliteConnectOptions, path: &str) -> Result<Self, StoreError> {
        let in_memory = path == ":memory:";
        let open_error = |source| StoreError::Open {
            path: path.to_string(),
            source,
        };
        if !in_memory {
            // Create the file, switch it to WAL and migrate it on one
            // connection first: switching the journal mode needs the
            // database to itself, which pooled connections opening at
            // once would not give it.
            let mut first = options.connect().await.map_err(open_error)?;
            MIGRATOR.run(&mut first).await?;
            first.close().await.map_err(open_error)?;
        }
        // Each query runs on the connection's own worker thread.
        if in_memory {
            // An in-memory database lives in one connection.
            let mut one = options.connect().await.map_err(open_error)?;
            MIGRATOR.run(&mut one).await?;
            let one = Arc::new(Conn::new(one));
            return Ok(Self {
                read: Arc::new([]),
                write: one,
                next_read: Arc::default(),
                in_memory: true,
            });
        }
        let write = options.connect().await.map_err(open_error)?;
        let mut read = Vec::new();
        for _ in 0..2 {
            read.push(Conn::new(options.connect().await.map_err(open_error)?));
        }
        Ok(Self {
            read: read.into(),
            write: Arc::new(Conn::new(write)),
            next_read: Arc::default(),
            in_memory: false,
        })
    }

    /// The writer's connection, once the writes before are done.
    async fn writer(&self) -> Result<Held<'_>, StoreError> {
        self.write.hold().await
    }

    /// A free read connection, or the next one to be free. (An in-memory
    /// database reads through its one connection.)
    async fn reader(&self) -> Result<Held<'_>, StoreError> {
        if self.read.is_empty() {
            return self.writer().await;
        }
        for conn in self.read.iter() {
            if let Ok(slot) = conn.0.try_lock() {
                return Conn::ready(slot).await;
            }
        }
        let i = self.next_read.fetch_add(1, Ordering::Relaxed) % self.read.len();
        self.read[i].hold().await
    }

    /// The journal mode SQLite reports (`wal` for file databases).
    pub async fn journal_mode(&self) -> Result<String, StoreError> {
        let row = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut *self.reader().await?)
            .await?;
        Ok(row.try_get::<String, _>(0)?)
    }
}

type Statements<'q> = Query<'q, Sqlite, SqliteArguments>;

impl SqliteStore {
    /// Run `statements` (each ending in `;`, arguments bound by `bind` in
    /// order) as one transaction, in one trip to the writer's thread.
    /// Sent one by one, `BEGIN`, each statement and `COMMIT` would each be
    /// a trip there and back.
    async fn transact<'q>(
        &self,
        statements: &str,
        bind: impl FnOnce(Statements<'q>) -> Statements<'q>,
    ) -> Result<(), StoreError> {
        let sql = format!("BEGIN IMMEDIATE;{statements}COMMIT;");
        // Built from the callers' fixed statements only; every value is bound.
        let query = bind(sqlx::query(sqlx::AssertSqlSafe(sql)));
        let mut guard = self.write.0.lock().await;
        let slot = &mut *guard;
        let Some(conn) = slot.conn.as_mut() else {
            return Err(sqlx::Error::PoolClosed.into());
        };
        if slot.dirty {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
        }
        // If this future is dropped half-way, the batch's transaction may
        // be left open: the writer's next user rolls it back first.
        slot.dirty = true;
        let result = query.execute(&mut *conn).await;
        if result.is_err() {
            // SQLite stops at the failing statement: take back the ones
            // before it. (Without a transaction open this fails; no matter.)
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
        }
        slot.dirty = false;
        result?;
        Ok(())
    }
}

mod audit;
mod channel_state;
mod cron;
mod memories;
mod rows;
mod sealing;
mod sessions;
use rows::{delete_in_batches, ingress_row, transcript_row};

#[async_trait]
impl Store for SqliteStore {
    async fn session_get(&self, key: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(
            sqlx::query_as::<_, SessionRecord>("SELECT * FROM sessions WHERE key = ?")
                .bind(key)
                .fetch_optional(&mut *self.reader().await?)
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
        // Nearly every turn finds its session: a read needs no write lock.
        if let Some(found) = self.session_get(key).await? {
            if found.subject.is_some() || subject.is_none() {
                return Ok(found);
            }
            // A session from before subjects were recorded learns its own.
            sqlx::query("UPDATE sessions SET subject = ? WHERE key = ? AND subject IS NULL")
                .bind(subject)
                .bind(key)
                .execute(&mut *self.writer().await?)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO sessions (key, session_id, agent, created_at, updated_at, last_active_at, subject) \
                 VALUES (?1, 's_' || lower(hex(randomblob(12))), ?2, ?3, ?3, ?3, ?4) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(agent)
            .bind(now)
            .bind(subject)
            .execute(&mut *self.writer().await?)
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
        sqlx::query(
            "INSERT INTO sessions (key, session_id, agent, created_at, updated_at, last_active_at, subject) \
             VALUES (?1, 's_' || lower(hex(randomblob(12))), ?2, ?3, ?3, ?3, ?4) \
             ON CONFLICT (key) DO UPDATE SET session_id = 's_' || lower(hex(randomblob(12))), \
             agent = ?2, updated_at = ?3, last_active_at = ?3, turns = 0, \
             subject = coalesce(subject, ?4)",
        )
        .bind(key)
        .bind(agent)
        .bind(now)
        .bind(subject)
        .execute(&mut *self.writer().await?)
        .await?;
        self.session_get(key)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("session {key}")))
    }

    async fn session_by_id(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(
            sqlx::query_as::<_, SessionRecord>("SELECT * FROM sessions WHERE session_id = ?")
                .bind(session_id)
                .fetch_optional(&mut *self.reader().await?)
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
        self.compact_session(key, from, to, entries, now).await
    }

    async fn session_delete(&self, key: &str) -> Result<bool, StoreError> {
        self.delete_session(key).await
    }

    async fn sessions_list(&self, limit: u32) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(sqlx::query_as::<_, SessionRecord>(
            "SELECT * FROM sessions ORDER BY last_active_at DESC, key LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await?)
    }

    async fn transcript(
        &self,
        session_id: &str,
        limit: u32,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT * FROM transcript WHERE session_id = ? ORDER BY seq DESC LIMIT ?) \
             ORDER BY seq ASC",
        )
        .bind(session_id)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter().map(transcript_row).collect()
    }

    async fn answer_for_ingress(
        &self,
        ingress_id: i64,
    ) -> Result<Option<TranscriptEntry>, StoreError> {
        let row = sqlx::query(
            "SELECT a.* FROM transcript u JOIN transcript a \
             ON a.session_id = u.session_id AND a.seq > u.seq AND a.role = 'assistant' \
             AND (a.ingress_id IS NULL OR a.ingress_id <= u.ingress_id) \
             WHERE u.ingress_id = ? AND u.role = 'user' ORDER BY a.seq LIMIT 1",
        )
        .bind(ingress_id)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        row.as_ref().map(transcript_row).transpose()
    }

    async fn transcript_append(
        &self,
        session_id: &str,
        entry: TurnEntry,
        now: i64,
    ) -> Result<(), StoreError> {
        self.transact(
            "INSERT INTO transcript (session_id, role, content, ingress_id, created_at) \
             VALUES (?, ?, ?, ?, ?);",
            |query| {
                query
                    .bind(session_id)
                    .bind(entry.role.as_str())
                    .bind(entry.content)
                    .bind(entry.ingress_id)
                    .bind(now)
            },
        )
        .await
    }

    async fn turn_begin(&self, begin: TurnBegin) -> Result<(), StoreError> {
        let mut sql = String::new();
        for _ in &begin.ingress_ids {
            sql.push_str(
                "UPDATE ingress SET attempts = attempts + 1, updated_at = ? WHERE id = ?;",
            );
        }
        for _ in &begin.entries {
            sql.push_str(
                "INSERT INTO transcript (session_id, role, content, ingress_id, created_at) \
                 VALUES (?, ?, ?, ?, ?);",
            );
        }
        if sql.is_empty() {
            return Ok(());
        }
        self.transact(&sql, |mut query| {
            for id in &begin.ingress_ids {
                query = query.bind(begin.now).bind(id);
            }
            for entry in &begin.entries {
                query = query
                    .bind(&begin.session_id)
                    .bind(entry.role.as_str())
                    .bind(&entry.content)
                    .bind(entry.ingress_id)
                    .bind(begin.now);
            }
            query
        })
        .await
    }

    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        let mut sql = String::new();
        for _ in &commit.entries {
            sql.push_str(
                "INSERT INTO transcript (session_id, role, content, ingress_id, created_at) \
                 VALUES (?, ?, ?, ?, ?);",
            );
        }
        sql.push_str(
            "UPDATE sessions SET last_active_at = ?, turns = turns + 1 WHERE session_id = ?;",
        );
        if commit.usage.is_some() {
            sql.push_str(
                "INSERT INTO usage (session_key, session_id, agent, input_tokens, output_tokens, cached_tokens, cost_micros, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?);",
            );
        }
        for _ in &commit.ingress_ids {
            sql.push_str("UPDATE ingress SET status = ?, error = ?, updated_at = ? WHERE id = ?;");
        }
        self.transact(&sql, |mut query| {
            for entry in &commit.entries {
                query = query
                    .bind(&commit.session_id)
                    .bind(entry.role.as_str())
                    .bind(&entry.content)
                    .bind(entry.ingress_id)
                    .bind(commit.now);
            }
            query = query.bind(commit.now).bind(&commit.session_id);
            if let Some(u) = &commit.usage {
                query = query
                    .bind(&u.session_key)
                    .bind(&commit.session_id)
                    .bind(&u.agent)
                    .bind(u.tokens.input_tokens)
                    .bind(u.tokens.output_tokens)
                    .bind(u.tokens.cached_tokens)
                    .bind(u.tokens.cost_micros)
                    .bind(commit.now);
            }
            for id in &commit.ingress_ids {
                query = query
                    .bind(commit.status.as_str())
                    .bind(commit.error.as_deref())
                    .bind(commit.now)
                    .bind(id);
            }
            query
        })
        .await
    }

    async fn usage_for_session(
        &self,
        session_key: &str,
        since: i64,
    ) -> Result<TokenCounts, StoreError> {
        Ok(sqlx::query_as::<_, TokenCounts>(
            "SELECT COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens, \
             COALESCE(SUM(cached_tokens), 0) AS cached_tokens, COUNT(*) AS turns, \
             COALESCE(SUM(cost_micros), 0) AS cost_micros \
             FROM usage WHERE session_key = ? AND created_at >= ?",
        )
        .bind(session_key)
        .bind(since)
        .fetch_one(&mut *self.reader().await?)
        .await?)
    }

    async fn usage_for_agent(&self, agent: &str, since: i64) -> Result<TokenCounts, StoreError> {
        Ok(sqlx::query_as::<_, TokenCounts>(
            "SELECT COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens, \
             COALESCE(SUM(cached_tokens), 0) AS cached_tokens, COUNT(*) AS turns, \
             COALESCE(SUM(cost_micros), 0) AS cost_micros \
             FROM usage WHERE agent = ? AND created_at >= ?",
        )
        .bind(agent)
        .bind(since)
        .fetch_one(&mut *self.reader().await?)
        .await?)
    }

    async fn usage_by_agent(&self, since: i64) -> Result<Vec<(String, TokenCounts)>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, \
             SUM(cached_tokens) AS cached_tokens, COUNT(*) AS turns, \
             COALESCE(SUM(cost_micros), 0) AS cost_micros \
             FROM usage WHERE created_at >= ? GROUP BY agent ORDER BY agent",
        )
        .bind(since)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("agent")?,
                    TokenCounts {
                        input_tokens: r.try_get("input_tokens")?,
                        output_tokens: r.try_get("output_tokens")?,
                        cached_tokens: r.try_get("cached_tokens")?,
                        turns: r.try_get("turns")?,
                        cost_micros: r.try_get("cost_micros")?,
                    },
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
        let inserted = sqlx::query(
            "INSERT INTO ingress (channel, account, message_id, payload, status, received_at, updated_at, subject) \
             VALUES (?, ?, ?, ?, 'pending', ?, ?, ?) \
             ON CONFLICT (channel, account, message_id) DO NOTHING RETURNING id",
        )
        .bind(channel)
        .bind(account)
        .bind(message_id)
        .bind(payload)
        .bind(now)
        .bind(now)
        .bind(subject)
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        if let Some(row) = inserted {
            return Ok(IngressAccept::Accepted(row.try_get(0)?));
        }
        let row = sqlx::query(
            "SELECT id, status FROM ingress WHERE channel = ? AND account = ? AND message_id = ?",
        )
        .bind(channel)
        .bind(account)
        .bind(message_id)
        .fetch_one(&mut *self.writer().await?)
        .await?;
        Ok(IngressAccept::Duplicate {
            id: row.try_get(0)?,
            status: IngressStatus::parse(&row.try_get::<String, _>(1)?)?,
        })
    }

    async fn ingress_reply_message(&self, ids: &[i64], message_id: &str) -> Result<(), StoreError> {
        let mut sql = String::new();
        for _ in ids {
            sql.push_str("UPDATE ingress SET reply_message_id = ? WHERE id = ?;");
        }
        self.transact(&sql, |mut query| {
            for id in ids {
                query = query.bind(message_id).bind(id);
            }
            query
        })
        .await
    }

    async fn ingress_started(&self, id: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE ingress SET attempts = attempts + 1, updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *self.writer().await?)
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
        sqlx::query("UPDATE ingress SET status = ?, error = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(error)
            .bind(now)
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    async fn ingress_get(&self, id: i64) -> Result<Option<IngressRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM ingress WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        row.as_ref().map(ingress_row).transpose()
    }

    async fn ingress_pending(&self) -> Result<Vec<IngressRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM ingress WHERE status = 'pending' ORDER BY id")
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.iter().map(ingress_row).collect()
    }

    async fn ingress_pending_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ingress WHERE status = 'pending'")
            .fetch_one(&mut *self.reader().await?)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn ingress_prune(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM ingress WHERE status != 'pending' AND updated_at < ?")
            .bind(before)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }

    async fn transcript_prune(&self, before: i64) -> Result<u64, StoreError> {
        delete_in_batches(
            self,
            "DELETE FROM transcript WHERE seq IN (SELECT seq FROM transcript \
             WHERE created_at < ?1 AND (ingress_id IS NULL OR ingress_id NOT IN \
             (SELECT id FROM ingress WHERE status = 'pending')) LIMIT ?2)",
            before,
        )
        .await
    }

    async fn usage_prune(&self, before: i64) -> Result<u64, StoreError> {
        delete_in_batches(
            self,
            "DELETE FROM usage WHERE id IN (SELECT id FROM usage WHERE created_at < ?1 LIMIT ?2)",
            before,
        )
        .await
    }

    async fn approvals_prune(&self, before: i64) -> Result<u64, StoreError> {
        delete_in_batches(
            self,
            "DELETE FROM approvals WHERE id IN (SELECT id FROM approvals \
             WHERE status != 'pending' AND COALESCE(decided_at, created_at) < ?1 LIMIT ?2)",
            before,
        )
        .await
    }

    async fn pairing_insert(&self, request: NewPairing) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pairing (channel, account, sender_id, sender_name, chat_id, code, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?8, ?5, ?6, ?7) \
             ON CONFLICT (channel, account, sender_id) DO UPDATE SET sender_name = ?4, chat_id = ?8, \
             code = ?5, created_at = ?6, expires_at = ?7 WHERE pairing.expires_at <= ?6",
        )
        .bind(&request.channel)
        .bind(&request.account)
        .bind(&request.sender_id)
        .bind(&request.sender_name)
        .bind(&request.code)
        .bind(request.created_at)
        .bind(request.expires_at)
        .bind(&request.chat_id)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn pairing_list(
        &self,
        channel: Option<&str>,
        now: i64,
    ) -> Result<Vec<PairingRequest>, StoreError> {
        Ok(sqlx::query_as::<_, PairingRequest>(
            "SELECT * FROM pairing WHERE expires_at > ?1 AND (?2 IS NULL OR channel = ?2) \
             ORDER BY created_at, channel, account, sender_id",
        )
        .bind(now)
        .bind(channel)
        .fetch_all(&mut *self.reader().await?)
        .await?)
    }

    async fn pairing_approve(
        &self,
        channel: &str,
        code: &str,
        by: &str,
        now: i64,
    ) -> Result<Option<PairingRequest>, StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let found = sqlx::query_as::<_, PairingRequest>(
            "DELETE FROM pairing WHERE channel = ? AND code = ? AND expires_at > ? RETURNING *",
        )
        .bind(channel)
        .bind(code)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(request) = &found {
            sqlx::query(
                "INSERT INTO allowlist (channel, account, sender_id, added_at, added_by) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
            "DELETE FROM pairing WHERE channel = ? AND code = ? AND expires_at > ? RETURNING *",
        )
        .bind(channel)
        .bind(code)
        .bind(now)
        .fetch_optional(&mut *self.writer().await?)
        .await?)
    }

    async fn pairing_purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM pairing WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }

    async fn allow_add(&self, entry: AllowEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO allowlist (channel, account, sender_id, added_at, added_by) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&entry.channel)
        .bind(&entry.account)
        .bind(&entry.sender_id)
        .bind(entry.added_at)
        .bind(&entry.added_by)
        .execute(&mut *self.writer().await?)
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
            "SELECT 1 FROM allowlist WHERE channel = ? AND account = ? AND sender_id = ?",
        )
        .bind(channel)
        .bind(account)
        .bind(sender_id)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        Ok(row.is_some())
    }

    async fn allow_list(&self, channel: Option<&str>) -> Result<Vec<AllowEntry>, StoreError> {
        Ok(sqlx::query_as::<_, AllowEntry>(
            "SELECT * FROM allowlist WHERE (?1 IS NULL OR channel = ?1) \
             ORDER BY channel, account, sender_id",
        )
        .bind(channel)
        .fetch_all(&mut *self.reader().await?)
        .await?)
    }

    async fn allow_remove(
        &self,
        channel: &str,
        account: &str,
        sender_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM allowlist WHERE channel = ? AND account = ? AND sender_id = ?",
        )
        .bind(channel)
        .bind(account)
        .bind(sender_id)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn approval_insert(&self, r: ApprovalRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO approvals (id, session_key, agent, tool, arguments, status, decided_by, created_at, expires_at, decided_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&mut *self.writer().await?)
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
            "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ? WHERE id = ? AND status = 'pending' RETURNING *",
        )
        .bind(status)
        .bind(by)
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *self.writer().await?)
        .await?)
    }

    async fn approval_get(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        Ok(
            sqlx::query_as::<_, ApprovalRecord>("SELECT * FROM approvals WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *self.reader().await?)
                .await?,
        )
    }

    async fn approvals_list(
        &self,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        Ok(sqlx::query_as::<_, ApprovalRecord>(
            "SELECT * FROM approvals WHERE (? = 0 OR status = 'pending') ORDER BY created_at DESC, id LIMIT ?",
        )
        .bind(i64::from(pending_only))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.reader().await?)
            .await?;
        Ok(())
    }

    async fn close(&self) {
        // The writer last: the last connection to close checkpoints the
        // write-ahead log into the database.
        for conn in self.read.iter().chain([&*self.write]) {
            let taken = conn.0.lock().await.conn.take();
            if let Some(c) = taken {
                let _ = c.close().await;
            }
        }
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
        self.delete_memory(id).await
    }

    async fn secret_set(&self, name: &str, value: &str, now: i64) -> Result<(), StoreError> {
        self.set_secret(name, value, now).await
    }

    async fn secret_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.get_secret(name).await
    }

    async fn secrets_list(&self) -> Result<Vec<SecretInfo>, StoreError> {
        self.list_secrets().await
    }

    async fn secret_remove(&self, name: &str) -> Result<bool, StoreError> {
        self.remove_secret(name).await
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

    async fn cron_job_ensure(
        &self,
        name: &str,
        source: &str,
        spec: Option<&str>,
        now: i64,
    ) -> Result<CronJobRecord, StoreError> {
        self.ensure_cron_job(name, source, spec, now).await
    }

    async fn cron_jobs(&self) -> Result<Vec<CronJobRecord>, StoreError> {
        self.list_cron_jobs().await
    }

    async fn cron_job_state(
        &self,
        name: &str,
        paused: bool,
        reason: Option<&str>,
        failures: i64,
    ) -> Result<bool, StoreError> {
        self.set_cron_state(name, paused, reason, failures).await
    }

    async fn cron_job_remove(&self, name: &str) -> Result<bool, StoreError> {
        self.remove_cron_job(name).await
    }

    async fn cron_run_record(
        &self,
        job: &str,
        slot: i64,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.record_cron_run(job, slot, status, reason, now).await
    }

    async fn cron_run_finish(
        &self,
        job: &str,
        slot: i64,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.finish_cron_run(job, slot, status, reason, now).await
    }

    async fn cron_runs(&self, job: &str, limit: u32) -> Result<Vec<CronRunRecord>, StoreError> {
        self.list_cron_runs(job, limit).await
    }

    async fn audit_append(&self, record: AuditRecord) -> Result<i64, StoreError> {
        self.append_audit(record).await
    }

    async fn audit_last(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.last_audit().await
    }

    async fn audit_list(&self, since: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.list_audit(since, limit).await
    }

    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.all_audit().await
    }

    async fn audit_prune(&self, checkpoint: AuditCheckpoint) -> Result<u64, StoreError> {
        self.prune_audit(checkpoint).await
    }

    async fn audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        self.checkpoint_audit().await
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.get_meta(key).await
    }

    async fn meta_list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.list_meta(prefix).await
    }

    async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.set_meta(key, value).await
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        self.scrub_files().await
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
}

#[cfg(test)]
mod tests;
