//! The reply stream every chat platform shares: a typing indicator while
//! the agent works, one message edited in place as text arrives (no more
//! often than the configured interval), and the final text split at the
//! platform's limit. Adapters supply a [`Surface`]: how to send, edit and
//! show typing on their platform.

use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::chunk::{self, Measure};
use crate::{ChannelError, ReplyEvent, ReplySink};

/// What a platform call can answer besides success.
#[derive(Debug)]
pub enum SurfaceError {
    /// Rate limited: try again after this long.
    RetryAfter(Duration),
    /// An edit that changes nothing (not an error for us).
    NotModified,
    /// Anything else.
    Failed(ChannelError),
}

impl From<ChannelError> for SurfaceError {
    fn from(e: ChannelError) -> Self {
        SurfaceError::Failed(e)
    }
}

/// One conversation on a platform, as the reply stream uses it.
#[async_trait]
pub trait Surface: Send {
    /// The longest message, in the platform's units.
    fn limit(&self) -> usize;
    /// How the platform measures a message.
    fn measure(&self) -> Measure {
        chunk::chars
    }
    /// The most lines one message may have (a platform or operator cap to
    /// keep tall answers from flooding a channel). Default: no cap.
    fn max_lines(&self) -> usize {
        usize::MAX
    }
    /// A future that shows the typing indicator again and again until it
    /// is dropped; `None` when the platform has none.
    fn typing(&self) -> Option<BoxFuture<'static, ()>>;
    /// Post a new message; returns its id.
    async fn send(&mut self, text: &str) -> Result<String, SurfaceError>;
    /// Replace the text of message `id`.
    async fn edit(&mut self, id: &str, text: &str) -> Result<(), SurfaceError>;
    /// Called once after the final message went out (e.g. to swap an
    /// acknowledgement reaction). Default: nothing.
    async fn finished(&mut self, _ok: bool) {}
}

/// How a [`ReplyStream`] behaves.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// The least time between two edits of the streaming message.
    pub edit_interval: Duration,
    /// How many times a rate-limited final message is retried.
    pub max_retries: u32,
    /// The longest wait a `retry_after` may impose on a final message.
    pub max_wait: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            edit_interval: Duration::from_secs(1),
            max_retries: 5,
            max_wait: Duration::from_secs(60),
        }
    }
}

/// A [`ReplySink`] that renders a reply on any [`Surface`].
pub struct ReplyStream<S: Surface> {
    surface: S,
    settings: StreamSettings,
    text: String,
    message: Option<String>,
    shown: String,
    next_edit: Option<Instant>,
    /// The platform asked us to wait until then before the next call.
    blocked_until: Option<Instant>,
    typing: Option<tokio::task::JoinHandle<()>>,
    /// The last final text (by hash) and how many of its pieces went out:
    /// the same final sent again (a retried delivery) goes on from the
    /// first piece that did not, so none arrives twice.
    finished: Option<(u64, usize)>,
    /// `message` was left by an earlier run of this reply: if it cannot be
    /// edited (deleted, too old), the reply goes out as a new message.
    resumed: bool,
}

impl<S: Surface> std::fmt::Debug for ReplyStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyStream")
            .field("message", &self.message)
            .field("chars", &self.text.len())
            .finish()
    }
}

impl<S: Surface> Drop for ReplyStream<S> {
    fn drop(&mut self) {
        if let Some(t) = self.typing.take() {
            t.abort();
        }
    }
}

impl<S: Surface> ReplyStream<S> {
    /// A stream on `surface`.
    pub fn new(surface: S, settings: StreamSettings) -> Self {
        Self {
            surface,
            settings,
            text: String::new(),
            message: None,
            shown: String::new(),
            next_edit: None,
            blocked_until: None,
            typing: None,
            finished: None,
            resumed: false,
        }
    }

    /// Continue the message `id` an earlier run of this reply left (see
    /// [`ReplyTarget::resume`](crate::ReplyTarget::resume)): the preview
    /// and the answer's first piece edit it.
    pub fn resuming(mut self, id: Option<String>) -> Self {
        if id.is_some() {
            self.message = id;
            self.resumed = true;
        }
        self
    }

    /// The message left by an earlier run cannot be edited: forget it, so
    /// the reply goes out as a new message.
    fn give_up_resumed(&mut self, e: &ChannelError) -> bool {
        if !self.resumed {
            return false;
        }
        tracing::info!(error = %e, "the earlier message of this reply cannot be edited; sending a new one");
        self.resumed = false;
        self.message = None;
        self.shown.clear();
        true
    }

    fn stop_typing(&mut self) {
        if let Some(t) = self.typing.take() {
            t.abort();
        }
    }

    /// Show what has arrived so far, if the interval allows.
    async fn preview(&mut self) -> Result<(), ChannelError> {
        let now = Instant::now();
        if self.next_edit.is_some_and(|t| now < t) {
            return Ok(());
        }
        let limit = self.surface.limit();
        let measure = self.surface.measure();
        let mut preview = self.text.trim_end().to_string();
        if preview.is_empty() {
            return Ok(());
        }
        let max_lines = self.surface.max_lines();
        if measure(&preview) > limit || preview.lines().count() > max_lines {
            // Only the first piece streams; the rest comes with the end.
            preview = chunk::split_capped(&preview, limit.saturating_sub(2), measure, max_lines)
                .into_iter()
                .next()
                .unwrap_or_default();
            preview.push_str(" …");
        }
        if preview == self.shown {
            return Ok(());
        }
        let result = match &self.message {
            Some(id) => {
                let id = id.clone();
                self.surface.edit(&id, &preview).await.map(|()| None)
            }
            None => self.surface.send(&preview).await.map(Some),
        };
        self.next_edit = Some(now + self.settings.edit_interval);
        match result {
            Ok(id) => {
                if let Some(id) = id {
                    self.message = Some(id);
                }
                self.shown = preview;
                Ok(())
            }
            Err(SurfaceError::NotModified) => Ok(()),
            // A preview is not worth waiting for: skip edits until then
            // (the final message waits).
            Err(SurfaceError::RetryAfter(d)) => {
                // Counted from the refusal, not from when we asked.
                let refused = Instant::now();
                self.next_edit = Some(refused + d.max(self.settings.edit_interval));
                self.blocked_until = Some(refused + d.min(self.settings.max_wait));
                Ok(())
            }
            Err(SurfaceError::Failed(e)) if self.give_up_resumed(&e) => Ok(()),
            Err(SurfaceError::Failed(e)) => Err(e),
        }
    }

    /// Send or edit, waiting out rate limits.
    async fn deliver(&mut self, edit: Option<String>, text: &str) -> Result<(), ChannelError> {
        let mut attempts = 0;
        loop {
            if let Some(until) = self.blocked_until.take() {
                tokio::time::sleep_until(until).await;
            }
            let result = match &edit {
                Some(id) => self.surface.edit(id, text).await.map(|()| None),
                None => self.surface.send(text).await.map(Some),
            };
            match result {
                Ok(Some(id)) => {
                    self.message.get_or_insert(id);
                    return Ok(());
                }
                Ok(None) | Err(SurfaceError::NotModified) => return Ok(()),
                Err(SurfaceError::RetryAfter(d)) if attempts < self.settings.max_retries => {
                    attempts += 1;
                    let wait = d.min(self.settings.max_wait);
                    tracing::debug!(?wait, "rate limited; waiting before retrying");
                    self.blocked_until = Some(Instant::now() + wait);
                }
                Err(SurfaceError::RetryAfter(d)) => {
                    return Err(ChannelError::Unavailable(format!(
                        "still rate limited after {attempts} retries (asked to wait {} s)",
                        d.as_secs()
                    )));
                }
                Err(SurfaceError::Failed(e)) => return Err(e),
            }
        }
    }

    /// The whole text, split, replacing the streamed preview.
    async fn finish(&mut self, text: &str, ok: bool) -> Result<(), ChannelError> {
        self.stop_typing();
        let pieces = chunk::split_capped(
            text,
            self.surface.limit(),
            self.surface.measure(),
            self.surface.max_lines(),
        );
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            text.hash(&mut h);
            h.finish()
        };
        let done = match self.finished {
            Some((k, n)) if k == key => n,
            _ => 0,
        };
        self.finished = Some((key, done));
        let mut result = Ok(());
        for (i, piece) in pieces.iter().enumerate().skip(done) {
            let edit = if i == 0 { self.message.clone() } else { None };
            if edit.is_some() && *piece == self.shown {
                self.finished = Some((key, i + 1));
                continue;
            }
            let resumed_edit = edit.is_some() && self.resumed;
            let mut sent = self.deliver(edit, piece).await;
            if let Err(e) = &sent {
                if resumed_edit && self.give_up_resumed(e) {
                    sent = self.deliver(None, piece).await;
                }
            }
            if let Err(e) = sent {
                result = Err(e);
                break;
            }
            if i == 0 {
                self.shown = piece.clone();
            }
            self.finished = Some((key, i + 1));
        }
        self.surface.finished(ok && result.is_ok()).await;
        result
    }
}

#[async_trait]
impl<S: Surface> ReplySink for ReplyStream<S> {
    fn message_id(&self) -> Option<String> {
        self.message.clone()
    }

    async fn send(&mut self, event: ReplyEvent) -> Result<(), ChannelError> {
        match event {
            ReplyEvent::Working => {
                if self.typing.is_none()
                    && let Some(fut) = self.surface.typing()
                {
                    self.typing = Some(tokio::spawn(fut));
                }
                Ok(())
            }
            ReplyEvent::Delta { text } => {
                self.text.push_str(&text);
                self.preview().await
            }
            ReplyEvent::Done { text, .. } => self.finish(&text, true).await,
            ReplyEvent::Failed { message } => self.finish(&format!("⚠️ {message}"), false).await,
            ReplyEvent::Notice { text } => {
                // A notice is its own message, never an edit of an answer.
                self.message = None;
                self.finish(&text, true).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    enum Call {
        Send(String),
        Edit(String, String),
    }

    #[derive(Clone, Default)]
    struct Fake {
        calls: Arc<Mutex<Vec<Call>>>,
        fail_next: Arc<Mutex<Vec<SurfaceError>>>,
        /// Fail the send made when this many calls went through.
        fail_send_at: Arc<Mutex<Option<usize>>>,
    }

    #[async_trait]
    impl Surface for Fake {
        fn limit(&self) -> usize {
            50
        }
        fn typing(&self) -> Option<BoxFuture<'static, ()>> {
            None
        }
        async fn send(&mut self, text: &str) -> Result<String, SurfaceError> {
            if let Some(e) = self.fail_next.lock().unwrap().pop() {
                return Err(e);
            }
            let mut calls = self.calls.lock().unwrap();
            let mut at = self.fail_send_at.lock().unwrap();
            if *at == Some(calls.len()) {
                *at = None;
                return Err(SurfaceError::Failed(ChannelError::Unavailable(
                    "502 Bad Gateway".into(),
                )));
            }
            calls.push(Call::Send(text.into()));
            Ok(format!("m{}", calls.len()))
        }
        async fn edit(&mut self, id: &str, text: &str) -> Result<(), SurfaceError> {
            if let Some(e) = self.fail_next.lock().unwrap().pop() {
                return Err(e);
            }
            self.calls
                .lock()
                .unwrap()
                .push(Call::Edit(id.into(), text.into()));
            Ok(())
        }
    }

    fn settings() -> StreamSettings {
        StreamSettings {
            edit_interval: Duration::from_secs(1),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deltas_edit_one_message_no_faster_than_the_interval() {
        let fake = Fake::default();
        let mut s = ReplyStream::new(fake.clone(), settings());
        s.send(ReplyEvent::Working).await.unwrap();
        s.send(ReplyEvent::Delta { text: "Hel".into() })
            .await
            .unwrap();
        s.send(ReplyEvent::Delta { text: "lo".into() })
            .await
            .unwrap(); // too soon
        tokio::time::advance(Duration::from_millis(1100)).await;
        s.send(ReplyEvent::Delta {
            text: " there".into(),
        })
        .await
        .unwrap();
        s.send(ReplyEvent::Done {
            text: "Hello there!".into(),
            usage: None,
        })
        .await
        .unwrap();
        assert_eq!(
            *fake.calls.lock().unwrap(),
            vec![
                Call::Send("Hel".into()),
                Call::Edit("m1".into(), "Hello there".into()),
                Call::Edit("m1".into(), "Hello there!".into()),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_final_text_edits_the_first_piece_and_sends_the_rest() {
        let fake = Fake::default();
        let mut s = ReplyStream::new(fake.clone(), settings());
        s.send(ReplyEvent::Delta {
            text: "start".into(),
        })
        .await
        .unwrap();
        let long = "word ".repeat(25);
        s.send(ReplyEvent::Done {
            text: long.clone(),
            usage: None,
        })
        .await
        .unwrap();
        let calls = fake.calls.lock().unwrap().clone();
        assert!(matches!(&calls[1], Call::Edit(id, _) if id == "m1"));
        assert!(calls.len() >= 3);
        let shown: Vec<String> = calls[1..]
            .iter()
            .map(|c| match c {
                Call::Send(t) | Call::Edit(_, t) => t.clone(),
            })
            .collect();
        assert!(shown.iter().all(|t| t.chars().count() <= 50));
        assert_eq!(shown.join(" ").split_whitespace().count(), 25);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumed_reply_edits_the_earlier_message_or_sends_anew_when_it_is_gone() {
        let fake = Fake::default();
        let mut s = ReplyStream::new(fake.clone(), settings()).resuming(Some("m9".into()));
        assert_eq!(s.message_id().as_deref(), Some("m9"));
        s.send(ReplyEvent::Done {
            text: "the answer".into(),
            usage: None,
        })
        .await
        .unwrap();
        assert_eq!(
            fake.calls.lock().unwrap().clone(),
            [Call::Edit("m9".into(), "the answer".into())]
        );

        // The earlier message was deleted: its edit fails, the answer is
        // sent as a new message instead of being lost.
        let fake = Fake::default();
        fake.fail_next
            .lock()
            .unwrap()
            .push(SurfaceError::Failed(ChannelError::Rejected(
                "message to edit not found".into(),
            )));
        let mut s = ReplyStream::new(fake.clone(), settings()).resuming(Some("gone".into()));
        s.send(ReplyEvent::Done {
            text: "the answer".into(),
            usage: None,
        })
        .await
        .unwrap();
        assert_eq!(
            fake.calls.lock().unwrap().clone(),
            [Call::Send("the answer".into())]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_sent_again_after_a_failure_goes_on_where_it_stopped() {
        let fake = Fake::default();
        let mut s = ReplyStream::new(fake.clone(), settings());
        s.send(ReplyEvent::Delta {
            text: "start".into(),
        })
        .await
        .unwrap();
        // The preview and the first piece went out; the second fails.
        *fake.fail_send_at.lock().unwrap() = Some(2);
        let long = "word ".repeat(25);
        let done = || ReplyEvent::Done {
            text: long.clone(),
            usage: None,
        };
        assert!(s.send(done()).await.is_err());
        s.send(done()).await.unwrap();
        let calls = fake.calls.lock().unwrap().clone();
        assert!(
            matches!(&calls[1], Call::Edit(id, _) if id == "m1"),
            "{calls:?}"
        );
        let sent: Vec<String> = calls[1..]
            .iter()
            .map(|c| match c {
                Call::Send(t) | Call::Edit(_, t) => t.clone(),
            })
            .collect();
        // Every word once: nothing shown twice, nothing missing.
        assert_eq!(sent.join(" ").split_whitespace().count(), 25, "{calls:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_final_message_waits_and_is_sent_once() {
        let fake = Fake::default();
        fake.fail_next
            .lock()
            .unwrap()
            .push(SurfaceError::RetryAfter(Duration::from_secs(3)));
        let mut s = ReplyStream::new(fake.clone(), settings());
        let started = Instant::now();
        s.send(ReplyEvent::Done {
            text: "hi".into(),
            usage: None,
        })
        .await
        .unwrap();
        assert!(started.elapsed() >= Duration::from_secs(3));
        assert_eq!(*fake.calls.lock().unwrap(), vec![Call::Send("hi".into())]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_preview_holds_back_the_final_message_too() {
        let fake = Fake::default();
        fake.fail_next
            .lock()
            .unwrap()
            .push(SurfaceError::RetryAfter(Duration::from_secs(3)));
        let mut s = ReplyStream::new(fake.clone(), settings());
        let started = Instant::now();
        s.send(ReplyEvent::Delta { text: "h".into() })
            .await
            .unwrap();
        s.send(ReplyEvent::Done {
            text: "hi".into(),
            usage: None,
        })
        .await
        .unwrap();
        assert!(started.elapsed() >= Duration::from_secs(3));
        assert_eq!(*fake.calls.lock().unwrap(), vec![Call::Send("hi".into())]);
    }

    #[tokio::test(start_paused = true)]
    async fn not_modified_is_not_an_error() {
        let fake = Fake::default();
        let mut s = ReplyStream::new(fake.clone(), settings());
        s.send(ReplyEvent::Delta {
            text: "same".into(),
        })
        .await
        .unwrap();
        fake.fail_next
            .lock()
            .unwrap()
            .push(SurfaceError::NotModified);
        s.send(ReplyEvent::Done {
            text: "same!".into(),
            usage: None,
        })
        .await
        .unwrap();
    }
}
