//! The services a replica runs besides the gateway's own: the heartbeat,
//! the keys others add to the shared keyring, approval decisions made
//! elsewhere, and the events fanned out both ways.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use switchboard_memory::SealedStore;
use switchboard_memory::crypto::Key;

use super::{Cluster, fanout};
use crate::approvals::Approvals;
use crate::events::{EventBus, GatewayEvent};
use crate::supervisor::Supervisor;

/// Start them under `supervisor`. `outgoing` is what [`fanout::forward`]
/// gave for `bus`; its sender runs once, until `shutdown`.
pub fn spawn(
    cluster: &Arc<Cluster>,
    supervisor: &Supervisor,
    sealed: Option<Arc<SealedStore>>,
    approvals: Arc<Approvals>,
    bus: EventBus,
    outgoing: Option<mpsc::Receiver<GatewayEvent>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let beat = cluster.clone();
    supervisor.spawn("cluster", move |stop| beat.clone().run(stop));
    if let Some(sealed) = sealed.clone() {
        supervisor.spawn("cluster-keyring", move |stop| {
            learn_keys(sealed.clone(), stop)
        });
    }
    supervisor.spawn("cluster-approvals", move |stop| {
        approvals.clone().hear_decisions(stop)
    });
    // With encryption on, the notices are sealed too.
    let key = match &sealed {
        Some(sealed) => Some(Key::from_secret(
            sealed
                .keyring()
                .derive(fanout::KEY_LABEL)
                .context("cannot derive the key of the replicas' notices")?,
        )),
        None => None,
    };
    let (from, incoming) = (cluster.clone(), key.clone());
    supervisor.spawn("cluster-events-in", move |stop| {
        fanout::receive(from.clone(), bus.clone(), incoming.clone(), stop)
    });
    if let Some(rx) = outgoing {
        // Started once: its receiver is not made again by a restart.
        let to = cluster.clone();
        tokio::spawn(async move {
            if let Err(e) = fanout::send(to, rx, key, shutdown).await {
                tracing::error!(error = %e, "events are no longer sent to the other replicas");
            }
        });
    }
    Ok(())
}

/// For replicas: take in the keys another replica adds to the shared
/// keyring as soon as it says so, until `stop`.
async fn learn_keys(sealed: Arc<SealedStore>, stop: CancellationToken) -> Result<(), String> {
    let Some(coord) = sealed.inner().coordination() else {
        return Ok(());
    };
    let mut rx = coord
        .subscribe(switchboard_memory::KEYRING_TOPIC)
        .await
        .map_err(|e| e.to_string())?;
    // What was added before the subscription began.
    sealed
        .learn_shared_keys()
        .await
        .map_err(|e| e.to_string())?;
    loop {
        // Also every so often: a notice sent while the listener was
        // reconnecting is missed.
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            n = rx.recv() => if n.is_none() {
                return Err("the database's notices stopped".into());
            },
        }
        match sealed.learn_shared_keys().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                keys = n,
                "took in keys another replica added to the keyring"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot take in the keys another replica added"),
        }
    }
}
