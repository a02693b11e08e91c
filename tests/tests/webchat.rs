//! End to end through the web chat: the real binary, the OpenAI-compatible
//! API, and a fake model server speaking real SSE.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::fake_openai::{Behavior, FakeOpenAi, echo_answer};
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port};
use switchboard_tests::sse;

async fn setup(extra: &str) -> (FakeOpenAi, Gateway, tempfile::TempDir) {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), extra)).await;
    (fake, gw, dir)
}

/// Ask without waiting: the request runs in the background.
fn spawn_chat(
    gw: &Gateway,
    user: &str,
    text: &str,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let request = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(TOKEN)
        .json(&json!({ "model": "main", "user": user, "messages": [{ "role": "user", "content": text }] }));
    tokio::spawn(request.send())
}

#[tokio::test]
async fn streamed_answer_in_openai_format() {
    let (fake, gw, _dir) = setup("").await;
    let body = json!({
        "model": "main",
        "user": "alice",
        "stream": true,
        "stream_options": { "include_usage": true },
        "messages": [{ "role": "user", "content": "hello there" }],
    });
    let (status, headers, text) = gw.post_json("/v1/chat/completions", &body, &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse::events(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let (answer, chunks) = sse::completion_text(&text);
    assert_eq!(answer, echo_answer("hello there"));
    assert!(
        chunks.len() > 3,
        "the answer arrives in several chunks: {text}"
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("a usage chunk");
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    // The model got the agent's system prompt and the message, with the key.
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].messages(),
        vec![
            ("system".into(), "You are the test assistant.".into()),
            ("user".into(), "hello there".into())
        ]
    );
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer sk-test-key"));
    assert_eq!(seen[0].body["stream"], true);
}

#[tokio::test]
async fn whole_answer_and_models_list() {
    let (_fake, gw, _dir) = setup("").await;
    let (status, v) = gw.chat("alice", "what is up").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        echo_answer("what is up")
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let (status, models) = gw.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "main");
}

#[tokio::test]
async fn history_is_kept_across_turns_of_one_user() {
    let (fake, gw, _dir) = setup("").await;
    assert_eq!(gw.chat("bob", "my name is Bob").await.0, 200);
    let (status, v) = gw.chat("bob", "what is my name?").await;
    assert_eq!(status, 200, "{v}");
    let second = &fake.seen()[1];
    assert_eq!(
        second.messages(),
        vec![
            ("system".into(), "You are the test assistant.".into()),
            ("user".into(), "my name is Bob".into()),
            ("assistant".into(), echo_answer("my name is Bob")),
            ("user".into(), "what is my name?".into()),
        ],
        "the gateway supplies the history; the client sent only the new message"
    );
    let transcript = gw.transcript("agent:main:webchat:dm:bob").await.unwrap();
    assert_eq!(transcript.len(), 4);
}

#[tokio::test]
async fn separate_users_have_separate_sessions() {
    let (fake, gw, _dir) = setup("").await;
    assert_eq!(gw.chat("alice", "alice's secret").await.0, 200);
    assert_eq!(gw.chat("carol", "hi from carol").await.0, 200);
    let carol = &fake.seen()[1];
    assert!(
        !carol.messages().iter().any(|(_, c)| c.contains("alice")),
        "carol's conversation must not contain alice's: {:?}",
        carol.messages()
    );
    let (_, v) = gw.get("/api/sessions").await;
    let mut keys: Vec<&str> = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["agent:main:webchat:dm:alice", "agent:main:webchat:dm:carol"]
    );
}

#[tokio::test]
async fn a_message_delivered_twice_is_answered_once() {
    let (fake, mut gw, _dir) = setup("").await;
    let body = json!({ "model": "main", "user": "dave", "messages": [{ "role": "user", "content": "once only" }] });
    let key = [("Idempotency-Key", "msg-42")];
    let (s1, _, t1) = gw.post_json("/v1/chat/completions", &body, &key).await;
    assert_eq!(s1, 200, "{t1}");
    let first: Value = serde_json::from_str(&t1).unwrap();
    assert_eq!(
        first["choices"][0]["message"]["content"],
        echo_answer("once only")
    );

    // The repeat after the answer gets the same body, not an error.
    let (s2, _, t2) = gw.post_json("/v1/chat/completions", &body, &key).await;
    assert_eq!(s2, 200, "{t2}");
    let second: Value = serde_json::from_str(&t2).unwrap();
    assert_eq!(second, first, "the same body");

    // Asked as a stream, the repeat streams the same answer.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({ "include_usage": true });
    let (s3, _, t3) = gw.post_json("/v1/chat/completions", &streamed, &key).await;
    assert_eq!(s3, 200, "{t3}");
    assert_eq!(sse::events(&t3).last().map(String::as_str), Some("[DONE]"));
    let (text, chunks) = sse::completion_text(&t3);
    assert_eq!(text, echo_answer("once only"));
    assert!(chunks.iter().all(|c| c["id"] == first["id"]), "{t3}");
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(usage["usage"], first["usage"]);
    assert_eq!(fake.seen().len(), 1, "the model was asked once");
    let transcript = gw.transcript("agent:main:webchat:dm:dave").await.unwrap();
    assert_eq!(transcript.iter().filter(|(r, _)| r == "user").count(), 1);

    // After a restart the answer comes from the store.
    let stopped = gw.terminate().await;
    assert!(stopped.success(), "{stopped:?}:\n{}", gw.log());
    gw.restart().await;
    let (s4, _, t4) = gw.post_json("/v1/chat/completions", &body, &key).await;
    assert_eq!(s4, 200, "{t4}");
    let after: Value = serde_json::from_str(&t4).unwrap();
    assert_eq!(after["id"], first["id"]);
    assert_eq!(
        after["choices"][0]["message"]["content"],
        first["choices"][0]["message"]["content"]
    );
    assert_eq!(fake.seen().len(), 1, "not asked again after the restart");
}

#[tokio::test]
async fn a_message_accepted_before_a_crash_is_answered_after_restart() {
    let (fake, mut gw, _dir) = setup("").await;
    fake.set(Behavior::Hold);
    let pending = spawn_chat(&gw, "erin", "survive this");
    // The message reached the model: it was accepted. Now crash.
    let first = fake.next_request().await;
    assert_eq!(first.messages().last().unwrap().1, "survive this");
    gw.kill();
    assert!(pending.await.unwrap().is_err(), "the client saw the crash");

    fake.set(Behavior::Echo);
    gw.restart().await;
    let again = fake.next_request().await;
    assert_eq!(
        again.messages().last().unwrap().1,
        "survive this",
        "picked up after restart"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let transcript = loop {
        if let Some(t) = gw.transcript("agent:main:webchat:dm:erin").await {
            if t.iter().any(|(r, _)| r == "assistant") {
                break t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not answered after restart:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        transcript,
        vec![
            ("user".into(), "survive this".into()),
            ("assistant".into(), echo_answer("survive this"))
        ],
        "answered exactly once"
    );
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test]
async fn a_failing_provider_gives_a_clear_error_and_the_session_goes_on() {
    let (fake, gw, _dir) = setup("").await;
    fake.set(Behavior::Fail(500, "the fake model melted".into()));
    let (status, v) = gw.chat("frank", "hello?").await;
    assert_eq!(status, 502, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("the fake model melted"), "{message}");
    assert!(
        message.contains("`fake`") && message.contains("500"),
        "names the provider and status: {message}"
    );

    // Streaming: an error event in OpenAI's shape, then the stream ends.
    let body = json!({ "model": "main", "user": "frank", "stream": true, "messages": [{ "role": "user", "content": "again?" }] });
    let (status, _, text) = gw.post_json("/v1/chat/completions", &body, &[]).await;
    assert_eq!(status, 200);
    let errors: Vec<Value> = sse::events(&text)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|v| v.get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(
        errors[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("melted")
    );

    // Not wedged: once the provider is back, the same session answers.
    fake.set(Behavior::Echo);
    let (status, v) = gw.chat("frank", "better now?").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        echo_answer("better now?")
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_reported_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let gw = Gateway::start(
        dir.path(),
        &config(free_port(), &format!("http://127.0.0.1:{closed}/v1"), ""),
    )
    .await;
    let (status, v) = gw.chat("gina", "anyone there?").await;
    assert_eq!(status, 502, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot reach the model provider `fake`"),
        "{message}"
    );
    assert!(
        message.contains(&format!("127.0.0.1:{closed}")),
        "{message}"
    );
    let (_, status) = gw.get("/api/status").await;
    assert_eq!(
        status["components"]["provider:fake"]["state"], "failed",
        "{status}"
    );
}

#[tokio::test]
async fn control_api_needs_the_token_and_health_does_not() {
    let (_fake, gw, _dir) = setup("").await;
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready: Value = c
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    let r = c
        .get(format!("{}/api/sessions", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth("wrong-token-000000000")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, _) = gw.get("/api/status").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sigterm_finishes_the_running_turn_then_exits_zero() {
    let (fake, mut gw, _dir) = setup("").await;
    fake.set(Behavior::Hold);
    let pending = spawn_chat(&gw, "hank", "finish me");
    fake.next_request().await;
    gw.signal_term();
    // Draining: no longer ready, but the running turn may finish.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = reqwest::get(format!("{}/readyz", gw.url)).await.unwrap();
        if r.status() == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "readyz never reported the drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.release();
    let pid_exit = gw.wait_exit().await;
    assert!(
        pid_exit.success(),
        "exit status {pid_exit:?}:\n{}",
        gw.log()
    );
    let answer: Value = pending.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        echo_answer("finish me")
    );
}

#[tokio::test]
async fn a_failing_provider_falls_back_to_the_next_for_that_turn() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let extra = format!(
        r#"[providers.down]
kind = "openai"
base_url = "http://127.0.0.1:{closed}/v1"
model = "nothing"
max_retries = 0

[agents.backed]
provider = "down"
fallbacks = ["fake/fake-model-2"]
"#
    );
    let gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), &extra)).await;
    let body = json!({ "model": "backed", "user": "olga", "messages": [{ "role": "user", "content": "anyone?" }] });
    let (status, _, text) = gw.post_json("/v1/chat/completions", &body, &[]).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        echo_answer("anyone?")
    );
    assert_eq!(
        fake.seen()[0].body["model"],
        "fake-model-2",
        "the fallback's own model was asked"
    );
}

#[tokio::test]
async fn a_tool_call_streamed_in_pieces_runs_and_its_result_reaches_the_model() {
    let (fake, gw, _dir) = setup("").await;
    let (status, v) = gw.chat("tess", "use tool session_status").await;
    assert_eq!(status, 200, "{v}");
    let answer = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(answer.starts_with("tool said: "), "{answer}");
    assert!(
        answer.contains("agent:main:webchat:dm:tess"),
        "the tool saw its session: {answer}"
    );
    let seen = fake.seen();
    assert_eq!(
        seen.len(),
        2,
        "one call that asked for the tool, one with its result"
    );
    let offered: Vec<&str> = seen[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        offered.contains(&"current_time") && offered.contains(&"session_status"),
        "{offered:?}"
    );
    assert!(
        !offered.contains(&"exec"),
        "no shell for the default profile"
    );
    let second = &seen[1].body["messages"];
    let n = second.as_array().unwrap().len();
    assert_eq!(
        second[n - 2]["tool_calls"][0]["function"]["arguments"],
        r#"{"why": "the test"}"#,
        "pieces joined"
    );
    assert_eq!(second[n - 1]["role"], "tool");
    assert_eq!(second[n - 1]["tool_call_id"], "call_1");
}

#[tokio::test]
async fn usage_is_stored_and_a_spent_daily_budget_stops_new_turns() {
    let (fake, gw, _dir) = setup("[agents.main.tools]\nprofile = \"minimal\"\n\n[agents.thrifty]\nprovider = \"fake\"\ndaily_token_budget = 1\n").await;
    assert_eq!(gw.chat("uma", "count me").await.0, 200);
    let (status, v) = gw.chat("uma", "and again").await;
    assert_eq!(status, 200, "{v}");
    let prompt = v["usage"]["prompt_tokens"].as_u64().unwrap();
    let (_, shown) = gw
        .get("/api/sessions/agent%3Amain%3Awebchat%3Adm%3Auma")
        .await;
    assert_eq!(shown["usage"]["turns"], 2, "{shown}");
    assert!(shown["usage"]["input_tokens"].as_u64().unwrap() >= prompt);
    let (_, today) = gw.get("/api/usage").await;
    assert_eq!(today["agents"]["main"]["turns"], 2, "{today}");
    let (_, v) = gw.chat("uma", "/status").await;
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("Tokens in this session:"), "{text}");

    // The thrifty agent's first turn spends its budget; the next is refused.
    let ask = |text: &str| json!({ "model": "thrifty", "user": "vic", "messages": [{ "role": "user", "content": text }] });
    let (status, _, body) = gw.post_json("/v1/chat/completions", &ask("one"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let calls = fake.seen().len();
    let (status, _, body) = gw.post_json("/v1/chat/completions", &ask("two"), &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("token budget of agent `thrifty`"), "{body}");
    assert_eq!(fake.seen().len(), calls, "the model was not asked");
}

#[tokio::test]
async fn compact_by_hand_keeps_recent_messages_and_a_summary() {
    let (fake, gw, _dir) = setup("[agents.main.tools]\nprofile = \"minimal\"\n\n[channels.webchat.rate_limit]\nper_minute = 0\n").await;
    // keep_recent_messages defaults to 8: make 6 exchanges (12 entries).
    for i in 0..6 {
        assert_eq!(gw.chat("wes", &format!("fact number {i}")).await.0, 200);
    }
    let (status, v) = gw.chat("wes", "/compact").await;
    assert_eq!(status, 200);
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("Compacted 4 earlier messages"), "{text}");
    let summary_call = fake.seen().pop().unwrap();
    assert!(
        summary_call.messages()[0]
            .1
            .contains("compacting a conversation"),
        "the model was asked to summarize"
    );
    assert!(summary_call.messages()[1].1.contains("fact number 0"));
    assert_eq!(gw.chat("wes", "what do you know?").await.0, 200);
    let next = fake.seen().pop().unwrap();
    let msgs = next.messages();
    assert!(
        msgs[1]
            .1
            .starts_with("Summary of the earlier conversation:"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].1.contains("fact number 0"),
        "the summary carries the old facts"
    );
    assert!(
        !msgs[2..].iter().any(|(_, c)| c == "fact number 0"),
        "summarized messages are not repeated"
    );
    assert!(
        msgs.iter().any(|(_, c)| c == "fact number 5"),
        "recent messages are kept whole"
    );
}

#[tokio::test]
async fn a_context_overflow_compacts_once_and_retries_once() {
    let (fake, gw, _dir) =
        setup("[agents.tight]\nprovider = \"fake\"\nkeep_recent_messages = 2\n").await;
    let ask = |text: &str| json!({ "model": "tight", "user": "xia", "messages": [{ "role": "user", "content": text }] });
    for i in 0..3 {
        let (status, _, body) = gw
            .post_json("/v1/chat/completions", &ask(&format!("note {i}")), &[])
            .await;
        assert_eq!(status, 200, "{body}");
    }
    fake.set(Behavior::FailOnce(
        400,
        "This model's maximum context length is 8192 tokens".into(),
    ));
    let before = fake.seen().len();
    let (status, _, body) = gw
        .post_json("/v1/chat/completions", &ask("still there?"), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        echo_answer("still there?")
    );
    assert_eq!(
        fake.seen().len() - before,
        4,
        "the refused call, the chance to save memories before compaction, the summary, the retry"
    );

    // A provider that keeps saying so gets one retry, not a loop.
    fake.set(Behavior::Fail(400, "prompt is too long".into()));
    let before = fake.seen().len();
    let (status, _, body) = gw
        .post_json("/v1/chat/completions", &ask("and now?"), &[])
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        fake.seen().len() - before <= 4,
        "bounded (the refused call, the memory flush, the summary, the retry): {} calls",
        fake.seen().len() - before
    );
}

#[tokio::test]
async fn a_system_prompt_can_live_in_a_file_of_the_agents_workspace() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("PROMPT.md"), "You speak like a lighthouse keeper.").unwrap();
    let extra = format!(
        "[agents.keeper]\nprovider = \"fake\"\nworkspace = \"{}\"\nsystem_prompt_file = \"PROMPT.md\"\n",
        ws.display()
    );
    let gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), &extra)).await;
    let body = json!({ "model": "keeper", "user": "ned", "messages": [{ "role": "user", "content": "hello" }] });
    let (status, _, text) = gw.post_json("/v1/chat/completions", &body, &[]).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        fake.seen()[0].messages()[0],
        (
            "system".to_string(),
            "You speak like a lighthouse keeper.".to_string()
        )
    );

    // A missing file stops the start with the key named.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        config(
            free_port(),
            &fake.base_url(),
            "[agents.lost]\nprovider = \"fake\"\nsystem_prompt_file = \"NOPE.md\"\n",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(switchboard_tests::gateway::binary())
        .arg("--config")
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path().join("bad-data"))
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agents.lost.system_prompt_file") && err.contains("NOPE.md"),
        "{err}"
    );
}

/// A chat completion request with `text`, as `user` (none: a one-off).
fn ask_body(user: Option<&str>, text: &str, stream: bool) -> Value {
    let mut body = json!({ "model": "main", "stream": stream, "messages": [{ "role": "user", "content": text }] });
    if let Some(user) = user {
        body["user"] = json!(user);
    }
    body
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_get_one_answer() {
    let (fake, gw, _dir) = setup("").await;
    fake.set(Behavior::Hold);
    let client = reqwest::Client::new();
    let post = |stream: bool| {
        client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", "together-1")
            .json(&ask_body(Some("kim"), "say it once", stream))
    };
    let first = tokio::spawn(post(false).send());
    // The first request reached the model, whose answer is held half-way.
    fake.next_request().await;
    // The second asks for a stream: its headers come once it waits beside
    // the first.
    let second = post(true).send().await.unwrap();
    assert_eq!(second.status(), 200);
    fake.release();
    let streamed = second.text().await.unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(
        first.status(),
        200,
        "the first request's wait was not taken by the second"
    );
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        first["choices"][0]["message"]["content"],
        echo_answer("say it once")
    );
    let (text, chunks) = sse::completion_text(&streamed);
    assert_eq!(text, echo_answer("say it once"), "{streamed}");
    assert!(chunks.iter().all(|c| c["id"] == first["id"]), "{streamed}");
    assert_eq!(fake.seen().len(), 1, "the model was asked once");
    let transcript = gw.transcript("agent:main:webchat:dm:kim").await.unwrap();
    assert_eq!(
        transcript,
        vec![
            ("user".into(), "say it once".into()),
            ("assistant".into(), echo_answer("say it once"))
        ]
    );

    // A third, after both: the same body as the first.
    let (status, _, text) = gw
        .post_json(
            "/v1/chat/completions",
            &ask_body(Some("kim"), "say it once", false),
            &[("Idempotency-Key", "together-1")],
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), first);
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn a_repeated_one_off_request_is_answered_once_with_its_history_written_once() {
    let (fake, gw, _dir) = setup("").await;
    let body = json!({ "model": "main", "messages": [
        { "role": "user", "content": "first question" },
        { "role": "assistant", "content": "first answer" },
        { "role": "user", "content": "second question" },
    ] });
    let key = [("Idempotency-Key", "one-off-repeat-1")];
    let (s1, _, t1) = gw.post_json("/v1/chat/completions", &body, &key).await;
    assert_eq!(s1, 200, "{t1}");
    let (s2, _, t2) = gw.post_json("/v1/chat/completions", &body, &key).await;
    assert_eq!(s2, 200, "{t2}");
    let first: Value = serde_json::from_str(&t1).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&t2).unwrap(), first);
    assert_eq!(
        first["choices"][0]["message"]["content"],
        echo_answer("second question")
    );
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "the model was asked once");
    let messages = seen[0].messages();
    assert_eq!(
        messages
            .iter()
            .filter(|(_, c)| c == "first question")
            .count(),
        1,
        "the request's history reached the model once: {messages:?}"
    );
}

#[tokio::test]
async fn one_off_requests_past_the_limit_are_refused_before_any_work() {
    let (fake, gw, _dir) =
        setup("[channels.webchat.rate_limit]\nper_minute = 1\nburst = 2\n").await;
    for i in 0..2 {
        let (status, _, text) = gw
            .post_json(
                "/v1/chat/completions",
                &ask_body(None, &format!("one-off {i}"), false),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{text}");
    }
    let (status, headers, text) = gw
        .post_json(
            "/v1/chat/completions",
            &ask_body(None, "one too many", false),
            &[],
        )
        .await;
    assert_eq!(status, 429, "{text}");
    let wait: u64 = headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("user"),
        "{v}"
    );
    // Streamed, the refusal is the same status, before any stream.
    let (status, headers, _) = gw
        .post_json(
            "/v1/chat/completions",
            &ask_body(None, "streamed, one too many", true),
            &[],
        )
        .await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        fake.seen().len(),
        2,
        "the refused requests never reached the model"
    );
    // A named user is a sender of its own, limited by the pipeline.
    let (status, v) = gw.chat("lee", "still there?").await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn a_one_off_session_is_removed_with_its_transcript_once_answered() {
    let (_fake, gw, _dir) = setup("").await;
    let body = serde_json::json!({
        "model": "main",
        "messages": [
            { "role": "user", "content": "my secret plan" },
            { "role": "assistant", "content": "noted" },
            { "role": "user", "content": "what was it?" }
        ]
    });
    let (status, _, text) = gw.post_json("/v1/chat/completions", &body, &[]).await;
    assert_eq!(status, 200, "{text}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, v) = gw.get("/api/sessions?limit=1000").await;
        let one_offs: Vec<String> = v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["key"].as_str())
            .filter(|k| k.contains("oneoff-"))
            .map(str::to_string)
            .collect();
        if one_offs.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the one-off session is still there after its answer: {one_offs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_idempotency_key_is_the_clients_own() {
    let (fake, gw, _dir) = setup("").await;
    let key = [("Idempotency-Key", "shared-key-1")];
    let ask = |user: &str, text: &str| ask_body(Some(user), text, false);
    let (status, _, ann) = gw
        .post_json("/v1/chat/completions", &ask("ann", "ann's question"), &key)
        .await;
    assert_eq!(status, 200, "{ann}");
    // Another user with the same key is another request.
    let (status, _, bob) = gw
        .post_json("/v1/chat/completions", &ask("bob", "bob's question"), &key)
        .await;
    assert_eq!(status, 200, "{bob}");
    let said = |text: &str| {
        let v: Value = serde_json::from_str(text).unwrap();
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(said(&ann), echo_answer("ann's question"));
    assert_eq!(
        said(&bob),
        echo_answer("bob's question"),
        "bob got ann's answer"
    );
    // The same user and key with another message is a new request too;
    // repeated as it was, it is answered from the first.
    let (_, _, again) = gw
        .post_json(
            "/v1/chat/completions",
            &ask("ann", "another question"),
            &key,
        )
        .await;
    assert_eq!(said(&again), echo_answer("another question"));
    let (_, _, repeat) = gw
        .post_json("/v1/chat/completions", &ask("ann", "ann's question"), &key)
        .await;
    assert_eq!(said(&repeat), echo_answer("ann's question"));
    assert_eq!(fake.seen().len(), 3, "the repeat did not ask the model");
}
