//! **Logs**: the gateway's recent log with a level filter, and
//! `/ui/logs/stream`, the server-sent events `assets/logs.js` follows to
//! append new lines as they are logged. The lines come from
//! [`crate::ui::logs::tail`]; this module only shows them, the newest that
//! fit in [`PAGE_LOG_BYTES`], so that the page stays light.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
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

/// The most bytes of log the page is sent with, as HTML (the lines
/// escaped, in their markup): with the layout, styles and scripts the page
/// stays under 100 KB.
const PAGE_LOG_BYTES: usize = 48 * 1024;
/// The most lines the page is sent with: as many as `assets/logs.js` keeps
/// (its `MAX_LINES`).
const PAGE_LOG_LINES: usize = 500;
/// The markup around each line: `<span class="lvl-debug">`, `</span>`.
const LINE_MARKUP_BYTES: usize = 32;

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
    /// "Showing the last N lines; …" when older kept lines were left out;
    /// empty otherwise.
    older: String,
    /// The id of the last line logged, for the stream to continue after.
    cursor: String,
    /// The gateway's own log filter.
    filter: String,
}

async fn page(signed: Signed, Query(q): Query<LogsQuery>, Query(flash): Query<Flash>) -> Response {
    let wanted = q.level();
    let tail = logs::tail();
    let (kept, cursor) = tail.recent(wanted);
    let lines = newest_that_fit(&kept, PAGE_LOG_BYTES, PAGE_LOG_LINES);
    let older = if lines.len() < kept.len() {
        format!(
            "Showing the last {} lines; older ones are in the gateway's log.",
            lines.len()
        )
    } else {
        String::new()
    };
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
        older,
        cursor,
        filter: tail.filter().unwrap_or("info,sqlx=warn").to_string(),
    })
}

/// The bytes `text` takes in the page: escaped (`&`, `<`, `>`, `"` and `'`
/// take at most five bytes each), in its markup, with its newline.
fn shown_bytes(text: &str) -> usize {
    let escapes = text
        .bytes()
        .filter(|&b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
        .count();
    text.len() + 4 * escapes + 1 + LINE_MARKUP_BYTES
}

/// The newest of `lines` (oldest first) that together take at most
/// `budget` bytes in the page, and at most `max` of them.
fn newest_that_fit(lines: &[LogLine], budget: usize, max: usize) -> &[LogLine] {
    let mut used = 0;
    let mut from = lines.len();
    while from > 0 && lines.len() - from < max {
        let cost = shown_bytes(&lines[from - 1].text);
        if used + cost > budget {
            break;
        }
        used += cost;
        from -= 1;
    }
    &lines[from..]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, text: &str) -> Vec<LogLine> {
        (1..=n)
            .map(|seq| LogLine {
                seq: seq as u64,
                level: Level::INFO,
                text: format!("{seq} {text}").into(),
            })
            .collect()
    }

    #[test]
    fn the_page_gets_the_newest_lines_that_fit() {
        let all = lines(2000, &"x".repeat(200));
        let shown = newest_that_fit(&all, PAGE_LOG_BYTES, PAGE_LOG_LINES);
        assert!(!shown.is_empty() && shown.len() < all.len());
        assert_eq!(
            shown.last().map(|l| l.seq),
            Some(2000),
            "the newest line is shown"
        );
        let bytes: usize = shown.iter().map(|l| shown_bytes(&l.text)).sum();
        assert!(bytes <= PAGE_LOG_BYTES, "{bytes}");
        // Quotes are counted as escaped.
        let quoted = lines(2000, &"\"".repeat(200));
        assert!(newest_that_fit(&quoted, PAGE_LOG_BYTES, PAGE_LOG_LINES).len() < shown.len());
        // Short lines stop at the line cap.
        let short = lines(2000, "ok");
        assert_eq!(
            newest_that_fit(&short, PAGE_LOG_BYTES, PAGE_LOG_LINES).len(),
            PAGE_LOG_LINES
        );
        assert_eq!(
            newest_that_fit(&short[..3], PAGE_LOG_BYTES, PAGE_LOG_LINES).len(),
            3
        );
    }
}
