//! [`SealedStore`]: any backend, with user content encrypted before it
//! reaches it (see [`crate::crypto`]). The backend stores and returns
//! sealed strings and never sees a key; this layer picks the key (the
//! person's own, or the shared one) and binds each value to its column
//! and row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::crypto::{self, Keyring};
use crate::records::{AuditCheckpoint, AuditRecord};
use crate::{
    AllowEntry, ApprovalRecord, Cell, Column, CronJobRecord, CronRunRecord, ForgetReport,
    IngressAccept, IngressRecord, IngressStatus, MemoryRecord, NewPairing, PairingRequest,
    SecretInfo, SessionRecord, Store, StoreError, TokenCounts, TranscriptEntry, TurnBegin,
    TurnCommit, TurnEntry,
};

mod reseal;

/// Session generations whose subject is remembered (past this, the map is
/// cleared and refilled as sessions are used).
const SUBJECT_CACHE: usize = 10_000;
/// Records re-sealed per transaction by [`SealedStore::seal_all`].
const BATCH: u32 = 500;
/// `store_meta` key of the first pool place not reserved yet.
const POOL_NEXT: &str = "key-pool-next";
/// Pool places reserved at once.
const RESERVE: u64 = 64;
/// `store_meta` key prefix of a person's key id (`subject-key:<subject>`).
pub(crate) const SUBJECT_KEY: &str = "subject-key:";

/// `store_meta` key of the keyring file's text, in a store shared by
/// replicas: each one opens the same keyring (its data keys wrapped under
/// the key file or passphrase, so the database alone does not open them).
pub const SHARED_KEYRING: &str = "keyring.file";

/// The notice channel on which a replica says it added keys to the shared
/// keyring.
pub const KEYRING_TOPIC: &str = "switchboard_keyring";

/// The lease held while the shared keyring is written.
const KEYRING_LEASE: &str = "keyring:share";

/// A store whose user content is encrypted at rest.
#[derive(Debug)]
pub struct SealedStore {
    inner: Arc<dyn Store>,
    ring: Arc<Keyring>,
    /// Session generation id → the session's subject.
    subjects: Mutex<HashMap<String, Option<String>>>,
    /// Held while a person is handed a key from the pool; holds the pool
    /// places reserved in the store for this run (next, end).
    assigning: tokio::sync::Mutex<Option<(u64, u64)>>,
}

/// A memory's fields sealed together in `memories.text`.
#[derive(Serialize, Deserialize)]
struct MemoryBody {
    text: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    vector: Option<Vec<f32>>,
}

fn aad(column: Column, context: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(column.name().len() + 1 + context.len());
    a.extend_from_slice(column.name().as_bytes());
    a.push(0);
    a.extend_from_slice(context.as_bytes());
    a
}

fn ingress_context(channel: &str, account: &str, message_id: &str) -> String {
    format!("{channel}\0{account}\0{message_id}")
}

impl SealedStore {
    /// `inner`, with its user content sealed under `ring`'s keys.
    pub fn new(inner: Arc<dyn Store>, ring: Arc<Keyring>) -> Self {
        Self {
            inner,
            ring,
            subjects: Mutex::new(HashMap::new()),
            assigning: tokio::sync::Mutex::new(None),
        }
    }

    /// The key `subject`'s records are sealed under (`None`: the shared
    /// key): learned from the store, or handed from the keyring's pool and
    /// recorded in the store first.
    async fn key_for(&self, subject: Option<&str>) -> Result<(String, crypto::Key), StoreError> {
        let Some(subject) = subject else {
            return Ok(self.ring.shared_key()?);
        };
        if let Some(k) = self.ring.person_key(subject) {
            return Ok(k);
        }
        let mut reserved = self.assigning.lock().await;
        if let Some(k) = self.ring.person_key(subject) {
            return Ok(k);
        }
        let mapping = format!("{SUBJECT_KEY}{subject}");
        if let Some(kid) = self.inner.meta_get(&mapping).await?
            && self.ring.learn(subject, &kid)
            && let Some(k) = self.ring.person_key(subject)
        {
            return Ok(k);
        }
        // Pool places are reserved in the store a block at a time (one write
        // per block, not per person): after a crash the rest of a block is
        // skipped, never handed out again.
        let next = match *reserved {
            Some((next, end)) if next < end => next,
            _ => {
                // Replicas reserve one at a time: a block is theirs alone.
                let shared = self.lock_shared().await?;
                let reserve = async {
                    let stored = self.pool_next().await?;
                    let start = reserved.map_or(stored, |(next, _)| next.max(stored));
                    self.inner
                        .meta_set(POOL_NEXT, &(start + RESERVE).to_string())
                        .await?;
                    Ok::<u64, StoreError>(start)
                }
                .await;
                self.unlock_shared(shared).await?;
                let start = reserve?;
                *reserved = Some((start, start + RESERVE));
                start
            }
        };
        let keys_before = self.ring.len();
        let (kid, key, after) = self.ring.assign(subject, next)?;
        if self.ring.len() != keys_before {
            // The pool was refilled: replicas on the same database learn the
            // new keys before anything is sealed with one.
            if let Err(e) = self.share_keyring().await {
                self.ring.unlearn(subject);
                return Err(e);
            }
        }
        let end = reserved.map_or(0, |(_, end)| end);
        if after > end {
            // The pool's next key lay past the block (after a
            // re-encryption): reserve up to it before the key is used.
            let shared = self.lock_shared().await?;
            let moved = async {
                let stored = self.pool_next().await?;
                // Never back: places past it may be another replica's.
                let to = stored.max(after + RESERVE);
                self.inner.meta_set(POOL_NEXT, &to.to_string()).await
            }
            .await;
            self.unlock_shared(shared).await?;
            if let Err(e) = moved {
                self.ring.unlearn(subject);
                return Err(e);
            }
            *reserved = Some((after, after + RESERVE));
        } else {
            *reserved = Some((after, end));
        }
        // Recorded before anything is sealed with it, so the key stays
        // theirs after a restart.
        if let Err(e) = self.inner.meta_set(&mapping, &kid).await {
            self.ring.unlearn(subject);
            return Err(e);
        }
        Ok((kid, key))
    }

    /// For a store shared by replicas: put this copy of the keyring
    /// together with the one in the database (under a lease, so that two
    /// replicas' keys are never lost to each other's write), store the
    /// whole, and tell the others ([`KEYRING_TOPIC`]). Nothing for a store
    /// with one writer.
    pub async fn share_keyring(&self) -> Result<(), StoreError> {
        let Some(shared) = self.lock_shared().await? else {
            return Ok(());
        };
        let result = async {
            if let Some(theirs) = self.inner.meta_get(SHARED_KEYRING).await? {
                self.ring.merge(&theirs)?;
            }
            self.inner
                .meta_set(SHARED_KEYRING, &self.ring.text()?)
                .await
        }
        .await;
        self.unlock_shared(Some(shared)).await?;
        result?;
        match self.inner.coordination() {
            Some(coord) => coord.publish(KEYRING_TOPIC, self.ring.id()).await,
            None => Ok(()),
        }
    }

    /// The first pool place not reserved yet, as the store says.
    async fn pool_next(&self) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .meta_get(POOL_NEXT)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// For a store shared by replicas: wait for the lease under which the
    /// shared keyring and the pool places are written; its token (`None`:
    /// a store with one writer, nothing to wait for).
    async fn lock_shared(&self) -> Result<Option<String>, StoreError> {
        let Some(coord) = self.inner.coordination() else {
            return Ok(None);
        };
        let me = format!("keyring-{:016x}", rand::random::<u64>());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !coord.lease_acquire(KEYRING_LEASE, &me, &me, 60_000).await? {
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::Conflict(
                    "another replica has been writing the shared keyring for over 60 s".into(),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(Some(me))
    }

    async fn unlock_shared(&self, token: Option<String>) -> Result<(), StoreError> {
        match (token, self.inner.coordination()) {
            (Some(me), Some(coord)) => coord.lease_release(KEYRING_LEASE, &me, &me).await,
            _ => Ok(()),
        }
    }

    /// Take in the keys the other replicas added to the shared keyring;
    /// how many were new here.
    pub async fn learn_shared_keys(&self) -> Result<usize, StoreError> {
        match self.inner.meta_get(SHARED_KEYRING).await? {
            Some(theirs) => Ok(self.ring.merge(&theirs)?),
            None => Ok(0),
        }
    }

    /// The keyring.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.ring
    }

    /// The backend.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    async fn seal(
        &self,
        column: Column,
        context: &str,
        subject: Option<&str>,
        plain: &str,
    ) -> Result<String, StoreError> {
        let (kid, key) = self.key_for(subject).await?;
        Ok(key.seal(&kid, &aad(column, context), plain.as_bytes()))
    }

    fn open(&self, column: Column, context: &str, sealed: &str) -> Result<String, StoreError> {
        let what = || format!("{} of {}", column.name(), context.replace('\0', "/"));
        let mut plain = self
            .ring
            .unseal(&aad(column, context), sealed)
            .map_err(|error| StoreError::Crypto {
                what: what(),
                error,
            })?;
        String::from_utf8(std::mem::take(&mut *plain)).map_err(|_| StoreError::Corrupt(what()))
    }

    fn remember(&self, s: &SessionRecord) {
        let mut map = self.subjects.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= SUBJECT_CACHE {
            map.clear();
        }
        map.insert(s.session_id.clone(), s.subject.clone());
    }

    fn remembered(&self, s: SessionRecord) -> SessionRecord {
        self.remember(&s);
        s
    }

    /// The subject of session generation `session_id` (`None`: shared, or
    /// a generation no longer current).
    async fn subject_of_generation(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        if let Some(s) = self
            .subjects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session_id)
        {
            return Ok(s.clone());
        }
        Ok(match self.inner.session_by_id(session_id).await? {
            Some(s) => self.remembered(s).subject,
            None => None,
        })
    }

    fn open_entry(&self, mut e: TranscriptEntry) -> Result<TranscriptEntry, StoreError> {
        e.content = self.open(Column::TranscriptContent, &e.session_id, &e.content)?;
        Ok(e)
    }

    async fn seal_entries(
        &self,
        session_id: &str,
        subject: Option<&str>,
        entries: Vec<TurnEntry>,
    ) -> Result<Vec<TurnEntry>, StoreError> {
        let (kid, key) = self.key_for(subject).await?;
        let binding = aad(Column::TranscriptContent, session_id);
        Ok(entries
            .into_iter()
            .map(|mut e| {
                e.content = key.seal(&kid, &binding, e.content.as_bytes());
                e
            })
            .collect())
    }

    fn open_ingress(&self, mut r: IngressRecord) -> Result<IngressRecord, StoreError> {
        let context = ingress_context(&r.channel, &r.account, &r.message_id);
        r.payload = self.open(Column::IngressPayload, &context, &r.payload)?;
        Ok(r)
    }

    fn open_approval(&self, mut r: ApprovalRecord) -> Result<ApprovalRecord, StoreError> {
        r.arguments = self.open(Column::ApprovalArguments, &r.id, &r.arguments)?;
        Ok(r)
    }

    fn open_memory(&self, mut m: MemoryRecord) -> Result<MemoryRecord, StoreError> {
        let body = self.open(Column::MemoryText, &m.id, &m.text)?;
        let body: MemoryBody = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("memory {}: {e}", m.id)))?;
        m.text = body.text;
        m.tags = body.tags;
        m.vector = body.vector;
        Ok(m)
    }

    async fn seal_memory(&self, m: &MemoryRecord) -> Result<String, StoreError> {
        let body = MemoryBody {
            text: m.text.clone(),
            tags: m.tags.clone(),
            vector: m.vector.clone(),
        };
        let json = serde_json::to_string(&body).unwrap_or_default();
        let owner = (!m.owner.is_empty()).then_some(m.owner.as_str());
        self.seal(Column::MemoryText, &m.id, owner, &json).await
    }
}

#[async_trait]
impl Store for SealedStore {
    async fn session_get(&self, key: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .inner
            .session_get(key)
            .await?
            .map(|s| self.remembered(s)))
    }

    async fn session_open_as(
        &self,
        key: &str,
        agent: &str,
        subject: Option<&str>,
        now: i64,
    ) -> Result<SessionRecord, StoreError> {
        let s = self.inner.session_open_as(key, agent, subject, now).await?;
        Ok(self.remembered(s))
    }

    async fn session_reset_as(
        &self,
        key: &str,
        agent: &str,
        subject: Option<&str>,
        now: i64,
    ) -> Result<SessionRecord, StoreError> {
        let s = self
            .inner
            .session_reset_as(key, agent, subject, now)
            .await?;
        Ok(self.remembered(s))
    }

    async fn session_by_id(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .inner
            .session_by_id(session_id)
            .await?
            .map(|s| self.remembered(s)))
    }

    async fn session_compact_into(
        &self,
        key: &str,
        from: &str,
        to: &str,
        entries: Vec<TurnEntry>,
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let subject = self.subject_of_generation(from).await?;
        let entries = self.seal_entries(to, subject.as_deref(), entries).await?;
        let s = self
            .inner
            .session_compact_into(key, from, to, entries, now)
            .await?;
        Ok(s.map(|s| self.remembered(s)))
    }

    async fn session_delete(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.session_delete(key).await
    }

    async fn sessions_list(&self, limit: u32) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.sessions_list(limit).await
    }

    async fn transcript(
        &self,
        session_id: &str,
        limit: u32,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        self.inner
            .transcript(session_id, limit)
            .await?
            .into_iter()
            .map(|e| self.open_entry(e))
            .collect()
    }

    async fn answer_for_ingress(
        &self,
        ingress_id: i64,
    ) -> Result<Option<TranscriptEntry>, StoreError> {
        self.inner
            .answer_for_ingress(ingress_id)
            .await?
            .map(|e| self.open_entry(e))
            .transpose()
    }

    async fn transcript_append(
        &self,
        session_id: &str,
        entry: TurnEntry,
        now: i64,
    ) -> Result<(), StoreError> {
        let subject = self.subject_of_generation(session_id).await?;
        let mut sealed = self
            .seal_entries(session_id, subject.as_deref(), vec![entry])
            .await?;
        let entry = sealed
            .pop()
            .ok_or_else(|| StoreError::Corrupt("no entry".into()))?;
        self.inner.transcript_append(session_id, entry, now).await
    }

    async fn turn_begin(&self, mut begin: TurnBegin) -> Result<(), StoreError> {
        if !begin.entries.is_empty() {
            let subject = self.subject_of_generation(&begin.session_id).await?;
            begin.entries = self
                .seal_entries(
                    &begin.session_id,
                    subject.as_deref(),
                    std::mem::take(&mut begin.entries),
                )
                .await?;
        }
        self.inner.turn_begin(begin).await
    }

    async fn commit_turn(&self, mut commit: TurnCommit) -> Result<(), StoreError> {
        let subject = self.subject_of_generation(&commit.session_id).await?;
        commit.entries = self
            .seal_entries(
                &commit.session_id,
                subject.as_deref(),
                std::mem::take(&mut commit.entries),
            )
            .await?;
        self.inner.commit_turn(commit).await
    }

    async fn usage_for_session(
        &self,
        session_key: &str,
        since: i64,
    ) -> Result<TokenCounts, StoreError> {
        self.inner.usage_for_session(session_key, since).await
    }

    async fn usage_for_agent(&self, agent: &str, since: i64) -> Result<TokenCounts, StoreError> {
        self.inner.usage_for_agent(agent, since).await
    }

    async fn usage_by_agent(&self, since: i64) -> Result<Vec<(String, TokenCounts)>, StoreError> {
        self.inner.usage_by_agent(since).await
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
        let context = ingress_context(channel, account, message_id);
        let sealed = self
            .seal(Column::IngressPayload, &context, subject, payload)
            .await?;
        self.inner
            .ingress_accept_as(channel, account, message_id, &sealed, subject, now)
            .await
    }

    async fn ingress_reply_message(&self, ids: &[i64], message_id: &str) -> Result<(), StoreError> {
        self.inner.ingress_reply_message(ids, message_id).await
    }

    async fn ingress_started(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.inner.ingress_started(id, now).await
    }

    async fn ingress_finish(
        &self,
        id: i64,
        status: IngressStatus,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner.ingress_finish(id, status, error, now).await
    }

    async fn ingress_get(&self, id: i64) -> Result<Option<IngressRecord>, StoreError> {
        self.inner
            .ingress_get(id)
            .await?
            .map(|r| self.open_ingress(r))
            .transpose()
    }

    async fn ingress_pending(&self) -> Result<Vec<IngressRecord>, StoreError> {
        self.inner
            .ingress_pending()
            .await?
            .into_iter()
            .map(|r| self.open_ingress(r))
            .collect()
    }

    async fn ingress_pending_count(&self) -> Result<u64, StoreError> {
        self.inner.ingress_pending_count().await
    }

    async fn ingress_prune(&self, before: i64) -> Result<u64, StoreError> {
        self.inner.ingress_prune(before).await
    }

    async fn transcript_prune(&self, before: i64) -> Result<u64, StoreError> {
        self.inner.transcript_prune(before).await
    }

    async fn usage_prune(&self, before: i64) -> Result<u64, StoreError> {
        self.inner.usage_prune(before).await
    }

    async fn approvals_prune(&self, before: i64) -> Result<u64, StoreError> {
        self.inner.approvals_prune(before).await
    }

    async fn pairing_insert(&self, request: NewPairing) -> Result<(), StoreError> {
        self.inner.pairing_insert(request).await
    }

    async fn pairing_list(
        &self,
        channel: Option<&str>,
        now: i64,
    ) -> Result<Vec<PairingRequest>, StoreError> {
        self.inner.pairing_list(channel, now).await
    }

    async fn pairing_approve(
        &self,
        channel: &str,
        code: &str,
        by: &str,
        now: i64,
    ) -> Result<Option<PairingRequest>, StoreError> {
        self.inner.pairing_approve(channel, code, by, now).await
    }

    async fn pairing_deny(
        &self,
        channel: &str,
        code: &str,
        now: i64,
    ) -> Result<Option<PairingRequest>, StoreError> {
        self.inner.pairing_deny(channel, code, now).await
    }

    async fn pairing_purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        self.inner.pairing_purge_expired(now).await
    }

    async fn allow_add(&self, entry: AllowEntry) -> Result<(), StoreError> {
        self.inner.allow_add(entry).await
    }

    async fn allow_contains(
        &self,
        channel: &str,
        account: &str,
        sender_id: &str,
    ) -> Result<bool, StoreError> {
        self.inner.allow_contains(channel, account, sender_id).await
    }

    async fn allow_list(&self, channel: Option<&str>) -> Result<Vec<AllowEntry>, StoreError> {
        self.inner.allow_list(channel).await
    }

    async fn allow_remove(
        &self,
        channel: &str,
        account: &str,
        sender_id: &str,
    ) -> Result<bool, StoreError> {
        self.inner.allow_remove(channel, account, sender_id).await
    }

    async fn approval_insert(&self, mut request: ApprovalRecord) -> Result<(), StoreError> {
        let subject = self
            .inner
            .session_get(&request.session_key)
            .await?
            .and_then(|s| s.subject);
        request.arguments = self
            .seal(
                Column::ApprovalArguments,
                &request.id,
                subject.as_deref(),
                &request.arguments,
            )
            .await?;
        self.inner.approval_insert(request).await
    }

    async fn approval_decide(
        &self,
        id: &str,
        status: &str,
        by: &str,
        now: i64,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        self.inner
            .approval_decide(id, status, by, now)
            .await?
            .map(|r| self.open_approval(r))
            .transpose()
    }

    async fn approval_get(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        self.inner
            .approval_get(id)
            .await?
            .map(|r| self.open_approval(r))
            .transpose()
    }

    async fn approvals_list(
        &self,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.inner
            .approvals_list(pending_only, limit)
            .await?
            .into_iter()
            .map(|r| self.open_approval(r))
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn close(&self) {
        self.inner.close().await;
    }

    fn coordination(&self) -> Option<&dyn crate::Coordination> {
        // Leases, claims and notices hold no user content.
        self.inner.coordination()
    }

    async fn channel_state_get(
        &self,
        channel: &str,
        account: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.inner.channel_state_get(channel, account, key).await
    }

    async fn channel_state_set(
        &self,
        channel: &str,
        account: &str,
        entries: &[(String, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner
            .channel_state_set(channel, account, entries, now)
            .await
    }

    async fn channel_state_remove(
        &self,
        channel: &str,
        account: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        self.inner
            .channel_state_remove(channel, account, keys)
            .await
    }

    async fn channel_state_list(
        &self,
        channel: &str,
        account: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.inner
            .channel_state_list(channel, account, prefix)
            .await
    }

    async fn memory_insert(&self, record: MemoryRecord) -> Result<(), StoreError> {
        let sealed = MemoryRecord {
            text: self.seal_memory(&record).await?,
            tags: Vec::new(),
            vector: None,
            ..record
        };
        self.inner.memory_insert(sealed).await
    }

    async fn memory_list(
        &self,
        agent: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Vec<MemoryRecord>, StoreError> {
        self.inner
            .memory_list(agent, owner)
            .await?
            .into_iter()
            .map(|m| self.open_memory(m))
            .collect()
    }

    async fn memory_delete(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.memory_delete(id).await
    }

    async fn secret_set(&self, name: &str, value: &str, now: i64) -> Result<(), StoreError> {
        let sealed = self.seal(Column::SecretValue, name, None, value).await?;
        self.inner.secret_set(name, &sealed, now).await
    }

    async fn secret_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.inner
            .secret_get(name)
            .await?
            .map(|v| self.open(Column::SecretValue, name, &v))
            .transpose()
    }

    async fn secrets_list(&self) -> Result<Vec<SecretInfo>, StoreError> {
        self.inner.secrets_list().await
    }

    async fn secret_remove(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.secret_remove(name).await
    }

    async fn forget(&self, channel: &str, sender_id: &str) -> Result<ForgetReport, StoreError> {
        let subject = crate::subject_of(channel, sender_id);
        let mut kids: Vec<String> = self
            .ring
            .person_key(&subject)
            .map(|(kid, _)| kid)
            .into_iter()
            .collect();
        if let Some(kid) = self
            .inner
            .meta_get(&format!("{SUBJECT_KEY}{subject}"))
            .await?
        {
            kids.push(kid);
        }
        kids.sort();
        kids.dedup();
        let prefixes: Vec<String> = kids
            .iter()
            .map(|kid| format!("{}{kid}:", crypto::PREFIX))
            .collect();
        // The keys first: once they are gone nothing of theirs can be read,
        // even if deleting the rows fails (then a retry deletes them by
        // subject).
        let keys = self.ring.destroy(&subject, &kids)? as u64;
        let mut report = self
            .inner
            .forget_rows(&subject, channel, sender_id, &prefixes)
            .await?;
        report.keys = keys;
        self.subjects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| s.as_deref() != Some(subject.as_str()));
        Ok(report)
    }

    async fn forget_rows(
        &self,
        subject: &str,
        channel: &str,
        sender_id: &str,
        sealed_prefixes: &[String],
    ) -> Result<ForgetReport, StoreError> {
        self.inner
            .forget_rows(subject, channel, sender_id, sealed_prefixes)
            .await
    }

    async fn cells(
        &self,
        column: Column,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Cell>, StoreError> {
        self.inner.cells(column, after, limit).await
    }

    async fn cells_write(
        &self,
        column: Column,
        values: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.inner.cells_write(column, values).await
    }

    async fn cron_job_ensure(
        &self,
        name: &str,
        source: &str,
        spec: Option<&str>,
        now: i64,
    ) -> Result<CronJobRecord, StoreError> {
        self.inner.cron_job_ensure(name, source, spec, now).await
    }

    async fn cron_jobs(&self) -> Result<Vec<CronJobRecord>, StoreError> {
        self.inner.cron_jobs().await
    }

    async fn cron_job_state(
        &self,
        name: &str,
        paused: bool,
        reason: Option<&str>,
        failures: i64,
    ) -> Result<bool, StoreError> {
        self.inner
            .cron_job_state(name, paused, reason, failures)
            .await
    }

    async fn cron_job_remove(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.cron_job_remove(name).await
    }

    async fn cron_run_record(
        &self,
        job: &str,
        slot: i64,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.inner
            .cron_run_record(job, slot, status, reason, now)
            .await
    }

    async fn cron_run_finish(
        &self,
        job: &str,
        slot: i64,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner
            .cron_run_finish(job, slot, status, reason, now)
            .await
    }

    async fn cron_runs(&self, job: &str, limit: u32) -> Result<Vec<CronRunRecord>, StoreError> {
        self.inner.cron_runs(job, limit).await
    }

    // The audit log is signed, not sealed: it passes through as it is.
    async fn audit_append(&self, record: AuditRecord) -> Result<i64, StoreError> {
        self.inner.audit_append(record).await
    }

    async fn audit_last(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.inner.audit_last().await
    }

    async fn audit_list(&self, since: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_list(since, limit).await
    }

    async fn audit_all(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_all().await
    }

    async fn audit_prune(&self, checkpoint: AuditCheckpoint) -> Result<u64, StoreError> {
        self.inner.audit_prune(checkpoint).await
    }

    async fn audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        self.inner.audit_checkpoint().await
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.meta_get(key).await
    }

    async fn meta_list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.meta_list(prefix).await
    }

    async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.inner.meta_set(key, value).await
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        self.inner.scrub().await
    }
}
