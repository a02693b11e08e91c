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
