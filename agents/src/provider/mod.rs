//! Model providers: the [`Provider`] contract and its implementations.

mod error;
mod openai;
mod sse;

use futures::stream::BoxStream;

pub use error::ProviderError;
pub use openai::{OpenAiProvider, ProviderSettings};
pub use sse::SseParser;

use crate::{ChatMessage, Usage};

/// One piece of a streamed model answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// More answer text.
    TextDelta(String),
    /// Token usage of the call (usually at the end).
    Usage(Usage),
}

/// A model endpoint that streams answers.
pub trait Provider: Send + Sync + 'static {
    /// The provider's name from the config.
    fn name(&self) -> &str;
    /// The model it asks.
    fn model(&self) -> &str;
    /// Stream the answer to `messages`.
    fn stream(
        &self,
        messages: Vec<ChatMessage>,
    ) -> BoxStream<'static, Result<ProviderEvent, ProviderError>>;
}
