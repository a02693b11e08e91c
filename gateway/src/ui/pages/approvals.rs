//! **Approvals**: the tool calls waiting for the operator (tool, arguments,
//! session, age) with **Approve** and **Deny**, and the history with who
//! decided and when. Deciding goes through the control function the REST
//! API, the WebSocket and the CLI use.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::Value;

use switchboard_memory::ApprovalRecord;

use super::{ago, duration};
use crate::audit::Actor;
use crate::clock::now_ms;
use crate::http::{AppState, control};
use crate::ui::{CsrfForm, Flash, Layout, Signed, check_csrf, done, failed, render, urlencode};

/// The most characters of a call's arguments shown.
const MAX_ARGUMENTS: usize = 2000;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/approvals", get(page))
        .route("/approvals/{id}/approve", post(approve))
        .route("/approvals/{id}/deny", post(deny))
}

/// One waiting call.
struct WaitingRow {
    tool: String,
    arguments: String,
    /// Set when `arguments` was cut: what the whole was.
    truncated: Option<String>,
    session: String,
    session_link: String,
    agent: String,
    age: String,
    expires: String,
    /// `/approvals/<id>`, the forms' address without the verb.
    action: String,
}

/// One decided call.
struct HistoryRow {
    tool: String,
    session: String,
    session_link: String,
    status: String,
    badge: &'static str,
    decided_by: String,
    decided: String,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    layout: Layout,
    waiting: Vec<WaitingRow>,
    history: Vec<HistoryRow>,
}

/// The arguments as indented JSON (as written when they are not JSON), cut
/// to [`MAX_ARGUMENTS`] characters, and a note when cut.
fn pretty_arguments(raw: &str) -> (String, Option<String>) {
    let pretty = serde_json::from_str::<Value>(raw)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| raw.to_string());
    let total = pretty.chars().count();
    if total <= MAX_ARGUMENTS {
        return (pretty, None);
    }
    let cut: String = pretty.chars().take(MAX_ARGUMENTS).collect();
    (
        cut,
        Some(format!(
            "Cut after {MAX_ARGUMENTS} of {total} characters; `GET /api/approvals` has them whole."
        )),
    )
}

fn session_link(key: &str) -> String {
    format!("/sessions/{}", urlencode(key))
}

fn waiting_row(r: ApprovalRecord, now: i64) -> WaitingRow {
    let (arguments, truncated) = pretty_arguments(&r.arguments);
    let left = (r.expires_at - now) / 1000;
    WaitingRow {
        expires: if left > 0 {
            format!("in {}", duration(left))
        } else {
            "now".into()
        },
        age: ago(Some(r.created_at)),
        action: format!("/approvals/{}", urlencode(&r.id)),
        session_link: session_link(&r.session_key),
        tool: r.tool,
        arguments,
        truncated,
        session: r.session_key,
        agent: r.agent,
    }
}

fn history_row(r: ApprovalRecord) -> HistoryRow {
    let badge = match r.status.as_str() {
        "approved" => "ok",
        "denied" => "bad",
        _ => "idle",
    };
    HistoryRow {
        badge,
        session_link: session_link(&r.session_key),
        decided_by: r.decided_by.unwrap_or_else(|| "—".into()),
        decided: r.decided_at.map_or_else(|| "—".into(), |t| ago(Some(t))),
        tool: r.tool,
        session: r.session_key,
        status: r.status,
    }
}

/// The approval requests of a control function's answer.
fn records(v: &Value) -> Vec<ApprovalRecord> {
    v.get("approvals")
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default()
}

async fn page(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
) -> Response {
    let mut layout = Layout::new("Approvals", &signed, &flash);
    let mut errors = Vec::new();
    let now = now_ms();
    let waiting = match control::approvals_list(&state, false).await {
        Ok(v) => records(&v),
        Err(e) => {
            errors.push(e.message().to_string());
            Vec::new()
        }
    };
    let history = match control::approvals_list(&state, true).await {
        Ok(v) => records(&v),
        Err(e) => {
            errors.push(e.message().to_string());
            Vec::new()
        }
    };
    if !errors.is_empty() {
        layout.error = Some(errors.join(" "));
    }
    render(&ApprovalsPage {
        layout,
        waiting: waiting.into_iter().map(|r| waiting_row(r, now)).collect(),
        history: history
            .into_iter()
            .filter(|r| r.status != "pending")
            .map(history_row)
            .collect(),
    })
}

async fn decide(
    state: &AppState,
    signed: &Signed,
    by: &Actor,
    csrf: &str,
    id: &str,
    approve: bool,
) -> Response {
    if let Err(refused) = check_csrf(signed, csrf) {
        return refused;
    }
    match control::approval_decide(state, id, approve, by).await {
        Ok(v) => {
            let tool = v["approval"]["tool"].as_str().unwrap_or("the tool");
            if approve {
                done(
                    "/approvals",
                    &format!("Approved the call of {tool}; it runs now."),
                )
            } else {
                done(
                    "/approvals",
                    &format!("Denied the call of {tool}; it was not run and the agent is told so."),
                )
            }
        }
        Err(e) => failed("/approvals", e.message()),
    }
}

async fn approve(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    by: Actor,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let by = by.named("ui");
    decide(&state, &signed, &by, &form.csrf, &id, true).await
}

async fn deny(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    by: Actor,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let by = by.named("ui");
    decide(&state, &signed, &by, &form.csrf, &id, false).await
}
