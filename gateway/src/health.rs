//! What `/readyz`, `/api/status` and `switchboard status` report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use switchboard_channel::{ChannelStatus, StatusSnapshot};

use serde::Serialize;

use crate::clock::now_ms;

/// The state of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Starting up.
    Starting,
    /// Working.
    Running,
    /// Failed; being restarted with backoff.
    Restarting,
    /// Reachable but not well (e.g. a provider answering errors).
    Degraded,
    /// Not working.
    Failed,
    /// Stopped on purpose.
    Stopped,
    /// Ready to run, while another replica holds its lease (a channel
    /// account's listener on a replica that is not the holder).
    Standby,
}

/// One component's health.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// Its state.
    pub state: State,
    /// A readable detail (the last error, an address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When the state last changed, ms since the epoch.
    pub since_ms: i64,
    /// When it last received something, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_ms: Option<i64>,
    /// How often it was restarted.
    pub restarts: u32,
    /// Why it last failed (an error, or `panicked: <message>`), kept after
    /// it runs again so a restart loop or an old panic stays visible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// What a channel listener reports of its connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<StatusSnapshot>,
}

/// The health of every component, by name (`http`, `store`,
/// `channel:webchat/default`, `provider:local`, ...).
#[derive(Debug, Default)]
pub struct Health {
    components: Mutex<BTreeMap<String, Component>>,
    statuses: Mutex<BTreeMap<String, Arc<ChannelStatus>>>,
}

impl Health {
    /// Empty health.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set a component's state and detail.
    pub fn set(&self, name: &str, state: State, detail: Option<String>) {
        let mut map = self.components.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        let entry = map.entry(name.to_string()).or_insert(Component {
            state,
            detail: None,
            since_ms: now,
            last_event_ms: None,
            restarts: 0,
            last_failure: None,
            connection: None,
        });
        if entry.state != state {
            entry.since_ms = now;
            if state == State::Restarting {
                entry.restarts += 1;
            }
        }
        if state == State::Restarting && detail.is_some() {
            entry.last_failure.clone_from(&detail);
        }
        entry.state = state;
        entry.detail = detail;
    }

    /// Forget a component (a channel account removed from the config).
    pub fn remove(&self, name: &str) {
        self.components
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Record that a component received something now.
    pub fn touch(&self, name: &str) {
        if let Some(c) = self
            .components
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(name)
        {
            c.last_event_ms = Some(now_ms());
        }
    }

    /// The status a channel listener reports into; shown with component
    /// `name`.
    pub fn channel_status(&self, name: &str) -> Arc<ChannelStatus> {
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// A copy of every component. A running listener that reports a
    /// problem (a 409 conflict, a stalled connection) shows as degraded,
    /// with the problem as its detail.
    pub fn snapshot(&self) -> BTreeMap<String, Component> {
        let mut map = self
            .components
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        for (name, status) in statuses.iter() {
            let Some(c) = map.get_mut(name) else { continue };
            let snap = status.snapshot();
            c.last_event_ms = c.last_event_ms.max(snap.last_event_ms);
            if let Some(problem) = &snap.problem
                && c.state == State::Running
            {
                c.state = State::Degraded;
                c.detail = Some(problem.clone());
            }
            c.connection = Some(snap);
        }
        map
    }

    /// Why the gateway is not ready, if it is not: every channel must be
    /// running.
    pub fn not_ready(&self) -> Vec<String> {
        self.snapshot()
            .into_iter()
            .filter(|(name, c)| {
                name.starts_with("channel:") && !matches!(c.state, State::Running | State::Standby)
            })
            .map(|(name, c)| format!("{name} is {:?}", c.state).to_lowercase())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_is_counted_and_its_cause_kept_after_running_again() {
        let h = Health::new();
        h.set("svc", State::Running, None);
        h.set("svc", State::Restarting, Some("panicked: boom".into()));
        h.set("svc", State::Running, None);
        let snapshot = h.snapshot();
        let c = &snapshot["svc"];
        assert_eq!((c.state, c.restarts), (State::Running, 1));
        assert_eq!(c.last_failure.as_deref(), Some("panicked: boom"));
        assert_eq!(c.detail, None);
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["last_failure"], "panicked: boom");
        assert_eq!(json["restarts"], 1);
    }
}
