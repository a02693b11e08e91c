//! Test doubles shared by the gateway's unit tests: an in-process provider
//! whose answers the test releases, and a channel that records replies.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{Semaphore, mpsc};

use switchboard_agents::{ChatMessage, Provider, ProviderError, ProviderEvent};
use switchboard_channel::{Channel, ChannelContext, ChannelError, ReplyEvent, ReplySink, ReplyTarget};

/// Answers `re: <last user text>` once the test adds a permit.
pub(crate) struct GatedProvider {
    pub(crate) calls: mpsc::UnboundedSender<Vec<ChatMessage>>,
    pub(crate) permits: Arc<Semaphore>,
}

impl Provider for GatedProvider {
    fn name(&self) -> &str {
        "gated"
    }
    fn model(&self) -> &str {
        "gated-model"
    }
    fn stream(&self, messages: Vec<ChatMessage>) -> BoxStream<'static, Result<ProviderEvent, ProviderError>> {
        let last = messages.iter().rev().find(|m| m.role == switchboard_agents::MessageRole::User).map(|m| m.content.clone()).unwrap_or_default();
        let _ = self.calls.send(messages);
        let permits = self.permits.clone();
        futures::stream::once(async move {
            permits.acquire().await.expect("open").forget();
            Ok(ProviderEvent::TextDelta(format!("re: {last}")))
        })
        .boxed()
    }
}

/// Records every reply event, by the message it answers.
#[derive(Default)]
pub(crate) struct RecordingChannel {
    pub(crate) tx: std::sync::Mutex<Option<mpsc::UnboundedSender<(String, ReplyEvent)>>>,
}

struct RecordingSink {
    reply_to: String,
    tx: mpsc::UnboundedSender<(String, ReplyEvent)>,
}

#[async_trait]
impl ReplySink for RecordingSink {
    async fn send(&mut self, event: ReplyEvent) -> Result<(), ChannelError> {
        let _ = self.tx.send((self.reply_to.clone(), event));
        Ok(())
    }
}

#[async_trait]
impl Channel for RecordingChannel {
    fn name(&self) -> &str {
        "test"
    }
    fn account(&self) -> &str {
        "a"
    }
    async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError> {
        ctx.shutdown.cancelled().await;
        Ok(())
    }
    async fn open_reply(&self, target: &ReplyTarget) -> Result<Box<dyn ReplySink>, ChannelError> {
        let tx = self.tx.lock().unwrap().clone().expect("recording");
        Ok(Box::new(RecordingSink { reply_to: target.reply_to.clone().unwrap_or_default(), tx }))
    }
}

