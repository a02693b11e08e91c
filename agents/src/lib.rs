//! The agent runtime of Switchboard.
//!
//! An agent turn takes a conversation (system prompt, history, the new
//! message) and yields a stream of [`AgentEvent`]s: text deltas, usage, and
//! done or error. Model providers live in [`provider`]; the OpenAI-compatible
//! Chat Completions client streams over SSE.
//!
//! This crate knows nothing of channels or sessions: the gateway loads the
//! transcript, hands it in, and decides where the events go.

mod agent;
mod message;
pub mod provider;

pub use agent::{Agent, AgentEvent, TurnOutcome};
pub use message::{ChatMessage, MessageRole, ToolCall, ToolSpec, Usage};
pub use provider::{AnthropicProvider, FallbackChain, ModelRequest, OpenAiProvider, RetryPolicy, Provider, ProviderError, ProviderEvent, ProviderSettings};
