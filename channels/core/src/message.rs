//! Inbound message types: what an adapter hands to the gateway.

use serde::{Deserialize, Serialize};

/// The kind of conversation a message arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    /// A one-to-one conversation with the bot.
    Dm,
    /// A group, guild channel or Slack channel.
    Group,
    /// A thread or forum topic inside a group (`thread_id` is set).
    Thread,
}

impl ChatKind {
    /// The lowercase name used in logs, session keys and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Dm => "dm",
            ChatKind::Group => "group",
            ChatKind::Thread => "thread",
        }
    }
}

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The platform's stable id of the sender (user id, not a display name).
    pub id: String,
    /// A human-readable name, when the platform gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether the sender is itself a bot.
    #[serde(default)]
    pub is_bot: bool,
}

/// A file that came with a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The file name as the platform gives it.
    pub name: String,
    /// The MIME type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Size in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Where the file is for the agent, once fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
    /// The platform's reference for fetching it ([`crate::Channel::fetch`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
}

/// One message received from a platform, in the gateway's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    /// The channel name: `webchat`, `telegram`, `discord`, `slack`.
    pub channel: String,
    /// The configured account of that channel the message came through.
    pub account: String,
    /// DM, group or thread.
    pub chat_kind: ChatKind,
    /// The platform's id of the chat (for a DM, usually the peer's id).
    pub chat_id: String,
    /// The thread or topic id, for [`ChatKind::Thread`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Who sent it.
    pub sender: Sender,
    /// The message text (empty when only attachments came).
    pub text: String,
    /// Files that came with the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Whether the bot was mentioned (or replied to) in a group.
    #[serde(default)]
    pub mentioned: bool,
    /// The platform's id of this message; with channel and account it is the
    /// deduplication key of the ingress queue.
    pub message_id: String,
    /// When the gateway received it, in milliseconds since the Unix epoch.
    pub received_at_ms: i64,
}

impl Inbound {
    /// Where a reply to this message goes.
    pub fn reply_target(&self) -> crate::ReplyTarget {
        crate::ReplyTarget {
            channel: self.channel.clone(),
            account: self.account.clone(),
            chat_kind: self.chat_kind,
            chat_id: self.chat_id.clone(),
            thread_id: self.thread_id.clone(),
            // A message the gateway made itself (a scheduled run, a
            // webhook) is answered with a new message, not a reply.
            reply_to: (!self.message_id.starts_with(GATEWAY_MESSAGE_PREFIX))
                .then(|| self.message_id.clone()),
            resume: None,
        }
    }
}

/// The prefix of the id of a message the gateway made itself (a scheduled
/// run, an inbound webhook's turn): no platform message has it, and its
/// reply is a new message rather than a reply to one.
pub const GATEWAY_MESSAGE_PREFIX: &str = "switchboard:";
