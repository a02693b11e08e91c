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
    tg.dm(61, "Ann", "sentinel");
    let sentinel = echo_answer("sentinel");
    let msgs = tg
        .wait(WAIT, "the sentinel's answer", |tg| {
            let msgs = tg.chat(61);
            msgs.iter().any(|m| m.text == sentinel).then_some(msgs)
        })
        .await;
    let texts: Vec<&str> = msgs.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, [want.as_str(), sentinel.as_str()], "{msgs:#?}");
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
