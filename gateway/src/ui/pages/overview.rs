//! **Overview**: every component's state as `switchboard status` shows it,
//! channel accounts, sessions, what waits for the operator, uptime and
//! version. A model provider that cannot be reached is said first.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;

use super::{ago, duration};
use crate::clock::now_ms;
use crate::health::{Component, State as Health};
use crate::http::AppState;
use crate::ui::{Flash, Layout, Signed, render};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/", get(page))
}

/// One component as a row.
struct Row {
    name: String,
    state: &'static str,
    badge: &'static str,
    since: String,
    last_event: String,
    problem: String,
    restarts: String,
}

/// A model provider that does not answer, and what to do.
struct Unreachable {
    name: String,
    why: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    unreachable: Vec<Unreachable>,
    rows: Vec<Row>,
    channels: Vec<Row>,
    ready: bool,
    version: &'static str,
    uptime: String,
    agents: String,
    sessions_in_memory: u64,
    running: u64,
    waiting_for_slot: u64,
    turns_done: u64,
    turns_failed: u64,
    pairing_waiting: usize,
    approvals_waiting: usize,
    problems: usize,
}

/// The badge class of a state.
pub(crate) fn badge(state: Health) -> &'static str {
    match state {
        Health::Running => "ok",
        Health::Starting | Health::Degraded => "warn",
        Health::Restarting | Health::Failed => "bad",
        Health::Stopped | Health::Standby => "idle",
    }
}

/// A state's word, as `switchboard status` prints it.
pub(crate) fn word(state: Health) -> &'static str {
    match state {
        Health::Starting => "starting",
        Health::Running => "running",
        Health::Restarting => "restarting",
        Health::Degraded => "degraded",
        Health::Failed => "failed",
        Health::Stopped => "stopped",
        Health::Standby => "standby",
    }
}

/// What is wrong with a component, in words: its detail when it is not
/// well, the connection's problem or notice, the last failure.
pub(crate) fn problem(c: &Component) -> String {
    let mut parts = Vec::new();
    if c.state != Health::Running && c.state != Health::Stopped {
        if let Some(d) = &c.detail {
            parts.push(d.clone());
        }
    }
    if let Some(conn) = &c.connection {
        if let Some(p) = &conn.problem {
            parts.push(p.clone());
        }
        if let Some(n) = &conn.notice {
            parts.push(n.clone());
        }
    }
    parts.join(" — ")
}

fn row(name: &str, c: &Component) -> Row {
    let restarts = match (c.restarts, &c.last_failure) {
        (0, _) => String::new(),
        (n, Some(f)) => format!("{n}× (last: {f})"),
        (n, None) => format!("{n}×"),
    };
    Row {
        name: name.to_string(),
        state: word(c.state),
        badge: badge(c.state),
        since: ago(Some(c.since_ms)),
        last_event: ago(c.last_event_ms),
        problem: problem(c),
        restarts,
    }
}

async fn page(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
) -> Response {
    let components = state.health.snapshot();
    let unreachable = components
        .iter()
        .filter(|(n, c)| {
            n.starts_with("provider:") && matches!(c.state, Health::Failed | Health::Degraded)
        })
        .map(|(n, c)| Unreachable {
            name: n.trim_start_matches("provider:").to_string(),
            why: c
                .detail
                .clone()
                .unwrap_or_else(|| "it does not answer".into()),
        })
        .collect();
    let problems = components
        .values()
        .filter(|c| {
            matches!(
                c.state,
                Health::Failed | Health::Degraded | Health::Restarting
            )
        })
        .count();
    let (channels, rows): (Vec<_>, Vec<_>) = components
        .iter()
        .map(|(n, c)| row(n, c))
        .partition(|r| r.name.starts_with("channel:"));
    let sessions = state.pipeline.sessions();
    let ctx = sessions.context();
    let pairing_waiting = state
        .store
        .pairing_list(None, now_ms())
        .await
        .map_or(0, |p| p.len());
    let approvals_waiting = state
        .store
        .approvals_list(true, 200)
        .await
        .map_or(0, |a| a.len());
    let page = OverviewPage {
        layout: Layout::new("Overview", &signed, &flash),
        unreachable,
        rows,
        channels,
        ready: state.ready.load(std::sync::atomic::Ordering::Acquire),
        version: env!("CARGO_PKG_VERSION"),
        uptime: duration((now_ms() - state.started_ms) / 1000),
        agents: state.agents.load().join(", "),
        sessions_in_memory: sessions.active() as u64,
        running: sessions.running() as u64,
        waiting_for_slot: ctx.runs_waiting.load(std::sync::atomic::Ordering::Relaxed),
        turns_done: ctx.turns_done.load(std::sync::atomic::Ordering::Relaxed),
        turns_failed: ctx.turns_failed.load(std::sync::atomic::Ordering::Relaxed),
        pairing_waiting,
        approvals_waiting,
        problems,
    };
    render(&page)
}
