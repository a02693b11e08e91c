//! The gateway's recent log, kept in memory for the control UI's **Logs**
//! page: a `tracing_subscriber` layer formats each event as one line into a
//! bounded ring buffer and hands it to live followers over a broadcast
//! channel.
//!
//! The layer sits behind the gateway's own filter (`SWITCHBOARD_LOG`), so
//! it holds what the stderr log shows, never more. It knows nothing about
//! HTTP; the page and its event stream are in `ui::pages::logs`.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};

use rand::Rng;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// How many lines the ring buffer keeps.
pub const CAPACITY: usize = 2000;
/// The longest line kept, in bytes; longer ones are cut and end in `…`.
pub const MAX_LINE_BYTES: usize = 4096;
/// How many lines a live follower may fall behind before it skips some.
const FOLLOWER_BACKLOG: usize = 1024;

/// One line of the log.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Its number in this process, from 1.
    pub seq: u64,
    /// The event's level.
    pub level: Level,
    /// The formatted line: time, level, spans, message and fields.
    pub text: Arc<str>,
}

#[derive(Debug)]
struct Ring {
    lines: VecDeque<LogLine>,
    seq: u64,
}

/// The recent log of this process and its live followers.
#[derive(Debug)]
pub struct LogTail {
    ring: Mutex<Ring>,
    sender: broadcast::Sender<LogLine>,
    capacity: usize,
    /// Names this process in the lines' ids, so a follower reconnecting
    /// after a restart gets the new process's lines from the start.
    boot: String,
    filter: OnceLock<String>,
}

static LOGS: LazyLock<LogTail> = LazyLock::new(|| LogTail::new(CAPACITY));

/// The process's log tail, which [`layer`] fills.
pub fn tail() -> &'static LogTail {
    &LOGS
}

/// The layer that fills [`tail`]; `cli::init_logging` installs it.
pub fn layer() -> TailLayer {
    tail().layer()
}

/// The name of a level, as the page's filter and the stream use it.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// The level named `name` (`error`, `warn`, `info`, `debug`, `trace`).
pub fn parse_level(name: &str) -> Option<Level> {
    match name.trim().to_ascii_lowercase().as_str() {
        "error" => Some(Level::ERROR),
        "warn" | "warning" => Some(Level::WARN),
        "info" => Some(Level::INFO),
        "debug" => Some(Level::DEBUG),
        "trace" => Some(Level::TRACE),
        _ => None,
    }
}

/// 0 for errors up to 4 for trace: the lower, the more severe.
fn rank(level: Level) -> u8 {
    match level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        Level::TRACE => 4,
    }
}

/// Whether a line of `level` is shown when the filter is `wanted`: it is
/// at least as severe.
pub fn shown_at(level: Level, wanted: Level) -> bool {
    rank(level) <= rank(wanted)
}

impl LogTail {
    /// An empty tail keeping at most `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(FOLLOWER_BACKLOG);
        let boot: u32 = rand::rng().random();
        Self {
            ring: Mutex::new(Ring {
                lines: VecDeque::with_capacity(capacity.min(CAPACITY)),
                seq: 0,
            }),
            sender,
            capacity: capacity.max(1),
            boot: format!("{boot:08x}"),
            filter: OnceLock::new(),
        }
    }

    /// A layer that formats events into this tail.
    pub fn layer(&'static self) -> TailLayer {
        TailLayer { tail: self }
    }

    /// Remember the gateway's log filter (`SWITCHBOARD_LOG`), to show it.
    pub fn set_filter(&self, filter: &str) {
        let _ = self.filter.set(filter.to_string());
    }

    /// The gateway's log filter, when [`set_filter`](Self::set_filter) was
    /// called.
    pub fn filter(&self) -> Option<&str> {
        self.filter.get().map(String::as_str)
    }

    /// The id of `line` for a follower (`<boot>-<seq>`), which it hands back
    /// to continue after it.
    pub fn id_of(&self, line: &LogLine) -> String {
        format!("{}-{}", self.boot, line.seq)
    }

    /// The kept lines at least as severe as `wanted`, oldest first, and the
    /// id to follow on from (the last line's, whatever its level).
    pub fn recent(&self, wanted: Level) -> (Vec<LogLine>, String) {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let lines = ring
            .lines
            .iter()
            .filter(|l| shown_at(l.level, wanted))
            .cloned()
            .collect();
        (lines, format!("{}-{}", self.boot, ring.seq))
    }

    /// Follow the log after the line `after` (an id from [`id_of`](Self::id_of)
    /// or [`recent`](Self::recent)): the kept lines after it, and a receiver
    /// of every line from then on, with none missed or repeated between the
    /// two. Without `after`, only new lines; with an id of another process
    /// (the gateway restarted), every kept line.
    pub fn follow(&self, after: Option<&str>) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let from = match after.and_then(|a| a.split_once('-')) {
            None => ring.seq,
            Some((boot, seq)) if boot == self.boot => seq.parse().unwrap_or(ring.seq),
            Some(_) => 0,
        };
        let backlog = ring
            .lines
            .iter()
            .filter(|l| l.seq > from)
            .cloned()
            .collect();
        // Under the lock, like `push`: the receiver starts right after the
        // backlog.
        let rx = self.sender.subscribe();
        (backlog, rx)
    }

    fn push(&self, level: Level, text: String) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.seq += 1;
        let line = LogLine {
            seq: ring.seq,
            level,
            text: Arc::from(text),
        };
        while ring.lines.len() >= self.capacity {
            ring.lines.pop_front();
        }
        ring.lines.push_back(line.clone());
        // No followers is not an error.
        let _ = self.sender.send(line);
    }
}

/// The `tracing_subscriber` layer that writes into a [`LogTail`].
#[derive(Debug, Clone, Copy)]
pub struct TailLayer {
    tail: &'static LogTail,
}

/// A span's fields, formatted once when it is created or recorded.
struct SpanFields(String);

/// Collects an event's message and its other fields as ` key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else if !field.name().starts_with("log.") {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else if !field.name().starts_with("log.") {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

/// The level as the line shows it, five characters wide.
fn label(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => " WARN",
        Level::INFO => " INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Control characters (but newlines and tabs) would garble the page.
fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| *c != '\r')
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    if out.len() > MAX_LINE_BYTES {
        let mut cut = MAX_LINE_BYTES - '…'.len_utf8();
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

impl<S> Layer<S> for TailLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            span.extensions_mut()
                .insert(SpanFields(fields.rest.trim_start().to_string()));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = Fields::default();
            values.record(&mut fields);
            let mut ext = span.extensions_mut();
            match ext.get_mut::<SpanFields>() {
                Some(SpanFields(text)) => {
                    if !text.is_empty() && !fields.rest.is_empty() {
                        text.push(' ');
                    }
                    text.push_str(fields.rest.trim_start());
                }
                None => ext.insert(SpanFields(fields.rest.trim_start().to_string())),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        line.push(' ');
        line.push_str(label(level));
        line.push(' ');
        if let Some(scope) = ctx.event_scope(event) {
            let mut any = false;
            for span in scope.from_root() {
                if any {
                    line.push(':');
                }
                any = true;
                line.push_str(span.name());
                let ext = span.extensions();
                if let Some(SpanFields(f)) = ext.get::<SpanFields>()
                    && !f.is_empty()
                {
                    let _ = write!(line, "{{{f}}}");
                }
            }
            if any {
                line.push_str(": ");
            }
        }
        line.push_str(&fields.message);
        line.push_str(&fields.rest);
        self.tail.push(level, clean(&line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    fn fresh(capacity: usize) -> &'static LogTail {
        Box::leak(Box::new(LogTail::new(capacity)))
    }

    #[test]
    fn events_become_lines_with_level_spans_and_fields() {
        let tail = fresh(10);
        let subscriber = tracing_subscriber::registry().with(tail.layer());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("turn", session = "agent:main:webchat:dm:a");
            let _g = span.enter();
            tracing::warn!(tokens = 12, model = "m", "the answer was cut");
        });
        let (lines, _) = tail.recent(Level::TRACE);
        assert_eq!(lines.len(), 1);
        let text = &*lines[0].text;
        assert_eq!(lines[0].level, Level::WARN);
        assert!(text.contains(" WARN turn{session=\"agent:main:webchat:dm:a\"}: the answer was cut tokens=12 model=\"m\""), "{text}");
        assert!(
            text.starts_with("20") && text.contains('T') && text.contains("Z "),
            "{text}"
        );
    }

    #[test]
    fn the_ring_is_bounded_and_lines_are_capped() {
        let tail = fresh(3);
        let subscriber = tracing_subscriber::registry().with(tail.layer());
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..5 {
                tracing::info!(i, "line");
            }
            tracing::error!("{}", "x".repeat(10_000));
        });
        let (lines, cursor) = tail.recent(Level::TRACE);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].text.ends_with("i=3"), "{}", lines[0].text);
        assert!(lines[2].text.len() <= MAX_LINE_BYTES && lines[2].text.ends_with('…'));
        assert!(cursor.ends_with("-6"), "{cursor}");
        let (errors, _) = tail.recent(Level::ERROR);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn followers_continue_after_a_line_without_gaps() {
        let tail = fresh(10);
        let subscriber = tracing_subscriber::registry().with(tail.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("one");
            tracing::info!("two");
        });
        let (lines, _) = tail.recent(Level::INFO);
        let after_one = tail.id_of(&lines[0]);
        let (backlog, mut rx) = tail.follow(Some(&after_one));
        assert_eq!(backlog.len(), 1);
        assert!(backlog[0].text.ends_with("two"));
        let (backlog, _) = tail.follow(Some("another-process-5"));
        assert_eq!(backlog.len(), 2, "a restarted gateway's lines all come");
        let (backlog, _) = tail.follow(None);
        assert!(backlog.is_empty());
        let subscriber = tracing_subscriber::registry().with(tail.layer());
        tracing::subscriber::with_default(subscriber, || tracing::info!("three"));
        let next = rx.try_recv().expect("a live line");
        assert!(next.text.ends_with("three"));
    }

    #[test]
    fn levels_filter_by_severity() {
        assert!(shown_at(Level::ERROR, Level::INFO));
        assert!(shown_at(Level::INFO, Level::INFO));
        assert!(!shown_at(Level::DEBUG, Level::INFO));
        assert_eq!(parse_level("Debug"), Some(Level::DEBUG));
        assert_eq!(parse_level("loud"), None);
        assert_eq!(level_name(Level::WARN), "warn");
    }
}
