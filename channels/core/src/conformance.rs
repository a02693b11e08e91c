//! The channel conformance suite: what every adapter must do, checked
//! against the adapter itself talking to a fake of its platform. An
//! adapter's test supplies a [`Platform`] (how to make the fake deliver a
//! direct message, and what a reader sees) and calls [`run`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::chunk::Measure;
use crate::{Channel, ChannelContext, ChatKind, Delivery, Inbound, ReplyEvent};

/// The fake platform, as the suite drives it.
#[async_trait]
pub trait Platform: Send + Sync {
    /// Make the platform deliver a direct message from user `user`.
    async fn send_dm(&self, user: u64, text: &str);
    /// What a reader sees in the direct chat with `user`, oldest first.
    fn visible(&self, user: u64) -> Vec<String>;
    /// The platform's message limit.
    fn limit(&self) -> usize;
    /// How the platform measures a message.
    fn measure(&self) -> Measure;
    /// The platform's id of test user `user` (default: the number).
    fn user_id(&self, user: u64) -> String {
        user.to_string()
    }
}

const WAIT: Duration = Duration::from_secs(20);

async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "conformance: timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| !w.starts_with("```"))
        .map(str::to_string)
        .collect()
}

/// Run the suite. Panics, saying what failed, when the adapter does not
/// conform. Users 9001..9005 are used.
pub async fn run(channel: Arc<dyn Channel>, platform: &dyn Platform) {
    let (tx, mut rx) = mpsc::channel::<Delivery>(16);
    let stop = CancellationToken::new();
    let ctx = ChannelContext::new(tx, stop.clone());
    let status = ctx.status.clone();
    let listener = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.run(ctx).await })
    };
    let mut next = async |what: &str| -> Inbound {
        let d = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("conformance: no inbound message for {what}"))
            .expect("conformance: the listener stopped");
        let _ = d.stored.send(Ok(()));
        d.inbound
    };

    // 1. A direct message arrives with what the gateway needs.
    platform.send_dm(9001, "hello from the suite").await;
    let m = next("a direct message").await;
    assert_eq!(m.channel, channel.name(), "conformance: channel name");
    assert_eq!(m.account, channel.account(), "conformance: account");
    assert_eq!(m.chat_kind, ChatKind::Dm, "conformance: a DM is a DM");
    assert_eq!(
        m.sender.id,
        platform.user_id(9001),
        "conformance: sender id"
    );
    assert!(!m.sender.is_bot);
    assert_eq!(m.text, "hello from the suite");
    assert!(
        m.mentioned,
        "conformance: a DM always counts as addressed to the bot"
    );
    assert!(
        !m.message_id.is_empty(),
        "conformance: a platform message id for deduplication"
    );
    assert!(
        status.snapshot().last_event_ms.is_some(),
        "conformance: health shows when it last received"
    );

    // 2. A streamed reply ends as one message with the whole answer.
    let mut sink = channel
        .open_reply(&m.reply_target())
        .await
        .expect("open a reply");
    sink.send(ReplyEvent::Working).await.expect("typing");
    for piece in ["Stream", "ing an ", "answer."] {
        sink.send(ReplyEvent::Delta { text: piece.into() })
            .await
            .expect("a delta");
    }
    sink.send(ReplyEvent::Done {
        text: "Streaming an answer.".into(),
        usage: None,
    })
    .await
    .expect("the end");
    let shown = until("the streamed answer", || {
        let v = platform.visible(9001);
        (v.last().map(String::as_str) == Some("Streaming an answer.")).then_some(v)
    })
    .await;
    assert_eq!(
        shown.len(),
        1,
        "conformance: one message for a streamed answer: {shown:?}"
    );

    // 3. A long answer is split under the limit, nothing lost.
    platform.send_dm(9002, "long please").await;
    let m = next("a second direct message").await;
    let limit = platform.limit();
    let measure = platform.measure();
    let mut long = String::new();
    let mut i = 0;
    while measure(&long) < limit * 2 {
        long.push_str(&format!("Sentence {i} of a long answer. "));
        i += 1;
    }
    long.push_str("\n\n```\n");
    for j in 0..20 {
        long.push_str(&format!("code line {j}\n"));
    }
    long.push_str("```\n\nThe end.");
    let mut sink = channel
        .open_reply(&m.reply_target())
        .await
        .expect("open a reply");
    sink.send(ReplyEvent::Done {
        text: long.clone(),
        usage: None,
    })
    .await
    .expect("a long answer");
    let shown = until("the long answer", || {
        let v = platform.visible(9002);
        v.last()
            .is_some_and(|t| t.trim_end().ends_with("The end."))
            .then_some(v)
    })
    .await;
    assert!(
        shown.len() >= 3,
        "conformance: a long answer is split ({} message(s))",
        shown.len()
    );
    for t in &shown {
        assert!(measure(t) <= limit, "conformance: a message over the limit");
    }
    assert_eq!(
        words(&shown.join("\n")),
        words(&long),
        "conformance: the split lost or changed text"
    );

    // 4. Failures and notices are shown.
    platform.send_dm(9003, "fail please").await;
    let m = next("a third direct message").await;
    let mut sink = channel
        .open_reply(&m.reply_target())
        .await
        .expect("open a reply");
    sink.send(ReplyEvent::Failed {
        message: "the model is unreachable".into(),
    })
    .await
    .expect("a failure");
    until("the failure", || {
        platform
            .visible(9003)
            .last()
            .is_some_and(|t| t.contains("the model is unreachable"))
            .then_some(())
    })
    .await;
    let mut sink = channel
        .open_reply(&m.reply_target())
        .await
        .expect("open a reply");
    sink.send(ReplyEvent::Notice {
        text: "a notice".into(),
    })
    .await
    .expect("a notice");
    until("the notice", || {
        (platform.visible(9003).len() == 2).then_some(())
    })
    .await;

    // 5. Shutdown ends the listener cleanly.
    stop.cancel();
    let ended = tokio::time::timeout(WAIT, listener)
        .await
        .expect("conformance: the listener did not stop at shutdown")
        .expect("the listener panicked");
    assert!(
        ended.is_ok(),
        "conformance: shutdown is not an error: {ended:?}"
    );
}
