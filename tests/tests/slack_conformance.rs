//! The channel conformance suite of `channels/core`, run against the
//! Slack adapter talking to the fake Slack (Web API and Socket Mode).

use async_trait::async_trait;
use std::sync::Arc;
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
    conformance::run(channel, &Fake(fake)).await;
}

/// An envelope is acknowledged only once the gateway stored its message:
/// one it could not store stays unacknowledged, Slack delivers it again,
/// and the second delivery is stored and acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_is_acknowledged_only_once_stored() {
    use std::time::Duration;
    use switchboard_channel::{Channel, ChannelContext, Delivery};
    let fake = FakeSlack::start().await;
    let channel = Arc::new(SlackChannel::new(settings(&fake, "acks")).unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Delivery>(4);
    let stop = tokio_util::sync::CancellationToken::new();
    let ctx = ChannelContext::new(tx, stop.clone());
    let listener = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.run(ctx).await })
    };
    let next = async |rx: &mut tokio::sync::mpsc::Receiver<Delivery>| {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a delivery")
            .expect("the listener is running")
    };
    let ts = fake.dm(91, "keep me");
    let first = next(&mut rx).await;
    assert_eq!(first.inbound.message_id, format!("{}:{ts}", dm_channel(91)));
    first.stored.send(Err("the disk is full".into())).unwrap();
    // Not acknowledged: the connection ends and Slack sends it again.
    let acked_before = fake.acked().len();
    fake.drop_connection();
    let again = next(&mut rx).await;
    assert_eq!(again.inbound.message_id, first.inbound.message_id);
    assert_eq!(
        fake.acked().len(),
        acked_before,
        "acknowledged before it was stored"
    );
    again.stored.send(Ok(())).unwrap();
    fake.wait(Duration::from_secs(20), "the acknowledgement", |f| {
        (f.unacked() == 0).then_some(())
    })
    .await;
    stop.cancel();
    listener.await.unwrap().unwrap();
}
