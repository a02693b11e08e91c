//! **Audit**: the audit log's latest records, newest first (who did what,
//! when, from where), and at the top whether its chain of HMACs holds or
//! where it breaks. Read-only; reads what `GET /api/audit` answers.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;

use switchboard_memory::AuditRecord;

use super::ago;
use crate::audit::chain::rfc3339;
use crate::http::AppState;
use crate::ui::{Flash, Layout, Signed, render};

/// Records shown (the latest); the API and the CLI have the rest.
const SHOWN: u32 = 100;
/// The most characters of a record's detail shown.
const MAX_DETAIL: usize = 300;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/audit", get(page))
}

/// One record.
struct Row {
    seq: i64,
    /// RFC 3339, UTC.
    time: String,
    /// "5 min ago".
    ago: String,
    actor: String,
    source: String,
    action: String,
    target: String,
    detail: String,
    /// Where the chain breaks.
    bad: bool,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    /// Whether the chain holds (or could not be read: then `summary` says
    /// why).
    intact: bool,
    /// "chain intact: 42 records" or "chain broken at record 17: …".
    summary: String,
    rows: Vec<Row>,
}

fn row(r: AuditRecord, broken_at: Option<i64>) -> Row {
    let mut detail: String = r.detail.chars().take(MAX_DETAIL).collect();
    if detail.len() < r.detail.len() {
        detail.push('…');
    }
    Row {
        bad: broken_at == Some(r.seq),
        time: rfc3339(r.at),
        ago: ago(Some(r.at)),
        seq: r.seq,
        actor: r.actor,
        source: r.source,
        action: r.action,
        target: if r.target.is_empty() {
            "—".into()
        } else {
            r.target
        },
        detail,
    }
}

async fn page(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
) -> Response {
    let mut layout = Layout::new("Audit", &signed, &flash);
    let (intact, summary, rows) =
        match crate::http::audit::audit_log(&state, None, Some(SHOWN)).await {
            Ok((records, v)) => {
                let broken_at = v.broken.as_ref().map(|b| b.seq);
                let rows = records.into_iter().map(|r| row(r, broken_at)).collect();
                (v.broken.is_none(), v.summary(), rows)
            }
            Err(e) => {
                layout.error = Some(e.message().to_string());
                (
                    false,
                    "the audit log could not be read".to_string(),
                    Vec::new(),
                )
            }
        };
    render(&AuditPage {
        layout,
        intact,
        summary,
        rows,
    })
}
