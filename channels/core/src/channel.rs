//! The adapter contract.

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{Inbound, ReplySink, ReplyTarget};

/// What went wrong in a channel adapter.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The account's configuration cannot work (bad token, missing field).
    #[error("{0}")]
    Config(String),
    /// The platform could not be reached or answered with an error that may
    /// pass; the supervisor restarts the listener with backoff.
    #[error("platform unavailable: {0}")]
    Unavailable(String),
    /// The platform refused a request; retrying the same one will not help.
    #[error("platform rejected the request: {0}")]
    Rejected(String),
    /// The gateway is shutting down and no longer takes messages.
    #[error("the gateway is shutting down")]
    Closed,
}

impl ChannelError {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ChannelError::Unavailable(_))
    }
}

/// What a listener is handed by the gateway: where to send messages and when
/// to stop.
#[derive(Debug, Clone)]
pub struct ChannelContext {
    /// Bounded sender into the gateway's inbound pipeline. A full channel is
    /// backpressure: the listener waits rather than dropping messages.
    pub inbound: mpsc::Sender<Inbound>,
    /// Cancelled when the gateway shuts down.
    pub shutdown: CancellationToken,
}

impl ChannelContext {
    /// Hand one message to the gateway, waiting while the pipeline is full.
    pub async fn deliver(&self, message: Inbound) -> Result<(), ChannelError> {
        tokio::select! {
            sent = self.inbound.send(message) => sent.map_err(|_| ChannelError::Closed),
            () = self.shutdown.cancelled() => Err(ChannelError::Closed),
        }
    }
}

/// One configured account of a messaging platform.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// The channel name (`telegram`, `webchat`, ...).
    fn name(&self) -> &str;
    /// The account name from the config.
    fn account(&self) -> &str;
    /// Receive messages until `ctx.shutdown` is cancelled. Returning an error
    /// makes the supervisor restart the listener with backoff.
    async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError>;
    /// Whether every message needs its own reply even when the gateway
    /// answers several in one turn (request/response channels such as the
    /// web chat API). Default false: one reply per turn.
    fn reply_per_message(&self) -> bool {
        false
    }
    /// Open a reply in the conversation `target` names.
    async fn open_reply(&self, target: &ReplyTarget) -> Result<Box<dyn ReplySink>, ChannelError>;
}
