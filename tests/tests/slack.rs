//! The Slack channel through the real binary against a fake Slack (Web API
//! methods as JSON over HTTP and a Socket Mode WebSocket): pairing then a
//! streamed answer with the working reaction, channel mentions answered in
//! their thread, redelivered events answered once, `disconnect` envelopes
//! and dropped sockets followed by a reconnect with nothing lost,
//! `ratelimited` waited out, slash and text commands, and the Events API
//! with its signatures checked.

use std::time::Duration;

use serde_json::Value;
use switchboard_tests::fake_openai::{Behavior, FakeOpenAi, echo_answer};
use switchboard_tests::fake_slack::{
    APP_TOKEN, BOT_TOKEN, BOT_USER, CHANNEL, FakeSlack, OTHER_CHANNEL, SIGNING_SECRET, Shown,
    dm_channel, events_api_body, sign, texts, timestamp_now,
};
use switchboard_tests::gateway::{Gateway, config, free_port};

const WAIT: Duration = Duration::from_secs(20);

fn slack(api: &str, extra: &str) -> String {
    format!(
        r#"
[channels.slack.accounts.main]
bot_token = "{BOT_TOKEN}"
app_token = "{APP_TOKEN}"
api_url = "{api}"
edit_interval_ms = 200
{extra}
"#
    )
}

async fn start(extra: &str) -> (FakeOpenAi, FakeSlack, Gateway, tempfile::TempDir) {
    let model = FakeOpenAi::start().await;
    let sl = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        &config(free_port(), &model.base_url(), &slack(&sl.api_url(), extra)),
    )
    .await;
    sl.wait(WAIT, "the Socket Mode connection", |s| {
        s.connected().then_some(())
    })
    .await;
    (model, sl, gw, dir)
}

/// The conversation's bot messages once the last one reads `text`.
async fn answered(sl: &FakeSlack, channel: &str, text: &str) -> Vec<Shown> {
    sl.wait(WAIT, &format!("`{text}` in {channel}"), |s| {
        let msgs = s.shown(channel);
        msgs.last()
            .is_some_and(|m| m.visible() == text)
            .then_some(msgs)
    })
    .await
}

/// `/api/status`'s view of the account once `check` holds.
async fn status_until(gw: &Gateway, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    gw.component_until("channel:slack/main", what, check).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_pairs_then_gets_a_streamed_answer_in_mrkdwn() {
    let (model, sl, gw, _dir) = start("").await;
    let dm = dm_channel(42);
    sl.dm(42, "hello there");
    let code_msg = sl
        .wait(WAIT, "a pairing code", |s| s.shown(&dm).first().cloned())
        .await;
    assert!(model.seen().is_empty(), "a stranger reached the model");
    gw.approve_pairing("slack", &code_msg.visible());
    sl.wait(WAIT, "the approval notice", |s| {
        (s.shown(&dm).len() == 2).then_some(())
    })
    .await;

    model.set(Behavior::Drip(40));
    // Slack escapes `&`, `<` and `>` in what users write.
    let asked = sl.dm(42, "please say **this** loudly &amp; tell a story");
    let question = "please say **this** loudly & tell a story";
    let msgs = answered(
        &sl,
        &dm,
        &echo_answer("please say *this* loudly & tell a story"),
    )
    .await;
    assert_eq!(
        switchboard_tests::fake_openai::said(
            &model.seen().last().unwrap().messages().last().unwrap().1
        ),
        question,
        "the question reached the model decoded"
    );
    let answer = msgs.last().unwrap();
    assert_eq!(msgs.len(), 3, "one message per answer: {msgs:#?}");
    assert!(answer.edits >= 2, "not streamed by updates: {answer:?}");
    assert!(
        answer.text.contains("&amp;"),
        "`&` must go to Slack escaped: {}",
        answer.text
    );
    assert_eq!(answer.thread_ts, None, "a DM is answered in the DM");
    let updates: Vec<_> = sl.calls_to("chat.update").iter().map(|c| c.at).collect();
    for pair in updates.windows(2).take(updates.len().saturating_sub(2)) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(180),
            "updates too close"
        );
    }
    // The working reaction came and went; the done one stays.
    sl.wait(WAIT, "the done reaction", |s| {
        s.reactions_on(&dm, &asked)
            .contains("white_check_mark")
            .then_some(())
    })
    .await;
    let on_question: Vec<_> = sl
        .reactions()
        .into_iter()
        .filter(|r| r.ts == asked)
        .map(|r| (r.name, r.added))
        .collect();
    assert_eq!(
        on_question,
        [
            ("eyes".to_string(), true),
            ("eyes".to_string(), false),
            ("white_check_mark".to_string(), true)
        ]
    );
    // Its own posts came back as events and were not answered.
    assert_eq!(model.seen().len(), 1, "{:?}", model.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_mention_is_answered_in_its_thread() {
    let (model, sl, _gw, _dir) = start(&format!(
        "channels = [\"{CHANNEL}\"]\nmention_patterns = [\"assistant\"]"
    ))
    .await;
    sl.channel_message(7, OTHER_CHANNEL, &format!("<@{BOT_USER}> anyone?"), None);
    sl.channel_message(7, CHANNEL, "just chatting among ourselves", None);
    let asked = sl.channel_message(7, CHANNEL, &format!("<@{BOT_USER}> what is 2+2?"), None);
    let msgs = answered(&sl, CHANNEL, &echo_answer("what is 2+2?")).await;
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    assert_eq!(
        msgs[0].thread_ts.as_deref(),
        Some(asked.as_str()),
        "answered in the message's thread"
    );
    assert!(
        sl.shown(OTHER_CHANNEL).is_empty(),
        "a channel not listed was answered"
    );
    // `message` and `app_mention` came for the one message: one answer.
    assert_eq!(model.seen().len(), 1, "{:?}", model.seen());
    assert!(
        !model
            .seen()
            .iter()
            .any(|r| r.body.to_string().contains(BOT_USER)),
        "the bot's mention reached the model"
    );

    // A reply in the thread needs no new mention and continues its session.
    sl.channel_message(8, CHANNEL, "and times three?", Some(&asked));
    let msgs = answered(&sl, CHANNEL, &echo_answer("and times three?")).await;
    assert_eq!(msgs[1].thread_ts.as_deref(), Some(asked.as_str()));
    let history = model.seen().last().unwrap().body.to_string();
    assert!(
        history.contains("what is 2+2?"),
        "the thread lost its history: {history}"
    );

    // A mention pattern counts as a mention; a new thread is a new session.
    let other = sl.channel_message(9, CHANNEL, "Assistant, what is the time?", None);
    let msgs = answered(&sl, CHANNEL, &echo_answer("Assistant, what is the time?")).await;
    assert_eq!(msgs[2].thread_ts.as_deref(), Some(other.as_str()));
    let last = model.seen().last().unwrap().body.to_string();
    assert!(!last.contains("2+2"), "threads share a session: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_is_answered_once() {
    let (model, sl, _gw, _dir) = start("dm_policy = \"open\"").await;
    let dm = dm_channel(30);
    let ts = sl.dm(30, "only once please");
    answered(&sl, &dm, &echo_answer("only once please")).await;
    // Slack thinks the delivery failed and sends the event again.
    let event = FakeSlack::dm_event(30, "only once please", &ts);
    sl.redeliver("Ev0REDELIVERED", event.clone());
    sl.redeliver("Ev0REDELIVERED", event);
    sl.wait(WAIT, "the redeliveries acknowledged", |s| {
        (s.unacked() == 0).then_some(())
    })
    .await;
    // A later message shows the redeliveries were handled before it.
    sl.dm(30, "next");
    answered(&sl, &dm, &echo_answer("next")).await;
    assert_eq!(
        texts(&sl.shown(&dm)),
        [echo_answer("only once please"), echo_answer("next")]
    );
    assert_eq!(model.seen().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_or_a_dropped_socket_loses_nothing() {
    let (model, sl, gw, _dir) = start("dm_policy = \"open\"").await;
    model.set(Behavior::Drip(20));
    let dm = dm_channel(50);
    sl.dm(50, "first");
    answered(&sl, &dm, &echo_answer("first")).await;

    // Slack asks for a reconnect; messages come meanwhile.
    sl.disconnect("refresh_requested");
    sl.dm(50, "second");
    sl.dm(50, "third");
    answered(&sl, &dm, &echo_answer("third")).await;
    assert!(sl.connections() >= 2, "no reconnect");

    // The socket drops without a word.
    sl.wait(WAIT, "the new connection", |s| s.connected().then_some(()))
        .await;
    sl.drop_connection();
    sl.dm(50, "fourth");
    answered(&sl, &dm, &echo_answer("fourth")).await;
    assert_eq!(
        texts(&sl.shown(&dm)),
        [
            echo_answer("first"),
            echo_answer("second"),
            echo_answer("third"),
            echo_answer("fourth")
        ],
        "each message answered once, in order"
    );
    assert!(sl.connections() >= 3);
    assert_eq!(model.seen().len(), 4);
    let c = status_until(&gw, "connected", |c| {
        c["connection"]["state"] == "connected"
    })
    .await;
    assert!(c["connection"]["last_event_ms"].as_i64().is_some(), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimited_is_waited_out_and_the_answer_posted_once() {
    let (_model, sl, _gw, _dir) = start("dm_policy = \"open\"").await;
    let dm = dm_channel(70);
    sl.rate_limit_next("chat.postMessage", 1);
    sl.dm(70, "slow down");
    let msgs = answered(&sl, &dm, &echo_answer("slow down")).await;
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    let posts = sl.calls_to("chat.postMessage");
    assert_eq!(posts.len(), 2, "one refused, one accepted");
    assert!(
        posts[1].at - posts[0].at >= Duration::from_millis(950),
        "retried after {:?}, before the 1 s Slack asked for",
        posts[1].at - posts[0].at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_and_text_commands_work() {
    let (model, sl, _gw, _dir) =
        start("dm_policy = \"open\"\nslash_command = \"/assistant\"").await;
    let dm = dm_channel(80);
    sl.dm(80, "remember me");
    answered(&sl, &dm, &echo_answer("remember me")).await;
    sl.slash(80, &dm, "/assistant", "status");
    let msgs = sl
        .wait(WAIT, "the status answer", |s| {
            let m = s.shown(&dm);
            (m.len() == 2).then_some(m)
        })
        .await;
    assert!(
        msgs[1].visible().contains("agent:main:slack:dm:U80"),
        "{}",
        msgs[1].visible()
    );
    // Another app's command is not ours.
    sl.slash(80, &dm, "/other", "status");
    // `/new` as text starts over.
    sl.dm(80, "/new");
    sl.wait(WAIT, "the /new notice", |s| {
        (s.shown(&dm).len() == 3).then_some(())
    })
    .await;
    sl.dm(80, "who am I?");
    answered(&sl, &dm, &echo_answer("who am I?")).await;
    let last = model.seen().last().unwrap().body.to_string();
    assert!(!last.contains("remember me"), "/new kept the history");
    assert_eq!(sl.shown(&dm).len(), 4, "{:#?}", sl.shown(&dm));
    sl.wait(WAIT, "every envelope acknowledged", |s| {
        (s.unacked() == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_app_token_is_diagnosed() {
    let model = FakeOpenAi::start().await;
    let sl = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config_text = slack(&sl.api_url(), "").replace(
        APP_TOKEN,
        "xapp-1-A0FAKEAPP01-3333333333-revokedtokenrevokedtoken",
    );
    let gw = Gateway::start_live(
        dir.path(),
        &config(free_port(), &model.base_url(), &config_text),
    )
    .await;
    let c = status_until(&gw, "the token diagnosis", |c| {
        c["detail"]
            .as_str()
            .is_some_and(|d| d.contains("app-level token"))
    })
    .await;
    let detail = c["detail"].as_str().unwrap();
    assert!(detail.contains("invalid_auth"), "{c}");
    assert!(!detail.contains("revokedtoken"), "the token leaked: {c}");
}

/// Post `body` to the account's Events API URL as Slack would, signed with
/// `secret` at `timestamp`.
async fn post_event(
    gw: &Gateway,
    body: &str,
    secret: &str,
    timestamp: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let mut req = gw
        .http
        .post(format!("{}/hooks/slack/main", gw.url))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", timestamp)
        .header("x-slack-signature", sign(secret, timestamp, body))
        .body(body.to_string());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_api_checks_signatures_and_answers_once() {
    let model = FakeOpenAi::start().await;
    let sl = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let account = format!(
        r#"
[channels.slack.accounts.main]
bot_token = "{BOT_TOKEN}"
signing_secret = "{SIGNING_SECRET}"
api_url = "{}"
dm_policy = "open"
"#,
        sl.api_url()
    );
    let gw = Gateway::start(
        dir.path(),
        &config(free_port(), &model.base_url(), &account),
    )
    .await;
    let now = timestamp_now();

    // Slack checks the Request URL first.
    let challenge = r#"{"token":"unused","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let (status, body) = post_event(&gw, challenge, SIGNING_SECRET, &now, &[]).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    let event = FakeSlack::dm_event(90, "hello over http", "1763700000.000900");
    let body = events_api_body("Ev0HTTP0001", event);
    // A wrong secret, an old timestamp, no signature: refused, nothing kept.
    let (status, _) = post_event(&gw, &body, "not-the-secret-0000000000000000", &now, &[]).await;
    assert_eq!(status, 401);
    let old = (now.parse::<u64>().unwrap() - 600).to_string();
    let (status, _) = post_event(&gw, &body, SIGNING_SECRET, &old, &[]).await;
    assert_eq!(status, 401, "a replayed old request was taken");
    let r = gw
        .http
        .post(format!("{}/hooks/slack/main", gw.url))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let (status, text) = post_event(&gw, &body, SIGNING_SECRET, &now, &[]).await;
    assert_eq!(status, 200, "{text}");
    let dm = dm_channel(90);
    answered(&sl, &dm, &echo_answer("hello over http")).await;
    // Slack retries when it thinks we did not answer: answered once.
    let (status, _) = post_event(
        &gw,
        &body,
        SIGNING_SECRET,
        &now,
        &[
            ("x-slack-retry-num", "1"),
            ("x-slack-retry-reason", "http_timeout"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let next = events_api_body(
        "Ev0HTTP0002",
        FakeSlack::dm_event(90, "and again", "1763700000.000901"),
    );
    let (status, _) = post_event(&gw, &next, SIGNING_SECRET, &now, &[]).await;
    assert_eq!(status, 200);
    answered(&sl, &dm, &echo_answer("and again")).await;
    assert_eq!(
        texts(&sl.shown(&dm)),
        [echo_answer("hello over http"), echo_answer("and again")]
    );
    assert_eq!(model.seen().len(), 2, "the bad requests reached the model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_file_is_fetched_with_the_bot_token() {
    let (model, sl, _gw, _dir) = start(
        "dm_policy = \"open\"\n\n[agents.main.tools]\nprofile = \"coding\"\n\n[agents.main.approvals]\nmode = \"never\"",
    )
    .await;
    let dm = dm_channel(48);
    sl.dm_file(48, "my list", "notes.txt", b"milk, eggs, bread\n");
    sl.wait(WAIT, "the answer to the file", |s| {
        s.shown(&dm)
            .first()
            .is_some_and(|m| m.visible().starts_with("echo: my list"))
            .then_some(())
    })
    .await;
    let said = model.seen()[0].messages().last().unwrap().1.clone();
    assert!(
        said.contains(
            "[attachment: notes.txt, text/plain, 1 KB, saved at /workspace/inbox/notes.txt]"
        ),
        "{said}"
    );
    let downloads = sl.downloads();
    assert_eq!(downloads.len(), 1, "{downloads:?}");
    assert!(downloads[0].1, "fetched without the bot token");
}

/// Whether every id in `acked` is there once.
fn acked_once(acked: &[String]) -> bool {
    let unique: std::collections::HashSet<&String> = acked.iter().collect();
    unique.len() == acked.len()
}

/// Envelopes that come faster than the gateway stores them wait in the
/// adapter's bounded queue, then unread on Slack's side of the socket:
/// each is handed over once and in order, and acknowledged once, with
/// none dropped and no reconnect. (The queue holds two; storing takes an
/// acknowledgement's round trip each.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_faster_than_storage_is_held_back_not_dropped() {
    use std::sync::Arc;
    use switchboard_channel::{Channel, ChannelContext, Delivery};
    use switchboard_slack::{SlackChannel, SlackSettings};
    const BURST: u64 = 60;
    let sl = FakeSlack::start().await;
    let mut settings = SlackSettings::new("burst", BOT_TOKEN);
    settings.app_token = Some(APP_TOKEN.into());
    settings.api_url = Some(sl.api_url());
    settings.envelope_queue = 2;
    let channel = Arc::new(SlackChannel::new(settings).unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Delivery>(1);
    let stop = tokio_util::sync::CancellationToken::new();
    let ctx = ChannelContext::new(tx, stop.clone());
    let listener = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.run(ctx).await })
    };
    sl.wait(WAIT, "the Socket Mode connection", |s| {
        s.connected().then_some(())
    })
    .await;
    let sent: Vec<(u64, String)> = (0..BURST)
        .map(|i| (100 + i, sl.dm(100 + i, &format!("burst {i}"))))
        .collect();
    for (n, ts) in &sent {
        let d = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("the message of user {n} was not handed over"))
            .expect("the listener is running");
        assert_eq!(
            d.inbound.message_id,
            format!("{}:{ts}", dm_channel(*n)),
            "lost or out of order"
        );
        // Slow storage: the next is taken only once this one's
        // acknowledgement reached Slack.
        let before = sl.acked().len();
        d.stored.send(Ok(())).unwrap();
        sl.wait(WAIT, "the acknowledgement", |s| {
            (s.acked().len() > before).then_some(())
        })
        .await;
    }
    sl.wait(WAIT, "every envelope acknowledged", |s| {
        (s.unacked() == 0).then_some(())
    })
    .await;
    let acked = sl.acked();
    assert_eq!(acked.len() as u64, BURST, "{acked:?}");
    assert!(acked_once(&acked), "acknowledged twice: {acked:?}");
    assert!(rx.try_recv().is_err(), "a message was handed over twice");
    assert_eq!(sl.connections(), 1, "the connection was given up");
    stop.cancel();
    listener.await.unwrap().unwrap();
}

/// More messages at once than the Slack adapter's queue holds (64), from
/// as many people, through the binary: every envelope is acknowledged
/// once and every message answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_messages_is_all_acknowledged_and_answered_once() {
    const PEOPLE: u64 = 80;
    let (model, sl, _gw, _dir) = start("dm_policy = \"open\"").await;
    let asked = |n: u64| format!("burst message {n}");
    for n in 0..PEOPLE {
        sl.dm(1000 + n, &asked(n));
    }
    sl.wait(Duration::from_secs(120), "every message answered", |s| {
        (0..PEOPLE)
            .all(|n| texts(&s.shown(&dm_channel(1000 + n))) == [echo_answer(&asked(n))])
            .then_some(())
    })
    .await;
    // Anything still owed would have been answered before this.
    sl.dm(999, "sentinel");
    answered(&sl, &dm_channel(999), &echo_answer("sentinel")).await;
    for n in 0..PEOPLE {
        assert_eq!(
            texts(&sl.shown(&dm_channel(1000 + n))),
            [echo_answer(&asked(n))],
            "person {n} was not answered exactly once"
        );
    }
    assert_eq!(
        model.seen().len() as u64,
        PEOPLE + 1,
        "a message reached the model twice or not at all"
    );
    sl.wait(WAIT, "every envelope acknowledged", |s| {
        (s.unacked() == 0).then_some(())
    })
    .await;
    let acked = sl.acked();
    assert!(acked_once(&acked), "acknowledged twice: {acked:?}");
}
