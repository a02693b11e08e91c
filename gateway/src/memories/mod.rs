//! Long-term memory: facts agents save to find again in later
//! conversations.
//!
//! [`Memories`] keeps them in the store (which encrypts them) and searches
//! them through one in-memory [`ScopeIndex`] per scope — an agent and an
//! owner: the person (`<channel>:<sender id>`) under `memory.scope =
//! "person"`, or `""`, everyone, under `"agent"`. An index is built from
//! the store on the scope's first use, kept current by saves and deletes,
//! and dropped when too many scopes are loaded (the least recently used
//! first); nothing of it is written to disk. It serves the `memory_save`
//! and `memory_search` tools (through [`Memories::book`]), the recall of
//! relevant memories into a turn's system prompt, the operator's API, and
//! the flush before compaction ([`flush`]). It knows nothing of channels:
//! a person is the subject string a turn hands it.

pub mod flush;
/// The search index, kept with the store in `switchboard-memory`.
pub use switchboard_memory::search as index;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::OwnedMutexGuard;

use switchboard_agents::EmbeddingsClient;
use switchboard_agents::tools::{MemoryBook, MemoryHit, ToolContext};
use switchboard_memory::{MemoryRecord, Store, StoreError};

use crate::clock::now_ms;
use crate::config::{Config, MemoryScope, ProviderConfig};
use crate::sessions::context::estimate_tokens;
pub use index::{Hit, ScopeIndex};

/// How many scopes keep their index in memory at most (while in use, a
/// scope is never dropped, so briefly there may be more).
pub const MAX_LOADED_SCOPES: usize = 64;
/// How long an embeddings call may take before the memory is saved, or
/// searched, without one.
const EMBED_TIMEOUT: Duration = Duration::from_secs(10);
/// How many memories a recall considers before the token budget.
const RECALL_CANDIDATES: usize = 20;
/// The heading of recalled memories in the system prompt.
pub const RECALL_HEADING: &str = "## Memories from earlier conversations\nSaved with memory_save before, the most relevant to this message first. They may be out of date: what the user says now wins.";

/// One agent's memory settings.
#[derive(Debug, Clone)]
pub struct AgentMemory {
    /// Whose memories a save joins.
    pub scope: MemoryScope,
    /// The embeddings model, if any.
    pub embeddings: Option<Arc<EmbeddingsClient>>,
    /// Tokens of recalled memories per turn; 0: no recall.
    pub recall_tokens: usize,
    /// The most memories one scope keeps.
    pub max_entries: usize,
}

impl Default for AgentMemory {
    fn default() -> Self {
        Self {
            scope: MemoryScope::Person,
            embeddings: None,
            recall_tokens: 0,
            max_entries: crate::config::DEFAULT_MAX_ENTRIES as usize,
        }
    }
}

/// Why a memory could not be saved or searched. `Display` is written for
/// the model, which tells the user.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The scope holds as many memories as it may.
    #[error(
        "memory is full: agent `{agent}` keeps at most {max} memories {whose} (agents.{agent}.memory.max_entries), so nothing was saved. Tell the user; the operator can delete old ones with `switchboard memory delete <id>` (they are listed by `switchboard memory list`)"
    )]
    Full {
        /// The agent.
        agent: String,
        /// Its `max_entries`.
        max: usize,
        /// "for each person" or "in all".
        whose: &'static str,
    },
    /// Memories belong to the person, and this conversation has none.
    #[error(
        "memory is not available here: this conversation has no known sender to keep memories for"
    )]
    NoPerson,
    /// There was nothing to save.
    #[error("there is nothing to save: the text is empty")]
    Empty,
    /// The store failed.
    #[error("the memory store failed ({0}); try again later")]
    Store(#[from] StoreError),
}

/// A scope's index, or `None` until it is loaded (or after it was
/// dropped for a reload); the lock also orders a scope's saves.
type Slot = Arc<tokio::sync::Mutex<Option<ScopeIndex>>>;

/// The loaded scopes, by (agent, owner), with when each was last used.
#[derive(Default)]
struct Scopes {
    map: HashMap<(String, String), (Slot, u64)>,
    tick: u64,
}

/// Every agent's long-term memories.
pub struct Memories {
    store: Arc<dyn Store>,
    agents: HashMap<String, AgentMemory>,
    fallback: AgentMemory,
    scopes: Mutex<Scopes>,
    max_scopes: usize,
}

impl std::fmt::Debug for Memories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memories")
            .field("agents", &self.agents.keys().collect::<Vec<_>>())
            .field("loaded_scopes", &self.loaded_scopes())
            .finish_non_exhaustive()
    }
}

/// A new memory id: 16 random hex digits.
fn new_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(16);
    id
}

/// The person a message is from, as memories name them:
/// `<channel>:<sender id>`.
pub fn subject_of(inbound: &switchboard_channel::Inbound) -> String {
    switchboard_memory::subject_of(&inbound.channel, &inbound.sender.id)
}

impl Memories {
    /// Memories in `store`, with each agent's settings (an agent not
    /// named gets the defaults).
    pub fn new(store: Arc<dyn Store>, agents: HashMap<String, AgentMemory>) -> Self {
        Self {
            store,
            agents,
            fallback: AgentMemory::default(),
            scopes: Mutex::new(Scopes::default()),
            max_scopes: MAX_LOADED_SCOPES,
        }
    }

    /// Keep at most `n` scopes loaded (at least 1).
    pub fn with_max_scopes(mut self, n: usize) -> Self {
        self.max_scopes = n.max(1);
        self
    }

    /// The agents' settings from `config`; `embeddings` makes the client
    /// of a provider and model.
    pub fn from_config(
        store: Arc<dyn Store>,
        config: &Config,
        embeddings: impl Fn(&str, &ProviderConfig, &str) -> EmbeddingsClient,
    ) -> Self {
        let agents = config
            .agents
            .iter()
            .map(|(name, a)| {
                let m = &a.memory;
                let client = m.embeddings_pair().and_then(|(provider, model)| {
                    let p = config.providers.get(provider)?;
                    Some(Arc::new(embeddings(provider, p, model)))
                });
                let settings = AgentMemory {
                    scope: m.scope,
                    embeddings: client,
                    recall_tokens: m.recall_tokens as usize,
                    max_entries: (m.max_entries as usize).max(1),
                };
                (name.clone(), settings)
            })
            .collect();
        Self::new(store, agents)
    }

    /// The tools' view of these memories.
    pub fn book(this: &Arc<Self>) -> Arc<dyn MemoryBook> {
        Arc::new(Book(this.clone()))
    }

    /// Agent `agent`'s settings.
    pub fn settings(&self, agent: &str) -> &AgentMemory {
        self.agents.get(agent).unwrap_or(&self.fallback)
    }

    /// Whose memories agent `agent` uses when talking to `subject`.
    pub fn owner_for(&self, agent: &str, subject: &str) -> Result<String, MemoryError> {
        match self.settings(agent).scope {
            MemoryScope::Agent => Ok(String::new()),
            // An empty owner is the agent-wide scope: never a person's.
            MemoryScope::Person if subject.is_empty() => Err(MemoryError::NoPerson),
            MemoryScope::Person => Ok(subject.to_string()),
        }
    }

    /// How many scopes have an index in memory.
    pub fn loaded_scopes(&self) -> usize {
        self.scopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    /// The slot of scope (`agent`, `owner`), made (and the least recently
    /// used idle one dropped) if needed. Slots are cloned only here, under
    /// the lock, so one whose only holder is the map is idle.
    fn slot(&self, agent: &str, owner: &str) -> Slot {
        let mut guard = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        let scopes = &mut *guard;
        scopes.tick += 1;
        let tick = scopes.tick;
        let key = (agent.to_string(), owner.to_string());
        if let Some((slot, used)) = scopes.map.get_mut(&key) {
            *used = tick;
            return slot.clone();
        }
        while scopes.map.len() >= self.max_scopes {
            let idle = scopes
                .map
                .iter()
                .filter(|(_, (slot, _))| Arc::strong_count(slot) == 1)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            match idle {
                Some(k) => {
                    scopes.map.remove(&k);
                }
                None => break,
            }
        }
        let slot: Slot = Arc::new(tokio::sync::Mutex::new(None));
        scopes.map.insert(key, (slot.clone(), tick));
        slot
    }

    /// Every loaded slot, optionally only those of `owner`.
    fn slots(&self, owner: Option<&str>) -> Vec<Slot> {
        self.scopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .iter()
            .filter(|((_, o), _)| owner.is_none_or(|w| w == o))
            .map(|(_, (slot, _))| slot.clone())
            .collect()
    }

    /// Scope (`agent`, `owner`) locked, its index loaded from the store.
    async fn open(
        &self,
        agent: &str,
        owner: &str,
    ) -> Result<OwnedMutexGuard<Option<ScopeIndex>>, MemoryError> {
        let mut guard = self.slot(agent, owner).lock_owned().await;
        if guard.is_none() {
            let records = self.store.memory_list(Some(agent), Some(owner)).await?;
            tracing::debug!(agent, entries = records.len(), "memory scope loaded");
            *guard = Some(ScopeIndex::from_records(records));
        }
        Ok(guard)
    }

    /// Save `text` with `tags` as a memory of agent `agent` for `owner`
    /// (embedded first when the agent has an embeddings model; if that
    /// fails it is saved without a vector).
    pub async fn save(
        &self,
        agent: &str,
        owner: &str,
        text: &str,
        tags: Vec<String>,
    ) -> Result<MemoryRecord, MemoryError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MemoryError::Empty);
        }
        let settings = self.settings(agent);
        // Before the scope's lock: a slow provider holds up nobody else.
        let vector = match &settings.embeddings {
            Some(client) => match embed(client, text).await {
                Ok(v) => Some(v),
                Err(why) => {
                    tracing::warn!(agent, provider = %client.name(), error = %why, "cannot embed a memory; saved without a vector (found by keywords only)");
                    None
                }
            },
            None => None,
        };
        let mut guard = self.open(agent, owner).await?;
        let index = guard.get_or_insert_with(ScopeIndex::default);
        if index.len() >= settings.max_entries {
            tracing::warn!(
                agent,
                max = settings.max_entries,
                "memory full; a save was refused"
            );
            return Err(MemoryError::Full {
                agent: agent.to_string(),
                max: settings.max_entries,
                whose: if owner.is_empty() {
                    "in all"
                } else {
                    "for each person"
                },
            });
        }
        let record = MemoryRecord {
            id: new_id(),
            agent: agent.to_string(),
            owner: owner.to_string(),
            text: text.to_string(),
            tags,
            vector,
            created_at: now_ms(),
        };
        self.store.memory_insert(record.clone()).await?;
        index.insert(record.clone());
        tracing::debug!(agent, id = %record.id, "memory saved");
        Ok(record)
    }

    /// The at most `limit` memories of agent `agent` for `owner` that best
    /// match `query`, best first (by keywords, and by similarity when the
    /// agent has an embeddings model that answers).
    pub async fn search(
        &self,
        agent: &str,
        owner: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Hit>, MemoryError> {
        let vector = match &self.settings(agent).embeddings {
            Some(client) if !query.trim().is_empty() => match embed(client, query).await {
                Ok(v) => Some(v),
                Err(why) => {
                    tracing::warn!(agent, provider = %client.name(), error = %why, "cannot embed a memory search; searching by keywords only");
                    None
                }
            },
            _ => None,
        };
        let guard = self.open(agent, owner).await?;
        Ok(guard
            .as_ref()
            .map(|index| index.search(query, vector.as_deref(), limit))
            .unwrap_or_default())
    }

    /// Delete the memory `id` from the store and from its loaded index;
    /// false when there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = self.store.memory_delete(id).await?;
        // A scope being loaded holds its lock: it is waited for, so what
        // it read before the delete is corrected here.
        for slot in self.slots(None) {
            let mut guard = slot.lock().await;
            if guard.as_mut().is_some_and(|index| index.remove(id)) {
                break;
            }
        }
        Ok(deleted)
    }

    /// Drop every loaded index of `owner` (after their memories were
    /// removed from the store, as `forget` does): the next use reads the
    /// store again.
    pub async fn forget_owner(&self, owner: &str) {
        for slot in self.slots(Some(owner)) {
            *slot.lock().await = None;
        }
    }

    /// The memories most relevant to `text`, for the system prompt of a
    /// turn of agent `agent` with `subject`: a heading and one line each,
    /// within the agent's `recall_tokens`; empty when recall is off or
    /// nothing matches.
    pub async fn recall(&self, agent: &str, subject: &str, text: &str) -> String {
        let budget = self.settings(agent).recall_tokens;
        if budget == 0 || text.trim().is_empty() {
            return String::new();
        }
        let Ok(owner) = self.owner_for(agent, subject) else {
            return String::new();
        };
        match self.search(agent, &owner, text, RECALL_CANDIDATES).await {
            Ok(hits) => {
                let block = recall_block(&hits, budget);
                tracing::debug!(
                    agent,
                    candidates = hits.len(),
                    tokens = estimate_tokens(&block),
                    "memories recalled"
                );
                block
            }
            Err(e) => {
                tracing::warn!(agent, error = %e, "cannot recall memories; the turn goes on without them");
                String::new()
            }
        }
    }
}

/// One vector for `text`, within [`EMBED_TIMEOUT`].
async fn embed(client: &EmbeddingsClient, text: &str) -> Result<Vec<f32>, String> {
    match tokio::time::timeout(EMBED_TIMEOUT, client.embed(&[text.to_string()])).await {
        Ok(Ok(mut vectors)) if vectors.len() == 1 => Ok(vectors.remove(0)),
        Ok(Ok(vectors)) => Err(format!("{} vectors for one text", vectors.len())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", EMBED_TIMEOUT.as_secs())),
    }
}

/// A time in ms since the epoch as a UTC date.
fn date(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
}

/// [`RECALL_HEADING`] and the best of `hits` that fit in `budget` tokens
/// (the heading included), one line each; empty when none fits.
pub fn recall_block(hits: &[Hit], budget: usize) -> String {
    let mut out = RECALL_HEADING.to_string();
    let mut used = estimate_tokens(&out);
    let mut lines = 0;
    for h in hits {
        let tags = if h.record.tags.is_empty() {
            String::new()
        } else {
            format!("tags: {}; ", h.record.tags.join(", "))
        };
        let line = format!(
            "\n- {} ({tags}saved {})",
            h.record.text.replace('\n', " "),
            date(h.record.created_at)
        );
        let cost = estimate_tokens(&line);
        // One that does not fit may leave room for a shorter one.
        if used + cost > budget {
            continue;
        }
        used += cost;
        out.push_str(&line);
        lines += 1;
    }
    if lines == 0 { String::new() } else { out }
}

/// The memories of a turn's person for the system prompt (see
/// [`Memories::recall`]); empty without memories.
pub async fn recall_for_turn(
    memories: Option<&Arc<Memories>>,
    context: &ToolContext,
    text: &str,
) -> String {
    match memories {
        Some(m) => m.recall(&context.agent, &context.subject, text).await,
        None => String::new(),
    }
}

/// The tools' [`MemoryBook`]: the person (or agent) comes from the call's
/// context.
struct Book(Arc<Memories>);

impl MemoryBook for Book {
    fn save(
        &self,
        ctx: &ToolContext,
        text: String,
        tags: Vec<String>,
    ) -> BoxFuture<'static, Result<String, String>> {
        let memories = self.0.clone();
        let agent = ctx.agent.clone();
        let subject = ctx.subject.clone();
        Box::pin(async move {
            let owner = memories
                .owner_for(&agent, &subject)
                .map_err(|e| e.to_string())?;
            match memories.save(&agent, &owner, &text, tags).await {
                Ok(record) => Ok(record.id),
                Err(e) => {
                    if let MemoryError::Store(s) = &e {
                        tracing::error!(agent = %agent, error = %s, "a memory could not be stored");
                    }
                    Err(e.to_string())
                }
            }
        })
    }

    fn search(
        &self,
        ctx: &ToolContext,
        query: String,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<MemoryHit>, String>> {
        let memories = self.0.clone();
        let agent = ctx.agent.clone();
        let subject = ctx.subject.clone();
        Box::pin(async move {
            let owner = memories
                .owner_for(&agent, &subject)
                .map_err(|e| e.to_string())?;
            let hits = memories
                .search(&agent, &owner, &query, limit)
                .await
                .map_err(|e| {
                    tracing::error!(agent = %agent, error = %e, "memories could not be searched");
                    e.to_string()
                })?;
            let found: Vec<MemoryHit> = hits
                .into_iter()
                .map(|h| MemoryHit {
                    id: h.record.id,
                    text: h.record.text,
                    tags: h.record.tags,
                    created_at: h.record.created_at,
                    score: h.score,
                })
                .collect();
            Ok::<_, String>(found)
        })
    }
}

#[cfg(test)]
mod tests;
