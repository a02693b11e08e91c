//! Sending, editing and typing in one Telegram chat, for the shared reply
//! stream.

use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use teloxide::payloads::setters::*;
use teloxide::requests::Requester;
use teloxide::types::{ChatAction, ChatId, MessageId, ParseMode, ReplyParameters, ThreadId};
use teloxide::{ApiError, Bot, RequestError};

use switchboard_channel::chunk::{self, Measure};
use switchboard_channel::stream::{Surface, SurfaceError};
use switchboard_channel::{ChannelError, ChatKind, ReplyTarget};

use crate::render;

/// Telegram's longest message, in UTF-16 units.
pub const LIMIT: usize = 4096;

/// One chat (and topic) of a bot.
#[derive(Debug, Clone)]
pub struct TelegramSurface {
    bot: Bot,
    chat: ChatId,
    thread: Option<ThreadId>,
    reply_to: Option<MessageId>,
}

fn bad_target(what: &str, value: &str) -> ChannelError {
    ChannelError::Rejected(format!("`{value}` is not a Telegram {what}"))
}

impl TelegramSurface {
    /// The chat `target` names.
    pub fn new(bot: Bot, target: &ReplyTarget) -> Result<Self, ChannelError> {
        let chat = ChatId(
            target
                .chat_id
                .parse()
                .map_err(|_| bad_target("chat id", &target.chat_id))?,
        );
        let thread = match &target.thread_id {
            Some(t) => Some(ThreadId(MessageId(
                t.parse().map_err(|_| bad_target("topic id", t))?,
            ))),
            None => None,
        };
        // In groups, answer as a reply to the message that asked.
        let reply_to = (target.chat_kind != ChatKind::Dm)
            .then(|| {
                target
                    .reply_to
                    .as_deref()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()
                    .map(MessageId)
            })
            .flatten();
        Ok(Self {
            bot,
            chat,
            thread,
            reply_to,
        })
    }
}

fn surface_error(e: RequestError) -> SurfaceError {
    match e {
        RequestError::RetryAfter(s) => SurfaceError::RetryAfter(s.duration()),
        RequestError::Api(ApiError::MessageNotModified) => SurfaceError::NotModified,
        RequestError::Network(n) => SurfaceError::Failed(ChannelError::Unavailable(n.to_string())),
        e => SurfaceError::Failed(ChannelError::Rejected(e.to_string())),
    }
}

fn markup_refused(e: &RequestError) -> bool {
    matches!(e, RequestError::Api(ApiError::CantParseEntities(_)))
}

#[async_trait]
impl Surface for TelegramSurface {
    fn limit(&self) -> usize {
        LIMIT
    }

    fn measure(&self) -> Measure {
        chunk::utf16
    }

    fn typing(&self) -> Option<BoxFuture<'static, ()>> {
        let bot = self.bot.clone();
        let (chat, thread) = (self.chat, self.thread);
        Some(Box::pin(async move {
            loop {
                let mut req = bot.send_chat_action(chat, ChatAction::Typing);
                if let Some(t) = thread {
                    req = req.message_thread_id(t);
                }
                let _ = req.await;
                // Telegram shows it for five seconds.
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
        }))
    }

    async fn send(&mut self, text: &str) -> Result<String, SurfaceError> {
        let html = render::to_html(text);
        let request = |body: String, html: bool| {
            let mut req = self.bot.send_message(self.chat, body);
            if html {
                req = req.parse_mode(ParseMode::Html);
            }
            if let Some(t) = self.thread {
                req = req.message_thread_id(t);
            }
            if let Some(r) = self.reply_to {
                req = req.reply_parameters(ReplyParameters::new(r).allow_sending_without_reply());
            }
            req
        };
        let sent = match request(html, true).await {
            Err(e) if markup_refused(&e) => request(text.to_string(), false).await,
            r => r,
        }
        .map_err(surface_error)?;
        // Only the first message is a reply; the rest follow it.
        self.reply_to = None;
        Ok(sent.id.0.to_string())
    }

    async fn edit(&mut self, id: &str, text: &str) -> Result<(), SurfaceError> {
        let id = MessageId(
            id.parse()
                .map_err(|_| SurfaceError::Failed(bad_target("message id", id)))?,
        );
        let html = render::to_html(text);
        let first = self
            .bot
            .edit_message_text(self.chat, id, html)
            .parse_mode(ParseMode::Html)
            .await;
        match first {
            Err(e) if markup_refused(&e) => self
                .bot
                .edit_message_text(self.chat, id, text)
                .await
                .map(drop)
                .map_err(surface_error),
            r => r.map(drop).map_err(surface_error),
        }
    }
}
