//! **Agents**: each agent's provider and model, fallbacks, the budget used
//! today, and the effective tool policy: which tools are offered on which
//! channel and which wait for the operator's approval. The policy is worked
//! out with the very functions a turn uses (`ToolRegistry::select`,
//! `ApprovalPolicy::needs_approval`, the routing's session key), on the
//! policies the running agents hold; API keys never leave the server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;

use switchboard_agents::ToolCall;
use switchboard_agents::tools::{ApprovalMode, ApprovalPolicy, Profile, ToolContext, ToolPolicy};
use switchboard_channel::{ChatKind, Inbound, Sender};
use switchboard_memory::TokenCounts;

use super::overview::{badge, word};
use super::usage::thousands;
use crate::config::{ANTHROPIC_BASE_URL, AgentConfig, ProviderKind};
use crate::http::{AppState, control};
use crate::ui::{Flash, Layout, Signed, render};

/// The channels of the tool table, in its column order.
const CHANNELS: [&str; 4] = ["telegram", "discord", "slack", "webchat"];

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/agents", get(page))
}

/// What a conversation gets of one tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    Offered,
    NeedsApproval,
    NotOffered,
}

impl Offer {
    fn label(self) -> &'static str {
        match self {
            Offer::Offered => "offered",
            Offer::NeedsApproval => "needs approval",
            Offer::NotOffered => "not offered",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Offer::Offered => "ok",
            Offer::NeedsApproval => "warn",
            Offer::NotOffered => "idle",
        }
    }
}

/// One badge of a cell.
struct Part {
    label: String,
    class: &'static str,
}

/// One tool's row: a cell per channel (DMs and groups apart when they
/// differ).
struct ToolRow {
    name: String,
    cells: Vec<Vec<Part>>,
}

/// A column of the tool table.
struct ChannelHead {
    name: &'static str,
    /// Whether any account of it runs.
    configured: bool,
}

/// One agent as the page shows it.
struct AgentView {
    name: String,
    is_default: bool,
    provider: String,
    provider_kind: &'static str,
    base_url: String,
    /// The provider's health (empty before it was probed) and its badge.
    provider_state: &'static str,
    provider_badge: &'static str,
    model: String,
    model_from: &'static str,
    fallbacks: Vec<String>,
    budget: String,
    budget_badge: &'static str,
    budget_label: &'static str,
    profile: &'static str,
    trusted: String,
    approvals: String,
    approval_allowlist: String,
    tools: Vec<ToolRow>,
}

#[derive(Template)]
#[template(path = "agents.html")]
struct AgentsPage {
    layout: Layout,
    channels: Vec<ChannelHead>,
    agents: Vec<AgentView>,
}

/// `url` without what can carry a credential (user info, the query).
use switchboard_agents::shown_url;

fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Minimal => "minimal",
        Profile::Messaging => "messaging",
        Profile::Coding => "coding",
        Profile::Full => "full",
    }
}

fn mode_name(m: ApprovalMode) -> &'static str {
    match m {
        ApprovalMode::Never => "never",
        ApprovalMode::OnMiss => "on-miss",
        ApprovalMode::Always => "always",
    }
}

/// A message as it would come from `channel` in a chat of `kind`, for the
/// routing's session key (the sandbox offers tools by it).
fn sample(channel: &str, kind: ChatKind) -> Inbound {
    let chat_id = match kind {
        ChatKind::Dm => "someone",
        ChatKind::Group | ChatKind::Thread => "a-group",
    };
    Inbound {
        channel: channel.to_string(),
        account: "default".into(),
        chat_kind: kind,
        chat_id: chat_id.into(),
        thread_id: None,
        sender: Sender {
            id: "someone".into(),
            name: None,
            is_bot: false,
        },
        text: String::new(),
        attachments: Vec::new(),
        mentioned: true,
        message_id: String::new(),
        received_at_ms: 0,
    }
}

/// The running agent's policies (the configured ones if it does not run).
struct Policies {
    tools: ToolPolicy,
    approvals: ApprovalPolicy,
    model: String,
}

/// What each registered tool is in a conversation of `agent` on
/// `channel` in a chat of `kind`: the same selection a turn makes.
fn offers(
    state: &AppState,
    agent: &str,
    p: &Policies,
    channel: &str,
    kind: ChatKind,
) -> BTreeMap<String, Offer> {
    let registry = &state.pipeline.sessions().context().tools;
    let m = sample(channel, kind);
    let ctx = ToolContext {
        session_key: crate::pipeline::routing::session_key(
            agent,
            state.config.load().sessions.dm_scope,
            &m,
        ),
        agent: agent.to_string(),
        model: p.model.clone(),
        channel: channel.to_string(),
        chat_kind: kind.as_str().to_string(),
        turns: 0,
        subject: crate::memories::subject_of(&m),
        ..ToolContext::default()
    };
    let offered: BTreeSet<String> = registry
        .select(&p.tools, &ctx)
        .iter()
        .map(|t| t.shared_spec().name.clone())
        .collect();
    registry
        .names()
        .into_iter()
        .map(|name| {
            let offer = if !offered.contains(&name) {
                Offer::NotOffered
            } else if p.approvals.needs_approval(&ToolCall {
                id: String::new(),
                name: name.clone(),
                arguments: "{}".into(),
            }) {
                Offer::NeedsApproval
            } else {
                Offer::Offered
            };
            (name, offer)
        })
        .collect()
}

/// The tool table of one agent.
fn tool_rows(state: &AppState, agent: &str, p: &Policies) -> Vec<ToolRow> {
    // Per channel: (DMs, groups); the web chat has DMs only.
    let columns: Vec<(BTreeMap<String, Offer>, Option<BTreeMap<String, Offer>>)> = CHANNELS
        .iter()
        .map(|c| {
            let dm = offers(state, agent, p, c, ChatKind::Dm);
            let group =
                (*c != crate::webchat::NAME).then(|| offers(state, agent, p, c, ChatKind::Group));
            (dm, group)
        })
        .collect();
    state
        .pipeline
        .sessions()
        .context()
        .tools
        .names()
        .into_iter()
        .map(|name| {
            let cells = columns
                .iter()
                .map(|(dm, group)| {
                    let in_dm = dm.get(&name).copied().unwrap_or(Offer::NotOffered);
                    let in_group = group
                        .as_ref()
                        .map(|g| g.get(&name).copied().unwrap_or(Offer::NotOffered));
                    match in_group {
                        Some(g) if g != in_dm => vec![
                            Part {
                                label: format!("DMs: {}", in_dm.label()),
                                class: in_dm.class(),
                            },
                            Part {
                                label: format!("groups: {}", g.label()),
                                class: g.class(),
                            },
                        ],
                        _ => vec![Part {
                            label: in_dm.label().to_string(),
                            class: in_dm.class(),
                        }],
                    }
                })
                .collect();
            ToolRow { name, cells }
        })
        .collect()
}

fn budget_of(name: &str, a: &AgentConfig, used: i64) -> (String, &'static str) {
    let Some(budget) = a.daily_token_budget else {
        return (
            format!(
                "{} tokens used today; no daily budget (agents.{name}.daily_token_budget)",
                thousands(used)
            ),
            "idle",
        );
    };
    let budget = i64::try_from(budget).unwrap_or(i64::MAX);
    // Spent as a turn sees it: new turns are refused once used >= budget.
    if used >= budget {
        return (
            format!(
                "{} of {} tokens used today: spent, new turns are refused until midnight (raise agents.{name}.daily_token_budget to allow more)",
                thousands(used),
                thousands(budget)
            ),
            "bad",
        );
    }
    let percent = used.saturating_mul(100) / budget.max(1);
    (
        format!(
            "{} of {} tokens used today ({percent}%)",
            thousands(used),
            thousands(budget)
        ),
        if percent >= 80 { "warn" } else { "ok" },
    )
}

fn agent_view(
    state: &AppState,
    name: &str,
    a: &AgentConfig,
    used: &BTreeMap<String, TokenCounts>,
    health: &BTreeMap<String, crate::health::Component>,
) -> AgentView {
    let config = state.config.load();
    let provider = config.providers.get(&a.provider);
    let provider_health = health.get(&format!("provider:{}", a.provider));
    let (model, model_from) = match (&a.model, provider) {
        (Some(m), _) => (m.clone(), "the agent's own"),
        (None, Some(p)) => (p.model.clone(), "the provider's"),
        (None, None) => (String::new(), "unknown provider"),
    };
    let policies = match state.pipeline.sessions().context().agents.get(name) {
        Some(slot) => Policies {
            tools: slot.tools.clone(),
            approvals: slot.approvals.clone(),
            model: slot.model.clone(),
        },
        None => Policies {
            tools: a.tools.policy(),
            approvals: a.approvals.policy(),
            model: model.clone(),
        },
    };
    let fallbacks = a
        .fallback_pairs()
        .into_iter()
        .map(|(p, m)| {
            let model = m
                .map(str::to_string)
                .or_else(|| {
                    state
                        .config
                        .load()
                        .providers
                        .get(p)
                        .map(|fp| fp.model.clone())
                })
                .unwrap_or_default();
            format!("{p} ({model})")
        })
        .collect();
    let (budget, budget_badge) = budget_of(name, a, used.get(name).map_or(0, TokenCounts::total));
    let approvals = match policies.approvals.mode {
        ApprovalMode::Never => "off (mode = never): no call waits for the operator".to_string(),
        mode => format!(
            "mode = {}, for {}; unanswered requests are denied after {}; {}",
            mode_name(mode),
            if policies.approvals.tools.is_empty() {
                "no tools".to_string()
            } else {
                policies.approvals.tools.join(", ")
            },
            super::duration(i64::try_from(a.approvals.timeout_secs).unwrap_or(i64::MAX)),
            if a.approvals.approvers.is_empty() {
                "decided by the operator, or by the asker in their DM".to_string()
            } else {
                format!(
                    "decided by the operator or {}",
                    a.approvals.approvers.join(", ")
                )
            }
        ),
    };
    let approval_allowlist = match policies.approvals.mode {
        ApprovalMode::OnMiss if !policies.approvals.allowlist.is_empty() => format!(
            "Calls matching {} pass without asking.",
            policies.approvals.allowlist.join(", ")
        ),
        _ => String::new(),
    };
    AgentView {
        name: name.to_string(),
        is_default: state.agents.load().first().is_some_and(|d| d == name),
        provider: a.provider.clone(),
        provider_kind: match provider.map(|p| p.kind) {
            Some(ProviderKind::Openai) => "OpenAI-compatible",
            Some(ProviderKind::Anthropic) => "Anthropic",
            None => "not configured",
        },
        base_url: provider.map_or_else(String::new, |p| match p.kind {
            ProviderKind::Anthropic if p.base_url.is_empty() => ANTHROPIC_BASE_URL.to_string(),
            _ => shown_url(&p.base_url),
        }),
        provider_state: provider_health.map_or("", |c| word(c.state)),
        provider_badge: provider_health.map_or("idle", |c| badge(c.state)),
        model,
        model_from,
        fallbacks,
        budget,
        budget_badge,
        budget_label: match budget_badge {
            "bad" => "spent",
            "warn" => "nearly spent",
            "ok" => "within budget",
            _ => "no limit",
        },
        profile: profile_name(policies.tools.profile),
        trusted: policies.tools.trusted_channels.join(", "),
        approvals,
        approval_allowlist,
        tools: tool_rows(state, name, &policies),
    }
}

async fn page(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
) -> Response {
    let mut layout = Layout::new("Agents", &signed, &flash);
    let used: BTreeMap<String, TokenCounts> = match control::usage_by_agent(&state, None).await {
        Ok(v) => v
            .get("agents")
            .cloned()
            .and_then(|a| serde_json::from_value(a).ok())
            .unwrap_or_default(),
        Err(e) => {
            layout.error = Some(e.message().to_string());
            BTreeMap::new()
        }
    };
    let health = state.health.snapshot();
    let channels = CHANNELS
        .iter()
        .map(|&c| ChannelHead {
            name: c,
            configured: health
                .keys()
                .any(|k| k.starts_with(&format!("channel:{c}/"))),
        })
        .collect();
    let config = state.config.load();
    let mut names: Vec<&String> = config.agents.keys().collect();
    // The default agent first.
    names.sort_by_key(|n| state.agents.load().first() != Some(*n));
    let agents = names
        .into_iter()
        .filter_map(|n| {
            let a = config.agents.get(n)?;
            Some(agent_view(&state, n, a, &used, &health))
        })
        .collect();
    render(&AgentsPage {
        layout,
        channels,
        agents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            shown_url("http://127.0.0.1:11434/v1"),
            "http://127.0.0.1:11434/v1"
        );
        assert_eq!(
            shown_url("https://user:secret@example.com/v1"),
            "https://••••@example.com/v1"
        );
        assert_eq!(
            shown_url("https://example.com/v1?api-key=secret"),
            "https://example.com/v1?••••"
        );
        assert_eq!(shown_url("https://example.com"), "https://example.com");
    }
}
