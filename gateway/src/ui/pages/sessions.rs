//! **Sessions**: every stored session with filters (channel, agent, text),
//! and one session's facts, usage and transcript with **Reset**. Reads and
//! resets through the control functions the REST API uses.

use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::Value;

use switchboard_memory::{SessionRecord, TokenCounts};

use super::ago;
use super::chat::ui_session_key;
use crate::http::{AppState, control};
use crate::ui::{CsrfForm, Flash, Layout, Signed, check_csrf, done, failed, render, urlencode};

/// Sessions read for the list (the most recently active).
const LIST: u32 = 1000;

/// Transcript entries shown of one session (the last ones).
const TRANSCRIPT: u32 = 500;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/sessions", get(list))
        .route("/sessions/{key}", get(show))
        .route("/sessions/{key}/reset", post(reset))
}

/// One transcript entry as the store gives it. The role is kept as text, so
/// roles added later (tool calls and results) still show.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Entry {
    /// `user`, `assistant`, `system`, or another role.
    pub role: String,
    /// What was said.
    pub content: String,
    /// When it was stored, ms since the epoch.
    pub created_at: i64,
}

/// The transcript of a `control::session_show` answer.
pub(super) fn entries(shown: &Value) -> Vec<Entry> {
    shown
        .get("transcript")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default()
}

/// The channel in a session key (`agent:<agent>:<channel>:…`); none for the
/// keys of DM scopes that span channels (`agent:<a>:main`, `agent:<a>:dm:…`).
fn channel_of(key: &str) -> Option<&str> {
    let mut parts = key.split(':');
    if parts.next() != Some("agent") {
        return None;
    }
    parts.next()?;
    parts
        .next()
        .filter(|c| !matches!(*c, "main" | "dm") && !c.is_empty())
}

/// A moment as local date and time; "—" for none.
fn when(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .filter(|_| ms > 0)
        .map_or_else(|| "—".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// "never" for a moment that has not been (stored as 0).
fn ago_ms(ms: i64) -> String {
    ago((ms > 0).then_some(ms))
}

fn session_path(key: &str) -> String {
    format!("/sessions/{}", urlencode(key))
}

#[derive(Debug, Default, Deserialize)]
struct Filters {
    channel: Option<String>,
    agent: Option<String>,
    q: Option<String>,
}

/// A filter's value, if it filters (an empty field does not).
fn wanted(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

/// One choice of a filter's `<select>`.
struct Choice {
    value: String,
    selected: bool,
}

fn choices(values: impl IntoIterator<Item = String>, current: Option<&str>) -> Vec<Choice> {
    values
        .into_iter()
        .map(|value| Choice {
            selected: current == Some(value.as_str()),
            value,
        })
        .collect()
}

/// One session as a row of the list.
struct Row {
    key: String,
    href: String,
    agent: String,
    channel: String,
    turns: i64,
    last_active: String,
    started: String,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct ListPage {
    layout: Layout,
    channels: Vec<Choice>,
    agents: Vec<Choice>,
    q: String,
    filtered: bool,
    rows: Vec<Row>,
    /// "Showing 3 of 12 sessions." and the like.
    summary: String,
    /// No sessions at all (rather than none matching).
    none_yet: bool,
}

/// `GET /sessions?channel=&agent=&q=`.
async fn list(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
    Query(f): Query<Filters>,
) -> Response {
    let mut layout = Layout::new("Sessions", &signed, &flash);
    let sessions: Vec<SessionRecord> = match control::sessions_list(&state, Some(LIST)).await {
        Ok(v) => v
            .get("sessions")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_default(),
        Err(e) => {
            layout.error = Some(format!("The sessions could not be read: {}", e.message()));
            Vec::new()
        }
    };
    let (channel, agent, q) = (
        wanted(f.channel.as_deref()),
        wanted(f.agent.as_deref()),
        wanted(f.q.as_deref()),
    );
    let needle = q.map(str::to_lowercase);
    let seen_channels: BTreeSet<String> = sessions
        .iter()
        .filter_map(|s| channel_of(&s.key).map(str::to_string))
        .collect();
    let mut agent_names = state.agents.load().to_vec();
    for s in &sessions {
        if !agent_names.contains(&s.agent) {
            agent_names.push(s.agent.clone());
        }
    }
    let rows: Vec<Row> = sessions
        .iter()
        .filter(|s| channel.is_none_or(|c| channel_of(&s.key) == Some(c)))
        .filter(|s| agent.is_none_or(|a| s.agent == a))
        .filter(|s| {
            needle
                .as_deref()
                .is_none_or(|n| s.key.to_lowercase().contains(n))
        })
        .map(|s| Row {
            key: s.key.clone(),
            href: session_path(&s.key),
            agent: s.agent.clone(),
            channel: channel_of(&s.key).unwrap_or("—").to_string(),
            turns: s.turns,
            last_active: ago_ms(s.last_active_at),
            started: when(s.created_at),
        })
        .collect();
    let total = sessions.len();
    let newest = if total >= LIST as usize {
        format!(" (the {LIST} most recently active)")
    } else {
        String::new()
    };
    let plural = if total == 1 { "" } else { "s" };
    let summary = format!("Showing {} of {total} session{plural}{newest}.", rows.len());
    render(&ListPage {
        layout,
        channels: choices(seen_channels, channel),
        agents: choices(agent_names, agent),
        q: q.unwrap_or_default().to_string(),
        filtered: channel.is_some() || agent.is_some() || q.is_some(),
        rows,
        summary,
        none_yet: total == 0,
    })
}

/// One transcript entry, ready to show.
struct Said {
    /// A role this page shows as a message (`user`, `assistant`,
    /// `system`); any other role (tool calls and results) is a card.
    known: bool,
    /// The element's class: `user`, `assistant`, `system` (or `tool`).
    kind: &'static str,
    role: String,
    content: String,
    when: String,
}

impl Said {
    fn of(e: Entry) -> Self {
        let kind = match e.role.as_str() {
            "user" => "user",
            "assistant" => "assistant",
            "system" => "system",
            _ => "tool",
        };
        Self {
            known: kind != "tool",
            kind,
            role: e.role,
            content: e.content,
            when: when(e.created_at),
        }
    }
}

/// Token counts as a row of the usage table.
struct Usage {
    label: &'static str,
    input: i64,
    output: i64,
    cached: i64,
    total: i64,
    turns: i64,
    /// `$0.0123`, or `—` when no cost was counted.
    cost: String,
}

impl Usage {
    fn of(label: &'static str, shown: &Value, field: &str) -> Self {
        let t: TokenCounts = shown
            .get(field)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        Self {
            label,
            input: t.input_tokens,
            output: t.output_tokens,
            cached: t.cached_tokens,
            total: t.total(),
            turns: t.turns,
            cost: super::usage::cost_cell(t.cost_micros),
        }
    }
}

#[derive(Template)]
#[template(path = "session.html")]
struct SessionPage {
    layout: Layout,
    key: String,
    agent: String,
    channel: String,
    generation: String,
    turns: i64,
    started: String,
    generation_since: String,
    last_active: String,
    usage: Vec<Usage>,
    transcript: Vec<Said>,
    /// Only the last entries are shown.
    cut: bool,
    reset_action: String,
    /// `/chat?agent=…` when this is the browser's own web chat session.
    chat_href: Option<String>,
}

/// `GET /sessions/{key}`.
async fn show(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
    Path(key): Path<String>,
) -> Response {
    let shown = match control::session_show(&state, &key, Some(TRANSCRIPT)).await {
        Ok(v) => v,
        Err(e) => return failed("/sessions", e.message()),
    };
    let Some(session) = shown
        .get("session")
        .and_then(|s| serde_json::from_value::<SessionRecord>(s.clone()).ok())
    else {
        return failed(
            "/sessions",
            &format!("the session `{key}` could not be read"),
        );
    };
    let transcript: Vec<Said> = entries(&shown).into_iter().map(Said::of).collect();
    let chat_href = (ui_session_key(&state, &session.agent) == session.key)
        .then(|| format!("/chat?agent={}", urlencode(&session.agent)));
    render(&SessionPage {
        layout: Layout::new("Sessions", &signed, &flash),
        channel: channel_of(&session.key).unwrap_or("—").to_string(),
        reset_action: format!("{}/reset", session_path(&session.key)),
        generation: session.session_id,
        turns: session.turns,
        started: when(session.created_at),
        generation_since: when(session.updated_at),
        last_active: ago_ms(session.last_active_at),
        usage: vec![
            Usage::of("This session", &shown, "usage"),
            Usage::of("All its sessions", &shown, "usage_all_generations"),
        ],
        cut: transcript.len() >= TRANSCRIPT as usize,
        transcript,
        chat_href,
        agent: session.agent,
        key: session.key,
    })
}

/// `POST /sessions/{key}/reset`: the session starts afresh with its next
/// message.
async fn reset(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Path(key): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = check_csrf(&signed, &form.csrf) {
        return refused;
    }
    let back = session_path(&key);
    match control::session_reset(&state, &key).await {
        Ok(_) => done(
            &back,
            &format!("Session {key} starts afresh with its next message."),
        ),
        Err(e) => failed(&back, e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_comes_from_the_key() {
        assert_eq!(channel_of("agent:main:telegram:dm:42"), Some("telegram"));
        assert_eq!(channel_of("agent:main:webchat:dm:ui"), Some("webchat"));
        assert_eq!(channel_of("agent:main:slack:T1:dm:U2"), Some("slack"));
        assert_eq!(
            channel_of("agent:main:telegram:group:-100"),
            Some("telegram")
        );
        assert_eq!(channel_of("agent:main:main"), None);
        assert_eq!(channel_of("agent:main:dm:42"), None);
        assert_eq!(channel_of("other"), None);
    }

    #[test]
    fn unknown_roles_are_cards() {
        let said = |role: &str| {
            Said::of(Entry {
                role: role.into(),
                content: "x".into(),
                created_at: 0,
            })
        };
        assert!(said("user").known);
        assert!(said("assistant").known);
        assert!(!said("tool_call").known);
        assert_eq!(said("tool_result").role, "tool_result");
    }

    #[test]
    fn a_transcript_with_new_roles_still_reads() {
        let v = serde_json::json!({ "transcript": [
            { "seq": 1, "role": "user", "content": "hi", "created_at": 5 },
            { "seq": 2, "role": "tool_call", "content": "{}", "created_at": 6 },
        ]});
        let e = entries(&v);
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].role, "tool_call");
    }
}
