//! **Channels**: each channel account's listener (state, last event, last
//! contact with the platform, problem, restarts) and **Restart**, which
//! stops its current run so that it starts again at once.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};

use super::ago;
use super::overview::{badge, word};
use crate::health::{Component, State as Health};
use crate::http::{AppState, control};
use crate::ui::{CsrfForm, Flash, Layout, Signed, check_csrf, done, failed, render, urlencode};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/channels", get(page))
        .route("/channels/{channel}/{account}/restart", post(restart))
}

/// One channel account.
struct AccountRow {
    channel: String,
    account: String,
    state: &'static str,
    badge: &'static str,
    since: String,
    last_event: String,
    last_contact: String,
    /// What the platform calls the connection (`polling`, `connected`).
    connection: String,
    /// What is wrong, each part on its own line.
    problems: Vec<String>,
    /// What to do about it, if anything.
    hint: String,
    restarts: String,
    /// The Restart form's address, when the account has a listener.
    restart: Option<String>,
}

#[derive(Template)]
#[template(path = "channels.html")]
struct ChannelsPage {
    layout: Layout,
    accounts: Vec<AccountRow>,
}

/// What is wrong with a listener: its detail while not well, the
/// connection's problem and notice, and why it last failed.
fn problems(c: &Component) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    if !matches!(c.state, Health::Running | Health::Stopped)
        && let Some(d) = &c.detail
    {
        add(d);
    }
    if let Some(conn) = &c.connection {
        if let Some(p) = &conn.problem {
            add(p);
        }
        if let Some(n) = &conn.notice {
            add(n);
        }
    }
    if let Some(f) = &c.last_failure {
        add(&format!("Last failure: {f}"));
    }
    out
}

/// What the operator can do about a listener in `state`.
fn hint(state: Health, channel: &str) -> String {
    let fix = format!(
        "check the account's token and settings under channels.{channel} in the Config, and the gateway's network"
    );
    match state {
        Health::Running | Health::Starting => String::new(),
        Health::Degraded => format!(
            "It runs but is not well: {fix}. Restart it if the problem does not clear by itself."
        ),
        Health::Restarting => format!(
            "It failed and is restarted by itself with a growing delay: {fix}, then Restart to try again at once."
        ),
        Health::Failed => format!("It stopped working: {fix}, then Restart it."),
        Health::Stopped => "It is stopped (the gateway is shutting down).".into(),
        Health::Standby => {
            "Another replica holds this account's lease and listens for it; this one takes over if that one stops.".into()
        }
    }
}

fn account_row(name: &str, c: &Component) -> Option<AccountRow> {
    let (channel, account) = name.strip_prefix("channel:")?.split_once('/')?;
    let conn = c.connection.as_ref();
    let watchdog = conn.map_or(0, |s| s.watchdog_restarts);
    let restarts = match watchdog {
        0 => c.restarts.to_string(),
        w => format!("{} (watchdog: {w})", c.restarts),
    };
    // The web chat has no listener of its own: its messages come through
    // the gateway's HTTP server.
    let restart = (channel != crate::webchat::NAME).then(|| {
        format!(
            "/channels/{}/{}/restart",
            urlencode(channel),
            urlencode(account)
        )
    });
    Some(AccountRow {
        state: word(c.state),
        badge: badge(c.state),
        since: ago(Some(c.since_ms)),
        last_event: ago(c.last_event_ms),
        last_contact: match conn.and_then(|s| s.last_contact_ms) {
            Some(t) => ago(Some(t)),
            None if channel == crate::webchat::NAME => "—".into(),
            None => "never".into(),
        },
        connection: conn.and_then(|s| s.state.clone()).unwrap_or_default(),
        problems: problems(c),
        hint: hint(c.state, channel),
        restarts,
        restart,
        channel: channel.to_string(),
        account: account.to_string(),
    })
}

async fn page(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
) -> Response {
    let accounts = state
        .health
        .snapshot()
        .iter()
        .filter_map(|(name, c)| account_row(name, c))
        .collect();
    render(&ChannelsPage {
        layout: Layout::new("Channels", &signed, &flash),
        accounts,
    })
}

async fn restart(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Path((channel, account)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = check_csrf(&signed, &form.csrf) {
        return refused;
    }
    match control::channel_restart(&state, &channel, &account) {
        Ok(_) => done(
            "/channels",
            &format!(
                "Restarting the listener of {channel}/{account}; its state here shows when it is back."
            ),
        ),
        Err(e) => failed("/channels", e.message()),
    }
}
