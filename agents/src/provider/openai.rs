//! A client for any OpenAI-compatible Chat Completions endpoint (OpenAI,
//! OpenRouter, Ollama, vLLM, llama.cpp server), streaming over SSE.

use futures::stream::BoxStream;
use serde_json::{Value, json};

use super::http::{EventTx, HttpClient, PROBE_TIMEOUT, is_event_stream, probe_error, spawn_events};
use super::{ModelRequest, Provider, ProviderError, ProviderEvent, ProviderSettings};
use crate::{ChatMessage, MessageRole, ToolCall, Usage};

/// The OpenAI-compatible provider.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    http: HttpClient,
}

impl OpenAiProvider {
    /// A provider with its own connection pool.
    pub fn new(settings: ProviderSettings) -> Self {
        Self {
            http: HttpClient::new(settings),
        }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &ProviderSettings {
        &self.http.settings
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.http.settings.api_key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    /// Ask the endpoint for its models: a cheap check that it answers.
    pub async fn probe(&self) -> Result<(), ProviderError> {
        let req = self.authorize(
            self.http
                .client
                .get(self.http.url("models"))
                .timeout(PROBE_TIMEOUT),
        );
        self.http.send(req).await.map(drop).map_err(probe_error)
    }

    fn request_body(&self, request: &ModelRequest) -> Value {
        let mut body = json!({
            "model": self.http.settings.model,
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
        if let Some(t) = self.http.settings.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = self.http.settings.max_tokens {
            body["max_tokens"] = json!(m);
        }
        body
    }

    async fn run(self, request: ModelRequest, tx: EventTx) -> Result<(), ProviderError> {
        let req = self
            .http
            .client
            .post(self.http.url("chat/completions"))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&self.request_body(&request));
        let resp = self.http.send(self.authorize(req)).await?;
        if !is_event_stream(&resp) {
            // Some servers ignore `stream: true`; accept a whole JSON answer.
            let body: Value = tokio::time::timeout(self.http.settings.idle_timeout, resp.json())
                .await
                .map_err(|_| self.http.timeout())?
                .map_err(|e| self.http.protocol(format!("the answer is not JSON: {e}")))?;
            return self.whole_answer(&body, &tx).await;
        }
        let tx = &tx;
        let mut events = self.http.events(resp);
        let mut calls = ToolCallParts::default();
        while let Some(data) = events.next().await? {
            if data.trim() == "[DONE]" {
                return calls.flush(tx).await;
            }
            let chunk: Value = serde_json::from_str(&data).map_err(|e| {
                self.http
                    .protocol(format!("a stream chunk is not JSON: {e}"))
            })?;
            if let Some(err) = chunk.get("error") {
                let message = err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .to_string();
                return Err(ProviderError::Http {
                    provider: self.http.settings.name.clone(),
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
                if tx
                    .send(Ok(ProviderEvent::TextDelta(text.to_string())))
                    .await
                    .is_err()
                {
                    return Ok(()); // the consumer went away
                }
            }
            if let Some(parts) = chunk
                .pointer("/choices/0/delta/tool_calls")
                .and_then(Value::as_array)
            {
                for part in parts {
                    calls.add(part);
                }
            }
            if chunk
                .pointer("/choices/0/finish_reason")
                .is_some_and(|f| !f.is_null())
            {
                calls.flush(tx).await?;
            }
            if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
                let _ = tx.send(Ok(ProviderEvent::Usage(parse_usage(usage)))).await;
            }
        }
        calls.flush(tx).await
    }

    async fn whole_answer(&self, body: &Value, tx: &EventTx) -> Result<(), ProviderError> {
        let message = body.pointer("/choices/0/message").ok_or_else(|| {
            self.http
                .protocol("the answer has no choices[0].message".into())
        })?;
        if let Some(text) = message
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            let _ = tx
                .send(Ok(ProviderEvent::TextDelta(text.to_string())))
                .await;
        }
        let mut calls = ToolCallParts::default();
        for (index, call) in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
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
        if let Some(id) = part
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
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
    async fn flush(&mut self, tx: &EventTx) -> Result<(), ProviderError> {
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
        cost_micros: 0,
    }
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.http.settings.name
    }

    fn model(&self) -> &str {
        &self.http.settings.model
    }

    fn probe(&self) -> futures::future::BoxFuture<'static, Result<(), ProviderError>> {
        let this = self.clone();
        Box::pin(async move { OpenAiProvider::probe(&this).await })
    }

    fn stream(
        &self,
        request: ModelRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, ProviderError>> {
        let this = self.clone();
        spawn_events(move |tx| this.run(request, tx))
    }
}
