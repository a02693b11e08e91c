//! The audit log: security-relevant events — sign-ins, one-time links,
//! pairing, approval decisions, allowlist changes, config saves, secrets,
//! key rotation, `forget`, the sandbox policy at start — appended with
//! who, what, when and from where, each record signed with an HMAC
//! chained to the one before it ([`chain`]), so that a record changed,
//! removed or moved in the database is found by `switchboard audit
//! verify`, the UI's Audit page and retention.
//!
//! The key is derived from the master key (`vault::audit_key`). Recording
//! never fails the operation it records: a store error is logged as a
//! warning. Records carry no message text and no secret. Appends are
//! serialized in this process by a mutex; across processes (the CLI
//! appends to the same store) the store takes a record only at the next
//! seq, and a writer that lost the race signs its record again on the new
//! last one.
//!
//! It knows nothing of HTTP beyond reading who sent a request
//! ([`Actor`]).

mod actor;
pub mod chain;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use switchboard_memory::{AuditCheckpoint, AuditRecord, Store, StoreError};

pub use actor::Actor;
pub use chain::{AuditKey, Broken, Why};

use crate::clock::now_ms;

/// The stable ids of what is recorded.
pub mod action {
    /// A browser signed in with the token.
    pub const SIGNIN_OK: &str = "signin.ok";
    /// A sign-in with a wrong token (or a used or expired link) was refused.
    pub const SIGNIN_FAILED: &str = "signin.failed";
    /// A one-time sign-in link was issued (`switchboard ui`).
    pub const LINK_ISSUED: &str = "link.issued";
    /// A browser signed in with a one-time link.
    pub const LINK_USED: &str = "link.used";
    /// An unknown sender was given a pairing code.
    pub const PAIRING_ISSUED: &str = "pairing.issued";
    /// A pairing code was approved: its sender joined the allowlist.
    pub const PAIRING_APPROVED: &str = "pairing.approved";
    /// A pairing code was denied.
    pub const PAIRING_DENIED: &str = "pairing.denied";
    /// A tool call's approval request was decided.
    pub const APPROVAL_DECIDED: &str = "approval.decided";
    /// A sender was added to the allowlist (other than by pairing).
    pub const ALLOWLIST_ADDED: &str = "allowlist.added";
    /// A sender was taken off the allowlist.
    pub const ALLOWLIST_REMOVED: &str = "allowlist.removed";
    /// The config file was saved from the UI or the API.
    pub const CONFIG_SAVED: &str = "config.saved";
    /// The config was reloaded into the running gateway.
    pub const CONFIG_RELOADED: &str = "config.reloaded";
    /// A secret was set.
    pub const SECRET_SET: &str = "secret.set";
    /// A secret was removed.
    pub const SECRET_REMOVED: &str = "secret.removed";
    /// The encryption keys were rotated.
    pub const KEYS_ROTATED: &str = "keys.rotated";
    /// A person was forgotten.
    pub const FORGET: &str = "forget";
    /// The sandbox policy at start differs from the last start's.
    pub const SANDBOX_POLICY: &str = "sandbox.policy";
}

/// Attempts at appending one record while other writers keep taking its
/// place.
const ATTEMPTS: usize = 8;

/// `store_meta` key of the digest of the sandbox policy last recorded.
const SANDBOX_POLICY_META: &str = "audit-sandbox-policy";

/// What went wrong with the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store could not be read or written.
    #[error("the audit log cannot be read or written: {0}")]
    Store(#[from] StoreError),
    /// Other writers appended first at every attempt.
    #[error(
        "the audit record was not appended: other writers appended first {ATTEMPTS} times in a row; try again"
    )]
    Contended,
    /// The chain is broken, so the log was not pruned (the evidence stays).
    #[error(
        "the audit log was not pruned, so that the evidence stays: {0}. Run `switchboard audit verify` and look into it"
    )]
    Broken(Broken),
}

/// The state of the chain, as verified.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Records in the log.
    pub records: usize,
    /// The checkpoint it starts from, if it was pruned.
    pub checkpoint: Option<AuditCheckpoint>,
    /// Where it breaks; `None` when intact.
    pub broken: Option<Broken>,
}

impl Verification {
    /// One line: `chain intact: 42 records (from the checkpoint at record
    /// 12)`, or `chain broken at record 17: …`.
    pub fn summary(&self) -> String {
        match &self.broken {
            Some(b) => format!("chain broken at record {}: {b}", b.seq),
            None => {
                let n = self.records;
                let from = self
                    .checkpoint
                    .as_ref()
                    .map(|c| format!(" (from the checkpoint at record {})", c.seq))
                    .unwrap_or_default();
                format!(
                    "chain intact: {n} record{}{from}",
                    if n == 1 { "" } else { "s" }
                )
            }
        }
    }

    /// As the API and `audit verify --json` show it.
    pub fn to_json(&self) -> Value {
        json!({
            "intact": self.broken.is_none(),
            "records": self.records,
            "checkpoint": self.checkpoint.as_ref().map(|c| json!({
                "seq": c.seq,
                "at": c.at,
                "time": chain::rfc3339(c.at),
            })),
            "broken": self.broken.as_ref().map(|b| json!({
                "seq": b.seq,
                "why": b.why.id(),
                "message": b.to_string(),
            })),
            "summary": self.summary(),
        })
    }
}

/// A record as the API and `audit list --json` show it: its fields, when
/// it happened in RFC 3339 (`time`), and `detail` as JSON.
pub fn record_json(r: &AuditRecord) -> Value {
    let detail = serde_json::from_str::<Value>(&r.detail)
        .unwrap_or_else(|_| Value::String(r.detail.clone()));
    json!({
        "seq": r.seq,
        "at": r.at,
        "time": chain::rfc3339(r.at),
        "actor": r.actor,
        "action": r.action,
        "target": r.target,
        "source": r.source,
        "detail": detail,
        "prev": r.prev,
        "mac": r.mac,
    })
}

/// The handle that appends to, lists and checks the audit log.
pub struct Audit {
    store: Arc<dyn Store>,
    key: AuditKey,
    /// Held while this process appends a record.
    appending: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").finish_non_exhaustive()
    }
}

impl Audit {
    /// The audit log of `store`, signed with `key`.
    pub fn new(store: Arc<dyn Store>, key: AuditKey) -> Self {
        Self {
            store,
            key,
            appending: tokio::sync::Mutex::new(()),
        }
    }

    /// Record that `by` did `action` to `target` (empty when it names
    /// nothing), with `detail` (never message text or secrets). Never
    /// fails: when the store does, a warning is logged and the caller's
    /// operation goes on.
    pub async fn record(&self, by: &Actor, action: &str, target: &str, detail: Value) {
        if let Err(e) = self.try_record(by, action, target, detail).await {
            tracing::warn!(action, actor = %by.id, error = %e, "cannot write the audit record; the operation went on");
        }
    }

    /// [`Audit::record`], saying whether it was written; returns its seq.
    pub async fn try_record(
        &self,
        by: &Actor,
        action: &str,
        target: &str,
        detail: Value,
    ) -> Result<i64, AuditError> {
        self.append_at(now_ms(), by, action, target, &detail).await
    }

    /// Append a record that happened at `at` (ms).
    pub(crate) async fn append_at(
        &self,
        at: i64,
        by: &Actor,
        action: &str,
        target: &str,
        detail: &Value,
    ) -> Result<i64, AuditError> {
        let detail = detail.to_string();
        let _one = self.appending.lock().await;
        for _ in 0..ATTEMPTS {
            let (last, prev) = self
                .store
                .audit_last()
                .await?
                .unwrap_or_else(|| (0, chain::GENESIS.to_string()));
            let mut r = AuditRecord {
                seq: last + 1,
                at,
                actor: by.id.clone(),
                action: action.to_string(),
                target: target.to_string(),
                source: by.source.clone(),
                detail: detail.clone(),
                prev,
                mac: String::new(),
            };
            r.mac = chain::record_mac(&self.key, &r);
            match self.store.audit_append(r).await {
                Ok(seq) => return Ok(seq),
                // Another process appended first: sign again after it.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuditError::Contended)
    }

    /// Records that happened at `since` (ms) or later, newest first, at
    /// most `limit`.
    pub async fn list(&self, since: i64, limit: u32) -> Result<Vec<AuditRecord>, AuditError> {
        Ok(self.store.audit_list(since, limit).await?)
    }

    /// Check the whole chain.
    pub async fn verify(&self) -> Result<Verification, AuditError> {
        let records = self.store.audit_all().await?;
        let checkpoint = self.store.audit_checkpoint().await?;
        Ok(self.check(&records, checkpoint))
    }

    fn check(&self, records: &[AuditRecord], checkpoint: Option<AuditCheckpoint>) -> Verification {
        let broken = chain::verify(records, checkpoint.as_ref(), &self.key).err();
        Verification {
            records: records.len(),
            checkpoint,
            broken,
        }
    }

    /// Delete the oldest records, those that happened before `before`
    /// (ms; up to the first that did not), leaving a checkpoint signed at
    /// `now`, so the rest stays verifiable. A broken chain is not pruned.
    /// Returns how many were deleted.
    pub async fn prune(&self, before: i64, now: i64) -> Result<u64, AuditError> {
        let records = self.store.audit_all().await?;
        let checkpoint = self.store.audit_checkpoint().await?;
        if let Some(broken) = self.check(&records, checkpoint).broken {
            return Err(AuditError::Broken(broken));
        }
        let Some(last) = records.iter().take_while(|r| r.at < before).last() else {
            return Ok(0);
        };
        let checkpoint = chain::checkpoint(&self.key, last, now);
        Ok(self.store.audit_prune(checkpoint).await?)
    }

    /// A keyed digest naming `value` (a person forgotten) without it.
    pub fn pseudonym(&self, value: &str) -> String {
        chain::pseudonym(&self.key, value)
    }

    /// At start: record the sandbox policy when it differs from the one
    /// recorded last (or none was). The values of `[sandbox] env` are left
    /// out (only their names), as they may be secrets.
    pub async fn sandbox_policy(&self, settings: &switchboard_sandbox::SandboxSettings) {
        let policy = sandbox_detail(settings);
        let digest: String = Sha256::digest(policy.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let previous = match self.store.meta_get(SANDBOX_POLICY_META).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the sandbox policy last recorded in the audit log");
                return;
            }
        };
        if previous.as_deref() == Some(digest.as_str()) {
            return;
        }
        let detail = json!({ "policy": policy, "first": previous.is_none() });
        match self
            .try_record(&Actor::gateway(), action::SANDBOX_POLICY, "sandbox", detail)
            .await
        {
            Ok(_) => {
                if let Err(e) = self.store.meta_set(SANDBOX_POLICY_META, &digest).await {
                    tracing::warn!(error = %e, "cannot remember the sandbox policy recorded in the audit log");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the sandbox policy to the audit log")
            }
        }
    }
}

/// `[sandbox]` as recorded: every setting, `env` by names only.
fn sandbox_detail(settings: &switchboard_sandbox::SandboxSettings) -> Value {
    let mut v = serde_json::to_value(settings).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("env".into(), json!(settings.env.keys().collect::<Vec<_>>()));
    }
    v
}
