//! The control web UI in a real browser (headless Chromium driven over
//! WebDriver, see `switchboard_tests::browser`) against the real binary.
//!
//! This file holds the sign-in (redirect, a wrong token, Sign out, the
//! cookie, one-time links) and what the others share; `ui/chat.rs` a chat
//! answer that grows as it streams, Stop, and a tool call approved inline;
//! `ui/pairing.rs` a pairing approved from the live Pairing page;
//! `ui/safety.rs` other sites' requests refused and a config key's error
//! without a secret in the page; `ui/pages.rs` a screenshot of every page
//! (`docs/ui/`), each page's weight, the phone-width layout, and a job
//! paused, resumed and run from the Cron page. One test binary:
//! `cargo test -p switchboard-tests --test ui`.

#[path = "ui/chat.rs"]
mod chat;
#[path = "ui/pages.rs"]
mod pages;
#[path = "ui/pairing.rs"]
mod pairing;
#[path = "ui/safety.rs"]
mod safety;

use switchboard_tests::browser::{Browser, SESSION_COOKIE};
use switchboard_tests::fake_openai::FakeOpenAi;
use switchboard_tests::fake_telegram;
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port};
use thirtyfour::prelude::*;

/// A fake model and a gateway asking it, `extra` appended to its config.
async fn start(extra: &str) -> (FakeOpenAi, Gateway, tempfile::TempDir) {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), extra)).await;
    (model, gw, dir)
}

/// A Telegram account on the fake Bot API at `api` (DMs under pairing).
fn telegram(api: &str) -> String {
    format!(
        r#"
[channels.telegram.accounts.main]
token = "{token}"
api_url = "{api}"
edit_interval_ms = 100
poll_timeout_secs = 1
"#,
        token = fake_telegram::TOKEN,
    )
}

/// Wait until the Chat page's socket is open ("Connected").
async fn chat_connected(browser: &Browser) {
    browser
        .until(
            "the chat to connect (\"Connected\" in #chat-status)",
            "const s = document.getElementById('chat-status');
             return !!s && s.textContent.includes('Connected');",
            vec![],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_redirects_to_sign_in_and_a_wrong_token_is_refused() {
    let (_model, gw, _dir) = start("").await;
    let browser = Browser::start().await;

    browser.open(&format!("{}/chat", gw.url)).await;
    let token = browser.field_by_label("Token").await;
    assert_eq!(
        browser.url().await,
        format!("{}/login?next=%2Fchat", gw.url),
        "opening /chat without signing in should show the sign-in page, to come back to /chat"
    );

    token
        .send_keys("not-the-control-token-at-all")
        .await
        .expect("type a wrong token");
    browser
        .find_button("Sign in")
        .await
        .click()
        .await
        .expect("press Sign in");
    let error = browser
        .wait_for("the refusal of a wrong token (p.error)", By::Css("p.error"))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        error.contains("control-token"),
        "a wrong token's error should say where the token is kept (the file control-token): {error:?}"
    );
    let url = browser.url().await;
    assert!(
        url.starts_with(&format!("{}/login", gw.url)),
        "after a wrong token the browser should still be on the sign-in page, not {url}"
    );

    browser
        .field_by_label("Token")
        .await
        .send_keys(TOKEN)
        .await
        .expect("type the token");
    browser
        .find_button("Sign in")
        .await
        .click()
        .await
        .expect("press Sign in");
    browser.heading("Chat").await;
    assert_eq!(
        browser.url().await,
        format!("{}/chat", gw.url),
        "signing in should lead back to the page asked for"
    );

    let visible = browser.run("return document.cookie", vec![]).await;
    assert!(
        !visible.as_str().unwrap_or("").contains(SESSION_COOKIE),
        "the page's scripts can read the session cookie (it is not HttpOnly): {visible}"
    );
    let cookie = browser
        .get_named_cookie(SESSION_COOKIE)
        .await
        .expect("a signed-in browser holds the session cookie");
    assert_eq!(cookie.http_only, Some(true), "{cookie:?}");
    assert_eq!(cookie.same_site, Some(SameSite::Strict), "{cookie:?}");

    // Sign out ends the session: the pages ask for the token again.
    browser
        .find_button("Sign out")
        .await
        .click()
        .await
        .expect("press Sign out");
    browser.field_by_label("Token").await;
    browser.open(&format!("{}/chat", gw.url)).await;
    browser.field_by_label("Token").await;
    assert_eq!(
        browser.url().await,
        format!("{}/login?next=%2Fchat", gw.url),
        "after Sign out the pages should ask to sign in again"
    );
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_link_signs_in_once() {
    let (_model, gw, _dir) = start("").await;
    let (status, out, err) = gw.cli(&["ui"]);
    assert!(status.success(), "`switchboard ui` failed: {out}{err}");
    let link = out
        .lines()
        .find(|l| l.contains("/login?ticket="))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| {
            panic!(
                "`switchboard ui` printed no sign-in link (a line with /login?ticket=): {out}{err}"
            )
        })
        .to_string();

    let browser = Browser::start().await;
    browser.open(&link).await;
    browser.heading("Overview").await;
    let url = browser.url().await;
    assert!(
        !url.contains("ticket="),
        "the one-time ticket stayed in the address bar: {url}"
    );

    // A browser without the session (as another person's would be) opens
    // the same link: it was used.
    browser
        .delete_all_cookies()
        .await
        .expect("forget the session");
    browser.open(&link).await;
    let error = browser
        .wait_for("the refusal of a used link (p.error)", By::Css("p.error"))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        error.contains("used") || error.contains("expired"),
        "a second use of a one-time link should say it was used or expired: {error:?}"
    );
    browser.field_by_label("Token").await;
    let url = browser.url().await;
    assert!(
        url.starts_with(&format!("{}/login", gw.url)),
        "a used link should leave the browser on the sign-in page, not {url}"
    );
    browser.quit().await;
}
