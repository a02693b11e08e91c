//! Delivery guarantees through the real binary: a reply the platform
//! refuses is sent again from the stored answer (the model is not asked
//! again) until it goes out, exactly once; one that never goes out is marked
//! failed after `sessions.delivery_retry_secs` and health says so.

use std::time::Duration;

use switchboard_tests::fake_openai::{FakeOpenAi, echo_answer};
use switchboard_tests::fake_telegram::{FakeTelegram, TOKEN};
use switchboard_tests::gateway::{Gateway, config, free_port};

/// teloxide waits 10 s after each 5xx before it reports it, so an outage of
/// a few sends takes a while.
const WAIT: Duration = Duration::from_secs(90);

async fn start(sessions: &str) -> (FakeOpenAi, FakeTelegram, Gateway, tempfile::TempDir) {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[channels.telegram.accounts.main]
token = "{TOKEN}"
api_url = "{}"
dm_policy = "open"
edit_interval_ms = 100
poll_timeout_secs = 1

[sessions]
{sessions}
"#,
        tg.url()
    );
    let gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), &extra)).await;
    (model, tg, gw, dir)
}

/// Send a sentinel to `chat` and wait for its answer: by then a second
/// copy of `want` would have arrived before it. Asserts the chat shows
/// exactly `want` and the sentinel's answer, and returns its messages.
async fn only_answer_then_sentinel(
    tg: &FakeTelegram,
    chat: i64,
    name: &str,
    want: &str,
) -> Vec<switchboard_tests::fake_telegram::Shown> {
    tg.dm(chat, name, "sentinel");
    let sentinel = echo_answer("sentinel");
    let msgs = tg
        .wait(WAIT, "the sentinel's answer", |tg| {
            let msgs = tg.chat(chat);
            msgs.iter().any(|m| m.text == sentinel).then_some(msgs)
        })
        .await;
    let texts: Vec<&str> = msgs.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, [want, sentinel.as_str()], "{msgs:#?}");
    msgs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_refused_for_a_while_is_sent_once_it_can_be_without_asking_the_model_again() {
    let (model, tg, _gw, _dir) = start("").await;
    // The platform is down for the next sends: the streamed preview, the
    // final message, and the first time it is sent again.
    for _ in 0..3 {
        tg.fail_next("sendMessage", 502, "Bad Gateway", None);
    }
    tg.dm(61, "Ann", "are you there");
    let want = echo_answer("are you there");
    tg.wait(WAIT, "the answer after the outage", |tg| {
        tg.chat(61).iter().any(|m| m.text == want).then_some(())
    })
    .await;
    // A sentinel: once it is answered, a second copy of the first answer
    // would have arrived before it.
    only_answer_then_sentinel(&tg, 61, "Ann", &want).await;
    let asked: Vec<String> = model
        .seen()
        .iter()
        .map(|r| r.messages().last().unwrap().1.clone())
        .collect();
    assert_eq!(
        asked.iter().filter(|m| m.contains("are you there")).count(),
        1,
        "the model was asked again: {asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_never_goes_out_is_marked_failed_and_shown_in_status() {
    let (model, tg, gw, _dir) = start("delivery_retry_secs = 3").await;
    for _ in 0..200 {
        tg.fail_next("sendMessage", 502, "Bad Gateway", None);
    }
    tg.dm(62, "Ben", "hello?");
    let deadline = tokio::time::Instant::now() + WAIT;
    let status = loop {
        let (_, status) = gw.get("/api/status").await;
        let detail = status["components"]["delivery"]["detail"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if detail.contains("not delivered within 3 s") {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        status["components"]["delivery"]["state"], "degraded",
        "{status}"
    );
    assert!(tg.chat(62).is_empty());
    assert_eq!(model.seen().len(), 1, "the model was asked again");
}

/// A hard stop after a tool ran and before the answer: the restarted
/// gateway continues the turn from the stored call and result (the model
/// sees them; the tool is not run again) and the user gets one answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_cut_short_by_a_crash_continues_without_running_its_tool_again() {
    use switchboard_tests::fake_openai::{Behavior, tool_answer};
    use switchboard_tests::gateway::config_for;

    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[channels.telegram.accounts.main]
token = "{TOKEN}"
api_url = "{}"
dm_policy = "open"
edit_interval_ms = 100
poll_timeout_secs = 1
"#,
        tg.url()
    );
    let agent = "system_prompt = \"You are the test assistant.\"\n[agents.main.tools]\nprofile = \"minimal\"\n";
    let mut gw = Gateway::start(
        dir.path(),
        &config_for(free_port(), &model.base_url(), agent, &extra),
    )
    .await;
    model.set(Behavior::HoldAfterTools);
    tg.dm(71, "Bo", "use tool session_status");
    let asked = model.next_request().await;
    assert_eq!(asked.messages().last().unwrap().0, "user");
    let held = model.next_request().await;
    let (role, result) = held.messages().last().unwrap().clone();
    assert_eq!(role, "tool", "the second request answers the tool");
    // The call and its result are in the transcript before the crash.
    let key = "agent:main:telegram:dm:71";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let roles: Vec<String> = gw
            .transcript(key)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        if roles == ["user", "tool_call", "tool_result"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tool call and result were not stored as they happened: {roles:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.kill();
    model.set(Behavior::Echo);
    model.release();
    gw.restart().await;

    let continued = model.next_request().await;
    let messages = continued.messages();
    assert_eq!(
        messages.last().unwrap(),
        &("tool".to_string(), result.clone()),
        "the restarted turn continues from the stored result: {messages:?}"
    );
    assert_eq!(
        continued.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["tool_calls"].is_array())
            .count(),
        1,
        "the stored call is in the request: {}",
        continued.body
    );
    let want = tool_answer(&result);
    tg.wait(WAIT, "the answer after the restart", |tg| {
        tg.chat(71).iter().any(|m| m.text == want).then_some(())
    })
    .await;
    only_answer_then_sentinel(&tg, 71, "Bo", &want).await;
    let from_the_user = model
        .seen()
        .iter()
        .filter(|r| {
            r.messages().last().is_some_and(|(role, text)| {
                role == "user"
                    && switchboard_tests::fake_openai::said(text) == "use tool session_status"
            })
        })
        .count();
    assert_eq!(
        from_the_user, 1,
        "the turn was started over, so its tool ran again"
    );
}

/// A hard stop while the answer streams into a Telegram message: after the
/// restart the answer is edited into that message, not sent as a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_short_by_a_crash_is_edited_into_its_preview() {
    use switchboard_tests::fake_openai::Behavior;

    let (model, tg, mut gw, _dir) = start("").await;
    let text = "tell me a fairly long story about the sea and its ships";
    let want = echo_answer(text);
    model.set(Behavior::Drip(150));
    tg.dm(72, "Cy", text);
    // The preview is shown and was edited once: its id was stored when it
    // was sent, before the next piece came.
    let preview = tg
        .wait(WAIT, "a preview that grows", |tg| {
            tg.chat(72).first().filter(|m| m.edits >= 1).cloned()
        })
        .await;
    assert_ne!(preview.text, want, "the answer finished before the crash");
    gw.kill();
    model.set(Behavior::Echo);
    gw.restart().await;
    tg.wait(WAIT, "the answer in the preview's message", |tg| {
        tg.chat(72).iter().any(|m| m.text == want).then_some(())
    })
    .await;
    let msgs = only_answer_then_sentinel(&tg, 72, "Cy", &want).await;
    assert_eq!(
        msgs[0].id, preview.id,
        "the answer went into the preview's message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_data_directory_refuses_to_start() {
    let (model, tg, first, _dir) = start("").await;
    let other = tempfile::tempdir().unwrap();
    let port = free_port();
    let extra = format!(
        "[channels.telegram.accounts.main]\ntoken = \"{TOKEN}\"\napi_url = \"{}\"\n",
        tg.url()
    );
    let mut second = Gateway::prepare(other.path(), &config(port, &model.base_url(), &extra));
    second.data_dir = first.data_dir.clone();
    second.spawn_only();
    let status = second.wait_exit().await;
    assert!(!status.success());
    let log = second.log();
    assert!(log.contains("another switchboard (pid "), "{log}");
    assert!(
        log.contains(&first.url.trim_start_matches("http://").to_string()),
        "the first gateway's address is not named: {log}"
    );
    // The first one still polls its bot alone and answers.
    tg.dm(9, "Ida", "still just one of us?");
    tg.answered(9, &echo_answer("still just one of us?"), WAIT)
        .await;
    assert_eq!(tg.chat(9).len(), 1, "answered twice");
}
