//! Tool calls that wait for the operator: approved from the CLI, denied from
//! the API, and denied by themselves when nobody answers.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::fake_openai::FakeOpenAi;
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port};

const GUARDED: &str = r#"
[agents.guarded]
provider = "fake"

[agents.guarded.tools]
profile = "minimal"

[agents.guarded.approvals]
mode = "always"
tools = ["session_status"]
timeout_secs = 2
"#;

fn ask(gw: &Gateway, user: &str) -> tokio::task::JoinHandle<Value> {
    let request = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(TOKEN)
        .json(&json!({ "model": "guarded", "user": user, "messages": [{ "role": "user", "content": "use tool session_status" }] }));
    tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() })
}

/// Wait for the one pending approval request and return its id.
async fn pending(gw: &Gateway) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = gw.get("/api/approvals").await;
        if let Some(first) = v["approvals"].as_array().and_then(|a| a.first()) {
            return first.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no approval request appeared:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn answer(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn approve_from_the_cli_deny_from_the_api_and_time_out() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), GUARDED)).await;

    // Approved from the CLI: the tool runs and the model gets its result.
    let reply = ask(&gw, "amy");
    let req = pending(&gw).await;
    assert_eq!(req["tool"], "session_status");
    assert_eq!(req["session_key"], "agent:guarded:webchat:dm:amy");
    let id = req["id"].as_str().unwrap().to_string();
    let (status, out, err) = gw.cli(&["approvals", "list"]);
    assert!(status.success() && out.contains(&id), "{out}{err}");
    let (status, out, err) = gw.cli(&["approvals", "approve", &id]);
    assert!(status.success(), "{err}");
    assert!(out.contains("Approved"), "{out}");
    let text = answer(&reply.await.unwrap());
    assert!(
        text.contains("agent:guarded:webchat:dm:amy"),
        "the tool ran: {text}"
    );

    // Denied from the API: the model is told, nothing ran.
    let reply = ask(&gw, "ben");
    let id = pending(&gw).await["id"].as_str().unwrap().to_string();
    let (status, _, body) = gw
        .post_json(&format!("/api/approvals/{id}/deny"), &json!({}), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let text = answer(&reply.await.unwrap());
    assert!(
        text.contains("needs the operator's approval") && text.contains("api denied it"),
        "{text}"
    );
    let (status, _, _) = gw
        .post_json(&format!("/api/approvals/{id}/approve"), &json!({}), &[])
        .await;
    assert_eq!(status, 404, "decided once");

    // Nobody answers: denied after the timeout, recorded as such.
    let reply = ask(&gw, "cal");
    let id = pending(&gw).await["id"].as_str().unwrap().to_string();
    let text = answer(&reply.await.unwrap());
    assert!(text.contains("nobody answered"), "{text}");
    let (_, all) = gw.get("/api/approvals?all=true").await;
    let record = all["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(record["status"], "expired");
    assert_eq!(record["decided_by"], "timeout");
    let by: Vec<&str> = all["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["decided_by"].as_str())
        .collect();
    assert!(
        by.contains(&"cli") && by.contains(&"api"),
        "every decision is stored with who made it: {by:?}"
    );
}

#[tokio::test]
async fn approve_in_the_conversation_it_came_from_only() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = GUARDED.replace("timeout_secs = 2", "timeout_secs = 60");
    let gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), &extra)).await;
    let reply = ask(&gw, "dan");
    let id = pending(&gw).await["id"].as_str().unwrap().to_string();
    let say = |user: &str, text: String| json!({ "model": "guarded", "user": user, "messages": [{ "role": "user", "content": text }] });

    // Another conversation cannot decide it.
    let (status, _, body) = gw
        .post_json(
            "/v1/chat/completions",
            &say("eve", format!("/approve {id}")),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("no pending approval"), "{body}");

    // The conversation it came from can, while its turn waits.
    let (status, _, body) = gw
        .post_json(
            "/v1/chat/completions",
            &say("dan", format!("/approve {}", id.to_uppercase())),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Approved"), "{body}");
    let text = answer(&reply.await.unwrap());
    assert!(text.contains("agent:guarded:webchat:dm:dan"), "{text}");
    let (_, all) = gw.get("/api/approvals?all=true").await;
    assert_eq!(all["approvals"][0]["decided_by"], "chat:dan");
}
