//! Plain records the store reads and writes.

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// A session: the stable key a conversation maps to, and its current
/// generation (`session_id`), which changes on `/new` and resets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SessionRecord {
    /// The session key, e.g. `agent:main:telegram:dm:42`.
    pub key: String,
    /// The current generation's id; transcript entries hang off it.
    pub session_id: String,
    /// The agent that serves this session.
    pub agent: String,
    /// When the key was first seen, ms since the epoch.
    pub created_at: i64,
    /// When the current generation started, ms since the epoch.
    pub updated_at: i64,
    /// When the last turn completed, ms since the epoch.
    pub last_active_at: i64,
    /// Turns completed in the current generation.
    pub turns: i64,
    /// The person the session belongs to (`<channel>:<sender id>`, a DM's
    /// sender), whose own key its records are encrypted under; `None` for
    /// a shared session (a group, or every DM in one `main` session).
    #[sqlx(default)]
    #[serde(default)]
    pub subject: Option<String>,
}

/// Who said a transcript entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The person talking to the assistant.
    User,
    /// The assistant.
    Assistant,
    /// A note from the gateway (e.g. a summary).
    System,
    /// A tool call the assistant made, stored as it was made: JSON
    /// `{"id", "name", "arguments"}`. Consecutive calls are one step.
    ToolCall,
    /// A tool call's result, stored as it came: JSON `{"id", "name",
    /// "is_error", "output"}`.
    ToolResult,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::ToolCall => "tool_call",
            Role::ToolResult => "tool_result",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            "system" => Ok(Role::System),
            "tool_call" => Ok(Role::ToolCall),
            "tool_result" => Ok(Role::ToolResult),
            other => Err(StoreError::Corrupt(format!(
                "unknown transcript role `{other}`"
            ))),
        }
    }
}

impl TryFrom<String> for Role {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        Role::parse(&s)
    }
}

/// One stored transcript entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TranscriptEntry {
    /// Order of entries across the whole store.
    pub seq: i64,
    /// The session generation it belongs to.
    pub session_id: String,
    /// Who said it.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// What was said.
    pub content: String,
    /// The ingress row that caused it, for user entries and their answers.
    pub ingress_id: Option<i64>,
    /// When it was stored, ms since the epoch.
    pub created_at: i64,
}

/// An entry to append as part of a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnEntry {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
    /// The ingress row it came from or answers.
    pub ingress_id: Option<i64>,
}

/// What a turn writes as it starts, in one transaction: an attempt counted
/// on each of its ingress rows (a message that crashes the gateway is
/// given up after a few), and its user messages appended to the session
/// generation (so a turn cut short is continued, not run again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnBegin {
    /// The session generation the entries belong to.
    pub session_id: String,
    /// Ingress rows whose attempt count goes up by one.
    pub ingress_ids: Vec<i64>,
    /// Entries to append, in order.
    pub entries: Vec<TurnEntry>,
    /// Now, ms since the epoch.
    pub now: i64,
}

/// Everything one finished turn writes, in one transaction: its transcript
/// entries, the session's activity, and the ingress rows it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCommit {
    /// The session generation the entries belong to.
    pub session_id: String,
    /// Entries in order.
    pub entries: Vec<TurnEntry>,
    /// Ingress rows to mark with `status`.
    pub ingress_ids: Vec<i64>,
    /// The status those rows end in (`Done` or `Failed`).
    pub status: IngressStatus,
    /// An error to record with a failed turn.
    pub error: Option<String>,
    /// Now, ms since the epoch.
    pub now: i64,
    /// Tokens the turn used, recorded with it.
    pub usage: Option<TurnUsage>,
}

/// Tokens one turn used, for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnUsage {
    /// The agent that ran the turn.
    pub agent: String,
    /// The session key.
    pub session_key: String,
    /// The counts.
    pub tokens: TokenCounts,
}

/// Token counts, summed over some turns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TokenCounts {
    /// Prompt tokens.
    pub input_tokens: i64,
    /// Answer tokens.
    pub output_tokens: i64,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: i64,
    /// Turns counted.
    pub turns: i64,
    /// What the turns cost, in millionths of a US dollar; 0 when no pricing is
    /// configured for the provider (`[providers.x.pricing]`).
    #[serde(default)]
    pub cost_micros: i64,
}

impl TokenCounts {
    /// Input plus output tokens.
    pub fn total(&self) -> i64 {
        self.input_tokens + self.output_tokens
    }
}

/// Where an ingress row is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngressStatus {
    /// Accepted, not yet answered. Picked up again after a restart.
    Pending,
    /// Answered and delivered.
    Done,
    /// Answered with an error the user was told about.
    Failed,
    /// Not for the assistant (policy, mention gating, rate limit).
    Ignored,
}

impl IngressStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            IngressStatus::Pending => "pending",
            IngressStatus::Done => "done",
            IngressStatus::Failed => "failed",
            IngressStatus::Ignored => "ignored",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(IngressStatus::Pending),
            "done" => Ok(IngressStatus::Done),
            "failed" => Ok(IngressStatus::Failed),
            "ignored" => Ok(IngressStatus::Ignored),
            other => Err(StoreError::Corrupt(format!(
                "unknown ingress status `{other}`"
            ))),
        }
    }
}

impl TryFrom<String> for IngressStatus {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        IngressStatus::parse(&s)
    }
}

/// One row of the ingress queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct IngressRecord {
    /// The row id.
    pub id: i64,
    /// Channel name.
    pub channel: String,
    /// Channel account.
    pub account: String,
    /// The platform's message id.
    pub message_id: String,
    /// The message as the gateway serialized it (JSON).
    pub payload: String,
    /// Where it is in its life.
    #[sqlx(try_from = "String")]
    pub status: IngressStatus,
    /// How often processing started.
    pub attempts: i64,
    /// The last error, for failed rows.
    pub error: Option<String>,
    /// When it was accepted, ms since the epoch.
    pub received_at: i64,
    /// When its status last changed, ms since the epoch.
    pub updated_at: i64,
    /// The platform message its reply is being edited into, once a preview
    /// of it was shown.
    #[serde(default)]
    pub reply_message_id: Option<String>,
    /// For replicas sharing the store: the one that owns the row (its
    /// claim renewed by heartbeat). Always `None` on SQLite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[sqlx(default)]
    pub claimed_by: Option<String>,
}

/// The outcome of offering a message to the ingress queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressAccept {
    /// A new row was written with this id.
    Accepted(i64),
    /// The same (channel, account, message id) was seen before.
    Duplicate {
        /// The existing row's id.
        id: i64,
        /// The existing row's status.
        status: IngressStatus,
    },
}

/// A pending pairing request of an unknown DM sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PairingRequest {
    /// Channel name.
    pub channel: String,
    /// Channel account.
    pub account: String,
    /// The sender's platform id.
    pub sender_id: String,
    /// The sender's display name, if known.
    pub sender_name: Option<String>,
    /// The DM chat to tell the sender in once approved.
    pub chat_id: String,
    /// The code the sender was given.
    pub code: String,
    /// When it was created, ms since the epoch.
    pub created_at: i64,
    /// When it stops being valid, ms since the epoch.
    pub expires_at: i64,
}

/// A pairing request to store.
pub type NewPairing = PairingRequest;

/// A sender allowed to talk to the assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AllowEntry {
    /// Channel name.
    pub channel: String,
    /// Channel account.
    pub account: String,
    /// The sender's platform id.
    pub sender_id: String,
    /// When it was added, ms since the epoch.
    pub added_at: i64,
    /// Who added it (`cli`, `api`, `config`, ...).
    pub added_by: String,
}

/// A tool call waiting for (or given) an operator's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ApprovalRecord {
    /// The random id people type (`/approve <id>`): 16 characters, too
    /// many to guess.
    pub id: String,
    /// The session the call belongs to.
    pub session_key: String,
    /// The agent that asked.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// Its arguments (JSON text).
    pub arguments: String,
    /// `pending`, `approved`, `denied`, `expired` (nobody answered in
    /// time) or `cancelled` (its turn ended before a decision).
    pub status: String,
    /// Who decided (`cli`, `api`, `ws`, `chat:<channel>:<sender id>`,
    /// `timeout`, `restart`, `gateway (its turn ended)`).
    pub decided_by: Option<String>,
    /// When it was asked, ms since the epoch.
    pub created_at: i64,
    /// When it is denied by itself, ms since the epoch.
    pub expires_at: i64,
    /// When it was decided, ms since the epoch.
    pub decided_at: Option<i64>,
}

/// One long-term memory: a fact an agent saved to find again later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryRecord {
    /// A random id, unique across the store.
    pub id: String,
    /// The agent whose memory it is.
    pub agent: String,
    /// The person it belongs to (`<channel>:<sender id>`), or `""` when
    /// the agent shares its memory across everyone (`memory.scope =
    /// "agent"`).
    pub owner: String,
    /// What to remember.
    pub text: String,
    /// Optional labels.
    pub tags: Vec<String>,
    /// The text's embedding, when the agent has an embeddings model.
    pub vector: Option<Vec<f32>>,
    /// When it was saved, ms since the epoch.
    pub created_at: i64,
}

impl MemoryRecord {
    /// A memory from its stored columns: `tags` a JSON array, `vector`
    /// JSON numbers (as both backends store them).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_columns(
        id: String,
        agent: String,
        owner: String,
        text: String,
        tags: &str,
        vector: Option<&str>,
        created_at: i64,
    ) -> Result<Self, StoreError> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("memory {id}: {e}"));
        Ok(MemoryRecord {
            tags: serde_json::from_str(tags).map_err(corrupt)?,
            vector: vector
                .map(serde_json::from_str)
                .transpose()
                .map_err(corrupt)?,
            agent,
            owner,
            text,
            created_at,
            id,
        })
    }
}

/// A stored secret's name and when it was set (its value is never listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// The name config files refer to as `"secret:NAME"`.
    pub name: String,
    /// When it was last set, ms since the epoch.
    pub updated_at: i64,
}

/// What `forget` removed, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetReport {
    /// Sessions removed.
    pub sessions: u64,
    /// Transcript entries removed.
    pub transcript_entries: u64,
    /// Ingress rows removed (pending or done).
    pub ingress_rows: u64,
    /// Long-term memories removed.
    pub memories: u64,
    /// Approval requests removed.
    pub approvals: u64,
    /// Pairing requests removed.
    pub pairing_requests: u64,
    /// Allowlist entries removed.
    pub allowlist_entries: u64,
    /// Keys destroyed.
    pub keys: u64,
}

/// A column the store keeps encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// `transcript.content`, bound to its session generation.
    TranscriptContent,
    /// `ingress.payload`, bound to (channel, account, message id).
    IngressPayload,
    /// `approvals.arguments`, bound to the request id.
    ApprovalArguments,
    /// `memories.text`, bound to the memory id. Sealed, it holds the
    /// memory's text, tags and vector together.
    MemoryText,
    /// `secrets.value`, bound to the secret name.
    SecretValue,
}

impl Column {
    /// Every sealed column.
    pub const ALL: [Column; 5] = [
        Column::TranscriptContent,
        Column::IngressPayload,
        Column::ApprovalArguments,
        Column::MemoryText,
        Column::SecretValue,
    ];

    /// `table.column`.
    pub fn name(self) -> &'static str {
        match self {
            Column::TranscriptContent => "transcript.content",
            Column::IngressPayload => "ingress.payload",
            Column::ApprovalArguments => "approvals.arguments",
            Column::MemoryText => "memories.text",
            Column::SecretValue => "secrets.value",
        }
    }
}

/// The subject (see [`SessionRecord::subject`]) of a person: sender
/// `sender_id` on `channel`.
pub fn subject_of(channel: &str, sender_id: &str) -> String {
    format!("{channel}:{sender_id}")
}

/// One stored value of a sealed column, with what binds it to its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The backend's opaque handle of the row (also the scan cursor).
    pub row: String,
    /// What the value is bound to besides its column: the session
    /// generation, the message's (channel, account, id), the request,
    /// memory or secret id.
    pub context: String,
    /// Whose key the value belongs under (`None`: the shared key).
    pub subject: Option<String>,
    /// The stored value (sealed, or plain before the upgrade).
    pub value: String,
}

/// A scheduled job as the store keeps it: where it came from, its state
/// and, for one made at run time, its definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct CronJobRecord {
    /// Its name (`[cron.jobs.<name>]`, or given to `cron add`).
    pub name: String,
    /// `config` or `runtime`.
    pub source: String,
    /// A run-time job's definition (JSON); the config's jobs keep theirs in
    /// the config.
    pub spec: Option<String>,
    /// When the store first saw it, ms since the epoch: no slot before it
    /// counts, and `every` slots count from it.
    pub created_at: i64,
    /// Whether it is paused (by the operator, or after failing too often).
    pub paused: bool,
    /// Why it is paused.
    pub paused_reason: Option<String>,
    /// Runs that failed in a row.
    pub failures: i64,
}

/// One slot of a job: run, missed or skipped, at most once ever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct CronRunRecord {
    /// The job.
    pub job: String,
    /// The slot, ms since the epoch (UTC).
    pub slot: i64,
    /// `running`, `ok`, `failed`, `missed` or `skipped`.
    pub status: String,
    /// Why it was missed or skipped, or what failed.
    pub reason: Option<String>,
    /// When it was recorded, ms since the epoch.
    pub recorded_at: i64,
    /// When it finished, ms since the epoch.
    pub finished_at: Option<i64>,
}

/// One record of the audit log: a security-relevant event, signed with an
/// HMAC chained to the record before it. The store keeps it as given and
/// never encrypts it (it must stay verifiable without the data keys); it
/// holds no message text and no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AuditRecord {
    /// Its place in the log: one past the record before it (or the
    /// checkpoint), from 1.
    pub seq: i64,
    /// When it happened, ms since the epoch.
    pub at: i64,
    /// Who did it: `cli`, `api`, `ui`, `ws`, `chat:<channel>:<sender>`,
    /// `gateway`, ….
    pub actor: String,
    /// What was done, a stable id such as `pairing.approved`.
    pub action: String,
    /// What it was done to (a sender, a secret's name, a file), or empty.
    pub target: String,
    /// Where it came from: a client's IP address, `cli`, `chat:<channel>`
    /// or `gateway`.
    pub source: String,
    /// More about it, as JSON text.
    pub detail: String,
    /// The HMAC (hex) of the record before it, or of the checkpoint's
    /// record; empty for the first record of a log never pruned.
    pub prev: String,
    /// Its own HMAC (hex), over every field above.
    pub mac: String,
}

/// Where the audit log starts once its oldest records were pruned: the
/// last pruned record's place and HMAC (which the next record's `prev`
/// names), signed, so the rest of the chain stays verifiable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AuditCheckpoint {
    /// The seq of the last pruned record.
    pub seq: i64,
    /// Its HMAC (hex).
    pub mac: String,
    /// When it was pruned, ms since the epoch.
    pub at: i64,
    /// The HMAC (hex) of the checkpoint itself, over the three above.
    pub checkpoint_mac: String,
}
