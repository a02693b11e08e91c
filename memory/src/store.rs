//! The store interface every backend implements.

use async_trait::async_trait;

use crate::records::{AuditCheckpoint, AuditRecord};
use crate::{
    AllowEntry, ApprovalRecord, Cell, Column, CronJobRecord, CronRunRecord, ForgetReport,
    IngressAccept, IngressRecord, IngressStatus, MemoryRecord, NewPairing, PairingRequest,
    SecretInfo, SessionRecord, StoreError, TokenCounts, TranscriptEntry, TurnBegin, TurnCommit,
    TurnEntry,
};

/// Everything the gateway persists. Times are milliseconds since the Unix
/// epoch and are passed in, so callers (and tests) own the clock.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    // ---- sessions and transcripts ----

    /// The session stored under `key`, if any.
    async fn session_get(&self, key: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// The session under `key`, created for `agent` if it does not exist yet.
    async fn session_open(
        &self,
        key: &str,
        agent: &str,
        now: i64,
    ) -> Result<SessionRecord, StoreError> {
        self.session_open_as(key, agent, None, now).await
    }

    /// The session under `key`, created for `agent` and belonging to
    /// `subject` (see [`SessionRecord::subject`]) if it does not exist yet.
    async fn session_open_as(
        &self,
        key: &str,
        agent: &str,
        subject: Option<&str>,
        now: i64,
    ) -> Result<SessionRecord, StoreError>;

    /// Start a fresh generation of the session under `key` (a new
    /// `session_id`, no history). Creates the session if needed.
    async fn session_reset(
        &self,
        key: &str,
        agent: &str,
        now: i64,
    ) -> Result<SessionRecord, StoreError> {
        self.session_reset_as(key, agent, None, now).await
    }

    /// [`Store::session_reset`], creating the session for `subject` if
    /// needed (an existing session keeps its subject).
    async fn session_reset_as(
        &self,
        key: &str,
        agent: &str,
        subject: Option<&str>,
        now: i64,
    ) -> Result<SessionRecord, StoreError>;

    /// The session whose current generation is `session_id`, if any.
    async fn session_by_id(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Continue the session under `key`, whose generation `from` was
    /// summarized, in a fresh generation made of `entries` (the summary and
    /// the recent messages), in one transaction: a crash leaves the old
    /// generation or the new one whole. `None`, and nothing written, when
    /// the session is no longer in generation `from` (it was reset while
    /// the summary was made).
    async fn session_compact(
        &self,
        key: &str,
        from: &str,
        entries: Vec<TurnEntry>,
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let fresh = new_session_id();
        self.session_compact_into(key, from, &fresh, entries, now)
            .await
    }

    /// [`Store::session_compact`] into the new generation id `to`.
    async fn session_compact_into(
        &self,
        key: &str,
        from: &str,
        to: &str,
        entries: Vec<TurnEntry>,
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Remove the session under `key` and its current generation's
    /// transcript (a one-off web chat session once answered). Its usage is
    /// kept. False when there was no such session.
    async fn session_delete(&self, key: &str) -> Result<bool, StoreError>;

    /// Sessions, most recently active first, at most `limit`.
    async fn sessions_list(&self, limit: u32) -> Result<Vec<SessionRecord>, StoreError>;

    /// The last `limit` entries of a session generation, oldest first.
    async fn transcript(
        &self,
        session_id: &str,
        limit: u32,
    ) -> Result<Vec<TranscriptEntry>, StoreError>;

    /// The stored answer to the message of ingress row `ingress_id`: the
    /// first assistant entry after its user entry in the same session that
    /// belongs to its batch (an answer is stored with the batch's first
    /// row, so a later turn's answer never counts for a row whose own turn
    /// did not finish). A restart uses it to re-deliver instead of asking
    /// the model again.
    async fn answer_for_ingress(
        &self,
        ingress_id: i64,
    ) -> Result<Option<TranscriptEntry>, StoreError>;

    /// Append one entry to a session generation now, outside a turn's
    /// commit: a turn's user messages when it starts and its tool calls and
    /// results as they happen, so a turn cut short by a crash is continued
    /// where it stopped instead of run again.
    async fn transcript_append(
        &self,
        session_id: &str,
        entry: TurnEntry,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Start a turn in one transaction: count an attempt on each of its
    /// ingress rows and append its entries. (What `ingress_started` and
    /// `transcript_append` do one by one; backends do it in one trip.)
    async fn turn_begin(&self, begin: TurnBegin) -> Result<(), StoreError> {
        for id in &begin.ingress_ids {
            self.ingress_started(*id, begin.now).await?;
        }
        for entry in begin.entries {
            self.transcript_append(&begin.session_id, entry, begin.now)
                .await?;
        }
        Ok(())
    }

    /// Write a finished turn in one transaction: append its entries, bump the
    /// session's activity, and move its ingress rows to `commit.status`.
    async fn commit_turn(&self, commit: TurnCommit) -> Result<(), StoreError>;

    /// Tokens of a session key's turns since `since` (all generations).
    async fn usage_for_session(
        &self,
        session_key: &str,
        since: i64,
    ) -> Result<TokenCounts, StoreError>;

    /// Tokens of an agent's turns since `since`.
    async fn usage_for_agent(&self, agent: &str, since: i64) -> Result<TokenCounts, StoreError>;

    /// Tokens per agent since `since`, by agent name.
    async fn usage_by_agent(&self, since: i64) -> Result<Vec<(String, TokenCounts)>, StoreError>;

    // ---- ingress queue ----

    /// Offer a message to the ingress queue. A message already seen with the
    /// same (channel, account, message id) is reported as a duplicate and
    /// nothing is written.
    async fn ingress_accept(
        &self,
        channel: &str,
        account: &str,
        message_id: &str,
        payload: &str,
        now: i64,
    ) -> Result<IngressAccept, StoreError> {
        self.ingress_accept_as(channel, account, message_id, payload, None, now)
            .await
    }

    /// [`Store::ingress_accept`] of a message from `subject` (the sender,
    /// `<channel>:<sender id>`), whose own key it is encrypted under and
    /// whom `forget` removes it with.
    async fn ingress_accept_as(
        &self,
        channel: &str,
        account: &str,
        message_id: &str,
        payload: &str,
        subject: Option<&str>,
        now: i64,
    ) -> Result<IngressAccept, StoreError>;

    /// Record the platform message the rows' reply is edited into (see
    /// [`IngressRecord::reply_message_id`]).
    async fn ingress_reply_message(&self, ids: &[i64], message_id: &str) -> Result<(), StoreError>;

    /// Record that processing of a row started (counts attempts).
    async fn ingress_started(&self, id: i64, now: i64) -> Result<(), StoreError>;

    /// Move one row to `status`, with an optional error text.
    async fn ingress_finish(
        &self,
        id: i64,
        status: IngressStatus,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// One row by id.
    async fn ingress_get(&self, id: i64) -> Result<Option<IngressRecord>, StoreError>;

    /// Rows still pending, oldest first: what a restart must pick up again.
    async fn ingress_pending(&self) -> Result<Vec<IngressRecord>, StoreError>;

    /// How many rows are still pending (for the metrics; cheaper than
    /// [`ingress_pending`](Self::ingress_pending) where a backend counts).
    async fn ingress_pending_count(&self) -> Result<u64, StoreError> {
        Ok(self.ingress_pending().await?.len() as u64)
    }

    /// Delete finished rows last changed before `before`. Returns how many.
    async fn ingress_prune(&self, before: i64) -> Result<u64, StoreError>;

    // ---- retention (what `[retention]` prunes besides ingress rows) ----

    /// Delete transcript entries stored before `before`, except those of
    /// ingress rows still pending: a restart or a delivery retry sends
    /// their stored answer. Returns how many.
    async fn transcript_prune(&self, before: i64) -> Result<u64, StoreError>;

    /// Delete the usage records of turns before `before`. Returns how many.
    async fn usage_prune(&self, before: i64) -> Result<u64, StoreError>;

    /// Delete decided approval requests (any status but `pending`) decided
    /// before `before`, or asked before it when no decision time was
    /// recorded. A pending request is kept however old. Returns how many.
    async fn approvals_prune(&self, before: i64) -> Result<u64, StoreError>;

    // ---- pairing and allowlists ----

    /// Store a pairing request, replacing an expired one of the same sender.
    async fn pairing_insert(&self, request: NewPairing) -> Result<(), StoreError>;

    /// Unexpired pairing requests, of one channel or of all, oldest first.
    async fn pairing_list(
        &self,
        channel: Option<&str>,
        now: i64,
    ) -> Result<Vec<PairingRequest>, StoreError>;

    /// Approve the unexpired request with `code` on `channel`: delete it and
    /// add its sender to the allowlist, in one transaction. `None` when no
    /// such request is pending.
    async fn pairing_approve(
        &self,
        channel: &str,
        code: &str,
        by: &str,
        now: i64,
    ) -> Result<Option<PairingRequest>, StoreError>;

    /// Deny (delete) the unexpired request with `code` on `channel`.
    async fn pairing_deny(
        &self,
        channel: &str,
        code: &str,
        now: i64,
    ) -> Result<Option<PairingRequest>, StoreError>;

    /// Delete expired requests. Returns how many.
    async fn pairing_purge_expired(&self, now: i64) -> Result<u64, StoreError>;

    /// Allow a sender. Adding one twice is not an error.
    async fn allow_add(&self, entry: AllowEntry) -> Result<(), StoreError>;

    /// Whether a sender is allowed.
    async fn allow_contains(
        &self,
        channel: &str,
        account: &str,
        sender_id: &str,
    ) -> Result<bool, StoreError>;

    /// Allowed senders, of one channel or of all.
    async fn allow_list(&self, channel: Option<&str>) -> Result<Vec<AllowEntry>, StoreError>;

    /// Remove a sender; returns whether one was there.
    async fn allow_remove(
        &self,
        channel: &str,
        account: &str,
        sender_id: &str,
    ) -> Result<bool, StoreError>;

    // ---- approvals ----

    /// Record a new pending approval request.
    async fn approval_insert(&self, request: ApprovalRecord) -> Result<(), StoreError>;

    /// Decide a pending request: `status` is `approved`, `denied`,
    /// `expired` or `cancelled`. Returns the request as decided, or `None` when no pending
    /// request has that id (unknown, or decided already).
    async fn approval_decide(
        &self,
        id: &str,
        status: &str,
        by: &str,
        now: i64,
    ) -> Result<Option<ApprovalRecord>, StoreError>;

    /// One request by id.
    async fn approval_get(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError>;

    /// Requests, newest first; only pending ones when `pending_only`.
    async fn approvals_list(
        &self,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<ApprovalRecord>, StoreError>;

    /// A cheap query proving the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Finish pending writes and release the database.
    async fn close(&self);

    /// How replicas sharing this database coordinate; `None` for a store
    /// with one writer (SQLite).
    fn coordination(&self) -> Option<&dyn crate::Coordination> {
        None
    }

    // ---- channel state ----

    /// The value under `key` in the state of channel account (`channel`,
    /// `account`), if any.
    async fn channel_state_get(
        &self,
        channel: &str,
        account: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Set every `(key, value)` of `entries` in one transaction.
    async fn channel_state_set(
        &self,
        channel: &str,
        account: &str,
        entries: &[(String, String)],
        now: i64,
    ) -> Result<(), StoreError>;

    /// Remove `keys` in one transaction (a missing key is no error).
    async fn channel_state_remove(
        &self,
        channel: &str,
        account: &str,
        keys: &[String],
    ) -> Result<(), StoreError>;

    /// Every key starting with `prefix`, with its value, in key order.
    async fn channel_state_list(
        &self,
        channel: &str,
        account: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;

    // ---- long-term memory ----

    /// Store one memory (its id is new).
    async fn memory_insert(&self, record: MemoryRecord) -> Result<(), StoreError>;

    /// Memories, oldest first: of one agent and/or one owner (`""` is the
    /// agent-wide scope), or all.
    async fn memory_list(
        &self,
        agent: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Vec<MemoryRecord>, StoreError>;

    /// Delete one memory; false when there was none with that id.
    async fn memory_delete(&self, id: &str) -> Result<bool, StoreError>;

    // ---- secrets ----

    /// Set (or replace) the secret `name`.
    async fn secret_set(&self, name: &str, value: &str, now: i64) -> Result<(), StoreError>;

    /// The value of secret `name`, if set.
    async fn secret_get(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Every secret's name and when it was set, by name; never values.
    async fn secrets_list(&self) -> Result<Vec<SecretInfo>, StoreError>;

    /// Remove the secret `name`; false when it was not set.
    async fn secret_remove(&self, name: &str) -> Result<bool, StoreError>;

    // ---- forgetting a person ----

    /// Forget sender `sender_id` of `channel`: everything of theirs is
    /// deleted and, where records are encrypted, their keys destroyed.
    async fn forget(&self, channel: &str, sender_id: &str) -> Result<ForgetReport, StoreError> {
        let subject = crate::subject_of(channel, sender_id);
        self.forget_rows(&subject, channel, sender_id, &[]).await
    }

    /// Delete everything of one person in one transaction: the sessions
    /// whose subject is `subject` with their transcripts, usage and
    /// approvals; ingress rows from `subject`; memories owned by it;
    /// pairing requests and allowlist entries of `sender_id` on `channel`;
    /// and every row of a sealed column whose value starts with one of
    /// `sealed_prefixes` (records encrypted under the person's keys). Then
    /// the freed pages are wiped (see [`Store::scrub`]).
    async fn forget_rows(
        &self,
        subject: &str,
        channel: &str,
        sender_id: &str,
        sealed_prefixes: &[String],
    ) -> Result<ForgetReport, StoreError>;

    // ---- encryption at rest: raw access for sealing and re-sealing ----

    /// Up to `limit` values of `column` in rows after the opaque cursor
    /// `after` (from the start when `None`), in a stable order.
    async fn cells(
        &self,
        column: Column,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Cell>, StoreError>;

    /// Replace values of `column` (by [`Cell::row`]) in one transaction.
    async fn cells_write(
        &self,
        column: Column,
        values: &[(String, String)],
    ) -> Result<(), StoreError>;

    /// A value of the store's own metadata (the encryption state, ...).
    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Every metadata key starting with `prefix`, with its value, by key.
    async fn meta_list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError>;

    /// Set a value of the store's own metadata.
    async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Leave no trace of deleted or overwritten values in the files:
    /// rewrite free pages and empty the write-ahead log.
    async fn scrub(&self) -> Result<(), StoreError>;

    // ---- scheduled jobs ----

    /// The job `name`, stored now (from `source`, `config` or `runtime`,
    /// with `spec` for a run-time job) when it is new; an existing job
    /// keeps its creation time and state, and takes `spec` when given.
    async fn cron_job_ensure(
        &self,
        name: &str,
        source: &str,
        spec: Option<&str>,
        now: i64,
    ) -> Result<CronJobRecord, StoreError>;

    /// Every stored job, by name.
    async fn cron_jobs(&self) -> Result<Vec<CronJobRecord>, StoreError>;

    /// Set a job's state; false when there is no such job.
    async fn cron_job_state(
        &self,
        name: &str,
        paused: bool,
        reason: Option<&str>,
        failures: i64,
    ) -> Result<bool, StoreError>;

    /// Remove a job (its run history stays); false when there was none.
    async fn cron_job_remove(&self, name: &str) -> Result<bool, StoreError>;

    /// Record slot `slot` (ms, UTC) of `job` as `status`. False, and
    /// nothing written, when that slot was recorded before: a slot runs at
    /// most once, ever.
    async fn cron_run_record(
        &self,
        job: &str,
        slot: i64,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Settle a recorded run.
    async fn cron_run_finish(
        &self,
        job: &str,
        slot: i64,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// A job's runs, latest slot first, at most `limit`.
    async fn cron_runs(&self, job: &str, limit: u32) -> Result<Vec<CronRunRecord>, StoreError>;

    // ---- audit log (never encrypted; signed and chained by the caller) ----

    /// Append `record` at `record.seq`, which the caller signed as one
    /// past [`Store::audit_last`]. The insert is one statement: when
    /// another writer (another process: the CLI appends too) took that seq
    /// first, it fails with [`StoreError::Conflict`] and nothing is
    /// written; the caller reads the last record again, signs anew and
    /// retries. Returns the seq.
    async fn audit_append(&self, record: AuditRecord) -> Result<i64, StoreError>;

    /// The seq and HMAC of the newest record; when retention left none,
    /// those of the checkpoint (the chain goes on from it); `None` for a
    /// log that never had a record.
    async fn audit_last(&self) -> Result<Option<(i64, String)>, StoreError>;

    /// Records that happened at `since` (ms) or later, newest first, at
    /// most `limit`.
    async fn audit_list(&self, since: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;

    /// Every record, in seq order (to verify the chain).
    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError>;

    /// Delete the records up to and including `checkpoint.seq` and store
    /// `checkpoint` in their place, in one transaction. Nothing is deleted,
    /// and [`StoreError::Conflict`] returned, when the record at
    /// `checkpoint.seq` is not there with `checkpoint.mac`. Returns how many
    /// records were deleted.
    async fn audit_prune(&self, checkpoint: AuditCheckpoint) -> Result<u64, StoreError>;

    /// The checkpoint the log starts from, if it was ever pruned.
    async fn audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError>;
}

/// A fresh random session generation id (`s_` and 24 hex digits).
pub fn new_session_id() -> String {
    let b: [u8; 12] = rand::random();
    let mut id = String::with_capacity(26);
    id.push_str("s_");
    for x in b {
        id.push_str(&format!("{x:02x}"));
    }
    id
}
