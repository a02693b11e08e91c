//! Posting, updating and reacting in one Slack conversation, for the
//! shared reply stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures::future::BoxFuture;

use switchboard_channel::stream::{Surface, SurfaceError};

use crate::api::Api;
use crate::render;

/// The longest piece of an answer, in characters of the model's text.
/// Slack cuts a message at 40,000 characters and asks for at most 4,000;
/// this leaves room for what mrkdwn escaping adds.
pub const LIMIT: usize = 3500;

/// Reactions on the message being answered.
#[derive(Debug, Clone, Default)]
pub struct Reactions {
    /// Shown while the assistant works (e.g. `eyes`).
    pub working: Option<String>,
    /// Put in its place when the answer is complete (e.g.
    /// `white_check_mark`).
    pub done: Option<String>,
}

/// One place a reply goes: a conversation, in a thread when given.
#[derive(Debug)]
pub struct SlackSurface {
    api: Arc<Api>,
    channel: String,
    thread_ts: Option<String>,
    /// The message answered, for reactions.
    asked: Option<String>,
    reactions: Reactions,
    /// Whether the working reaction was put on (or its call started).
    reacted: Arc<AtomicBool>,
}

impl SlackSurface {
    /// A reply into `channel`, under `thread_ts` when given; `asked` is the
    /// `ts` of the message answered.
    pub fn new(
        api: Arc<Api>,
        channel: &str,
        thread_ts: Option<&str>,
        asked: Option<&str>,
        reactions: Reactions,
    ) -> Self {
        Self {
            api,
            channel: channel.into(),
            thread_ts: thread_ts.map(Into::into),
            asked: asked.map(Into::into),
            reactions,
            reacted: Arc::new(AtomicBool::new(false)),
        }
    }
}

#[async_trait]
impl Surface for SlackSurface {
    fn limit(&self) -> usize {
        LIMIT
    }

    /// Bots have no typing indicator on Slack: the working reaction on the
    /// asking message says "seen, working on it" instead.
    fn typing(&self) -> Option<BoxFuture<'static, ()>> {
        let name = self.reactions.working.clone()?;
        let asked = self.asked.clone()?;
        let api = self.api.clone();
        let channel = self.channel.clone();
        let reacted = self.reacted.clone();
        Some(Box::pin(async move {
            if !reacted.swap(true, Ordering::SeqCst)
                && let Err(e) = api.react(&channel, &asked, &name).await
            {
                tracing::debug!(error = %e, "cannot add the working reaction");
            }
            std::future::pending::<()>().await;
        }))
    }

    async fn send(&mut self, text: &str) -> Result<String, SurfaceError> {
        self.api
            .post(
                &self.channel,
                self.thread_ts.as_deref(),
                &render::to_mrkdwn(text),
            )
            .await
            .map_err(|e| e.surface())
    }

    async fn edit(&mut self, id: &str, text: &str) -> Result<(), SurfaceError> {
        self.api
            .update(&self.channel, id, &render::to_mrkdwn(text))
            .await
            .map_err(|e| e.surface())
    }

    async fn finished(&mut self, ok: bool) {
        let Some(asked) = &self.asked else { return };
        if !self.reacted.load(Ordering::SeqCst) {
            return;
        }
        if let Some(working) = &self.reactions.working
            && let Err(e) = self.api.unreact(&self.channel, asked, working).await
        {
            tracing::debug!(error = %e, "cannot remove the working reaction");
        }
        if ok
            && let Some(done) = &self.reactions.done
            && let Err(e) = self.api.react(&self.channel, asked, done).await
        {
            tracing::debug!(error = %e, "cannot add the done reaction");
        }
    }
}
