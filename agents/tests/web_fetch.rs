//! `web_fetch` against a local server: bounded, and refusing loopback by
//! default.

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use serde_json::json;
use switchboard_agents::tools::{Tool, ToolContext, WebFetch, WebFetchSettings};

async fn serve() -> String {
    let app = Router::new()
        .route(
            "/page",
            get(|| async {
                (
                    [("content-type", "text/html")],
                    "<html><body><h1>Hello</h1><p>world</p></body></html>",
                )
            }),
        )
        .route(
            "/big",
            get(|| async { ([("content-type", "text/plain")], "x".repeat(10_000)) }),
        )
        .route("/hop", get(|| async { Redirect::temporary("/page") }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn allowed(max_bytes: usize) -> WebFetch {
    WebFetch::new(WebFetchSettings {
        allow_private: true,
        max_bytes,
        ..WebFetchSettings::default()
    })
}

#[tokio::test]
async fn pages_are_read_as_text_and_cut_at_the_limit() {
    let base = serve().await;
    let out = allowed(1000)
        .call(
            json!({ "url": format!("{base}/hop") }),
            ToolContext::default(),
        )
        .await;
    assert!(!out.is_error, "{}", out.content);
    assert!(
        out.content.contains("HTTP 200") && out.content.contains("Hello\nworld"),
        "{}",
        out.content
    );
    let out = allowed(1000)
        .call(
            json!({ "url": format!("{base}/big") }),
            ToolContext::default(),
        )
        .await;
    assert!(out.content.contains("[cut off after 1000 bytes]"));
    assert!(out.content.len() < 1200);
    let out = allowed(1000)
        .call(
            json!({ "url": format!("{base}/loop") }),
            ToolContext::default(),
        )
        .await;
    assert!(
        out.is_error && out.content.contains("redirects"),
        "{}",
        out.content
    );
}

#[tokio::test]
async fn loopback_and_odd_schemes_are_refused_by_default() {
    let base = serve().await;
    let tool = WebFetch::default();
    for url in [
        format!("{base}/page"),
        base.replace("127.0.0.1", "localhost") + "/page",
    ] {
        let out = tool
            .call(json!({ "url": url }), ToolContext::default())
            .await;
        assert!(out.is_error, "{url}: {}", out.content);
        assert!(
            out.content.contains("loopback, private or link-local"),
            "{}",
            out.content
        );
    }
    let out = tool
        .call(
            json!({ "url": "file:///etc/passwd" }),
            ToolContext::default(),
        )
        .await;
    assert!(
        out.is_error && out.content.contains("only http and https"),
        "{}",
        out.content
    );
    let out = tool.call(json!({}), ToolContext::default()).await;
    assert!(out.is_error && out.content.contains("`url` is required"));
}
