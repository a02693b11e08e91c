//! The control web UI: server-rendered pages (askama templates in
//! `gateway/templates/`), small hand-written JavaScript modules and CSS in
//! `gateway/assets/`, all compiled into the binary.
//!
//! Pages call the same control functions as the REST API and the CLI
//! (`crate::http::control`); the browser's scripts talk to the same
//! `/api/…` endpoints and `/api/ws`, authenticated by the session cookie
//! and a CSRF token instead of the bearer token.

pub mod assets;
pub mod auth;
pub mod live;
mod login;
pub mod logs;
mod pages;

/// `message` (about config text `text`) with every secret value it could
/// hold masked: those of `text`, of the `running` config, of `env`, and
/// `more` (values read from the store).
pub(crate) fn scrub_config_message(
    message: &str,
    text: &str,
    running: &crate::config::Config,
    env: &[(String, String)],
    more: &[String],
) -> String {
    let mut secrets = pages::config::known_secrets(&[text], running, env);
    secrets.extend(more.iter().cloned());
    pages::config::scrub(message, &secrets)
}

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::http::AppState;
pub use auth::{Signed, UiAuth};
pub use login::api_routes;

/// The pages of the navigation bar: (name, path). Each page's `<h1>` is
/// its name.
pub const NAV: &[(&str, &str)] = &[
    ("Overview", "/"),
    ("Chat", "/chat"),
    ("Sessions", "/sessions"),
    ("Pairing", "/pairing"),
    ("Approvals", "/approvals"),
    ("Channels", "/channels"),
    ("Agents", "/agents"),
    ("Cron", "/cron"),
    ("Usage", "/usage"),
    ("Logs", "/logs"),
    ("Audit", "/audit"),
    ("Config", "/config"),
];

/// The content security policy of every response: scripts, styles and
/// connections from the gateway itself only, no inline scripts, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The UI's routes (pages, sign-in, assets, live updates).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .merge(login::routes())
        .merge(pages::routes())
        .merge(live::routes())
        .route("/assets/{*name}", get(assets::serve))
}

/// What every page's layout needs: the navigation, the session's CSRF token
/// and the gateway's version.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The name of the page (its `<h1>` and its entry in the navigation).
    pub page: &'static str,
    /// The CSRF token, for forms and for the scripts' requests.
    pub csrf: String,
    /// A message to show at the top: what the last action did.
    pub notice: Option<String>,
    /// An error to show at the top: what failed and what to do.
    pub error: Option<String>,
}

impl Layout {
    /// The layout of `page` for `signed`, with the notice or error passed
    /// on by the action that redirected here.
    pub fn new(page: &'static str, signed: &Signed, flash: &Flash) -> Self {
        // Only messages this gateway wrote: a link cannot put words on
        // its pages ("your token expired, paste it at …").
        let sig = flash.sig.as_deref().unwrap_or("");
        let genuine = |kind: &str, text: &Option<String>| {
            text.as_ref()
                .filter(|t| switchboard_channel::secret_eq(sig, &flash_sig(kind, t)))
                .cloned()
        };
        Self {
            page,
            csrf: signed.csrf.clone(),
            notice: genuine("notice", &flash.notice),
            error: genuine("error", &flash.error),
        }
    }

    /// The navigation bar.
    pub fn nav(&self) -> Vec<NavItem> {
        NAV.iter()
            .map(|(name, path)| NavItem {
                name,
                path,
                current: if *name == self.page { "page" } else { "false" },
            })
            .collect()
    }

    /// The version of the gateway.
    pub fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
}

/// One link of the navigation bar.
#[derive(Debug, Clone, Copy)]
pub struct NavItem {
    /// The page's name.
    pub name: &'static str,
    /// Its path.
    pub path: &'static str,
    /// `aria-current`: `page` for the page shown, else `false`.
    pub current: &'static str,
}

/// The outcome of the last action, carried in the address it redirected to
/// (`?notice=…` or `?error=…`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Flash {
    /// What the action did.
    pub notice: Option<String>,
    /// What failed and what to do.
    pub error: Option<String>,
    /// The gateway's signature of the message (see [`done`]).
    pub sig: Option<String>,
}

/// The signature of a message of `kind` in an address: keyed by a random
/// key of this process, so only the gateway's own redirects carry one.
fn flash_sig(kind: &str, text: &str) -> String {
    use sha2::{Digest, Sha256};
    static KEY: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| {
        use rand::Rng;
        rand::rng().random()
    });
    let mut h = Sha256::new();
    h.update(*KEY);
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Render a template as a page, or a page saying what failed.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(format!(
                    "<!doctype html><title>Error</title><h1>Error</h1><p>This page failed to render: {}. The gateway's log has the details; reload to try again.</p>",
                    escape(&e.to_string())
                )),
            )
                .into_response()
        }
    }
}

/// HTML-escape `s`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode `s` for a query or path component.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Redirect (303) to `path` with a notice to show there.
pub fn done(path: &str, notice: &str) -> Response {
    flash(path, "notice", notice)
}

/// Redirect (303) to `path` with an error to show there.
pub fn failed(path: &str, error: &str) -> Response {
    flash(path, "error", error)
}

fn flash(path: &str, kind: &str, text: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{path}{sep}{kind}={}&sig={}",
        urlencode(text),
        flash_sig(kind, text)
    ))
    .into_response()
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// The session of the request's cookie, if it is signed in.
pub fn signed_in(state: &AppState, headers: &HeaderMap) -> Option<Signed> {
    state.ui.check(cookie(headers, auth::COOKIE)?)
}

/// A page handler's proof that the browser is signed in. Without a session
/// the browser is sent to `/login`, and back here after signing in.
impl FromRequestParts<Arc<AppState>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(s) = signed_in(state, &parts.headers) {
            return Ok(s);
        }
        let next = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let to = if next == "/" {
            "/login".to_string()
        } else {
            format!("/login?next={}", urlencode(&next))
        };
        Err(Redirect::to(&to).into_response())
    }
}

/// A form of the UI, posted with its session's CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// Refuse a form whose CSRF token is not its session's.
pub fn check_csrf(signed: &Signed, presented: &str) -> Result<(), Response> {
    if switchboard_channel::secret_eq(presented, &signed.csrf) {
        Ok(())
    } else {
        Err(forbidden(
            "this form's security token is missing or stale (was the page open across a sign-in?). Reload the page and try again.",
        ))
    }
}

/// A 403 page with the reason.
pub fn forbidden(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(format!(
            "<!doctype html><meta charset=utf-8><title>Refused</title><link rel=stylesheet href=/assets/app.css><main><h1>Refused</h1><p>{}</p><p><a href=\"/\">Back to the Overview</a></p></main>",
            escape(why)
        )),
    )
        .into_response()
}

/// Whether the request's `Origin` (when it has one) is the gateway's own
/// address as the request names it (`Host`).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let without_scheme = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    without_scheme.is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// Refuse state-changing requests that a browser says come from another
/// site (`Sec-Fetch-Site`, `Origin`): a form or script on another page
/// cannot act with the operator's session. Requests that carry a bearer
/// token (API clients) and platforms' webhooks are not browsers' forms.
pub async fn refuse_cross_site(req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let path = req.uri().path();
    let exempt = path.starts_with("/hooks/") || req.headers().contains_key(header::AUTHORIZATION);
    if !safe && !exempt {
        // Browsers say where a request comes from in `Sec-Fetch-Site`; older
        // ones only in `Origin` (which is `null` for our own forms, as the
        // pages send no referrer).
        let cross = match req.headers().get("sec-fetch-site") {
            Some(site) => !matches!(site.to_str(), Ok("same-origin" | "none")),
            None => {
                req.headers()
                    .get(header::ORIGIN)
                    .is_some_and(|o| o.as_bytes() != b"null")
                    && !same_origin(req.headers())
            }
        };
        if cross {
            return forbidden(
                "this request came from another site, so it was refused. Use the control UI on the gateway's own address.",
            );
        }
    }
    next.run(req).await
}

/// Security headers on every response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The UI when `[ui] enabled = false`: say how to turn it on.
pub async fn disabled(State(_): State<Arc<AppState>>) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html><meta charset=utf-8><title>Control UI disabled</title><h1>Control UI disabled</h1><p>The control web UI is turned off: set <code>[ui] enabled = true</code> in the config and restart the gateway.</p>"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(query: &str) -> Option<String> {
        let flash: Flash = serde_urlencoded_like(query);
        let signed = Signed {
            id: String::new(),
            csrf: String::new(),
        };
        let l = Layout::new("Overview", &signed, &flash);
        l.notice.or(l.error)
    }

    /// A query string as the pages' `Query<Flash>` reads it.
    fn serde_urlencoded_like(query: &str) -> Flash {
        let uri: axum::http::Uri = format!("/?{query}").parse().unwrap();
        axum::extract::Query::<Flash>::try_from_uri(&uri).unwrap().0
    }

    #[test]
    fn only_the_gateways_own_messages_are_shown() {
        let resp = done("/pairing", "Approved Ann");
        let to = resp.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_string();
        let query = to.split_once('?').unwrap().1;
        assert_eq!(shown(query).as_deref(), Some("Approved Ann"));
        assert_eq!(
            shown("notice=Your+token+expired%2C+paste+it+at+evil.example"),
            None
        );
        let forged = query.replace("Approved", "Denied");
        assert_eq!(
            shown(&forged),
            None,
            "a changed message loses its signature"
        );
        let as_error = query.replace("notice=", "error=");
        assert_eq!(
            shown(&as_error),
            None,
            "a notice's signature is not an error's"
        );
    }

    #[test]
    fn origins_are_compared_with_the_host() {
        let mut h = HeaderMap::new();
        assert!(
            same_origin(&h),
            "no Origin: not a browser's cross-site request"
        );
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7788"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7788"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7789"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
