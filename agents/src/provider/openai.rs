//! A client for any OpenAI-compatible Chat Completions endpoint (OpenAI,
//! OpenRouter, Ollama, vLLM, llama.cpp server), streaming over SSE.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ModelRequest, Provider, ProviderError, ProviderEvent, SseParser};
use crate::{ChatMessage, MessageRole, ToolCall, Usage};

/// How to reach one OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The provider's name in the config, used in messages.
    pub name: String,
    /// The base URL, e.g. `http://127.0.0.1:11434/v1`; `/chat/completions`
    /// is appended.
    pub base_url: String,
    /// The bearer key, if the endpoint needs one.
    pub api_key: Option<String>,
    /// The model to ask.
    pub model: String,
    /// How long to wait for the connection and for each piece of the answer.
    pub idle_timeout: Duration,
    /// Optional sampling temperature.
    pub temperature: Option<f32>,
    /// Optional cap on answer tokens.
    pub max_tokens: Option<u32>,
}

/// The OpenAI-compatible provider.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    settings: ProviderSettings,
    client: reqwest::Client,
}

impl OpenAiProvider {
    /// A provider with its own connection pool.
    pub fn new(settings: ProviderSettings) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.idle_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { settings, client }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.settings.base_url.trim_end_matches('/'))
    }

    /// Ask the endpoint for its models: a cheap check that it answers.
    pub async fn probe(&self) -> Result<(), ProviderError> {
        let mut req = self.client.get(self.url("models")).timeout(Duration::from_secs(3));
        if let Some(key) = &self.settings.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.http_error(resp).await)
        }
    }

    fn transport_error(&self, e: &reqwest::Error) -> ProviderError {
        if e.is_timeout() {
            return ProviderError::Timeout {
                provider: self.settings.name.clone(),
                seconds: self.settings.idle_timeout.as_secs(),
            };
        }
        ProviderError::Unreachable {
            provider: self.settings.name.clone(),
            url: self.settings.base_url.clone(),
            reason: root_cause(e),
        }
    }

    async fn http_error(&self, resp: reqwest::Response) -> ProviderError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.get("error"))
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| body.chars().take(300).collect());
        ProviderError::Http { provider: self.settings.name.clone(), status, message, retry_after }
    }

    fn request_body(&self, request: &ModelRequest) -> Value {
        let mut body = json!({
            "model": self.settings.model,
            "messages": request.messages.iter().map(message_json).collect::<Vec<_>>(),
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| json!({ "type": "function", "function": { "name": t.name, "description": t.description, "parameters": t.parameters } }))
                .collect();
        }
        if let Some(t) = self.settings.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = self.settings.max_tokens {
            body["max_tokens"] = json!(m);
        }
        body
    }

    async fn run(
        self,
        request: ModelRequest,
        tx: mpsc::Sender<Result<ProviderEvent, ProviderError>>,
    ) {
        if let Err(e) = self.run_inner(request, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn run_inner(
        &self,
        request: ModelRequest,
        tx: &mpsc::Sender<Result<ProviderEvent, ProviderError>>,
    ) -> Result<(), ProviderError> {
        let mut req = self
            .client
            .post(self.url("chat/completions"))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&self.request_body(&request));
        if let Some(key) = &self.settings.api_key {
            req = req.bearer_auth(key);
        }
        let idle = self.settings.idle_timeout;
        let timeout = || ProviderError::Timeout {
            provider: self.settings.name.clone(),
            seconds: idle.as_secs(),
        };
        let resp = tokio::time::timeout(idle, req.send())
            .await
            .map_err(|_| timeout())?
            .map_err(|e| self.transport_error(&e))?;
        if !resp.status().is_success() {
            return Err(self.http_error(resp).await);
        }
        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            // Some servers ignore `stream: true`; accept a whole JSON answer.
            let body: Value = tokio::time::timeout(idle, resp.json())
                .await
                .map_err(|_| timeout())?
                .map_err(|e| self.protocol(format!("the answer is not JSON: {e}")))?;
            return self.whole_answer(&body, tx).await;
        }
        let mut body = resp.bytes_stream();
        let mut parser = SseParser::new();
        let mut calls = ToolCallParts::default();
        loop {
            let piece = tokio::time::timeout(idle, body.next()).await.map_err(|_| timeout())?;
            let ended = piece.is_none();
            let datas = match piece {
                Some(Ok(bytes)) => parser.feed(&bytes).map_err(|e| self.protocol(e))?,
                Some(Err(e)) => return Err(self.transport_error(&e)),
                None => parser.finish().into_iter().collect(),
            };
            for data in datas {
                if data.trim() == "[DONE]" {
                    return calls.flush(tx).await;
                }
                let chunk: Value = serde_json::from_str(&data)
                    .map_err(|e| self.protocol(format!("a stream chunk is not JSON: {e}")))?;
                if let Some(err) = chunk.get("error") {
                    let message = err
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown error")
                        .to_string();
                    return Err(ProviderError::Http {
                        provider: self.settings.name.clone(),
                        status: 502,
                        message,
                        retry_after: None,
                    });
                }
                if let Some(text) = chunk
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    if tx.send(Ok(ProviderEvent::TextDelta(text.to_string()))).await.is_err() {
                        return Ok(()); // the consumer went away
                    }
                }
                if let Some(parts) = chunk.pointer("/choices/0/delta/tool_calls").and_then(Value::as_array) {
                    for part in parts {
                        calls.add(part);
                    }
                }
                if chunk.pointer("/choices/0/finish_reason").is_some_and(|f| !f.is_null()) {
                    calls.flush(tx).await?;
                }
                if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
                    let _ = tx.send(Ok(ProviderEvent::Usage(parse_usage(usage)))).await;
                }
            }
            if ended {
                return calls.flush(tx).await;
            }
        }
    }

    async fn whole_answer(
        &self,
        body: &Value,
        tx: &mpsc::Sender<Result<ProviderEvent, ProviderError>>,
    ) -> Result<(), ProviderError> {
        let message = body
            .pointer("/choices/0/message")
            .ok_or_else(|| self.protocol("the answer has no choices[0].message".into()))?;
        if let Some(text) = message.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            let _ = tx.send(Ok(ProviderEvent::TextDelta(text.to_string()))).await;
        }
        let mut calls = ToolCallParts::default();
        for (index, call) in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let mut part = call.clone();
            part["index"] = json!(index);
            calls.add(&part);
        }
        calls.flush(tx).await?;
        if let Some(usage) = body.get("usage").filter(|u| !u.is_null()) {
            let _ = tx.send(Ok(ProviderEvent::Usage(parse_usage(usage)))).await;
        }
        Ok(())
    }

    fn protocol(&self, detail: String) -> ProviderError {
        ProviderError::Protocol { provider: self.settings.name.clone(), detail }
    }
}

/// An OpenAI message in the Chat Completions wire shape.
fn message_json(m: &ChatMessage) -> Value {
    match m.role {
        MessageRole::Tool => json!({
            "role": "tool",
            "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
            "content": m.content,
        }),
        MessageRole::Assistant if !m.tool_calls.is_empty() => json!({
            "role": "assistant",
            "content": if m.content.is_empty() { Value::Null } else { json!(m.content) },
            "tool_calls": m.tool_calls.iter().map(|c| json!({
                "id": c.id,
                "type": "function",
                "function": { "name": c.name, "arguments": c.arguments },
            })).collect::<Vec<_>>(),
        }),
        role => json!({ "role": role, "content": m.content }),
    }
}

/// Tool calls arriving in pieces, keyed by their `index`.
#[derive(Debug, Default)]
struct ToolCallParts {
    parts: std::collections::BTreeMap<u64, ToolCall>,
}

impl ToolCallParts {
    fn add(&mut self, part: &Value) {
        let index = part.get("index").and_then(Value::as_u64).unwrap_or(0);
        let call = self.parts.entry(index).or_insert_with(|| ToolCall {
            id: String::new(),
            name: String::new(),
            arguments: String::new(),
        });
        if let Some(id) = part.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            call.id = id.to_string();
        }
        if let Some(name) = part.pointer("/function/name").and_then(Value::as_str) {
            call.name.push_str(name);
        }
        if let Some(args) = part.pointer("/function/arguments").and_then(Value::as_str) {
            call.arguments.push_str(args);
        }
    }

    /// Send the complete calls, in index order.
    async fn flush(
        &mut self,
        tx: &mpsc::Sender<Result<ProviderEvent, ProviderError>>,
    ) -> Result<(), ProviderError> {
        for (index, mut call) in std::mem::take(&mut self.parts) {
            if call.id.is_empty() {
                call.id = format!("call_{index}");
            }
            if call.arguments.trim().is_empty() {
                call.arguments = "{}".into();
            }
            let _ = tx.send(Ok(ProviderEvent::ToolCall(call))).await;
        }
        Ok(())
    }
}

fn parse_usage(usage: &Value) -> Usage {
    let n = |p: &str| usage.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n("/prompt_tokens"),
        output_tokens: n("/completion_tokens"),
        cached_tokens: n("/prompt_tokens_details/cached_tokens"),
    }
}

/// Aborts the request task when the answer stream is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The innermost cause of a transport error, which is the readable one
/// ("Connection refused (os error 111)").
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn model(&self) -> &str {
        &self.settings.model
    }

    fn stream(&self, request: ModelRequest) -> BoxStream<'static, Result<ProviderEvent, ProviderError>> {
        let (tx, rx) = mpsc::channel(64);
        // Dropping the stream (a cancelled turn) stops the request at once
        // instead of leaving it to the idle timeout.
        let task = AbortOnDrop(tokio::spawn(self.clone().run(request, tx)));
        futures::stream::unfold((rx, task), |(mut rx, task)| async move {
            rx.recv().await.map(|e| (e, (rx, task)))
        })
        .boxed()
    }
}
