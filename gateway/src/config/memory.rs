//! `[agents.<name>.memory]`: an agent's long-term memory.

use serde::{Deserialize, Serialize};

/// Whose memories a saved fact joins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryScope {
    /// The person who wrote (`<channel>:<sender id>`), across all their
    /// sessions with the agent, and no one else (the default).
    #[default]
    Person,
    /// The agent's: shared by everyone it talks to.
    Agent,
}

/// The default of `max_entries`.
pub const DEFAULT_MAX_ENTRIES: u32 = 10_000;

/// `[agents.<name>.memory]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentMemoryConfig {
    /// `person` (each person's memories are their own) or `agent` (shared
    /// by everyone the agent talks to). Default `person`.
    pub scope: MemoryScope,
    /// An embeddings model, `"provider/model"` with a provider of
    /// `[providers.*]` of kind `openai` (its `/embeddings` endpoint), e.g.
    /// `"local/nomic-embed-text"`: each memory is embedded when saved and
    /// searches add vector similarity to the keyword ranking. Default: none
    /// (keyword search only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<String>,
    /// Tokens of the memories most relevant to a message put into the
    /// system prompt of its turn, by themselves. Default 0: off.
    pub recall_tokens: u32,
    /// The most memories one scope (a person, or the agent) keeps; a save
    /// beyond it is refused, saying so. Default 10000.
    pub max_entries: u32,
}

impl Default for AgentMemoryConfig {
    fn default() -> Self {
        Self {
            scope: MemoryScope::default(),
            embeddings: None,
            recall_tokens: 0,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

impl AgentMemoryConfig {
    /// `embeddings` as (provider, model), when set and well formed.
    pub fn embeddings_pair(&self) -> Option<(&str, &str)> {
        let (provider, model) = self.embeddings.as_deref()?.split_once('/')?;
        let model = model.trim();
        (!provider.is_empty() && !model.is_empty()).then_some((provider, model))
    }
}
