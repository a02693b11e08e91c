//! The agent runtime of Switchboard.
//!
//! An agent turn takes a conversation (system prompt, history, the new
//! message) and a tool set, and yields a stream of [`AgentEvent`]s: text
//! deltas, tool calls and results, usage, and done or error. Model providers live in [`provider`]; the OpenAI-compatible
//! Chat Completions client streams over SSE.
//!
//! This crate knows nothing of channels or sessions: the gateway loads the
//! transcript, hands it in, and decides where the events go.

mod agent;
mod message;
pub mod provider;
pub mod tools;
pub mod untrusted;

pub use agent::{Agent, AgentEvent, DEFAULT_MAX_STEPS, TurnOutcome, TurnRequest, cut_tool_result};
pub use message::{ChatMessage, MessageRole, ToolCall, ToolSpec, Usage};
pub use provider::{
    AnthropicProvider, EmbeddingsClient, FallbackChain, ModelRequest, OpenAiProvider, Provider,
    ProviderError, ProviderEvent, ProviderSettings, RetryPolicy, TraceParent, shown_url,
};
