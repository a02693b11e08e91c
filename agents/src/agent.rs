//! The agent loop: system prompt + history + new message → streamed answer.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::{ChatMessage, Provider, ProviderEvent, Usage};

/// What a turn yields, in order: deltas and usage, then exactly one of
/// `Done`, `Error` or `Cancelled`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// More answer text.
    TextDelta(String),
    /// Tokens used so far by the turn's model calls.
    Usage(Usage),
    /// The answer is complete.
    Done(TurnOutcome),
    /// The turn failed; `message` is written for the user.
    Error {
        /// What went wrong and what to do.
        message: String,
        /// Whether retrying later may help.
        retryable: bool,
        /// What had been streamed before the failure.
        partial: String,
    },
    /// The turn was cancelled; `partial` is what had been streamed.
    Cancelled {
        /// What had been streamed before cancellation.
        partial: String,
    },
}

impl AgentEvent {
    /// Whether this event ends the turn.
    pub fn is_final(&self) -> bool {
        matches!(self, AgentEvent::Done(_) | AgentEvent::Error { .. } | AgentEvent::Cancelled { .. })
    }
}

/// The result of a completed turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnOutcome {
    /// The whole answer.
    pub text: String,
    /// Tokens used.
    pub usage: Usage,
}

/// One configured agent.
#[derive(Clone)]
pub struct Agent {
    name: String,
    system_prompt: String,
    provider: Arc<dyn Provider>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field("provider", &self.provider.name())
            .field("model", &self.provider.model())
            .finish()
    }
}

impl Agent {
    /// An agent answering with `provider` under `system_prompt`.
    pub fn new(
        name: impl Into<String>,
        system_prompt: impl Into<String>,
        provider: Arc<dyn Provider>,
    ) -> Self {
        Self { name: name.into(), system_prompt: system_prompt.into(), provider }
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The provider it uses.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// Run one turn over `history` (which ends with the new user message).
    /// The stream ends after its final event; cancelling `cancel` ends it
    /// with [`AgentEvent::Cancelled`].
    pub fn turn(
        &self,
        history: Vec<ChatMessage>,
        cancel: CancellationToken,
    ) -> BoxStream<'static, AgentEvent> {
        let mut messages = Vec::with_capacity(history.len() + 1);
        if !self.system_prompt.is_empty() {
            messages.push(ChatMessage::system(self.system_prompt.clone()));
        }
        messages.extend(history);
        let upstream = self.provider.stream(messages.into());
        let state = TurnState { upstream: Some(upstream), text: String::new(), usage: Usage::default(), cancel };
        futures::stream::unfold(state, TurnState::next).boxed()
    }
}

struct TurnState {
    upstream: Option<BoxStream<'static, Result<ProviderEvent, crate::ProviderError>>>,
    text: String,
    usage: Usage,
    cancel: CancellationToken,
}

impl TurnState {
    async fn next(mut self) -> Option<(AgentEvent, Self)> {
        let upstream = self.upstream.as_mut()?;
        let item = tokio::select! {
            biased;
            () = self.cancel.cancelled() => {
                self.upstream = None;
                let partial = std::mem::take(&mut self.text);
                return Some((AgentEvent::Cancelled { partial }, self));
            }
            item = upstream.next() => item,
        };
        let event = match item {
            Some(Ok(ProviderEvent::TextDelta(delta))) => {
                self.text.push_str(&delta);
                AgentEvent::TextDelta(delta)
            }
            Some(Ok(ProviderEvent::ToolCall(call))) => {
                // Tools arrive with the agent runtime's tool loop; until then
                // a call is reported as text so nothing is silently lost.
                let note = format!("\n[the model asked for tool `{}`, which is not available]", call.name);
                self.text.push_str(&note);
                AgentEvent::TextDelta(note)
            }
            Some(Ok(ProviderEvent::Usage(usage))) => {
                self.usage.add(usage);
                AgentEvent::Usage(self.usage)
            }
            Some(Err(e)) => {
                self.upstream = None;
                AgentEvent::Error {
                    message: e.to_string(),
                    retryable: e.is_retryable(),
                    partial: std::mem::take(&mut self.text),
                }
            }
            None => {
                self.upstream = None;
                AgentEvent::Done(TurnOutcome { text: std::mem::take(&mut self.text), usage: self.usage })
            }
        };
        Some((event, self))
    }
}
