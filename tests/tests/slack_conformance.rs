//! The channel conformance suite of `channels/core`, run against the
//! Slack adapter talking to the fake Slack (Web API and Socket Mode).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_channel::chunk::{self, Measure};
use switchboard_channel::conformance::{self, Platform};
use switchboard_slack::{SlackChannel, SlackSettings};
use switchboard_tests::fake_slack::{APP_TOKEN, BOT_TOKEN, FakeSlack, dm_channel, texts, user};

struct Fake(FakeSlack);

#[async_trait]
impl Platform for Fake {
    async fn send_dm(&self, n: u64, text: &str) {
        self.0.dm(n, text);
    }
    fn visible(&self, n: u64) -> Vec<String> {
        texts(&self.0.shown(&dm_channel(n)))
    }
    fn limit(&self) -> usize {
        // What Slack asks a message to stay under.
        4000
    }
    fn measure(&self) -> Measure {
        chunk::chars
    }
    fn user_id(&self, n: u64) -> String {
        user(n)
    }
}

fn settings(fake: &FakeSlack, account: &str) -> SlackSettings {
    let mut s = SlackSettings::new(account, BOT_TOKEN);
    s.app_token = Some(APP_TOKEN.into());
    s.api_url = Some(fake.api_url());
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slack_adapter_conforms() {
    let fake = FakeSlack::start().await;
    let channel = Arc::new(SlackChannel::new(settings(&fake, "conformance")).unwrap());
    conformance::run(channel, &Fake(fake.clone())).await;
    // Every envelope was acknowledged, the bot's own echoes included.
    fake.wait(Duration::from_secs(5), "all envelopes acknowledged", |f| {
        (f.unacked() == 0).then_some(())
    })
    .await;
}
