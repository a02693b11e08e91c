//! Browser safety: other sites' forms, scripts and WebSockets are refused
//! (with the operator's cookie), pages carry the security headers, a
//! WebSocket ticket works once, and the Config page validates an edit
//! showing the key's error, never sending a secret to the browser.

use serde_json::{Value, json};
use switchboard_tests::browser::{Browser, csrf_of, session_cookie};
use switchboard_tests::gateway::TOKEN;
use thirtyfour::prelude::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::start;

/// The provider's key in every test config (`gateway::config`).
const API_KEY: &str = "sk-test-key";

/// Open a WebSocket to `arguments[0]` from the page: "open", or how it
/// failed ("error", "closed <code>").
const OPEN_SOCKET: &str = "
    const done = arguments[arguments.length - 1];
    let settled = false;
    const end = (how) => { if (!settled) { settled = true; done(how); } };
    try {
        const ws = new WebSocket(arguments[0]);
        ws.onopen = () => { end('open'); ws.close(); };
        ws.onerror = () => end('error');
        ws.onclose = (e) => end('closed ' + e.code);
    } catch (e) {
        end('threw ' + e);
    }";

async fn open_socket(browser: &Browser, url: &str) -> String {
    match browser.execute_async(OPEN_SOCKET, vec![json!(url)]).await {
        Ok(r) => r.json().as_str().unwrap_or("no answer").to_string(),
        Err(e) => panic!("the WebSocket script did not finish: {e}"),
    }
}

/// Post a form to `arguments[0]` from the page, as another site would.
const POST_FORM: &str = "
    const f = document.createElement('form');
    f.method = 'post';
    f.action = arguments[0];
    const i = document.createElement('input');
    i.type = 'hidden';
    i.name = 'csrf';
    i.value = 'guessed';
    f.append(i);
    document.body.append(f);
    f.submit();";

/// A page of another origin (another port of the same host).
async fn another_site() -> String {
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            axum::response::Html(
                "<!doctype html><meta charset=utf-8><title>Another site</title><h1>Another site</h1>",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_requests_are_refused() {
    let (_model, gw, _dir) = start("").await;
    let cookie = session_cookie(&gw.url, TOKEN).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // A page's security headers.
    let page = http
        .get(format!("{}/", gw.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200, "the signed-in Overview");
    let headers = page.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let csp = header("content-security-policy");
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "pages may be framed by other sites: {csp:?}"
    );
    assert!(
        !csp.contains("unsafe-inline"),
        "the CSP allows inline code: {csp:?}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let html = page.text().await.unwrap();
    let csrf = csrf_of(&html).expect("a page carries its CSRF token in <meta name=\"csrf-token\">");

    // A form posted from another site is refused, even carrying the
    // session's cookie and CSRF token.
    let r = http
        .post(format!("{}/pairing/telegram/XYZ/approve", gw.url))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "a form from another site was not refused"
    );

    // A script's request with the cookie but without X-CSRF-Token is
    // refused; with it, it is not.
    let reset = format!("{}/api/sessions/x/reset", gw.url);
    let r = http
        .post(&reset)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "a state-changing API request without X-CSRF-Token was not refused"
    );
    let r = http
        .post(&reset)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_ne!(
        r.status().as_u16(),
        403,
        "the same request with the session's X-CSRF-Token was refused"
    );

    // In the browser: the gateway's own page opens the WebSocket, another
    // site's page cannot, and its form is refused.
    let elsewhere = another_site().await;
    let browser = Browser::start().await;
    browser.sign_in(&gw.url, TOKEN).await;
    let ws_url = format!("{}/api/ws", gw.url.replacen("http://", "ws://", 1));
    let own = open_socket(&browser, &ws_url).await;
    if own != "open" {
        let page = browser.describe().await;
        panic!("the gateway's own page could not open /api/ws with its session ({own}); {page}");
    }
    browser.open(&elsewhere).await;
    browser.heading("Another site").await;
    let foreign = open_socket(&browser, &ws_url).await;
    assert_ne!(
        foreign, "open",
        "a page of another site ({elsewhere}) opened the gateway's WebSocket with the operator's session"
    );
    let _ = browser
        .execute(
            POST_FORM,
            vec![json!(format!("{}/pairing/telegram/XYZ/approve", gw.url))],
        )
        .await;
    browser.heading("Refused").await;
    browser.quit().await;

    // A WebSocket ticket works once; the token does not help another site.
    let (status, _, body) = gw.post_json("/api/ws/ticket", &json!({}), &[]).await;
    assert_eq!(status, 200, "{body}");
    let ticket: Value = serde_json::from_str(&body).unwrap();
    let with_ticket = format!("{ws_url}?ticket={}", ticket["ticket"].as_str().unwrap());
    assert!(
        tokio_tungstenite::connect_async(with_ticket.as_str())
            .await
            .is_ok(),
        "a fresh WebSocket ticket was refused"
    );
    assert!(
        tokio_tungstenite::connect_async(with_ticket.as_str())
            .await
            .is_err(),
        "a WebSocket ticket worked twice"
    );
    let mut foreign = format!("{ws_url}?token={TOKEN}")
        .into_client_request()
        .unwrap();
    foreign.headers_mut().insert(
        "origin",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_static("http://evil.example"),
    );
    match tokio_tungstenite::connect_async(foreign).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 403, "{resp:?}");
        }
        Err(e) => panic!("a WebSocket with a foreign Origin failed, but not with 403: {e}"),
        Ok(_) => panic!("a WebSocket with a foreign Origin was accepted"),
    }
}

/// Neither the control token nor the provider's key is in the page.
async fn assert_no_secrets(browser: &Browser, when: &str) {
    let source = browser.source().await.expect("the page's source");
    for (name, secret) in [
        ("the control token (gateway.auth.token)", TOKEN),
        ("the provider's api_key", API_KEY),
    ] {
        assert!(
            !source.contains(secret),
            "{name} was sent to the browser: it is in the Config page's source {when}"
        );
    }
}

/// Replace `arguments[0]` with `arguments[1]` in the config editor, as
/// an edit would; false when the editor does not contain it.
const EDIT_CONFIG: &str = "
    const t = document.getElementById('config-text');
    if (!t || !t.value.includes(arguments[0])) return false;
    t.value = t.value.split(arguments[0]).join(arguments[1]);
    t.dispatchEvent(new Event('input', { bubbles: true }));
    return true;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_validation_shows_the_error_of_a_key() {
    let (model, gw, _dir) = start("").await;
    let on_disk = std::fs::read(&gw.config_path).expect("the config file");
    let browser = Browser::start().await;
    browser.sign_in(&gw.url, TOKEN).await;
    browser.nav("Config").await;
    browser
        .wait_for(
            "the config editor (textarea#config-text)",
            By::Css("textarea#config-text"),
        )
        .await;
    assert_no_secrets(&browser, "as it opens").await;

    let edited = browser
        .run(EDIT_CONFIG, vec![json!(model.base_url()), json!("nope")])
        .await;
    assert_eq!(
        edited,
        json!(true),
        "the config editor does not show providers.fake.base_url ({})",
        model.base_url()
    );
    browser
        .find_button("Validate")
        .await
        .click()
        .await
        .expect("press Validate");
    let key = "providers.fake.base_url";
    let error = browser
        .wait_for(
            &format!("the error of {key} (ul#config-errors li[data-key=\"{key}\"])"),
            By::Css(format!("ul#config-errors li[data-key=\"{key}\"]")),
        )
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        error.contains("nope") || error.to_lowercase().contains("url"),
        "the error of {key} should say what is wrong with `nope`: {error:?}"
    );
    assert_eq!(
        std::fs::read(&gw.config_path).expect("the config file"),
        on_disk,
        "Validate changed the config file"
    );
    assert_no_secrets(&browser, "after Validate").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_on_the_config_page_applies_to_the_next_turn() {
    let (model, gw, _dir) = start("").await;
    let browser = Browser::start().await;
    browser.sign_in(&gw.url, TOKEN).await;
    browser.nav("Config").await;
    browser
        .wait_for(
            "the config editor (textarea#config-text)",
            By::Css("textarea#config-text"),
        )
        .await;
    let edited = browser
        .run(
            EDIT_CONFIG,
            vec![
                json!("You are the test assistant."),
                json!("You are the edited assistant."),
            ],
        )
        .await;
    assert_eq!(edited, json!(true), "the editor does not show the prompt");
    browser
        .find_button("Save")
        .await
        .click()
        .await
        .expect("press Save");
    let notice = browser
        .wait_for("the notice of the save (p.notice)", By::Css("p.notice"))
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(
        notice.contains("Saved and reloaded") && notice.contains("agents"),
        "the notice should say the agents were applied: {notice:?}"
    );
    let (status, _) = gw.chat("uma", "who are you?").await;
    assert_eq!(status, 200);
    let seen = model.seen();
    let system = &seen.last().expect("a request").body["messages"][0]["content"];
    assert_eq!(system, "You are the edited assistant.");
    browser.quit().await;
}
