//! The Anthropic Messages provider against a local server speaking its SSE.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use futures::StreamExt;
use serde_json::{Value, json};
use switchboard_agents::{
    AnthropicProvider, ChatMessage, ModelRequest, Provider, ProviderError, ProviderEvent,
    ProviderSettings, ToolCall, ToolSpec, Usage,
};

fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {}\n\n", e["type"].as_str().unwrap(), e))
        .collect()
}

async fn serve(events: Vec<Value>) -> (String, Arc<Mutex<(Value, HeaderMap)>>) {
    let seen = Arc::new(Mutex::new((Value::Null, HeaderMap::new())));
    let record = seen.clone();
    let body = sse(&events);
    let app = Router::new().route(
        "/v1/messages",
        post(move |headers: HeaderMap, req: axum::Json<Value>| {
            *record.lock().unwrap() = (req.0, headers);
            let body = body.clone();
            async move { ([("content-type", "text/event-stream")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn provider(base_url: String) -> AnthropicProvider {
    AnthropicProvider::new(ProviderSettings {
        name: "claude".into(),
        base_url,
        api_key: Some("sk-ant-test".into()),
        model: "claude-test".into(),
        idle_timeout: Duration::from_secs(5),
        temperature: None,
        max_tokens: None,
        traceparent: None,
    })
}

fn start(input: u64, cached: u64) -> Value {
    json!({ "type": "message_start", "message": { "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-test",
        "usage": { "input_tokens": input, "cache_read_input_tokens": cached, "output_tokens": 1 } } })
}

#[tokio::test]
async fn text_streams_and_usage_counts_cached_tokens() {
    let (url, seen) = serve(vec![
        start(10, 90),
        json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
        json!({ "type": "ping" }),
        json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": "Hello" } }),
        json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": " there" } }),
        json!({ "type": "content_block_stop", "index": 0 }),
        json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn" }, "usage": { "output_tokens": 4 } }),
        json!({ "type": "message_stop" }),
    ])
    .await;
    let request: ModelRequest =
        vec![ChatMessage::system("Be brief."), ChatMessage::user("hi")].into();
    let events: Vec<_> = provider(url)
        .stream(request)
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        events,
        vec![
            ProviderEvent::TextDelta("Hello".into()),
            ProviderEvent::TextDelta(" there".into()),
            ProviderEvent::Usage(Usage {
                input_tokens: 100,
                output_tokens: 4,
                cached_tokens: 90,
                cost_micros: 0
            }),
        ]
    );
    let (body, headers) = seen.lock().unwrap().clone();
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["stream"], true);
    assert_eq!(
        body["messages"],
        json!([{ "role": "user", "content": [{ "type": "text", "text": "hi" }] }])
    );
}

#[tokio::test]
async fn two_tool_uses_with_split_input_are_reassembled() {
    let (url, seen) = serve(vec![
        start(5, 0),
        json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
        json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": "Checking." } }),
        json!({ "type": "content_block_stop", "index": 0 }),
        json!({ "type": "content_block_start", "index": 1, "content_block": { "type": "tool_use", "id": "toolu_1", "name": "current_time", "input": {} } }),
        json!({ "type": "content_block_delta", "index": 1, "delta": { "type": "input_json_delta", "partial_json": "" } }),
        json!({ "type": "content_block_delta", "index": 1, "delta": { "type": "input_json_delta", "partial_json": "{\"tz\": " } }),
        json!({ "type": "content_block_delta", "index": 1, "delta": { "type": "input_json_delta", "partial_json": "\"UTC\"}" } }),
        json!({ "type": "content_block_stop", "index": 1 }),
        json!({ "type": "content_block_start", "index": 2, "content_block": { "type": "tool_use", "id": "toolu_2", "name": "session_status", "input": {} } }),
        json!({ "type": "content_block_stop", "index": 2 }),
        json!({ "type": "message_delta", "delta": { "stop_reason": "tool_use" }, "usage": { "output_tokens": 30 } }),
        json!({ "type": "message_stop" }),
    ])
    .await;
    let request = ModelRequest {
        messages: vec![
            ChatMessage::user("time?"),
            ChatMessage::assistant_calls(
                "Let me see.",
                vec![ToolCall {
                    id: "toolu_0".into(),
                    name: "current_time".into(),
                    arguments: "{}".into(),
                }],
            ),
            ChatMessage::tool_result("toolu_0", "11:59"),
            ChatMessage::user("and now?"),
        ],
        tools: vec![std::sync::Arc::new(ToolSpec {
            name: "current_time".into(),
            description: "Now".into(),
            parameters: json!({ "type": "object" }),
        })],
    };
    let events: Vec<_> = provider(url)
        .stream(request)
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(events[0], ProviderEvent::TextDelta("Checking.".into()));
    assert_eq!(
        events[1],
        ProviderEvent::ToolCall(ToolCall {
            id: "toolu_1".into(),
            name: "current_time".into(),
            arguments: "{\"tz\": \"UTC\"}".into()
        })
    );
    assert_eq!(
        events[2],
        ProviderEvent::ToolCall(ToolCall {
            id: "toolu_2".into(),
            name: "session_status".into(),
            arguments: "{}".into()
        })
    );
    let (body, _) = seen.lock().unwrap().clone();
    assert_eq!(
        body["tools"][0]["input_schema"],
        json!({ "type": "object" })
    );
    assert_eq!(
        body["messages"][1]["content"][1],
        json!({ "type": "tool_use", "id": "toolu_0", "name": "current_time", "input": {} })
    );
    // The tool result and the next user text share one user message.
    assert_eq!(body["messages"].as_array().unwrap().len(), 3);
    assert_eq!(body["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "toolu_0");
    assert_eq!(
        body["messages"][2]["content"][1],
        json!({ "type": "text", "text": "and now?" })
    );
}

#[tokio::test]
async fn an_error_event_is_a_retryable_overload() {
    let (url, _) = serve(vec![
        start(5, 0),
        json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } }),
    ])
    .await;
    let events: Vec<_> = provider(url)
        .stream(vec![ChatMessage::user("hi")].into())
        .collect()
        .await;
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert!(
        matches!(err, ProviderError::Http { status: 529, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(err.to_string().contains("Overloaded"));
}
