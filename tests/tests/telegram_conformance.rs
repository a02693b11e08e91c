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
