//! The OpenAI-compatible provider against small local servers.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use switchboard_agents::{
    ChatMessage, OpenAiProvider, Provider, ProviderError, ProviderEvent, ProviderSettings, Usage,
};

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

fn provider(base_url: String) -> OpenAiProvider {
    OpenAiProvider::new(ProviderSettings {
        name: "t".into(),
        base_url,
        api_key: Some("k".into()),
        model: "m".into(),
        idle_timeout: Duration::from_secs(5),
        temperature: None,
        max_tokens: None,
        traceparent: None,
    })
}

async fn collect(p: &OpenAiProvider) -> Vec<Result<ProviderEvent, ProviderError>> {
    p.stream(vec![ChatMessage::user("hi")].into())
        .collect()
        .await
}

#[tokio::test]
async fn sse_deltas_and_usage_are_read() {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|headers: HeaderMap| async move {
            assert_eq!(headers["authorization"], "Bearer k");
            let body = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
                        data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n\
                        : keep-alive\n\n\
                        data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n\
                        data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":3}}}\n\n\
                        data: [DONE]\n\n";
            ([("content-type", "text/event-stream")], body)
        }),
    );
    let events = collect(&provider(serve(app).await)).await;
    let events: Vec<_> = events.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        events,
        vec![
            ProviderEvent::TextDelta("Hel".into()),
            ProviderEvent::TextDelta("lo".into()),
            ProviderEvent::Usage(Usage {
                input_tokens: 7,
                output_tokens: 2,
                cached_tokens: 3,
                cost_micros: 0
            }),
        ]
    );
}

#[tokio::test]
async fn a_whole_json_answer_is_accepted() {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            axum::Json(serde_json::json!({
                "choices": [{ "message": { "role": "assistant", "content": "whole" } }],
                "usage": { "prompt_tokens": 1, "completion_tokens": 1 }
            }))
        }),
    );
    let events = collect(&provider(serve(app).await)).await;
    assert_eq!(
        events[0].as_ref().unwrap(),
        &ProviderEvent::TextDelta("whole".into())
    );
}

#[tokio::test]
async fn http_errors_carry_status_message_and_retry_after() {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            let r: Response = (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "7")],
                axum::Json(serde_json::json!({ "error": { "message": "slow down" } })),
            )
                .into_response();
            r
        }),
    );
    let events = collect(&provider(serve(app).await)).await;
    let err = events[0].as_ref().unwrap_err();
    match err {
        ProviderError::Http {
            status,
            message,
            retry_after,
            ..
        } => {
            assert_eq!(
                (*status, message.as_str(), *retry_after),
                (429, "slow down", Some(7))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    assert!(
        err.to_string().contains("`t` answered 429: slow down"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let events = collect(&provider(format!("http://127.0.0.1:{port}/v1"))).await;
    let err = events[0].as_ref().unwrap_err();
    assert!(matches!(err, ProviderError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn a_stalled_stream_times_out() {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            let stream = futures::stream::once(async {
                Ok::<_, std::convert::Infallible>(
                    "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
                )
            })
            .chain(futures::stream::pending());
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(stream),
            )
        }),
    );
    let mut p = provider(serve(app).await);
    p = OpenAiProvider::new(ProviderSettings {
        idle_timeout: Duration::from_millis(300),
        ..p.settings().clone()
    });
    let events = collect(&p).await;
    assert_eq!(
        events[0].as_ref().unwrap(),
        &ProviderEvent::TextDelta("a".into())
    );
    assert!(
        matches!(events[1], Err(ProviderError::Timeout { .. })),
        "{events:?}"
    );
}

#[tokio::test]
async fn tool_calls_split_across_chunks_are_reassembled_in_order() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(serde_json::Value::Null));
    let record = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::Json<serde_json::Value>| {
            *record.lock().unwrap() = body.0;
            async {
                let chunks = [
                    r#"{"choices":[{"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"current_time","arguments":""}}]}}]}"#,
                    r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"tz\":"}}]}}]}"#,
                    r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"web_fetch","arguments":"{\"url\":\"http"}}]}}]}"#,
                    r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"UTC\"}"}}]}}]}"#,
                    r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":"s://example.org\"}"}}]}}]}"#,
                    r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
                ];
                let body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).chain(["data: [DONE]\n\n".to_string()]).collect();
                ([("content-type", "text/event-stream")], body)
            }
        }),
    );
    let p = provider(serve(app).await);
    let request = switchboard_agents::ModelRequest {
        messages: vec![
            ChatMessage::user("what time is it?"),
            ChatMessage::assistant_calls(
                "",
                vec![switchboard_agents::ToolCall {
                    id: "c0".into(),
                    name: "current_time".into(),
                    arguments: "{}".into(),
                }],
            ),
            ChatMessage::tool_result("c0", "12:00"),
        ],
        tools: vec![std::sync::Arc::new(switchboard_agents::ToolSpec {
            name: "current_time".into(),
            description: "The time".into(),
            parameters: serde_json::json!({ "type": "object", "properties": {} }),
        })],
    };
    let events: Vec<_> = p.stream(request).map(Result::unwrap).collect().await;
    assert_eq!(
        events,
        vec![
            ProviderEvent::ToolCall(switchboard_agents::ToolCall {
                id: "call_a".into(),
                name: "current_time".into(),
                arguments: r#"{"tz":"UTC"}"#.into()
            }),
            ProviderEvent::ToolCall(switchboard_agents::ToolCall {
                id: "call_b".into(),
                name: "web_fetch".into(),
                arguments: r#"{"url":"https://example.org"}"#.into()
            }),
        ]
    );
    let body = seen.lock().unwrap().clone();
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "current_time");
    assert_eq!(
        body["messages"][1]["tool_calls"][0]["function"]["name"],
        "current_time"
    );
    assert_eq!(body["messages"][1]["content"], serde_json::Value::Null);
    assert_eq!(
        body["messages"][2],
        serde_json::json!({ "role": "tool", "tool_call_id": "c0", "content": "12:00" })
    );
}

#[test]
fn the_api_key_never_shows_in_debug_output() {
    let p = provider("http://127.0.0.1:1/v1".into());
    let shown = format!("{p:?} {:?}", p.settings());
    assert!(
        !shown.contains("\"k\"") && shown.contains("<redacted>"),
        "{shown}"
    );
}
