//! A client for the Anthropic Messages API (`POST /v1/messages`), streaming
//! over SSE with tool use.

use std::collections::BTreeMap;

use futures::stream::BoxStream;
use serde_json::{Value, json};

use super::http::{EventTx, HttpClient, PROBE_TIMEOUT, probe_error, spawn_events};
use super::{ModelRequest, Provider, ProviderError, ProviderEvent, ProviderSettings};
use crate::{ChatMessage, MessageRole, ToolCall, Usage};

/// The API version header the client speaks.
pub const API_VERSION: &str = "2023-06-01";
/// Answer tokens asked for when the config sets none (the API requires a
/// value).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The Anthropic provider.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    http: HttpClient,
}

impl AnthropicProvider {
    /// A provider with its own connection pool. `base_url` is the API root
    /// (`https://api.anthropic.com`), with or without a trailing `/v1`.
    pub fn new(settings: ProviderSettings) -> Self {
        Self {
            http: HttpClient::new(settings),
        }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &ProviderSettings {
        &self.http.settings
    }

    fn endpoint(&self, path: &str) -> String {
        let base = self.http.settings.base_url.trim_end_matches('/');
        if base.ends_with("/v1") {
            format!("{base}/{path}")
        } else {
            format!("{base}/v1/{path}")
        }
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let req = req.header("anthropic-version", API_VERSION);
        match &self.http.settings.api_key {
            Some(key) => req.header("x-api-key", key),
            None => req,
        }
    }

    /// Ask the API for its models: a cheap check that it answers.
    pub async fn probe(&self) -> Result<(), ProviderError> {
        let req = self.authorize(
            self.http
                .client
                .get(self.endpoint("models"))
                .timeout(PROBE_TIMEOUT),
        );
        self.http.send(req).await.map(drop).map_err(probe_error)
    }

    fn request_body(&self, request: &ModelRequest) -> Value {
        let s = &self.http.settings;
        let mut body = json!({
            "model": s.model,
            "max_tokens": s.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages_json(&request.messages),
            "stream": true,
        });
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == MessageRole::System && !m.content.is_empty())
            .map(|m| m.content.as_str())
            .collect();
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
                .collect();
        }
        if let Some(t) = s.temperature {
            body["temperature"] = json!(t);
        }
        body
    }

    async fn run(self, request: ModelRequest, tx: EventTx) -> Result<(), ProviderError> {
        let req = self
            .http
            .client
            .post(self.endpoint("messages"))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&self.request_body(&request));
        let resp = self.http.send(self.authorize(req)).await?;
        let mut events = self.http.events(resp);
        let mut state = StreamState::default();
        while let Some(data) = events.next().await? {
            let event: Value = serde_json::from_str(&data).map_err(|e| {
                self.http
                    .protocol(format!("a stream event is not JSON: {e}"))
            })?;
            if state.handle(&self.http, &event, &tx).await? {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// What a stream has said so far.
#[derive(Debug, Default)]
struct StreamState {
    usage: Usage,
    /// Tool-use blocks being assembled, by content block index.
    tools: BTreeMap<u64, ToolCall>,
}

impl StreamState {
    /// Handle one event; returns whether the message is complete.
    async fn handle(
        &mut self,
        http: &HttpClient,
        event: &Value,
        tx: &EventTx,
    ) -> Result<bool, ProviderError> {
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        match event.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                let u = &event["message"]["usage"];
                let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                self.usage.cached_tokens = n("cache_read_input_tokens");
                self.usage.input_tokens = n("input_tokens")
                    + n("cache_read_input_tokens")
                    + n("cache_creation_input_tokens");
                self.usage.output_tokens = n("output_tokens");
            }
            "content_block_start" => {
                let block = &event["content_block"];
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        self.tools.insert(
                            index,
                            ToolCall {
                                id: block["id"].as_str().unwrap_or_default().to_string(),
                                name: block["name"].as_str().unwrap_or_default().to_string(),
                                arguments: String::new(),
                            },
                        );
                    }
                    Some("text") => {
                        if let Some(t) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            let _ = tx.send(Ok(ProviderEvent::TextDelta(t.to_string()))).await;
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = &event["delta"];
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(t) = delta["text"].as_str().filter(|t| !t.is_empty()) {
                            if tx
                                .send(Ok(ProviderEvent::TextDelta(t.to_string())))
                                .await
                                .is_err()
                            {
                                return Ok(true); // the consumer went away
                            }
                        }
                    }
                    Some("input_json_delta") => {
                        if let (Some(call), Some(part)) =
                            (self.tools.get_mut(&index), delta["partial_json"].as_str())
                        {
                            call.arguments.push_str(part);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(mut call) = self.tools.remove(&index) {
                    if call.arguments.trim().is_empty() {
                        call.arguments = "{}".into();
                    }
                    let _ = tx.send(Ok(ProviderEvent::ToolCall(call))).await;
                }
            }
            "message_delta" => {
                if let Some(out) = event
                    .pointer("/usage/output_tokens")
                    .and_then(Value::as_u64)
                {
                    self.usage.output_tokens = out;
                }
            }
            "message_stop" => {
                let _ = tx.send(Ok(ProviderEvent::Usage(self.usage))).await;
                return Ok(true);
            }
            "error" => {
                let kind = event
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("error");
                let message = event
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or(kind)
                    .to_string();
                let status = match kind {
                    "overloaded_error" => 529,
                    "rate_limit_error" => 429,
                    "invalid_request_error" => 400,
                    "authentication_error" => 401,
                    "permission_error" => 403,
                    "not_found_error" => 404,
                    "request_too_large" => 413,
                    _ => 500,
                };
                return Err(ProviderError::Http {
                    provider: http.settings.name.clone(),
                    status,
                    message,
                    retry_after: None,
                });
            }
            _ => {} // ping and future event types
        }
        Ok(false)
    }
}

/// The conversation in the Messages API's shape: system messages go to the
/// top-level `system`, tool results are `tool_result` blocks of a user
/// message, and consecutive messages of one role are merged (the API wants
/// roles to alternate).
fn messages_json(messages: &[ChatMessage]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for m in messages {
        let (role, blocks): (&str, Vec<Value>) = match m.role {
            MessageRole::System => continue,
            MessageRole::User => ("user", text_block(&m.content).into_iter().collect()),
            MessageRole::Tool => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": m.content,
                })],
            ),
            MessageRole::Assistant => {
                let mut blocks: Vec<Value> = text_block(&m.content).into_iter().collect();
                for c in &m.tool_calls {
                    let input: Value =
                        serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                    blocks.push(
                        json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": input }),
                    );
                }
                ("assistant", blocks)
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(content) = last["content"].as_array_mut() {
                    content.extend(blocks);
                }
            }
            _ => out.push(json!({ "role": role, "content": blocks })),
        }
    }
    out
}

fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "type": "text", "text": text }))
}

impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.http.settings.name
    }

    fn model(&self) -> &str {
        &self.http.settings.model
    }

    fn probe(&self) -> futures::future::BoxFuture<'static, Result<(), ProviderError>> {
        let this = self.clone();
        Box::pin(async move { AnthropicProvider::probe(&this).await })
    }

    fn stream(
        &self,
        request: ModelRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, ProviderError>> {
        let this = self.clone();
        spawn_events(move |tx| this.run(request, tx))
    }
}
