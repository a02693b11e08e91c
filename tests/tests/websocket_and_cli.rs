//! The WebSocket protocol (`docs/protocol.md`) and the CLI against a running
//! gateway.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_tests::fake_openai::{FakeOpenAi, echo_answer};
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(gw: &Gateway) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = format!("{}/api/ws", gw.url.replace("http://", "ws://"));
    // A program sends the token in a header; it never goes in the URL.
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket")
        .0
}

async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn request(ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
    ws.send(Message::Text(
        json!({ "id": id, "method": method, "params": params })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        let f = next_frame(ws).await;
        if f["type"] == "response" && f["id"] == id {
            return f;
        }
    }
}

#[tokio::test]
async fn websocket_chat_streams_events_and_reads_sessions() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), "")).await;
    let mut ws = connect(&gw).await;

    let res = request(
        &mut ws,
        1,
        "chat.send",
        json!({ "text": "hi over ws", "user": "ivy", "message_id": "ws-1" }),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["result"]["session_key"], "agent:main:webchat:dm:ivy");
    let mut text = String::new();
    let done = loop {
        let f = next_frame(&mut ws).await;
        assert_eq!(f["type"], "event", "{f}");
        assert_eq!(f["data"]["message_id"], "ws-1");
        match f["event"].as_str().unwrap() {
            "chat.started" => {}
            "chat.delta" => text.push_str(f["data"]["text"].as_str().unwrap()),
            "chat.done" => break f,
            other => panic!("unexpected event {other}: {f}"),
        }
    };
    assert_eq!(
        text,
        echo_answer("hi over ws"),
        "the deltas make up the answer"
    );
    assert_eq!(done["data"]["text"], echo_answer("hi over ws"));

    // The same message id again is refused, not answered twice.
    let dup = request(
        &mut ws,
        2,
        "chat.send",
        json!({ "text": "hi over ws", "user": "ivy", "message_id": "ws-1" }),
    )
    .await;
    assert_eq!(dup["ok"], false);
    assert_eq!(dup["error"]["code"], "duplicate_message");
    assert_eq!(fake.seen().len(), 1);

    let list = request(&mut ws, 3, "sessions.list", json!({})).await;
    assert_eq!(
        list["result"]["sessions"][0]["key"],
        "agent:main:webchat:dm:ivy"
    );
    let got = request(
        &mut ws,
        4,
        "sessions.get",
        json!({ "key": "agent:main:webchat:dm:ivy" }),
    )
    .await;
    let transcript = got["result"]["transcript"].as_array().unwrap();
    assert_eq!(transcript.len(), 2);
    assert_eq!(transcript[1]["role"], "assistant");
    let health = request(&mut ws, 5, "health.get", json!({})).await;
    assert_eq!(health["result"]["ready"], true);
    let pairing = request(&mut ws, 6, "pairing.list", json!({})).await;
    assert_eq!(pairing["result"]["pending"], json!([]));
    let bad = request(
        &mut ws,
        7,
        "pairing.approve",
        json!({ "channel": "webchat", "code": "ABCDEFGH" }),
    )
    .await;
    assert_eq!(bad["error"]["code"], "no_such_code");
    let unknown = request(&mut ws, 8, "no.such", json!({})).await;
    assert_eq!(unknown["ok"], false);
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown method")
    );

    // A subscriber sees every session's events.
    let sub = request(&mut ws, 9, "events.subscribe", json!({})).await;
    assert_eq!(sub["ok"], true);
    assert_eq!(gw.chat("jack", "from http").await.0, 200);
    loop {
        let f = next_frame(&mut ws).await;
        if f["event"] == "chat.done" && f["data"]["session_key"] == "agent:main:webchat:dm:jack" {
            assert_eq!(f["data"]["text"], echo_answer("from http"));
            break;
        }
    }

    // Without the token the socket is refused.
    let url = format!("{}/api/ws", gw.url.replace("http://", "ws://"));
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}

#[tokio::test]
async fn cli_reads_and_resets_sessions_of_the_running_gateway() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), "")).await;
    assert_eq!(gw.chat("kim", "remember the lighthouse").await.0, 200);

    let (status, out, err) = gw.cli(&["status"]);
    assert!(status.success(), "{err}");
    assert!(out.contains("ready:    yes"), "{out}");
    assert!(out.contains("provider:fake"), "{out}");

    let (status, out, err) = gw.cli(&["sessions", "list"]);
    assert!(status.success(), "{err}");
    assert!(out.contains("agent:main:webchat:dm:kim"), "{out}");

    let (status, out, err) = gw.cli(&["sessions", "show", "agent:main:webchat:dm:kim"]);
    assert!(status.success(), "{err}");
    assert!(out.contains("remember the lighthouse"), "{out}");
    assert!(
        out.contains(&echo_answer("remember the lighthouse")),
        "{out}"
    );

    let (status, _, err) = gw.cli(&["sessions", "reset", "agent:main:webchat:dm:kim"]);
    assert!(status.success(), "{err}");
    assert_eq!(
        gw.transcript("agent:main:webchat:dm:kim").await.unwrap(),
        vec![],
        "a fresh session"
    );
    assert_eq!(gw.chat("kim", "what did I say?").await.0, 200);
    let last = fake.seen().pop().unwrap();
    assert!(
        !last
            .messages()
            .iter()
            .any(|(_, c)| c.contains("lighthouse")),
        "the reset session has no old history: {:?}",
        last.messages()
    );

    let (status, _, err) = gw.cli(&["sessions", "show", "agent:main:nope"]);
    assert!(!status.success());
    assert!(
        err.contains("there is no session `agent:main:nope`"),
        "{err}"
    );

    let (status, out, err) = gw.cli(&["pairing", "list"]);
    assert!(status.success(), "{err}");
    assert!(out.contains("No pending pairing requests"), "{out}");
    let (status, _, err) = gw.cli(&["pairing", "approve", "telegram", "ABCDEFGH"]);
    assert!(!status.success());
    assert!(err.contains("no pending pairing code"), "{err}");
}

#[tokio::test]
async fn chat_commands_new_and_status_work_through_web_chat() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), "")).await;
    assert_eq!(gw.chat("lee", "first topic").await.0, 200);
    let (status, v) = gw.chat("lee", "/status").await;
    assert_eq!(status, 200);
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        text.contains("agent:main:webchat:dm:lee") && text.contains("Turns in this session: 1"),
        "{text}"
    );
    let (status, v) = gw.chat("lee", "/new").await;
    assert_eq!(status, 200);
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("new session")
    );
    assert_eq!(gw.chat("lee", "second topic").await.0, 200);
    let last = fake.seen().pop().unwrap();
    assert_eq!(
        last.messages().len(),
        2,
        "system prompt and the new message only: {:?}",
        last.messages()
    );
    assert_eq!(fake.seen().len(), 2, "commands do not reach the model");
}

#[tokio::test]
async fn cli_says_plainly_when_no_gateway_runs() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("c.toml"),
        config(port, "http://127.0.0.1:9/v1", ""),
    )
    .unwrap();
    let out = std::process::Command::new(switchboard_tests::gateway::binary())
        .args(["--config"])
        .arg(dir.path().join("c.toml"))
        .arg("status")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not running") && err.contains("switchboard serve"),
        "{err}"
    );
}
