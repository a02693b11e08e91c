//! Model providers: the [`Provider`] contract and its implementations, and
//! the [`EmbeddingsClient`] of OpenAI-compatible embeddings endpoints.

mod anthropic;
mod embeddings;
mod error;
pub(crate) mod http;
mod openai;
mod resilient;
mod sse;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use anthropic::AnthropicProvider;
pub use embeddings::EmbeddingsClient;
pub use error::{ProviderError, shown_url};
pub use http::{ProviderSettings, TraceParent};
pub use openai::OpenAiProvider;
pub use resilient::{FallbackChain, RetryPolicy};
pub use sse::SseParser;

use crate::{ChatMessage, ToolCall, ToolSpec, Usage};

/// What one model call is asked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelRequest {
    /// The conversation, system messages included.
    pub messages: Vec<ChatMessage>,
    /// The tools the model may call (shared: the same for every call).
    pub tools: Vec<std::sync::Arc<ToolSpec>>,
}

impl From<Vec<ChatMessage>> for ModelRequest {
    fn from(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            tools: Vec::new(),
        }
    }
}

/// One piece of a streamed model answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// More answer text.
    TextDelta(String),
    /// A complete tool call (its argument pieces already joined).
    ToolCall(ToolCall),
    /// Token usage of the call (usually at the end).
    Usage(Usage),
}

/// A model endpoint that streams answers.
pub trait Provider: Send + Sync + 'static {
    /// The provider's name from the config.
    fn name(&self) -> &str;
    /// The model it asks.
    fn model(&self) -> &str;
    /// A cheap check that the endpoint answers (and the key is accepted).
    fn probe(&self) -> BoxFuture<'static, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
    /// Stream the answer to `request`.
    fn stream(
        &self,
        request: ModelRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, ProviderError>>;
}
