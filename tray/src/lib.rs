//! The desktop tray companion of Switchboard.
//!
//! A thin program that asks the running gateway for its health and shows it
//! as a tray icon with a menu that opens the control UI. It talks to the
//! gateway only over its public HTTP API and depends on no other workspace
//! crate. Today it holds the mapping from a health answer to what the tray
//! shows; the window-system part follows with its own issue.

use serde::Deserialize;

/// What the tray shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayState {
    /// The gateway answers and is ready.
    Ready,
    /// The gateway answers but something is degraded.
    Degraded,
    /// The gateway does not answer.
    Down,
}

#[derive(Debug, Deserialize)]
struct Ready {
    ready: bool,
}

/// Read a `/readyz` answer (`None` when the gateway did not answer).
pub fn state_from_readyz(status: Option<u16>, body: &str) -> TrayState {
    match status {
        None => TrayState::Down,
        Some(200) => match serde_json::from_str::<Ready>(body) {
            Ok(Ready { ready: true }) => TrayState::Ready,
            _ => TrayState::Degraded,
        },
        Some(_) => TrayState::Degraded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_maps_to_tray_state() {
        assert_eq!(state_from_readyz(None, ""), TrayState::Down);
        assert_eq!(
            state_from_readyz(Some(200), r#"{"ready":true}"#),
            TrayState::Ready
        );
        assert_eq!(
            state_from_readyz(Some(503), r#"{"ready":false}"#),
            TrayState::Degraded
        );
        assert_eq!(state_from_readyz(Some(200), "garbage"), TrayState::Degraded);
    }
}
