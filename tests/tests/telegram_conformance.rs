//! The channel conformance suite of `channels/core`, run against the
//! Telegram adapter talking to the fake Bot API.

use std::sync::Arc;

use async_trait::async_trait;
use switchboard_channel::chunk::{self, Measure};
use switchboard_channel::conformance::{self, Platform};
use switchboard_telegram::{TelegramChannel, TelegramSettings};
use switchboard_tests::fake_telegram::{FakeTelegram, TOKEN};

struct Fake(FakeTelegram);

#[async_trait]
impl Platform for Fake {
    async fn send_dm(&self, user: u64, text: &str) {
        self.0.dm(user as i64, "Suite", text);
    }
    fn visible(&self, user: u64) -> Vec<String> {
        self.0
            .chat(user as i64)
            .into_iter()
            .map(|m| m.text)
            .collect()
    }
    fn limit(&self) -> usize {
        4096
    }
    fn measure(&self) -> Measure {
        chunk::utf16
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_telegram_adapter_conforms() {
    let fake = FakeTelegram::start().await;
    let mut settings = TelegramSettings::new("conformance", TOKEN);
    settings.api_url = Some(fake.url());
    settings.poll_timeout = std::time::Duration::from_secs(1);
    let channel = Arc::new(TelegramChannel::new(settings).unwrap());
    conformance::run(channel, &Fake(fake)).await;
}

/// An update is confirmed to Telegram (the next poll's offset) only after
/// the gateway said it is stored, so a crash in between cannot lose it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_confirmed_only_after_the_gateway_stored_them() {
    use switchboard_channel::{Channel, ChannelContext, Delivery};
    let fake = FakeTelegram::start().await;
    let mut settings = TelegramSettings::new("confirm", TOKEN);
    settings.api_url = Some(fake.url());
    settings.poll_timeout = std::time::Duration::from_secs(1);
    let channel = Arc::new(TelegramChannel::new(settings).unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Delivery>(4);
    let stop = tokio_util::sync::CancellationToken::new();
    let listener = {
        let channel = channel.clone();
        let ctx = ChannelContext::new(tx, stop.clone());
        tokio::spawn(async move { channel.run(ctx).await })
    };
    fake.dm(77, "Ann", "keep me");
    let delivery = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.inbound.text, "keep me");
    // Not stored yet: whatever polls happen, none confirms the update.
    let polls_before = fake.calls_of("getUpdates").len();
    let confirmed = |fake: &FakeTelegram| {
        fake.calls_of("getUpdates")
            .iter()
            .any(|c| c.params["offset"].as_i64().is_some_and(|o| o > 1))
    };
    // A poller that confirmed early would poll again at once (polls last
    // 1 s here); give it 3 s to do what it must not.
    let early = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        fake.wait(
            std::time::Duration::from_secs(30),
            "an early confirmation",
            |f| confirmed(f).then_some(()),
        ),
    )
    .await;
    assert!(
        early.is_err(),
        "the update was confirmed before it was stored"
    );
    delivery.stored.send(Ok(())).unwrap();
    fake.wait(
        std::time::Duration::from_secs(20),
        "a confirming poll",
        |f| confirmed(f).then_some(()),
    )
    .await;
    assert!(fake.calls_of("getUpdates").len() > polls_before);
    stop.cancel();
    listener.await.unwrap().unwrap();
}
