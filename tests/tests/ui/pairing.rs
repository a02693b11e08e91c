//! The Pairing page, live: a stranger's request appears on the open page
//! without a reload, Approve lets them in, and their next message is
//! answered through the fake Bot API.

use serde_json::json;
use switchboard_tests::browser::{Browser, WAIT, xpath_literal};
use switchboard_tests::fake_openai::{FakeOpenAi, echo_answer};
use switchboard_tests::fake_telegram::FakeTelegram;
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port};
use thirtyfour::prelude::*;

use super::telegram;

/// The pairing code in the notice a stranger got.
fn pairing_code(notice: &str) -> String {
    notice
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
        .find(|w| {
            w.len() == 8
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
        .unwrap_or_else(|| panic!("no pairing code in the stranger's notice: {notice}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_approved_in_the_ui_lets_the_sender_in() {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        &config(free_port(), &model.base_url(), &telegram(&tg.url())),
    )
    .await;
    let browser = Browser::start().await;
    browser.sign_in(&gw.url, TOKEN).await;
    browser.nav("Pairing").await;
    browser
        .until(
            "the Pairing page to be live (\"Live\" in #live-status)",
            "const s = document.getElementById('live-status');
             return !!s && s.textContent.includes('Live');",
            vec![],
        )
        .await;
    browser
        .run("window.openedBeforeTheMessage = true; return true;", vec![])
        .await;

    // A stranger writes only now, with the page open.
    tg.dm(42, "Ada", "hello there");
    let notice = tg
        .wait(WAIT, "a pairing code for Ada", |tg| {
            tg.chat(42).first().map(|m| m.text.clone())
        })
        .await;
    assert!(
        model.seen().is_empty(),
        "a stranger's message reached the model"
    );
    let code = pairing_code(&notice);
    let row = format!(
        "//section[@id='pending']//tr[contains(., {})]",
        xpath_literal(&code)
    );
    let approve = browser
        .wait_for(
            &format!("the request with code {code} (and Approve) on the open Pairing page"),
            By::XPath(format!("{row}//button[normalize-space()='Approve']")),
        )
        .await;
    let same_page = browser
        .run("return window.openedBeforeTheMessage === true", vec![])
        .await;
    assert_eq!(
        same_page,
        json!(true),
        "the Pairing page reloaded instead of showing the request in place"
    );
    let shown = browser
        .find(By::XPath(row))
        .await
        .expect("the request's row")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        shown.contains("Ada") || shown.contains("42"),
        "the request's row should name the sender: {shown:?}"
    );

    approve.click().await.expect("press Approve");
    let said = browser
        .wait_for("the notice of the approval", By::Css("p.notice"))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        said.to_lowercase().contains("approved"),
        "the notice should say the sender was approved: {said:?}"
    );
    let allowed = browser
        .wait_for("the allowlist", By::Id("allowlist"))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        allowed.contains("42"),
        "the approved sender (id 42) should be on the allowlist: {allowed:?}"
    );

    tg.wait(WAIT, "Ada to be told she is let in", |tg| {
        (tg.chat(42).len() >= 2).then_some(())
    })
    .await;
    let question = "is anyone there?";
    tg.dm(42, "Ada", question);
    tg.answered(42, &echo_answer(question), WAIT).await;
    browser.quit().await;
}
