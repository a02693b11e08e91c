//! **Logs**: the gateway's recent log with a level filter, and
//! `/ui/logs/stream`, the server-sent events `assets/logs.js` follows to
//! append new lines as they are logged. The lines come from
//! [`crate::ui::logs::tail`]; this module only shows them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use axum::routing::get;
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tracing::Level;

use crate::http::AppState;
use crate::ui::logs::{self, LogLine, level_name, parse_level, shown_at};
use crate::ui::{Flash, Layout, Signed, render};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/logs", get(page))
        .route("/ui/logs/stream", get(stream))
}

/// The levels of the filter, most severe first.
const LEVELS: &[(Level, &str)] = &[
    (Level::ERROR, "Error"),
    (Level::WARN, "Warn"),
    (Level::INFO, "Info"),
    (Level::DEBUG, "Debug"),
    (Level::TRACE, "Trace"),
];

#[derive(Debug, Default, Deserialize)]
struct LogsQuery {
    /// `error`, `warn`, `info` (default), `debug` or `trace`.
    level: Option<String>,
    /// The stream: continue after this line's id.
    after: Option<String>,
}

impl LogsQuery {
    fn level(&self) -> Level {
        self.level
            .as_deref()
            .and_then(parse_level)
            .unwrap_or(Level::INFO)
    }
}

/// One choice of the level filter.
struct LevelOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

/// One line of the log, as shown.
struct LineRow {
    level: &'static str,
    /// The line with its newline.
    text: String,
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    layout: Layout,
    levels: Vec<LevelOption>,
    level: &'static str,
    lines: Vec<LineRow>,
    /// The id of the last line logged, for the stream to continue after.
    cursor: String,
    /// The gateway's own log filter.
    filter: String,
}

async fn page(signed: Signed, Query(q): Query<LogsQuery>, Query(flash): Query<Flash>) -> Response {
    let wanted = q.level();
    let tail = logs::tail();
    let (lines, cursor) = tail.recent(wanted);
    render(&LogsPage {
        layout: Layout::new("Logs", &signed, &flash),
        levels: LEVELS
            .iter()
            .map(|&(l, label)| LevelOption {
                value: level_name(l),
                label,
                selected: l == wanted,
            })
            .collect(),
        level: level_name(wanted),
        lines: lines
            .iter()
            .map(|l| LineRow {
                level: level_name(l.level),
                text: format!("{}\n", l.text),
            })
            .collect(),
        cursor,
        filter: tail.filter().unwrap_or("info,sqlx=warn").to_string(),
    })
}

/// A follower of the log: lines kept from before it connected, then live.
struct Follow {
    backlog: VecDeque<LogLine>,
    rx: broadcast::Receiver<LogLine>,
    wanted: Level,
    last: u64,
}

/// A line as an SSE event `line`: data `<level>|<line>`, id the line's, so
/// a reconnecting `EventSource` continues where it was (`Last-Event-ID`).
fn line_event(line: &LogLine) -> Event {
    Event::default()
        .event("line")
        .id(logs::tail().id_of(line))
        .data(format!("{}|{}", level_name(line.level), line.text))
}

async fn stream(
    _signed: Signed,
    headers: HeaderMap,
    Query(q): Query<LogsQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let wanted = q.level();
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.after);
    let (backlog, rx) = logs::tail().follow(after.as_deref());
    let follow = Follow {
        backlog: backlog.into(),
        rx,
        wanted,
        last: 0,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        loop {
            let line = match f.backlog.pop_front() {
                Some(line) => line,
                None => match f.rx.recv().await {
                    Ok(line) => line,
                    Err(RecvError::Lagged(n)) => {
                        let event = Event::default()
                            .event("line")
                            .data(format!("skip|… {n} lines skipped"));
                        return Some((Ok(event), f));
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            if line.seq <= f.last {
                continue;
            }
            f.last = line.seq;
            if shown_at(line.level, f.wanted) {
                return Some((Ok(line_event(&line)), f));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
