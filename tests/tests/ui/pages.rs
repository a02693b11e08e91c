//! Every page: reached from the navigation bar, its heading, a
//! screenshot into `docs/ui/<page>.png` for the README, under 100 KB
//! (HTML, CSS and JavaScript together), and no sideways scrolling at a
//! phone's width. And the Cron page's actions: Pause, Resume, Run now.

use serde_json::json;
use switchboard_tests::browser::{
    Browser, WAIT, eventually, page_weight, session_cookie, xpath_literal,
};
use switchboard_tests::fake_openai::FakeOpenAi;
use switchboard_tests::fake_telegram::FakeTelegram;
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port};
use thirtyfour::prelude::*;

use super::{chat_connected, telegram};

/// The pages of the navigation bar, in its order; each page's `<h1>` is
/// its name.
const PAGES: [&str; 12] = [
    "Overview",
    "Chat",
    "Sessions",
    "Pairing",
    "Approvals",
    "Channels",
    "Agents",
    "Cron",
    "Usage",
    "Logs",
    "Audit",
    "Config",
];

/// What one page may weigh, HTML, CSS and JavaScript together.
const PAGE_BUDGET: usize = 100 * 1000;

/// An agent whose tool call waits for the operator long enough to be
/// seen on the Overview and Approvals pages.
const GUARDED_AGENT: &str = r#"
[agents.guarded]
provider = "fake"

[agents.guarded.tools]
profile = "minimal"

[agents.guarded.approvals]
mode = "always"
tools = ["session_status"]
timeout_secs = 600
"#;

/// A scheduled job for the Cron page's screenshot.
const BRIEFING_JOB: &str = r#"
[cron.jobs.briefing]
schedule = "0 30 7 * * Mon-Fri"
message = "Give me today's briefing."
"#;

/// A job that does not come due during a test (its first slot is an hour
/// after the gateway starts).
const TICK_JOB: &str = r#"
[cron.jobs.tick]
every = "1h"
message = "x"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_every_page() {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("{}{GUARDED_AGENT}{BRIEFING_JOB}", telegram(&tg.url()));
    let gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), &extra)).await;

    // Something to show: a conversation in the Chat page's session (web
    // chat user "ui"), a stranger waiting to pair, a call waiting for
    // approval.
    let (status, body) = gw
        .chat(
            "ui",
            "Show me some **Markdown**: `inline code`, and a list:\n\n- one\n- two",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    tg.dm(7, "Grace", "hello, may I talk to the assistant?");
    tg.wait(WAIT, "Grace's pairing code", |tg| {
        tg.chat(7).first().map(|_| ())
    })
    .await;
    let ask = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(TOKEN)
        .json(&json!({ "model": "guarded", "user": "bea", "messages": [{ "role": "user", "content": "use tool session_status" }] }));
    let asking = tokio::spawn(async move {
        let _ = ask.send().await;
    });
    eventually("the tool call to wait for approval", async || {
        let (_, v) = gw.get("/api/approvals").await;
        v["approvals"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
            .then_some(())
    })
    .await;

    let browser = Browser::start().await;
    browser.sign_in(&gw.url, TOKEN).await;
    let mut paths = Vec::new();
    for name in PAGES {
        let link = browser
            .wait_for(
                &format!("the navigation link \"{name}\""),
                By::XPath(format!(
                    "//nav//a[normalize-space()={}]",
                    xpath_literal(name)
                )),
            )
            .await;
        let href =
            link.attr("href").await.ok().flatten().unwrap_or_else(|| {
                panic!("the navigation link \"{name}\" leads nowhere (no href)")
            });
        let path = href.strip_prefix(&gw.url).unwrap_or(&href).to_string();
        paths.push((name, path));
    }
    for name in PAGES {
        if name == "Overview" {
            browser.heading(name).await; // where signing in lands
        } else {
            browser.nav(name).await;
        }
        let current = browser
            .wait_for(
                "the navigation link of the page shown (aria-current=page)",
                By::XPath("//nav//a[@aria-current='page']"),
            )
            .await
            .text()
            .await
            .unwrap_or_default();
        assert_eq!(
            current, name,
            "the navigation bar marks another page as current"
        );
        if name == "Chat" {
            chat_connected(&browser).await;
        }
        let file = browser.screenshot(&name.to_lowercase()).await;
        let png = std::fs::read(&file).unwrap_or_default();
        assert!(
            png.starts_with(b"\x89PNG"),
            "the screenshot of {name} ({}) is not a PNG",
            file.display()
        );
    }
    browser.quit().await;

    let cookie = session_cookie(&gw.url, TOKEN).await;
    let http = reqwest::Client::new();
    let mut heavy = Vec::new();
    for (name, path) in &paths {
        let (bytes, assets) = page_weight(&http, &gw.url, &cookie, path).await;
        if bytes >= PAGE_BUDGET {
            heavy.push(format!("{name} ({path}): {bytes} bytes with {assets:?}"));
        }
    }
    assert!(
        heavy.is_empty(),
        "pages over {PAGE_BUDGET} bytes (HTML, CSS and JS together):\n{}",
        heavy.join("\n")
    );

    // At a phone's width the Overview does not scroll sideways.
    let phone = Browser::start_phone(375, 800).await;
    phone.sign_in(&gw.url, TOKEN).await;
    let widths = phone
        .run(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        )
        .await;
    let content = widths[0].as_u64().unwrap_or(u64::MAX);
    assert!(
        content <= 375,
        "at 375 px wide the Overview scrolls sideways: its content is {content} px wide (the window {} px)",
        widths[1]
    );
    phone.quit().await;
    asking.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_paused_resumed_and_run_from_the_cron_page() {
    let (_model, gw, _dir) = super::start(TICK_JOB).await;
    let (status, v) = gw.get("/api/cron").await;
    assert_eq!(status, 200, "GET /api/cron: {v}");
    let next = v["jobs"][0]["next"]
        .as_str()
        .unwrap_or_else(|| panic!("the job tick has no next run in GET /api/cron: {v}"))
        .to_string();

    let browser = Browser::start().await;
    browser.sign_in(&gw.url, TOKEN).await;
    browser.nav("Cron").await;
    let row = "//tr[td/a[normalize-space()='tick']]";
    let state = |s: &str| {
        By::XPath(format!(
            "{row}//span[contains(@class, 'badge') and normalize-space()={}]",
            xpath_literal(s)
        ))
    };
    let notice = |s: &str| {
        By::XPath(format!(
            "//p[contains(@class, 'notice') and contains(., {})]",
            xpath_literal(s)
        ))
    };
    let shown = browser
        .wait_for("the row of the job tick", By::XPath(row))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        shown.contains(&next),
        "the row of tick should show its next run {next:?}: {shown:?}"
    );
    browser.wait_for("tick shown active", state("active")).await;

    browser
        .find_button_in(row, "Pause")
        .await
        .click()
        .await
        .expect("press Pause");
    browser
        .wait_for("tick shown paused after Pause", state("paused"))
        .await;
    browser
        .wait_for("the notice that tick was paused", notice("Paused"))
        .await;

    browser
        .find_button_in(row, "Resume")
        .await
        .click()
        .await
        .expect("press Resume");
    browser
        .wait_for("tick shown active after Resume", state("active"))
        .await;
    browser
        .wait_for("the notice that tick was resumed", notice("Resumed"))
        .await;

    browser
        .find_button_in(row, "Run now")
        .await
        .click()
        .await
        .expect("press Run now");
    browser
        .wait_for("the notice that tick was started", notice("Started"))
        .await;

    // Its own page: the next 5 run times and the history (Resume's mark).
    browser
        .wait_for("the link to the job tick", By::XPath(format!("{row}//a")))
        .await
        .click()
        .await
        .expect("open the page of tick");
    browser
        .until(
            "the next 5 runs and the history of tick on its page",
            "const h = document.getElementById('history');
             return document.querySelectorAll('#upcoming li').length === 5
               && !!h && h.textContent.includes('resumed here');",
            vec![],
        )
        .await;
    browser.quit().await;
}
