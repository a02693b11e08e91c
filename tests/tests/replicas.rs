//! Two gateways (the real binary) as replicas on one real PostgreSQL
//! database, with the fake Telegram Bot API, the fake Discord and the fake
//! model server: the work is shared and done once, and a replica killed
//! with SIGKILL in the middle of a streamed answer is taken over.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_tests::fake_discord::{self, FakeDiscord, dm_channel};
use switchboard_tests::fake_openai::{Behavior, FakeOpenAi, echo_answer};
use switchboard_tests::fake_telegram::{self, FakeTelegram};
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port};
use switchboard_tests::postgres::Postgres;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(60);
/// `cluster.lease_secs` of these replicas (the least allowed).
const LEASE_SECS: u64 = 3;
const PASSPHRASE: &str = "correct horse battery staple, replicated";
const ENV: [(&str, &str); 1] = [("SWITCHBOARD_PASSPHRASE", PASSPHRASE)];

/// A replica's config: the shared database, its id, and `extra`.
fn replica(model: &FakeOpenAi, url: &str, id: &str, extra: &str) -> String {
    config(
        free_port(),
        &model.base_url(),
        &format!(
            r#"
[store]
url = "{url}"
[store.encryption]
mode = "passphrase"
iterations = 600000

[cluster]
enabled = true
lease_secs = {LEASE_SECS}
replica_id = "{id}"
{extra}
"#
        ),
    )
}

fn channels(tg: &FakeTelegram, dc: &FakeDiscord) -> String {
    format!(
        r#"
[channels.telegram.accounts.main]
token = "{}"
api_url = "{}"
dm_policy = "open"
edit_interval_ms = 100
poll_timeout_secs = 1

[channels.discord.accounts.main]
token = "{}"
api_url = "{}"
dm_policy = "open"
edit_interval_ms = 100
"#,
        fake_telegram::TOKEN,
        tg.url(),
        fake_discord::TOKEN,
        dc.url()
    )
}

/// Ask `gw`'s `/api/status` every 100 ms until `check` finds what it
/// looks for (the cluster view changes with each heartbeat).
async fn status_until<T>(gw: &Gateway, what: &str, check: impl Fn(&Value) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, v) = gw.get("/api/status").await;
        if let Some(t) = check(&v) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Who holds lease `name`, as `status` shows it.
fn holder(status: &Value, name: &str) -> Option<String> {
    status["cluster"]["leases"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == name)?["holder"]
        .as_str()
        .map(str::to_string)
}

/// Start replicas `a` and `b` one after the other (the first makes the
/// keyring), and wait until each sees both.
async fn two(
    model: &FakeOpenAi,
    url: &str,
    extra: &str,
) -> (Gateway, Gateway, [tempfile::TempDir; 2]) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Gateway::start_with_env(dirs[0].path(), &replica(model, url, "a", extra), &ENV).await;
    let b = Gateway::start_with_env(dirs[1].path(), &replica(model, url, "b", extra), &ENV).await;
    for gw in [&a, &b] {
        status_until(gw, "both replicas in status", |v| {
            let ids: Vec<&str> = v["cluster"]["replicas"]
                .as_array()?
                .iter()
                .filter_map(|r| r["id"].as_str())
                .collect();
            (ids == ["a", "b"]).then_some(())
        })
        .await;
    }
    (a, b, dirs)
}

/// The texts the bot shows in Telegram chat `chat`.
fn tg_texts(tg: &FakeTelegram, chat: i64) -> Vec<String> {
    tg.chat(chat).into_iter().map(|m| m.text).collect()
}

fn asked(model: &FakeOpenAi, text: &str) -> usize {
    model
        .seen()
        .iter()
        .filter(|r| {
            r.messages()
                .last()
                .is_some_and(|(_, m)| switchboard_tests::fake_openai::said(m) == text)
        })
        .count()
}

const CONFLICT: &str = "terminated by other getUpdates request";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_answered_once_by_whichever_replica_holds_the_lease_across_a_kill() {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dc = FakeDiscord::start(Duration::from_secs(5)).await;
    let url = Postgres::shared().database();
    let (a, b, _dirs) = two(&model, &url, &channels(&tg, &dc)).await;
    let mut gws = [a, b];

    // Each account's listener runs on one replica; the other stands by,
    // and both are ready.
    let tg_lease = "listener:telegram/main";
    let dc_lease = "listener:discord/main";
    let (tg_holder, dc_holder) = status_until(&gws[0], "both listeners' leases held", |v| {
        Some((holder(v, tg_lease)?, holder(v, dc_lease)?))
    })
    .await;
    for gw in &gws {
        let (code, ready) = gw.get("/readyz").await;
        assert_eq!(code, 200, "{ready}");
    }
    let (_, on_other) = gws[if tg_holder == "a" { 1 } else { 0 }]
        .get("/api/status")
        .await;
    assert_eq!(
        on_other["components"]["channel:telegram/main"]["state"], "standby",
        "{on_other:#}"
    );

    let user = 91u64;
    let dm = dm_channel(user);
    tg.dm(81, "Ann", "before");
    dc.dm(user, "before");
    tg.answered(81, &echo_answer("before"), WAIT).await;
    dc.wait(WAIT, "discord's first answer", |d| {
        fake_discord::texts(&d.shown(&dm))
            .contains(&echo_answer("before"))
            .then_some(())
    })
    .await;

    // A long answer streams into Telegram; its replica is killed mid-way.
    let story = "tell me a fairly long story about the sea and its ships";
    model.set(Behavior::Drip(150));
    tg.dm(81, "Ann", story);
    tg.wait(WAIT, "a preview that grows", |tg| {
        tg.chat(81).get(1).filter(|m| m.edits >= 1).cloned()
    })
    .await;
    let victim = if tg_holder == "a" { 0 } else { 1 };
    let survivor = 1 - victim;
    gws[victim].kill();
    let killed = Instant::now();
    model.set(Behavior::Echo);
    tg.dm(81, "Ann", "during");
    dc.dm(user, "during");

    // The survivor takes the listener over within the lease time.
    let survivor_id = if survivor == 0 { "a" } else { "b" };
    status_until(
        &gws[survivor],
        "the survivor holding Telegram's lease",
        |v| (holder(v, tg_lease).as_deref() == Some(survivor_id)).then_some(()),
    )
    .await;
    let took = killed.elapsed();
    let _ = &dc_holder;
    assert!(
        took < Duration::from_secs(LEASE_SECS) + Duration::from_millis(1500),
        "took {took:?} to take over (lease {LEASE_SECS} s; status shows it within a heartbeat)"
    );

    // Every message is answered once: the story's in its preview, and the
    // one sent while nobody listened; then a sentinel, after which nothing
    // more may come.
    let want_story = echo_answer(story);
    tg.wait(WAIT, "the story and `during` answered", |tg| {
        let t = tg_texts(tg, 81);
        (t.contains(&want_story) && t.contains(&echo_answer("during"))).then_some(())
    })
    .await;
    tg.dm(81, "Ann", "sentinel");
    tg.answered(81, &echo_answer("sentinel"), WAIT).await;
    let mut texts = tg_texts(&tg, 81);
    texts.sort();
    let mut want = vec![
        echo_answer("before"),
        want_story,
        echo_answer("during"),
        echo_answer("sentinel"),
    ];
    want.sort();
    assert_eq!(
        texts,
        want,
        "each Telegram message answered once: {:#?}",
        tg.chat(81)
    );

    dc.dm(user, "sentinel");
    dc.wait(WAIT, "discord's sentinel", |d| {
        fake_discord::texts(&d.shown(&dm))
            .contains(&echo_answer("sentinel"))
            .then_some(())
    })
    .await;
    let mut texts = fake_discord::texts(&dc.shown(&dm));
    texts.sort();
    let mut want = vec![
        echo_answer("before"),
        echo_answer("during"),
        echo_answer("sentinel"),
    ];
    want.sort();
    assert_eq!(texts, want, "each Discord message answered once");
    assert_eq!(
        asked(&model, "during"),
        2,
        "one Telegram and one Discord turn"
    );

    // Never two pollers of one bot, never two sessions of one Discord bot.
    assert_eq!(
        dc.most_connections_at_once(),
        1,
        "two Discord sessions at once"
    );
    for gw in &gws {
        assert!(
            !gw.log().contains(CONFLICT),
            "two replicas polled Telegram:\n{}",
            gw.log()
        );
    }
    // The dead one leaves the status; every lease is the survivor's.
    status_until(
        &gws[survivor],
        "only the survivor in status, holding both leases",
        |v| {
            let n = v["cluster"]["replicas"].as_array()?.len();
            let both = [tg_lease, dc_lease]
                .iter()
                .all(|l| holder(v, l).as_deref() == Some(survivor_id));
            (n == 1 && both).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_hands_its_listener_over_at_once() {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dc = FakeDiscord::start(Duration::from_secs(5)).await;
    let url = Postgres::shared().database();
    let (a, b, _dirs) = two(&model, &url, &channels(&tg, &dc)).await;
    let mut gws = [a, b];
    let tg_lease = "listener:telegram/main";
    let first = status_until(&gws[0], "Telegram's lease held", |v| holder(v, tg_lease)).await;
    let (leaving, staying) = if first == "a" { (0, 1) } else { (1, 0) };
    assert!(
        gws[leaving].terminate().await.success(),
        "{}",
        gws[leaving].log()
    );
    let staying_id = if staying == 0 { "a" } else { "b" };
    status_until(&gws[staying], "the other replica holding the lease", |v| {
        (holder(v, tg_lease).as_deref() == Some(staying_id)).then_some(())
    })
    .await;
    tg.dm(82, "Bo", "after the hand-over");
    tg.answered(82, &echo_answer("after the hand-over"), WAIT)
        .await;
    let (_, s) = gws[staying].get("/api/status").await;
    let ids: Vec<&str> = s["cluster"]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [staying_id], "the one that left is gone from status");
    let (code, out, _) = gws[staying].cli(&["status"]);
    assert!(code.success(), "{out}");
    assert!(
        out.contains("replicas:")
            && out.contains("listener:telegram/main")
            && out.contains(staying_id),
        "{out}"
    );
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(gw: &Gateway) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = format!("{}/api/ws", gw.url.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
    let sub = json!({ "id": 1, "method": "events.subscribe", "params": {} });
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .unwrap();
    loop {
        let f = next_frame(&mut ws).await;
        if f["type"] == "response" && f["id"] == 1 {
            assert_eq!(f["ok"], true, "{f}");
            return ws;
        }
    }
}

async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_chat_goes_on_at_the_other_replica_one_turn_at_a_time_and_streams_to_both() {
    let model = FakeOpenAi::start().await;
    let url = Postgres::shared().database();
    let (a, b, _dirs) = two(&model, &url, "").await;
    let mut watch_a = subscribe(&a).await;

    // Started at a, held at the model mid-stream.
    model.set(Behavior::Hold);
    let a_url = a.url.clone();
    let first = tokio::spawn(async move { chat_at(&a_url, "cat", "first at a").await });
    model.next_request().await;
    // The same session at b: queued behind a's turn, not run beside it.
    let b_url = b.url.clone();
    let second = tokio::spawn(async move { chat_at(&b_url, "cat", "then at b").await });
    status_until(&b, "b holding the message", |v| {
        (v["sessions_in_memory"].as_u64()? >= 1).then_some(())
    })
    .await;
    model.release();
    model.set(Behavior::Echo);
    assert_eq!(first.await.unwrap(), echo_answer("first at a"));
    assert_eq!(second.await.unwrap(), echo_answer("then at b"));
    let asked = model.seen();
    let last = asked.last().unwrap().messages();
    assert!(
        last.iter()
            .any(|(role, text)| role == "assistant" && text == &echo_answer("first at a")),
        "b's turn ran after a's and has its answer in its history: {last:?}"
    );

    // A watcher at a saw b's turn stream and finish.
    let mut deltas = String::new();
    loop {
        let f = next_frame(&mut watch_a).await;
        if f["data"]["session_key"] != "agent:main:webchat:dm:cat" {
            continue;
        }
        match f["event"].as_str() {
            Some("chat.delta") if deltas.len() < 10_000 => {
                deltas.push_str(f["data"]["text"].as_str().unwrap_or(""));
            }
            Some("chat.done") if f["data"]["text"] == echo_answer("then at b") => break,
            Some("chat.done") => deltas.clear(),
            _ => {}
        }
    }
    assert_eq!(
        deltas,
        echo_answer("then at b"),
        "the deltas of b's turn reached a"
    );
}

async fn chat_at(base: &str, user: &str, text: &str) -> String {
    let body = json!({
        "model": "main",
        "user": user,
        "messages": [{ "role": "user", "content": text }],
    });
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_job_fires_once_per_slot_with_two_replicas() {
    let model = FakeOpenAi::start().await;
    let url = Postgres::shared().database();
    let extra = "[cron.jobs.beat]\nevery = \"2s\"\nmessage = \"beat\"\n";
    let (mut a, mut b, _dirs) = two(&model, &url, extra).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, v) = a.get("/api/cron/beat?history=100").await;
        let ok = v["runs"]
            .as_array()
            .map_or(0, |r| r.iter().filter(|r| r["status"] == "ok").count());
        if ok >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{v:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.terminate().await.success());
    assert!(b.terminate().await.success());
    // Both stopped: nothing more runs. Each slot that ran asked the model
    // once, whichever replica ran it. (A third replica, whose job runs
    // hourly, only shows the history.)
    let c_dir = tempfile::tempdir().unwrap();
    let hourly = "[cron.jobs.beat]\nevery = \"1h\"\nmessage = \"beat\"\n";
    let c = Gateway::start_with_env(c_dir.path(), &replica(&model, &url, "c", hourly), &ENV).await;
    let (_, v) = c.get("/api/cron/beat?history=100").await;
    let runs = v["runs"].as_array().cloned().unwrap_or_default();
    let ran = runs
        .iter()
        .filter(|r| r["status"] != "missed" && r["status"] != "skipped")
        .count();
    assert!(ran >= 3, "{v:#}");
    assert_eq!(asked(&model, "beat"), ran, "a slot ran twice: {v:#}");
}

const GUARDED: &str = r#"
[agents.guarded]
provider = "fake"

[agents.guarded.tools]
profile = "minimal"

[agents.guarded.approvals]
mode = "always"
tools = ["session_status"]
timeout_secs = 60
"#;

/// A tool call waits on the replica running its turn; the operator
/// approves it on the other one, and the call goes on at once (not when
/// its request would have expired). The request is not closed by the
/// replica it does not wait on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_on_one_replica_is_approved_from_the_other() {
    let model = FakeOpenAi::start().await;
    let url = Postgres::shared().database();
    let (a, b, _dirs) = two(&model, &url, GUARDED).await;
    let body = json!({ "model": "guarded", "user": "dee",
        "messages": [{ "role": "user", "content": "use tool session_status" }] });
    let request = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", a.url))
        .bearer_auth(TOKEN)
        .json(&body);
    let reply =
        tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() });
    let id = b.pending_approval().await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, body) = b
        .post_json(&format!("/api/approvals/{id}/approve"), &json!({}), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let answered = tokio::time::timeout(Duration::from_secs(30), reply)
        .await
        .expect("the call went on before its request would expire")
        .unwrap();
    let text = answered["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("agent:guarded:webchat:dm:dee"),
        "the tool ran: {answered}"
    );
    let (_, list) = a.get("/api/approvals?all=true").await;
    let shown = list.to_string();
    assert!(
        shown.contains("approved") && !shown.contains("cancelled"),
        "{list:#}"
    );
}

/// Two replicas starting for the first time at the same moment on a new
/// database: one makes the keyring, the other takes it, and each reads
/// what the other wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_share_one_keyring() {
    let model = FakeOpenAi::start().await;
    let url = Postgres::shared().database();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut a = Gateway::prepare(dirs[0].path(), &replica(&model, &url, "a", ""));
    let mut b = Gateway::prepare(dirs[1].path(), &replica(&model, &url, "b", ""));
    for gw in [&mut a, &mut b] {
        gw.env = ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        gw.spawn_only();
    }
    a.wait_ready().await;
    b.wait_ready().await;
    let (status, body) = a.chat("eve", "said at a").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = b.chat("fay", "said at b").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        b.transcript("agent:main:webchat:dm:eve").await.unwrap()[0].1,
        "said at a"
    );
    assert_eq!(
        a.transcript("agent:main:webchat:dm:fay").await.unwrap()[0].1,
        "said at b"
    );
}

/// A replica killed in the middle of an answer and started again under the
/// same `cluster.replica_id` (a StatefulSet pod, a systemd instance) takes
/// its own unanswered message at once at start, and answers it once, in
/// the preview it had shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_under_its_id_answers_what_it_left_at_start() {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dc = FakeDiscord::start(Duration::from_secs(5)).await;
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Gateway::start_with_env(
        dir.path(),
        &replica(&model, &url, "a", &channels(&tg, &dc)),
        &ENV,
    )
    .await;
    let text = "tell me a fairly long story about the hills and their roads";
    model.set(Behavior::Drip(150));
    tg.dm(83, "Cy", text);
    tg.wait(WAIT, "a preview that grows", |tg| {
        tg.chat(83).first().filter(|m| m.edits >= 1).cloned()
    })
    .await;
    a.kill();
    model.set(Behavior::Echo);
    a.restart().await;
    let log = a.log();
    let ready = log
        .lines()
        .rev()
        .find(|l| l.contains("switchboard is ready"))
        .unwrap_or_default()
        .to_string();
    assert!(
        ready.contains("replayed=1") || ready.contains("\"replayed\":1"),
        "the message was taken at start, not left to a later sweep: {ready}"
    );
    let want = echo_answer(text);
    tg.wait(WAIT, "the answer", |tg| {
        tg_texts(tg, 83).contains(&want).then_some(())
    })
    .await;
    tg.dm(83, "Cy", "sentinel");
    tg.answered(83, &echo_answer("sentinel"), WAIT).await;
    assert_eq!(
        tg_texts(&tg, 83),
        [want, echo_answer("sentinel")],
        "answered once, in its preview"
    );
}
