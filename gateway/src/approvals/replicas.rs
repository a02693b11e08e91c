//! Approvals across replicas: a tool call waits on the replica running its
//! turn, and the operator may decide from any replica. A decision for a
//! request that waits elsewhere is stored (only while it is pending, so the
//! first decision wins) and announced on [`TOPIC`]; the replica where the
//! call waits hears it and lets the call go on or refuses it.
//!
//! `/approve` in a chat is decided where the call waits only: who may
//! decide from a chat (the chat rules) is known there.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use switchboard_agents::tools::Decision;
use switchboard_memory::StoreError;

use super::{Approvals, Resolution, rules::ChatParty};
use crate::audit::Actor;
use crate::clock::now_ms;

/// The notice channel of decisions (the payload is the request's id).
pub const TOPIC: &str = "switchboard_approvals";

/// What a chat decider is told about a request waiting on another replica.
const ELSEWHERE: &str = "This request waits on another replica of the gateway; decide it from the control UI, the API or `switchboard approvals` there or here.";

impl Approvals {
    /// [`settle`](Self::settle) for a request that does not wait here.
    pub(super) async fn settle_elsewhere(
        &self,
        id: &str,
        approve: bool,
        actor: &Actor,
        who: Option<&ChatParty>,
    ) -> Result<Resolution, StoreError> {
        let Some(record) = self.store.approval_get(id).await? else {
            return Ok(Resolution::Unknown);
        };
        if record.status != "pending" {
            return Ok(Resolution::NotWaiting(record));
        }
        if who.is_some() {
            return Ok(Resolution::Refused(ELSEWHERE.into()));
        }
        let status = if approve { "approved" } else { "denied" };
        let by = actor.id.as_str();
        let Some(record) = self.store.approval_decide(id, status, by, now_ms()).await? else {
            let now = self.store.approval_get(id).await?;
            return Ok(now.map_or(Resolution::Unknown, Resolution::NotWaiting));
        };
        tracing::info!(approval = %id, status, by, "approval decided for a call waiting on another replica");
        if let Some(coord) = self.store.coordination()
            && let Err(e) = coord.publish(TOPIC, id).await
        {
            tracing::warn!(approval = %id, error = %e, "cannot tell the other replicas of a decision; the call waits until it expires");
        }
        self.audit_decision(actor, &record, status).await;
        Ok(Resolution::Decided(record))
    }

    /// Hear the decisions other replicas made for calls waiting here, and
    /// hand them to their calls, until `stop`.
    pub async fn hear_decisions(self: Arc<Self>, stop: CancellationToken) -> Result<(), String> {
        let Some(coord) = self.store.coordination() else {
            return Ok(());
        };
        let mut rx = coord.subscribe(TOPIC).await.map_err(|e| e.to_string())?;
        loop {
            let id = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                id = rx.recv() => match id {
                    Some(id) => id,
                    None => return Err("the database's notices stopped".into()),
                },
            };
            let Some(waiter) = self.waiting().remove(&id) else {
                continue;
            };
            let decision = match self.store.approval_get(&id).await {
                Ok(Some(r)) if r.status == "approved" => Decision::Approved {
                    by: r.decided_by.unwrap_or_default(),
                },
                Ok(Some(r)) if r.status != "pending" => Decision::Denied {
                    by: r.decided_by.unwrap_or_default(),
                },
                other => {
                    if let Err(e) = other {
                        tracing::warn!(approval = %id, error = %e, "cannot read a decision made on another replica");
                    }
                    self.waiting().insert(id, waiter);
                    continue;
                }
            };
            let _ = waiter.tx.send(decision);
        }
    }
}
