//! The built-in web chat channel: messages come from the gateway's own HTTP
//! API (`/v1/chat/completions`, `/api/ws`), and replies go back to the
//! request that is waiting for them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;

use switchboard_channel::{
    Channel, ChannelContext, ChannelError, ReplyEvent, ReplySink, ReplyTarget,
};

/// The channel name.
pub const NAME: &str = "webchat";
/// Its only account.
pub const ACCOUNT: &str = "default";

type Waiters = Arc<Mutex<HashMap<String, mpsc::Sender<ReplyEvent>>>>;

/// The web chat channel.
#[derive(Debug, Default)]
pub struct WebChat {
    waiters: Waiters,
}

/// A request waiting for the reply to its message; unregisters on drop.
#[derive(Debug)]
pub struct ReplyWaiter {
    /// Reply events, in order, ending with a final one.
    pub events: mpsc::Receiver<ReplyEvent>,
    message_id: String,
    waiters: Waiters,
}

impl Drop for ReplyWaiter {
    fn drop(&mut self) {
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.message_id);
    }
}

impl WebChat {
    /// A web chat with nobody waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wait for the reply to `message_id` (register before admitting it).
    pub fn wait_for(&self, message_id: &str) -> ReplyWaiter {
        let (tx, rx) = mpsc::channel(256);
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(message_id.to_string(), tx);
        ReplyWaiter {
            events: rx,
            message_id: message_id.to_string(),
            waiters: self.waiters.clone(),
        }
    }
}

struct WaiterSink {
    tx: Option<mpsc::Sender<ReplyEvent>>,
}

#[async_trait]
impl ReplySink for WaiterSink {
    async fn send(&mut self, event: ReplyEvent) -> Result<(), ChannelError> {
        let last = event.is_final();
        if let Some(tx) = &self.tx {
            // A client that went away is not an error: the turn is stored.
            if tx.send(event).await.is_err() {
                self.tx = None;
            }
        }
        if last {
            self.tx = None;
        }
        Ok(())
    }
}

#[async_trait]
impl Channel for WebChat {
    fn name(&self) -> &str {
        NAME
    }

    fn account(&self) -> &str {
        ACCOUNT
    }

    fn reply_per_message(&self) -> bool {
        true
    }

    async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError> {
        // Messages arrive through the HTTP server; nothing to poll.
        ctx.shutdown.cancelled().await;
        Ok(())
    }

    async fn open_reply(&self, target: &ReplyTarget) -> Result<Box<dyn ReplySink>, ChannelError> {
        let tx = target.reply_to.as_ref().and_then(|id| {
            self.waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .cloned()
        });
        Ok(Box::new(WaiterSink { tx }))
    }
}
