//! A gateway whose agent runs on an Anthropic provider.

use serde_json::json;
use switchboard_tests::fake_anthropic::{FakeAnthropic, claude_answer};
use switchboard_tests::gateway::{Gateway, TOKEN, free_port};
use switchboard_tests::sse;

#[tokio::test]
async fn an_anthropic_agent_streams_its_answer_through_the_web_chat() {
    let fake = FakeAnthropic::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        r#"[gateway]
bind = "127.0.0.1:{port}"

[gateway.auth]
token = "{TOKEN}"

[providers.claude]
kind = "anthropic"
base_url = "{}"
model = "claude-test"
api_key = "sk-ant-test"

[agents.main]
provider = "claude"
system_prompt = "You are brief."
"#,
        fake.base_url()
    );
    let gw = Gateway::start(dir.path(), &config).await;
    let body = json!({ "model": "main", "user": "zoe", "stream": true, "messages": [{ "role": "user", "content": "bonjour" }] });
    let (status, _, text) = gw.post_json("/v1/chat/completions", &body, &[]).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(sse::completion_text(&text).0, claude_answer("bonjour"));
    let (status, v) = gw.chat("zoe", "encore").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 6);
    let seen = fake.seen();
    let (second, headers) = &seen[seen.len() - 1];
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(second["system"], "You are brief.");
    let roles: Vec<&str> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user"],
        "history in Anthropic's alternating shape"
    );
    let (_, status) = gw.get("/api/status").await;
    assert_eq!(
        status["components"]["provider:claude"]["state"], "running",
        "{status}"
    );
}
