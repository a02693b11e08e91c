//! Events fan out to every replica: a web chat or control UI client on one
//! replica sees the streamed answer of a turn another one runs.
//!
//! What is published on this replica's [`EventBus`] is also sent, in
//! batches, as database notices on [`TOPIC`]; what the others send is
//! published here. A batch too long for one notice goes in parts
//! (`origin \n batch \n part \n parts \n text`) and is put together again
//! on arrival. With encryption on, each batch is sealed with a key derived
//! from the keyring and bound to its origin, so what streams is no plainer
//! in the database's notices (and its logs) than in its tables, and a
//! notice sent by anything but a replica is dropped.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use switchboard_memory::MAX_NOTICE;
use switchboard_memory::crypto::Key;

use super::Cluster;
use crate::events::{EventBus, EventKind, GatewayEvent};

/// The notice channel of events.
pub const TOPIC: &str = "switchboard_events";

/// Events sent in one notice at most (before they are split).
const BATCH: usize = 64;

/// Batches being put together at most (a sender that died mid-batch
/// leaves one behind).
const PARTIAL: usize = 64;

/// Events waiting to be sent at most; past that, they are not fanned out
/// (this replica's own subscribers still get them).
pub const BACKLOG: usize = 4096;

/// One event as it travels.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    session_key: String,
    channel: String,
    message_id: String,
    kind: EventKind,
}

impl From<GatewayEvent> for Wire {
    fn from(e: GatewayEvent) -> Self {
        Self {
            session_key: e.session_key,
            channel: e.channel,
            message_id: e.message_id,
            kind: e.kind,
        }
    }
}

impl From<Wire> for GatewayEvent {
    fn from(w: Wire) -> Self {
        Self {
            session_key: w.session_key,
            channel: w.channel,
            message_id: w.message_id,
            kind: w.kind,
        }
    }
}

/// Start sending what `bus` publishes here; the receiver to hand to
/// [`send`].
pub fn forward(bus: &EventBus) -> mpsc::Receiver<GatewayEvent> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    bus.forward_to(tx);
    rx
}

/// The notices carrying `json`, batch number `batch` from `origin`.
pub(crate) fn split(origin: &str, batch: u64, json: &str) -> Vec<String> {
    let room = MAX_NOTICE.saturating_sub(origin.len() + 64).max(64);
    let mut chunks = Vec::new();
    let mut rest = json;
    while !rest.is_empty() {
        let mut end = room.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        chunks.push(&rest[..end]);
        rest = &rest[end..];
    }
    let parts = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| format!("{origin}\n{batch}\n{i}\n{parts}\n{c}"))
        .collect()
}

/// Notices put together again.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    partial: HashMap<(String, u64), Vec<Option<String>>>,
}

impl Assembler {
    /// Take one notice; `(origin, text)` of a batch once it is whole.
    pub(crate) fn take(&mut self, notice: &str) -> Option<(String, String)> {
        let mut f = notice.splitn(5, '\n');
        let (origin, batch, part, parts, text) =
            (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        let batch: u64 = batch.parse().ok()?;
        let part: usize = part.parse().ok()?;
        let parts: usize = parts.parse().ok()?;
        if part >= parts || parts > 4096 {
            return None;
        }
        if parts == 1 {
            return Some((origin.to_string(), text.to_string()));
        }
        let key = (origin.to_string(), batch);
        if !self.partial.contains_key(&key) && self.partial.len() >= PARTIAL {
            self.partial.clear();
        }
        let slots = self
            .partial
            .entry(key.clone())
            .or_insert_with(|| vec![None; parts]);
        if slots.len() != parts {
            self.partial.remove(&key);
            return None;
        }
        slots[part] = Some(text.to_string());
        if slots.iter().all(Option::is_some) {
            let whole = self.partial.remove(&key)?.into_iter().flatten().collect();
            return Some((key.0, whole));
        }
        None
    }
}

/// The label the notices' key is derived under.
pub const KEY_LABEL: &str = "switchboard fan-out v1";

/// Send what `rx` forwards from this replica's bus, until `stop`; sealed
/// with `key` when there is one.
pub async fn send(
    cluster: Arc<Cluster>,
    mut rx: mpsc::Receiver<GatewayEvent>,
    key: Option<Key>,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut batch_no = 0u64;
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            e = rx.recv() => match e {
                Some(e) => e,
                None => return Ok(()),
            },
        };
        let mut batch = vec![Wire::from(first)];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e.into()),
                Err(_) => break,
            }
        }
        let mut json = serde_json::to_string(&batch).map_err(|e| e.to_string())?;
        if let Some(key) = &key {
            json = key.seal("fanout", cluster.id().as_bytes(), json.as_bytes());
        }
        batch_no += 1;
        let coord = cluster.coord().map_err(|e| e.to_string())?;
        for notice in split(cluster.id(), batch_no, &json) {
            if let Err(e) = coord.publish(TOPIC, &notice).await {
                tracing::warn!(error = %e, "cannot fan events out to the other replicas");
                break;
            }
        }
    }
}

/// Publish on `bus` what the other replicas send, until `stop`; with
/// `key`, what does not open with it is dropped.
pub async fn receive(
    cluster: Arc<Cluster>,
    bus: EventBus,
    key: Option<Key>,
    stop: CancellationToken,
) -> Result<(), String> {
    let coord = cluster.coord().map_err(|e| e.to_string())?;
    let mut rx = coord.subscribe(TOPIC).await.map_err(|e| e.to_string())?;
    let mut parts = Assembler::default();
    loop {
        let notice = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            n = rx.recv() => match n {
                Some(n) => n,
                None => return Err("the database's notices stopped".into()),
            },
        };
        let Some((origin, json)) = parts.take(&notice) else {
            continue;
        };
        if origin == cluster.id() {
            continue;
        }
        let json = match &key {
            None => json,
            Some(key) => match key.open(origin.as_bytes(), &json) {
                Ok(plain) => String::from_utf8_lossy(&plain).into_owned(),
                Err(_) => {
                    tracing::warn!(replica = %origin, "a notice of events that does not open with this keyring was dropped");
                    continue;
                }
            },
        };
        match serde_json::from_str::<Vec<Wire>>(&json) {
            Ok(events) => {
                for e in events {
                    bus.publish_local(e.into());
                }
            }
            Err(e) => {
                tracing::warn!(replica = %origin, error = %e, "events from another replica do not read")
            }
        }
    }
}
