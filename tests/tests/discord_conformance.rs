//! The channel conformance suite of `channels/core`, run against the
//! Discord adapter talking to the fake Discord (REST and gateway).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_channel::chunk::{self, Measure};
use switchboard_channel::conformance::{self, Platform};
use switchboard_discord::{DiscordChannel, DiscordSettings};
use switchboard_tests::fake_discord::{FakeDiscord, TOKEN, dm_channel, texts};

struct Fake(FakeDiscord);

#[async_trait]
impl Platform for Fake {
    async fn send_dm(&self, user: u64, text: &str) {
        // Discord delivers over the gateway only to a connected bot.
        self.0
            .wait(Duration::from_secs(20), "the gateway connection", |f| {
                f.connected().then_some(())
            })
            .await;
        self.0.dm(user, text);
    }
    fn visible(&self, user: u64) -> Vec<String> {
        texts(&self.0.shown(&dm_channel(user)))
    }
    fn limit(&self) -> usize {
        2000
    }
    fn measure(&self) -> Measure {
        chunk::chars
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discord_adapter_conforms() {
    let fake = FakeDiscord::start(Duration::from_secs(5)).await;
    let mut settings = DiscordSettings::new("conformance", TOKEN);
    settings.api_url = Some(fake.url());
    let channel = Arc::new(DiscordChannel::new(settings).unwrap());
    conformance::run(channel, &Fake(fake)).await;
}

/// Discord never sends an event twice, so a message the gateway failed to
/// store is offered again rather than dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_gateway_could_not_store_is_offered_again() {
    use switchboard_channel::{Channel, ChannelContext, Delivery};
    let fake = FakeDiscord::start(Duration::from_secs(5)).await;
    let mut settings = DiscordSettings::new("retry", TOKEN);
    settings.api_url = Some(fake.url());
    let channel = Arc::new(DiscordChannel::new(settings).unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Delivery>(4);
    let stop = tokio_util::sync::CancellationToken::new();
    let ctx = ChannelContext::new(tx, stop.clone());
    let listener = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.run(ctx).await })
    };
    fake.wait(Duration::from_secs(20), "the gateway connection", |f| {
        f.connected().then_some(())
    })
    .await;
    let id = fake.dm(91, "keep me");
    let next = async |rx: &mut tokio::sync::mpsc::Receiver<Delivery>| {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a delivery")
            .expect("the listener is running")
    };
    let first = next(&mut rx).await;
    assert_eq!(first.inbound.message_id, id);
    first.stored.send(Err("the disk is full".into())).unwrap();
    let again = next(&mut rx).await;
    assert_eq!(
        again.inbound.message_id, id,
        "the same message, offered again"
    );
    again.stored.send(Ok(())).unwrap();
    stop.cancel();
    listener.await.unwrap().unwrap();
}
