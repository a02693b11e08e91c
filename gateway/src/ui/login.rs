//! `/login` (the token form and one-time links), `/logout`, and the
//! tickets the CLI and the browser's scripts ask for.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::{COOKIE, TICKET_MS, WS_TICKET_MS};
use super::{CsrfForm, Signed, check_csrf, render, signed_in};
use crate::audit::{Actor, action};
use crate::http::AppState;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/login", get(login_page).post(login_token))
        .route("/logout", post(logout))
}

/// Routes behind the bearer token (or a signed-in browser): tickets.
pub fn api_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/ui/ticket", post(sign_in_ticket))
        .route("/api/ws/ticket", post(ws_ticket))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    next: String,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    ticket: Option<String>,
    next: Option<String>,
    signed_out: Option<String>,
}

/// Only a path of this gateway: never another site (`//host`, `/\\host`,
/// `/<tab>/host`, which browsers read as `//host`, `https:`). Anything but
/// plain path and query characters sends the browser to `/`.
fn safe_next(next: Option<&str>) -> String {
    let plain = |n: &str| {
        n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~%?=&:+,;@!$'()*".contains(&b))
    };
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && plain(n) => n.into(),
        _ => "/".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_gateway() {
        assert_eq!(safe_next(Some("/sessions?q=a%20b")), "/sessions?q=a%20b");
        for evil in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "https://evil.example",
            "/\n/x",
            "evil",
        ] {
            assert_eq!(safe_next(Some(evil)), "/", "{evil:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}

/// The cookie that signs a browser in; `Secure` when the browser reached
/// the gateway over TLS (directly or through a proxy that says so).
fn session_cookie(value: &str, headers: &HeaderMap) -> HeaderValue {
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn signed_in_now(state: &AppState, headers: &HeaderMap, next: &str) -> Response {
    let (value, _) = state.ui.sign_in();
    let mut resp = Redirect::to(next).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&value, headers));
    resp
}

async fn login_page(
    State(state): State<Arc<AppState>>,
    by: Actor,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if let Some(ticket) = q.ticket.as_deref() {
        let client = state.client(&headers, &extensions);
        if let Some(refused) = state.throttled(client) {
            return refused;
        }
        if state.ui.redeem_sign_in_ticket(ticket) {
            tracing::info!("a browser signed in with a one-time link");
            state
                .audit
                .record(&by, action::LINK_USED, "", json!({}))
                .await;
            // The redirect takes the ticket out of the address bar.
            return signed_in_now(&state, &headers, &next);
        }
        tracing::warn!(client = %client, "a used or expired sign-in link was refused");
        sign_in_failed(
            &state,
            &by,
            client,
            json!({ "with": "link", "why": "used or expired" }),
        )
        .await;
        let page = LoginPage {
            next,
            notice: None,
            error: Some(format!(
                "This sign-in link was used already or has expired: a link works once, within {} minutes. Run `switchboard ui` on the gateway's machine for a new one, or sign in with the token.",
                TICKET_MS / 60_000
            )),
        };
        return (StatusCode::UNAUTHORIZED, render(&page)).into_response();
    }
    if signed_in(&state, &headers).is_some() {
        return Redirect::to(&next).into_response();
    }
    render(&LoginPage {
        next,
        notice: q.signed_out.map(|_| "You are signed out.".to_string()),
        error: None,
    })
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login_token(
    State(state): State<Arc<AppState>>,
    by: Actor,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let token = form.token.trim();
    let client = state.client(&headers, &extensions);
    if !token.is_empty() {
        if let Some(refused) = state.throttled(client) {
            return refused;
        }
    }
    if !token.is_empty() && state.token.matches(token) {
        tracing::info!(client = %client, "a browser signed in with the token");
        state
            .audit
            .record(&by, action::SIGNIN_OK, "", json!({ "with": "token" }))
            .await;
        return signed_in_now(&state, &headers, &next);
    }
    if !token.is_empty() {
        tracing::warn!(client = %client, "a sign-in with a wrong token was refused");
        sign_in_failed(&state, &by, client, json!({ "with": "token" })).await;
    }
    let error = if token.is_empty() {
        "Enter the control token to sign in.".to_string()
    } else {
        "That token is wrong. Use the control token: gateway.auth.token in the config, the SWITCHBOARD_TOKEN environment variable, or the file control-token in the gateway's data directory (or run `switchboard ui` for a sign-in link).".to_string()
    };
    let page = LoginPage {
        next,
        notice: None,
        error: Some(error),
    };
    (StatusCode::UNAUTHORIZED, render(&page)).into_response()
}

/// A credential that did not check out: counted against `client`'s
/// address (see [`crate::http::throttle`]) and recorded in the audit log.
async fn sign_in_failed(
    state: &AppState,
    by: &Actor,
    client: std::net::IpAddr,
    detail: serde_json::Value,
) {
    state.throttle.failed(client);
    state
        .audit
        .record(by, action::SIGNIN_FAILED, "", detail)
        .await;
}

async fn logout(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = check_csrf(&signed, &form.csrf) {
        return refused;
    }
    state.ui.sign_out(&signed.id);
    let mut resp = Redirect::to("/login?signed_out=1").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "switchboard_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

/// `POST /api/ui/ticket`: a one-time sign-in link's ticket, for
/// `switchboard ui`.
async fn sign_in_ticket(State(state): State<Arc<AppState>>, by: Actor) -> Json<serde_json::Value> {
    let ticket = state.ui.issue_sign_in_ticket();
    tracing::info!("a one-time sign-in link was issued");
    state
        .audit
        .record(
            &by,
            action::LINK_ISSUED,
            "",
            json!({ "expires_in_secs": TICKET_MS / 1000 }),
        )
        .await;
    Json(json!({
        "ticket": ticket,
        "path": format!("/login?ticket={ticket}"),
        "expires_in_secs": TICKET_MS / 1000,
    }))
}

/// `POST /api/ws/ticket`: a ticket to open `/api/ws?ticket=…` with, once,
/// within a minute; so no long-lived token goes into a URL.
async fn ws_ticket(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({
        "ticket": state.ui.issue_ws_ticket(),
        "expires_in_secs": WS_TICKET_MS / 1000,
    }))
}
