//! Replicas: several gateways on one PostgreSQL store sharing the work,
//! each piece of it done once (`[cluster] enabled = true`).
//!
//! The database is the one place they agree through
//! ([`switchboard_memory::Coordination`]):
//! - every replica writes a heartbeat every quarter of `cluster.lease_secs`;
//!   it renews, in the same transaction, the leases it holds and its claims
//!   on pending ingress rows, for two thirds of `lease_secs` (the *term*);
//! - a channel account's listener runs only where its lease
//!   (`listener:<channel>/<account>`) is held ([`Cluster::hold`]); a
//!   session's turns run only where its lease (`session:<key>`) is held,
//!   so a message for a session busy on another replica waits in its queue;
//! - rows a replica accepts are claimed by it as they are written; rows of
//!   a replica whose claims ran out are taken by another
//!   (`FOR UPDATE SKIP LOCKED`, [`Cluster::take_over`]) and answered there;
//! - a replica that cannot renew for a term less one beat lets go of its
//!   leases itself (its listeners stop), before anyone else may take them:
//!   two replicas never poll one bot;
//! - events fan out to every replica ([`fanout`]).
//!
//! So after a holder dies, another replica takes over within a term and a
//! beat, which is less than `lease_secs`; after a clean stop, within a beat.
//!
//! A gateway on its own (SQLite, or PostgreSQL without `[cluster]`) runs
//! none of this, unlike the architecture's first sketch (a local lease):
//! the data directory's lock already makes it the only listener of each
//! account, and leaving the leases out keeps two store round trips off
//! every turn.

pub mod fanout;
pub mod services;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use switchboard_memory::{Coordination, LeaseRecord, ReplicaRecord, Store, StoreError};

use crate::clock::now_ms;
use crate::config::ClusterConfig;

/// The timings derived from `cluster.lease_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often a replica beats.
    pub beat: Duration,
    /// How long a lease or claim lasts after a beat.
    pub term: Duration,
}

impl Timing {
    /// For `lease_secs`.
    pub fn new(lease_secs: u64) -> Self {
        let lease = Duration::from_secs(lease_secs.max(1));
        Self {
            beat: lease / 4,
            term: lease * 2 / 3,
        }
    }

    fn term_ms(&self) -> i64 {
        i64::try_from(self.term.as_millis()).unwrap_or(i64::MAX)
    }

    /// How long after sending its last good beat a replica lets go of
    /// its leases. It looks after every beat (at most half a beat long,
    /// one beat apart), so it has let go a term less half a beat after
    /// that beat at the latest: before its leases can run out, which is a
    /// term after the beat reached the database.
    pub fn fence(&self) -> Duration {
        self.term.saturating_sub(self.beat + self.beat / 2)
    }
}

/// What `/api/status` shows of the cluster.
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    /// This replica.
    pub replica_id: String,
    /// `cluster.lease_secs`.
    pub lease_secs: u64,
    /// When this replica last beat, ms (0: never).
    pub last_heartbeat_ms: i64,
    /// The replicas alive, with their last heartbeat.
    pub replicas: Vec<ReplicaRecord>,
    /// Who holds which lease.
    pub leases: Vec<LeaseRecord>,
}

/// This gateway as one replica.
#[derive(Debug)]
pub struct Cluster {
    store: Arc<dyn Store>,
    me: ReplicaRecord,
    lease_secs: u64,
    timing: Timing,
    /// The leases held here, each with its generation and the token
    /// cancelled when it is lost.
    held: Mutex<HashMap<String, (u64, CancellationToken)>>,
    generations: AtomicU64,
    last_beat: Mutex<Option<Instant>>,
    view: Mutex<View>,
}

/// The store has no coordination (it is SQLite).
fn no_coordination() -> StoreError {
    StoreError::NotFound(
        "replicas need a shared PostgreSQL store: set [store] url = \"postgres://…\"".into(),
    )
}

impl Cluster {
    /// Join the cluster on `store` as `config.replica_id` (default: host
    /// name and process id), reachable at `address`. A replica of the same
    /// id that still beats is waited for, for one term; one that goes on
    /// beating is an error (two gateways given one id).
    pub async fn join(
        store: Arc<dyn Store>,
        config: &ClusterConfig,
        address: String,
    ) -> anyhow::Result<Arc<Self>> {
        let id = config.replica_id.clone().unwrap_or_else(default_id);
        let timing = Timing::new(config.lease_secs);
        let this = Arc::new(Self {
            me: ReplicaRecord {
                id,
                address,
                version: env!("CARGO_PKG_VERSION").into(),
                started_at: now_ms(),
                heartbeat_at: 0,
            },
            store,
            lease_secs: config.lease_secs,
            timing,
            held: Mutex::default(),
            generations: AtomicU64::new(0),
            last_beat: Mutex::default(),
            view: Mutex::default(),
        });
        let coord = this.coord()?;
        let deadline = Instant::now() + timing.term + timing.beat;
        let mut said = false;
        loop {
            let live = coord.replicas(timing.term_ms()).await?;
            let Some(other) = live.into_iter().find(|r| r.id == this.me.id) else {
                break;
            };
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "another gateway runs as replica {:?} (at {}, still beating): give each replica \
                     its own cluster.replica_id, or leave it unset",
                    other.id,
                    other.address
                );
            }
            if !said {
                tracing::warn!(replica = %other.id, address = %other.address, "a replica of this id beat recently; waiting for its leases to run out");
                said = true;
            }
            tokio::time::sleep(timing.beat.min(Duration::from_millis(500))).await;
        }
        coord.claim_accepted_as(&this.me.id, timing.term_ms());
        let sent = Instant::now();
        this.beat().await?;
        *this
            .last_beat
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(sent);
        Ok(this)
    }

    fn coord(&self) -> Result<&dyn Coordination, StoreError> {
        self.store.coordination().ok_or_else(no_coordination)
    }

    /// This replica's id.
    pub fn id(&self) -> &str {
        &self.me.id
    }

    /// The timings.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// What status shows (as of the last beat).
    pub fn view(&self) -> View {
        self.view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Take lease `name` now, if nobody else holds it.
    pub async fn acquire(self: &Arc<Self>, name: &str) -> Result<Option<Lease>, StoreError> {
        let token = format!("{:016x}", rand::random::<u64>());
        let got = self
            .coord()?
            .lease_acquire(name, &self.me.id, &token, self.timing.term_ms())
            .await?;
        if !got {
            return Ok(None);
        }
        let lost = CancellationToken::new();
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let old = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), (generation, lost.clone()));
        if let Some((_, old)) = old {
            // Taken again while held: only the newest holding guards.
            old.cancel();
        }
        Ok(Some(Lease {
            name: name.to_string(),
            generation,
            token,
            lost,
            cluster: self.clone(),
            released: false,
        }))
    }

    /// Wait until lease `name` is ours, asking every `every`; `None` when
    /// `stop` ends the wait first. A store error is logged and asked again.
    pub async fn hold(
        self: &Arc<Self>,
        name: &str,
        every: Duration,
        stop: &CancellationToken,
    ) -> Option<Lease> {
        let mut said = false;
        loop {
            match self.acquire(name).await {
                Ok(Some(lease)) => return Some(lease),
                Ok(None) => {}
                // Once per wait: many sessions may wait through an outage.
                Err(e) if !said => {
                    said = true;
                    tracing::warn!(lease = %name, error = %e, "cannot ask for a lease; asking again");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Who holds lease `name`, as of the last beat.
    pub fn holder_of(&self, name: &str) -> Option<String> {
        self.view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .leases
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.holder.clone())
    }

    /// One heartbeat: renew what is held, find leases lost, refresh the
    /// view.
    async fn beat(&self) -> Result<(), StoreError> {
        let coord = self.coord()?;
        // What is held now: a lease taken after this snapshot is not
        // renewed by this beat (it has a whole term) nor judged lost.
        let snapshot: Vec<(String, u64)> = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(n, (g, _))| (n.clone(), *g))
            .collect();
        let names: Vec<String> = snapshot.iter().map(|(n, _)| n.clone()).collect();
        let renewed: HashSet<String> = coord
            .heartbeat(&self.me, &names, self.timing.term_ms())
            .await?
            .into_iter()
            .collect();
        let lost: Vec<String> = {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            let mut lost = Vec::new();
            for (name, generation) in snapshot {
                if renewed.contains(&name) {
                    continue;
                }
                if held.get(&name).is_some_and(|(g, _)| *g == generation)
                    && let Some((_, token)) = held.remove(&name)
                {
                    token.cancel();
                    lost.push(name);
                }
            }
            lost
        };
        for name in lost {
            tracing::warn!(lease = %name, "a lease was taken over by another replica");
        }
        let replicas = coord.replicas(self.timing.term_ms()).await?;
        let leases = coord.leases().await?;
        let last_heartbeat_ms = replicas
            .iter()
            .find(|r| r.id == self.me.id)
            .map_or(0, |r| r.heartbeat_at);
        *self.view.lock().unwrap_or_else(PoisonError::into_inner) = View {
            replica_id: self.me.id.clone(),
            lease_secs: self.lease_secs,
            last_heartbeat_ms,
            replicas,
            leases,
        };
        Ok(())
    }

    /// Let go of every lease held here (their holders stop).
    fn drop_all(&self, why: &str) {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(PoisonError::into_inner));
        if !held.is_empty() {
            tracing::error!(
                leases = held.len(),
                "{why}: letting go of this replica's leases"
            );
        }
        for (_, token) in held.into_values() {
            token.cancel();
        }
    }

    /// Beat every [`Timing::beat`] until `stop`. A beat that has not
    /// answered within half a beat counts as failed; a replica whose last
    /// good beat was sent [`Timing::fence`] ago lets go of its leases,
    /// which is before they can run out in the database.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) -> Result<(), String> {
        loop {
            let sent = Instant::now();
            match tokio::time::timeout(self.timing.beat / 2, self.beat()).await {
                Ok(Ok(())) => {
                    *self
                        .last_beat
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(sent);
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "replica heartbeat failed"),
                Err(_) => tracing::warn!("replica heartbeat took too long"),
            }
            let last = *self
                .last_beat
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_none_or(|t| t.elapsed() >= self.timing.fence()) {
                self.drop_all("the database has not answered for too long");
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(sent + self.timing.beat) => {}
            }
        }
    }

    /// Pending rows nobody owns any more (their replica died or left),
    /// and rows of this replica's that have no owner here, now this
    /// replica's; at most `limit`.
    pub async fn take_over(&self, grace: Duration, limit: i64) -> Result<Vec<i64>, StoreError> {
        self.coord()?
            .ingress_take_over(
                &self.me.id,
                self.timing.term_ms(),
                i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
                limit,
            )
            .await
    }

    /// This replica stops: its leases and claims go at once, so the
    /// others take its listeners and unanswered rows within a beat.
    pub async fn leave(&self) {
        self.drop_all("stopping");
        match self.coord() {
            Ok(coord) => {
                if let Err(e) = coord.replica_leave(&self.me.id).await {
                    tracing::warn!(error = %e, "cannot hand this replica's work over; the others take it when its leases run out");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot leave the cluster"),
        }
    }
}

/// A lease held by this replica, given up when dropped.
#[derive(Debug)]
pub struct Lease {
    name: String,
    generation: u64,
    /// This taking's token in the database.
    token: String,
    lost: CancellationToken,
    cluster: Arc<Cluster>,
    released: bool,
}

impl Lease {
    /// Cancelled when the lease was lost (taken over, or let go of because
    /// the database did not answer): stop what it guards.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Lease {
    /// Give the lease up now (and wait for the database to say so), so
    /// that taking it again at once cannot race the release.
    pub async fn release(mut self) {
        if self.forget()
            && let Ok(coord) = self.cluster.coord()
            && let Err(e) = coord
                .lease_release(&self.name, &self.cluster.me.id, &self.token)
                .await
        {
            tracing::warn!(lease = %self.name, error = %e, "cannot give a lease up; it runs out by itself");
        }
        self.released = true;
    }

    /// Take it out of the leases held here; whether it was there (not
    /// lost meanwhile).
    fn forget(&mut self) -> bool {
        let mut held = self
            .cluster
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ours = held
            .get(&self.name)
            .is_some_and(|(g, _)| *g == self.generation);
        if ours {
            held.remove(&self.name);
        }
        ours
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released || !self.forget() {
            return;
        }
        // Dropped without `release` (its task was aborted): given up in
        // the background.
        let cluster = self.cluster.clone();
        let name = std::mem::take(&mut self.name);
        let token = std::mem::take(&mut self.token);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Ok(coord) = cluster.coord() {
                    let _ = coord.lease_release(&name, &cluster.me.id, &token).await;
                }
            });
        }
    }
}

/// The host name and process id.
fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".into());
    format!("{host}-{}", std::process::id())
}

/// The lease of a channel account's listener.
pub fn listener_lease(channel: &str, account: &str) -> String {
    format!("listener:{channel}/{account}")
}

/// The lease of a session's turns.
pub fn session_lease(key: &str) -> String {
    format!("session:{key}")
}
