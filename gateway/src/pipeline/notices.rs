//! The notices the gateway sends by itself while taking messages in
//! (pairing codes, rate-limit and busy notices, answers to approval
//! commands), sent off the intake path.
//!
//! Intake puts a notice on one bounded queue and goes on; one supervised
//! task sends them, each within [`SEND_TIMEOUT`]. A platform that is slow or
//! rate limits us delays its notices, never the messages of any channel.
//! When the queue is full a notice is dropped with a warning: a notice is a
//! courtesy, the messages it concerns are stored either way.
//!
//! Channels that answer within the request (the web chat API, see
//! [`Channel::reply_per_message`](switchboard_channel::Channel::reply_per_message))
//! get their notices at once: the notice is the HTTP answer, and delivering
//! it is an in-process hand-over, not a network call.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use switchboard_channel::ReplyTarget;

use crate::channels::ChannelSet;

/// Notices that may wait to be sent.
pub const CAPACITY: usize = 256;
/// The longest one notice may take (rate limits waited out included)
/// before it is given up on.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long notices still queued at shutdown are given.
const DRAIN_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// One notice to send.
#[derive(Debug)]
struct Notice {
    target: ReplyTarget,
    text: String,
}

/// The queue of notices and the way to send them.
#[derive(Debug)]
pub struct Notices {
    tx: mpsc::Sender<Notice>,
    /// Shared by the runs of the sending task, so a restarted task goes on
    /// where the last one stopped.
    rx: Arc<Mutex<mpsc::Receiver<Notice>>>,
    channels: ChannelSet,
}

impl Notices {
    /// A queue of `capacity` notices sent through `channels`.
    pub fn new(channels: ChannelSet, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            channels,
        }
    }

    /// Send `text` to `target`: queued for the sending task, or at once for
    /// a channel that answers within the request. Never waits on a
    /// platform.
    pub async fn send(&self, target: &ReplyTarget, text: String) {
        let in_request = self
            .channels
            .get(&target.channel, &target.account)
            .is_some_and(|c| c.reply_per_message());
        if in_request {
            self.channels.notify(target, text).await;
            return;
        }
        let notice = Notice {
            target: target.clone(),
            text,
        };
        if let Err(e) = self.tx.try_send(notice) {
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the notice queue is full",
                mpsc::error::TrySendError::Closed(_) => "the notice queue is closed",
            };
            tracing::warn!(channel = %target.channel, account = %target.account, chat = %target.chat_id, "{why}; notice dropped");
        }
    }

    /// Send queued notices until `stop`, then what is still queued for a
    /// few seconds. The sending task of the supervisor.
    pub async fn run(&self, stop: CancellationToken) -> Result<(), String> {
        let mut rx = self.rx.lock().await;
        loop {
            let notice = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                n = rx.recv() => match n {
                    Some(n) => n,
                    // Cannot happen while `self` holds the sender.
                    None => return Ok(()),
                },
            };
            self.deliver(notice).await;
        }
        let drain = async {
            while let Ok(notice) = rx.try_recv() {
                self.deliver(notice).await;
            }
        };
        if tokio::time::timeout(DRAIN_AT_SHUTDOWN, drain)
            .await
            .is_err()
        {
            tracing::warn!("notices still queued at shutdown were not sent");
        }
        Ok(())
    }

    async fn deliver(&self, n: Notice) {
        if tokio::time::timeout(SEND_TIMEOUT, self.channels.notify(&n.target, n.text))
            .await
            .is_err()
        {
            tracing::warn!(channel = %n.target.channel, account = %n.target.account, chat = %n.target.chat_id, timeout = ?SEND_TIMEOUT, "notice not delivered in time; given up");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use async_trait::async_trait;
    use switchboard_channel::{
        Channel, ChannelContext, ChannelError, ChatKind, ReplyEvent, ReplySink,
    };
    use tokio::sync::Semaphore;

    /// A channel whose sends wait for a permit, recording what was sent.
    struct Slow {
        name: &'static str,
        in_request: bool,
        gate: Arc<Semaphore>,
        sent: mpsc::UnboundedSender<String>,
    }

    struct SlowSink {
        gate: Arc<Semaphore>,
        sent: mpsc::UnboundedSender<String>,
    }

    #[async_trait]
    impl ReplySink for SlowSink {
        async fn send(&mut self, event: ReplyEvent) -> Result<(), ChannelError> {
            self.gate.acquire().await.expect("open").forget();
            if let ReplyEvent::Notice { text } = event {
                let _ = self.sent.send(text);
            }
            Ok(())
        }
    }

    #[async_trait]
    impl Channel for Slow {
        fn name(&self) -> &str {
            self.name
        }
        fn account(&self) -> &str {
            "a"
        }
        fn reply_per_message(&self) -> bool {
            self.in_request
        }
        async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError> {
            ctx.shutdown.cancelled().await;
            Ok(())
        }
        async fn open_reply(
            &self,
            _target: &ReplyTarget,
        ) -> Result<Box<dyn ReplySink>, ChannelError> {
            Ok(Box::new(SlowSink {
                gate: self.gate.clone(),
                sent: self.sent.clone(),
            }))
        }
    }

    fn target(channel: &str) -> ReplyTarget {
        ReplyTarget {
            channel: channel.into(),
            account: "a".into(),
            chat_kind: ChatKind::Dm,
            chat_id: "c".into(),
            thread_id: None,
            reply_to: None,
            resume: None,
        }
    }

    struct Rig {
        notices: Arc<Notices>,
        gate: Arc<Semaphore>,
        sent: mpsc::UnboundedReceiver<String>,
    }

    fn rig(capacity: usize) -> Rig {
        let gate = Arc::new(Semaphore::new(0));
        let (tx, sent) = mpsc::unbounded_channel();
        let channels = ChannelSet::default();
        for (name, in_request) in [("slow", false), ("inline", true)] {
            channels.add(Arc::new(Slow {
                name,
                in_request,
                gate: gate.clone(),
                sent: tx.clone(),
            }));
        }
        Rig {
            notices: Arc::new(Notices::new(channels, capacity)),
            gate,
            sent,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn queuing_never_waits_for_the_platform_and_a_full_queue_drops() {
        let mut r = rig(2);
        // Nothing sends yet and the platform is stuck: queuing returns.
        for i in 0..5 {
            r.notices.send(&target("slow"), format!("n{i}")).await;
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let n = r.notices.clone();
            let stop = stop.clone();
            async move { n.run(stop).await }
        });
        r.gate.add_permits(10);
        assert_eq!(r.sent.recv().await.unwrap(), "n0");
        assert_eq!(r.sent.recv().await.unwrap(), "n1");
        // A sentinel queued now comes next: the three that did not fit were
        // dropped.
        r.notices.send(&target("slow"), "sentinel".into()).await;
        assert_eq!(r.sent.recv().await.unwrap(), "sentinel");
        stop.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_notice_is_given_up_after_the_timeout_and_the_next_is_sent() {
        let mut r = rig(8);
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let n = r.notices.clone();
            let stop = stop.clone();
            async move { n.run(stop).await }
        });
        r.notices.send(&target("slow"), "stuck".into()).await;
        r.notices.send(&target("slow"), "next".into()).await;
        let start = tokio::time::Instant::now();
        // No permit for the first: it times out; then one for the next.
        tokio::time::sleep(SEND_TIMEOUT + Duration::from_secs(1)).await;
        r.gate.add_permits(1);
        assert_eq!(r.sent.recv().await.unwrap(), "next");
        assert!(start.elapsed() >= SEND_TIMEOUT);
        stop.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_response_channel_gets_its_notice_at_once() {
        let mut r = rig(8);
        r.gate.add_permits(1);
        // No sending task runs: the notice is delivered inside `send`.
        r.notices.send(&target("inline"), "here".into()).await;
        assert_eq!(r.sent.try_recv().unwrap(), "here");
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_sender_goes_on_with_the_queue() {
        let mut r = rig(8);
        r.gate.add_permits(10);
        let first = CancellationToken::new();
        r.notices.send(&target("slow"), "one".into()).await;
        let task = tokio::spawn({
            let n = r.notices.clone();
            let stop = first.clone();
            async move { n.run(stop).await }
        });
        assert_eq!(r.sent.recv().await.unwrap(), "one");
        task.abort();
        let _ = task.await;
        r.notices.send(&target("slow"), "two".into()).await;
        let stop = CancellationToken::new();
        let again = tokio::spawn({
            let n = r.notices.clone();
            let stop = stop.clone();
            async move { n.run(stop).await }
        });
        assert_eq!(r.sent.recv().await.unwrap(), "two");
        stop.cancel();
        again.await.unwrap().unwrap();
    }
}
