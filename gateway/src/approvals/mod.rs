//! Approval requests of gated tool calls: stored, announced, decided, and
//! closed when nobody decides.
//!
//! The operator decides from the control API, the WebSocket or the CLI;
//! people in chats with `/approve <id>` or `/deny <id>`, as far as
//! [`rules`] lets them. A request nobody answers in time is denied
//! (`expired`); one whose turn ends first (done, cancelled, failed) is
//! `cancelled`, so a late decision is told it no longer waits instead of
//! being accepted with nothing run. While a call waits, its turn gives its
//! run slot back. Every decision is stored with who made it.

mod replicas;
pub mod rules;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use switchboard_agents::tools::{ApprovalRequest, Approver, Decision};
use switchboard_channel::ReplyTarget;
use switchboard_memory::{ApprovalRecord, Store, StoreError};

use crate::audit::{Actor, Audit, action};
use crate::channels::ChannelSet;
use crate::clock::now_ms;
use crate::events::{EventBus, EventKind, GatewayEvent};
use crate::sessions::slot::RunSlot;
use rules::{ChatDeciders, ChatParty, normalize_id};

/// The status of a request whose turn ended before anyone decided it.
pub const CANCELLED: &str = "cancelled";

/// Who closes a request whose turn ended first.
const TURN_ENDED: &str = "gateway (its turn ended)";

/// A call waiting for its decision.
struct Waiter {
    tx: oneshot::Sender<Decision>,
    deciders: ChatDeciders,
}

/// The gateway's approval desk.
pub struct Approvals {
    store: Arc<dyn Store>,
    channels: ChannelSet,
    events: EventBus,
    /// The requests whose calls wait now, by id. Whoever takes a request
    /// out of here (a decision, the timeout, its turn ending) settles it.
    waiting: Mutex<HashMap<String, Waiter>>,
    /// Where decisions are recorded.
    audit: Arc<Audit>,
    /// For replicas: a request may wait on another one, which is told of
    /// decisions made here ([`replicas`]).
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.waiting.lock().map(|w| w.len()).unwrap_or(0);
        f.debug_struct("Approvals").field("waiting", &n).finish()
    }
}

/// What became of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Decided: the waiting call runs, or is told it was denied.
    Decided(ApprovalRecord),
    /// The request exists but no longer waits: decided already, expired,
    /// or its turn ended (`cancelled`). Nothing was run by this decision.
    NotWaiting(ApprovalRecord),
    /// No request has that id.
    Unknown,
    /// This sender may not decide it (chat only): what to tell them.
    Refused(String),
}

impl Approvals {
    /// A desk over the store, announcing through `channels` and `events`
    /// and recording decisions in `audit`.
    pub fn new(
        store: Arc<dyn Store>,
        channels: ChannelSet,
        events: EventBus,
        audit: Arc<Audit>,
    ) -> Self {
        Self {
            store,
            channels,
            events,
            waiting: Mutex::new(HashMap::new()),
            audit,
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// Run as one of several replicas from now on: requests may wait on
    /// another one.
    pub fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<String, Waiter>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decide request `id` as the operator `by` (`cli`, `api`, `ui`,
    /// `ws`; its id is stored as who decided).
    pub async fn resolve(
        &self,
        id: &str,
        approve: bool,
        by: &Actor,
    ) -> Result<Resolution, StoreError> {
        self.settle(id, approve, by, None).await
    }

    /// Decide request `id` for `who`, who sent `/approve` or `/deny` in a
    /// chat; refused unless [`ChatDeciders::check`] lets them.
    pub async fn resolve_from_chat(
        &self,
        id: &str,
        approve: bool,
        who: &ChatParty,
    ) -> Result<Resolution, StoreError> {
        let by = Actor::chat(
            &who.channel,
            &rules::sender_ref(&who.channel, &who.sender_id),
        );
        self.settle(id, approve, &by, Some(who)).await
    }

    async fn settle(
        &self,
        id: &str,
        approve: bool,
        actor: &Actor,
        who: Option<&ChatParty>,
    ) -> Result<Resolution, StoreError> {
        let by = actor.id.as_str();
        let id = normalize_id(id);
        let claimed = {
            let mut waiting = self.waiting();
            let refusal = match (waiting.get(&id), who) {
                (Some(w), Some(who)) => w.deciders.check(who, &id).err(),
                _ => None,
            };
            match refusal {
                Some(why) => return Ok(Resolution::Refused(why)),
                None => waiting.remove(&id),
            }
        };
        let Some(waiter) = claimed else {
            if self.cluster.get().is_some() {
                return self.settle_elsewhere(&id, approve, actor, who).await;
            }
            return self.not_waiting(&id).await;
        };
        let status = if approve { "approved" } else { "denied" };
        match self.store.approval_decide(&id, status, by, now_ms()).await {
            Ok(Some(record)) => {
                tracing::info!(approval = %id, status, by, "approval decided");
                let decision = if approve {
                    Decision::Approved { by: by.into() }
                } else {
                    Decision::Denied { by: by.into() }
                };
                let _ = waiter.tx.send(decision);
                self.audit_decision(actor, &record, status).await;
                Ok(Resolution::Decided(record))
            }
            Ok(None) => {
                // Closed in the store behind the desk's back: do not run it.
                let _ = waiter.tx.send(Decision::Denied {
                    by: "gateway (the request was closed)".into(),
                });
                self.not_waiting(&id).await
            }
            Err(e) => {
                // Undecided: the call keeps waiting, unless its turn ended
                // meanwhile (then the request is closed when next asked).
                if !waiter.tx.is_closed() {
                    self.waiting().insert(id, waiter);
                }
                Err(e)
            }
        }
    }

    /// Record in the audit log that `actor` decided `record` (`status`).
    async fn audit_decision(&self, actor: &Actor, record: &ApprovalRecord, status: &str) {
        // Never the call's arguments: they may hold what was said.
        let detail = serde_json::json!({
            "status": status,
            "tool": record.tool,
            "agent": record.agent,
            "session_key": record.session_key,
        });
        self.audit
            .record(actor, action::APPROVAL_DECIDED, &record.id, detail)
            .await;
    }

    /// The answer about a request nothing waits for. One still pending
    /// (its turn went away without closing it) is closed as cancelled now.
    async fn not_waiting(&self, id: &str) -> Result<Resolution, StoreError> {
        match self.store.approval_get(id).await? {
            None => Ok(Resolution::Unknown),
            Some(r) if r.status == "pending" => {
                let closed = self
                    .store
                    .approval_decide(id, CANCELLED, TURN_ENDED, now_ms())
                    .await?;
                let r = match closed {
                    Some(c) => c,
                    None => self.store.approval_get(id).await?.unwrap_or(r),
                };
                Ok(Resolution::NotWaiting(r))
            }
            Some(r) => Ok(Resolution::NotWaiting(r)),
        }
    }

    /// Mark requests left pending by an earlier run as expired (their turns
    /// are gone).
    pub async fn expire_stale(&self) -> Result<(), StoreError> {
        for r in self.store.approvals_list(true, 10_000).await? {
            if !self.waiting().contains_key(&r.id) {
                self.store
                    .approval_decide(&r.id, "expired", "restart", now_ms())
                    .await?;
            }
        }
        Ok(())
    }
}

/// A stored request whose call waits: when it goes away undecided (its
/// turn ended, was cancelled or failed, and dropped the wait), the request
/// is marked `cancelled`.
struct PendingGuard {
    desk: Arc<Approvals>,
    id: String,
}

impl PendingGuard {
    /// Nobody answered in time: close the request as expired.
    async fn expire(self) -> Decision {
        self.desk.waiting().remove(&self.id);
        if let Err(e) = self
            .desk
            .store
            .approval_decide(&self.id, "expired", "timeout", now_ms())
            .await
        {
            tracing::error!(error = %e, "cannot record an expired approval");
        }
        tracing::info!(approval = %self.id, "approval timed out; denied");
        Decision::Denied {
            by: "timeout".into(),
        }
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if self.desk.waiting().remove(&self.id).is_none() {
            return; // decided or expired: settled already
        }
        tracing::info!(approval = %self.id, "approval request cancelled: its turn ended first");
        let desk = self.desk.clone();
        let id = std::mem::take(&mut self.id);
        // Without a runtime (the gateway is stopping) the request is closed
        // when someone next tries to decide it, or at the next start.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = desk
                    .store
                    .approval_decide(&id, CANCELLED, TURN_ENDED, now_ms())
                    .await
                {
                    tracing::error!(error = %e, approval = %id, "cannot record a cancelled approval");
                }
            });
        }
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
    /// Who may decide from a chat: the agent's approvers, and who asked.
    pub deciders: ChatDeciders,
    /// The turn's run slot, given back while a call waits (`None`: the
    /// turn holds none).
    pub run_slot: Option<Arc<RunSlot>>,
    /// Where decisions are counted (`switchboard_approvals_total`).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

impl Approver for SessionApprover {
    fn decide(&self, request: ApprovalRequest) -> BoxFuture<'static, Decision> {
        let desk = self.desk.clone();
        let announce_to = self.announce_to.clone();
        let timeout = self.timeout;
        let message_id = self.message_id.clone();
        let deciders = self.deciders.clone();
        let run_slot = self.run_slot.clone();
        let telemetry = self.telemetry.clone();
        let id = rules::new_id(&mut rand::rng());
        Box::pin(async move {
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
            desk.waiting().insert(
                id.clone(),
                Waiter {
                    tx,
                    deciders: deciders.clone(),
                },
            );
            let guard = PendingGuard {
                desk: desk.clone(),
                id: id.clone(),
            };
            if let Err(e) = desk.store.approval_insert(record).await {
                tracing::error!(error = %e, "cannot store an approval request; denying");
                desk.waiting().remove(&id);
                return Decision::Denied {
                    by: "gateway (store error)".into(),
                };
            }
            // Waiting for a person takes no run slot.
            let pause = run_slot.as_ref().map(RunSlot::pause);
            match &request.tainted_by {
                None => {
                    tracing::info!(approval = %id, tool = %request.call.name, session_key = %ctx.session_key, "approval requested")
                }
                Some(what) => {
                    tracing::info!(approval = %id, tool = %request.call.name, session_key = %ctx.session_key, because = %what, "approval requested: the turn has read untrusted content")
                }
            }
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
                let mut text = deciders.announcement(
                    &id,
                    &request.call.name,
                    &request.call.arguments,
                    timeout.as_secs(),
                );
                if request.tainted_by.is_some() {
                    text.push_str("\nIt asks because this turn has read untrusted content (a fetched page, an attachment or someone else's message), which may be trying to steer the assistant.");
                }
                desk.channels.notify(target, text).await;
            }
            let decision = match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(decision)) => {
                    drop(guard);
                    decision
                }
                _ => guard.expire().await,
            };
            if let Some(pause) = pause {
                pause.resume().await;
            }
            let outcome = match &decision {
                Decision::Approved { .. } => "approved",
                Decision::Denied { by } if by == "timeout" => "timeout",
                Decision::Denied { .. } => "denied",
            };
            telemetry
                .metrics
                .approvals
                .get_or_create(&crate::telemetry::metrics::OutcomeLabels { outcome })
                .inc();
            decision
        })
    }
}

#[cfg(test)]
mod tests;
