//! What replicas sharing one database need of it besides the records:
//! who is alive, who holds which lease, who owns which pending ingress
//! row, and a way to tell each other of events.
//!
//! Only a shared database ([`PgStore`](crate::PgStore)) coordinates;
//! [`Store::coordination`](crate::Store::coordination) is `None` for the
//! embedded one, whose data directory has one writer. Times are the
//! database server's clock (ms since the epoch), so replicas on machines
//! whose clocks differ agree on when a lease ends.

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::StoreError;

/// A running replica, as its heartbeat last wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ReplicaRecord {
    /// Its `cluster.replica_id`.
    pub id: String,
    /// Where its HTTP port is (`http://host:port`), for operators.
    pub address: String,
    /// Its version.
    pub version: String,
    /// When it started, ms.
    pub started_at: i64,
    /// Its last heartbeat, ms (the database's clock).
    pub heartbeat_at: i64,
}

/// A named lease and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LeaseRecord {
    /// What it is for: `listener:telegram/main`, `session:<key>`.
    pub name: String,
    /// The replica holding it.
    pub holder: String,
    /// When this holder took it, ms.
    pub acquired_at: i64,
    /// When it ends unless renewed, ms.
    pub until_ms: i64,
}

/// Coordination of replicas through the shared database.
#[async_trait]
pub trait Coordination: Send + Sync + std::fmt::Debug {
    /// From now on, ingress rows this store accepts are owned by `holder`
    /// for `ttl_ms` (renewed by [`heartbeat`](Self::heartbeat)): no other
    /// replica takes them while the holder lives.
    fn claim_accepted_as(&self, holder: &str, ttl_ms: i64);

    /// The database's clock, ms since the epoch.
    async fn now_ms(&self) -> Result<i64, StoreError>;

    /// Take lease `name` for `holder` for `ttl_ms` as taking `token` (a
    /// fresh random value per taking), also when `holder` has it already.
    /// `false`: another replica holds it and its time has not run out.
    async fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        token: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Give lease `name` up, if `holder` has it as taking `token` (a late
    /// release of an earlier taking leaves a newer one alone).
    async fn lease_release(&self, name: &str, holder: &str, token: &str) -> Result<(), StoreError>;

    /// Every lease whose time has not run out, by name.
    async fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError>;

    /// One heartbeat of `replica`, in one transaction: its row is written
    /// with the database's time; of the leases it holds, those named in
    /// `held` (what the process still holds) are renewed for `ttl_ms`, the
    /// others are left to run out; its claims on pending ingress rows are
    /// renewed. Leases and replicas that ran out more than ten minutes ago
    /// are deleted. Returns the names of `held` it still holds (one missing
    /// was taken over after it ran out).
    async fn heartbeat(
        &self,
        replica: &ReplicaRecord,
        held: &[String],
        ttl_ms: i64,
    ) -> Result<Vec<String>, StoreError>;

    /// The replicas whose heartbeat is at most `within_ms` old, by id.
    async fn replicas(&self, within_ms: i64) -> Result<Vec<ReplicaRecord>, StoreError>;

    /// `id` stops: its row, its leases and its claims on pending ingress
    /// rows go, so the others take its work at once.
    async fn replica_leave(&self, id: &str) -> Result<(), StoreError>;

    /// Take pending ingress rows for `holder` (for `ttl_ms`) that nobody
    /// owns any more: a claim that ran out (its replica died or left, or
    /// this one could not beat), or no claim and no change for `grace_ms`
    /// (a row written before there were replicas). A live replica's rows
    /// are never taken; rows another replica is taking at the same moment
    /// are skipped (`FOR UPDATE SKIP LOCKED`), never taken twice. Returns
    /// their ids, oldest first, at most `limit`.
    async fn ingress_take_over(
        &self,
        holder: &str,
        ttl_ms: i64,
        grace_ms: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError>;

    /// Tell every replica listening on `topic` (this one too) `payload`,
    /// at most [`MAX_NOTICE`] bytes.
    async fn publish(&self, topic: &str, payload: &str) -> Result<(), StoreError>;

    /// What is published on `topic` from now on. The listener reconnects
    /// by itself when the connection drops (what was published meanwhile
    /// is missed); the channel closes when it cannot.
    async fn subscribe(&self, topic: &str) -> Result<mpsc::Receiver<String>, StoreError>;
}

/// The longest payload [`Coordination::publish`] takes (PostgreSQL's
/// `NOTIFY` limit is 8000 bytes).
pub const MAX_NOTICE: usize = 7900;
