//! The Events API: Slack posts events (and slash commands, when their
//! Request URL points here) to `/hooks/slack/<account>`. Every request's
//! `X-Slack-Signature` is checked against the signing secret and its
//! `X-Slack-Request-Timestamp` must be within five minutes
//! (slack-morphism's verifier); `url_verification` is answered with its
//! challenge. A message is answered 200 only once the gateway stored it;
//! otherwise Slack delivers it again, and a retried delivery
//! (`X-Slack-Retry-Num`) of a stored one is answered once by the gateway's
//! deduplication.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use slack_morphism::prelude::SlackSigningSecret;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;

use switchboard_channel::{ChannelError, Inbound, Webhook, WebhookRequest, WebhookResponse};

use crate::{Inner, lock};

pub(crate) struct EventsApi {
    inner: Arc<Inner>,
    verifier: SlackEventSignatureVerifier,
}

impl EventsApi {
    pub(crate) fn new(inner: Arc<Inner>, secret: &str) -> Self {
        let secret = SlackSigningSecret::new(secret.trim().to_string());
        Self {
            inner,
            verifier: SlackEventSignatureVerifier::new(&secret),
        }
    }

    async fn deliver(&self, inbound: Inbound) -> WebhookResponse {
        let Some(ctx) = lock(&self.inner.ctx).clone() else {
            return WebhookResponse::text(503, "the Slack channel is not running yet");
        };
        ctx.status.event();
        match ctx.deliver(inbound).await {
            Ok(()) => WebhookResponse::text(200, ""),
            Err(ChannelError::Closed) => WebhookResponse::text(503, "the gateway is shutting down"),
            Err(e) => WebhookResponse::text(503, e.to_string()),
        }
    }
}

fn json(status: u16, value: serde_json::Value) -> WebhookResponse {
    WebhookResponse {
        status,
        content_type: "application/json",
        body: value.to_string().into_bytes(),
    }
}

#[async_trait]
impl Webhook for EventsApi {
    async fn handle(&self, request: WebhookRequest) -> WebhookResponse {
        let (Some(signature), Some(timestamp)) = (
            request.header("x-slack-signature"),
            request.header("x-slack-request-timestamp"),
        ) else {
            return WebhookResponse::text(
                401,
                "missing X-Slack-Signature or X-Slack-Request-Timestamp: only Slack may post here",
            );
        };
        let Ok(body) = std::str::from_utf8(&request.body) else {
            return WebhookResponse::text(400, "the body is not UTF-8");
        };
        if let Err(e) = self.verifier.verify(signature, body, timestamp) {
            tracing::warn!(account = %self.inner.settings.account, error = %e, "refused a Slack request with a bad signature or an old timestamp");
            return WebhookResponse::text(
                401,
                "the signature does not match or the timestamp is more than five minutes off: check signing_secret (Basic Information → Signing Secret) and the clock",
            );
        }
        let form = request
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if form {
            // A slash command.
            let fields: HashMap<String, String> = match serde_urlencoded::from_str(body) {
                Ok(f) => f,
                Err(e) => return WebhookResponse::text(400, format!("unreadable form: {e}")),
            };
            if fields.contains_key("payload") {
                // Interactivity (buttons): not used.
                return WebhookResponse::text(200, "");
            }
            let fields = serde_json::to_value(fields).unwrap_or_default();
            return match self.inner.command(&fields) {
                Some(inbound) => self.deliver(inbound).await,
                None => WebhookResponse::text(200, "This command is not set up on this assistant."),
            };
        }
        let value: serde_json::Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => return WebhookResponse::text(400, format!("not a Slack event: {e}")),
        };
        match value["type"].as_str() {
            Some("url_verification") => {
                json(200, serde_json::json!({"challenge": value["challenge"]}))
            }
            // Before the listener knows who the bot is, ask Slack to send
            // it again rather than drop it.
            Some("event_callback") if lock(&self.inner.ctx).is_none() => {
                WebhookResponse::text(503, "the Slack channel is starting; try again")
            }
            Some("event_callback") => match self.inner.message(&value) {
                Some(inbound) => self.deliver(inbound).await,
                None => WebhookResponse::text(200, ""),
            },
            _ => WebhookResponse::text(200, ""),
        }
    }
}
