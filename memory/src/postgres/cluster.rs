//! [`Coordination`] on PostgreSQL: leases and claims as rows measured
//! against the server's clock (`switchboard_now_ms()`), notices with
//! `LISTEN`/`NOTIFY`.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use super::PgStore;
use crate::{Coordination, LeaseRecord, MAX_NOTICE, ReplicaRecord, StoreError};

/// How long after they ran out leases and replicas' rows are deleted.
const FORGET_AFTER_MS: i64 = 10 * 60 * 1000;

/// Notices a subscriber may fall behind by before the listener waits.
const SUBSCRIBER_BACKLOG: usize = 1024;

#[async_trait]
impl Coordination for PgStore {
    fn claim_accepted_as(&self, holder: &str, ttl_ms: i64) {
        let _ = self.claimant.set((holder.to_string(), ttl_ms));
    }

    async fn now_ms(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT switchboard_now_ms()")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        token: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        // One statement: of two replicas asking at once, the second waits
        // for the first's row and then finds it held.
        let got: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, token, acquired_at, until_ms) \
             VALUES ($1, $2, $4, switchboard_now_ms(), switchboard_now_ms() + $3) \
             ON CONFLICT (name) DO UPDATE SET \
               holder = EXCLUDED.holder, \
               token = EXCLUDED.token, \
               acquired_at = CASE WHEN leases.holder = EXCLUDED.holder \
                 THEN leases.acquired_at ELSE EXCLUDED.acquired_at END, \
               until_ms = EXCLUDED.until_ms \
             WHERE leases.holder = EXCLUDED.holder OR leases.until_ms < switchboard_now_ms() \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(ttl_ms)
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        Ok(got.is_some())
    }

    async fn lease_release(&self, name: &str, holder: &str, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2 AND token = $3")
            .bind(name)
            .bind(holder)
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        Ok(sqlx::query_as::<_, LeaseRecord>(
            "SELECT name, holder, acquired_at, until_ms FROM leases \
             WHERE until_ms >= switchboard_now_ms() ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn heartbeat(
        &self,
        replica: &ReplicaRecord,
        held: &[String],
        ttl_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO replicas (id, address, version, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, switchboard_now_ms()) \
             ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, \
               version = EXCLUDED.version, started_at = EXCLUDED.started_at, \
               heartbeat_at = EXCLUDED.heartbeat_at",
        )
        .bind(&replica.id)
        .bind(&replica.address)
        .bind(&replica.version)
        .bind(replica.started_at)
        .execute(&mut *tx)
        .await?;
        // Only what the process still holds: a lease it let go of (or
        // lost track of) runs out instead of living on.
        let mut renewed: Vec<String> = sqlx::query_scalar(
            "UPDATE leases SET until_ms = switchboard_now_ms() + $2 \
             WHERE holder = $1 AND name = ANY($3) RETURNING name",
        )
        .bind(&replica.id)
        .bind(ttl_ms)
        .bind(held)
        .fetch_all(&mut *tx)
        .await?;
        // What ran out long ago is gone (a lease's name may hold a
        // session key; a dead replica's row says nothing).
        sqlx::query("DELETE FROM leases WHERE until_ms < switchboard_now_ms() - $1")
            .bind(FORGET_AFTER_MS)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM replicas WHERE heartbeat_at < switchboard_now_ms() - $1")
            .bind(FORGET_AFTER_MS)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE ingress SET claim_until = switchboard_now_ms() + $2 \
             WHERE claimed_by = $1 AND status = 'pending'",
        )
        .bind(&replica.id)
        .bind(ttl_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        renewed.sort();
        Ok(renewed)
    }

    async fn replicas(&self, within_ms: i64) -> Result<Vec<ReplicaRecord>, StoreError> {
        Ok(sqlx::query_as::<_, ReplicaRecord>(
            "SELECT id, address, version, started_at, heartbeat_at FROM replicas \
             WHERE heartbeat_at >= switchboard_now_ms() - $1 ORDER BY id",
        )
        .bind(within_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn replica_leave(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM leases WHERE holder = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Run out, not cleared: the others' next take-over finds them.
        sqlx::query(
            "UPDATE ingress SET claim_until = 0 WHERE claimed_by = $1 AND status = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ingress_take_over(
        &self,
        holder: &str,
        ttl_ms: i64,
        grace_ms: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        // `updated_at` is written by the replicas' clocks; the grace is
        // far longer than any sane difference between them.
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "WITH taken AS (SELECT id FROM ingress WHERE status = 'pending' AND ( \
                 (claimed_by IS NOT NULL AND claim_until < switchboard_now_ms()) \
                 OR (claimed_by IS NULL AND updated_at < switchboard_now_ms() - $3)) \
               ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE ingress SET claimed_by = $1, claim_until = switchboard_now_ms() + $2 \
             FROM taken WHERE ingress.id = taken.id RETURNING ingress.id",
        )
        .bind(holder)
        .bind(ttl_ms)
        .bind(grace_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn publish(&self, topic: &str, payload: &str) -> Result<(), StoreError> {
        if payload.len() > MAX_NOTICE {
            return Err(StoreError::Corrupt(format!(
                "a notice of {} bytes is over the {MAX_NOTICE} bytes one can carry",
                payload.len()
            )));
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(topic)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<mpsc::Receiver<String>, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(topic).await?;
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BACKLOG);
        let topic = topic.to_string();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tx.closed() => return,
                    n = listener.recv() => match n {
                        Ok(n) => {
                            if tx.send(n.payload().to_string()).await.is_err() {
                                return;
                            }
                        }
                        // The listener reconnects on its next receive.
                        Err(e) => {
                            tracing::warn!(topic = %topic, error = %e, "lost the database's notices; reconnecting");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    },
                }
            }
        });
        Ok(rx)
    }
}
