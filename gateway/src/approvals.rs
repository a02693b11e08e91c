//! Approval requests of gated tool calls: stored, announced, decided from
//! the control API, the WebSocket, the CLI or `/approve <id>` in the chat
//! they came from, and denied when nobody answers in time. Every decision is
//! stored with who made it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use switchboard_agents::tools::{ApprovalRequest, Approver, Decision};
use switchboard_channel::ReplyTarget;
use switchboard_memory::{ApprovalRecord, Store, StoreError};

use crate::channels::ChannelSet;
use crate::clock::now_ms;
use crate::events::{EventBus, EventKind, GatewayEvent};

/// The gateway's approval desk.
pub struct Approvals {
    store: Arc<dyn Store>,
    channels: ChannelSet,
    events: EventBus,
    waiting: Mutex<HashMap<String, oneshot::Sender<Decision>>>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.waiting.lock().map(|w| w.len()).unwrap_or(0);
        f.debug_struct("Approvals").field("waiting", &n).finish()
    }
}

impl Approvals {
    /// A desk over the store, announcing through `channels` and `events`.
    pub fn new(store: Arc<dyn Store>, channels: ChannelSet, events: EventBus) -> Self {
        Self {
            store,
            channels,
            events,
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// Decide request `id`; `None` when no pending request has that id.
    /// With `session_key`, only a request of that session is decided (the
    /// `/approve` chat command).
    pub async fn resolve(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        session_key: Option<&str>,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        let id = id.trim().to_ascii_lowercase();
        if let Some(key) = session_key {
            match self.store.approval_get(&id).await? {
                Some(r) if r.session_key == key => {}
                _ => return Ok(None),
            }
        }
        let status = if approve { "approved" } else { "denied" };
        let decided = self
            .store
            .approval_decide(&id, status, by, now_ms())
            .await?;
        if decided.is_some() {
            tracing::info!(approval = %id, status, by, "approval decided");
            let waiter = self
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            if let Some(tx) = waiter {
                let decision = if approve {
                    Decision::Approved { by: by.into() }
                } else {
                    Decision::Denied { by: by.into() }
                };
                let _ = tx.send(decision);
            }
        }
        Ok(decided)
    }

    /// Mark requests left pending by an earlier run as expired (their turns
    /// are gone).
    pub async fn expire_stale(&self) -> Result<(), StoreError> {
        for r in self.store.approvals_list(true, 10_000).await? {
            if !self
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&r.id)
            {
                self.store
                    .approval_decide(&r.id, "expired", "restart", now_ms())
                    .await?;
            }
        }
        Ok(())
    }
}

/// Asks the desk on behalf of one turn.
pub struct SessionApprover {
    /// The desk.
    pub desk: Arc<Approvals>,
    /// Where to announce the request (`None` for request/response channels).
    pub announce_to: Option<ReplyTarget>,
    /// How long to wait before denying.
    pub timeout: Duration,
    /// The message the turn answers (for events).
    pub message_id: String,
}

fn new_id() -> String {
    let mut rng = rand::rng();
    crate::pipeline::pairing::generate_code(&mut rng)[..6].to_ascii_lowercase()
}

impl Approver for SessionApprover {
    fn decide(&self, request: ApprovalRequest) -> BoxFuture<'static, Decision> {
        let desk = self.desk.clone();
        let announce_to = self.announce_to.clone();
        let timeout = self.timeout;
        let message_id = self.message_id.clone();
        Box::pin(async move {
            let id = new_id();
            let now = now_ms();
            let ctx = &request.context;
            let record = ApprovalRecord {
                id: id.clone(),
                session_key: ctx.session_key.clone(),
                agent: ctx.agent.clone(),
                tool: request.call.name.clone(),
                arguments: request.call.arguments.clone(),
                status: "pending".into(),
                decided_by: None,
                created_at: now,
                expires_at: now + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX),
                decided_at: None,
            };
            let (tx, rx) = oneshot::channel();
            desk.waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone(), tx);
            if let Err(e) = desk.store.approval_insert(record).await {
                tracing::error!(error = %e, "cannot store an approval request; denying");
                desk.waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                return Decision::Denied {
                    by: "gateway (store error)".into(),
                };
            }
            tracing::info!(approval = %id, tool = %request.call.name, session_key = %ctx.session_key, "approval requested");
            desk.events.publish(GatewayEvent {
                session_key: ctx.session_key.clone(),
                channel: ctx.channel.clone(),
                message_id,
                kind: EventKind::ApprovalRequested {
                    id: id.clone(),
                    tool: request.call.name.clone(),
                    arguments: request.call.arguments.clone(),
                    expires_in_secs: timeout.as_secs(),
                },
            });
            if let Some(target) = &announce_to {
                let text = format!(
                    "Approval needed ({id}): the assistant wants to run `{}` with {}.\nReply /approve {id} or /deny {id}. Unanswered, it is denied in {} s.",
                    request.call.name,
                    request.call.arguments,
                    timeout.as_secs()
                );
                desk.channels.notify(target, text).await;
            }
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(decision)) => decision,
                _ => {
                    desk.waiting
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    if let Err(e) = desk
                        .store
                        .approval_decide(&id, "expired", "timeout", now_ms())
                        .await
                    {
                        tracing::error!(error = %e, "cannot record an expired approval");
                    }
                    tracing::info!(approval = %id, "approval timed out; denied");
                    Decision::Denied {
                        by: "timeout".into(),
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_agents::ToolCall;
    use switchboard_agents::tools::ToolContext;
    use switchboard_memory::SqliteStore;

    async fn desk() -> (Arc<Approvals>, Arc<dyn Store>) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        (
            Arc::new(Approvals::new(
                store.clone(),
                ChannelSet::default(),
                EventBus::new(8),
            )),
            store,
        )
    }

    fn request() -> ApprovalRequest {
        ApprovalRequest {
            call: ToolCall {
                id: "c1".into(),
                name: "exec".into(),
                arguments: "{\"command\":\"ls\"}".into(),
            },
            context: ToolContext {
                session_key: "k".into(),
                agent: "main".into(),
                ..ToolContext::default()
            },
        }
    }

    #[tokio::test]
    async fn a_decision_wakes_the_waiting_call_and_is_stored() {
        let (desk, store) = desk().await;
        let approver = SessionApprover {
            desk: desk.clone(),
            announce_to: None,
            timeout: Duration::from_secs(300),
            message_id: "m".into(),
        };
        let waiting = tokio::spawn(approver.decide(request()));
        let id = loop {
            if let Some(r) = store.approvals_list(true, 1).await.unwrap().pop() {
                break r.id;
            }
            tokio::task::yield_now().await;
        };
        assert!(
            desk.resolve(&id, true, "chat:42", Some("other-session"))
                .await
                .unwrap()
                .is_none(),
            "only its own conversation"
        );
        let decided = desk
            .resolve(&id.to_uppercase(), true, "chat:42", Some("k"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(decided.decided_by.as_deref(), Some("chat:42"));
        assert_eq!(
            waiting.await.unwrap(),
            Decision::Approved {
                by: "chat:42".into()
            }
        );
    }
}
