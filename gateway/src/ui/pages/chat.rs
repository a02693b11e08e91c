//! The Chat page: the browser talks to an agent as the web chat user `ui`.
//! The page renders the session's history; `assets/chat.js` sends
//! messages, streams the answers, shows tool calls and approvals, and stops
//! or resets the session, all over `/api/ws`. No form posts here.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::sessions::{Entry, entries};
use crate::http::{AppState, control, webchat_inbound};
use crate::ui::{Flash, Layout, Signed, render};

/// The web chat user the browser speaks as.
const USER: &str = "ui";

/// Transcript entries shown on load.
const HISTORY: u32 = 200;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/chat", get(page))
}

/// The session key of the browser's conversation with `agent`, made by the
/// router that routes the messages it sends (so it follows
/// `sessions.dm_scope`).
pub(super) fn ui_session_key(state: &AppState, agent: &str) -> String {
    let probe = webchat_inbound(USER, String::new(), String::new());
    state
        .pipeline
        .router()
        .route_with(&probe, Some(agent))
        .session_key
}

#[derive(Debug, Default, Deserialize)]
struct ChatQuery {
    agent: Option<String>,
}

/// One agent of the picker.
struct AgentOption {
    name: String,
    selected: bool,
}

/// One entry of the history, ready to show.
struct Said {
    /// The element's classes: `msg user`, `msg assistant`, `msg system`.
    kind: &'static str,
    /// Who said it: "You", the agent, "Gateway", or the entry's role.
    who: String,
    /// What was said (the assistant's is rendered as Markdown by chat.js).
    text: String,
    /// Shown as a card: tool calls and results, and roles this page does
    /// not know.
    card: bool,
}

impl Said {
    fn of(e: Entry, agent: &str) -> Self {
        let (kind, who, card) = match e.role.as_str() {
            "user" => ("msg user", "You".to_string(), false),
            "assistant" => ("msg assistant", agent.to_string(), false),
            "system" => ("msg system", "Gateway".to_string(), false),
            other => ("tool", other.to_string(), true),
        };
        Self {
            kind,
            who,
            text: e.content,
            card,
        }
    }
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage {
    layout: Layout,
    agents: Vec<AgentOption>,
    agent: String,
    session_key: String,
    history: Vec<Said>,
}

/// `GET /chat?agent=`: the conversation of the browser with an agent (the
/// default agent unless one is named).
async fn page(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
    Query(q): Query<ChatQuery>,
) -> Response {
    let mut layout = Layout::new("Chat", &signed, &flash);
    let agent = q
        .agent
        .filter(|a| state.agents.load().contains(a))
        .or_else(|| state.agents.load().first().cloned())
        .unwrap_or_default();
    let session_key = ui_session_key(&state, &agent);
    let history: Vec<Said> = match control::session_show(&state, &session_key, Some(HISTORY)).await
    {
        Ok(v) => entries(&v)
            .into_iter()
            .map(|e| Said::of(e, &agent))
            .collect(),
        // No session yet: nothing said.
        Err(e) if e.status() == StatusCode::NOT_FOUND => Vec::new(),
        Err(e) => {
            layout.error = Some(format!(
                "The history of this conversation could not be read: {}",
                e.message()
            ));
            Vec::new()
        }
    };
    let agents = state
        .agents
        .load()
        .iter()
        .map(|name| AgentOption {
            name: name.clone(),
            selected: *name == agent,
        })
        .collect();
    render(&ChatPage {
        layout,
        agents,
        agent,
        session_key,
        history,
    })
}
