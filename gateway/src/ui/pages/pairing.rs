//! **Pairing**: the codes unknown senders were given, with **Approve** and
//! **Deny**, and the allowlist per channel with **Remove**. Deciding goes
//! through the control functions the REST API and the CLI use.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::Value;

use switchboard_memory::{AllowEntry, PairingRequest};

use super::ago;
use crate::audit::Actor;
use crate::http::{AppState, control};
use crate::ui::{CsrfForm, Flash, Layout, Signed, check_csrf, done, failed, render, urlencode};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/pairing", get(page))
        .route("/pairing/{channel}/{code}/approve", post(approve))
        .route("/pairing/{channel}/{code}/deny", post(deny))
        .route("/pairing/allow/remove", post(remove))
}

/// One pending code.
struct PendingRow {
    channel: String,
    account: String,
    sender: String,
    code: String,
    age: String,
    /// `/pairing/<channel>/<code>`, the forms' address without the verb.
    action: String,
}

/// One allowed sender.
struct AllowRow {
    account: String,
    sender_id: String,
    added: String,
    added_by: String,
}

/// The allowed senders of one channel.
struct AllowGroup {
    channel: String,
    rows: Vec<AllowRow>,
}

#[derive(Template)]
#[template(path = "pairing.html")]
struct PairingPage {
    layout: Layout,
    pending: Vec<PendingRow>,
    groups: Vec<AllowGroup>,
}

/// "Name (id)", or the id alone.
fn sender_of(name: Option<&str>, id: &str) -> String {
    match name.filter(|n| !n.is_empty() && *n != id) {
        Some(n) => format!("{n} ({id})"),
        None => id.to_string(),
    }
}

fn pending_row(r: PairingRequest) -> PendingRow {
    PendingRow {
        sender: sender_of(r.sender_name.as_deref(), &r.sender_id),
        age: ago(Some(r.created_at)),
        action: format!("/pairing/{}/{}", urlencode(&r.channel), urlencode(&r.code)),
        channel: r.channel,
        account: r.account,
        code: r.code,
    }
}

fn groups_of(entries: Vec<AllowEntry>) -> Vec<AllowGroup> {
    let mut by_channel: BTreeMap<String, Vec<AllowRow>> = BTreeMap::new();
    for e in entries {
        by_channel.entry(e.channel).or_default().push(AllowRow {
            account: e.account,
            sender_id: e.sender_id,
            added: ago(Some(e.added_at)),
            added_by: e.added_by,
        });
    }
    by_channel
        .into_iter()
        .map(|(channel, rows)| AllowGroup { channel, rows })
        .collect()
}

/// The list under `key` of a control function's answer.
fn list_of<T: serde::de::DeserializeOwned>(v: &Value, key: &str) -> Vec<T> {
    v.get(key)
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default()
}

async fn page(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
) -> Response {
    let mut layout = Layout::new("Pairing", &signed, &flash);
    let mut errors = Vec::new();
    let pending: Vec<PairingRequest> = match control::pairing_list(&state, None).await {
        Ok(v) => list_of(&v, "pending"),
        Err(e) => {
            errors.push(e.message().to_string());
            Vec::new()
        }
    };
    let allowed: Vec<AllowEntry> = match control::allow_list(&state, None).await {
        Ok(v) => list_of(&v, "allowed"),
        Err(e) => {
            errors.push(e.message().to_string());
            Vec::new()
        }
    };
    if !errors.is_empty() {
        layout.error = Some(errors.join(" "));
    }
    render(&PairingPage {
        layout,
        pending: pending.into_iter().map(pending_row).collect(),
        groups: groups_of(allowed),
    })
}

async fn decide(
    state: &AppState,
    signed: &Signed,
    by: &Actor,
    csrf: &str,
    channel: &str,
    code: &str,
    approve: bool,
) -> Response {
    if let Err(refused) = check_csrf(signed, csrf) {
        return refused;
    }
    match control::pairing_decide(state, channel, code, approve, by).await {
        Ok(v) => {
            let r = &v["request"];
            let id = r["sender_id"].as_str().unwrap_or("the sender");
            let sender = sender_of(r["sender_name"].as_str(), id);
            if approve {
                done(
                    "/pairing",
                    &format!("Approved {sender} on {channel}; they can talk to the assistant now."),
                )
            } else {
                done(
                    "/pairing",
                    &format!(
                        "Denied the code of {sender} on {channel}; they are not let in (a new message gets them a new code later)."
                    ),
                )
            }
        }
        Err(e) => failed("/pairing", e.message()),
    }
}

async fn approve(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    by: Actor,
    Path((channel, code)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let by = by.named("ui");
    decide(&state, &signed, &by, &form.csrf, &channel, &code, true).await
}

async fn deny(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    by: Actor,
    Path((channel, code)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let by = by.named("ui");
    decide(&state, &signed, &by, &form.csrf, &channel, &code, false).await
}

/// The **Remove** form of an allowlist entry.
#[derive(Debug, Deserialize)]
struct RemoveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    sender_id: String,
}

async fn remove(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    by: Actor,
    Form(form): Form<RemoveForm>,
) -> Response {
    if let Err(refused) = check_csrf(&signed, &form.csrf) {
        return refused;
    }
    let by = by.named("ui");
    let removed =
        control::allow_remove(&state, &form.channel, &form.account, &form.sender_id, &by).await;
    match removed {
        Ok(_) => done(
            "/pairing",
            &format!(
                "Removed {} from the allowlist of {}/{}; their next message is treated like a stranger's.",
                form.sender_id, form.channel, form.account
            ),
        ),
        Err(e) => failed("/pairing", e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_shows_with_name_and_id() {
        assert_eq!(sender_of(Some("Ada"), "42"), "Ada (42)");
        assert_eq!(sender_of(None, "42"), "42");
        assert_eq!(sender_of(Some(""), "42"), "42");
        assert_eq!(sender_of(Some("42"), "42"), "42");
    }
}
