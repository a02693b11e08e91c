//! The `Channel` contract of Switchboard.
//!
//! A channel adapter (Telegram, Discord, Slack, the built-in web chat) turns
//! platform events into [`Inbound`] messages, hands them to the gateway through
//! the bounded sender in its [`ChannelContext`], and renders a reply stream of
//! [`ReplyEvent`]s the platform's way through a [`ReplySink`].
//!
//! This crate must not know about agents, sessions or storage: it is the
//! vocabulary adapters and the gateway share, nothing more.

mod channel;
pub mod chunk;
pub mod conformance;
pub mod download;
mod message;
mod reply;
mod secret;
pub mod stream;
#[cfg(feature = "websocket")]
pub mod websocket;

pub use channel::{
    Channel, ChannelContext, ChannelError, ChannelState, ChannelStatus, Delivery, MemoryState,
    StatusSnapshot, Webhook, WebhookRequest, WebhookResponse,
};
pub use message::{Attachment, ChatKind, GATEWAY_MESSAGE_PREFIX, Inbound, Sender};
pub use reply::{ReplyEvent, ReplySink, ReplyTarget, TokenUsage};
pub use secret::secret_eq;
