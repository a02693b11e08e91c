//! Limits protect before work is done, through the real binary against the
//! fake Telegram Bot API: a notice the platform is slow to take (a 429 with
//! a long `retry_after`) does not hold up the messages behind it, and a
//! stranger's flood gets one pairing code and nothing else.

use std::time::Duration;

use switchboard_tests::fake_openai::{FakeOpenAi, echo_answer};
use switchboard_tests::fake_telegram::{FakeTelegram, TOKEN};
use switchboard_tests::gateway::{Gateway, config, free_port};

const WAIT: Duration = Duration::from_secs(30);

/// How long Telegram tells the gateway to wait before the pairing notice
/// may go out: far longer than answering a message takes.
const RETRY_AFTER_SECS: u64 = 10;

async fn start(extra: &str) -> (FakeOpenAi, FakeTelegram, Gateway, tempfile::TempDir) {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let channel = format!(
        r#"
[channels.telegram.accounts.main]
token = "{TOKEN}"
api_url = "{}"
edit_interval_ms = 100
poll_timeout_secs = 1
watchdog_secs = 2
{extra}
"#,
        tg.url()
    );
    let gw = Gateway::start(
        dir.path(),
        &config(free_port(), &model.base_url(), &channel),
    )
    .await;
    (model, tg, gw, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_the_platform_holds_back_does_not_hold_up_the_next_message() {
    let (_model, tg, _gw, _dir) = start(r#"allow_from = ["43"]"#).await;
    tg.fail_next(
        "sendMessage",
        429,
        &format!("Too Many Requests: retry after {RETRY_AFTER_SECS}"),
        Some(RETRY_AFTER_SECS),
    );
    tg.dm(42, "Stranger", "hello?");
    // The pairing code was offered and refused for now.
    tg.wait(WAIT, "the refused pairing notice", |tg| {
        (!tg.calls_of("sendMessage").is_empty()).then_some(())
    })
    .await;
    // A friend's message, polled after the stranger's, is answered while
    // the code still waits out the platform's retry_after.
    tg.dm(43, "Friend", "are you there?");
    tg.answered(43, &echo_answer("are you there?"), WAIT).await;
    assert!(
        tg.chat(42).is_empty(),
        "the friend's answer waited for the stranger's notice: {:#?}",
        tg.chat(42)
    );
    // And the code does go out once the platform takes it.
    let code = tg
        .wait(WAIT, "the pairing code", |tg| tg.chat(42).first().cloned())
        .await;
    assert!(
        code.text.contains("switchboard pairing approve telegram"),
        "{code:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_stranger_gets_one_code_and_nothing_else() {
    let (model, tg, _gw, _dir) = start(
        r#"allow_from = ["43"]

[channels.telegram.accounts.main.rate_limit]
per_minute = 1
burst = 2
"#,
    )
    .await;
    for i in 0..20 {
        tg.dm(42, "Stranger", &format!("let me in #{i}"));
    }
    // The sentinel: the friend's approval command is answered by a notice,
    // queued behind every notice the flood could have caused (updates are
    // handled in order, notices sent in order).
    tg.dm(43, "Friend", "/approve nosuchrequest");
    tg.wait(WAIT, "the answer to the sentinel", |tg| {
        tg.chat(43)
            .iter()
            .any(|m| m.text.contains("nosuchrequest"))
            .then_some(())
    })
    .await;
    let told = tg.chat(42);
    assert_eq!(told.len(), 1, "one pairing code, nothing else: {told:#?}");
    assert!(
        told[0]
            .text
            .contains("switchboard pairing approve telegram"),
        "{told:#?}"
    );
    assert!(
        model.seen().is_empty(),
        "a stranger's message reached the model"
    );
}
