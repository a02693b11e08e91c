//! Built-in tools that touch nothing outside the gateway.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolOutput};
use crate::ToolSpec;

/// `current_time`: the date and time, in UTC and the gateway's zone.
#[derive(Debug, Clone, Copy)]
pub struct CurrentTime;

impl Tool for CurrentTime {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "current_time".into(),
            description: "The current date and time (UTC and the gateway's local time).".into(),
            parameters: json!({ "type": "object", "properties": {}, "additionalProperties": false }),
        }
    }

    fn call(&self, _args: Value, _ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        Box::pin(async {
            let utc = chrono::Utc::now();
            let local = chrono::Local::now();
            ToolOutput::ok(format!(
                "UTC: {}\nLocal: {} ({})",
                utc.format("%Y-%m-%dT%H:%M:%SZ (%A)"),
                local.format("%Y-%m-%dT%H:%M:%S%:z (%A)"),
                local.format("%Z")
            ))
        })
    }
}

/// `session_status`: what the agent knows of its own session.
#[derive(Debug, Clone, Copy)]
pub struct SessionStatus;

impl Tool for SessionStatus {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "session_status".into(),
            description: "This conversation's session: its key, the agent and model, the channel, and how many turns it has had.".into(),
            parameters: json!({ "type": "object", "properties": {}, "additionalProperties": false }),
        }
    }

    fn call(&self, _args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        Box::pin(async move {
            ToolOutput::ok(
                json!({
                    "session_key": ctx.session_key,
                    "agent": ctx.agent,
                    "model": ctx.model,
                    "channel": ctx.channel,
                    "chat_kind": ctx.chat_kind,
                    "turns_before_this_one": ctx.turns,
                })
                .to_string(),
            )
        })
    }
}
