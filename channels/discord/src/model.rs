//! The parts of Discord's payloads the adapter reads, parsed leniently:
//! every field we do not need is ignored and every field Discord documents
//! as optional has a default, so an event with a field we do not know (or
//! without one we do not need) is still delivered rather than dropped.

use serde::Deserialize;

/// A Discord user.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct User {
    /// Snowflake id.
    pub id: String,
    /// The unique username.
    #[serde(default)]
    pub username: String,
    /// The display name, when set.
    #[serde(default)]
    pub global_name: Option<String>,
    /// Whether the user is a bot.
    #[serde(default)]
    pub bot: bool,
}

impl User {
    /// The name to show.
    pub fn display(&self) -> Option<String> {
        self.global_name
            .clone()
            .or_else(|| (!self.username.is_empty()).then(|| self.username.clone()))
    }
}

/// A file attached to a message.
#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    /// The file name.
    pub filename: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Where to download it.
    pub url: String,
    /// The MIME type, when known.
    #[serde(default)]
    pub content_type: Option<String>,
}

/// The message a reply refers to (only its author matters).
#[derive(Debug, Clone, Deserialize)]
pub struct Referenced {
    /// Who wrote it.
    pub author: User,
}

/// A `MESSAGE_CREATE` event.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// Snowflake id.
    pub id: String,
    /// The channel (or thread) it was sent in.
    pub channel_id: String,
    /// The guild, absent for DMs.
    #[serde(default)]
    pub guild_id: Option<String>,
    /// Who sent it.
    pub author: User,
    /// The text (empty without the message content intent).
    #[serde(default)]
    pub content: String,
    /// Users mentioned.
    #[serde(default)]
    pub mentions: Vec<User>,
    /// The message this one replies to.
    #[serde(default)]
    pub referenced_message: Option<Box<Referenced>>,
    /// Files.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Set when a webhook posted it.
    #[serde(default)]
    pub webhook_id: Option<String>,
    /// The message type: 0 default, 19 reply; others are system messages.
    #[serde(default, rename = "type")]
    pub kind: u8,
}

/// A channel or thread, as far as routing needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelInfo {
    /// Snowflake id.
    pub id: String,
    /// The channel type.
    #[serde(rename = "type", default)]
    pub kind: u8,
    /// The parent text channel, for threads.
    #[serde(default)]
    pub parent_id: Option<String>,
}

impl ChannelInfo {
    /// Whether this is a thread (announcement, public or private).
    pub fn is_thread(&self) -> bool {
        matches!(self.kind, 10..=12)
    }
}

/// A `GUILD_CREATE` event's channels and threads.
#[derive(Debug, Clone, Deserialize)]
pub struct GuildCreate {
    /// The guild's channels.
    #[serde(default)]
    pub channels: Vec<ChannelInfo>,
    /// Its active threads.
    #[serde(default)]
    pub threads: Vec<ChannelInfo>,
}

/// A `THREAD_LIST_SYNC` event.
#[derive(Debug, Clone, Deserialize)]
pub struct ThreadListSync {
    /// The active threads.
    #[serde(default)]
    pub threads: Vec<ChannelInfo>,
}

/// The application in `READY`.
#[derive(Debug, Clone, Deserialize)]
pub struct Application {
    /// Snowflake id.
    pub id: String,
    /// Application flags.
    #[serde(default)]
    pub flags: Option<u64>,
}

/// A `READY` event.
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    /// For resuming.
    pub session_id: String,
    /// Where to resume (Discord may move a session to another host).
    #[serde(default)]
    pub resume_gateway_url: Option<String>,
    /// The bot itself.
    pub user: User,
    /// The bot's application.
    #[serde(default)]
    pub application: Option<Application>,
}

/// Command data of an interaction.
#[derive(Debug, Clone, Deserialize)]
pub struct CommandData {
    /// The command's name.
    pub name: String,
}

/// A guild member (in an interaction).
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    /// The user.
    pub user: User,
}

/// An `INTERACTION_CREATE` event.
#[derive(Clone, Deserialize)]
pub struct Interaction {
    /// Snowflake id.
    pub id: String,
    /// The application it is for.
    pub application_id: String,
    /// 2 = application command.
    #[serde(rename = "type")]
    pub kind: u8,
    /// The token to answer with (valid 15 minutes; never logged).
    pub token: String,
    /// The command.
    #[serde(default)]
    pub data: Option<CommandData>,
    /// The guild, absent in DMs.
    #[serde(default)]
    pub guild_id: Option<String>,
    /// The channel it was used in.
    #[serde(default)]
    pub channel_id: Option<String>,
    /// The channel, with its type.
    #[serde(default)]
    pub channel: Option<ChannelInfo>,
    /// The member who used it (guilds).
    #[serde(default)]
    pub member: Option<Member>,
    /// The user who used it (DMs).
    #[serde(default)]
    pub user: Option<User>,
}

impl Interaction {
    /// Who used it.
    pub fn who(&self) -> Option<&User> {
        self.member.as_ref().map(|m| &m.user).or(self.user.as_ref())
    }
}

impl std::fmt::Debug for Interaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interaction")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("token", &"<redacted>")
            .field("data", &self.data)
            .field("channel_id", &self.channel_id)
            .finish_non_exhaustive()
    }
}

/// What the REST API answers for a created message.
#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    /// The new message's id.
    pub id: String,
}

/// `GET /gateway`.
#[derive(Debug, Clone, Deserialize)]
pub struct GatewayInfo {
    /// The WebSocket URL.
    pub url: String,
}
