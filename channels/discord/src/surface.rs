//! Sending, editing and typing in one Discord channel, thread or slash
//! command response, for the shared reply stream.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use serenity::model::id::{ApplicationId, ChannelId, MessageId};

use switchboard_channel::ChannelError;
use switchboard_channel::stream::{Surface, SurfaceError};

use crate::rest::{Rest, content};

/// Discord's longest message, in characters.
pub const LIMIT: usize = 2000;

/// The id the first answer to a slash command has: the deferred response.
const ORIGINAL: &str = "@original";

/// A slash command's response: the application and the interaction token.
#[derive(Clone)]
pub struct CommandResponse {
    /// The application.
    pub app: ApplicationId,
    /// The interaction token (valid 15 minutes).
    pub token: String,
}

impl std::fmt::Debug for CommandResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandResponse")
            .field("app", &self.app)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// One place a reply goes.
#[derive(Debug, Clone)]
pub struct DiscordSurface {
    rest: Arc<Rest>,
    channel: ChannelId,
    /// In guilds, the first message replies to the one that asked.
    reply_to: Option<MessageId>,
    /// For a slash command: answer in its response.
    command: Option<CommandResponse>,
    original_used: bool,
    max_lines: usize,
}

fn parse_id(what: &str, id: &str) -> Result<u64, ChannelError> {
    id.parse::<u64>()
        .ok()
        .filter(|&n| n != 0)
        .ok_or_else(|| ChannelError::Rejected(format!("`{id}` is not a Discord {what} id")))
}

impl DiscordSurface {
    /// A reply into `channel` (a thread's own id for threads).
    pub fn new(
        rest: Arc<Rest>,
        channel: &str,
        reply_to: Option<&str>,
        command: Option<CommandResponse>,
        max_lines: usize,
    ) -> Result<Self, ChannelError> {
        let channel = ChannelId::new(parse_id("channel", channel)?);
        let reply_to = reply_to
            .and_then(|r| r.parse::<u64>().ok())
            .filter(|&n| n != 0)
            .map(MessageId::new);
        Ok(Self {
            rest,
            channel,
            reply_to,
            command,
            original_used: false,
            max_lines,
        })
    }

    /// A reply continuing the message `id` an earlier run left: when that
    /// is the command's response, later pieces follow up instead of
    /// overwriting it.
    pub fn resuming(mut self, id: Option<&str>) -> Self {
        if id == Some(ORIGINAL) {
            self.original_used = true;
        }
        self
    }
}

#[async_trait]
impl Surface for DiscordSurface {
    fn limit(&self) -> usize {
        LIMIT
    }

    fn max_lines(&self) -> usize {
        self.max_lines
    }

    fn typing(&self) -> Option<BoxFuture<'static, ()>> {
        if self.command.is_some() {
            // The deferred response already shows "thinking…".
            return None;
        }
        let rest = self.rest.clone();
        let channel = self.channel;
        Some(Box::pin(async move {
            loop {
                if let Err(e) = rest.typing(channel).await {
                    tracing::debug!(error = %e, "typing indicator failed");
                }
                // Discord shows it for ten seconds or until a message.
                tokio::time::sleep(Duration::from_secs(8)).await;
            }
        }))
    }

    async fn send(&mut self, text: &str) -> Result<String, SurfaceError> {
        let rest = &self.rest;
        let mut body = content(text);
        if let Some(cmd) = &self.command {
            if !self.original_used {
                rest.edit_original(cmd.app, &cmd.token, &body)
                    .await
                    .map_err(|e| e.surface())?;
                self.original_used = true;
                return Ok(ORIGINAL.into());
            }
            return rest
                .follow_up(cmd.app, &cmd.token, &body)
                .await
                .map_err(|e| e.surface());
        }
        if let Some(r) = self.reply_to {
            body["message_reference"] =
                serde_json::json!({"message_id": r.to_string(), "fail_if_not_exists": false});
        }
        let id = rest
            .send(self.channel, &body)
            .await
            .map_err(|e| e.surface())?;
        // Only the first message is a reply; the rest follow it.
        self.reply_to = None;
        Ok(id)
    }

    async fn edit(&mut self, id: &str, text: &str) -> Result<(), SurfaceError> {
        let rest = &self.rest;
        let body = content(text);
        let result = match &self.command {
            Some(cmd) if id == ORIGINAL => rest.edit_original(cmd.app, &cmd.token, &body).await,
            Some(cmd) => {
                let m = MessageId::new(parse_id("message", id)?);
                rest.edit_follow_up(cmd.app, &cmd.token, m, &body).await
            }
            None => {
                let m = MessageId::new(parse_id("message", id)?);
                rest.edit(self.channel, m, &body).await
            }
        };
        result.map_err(|e| e.surface())
    }
}
