//! The pages of the control UI, one module each. Every handler takes a
//! [`Signed`](super::Signed) (so a browser that is not signed in is sent to
//! `/login`), renders a template extending `base.html` with a
//! [`Layout`](super::Layout), and every form it shows posts back with the
//! session's CSRF token and redirects (303) with a notice or an error.

use std::sync::Arc;

use axum::Router;

use crate::http::AppState;

mod agents;
mod approvals;
mod audit;
mod channels;
mod chat;
pub(crate) mod config;
mod cron;
mod logs;
mod overview;
mod pairing;
mod sessions;
mod usage;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .merge(overview::routes())
        .merge(chat::routes())
        .merge(sessions::routes())
        .merge(pairing::routes())
        .merge(approvals::routes())
        .merge(channels::routes())
        .merge(agents::routes())
        .merge(cron::routes())
        .merge(usage::routes())
        .merge(logs::routes())
        .merge(audit::routes())
        .merge(config::routes())
}

/// "3 s ago", "5 min ago", "2 h ago", "4 d ago" for a moment in ms since
/// the epoch; "never" for none.
pub(crate) fn ago(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "never".into();
    };
    let secs = ((crate::clock::now_ms() - ms) / 1000).max(0);
    match secs {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// A duration in seconds as "1 d 2 h", "3 h 4 min", "5 min", "6 s".
pub(crate) fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}
