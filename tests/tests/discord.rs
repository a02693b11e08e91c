//! The Discord channel through the real binary against a fake Discord
//! (REST under `/api/v10` and a gateway WebSocket speaking the real
//! opcodes): pairing then a streamed answer, guild mention gating and
//! threads, a dropped socket resumed at the resume URL with the missed
//! messages answered once, a gateway killed (kill -9) and restarted that
//! resumes its session and answers what was sent while it was down once,
//! a restart after the session expired that catches up through the
//! message history and says messages may have been missed, a zombie
//! connection detected by missing heartbeat ACKs, 429 `retry_after`,
//! slash commands, disallowed intents. One test drives the adapter
//! directly: a gateway that stops taking messages holds the socket back
//! (the bounded event queue) without losing the connection or a message.

use std::time::Duration;

use serde_json::Value;
use switchboard_tests::fake_discord::{
    BOT_ID, CHANNEL_ID, FakeDiscord, GUILD_ID, Handshake, OTHER_CHANNEL_ID, OTHER_GUILD_ID, Shown,
    THREAD_ID, TOKEN, dm_channel,
};
use switchboard_tests::fake_openai::{Behavior, FakeOpenAi, echo_answer};
use switchboard_tests::gateway::{Gateway, config, free_port};

const WAIT: Duration = Duration::from_secs(20);

fn discord(api: &str, extra: &str) -> String {
    format!(
        r#"
[channels.discord.accounts.main]
token = "{TOKEN}"
api_url = "{api}"
edit_interval_ms = 100
{extra}
"#
    )
}

async fn start_with(
    heartbeat: Duration,
    extra: &str,
) -> (FakeOpenAi, FakeDiscord, Gateway, tempfile::TempDir) {
    let model = FakeOpenAi::start().await;
    let dc = FakeDiscord::start(heartbeat).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        &config(free_port(), &model.base_url(), &discord(&dc.url(), extra)),
    )
    .await;
    // Discord delivers to connected bots only.
    dc.wait(WAIT, "the gateway connection", |d| {
        d.connected().then_some(())
    })
    .await;
    (model, dc, gw, dir)
}

async fn start(extra: &str) -> (FakeOpenAi, FakeDiscord, Gateway, tempfile::TempDir) {
    start_with(Duration::from_secs(5), extra).await
}

/// The channel's messages once the last one reads `text`.
async fn answered(dc: &FakeDiscord, channel: &str, text: &str) -> Vec<Shown> {
    dc.wait(WAIT, &format!("`{text}` in channel {channel}"), |d| {
        let msgs = d.shown(channel);
        msgs.last()
            .is_some_and(|m| m.content == text)
            .then_some(msgs)
    })
    .await
}

/// Wait until session `key`'s transcript holds the answer `answer`: the
/// turn is stored and its message done, so a crash now loses nothing of
/// it. The gateway has no change notification for transcripts, so this
/// asks again every 50 ms.
async fn stored(gw: &Gateway, key: &str, answer: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(t) = gw.transcript(key).await
            && t.iter()
                .any(|(role, text)| role == "assistant" && text == answer)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{answer}` was never stored in {key}:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kill the gateway (kill -9) and wait until the fake saw its socket go.
async fn crash(gw: &mut Gateway, dc: &FakeDiscord) {
    gw.kill();
    dc.wait(WAIT, "the killed gateway's socket to close", |d| {
        (!d.connected()).then_some(())
    })
    .await;
}

fn texts(dc: &FakeDiscord, channel: &str) -> Vec<String> {
    dc.shown(channel).into_iter().map(|m| m.content).collect()
}

/// `/api/status`'s view of the account once `check` holds.
async fn status_until(gw: &Gateway, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    gw.component_until("channel:discord/main", what, check)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_pairs_then_gets_a_streamed_answer_built_from_edits() {
    let (model, dc, gw, _dir) = start("").await;
    model.set(Behavior::Drip(40));
    let commands = dc.wait(WAIT, "slash commands", |d| d.commands()).await;
    let names: Vec<&str> = commands
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["new", "reset", "status"]);

    let dm = dm_channel(42);
    dc.dm(42, "hello there");
    let code_msg = dc
        .wait(WAIT, "a pairing code", |d| d.shown(&dm).first().cloned())
        .await;
    assert!(model.seen().is_empty(), "a stranger reached the model");
    gw.approve_pairing("discord", &code_msg.content);
    dc.wait(WAIT, "the approval notice", |d| {
        (d.shown(&dm).len() == 2).then_some(())
    })
    .await;

    let question = "please tell me a story about a lighthouse keeper";
    dc.dm(42, question);
    let msgs = answered(&dc, &dm, &echo_answer(question)).await;
    let answer = msgs.last().unwrap();
    assert!(answer.edits >= 2, "not streamed by edits: {answer:?}");
    assert_eq!(msgs.len(), 3, "one message per answer: {msgs:#?}");
    assert_eq!(
        answer.allowed_mentions["parse"],
        serde_json::json!([]),
        "an answer must not ping anyone"
    );
    assert!(
        !dc.calls_to(&format!("POST /channels/{dm}/typing"))
            .is_empty(),
        "no typing indicator"
    );
    let edits: Vec<_> = dc
        .calls_to(&format!("PATCH /channels/{dm}/messages/"))
        .iter()
        .map(|c| c.at)
        .collect();
    for pair in edits.windows(2).take(edits.len().saturating_sub(2)) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(90),
            "edits too close"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guild_messages_need_a_mention_and_threads_are_sessions() {
    let (model, dc, _gw, _dir) = start(&format!("guilds = [\"{GUILD_ID}\"]")).await;
    dc.guild_message(OTHER_GUILD_ID, OTHER_CHANNEL_ID, 7, "anyone?", true);
    dc.guild_message(
        GUILD_ID,
        CHANNEL_ID,
        7,
        "just chatting among ourselves",
        false,
    );
    let asked = dc.guild_message(GUILD_ID, CHANNEL_ID, 7, "what is 2+2?", true);
    let msgs = answered(&dc, CHANNEL_ID, &echo_answer("what is 2+2?")).await;
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    assert_eq!(msgs[0].reply_to.as_deref(), Some(asked.as_str()));
    assert!(
        dc.shown(OTHER_CHANNEL_ID).is_empty(),
        "a guild not listed was answered"
    );
    assert_eq!(model.seen().len(), 1, "{:?}", model.seen());

    // A thread is a session of its own, answered inside the thread.
    dc.guild_message(GUILD_ID, THREAD_ID, 8, "in the thread", true);
    answered(&dc, THREAD_ID, &echo_answer("in the thread")).await;
    assert_eq!(dc.shown(CHANNEL_ID).len(), 1);
    let last = model.seen().pop().unwrap().body.to_string();
    assert!(
        !last.contains("what is 2+2"),
        "the thread shares the channel's history: {last}"
    );
    // The bot's mention is taken out of the question.
    assert!(
        !model
            .seen()
            .iter()
            .any(|r| r.body.to_string().contains(BOT_ID))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_is_resumed_and_what_was_missed_is_answered_once() {
    let (model, dc, gw, _dir) = start("dm_policy = \"open\"").await;
    model.set(Behavior::Drip(30));
    let dm = dm_channel(50);
    dc.dm(50, "first question of the conversation");
    // Drop the socket while the first answer is still streaming.
    dc.wait(WAIT, "the first answer streaming", |d| {
        d.shown(&dm).first().map(|_| ())
    })
    .await;
    dc.drop_connection();
    dc.dm(50, "second");
    dc.dm(50, "third");
    answered(&dc, &dm, &echo_answer("third")).await;
    let texts: Vec<String> = dc.shown(&dm).into_iter().map(|m| m.content).collect();
    assert_eq!(
        texts,
        [
            echo_answer("first question of the conversation"),
            echo_answer("second"),
            echo_answer("third")
        ]
    );
    let handshakes = dc.handshakes();
    assert!(
        matches!(&handshakes[..], [Handshake::Identify { path, intents }, Handshake::Resume { path: resume, seq }, ..]
            if path == "/gateway" && intents & (1 << 15) != 0 && resume == "/resume" && *seq > 0),
        "{handshakes:?}"
    );

    // Discord may deliver again what it delivered before: still answered
    // once.
    dc.replay_everything_on_resume();
    dc.request_reconnect();
    dc.wait(WAIT, "a second resume", |d| {
        (d.handshakes().len() >= 3).then_some(())
    })
    .await;
    dc.dm(50, "fourth");
    answered(&dc, &dm, &echo_answer("fourth")).await;
    assert_eq!(dc.shown(&dm).len(), 4, "{:#?}", dc.shown(&dm));
    let c = status_until(&gw, "connected", |c| {
        c["connection"]["state"] == "connected"
    })
    .await;
    assert!(c["connection"]["last_event_ms"].as_i64().is_some(), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_conversation_resumes_and_answers_what_came_meanwhile_once() {
    let (model, dc, mut gw, _dir) = start("dm_policy = \"open\"").await;
    let dm = dm_channel(51);
    let first = "first, before the crash";
    dc.dm(51, first);
    answered(&dc, &dm, &echo_answer(first)).await;
    stored(&gw, "agent:main:discord:dm:51", &echo_answer(first)).await;

    crash(&mut gw, &dc).await;
    dc.dm(51, "second, while it was down");
    dc.dm(51, "third, while it was down");
    gw.restart().await;
    answered(&dc, &dm, &echo_answer("third, while it was down")).await;
    // A sentinel: a second answer to anything before it would come first.
    dc.dm(51, "sentinel");
    answered(&dc, &dm, &echo_answer("sentinel")).await;
    assert_eq!(
        texts(&dc, &dm),
        [
            echo_answer(first),
            echo_answer("second, while it was down"),
            echo_answer("third, while it was down"),
            echo_answer("sentinel"),
        ],
        "each message answered once"
    );
    assert_eq!(
        model.seen().len(),
        4,
        "the model was asked once per message"
    );
    // The restarted gateway resumed the session of the killed one, at its
    // resume URL, rather than starting a new one.
    let handshakes = dc.handshakes();
    assert!(
        matches!(&handshakes[..], [Handshake::Identify { .. }, Handshake::Resume { path, seq }]
            if path == "/resume" && *seq > 0),
        "{handshakes:?}"
    );
    let c = status_until(&gw, "connected", |c| {
        c["connection"]["state"] == "connected"
    })
    .await;
    assert!(c["connection"]["notice"].is_null(), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_session_expired_a_restart_catches_up_through_the_history_and_says_so() {
    let extra =
        format!("dm_policy = \"open\"\nguilds = [\"{GUILD_ID}\"]\nchannels = [\"{CHANNEL_ID}\"]");
    let (model, dc, mut gw, _dir) = start(&extra).await;
    let dm = dm_channel(52);
    let before_dm = dc.dm(52, "hello before");
    answered(&dc, &dm, &echo_answer("hello before")).await;
    dc.guild_message(GUILD_ID, CHANNEL_ID, 52, "channel before", true);
    answered(&dc, CHANNEL_ID, &echo_answer("channel before")).await;
    stored(
        &gw,
        "agent:main:discord:dm:52",
        &echo_answer("hello before"),
    )
    .await;
    let group = format!("agent:main:discord:group:{CHANNEL_ID}");
    stored(&gw, &group, &echo_answer("channel before")).await;

    crash(&mut gw, &dc).await;
    // Down longer than Discord keeps a session: what is sent now never
    // comes over the gateway, only through the history.
    dc.expire_session();
    dc.dm(52, "dm while down");
    dc.guild_message(GUILD_ID, CHANNEL_ID, 52, "channel while down", true);
    // Not mentioned: stored as context, not answered.
    dc.guild_message(GUILD_ID, CHANNEL_ID, 53, "chatter while down", false);
    gw.restart().await;
    answered(&dc, &dm, &echo_answer("dm while down")).await;
    answered(&dc, CHANNEL_ID, &echo_answer("channel while down")).await;
    let c = status_until(&gw, "the missed-messages notice", |c| {
        c["connection"]["notice"]
            .as_str()
            .is_some_and(|n| n.contains("may have been missed"))
    })
    .await;
    assert!(
        c["connection"]["notice"]
            .as_str()
            .unwrap()
            .contains("3 message(s) were caught up from the history of 2"),
        "{c}"
    );

    // Sentinels: a second answer to anything before them would come first.
    dc.dm(52, "dm sentinel");
    answered(&dc, &dm, &echo_answer("dm sentinel")).await;
    dc.guild_message(GUILD_ID, CHANNEL_ID, 52, "channel sentinel", true);
    answered(&dc, CHANNEL_ID, &echo_answer("channel sentinel")).await;
    assert_eq!(
        texts(&dc, &dm),
        [
            echo_answer("hello before"),
            echo_answer("dm while down"),
            echo_answer("dm sentinel"),
        ]
    );
    assert_eq!(
        texts(&dc, CHANNEL_ID),
        [
            echo_answer("channel before"),
            echo_answer("channel while down"),
            echo_answer("channel sentinel"),
        ]
    );
    assert_eq!(
        model.seen().len(),
        6,
        "the model was asked once per question"
    );
    // It tried to resume, was told the session is gone, started a new one
    // and read the history after the last message it had stored.
    let handshakes = dc.handshakes();
    assert!(
        matches!(&handshakes[..], [Handshake::Identify { .. }, Handshake::Resume { path, .. }, Handshake::Identify { path: again, .. }]
            if path == "/resume" && again == "/gateway"),
        "{handshakes:?}"
    );
    let reads = dc.calls_to(&format!("GET /channels/{dm}/messages"));
    assert!(
        reads
            .iter()
            .any(|c| c.query.contains(&format!("after={before_dm}"))),
        "{reads:#?}"
    );
    assert!(
        !dc.calls_to(&format!("GET /channels/{CHANNEL_ID}/messages"))
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_heartbeat_acks_is_replaced_and_resumed() {
    let (_model, dc, gw, _dir) =
        start_with(Duration::from_millis(300), "dm_policy = \"open\"").await;
    let dm = dm_channel(60);
    dc.dm(60, "before");
    answered(&dc, &dm, &echo_answer("before")).await;
    // The connection stays open but goes silent: no ACKs, no events.
    dc.stop_acks();
    dc.dm(60, "during the silence");
    answered(&dc, &dm, &echo_answer("during the silence")).await;
    assert_eq!(dc.shown(&dm).len(), 2);
    assert!(
        dc.handshakes()
            .iter()
            .any(|h| matches!(h, Handshake::Resume { path, .. } if path == "/resume")),
        "{:?}",
        dc.handshakes()
    );
    let c = status_until(&gw, "a watchdog restart", |c| {
        c["connection"]["watchdog_restarts"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert!(c["connection"]["last_event_ms"].as_i64().is_some(), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_and_the_answer_sent_once() {
    let (_model, dc, _gw, _dir) = start("dm_policy = \"open\"").await;
    let dm = dm_channel(70);
    let post = format!("POST /channels/{dm}/messages");
    dc.rate_limit_next(&post, 1.5);
    dc.dm(70, "slow down");
    let msgs = answered(&dc, &dm, &echo_answer("slow down")).await;
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    let posts = dc.calls_to(&post);
    assert_eq!(posts.len(), 2, "one refused, one accepted");
    assert!(
        posts[1].at - posts[0].at >= Duration::from_millis(1450),
        "retried after {:?}, before the 1.5 s Discord asked for",
        posts[1].at - posts[0].at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_are_answered_in_their_response() {
    let (_model, dc, _gw, _dir) = start("dm_policy = \"open\"").await;
    let dm = dm_channel(80);
    dc.dm(80, "remember me");
    answered(&dc, &dm, &echo_answer("remember me")).await;
    let id = dc.slash("status", 80, &dm, None);
    let msgs = dc
        .wait(WAIT, "the status answer", |d| {
            let m = d.shown(&dm);
            (m.len() == 2 && !m[1].content.is_empty()).then_some(m)
        })
        .await;
    assert_eq!(dc.interaction_answers(&id), [5], "deferred first");
    assert!(
        msgs[1].content.contains("agent:main:discord:dm:80"),
        "{}",
        msgs[1].content
    );
    assert!(
        !dc.calls_to("PATCH /webhooks/").is_empty(),
        "the answer edits the command's response"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_message_content_intent_is_diagnosed() {
    let model = FakeOpenAi::start().await;
    let dc = FakeDiscord::start(Duration::from_secs(5)).await;
    dc.disallow_message_content(true);
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start_live(
        dir.path(),
        &config(free_port(), &model.base_url(), &discord(&dc.url(), "")),
    )
    .await;
    let c = status_until(&gw, "the intent diagnosis", |c| {
        c["detail"]
            .as_str()
            .is_some_and(|d| d.contains("MESSAGE CONTENT INTENT"))
    })
    .await;
    assert!(c["detail"].as_str().unwrap().contains("4014"), "{c}");
    let (_, ready) = gw.get("/readyz").await;
    assert!(
        ready.to_string().contains("channel:discord/main"),
        "{ready}"
    );
}

/// The event queue is bounded: while the gateway takes no messages, the
/// adapter stops reading the socket once its queue is full, yet keeps
/// the connection alive (heartbeats go on, and the ACKs it has not read
/// do not make it a zombie), and hands everything over in order once the
/// gateway takes messages again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_takes_no_messages_holds_the_socket_back_without_losing_any() {
    use std::sync::Arc;
    use switchboard_channel::{Channel, ChannelContext, Delivery};
    use switchboard_discord::{DiscordChannel, DiscordSettings, EVENT_QUEUE};

    let dc = FakeDiscord::start(Duration::from_millis(200)).await;
    let mut settings = DiscordSettings::new("held", TOKEN);
    settings.api_url = Some(dc.url());
    let channel = Arc::new(DiscordChannel::new(settings).unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Delivery>(1);
    let stop = tokio_util::sync::CancellationToken::new();
    let ctx = ChannelContext::new(tx, stop.clone());
    let status = ctx.status.clone();
    let listener = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.run(ctx).await })
    };
    dc.wait(WAIT, "the gateway connection", |d| {
        d.connected().then_some(())
    })
    .await;
    // More than the queue holds; none is taken yet.
    let ids: Vec<String> = (0..EVENT_QUEUE + 20)
        .map(|i| dc.dm(95, &format!("message {i}")))
        .collect();
    let beats = dc.heartbeats();
    dc.wait(WAIT, "heartbeats while held back", |d| {
        (d.heartbeats() >= beats + 5).then_some(())
    })
    .await;
    assert_eq!(dc.handshakes().len(), 1, "{:?}", dc.handshakes());
    assert_eq!(status.snapshot().watchdog_restarts, 0);

    let mut got = Vec::new();
    while got.len() < ids.len() {
        let delivery = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("the next message")
            .expect("the listener is running");
        got.push(delivery.inbound.message_id.clone());
        delivery.stored.send(Ok(())).unwrap();
    }
    assert_eq!(got, ids, "every message, once, in order");
    assert_eq!(dc.handshakes().len(), 1, "{:?}", dc.handshakes());
    stop.cancel();
    listener.await.unwrap().unwrap();
}
