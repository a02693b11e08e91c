//! The desktop tray companion of Switchboard: a tray item that shows how
//! the gateway is, with a menu that opens the control UI, and desktop
//! notifications when something waits for the operator.
//!
//! It is a client of the gateway's HTTP protocol (`docs/protocol.md`), like
//! the browser and the CLI, and depends on no other workspace crate, so it
//! can run on a desktop that does not run the gateway. The parts, from the
//! pure middle to the edges:
//!
//! - [`model`]: the status stream's snapshot → what the tray shows (status,
//!   icon, tooltip, menu); [`notices`]: two snapshots → the notifications
//!   to show; [`icons`]: the icons, drawn in code; [`sse`]: reading
//!   server-sent events. All pure, with unit tests.
//! - [`locate`]: finding the gateway and its token as the CLI does;
//!   [`gateway`]: following `/api/status/stream` and asking for one-time
//!   sign-in links; [`power`]: starting and stopping a gateway the tray may
//!   own; [`opener`]: the browser; [`autostart`]: the XDG autostart entry.
//! - Linux only: [`dbus`] (the StatusNotifierItem and its menu, through
//!   ksni), [`notify`] (org.freedesktop.Notifications) and [`app`], the
//!   event loop that wires them.
//!
//! Nothing here knows the gateway's internals: only its JSON.

pub mod autostart;
pub mod error;
pub mod gateway;
pub mod icons;
pub mod locate;
pub mod model;
pub mod notices;
pub mod opener;
pub mod power;
pub mod sse;

#[cfg(target_os = "linux")]
pub mod app;
#[cfg(target_os = "linux")]
pub mod dbus;
#[cfg(target_os = "linux")]
pub mod notify;

pub use error::Error;

/// Write one line to the tray's log: stderr, which is the journal under
/// a desktop session's autostart, or the terminal. Never pass secrets
/// (tokens, sign-in links) to it.
#[allow(clippy::print_stderr)] // the tray's log is its stderr
pub fn log(message: impl std::fmt::Display) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    eprintln!("{h:02}:{m:02}:{s:02}Z switchboard-tray: {message}");
}
