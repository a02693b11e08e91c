//! The reply stream: what the gateway sends back through an adapter.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{ChannelError, ChatKind};

/// Where a reply goes: the conversation a message came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTarget {
    /// The channel name.
    pub channel: String,
    /// The channel account.
    pub account: String,
    /// DM, group or thread.
    pub chat_kind: ChatKind,
    /// The platform's chat id.
    pub chat_id: String,
    /// The thread or topic, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// The platform message this replies to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// A message an earlier run of this reply left on the platform (a
    /// streamed preview when the gateway stopped): the reply edits it into
    /// the answer instead of sending a second message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

/// One step of a reply as the adapter must render it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplyEvent {
    /// The assistant is working: show a typing indicator.
    Working,
    /// More text of the answer (append to what came before).
    Delta {
        /// The new text.
        text: String,
    },
    /// The answer is complete; `text` is the whole of it.
    Done {
        /// The complete answer.
        text: String,
        /// Tokens the turn used, when the model reported them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<TokenUsage>,
    },
    /// The turn failed; `message` is written for the user.
    Failed {
        /// What went wrong and what to do, for the user.
        message: String,
    },
    /// A standalone message from the gateway itself (a pairing code, a rate
    /// limit notice, a command's answer). It ends the reply.
    Notice {
        /// The text to show.
        text: String,
    },
}

impl ReplyEvent {
    /// Whether this event ends the reply.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ReplyEvent::Done { .. } | ReplyEvent::Failed { .. } | ReplyEvent::Notice { .. }
        )
    }
}

/// Tokens a turn used, for channels that show or report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: u64,
}

/// An open reply on a platform. The gateway sends events in order and stops
/// after the first final one.
#[async_trait]
pub trait ReplySink: Send {
    /// Render one event. An error means the platform did not take it.
    async fn send(&mut self, event: ReplyEvent) -> Result<(), ChannelError>;

    /// The platform's id of the message this reply edits in place (its
    /// streamed preview), once there is one; the gateway stores it so a
    /// reply continued after a restart edits that message
    /// ([`ReplyTarget::resume`]).
    fn message_id(&self) -> Option<String> {
        None
    }
}
