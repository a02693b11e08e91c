//! Replicas: pending rows whose replica died (or left) are taken over and
//! answered here, once.

use switchboard_memory::{IngressRecord, IngressStatus, Store, StoreError};

use super::Pipeline;
use crate::cluster::Cluster;

/// The rows `ids` names that are still pending, in order.
pub async fn rows(store: &dyn Store, ids: &[i64]) -> Result<Vec<IngressRecord>, StoreError> {
    let mut rows = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(r) = store.ingress_get(id).await?
            && r.status == IngressStatus::Pending
        {
            rows.push(r);
        }
    }
    Ok(rows)
}

/// What a replica answers at start, before any intake: the rows no live
/// replica owns (at most `limit`), and every pending row of its own id (a
/// previous run of it under the same `cluster.replica_id`, whose claims
/// its first heartbeat renewed). The rest comes with the sweep.
pub async fn leftover(
    store: &dyn Store,
    cluster: &Cluster,
    limit: i64,
) -> Result<Vec<IngressRecord>, StoreError> {
    let ids = cluster.take_over(std::time::Duration::ZERO, limit).await?;
    let mut rows = rows(store, &ids).await?;
    let taken: std::collections::HashSet<i64> = ids.into_iter().collect();
    rows.extend(
        store
            .ingress_pending()
            .await?
            .into_iter()
            .filter(|r| r.claimed_by.as_deref() == Some(cluster.id()) && !taken.contains(&r.id)),
    );
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

impl Pipeline {
    /// [`sweep_unowned`](Self::sweep_unowned) for a replica: take the rows
    /// of replicas whose claims ran out, and hand them on with this
    /// replica's own rows that nobody here works on and that have not
    /// changed for `grace` (an admission that failed after the write, an
    /// actor that died). Rows a live replica owns are never touched.
    /// Returns how many were handed on.
    pub async fn sweep_cluster(
        &self,
        cluster: &Cluster,
        grace: std::time::Duration,
        limit: i64,
    ) -> Result<usize, StoreError> {
        if self.sessions.context().draining.is_cancelled() {
            // Stopping: what is taken now would only be handed over again.
            return Ok(0);
        }
        let claims = self.sessions.context().claims.clone();
        let ids = cluster.take_over(grace, limit).await?;
        let ids: Vec<i64> = ids
            .into_iter()
            .filter(|id| !claims.is_claimed(*id))
            .collect();
        let mut rows = rows(&*self.store, &ids).await?;
        let before = crate::clock::now_ms() - i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let taken: std::collections::HashSet<i64> = ids.into_iter().collect();
        rows.extend(self.store.ingress_pending().await?.into_iter().filter(|r| {
            r.claimed_by.as_deref() == Some(cluster.id())
                && r.received_at < before
                && r.updated_at < before
                && !claims.is_claimed(r.id)
                && !taken.contains(&r.id)
        }));
        if rows.is_empty() {
            return Ok(0);
        }
        rows.sort_by_key(|r| r.id);
        tracing::warn!(
            count = rows.len(),
            replica = %cluster.id(),
            "taking over messages whose replica stopped working on them"
        );
        self.replay(rows).await
    }
}
