//! The event bus: every turn's events, for control UI subscribers.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::sync::mpsc;

use switchboard_agents::Usage;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data")]
pub enum EventKind {
    /// A turn started working on the message.
    #[serde(rename = "chat.started")]
    Started,
    /// More answer text.
    #[serde(rename = "chat.delta")]
    Delta {
        /// The new text.
        text: String,
    },
    /// The agent called a tool.
    #[serde(rename = "chat.tool_call")]
    ToolCall {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
        /// Its arguments (JSON text).
        arguments: String,
    },
    /// A tool call finished.
    #[serde(rename = "chat.tool_result")]
    ToolResult {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
        /// Whether it failed.
        is_error: bool,
        /// What it returned.
        output: String,
    },
    /// A tool call waits for the operator's approval.
    #[serde(rename = "approval.requested")]
    ApprovalRequested {
        /// The id to approve or deny.
        id: String,
        /// The tool.
        tool: String,
        /// Its arguments (JSON text).
        arguments: String,
        /// Seconds until it is denied by itself.
        expires_in_secs: u64,
    },
    /// The answer is complete.
    #[serde(rename = "chat.done")]
    Done {
        /// The whole answer.
        text: String,
        /// Tokens used.
        usage: Usage,
    },
    /// The turn failed.
    #[serde(rename = "chat.error")]
    Error {
        /// What went wrong, for the user.
        message: String,
    },
    /// A standalone gateway message (command answer, notice).
    #[serde(rename = "chat.notice")]
    Notice {
        /// The text.
        text: String,
    },
}

/// One event on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayEvent {
    /// The session it belongs to.
    pub session_key: String,
    /// The channel of the message.
    pub channel: String,
    /// The platform message id it answers.
    pub message_id: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A bounded broadcast of [`GatewayEvent`]s; slow subscribers miss events
/// rather than hold the gateway up.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<GatewayEvent>,
    /// Where what is published here also goes (the other replicas).
    remote: Arc<OnceLock<mpsc::Sender<GatewayEvent>>>,
}

impl EventBus {
    /// A bus keeping up to `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
            remote: Arc::default(),
        }
    }

    /// Publish here and, for replicas, to the others (no subscribers is
    /// fine).
    pub fn publish(&self, event: GatewayEvent) {
        if let Some(remote) = self.remote.get() {
            // A full backlog (the database is slow) drops the copy for
            // the others, never this replica's own.
            let _ = remote.try_send(event.clone());
        }
        self.publish_local(event);
    }

    /// Publish to this replica's subscribers only (what another replica
    /// sent).
    pub fn publish_local(&self, event: GatewayEvent) {
        let _ = self.tx.send(event);
    }

    /// Also send what is published to `remote` from now on (once).
    pub fn forward_to(&self, remote: mpsc::Sender<GatewayEvent>) {
        let _ = self.remote.set(remote);
    }

    /// Whether anyone listens (to skip building events nobody reads).
    pub fn has_subscribers(&self) -> bool {
        self.remote.get().is_some() || self.tx.receiver_count() > 0
    }

    /// Subscribe from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.tx.subscribe()
    }
}
