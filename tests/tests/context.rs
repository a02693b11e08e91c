//! The context budget holds for what a tool brings in: a `web_fetch` of a
//! 256 KiB page with a 32k-token window reaches the model cut to its share
//! of the window, with the cut said, and the turn is answered.

use serde_json::Value;
use switchboard_tests::fake_openai::{FakeOpenAi, tool_answer};
use switchboard_tests::gateway::{Gateway, config_for, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_fetched_page_is_cut_to_the_window() {
    // A page of 256 KiB on this machine.
    let page = "all work and no play makes jack a dull boy\n".repeat(256 * 1024 / 43 + 1);
    let body = page.clone();
    let app = axum::Router::new().route(
        "/big",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = "context_window = 32768\n[agents.main.tools]\nprofile = \"messaging\"\n";
    let extra = "[tools.web_fetch]\nallow_private = true\n";
    let gw = Gateway::start(
        dir.path(),
        &config_for(free_port(), &model.base_url(), agent, extra),
    )
    .await;
    let ask = format!("use tool web_fetch {{\"url\": \"http://{addr}/big\"}}");
    let (status, v) = gw.chat("reader", &ask).await;
    assert_eq!(status, 200, "{v}");
    let seen = model.seen();
    let with_result = seen
        .iter()
        .find(|r| r.messages().last().is_some_and(|(role, _)| role == "tool"))
        .expect("the tool's result went to the model");
    let (_, result) = with_result.messages().last().unwrap().clone();
    // A quarter of the window, at four bytes a token.
    assert!(
        result.len() <= 32768,
        "the result took {} bytes of a 32k-token window",
        result.len()
    );
    assert!(result.len() < page.len() / 4);
    assert!(
        result.contains("[cut:"),
        "the model is told the result was cut: …{}",
        &result[result.len().saturating_sub(300)..]
    );
    // The whole request stays inside the window (four bytes a token).
    let request_bytes: usize = with_result.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().map_or(0, str::len))
        .sum();
    assert!(request_bytes < 32768 * 4, "{request_bytes} bytes sent");
    let answer = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
    assert_eq!(answer, tool_answer(&result), "{}", Value::from(answer));
}
