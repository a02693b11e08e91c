//! The Chat page: an answer that grows in its place as it streams, Stop
//! ending a running turn, and a tool call approved inline that runs.

use serde_json::json;
use switchboard_tests::browser::{Browser, eventually};
use switchboard_tests::fake_openai::{Behavior, echo_answer};
use switchboard_tests::gateway::TOKEN;
use thirtyfour::prelude::*;

use super::{chat_connected, start};

/// `main`'s `session_status` tool waits for the operator.
const GUARDED_MAIN: &str = r#"
[agents.main.tools]
profile = "minimal"

[agents.main.approvals]
mode = "always"
tools = ["session_status"]
timeout_secs = 120
"#;

/// The last assistant item of the conversation, once its text contains
/// `arguments[0]`.
const LAST_ANSWER_WITH: &str = "
    const all = document.querySelectorAll('#conversation .msg.assistant');
    const m = all[all.length - 1];
    return m && m.innerText.includes(arguments[0]) ? m.innerText : null;";

/// Go to the Chat page and wait until its socket is open.
async fn open_chat(browser: &Browser) {
    browser.nav("Chat").await;
    chat_connected(browser).await;
}

/// Write `text` into the Message field and press Send.
async fn send(browser: &Browser, text: &str) {
    let field = browser.field_by_label("Message").await;
    field
        .send_keys(text)
        .await
        .expect("type into the Message field");
    browser
        .find_enabled_button("Send")
        .await
        .click()
        .await
        .expect("press Send");
    browser
        .until(
            &format!("the message {text:?} to show as the user's"),
            "return [...document.querySelectorAll('#conversation .msg.user')]
                 .some(m => m.innerText.includes(arguments[0]));",
            vec![json!(text)],
        )
        .await;
}

/// The first three characters of `answer`: what the fake model streams
/// before it holds the rest (`Behavior::Hold`).
fn first_piece(answer: &str) -> String {
    answer.chars().take(3).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_answer_grows_before_it_ends() {
    let (model, gw, _dir) = start("").await;
    model.set(Behavior::Hold);
    let browser = Browser::start().await;
    browser.sign_in(&gw.url, TOKEN).await;
    open_chat(&browser).await;

    let question = "tell me about lighthouses";
    let answer = echo_answer(question);
    send(&browser, question).await;
    let growing = browser
        .until(
            "the first piece of the answer to show while the model holds the rest",
            LAST_ANSWER_WITH,
            vec![json!(first_piece(&answer))],
        )
        .await;
    let growing = growing.as_str().unwrap_or_default().trim_end().to_string();
    assert!(
        !growing.contains(&answer),
        "the whole answer showed while the model still held its end: {growing:?}"
    );

    model.release();
    let whole = browser
        .until("the whole answer", LAST_ANSWER_WITH, vec![json!(answer)])
        .await;
    let whole = whole.as_str().unwrap_or_default();
    assert!(
        whole.starts_with(&growing) && whole.len() > growing.len(),
        "the answer did not grow in its place: while streaming it read {growing:?}, at the end {whole:?}"
    );
    let answers = browser
        .run(
            "return document.querySelectorAll('#conversation .msg.assistant').length",
            vec![],
        )
        .await;
    assert_eq!(answers, json!(1), "the answer should show once");
    browser.quit().await;
}

/// Once the running turn has ended: Send can be pressed again and the
/// conversation says the answer stopped (or shows an error); its text.
const TURN_STOPPED: &str = "
    const send = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Send');
    if (!send || send.disabled) return null;
    const items = document.querySelectorAll('#conversation .msg.assistant, #conversation .msg.error, #conversation .msg.system');
    const said = [...items].map(m => m.innerText).find(t => /stopped|cancel/i.test(t));
    return said || null;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_cancels_a_running_turn() {
    let (model, gw, _dir) = start("").await;
    model.set(Behavior::Hold);
    let browser = Browser::start().await;
    browser.sign_in(&gw.url, TOKEN).await;
    open_chat(&browser).await;

    let question = "a very long story, please";
    let answer = echo_answer(question);
    send(&browser, question).await;
    browser
        .until(
            "the answer to start while the model holds the rest",
            LAST_ANSWER_WITH,
            vec![json!(first_piece(&answer))],
        )
        .await;
    let (_, status) = gw.get("/api/status").await;
    assert_eq!(
        status["runs_in_flight"], 1,
        "the turn should be running while the model holds its answer: {status}"
    );

    browser
        .find_enabled_button("Stop")
        .await
        .click()
        .await
        .expect("press Stop");
    let said = browser
        .until(
            "the turn to end after Stop (Send usable again; the answer marked as stopped)",
            TURN_STOPPED,
            vec![],
        )
        .await;
    let status = eventually(
        "the gateway to show no run in flight after Stop",
        async || {
            let (_, s) = gw.get("/api/status").await;
            (s["runs_in_flight"] == 0).then_some(s)
        },
    )
    .await;
    assert_eq!(status["runs_waiting_for_a_slot"], 0, "{status}");

    model.release();
    let page = browser
        .run(
            "return document.getElementById('conversation').innerText",
            vec![],
        )
        .await;
    assert!(
        !page.as_str().unwrap_or_default().contains(&answer),
        "the stopped answer went on to its end ({said}): {page}"
    );
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_approved_in_chat_runs() {
    let (_model, gw, _dir) = start(GUARDED_MAIN).await;
    let browser = Browser::start().await;
    browser.sign_in(&gw.url, TOKEN).await;
    open_chat(&browser).await;

    send(&browser, "use tool session_status").await;
    let approve = browser
        .find_button_in("//ol[@id='conversation']", "Approve")
        .await;
    let (_, pending) = gw.get("/api/approvals").await;
    assert_eq!(
        pending["approvals"][0]["tool"], "session_status",
        "the inline approval should be for a call the gateway holds: {pending}"
    );
    approve.click().await.expect("press Approve");

    // The tool ran: its result (the session it reports) is in its card.
    browser
        .until(
            "the tool card to show the tool's result",
            "return [...document.querySelectorAll('#conversation .tool-card')]
                 .some(c => c.textContent.includes('agent:main:'));",
            vec![],
        )
        .await;
    let card = browser
        .wait_for("the tool card", By::Css("#conversation .tool-card"))
        .await;
    if card.prop("open").await.ok().flatten().as_deref() != Some("true") {
        card.find(By::Tag("summary"))
            .await
            .expect("the tool card's summary")
            .click()
            .await
            .expect("open the tool card");
    }
    let shown = card.text().await.unwrap_or_default();
    assert!(
        shown.contains("session_status") && shown.contains("agent:main:"),
        "the opened tool card should show the call and its result: {shown:?}"
    );

    let answer = browser
        .until(
            "the answer built on the tool's result",
            LAST_ANSWER_WITH,
            vec![json!("tool said:")],
        )
        .await;
    assert!(
        answer.as_str().unwrap_or_default().contains("agent:main:"),
        "the final answer should use the tool's result: {answer}"
    );
    let (_, all) = gw.get("/api/approvals?all=true").await;
    assert_eq!(all["approvals"][0]["status"], "approved", "{all}");
    browser.quit().await;
}
