//! The memory flush before compaction: the messages about to be folded
//! into a summary are shown to the model once, with only `memory_save`
//! offered, so what should outlast the conversation is saved before it
//! leaves the context. One model call, its saves run (at most
//! [`MAX_SAVES`], none that would wait for an approval), all within
//! [`FLUSH_TIMEOUT`]; whatever fails is logged and compaction goes on.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use switchboard_agents::tools::memory::SAVE;
use switchboard_agents::tools::{ApprovalPolicy, Tool, ToolContext, run_call};
use switchboard_agents::{ChatMessage, ModelRequest, Provider, ProviderEvent};
use switchboard_memory::{Role, TranscriptEntry};

use crate::sessions::TurnContext;
use crate::sessions::context::{ContextBudget, estimate_tokens};

/// What the model is asked.
pub const FLUSH_PROMPT: &str = "These messages are about to be summarized and dropped from your context. \
Call memory_save once for each fact worth keeping across conversations (preferences, names, dates, decisions, \
promises), each as a short sentence that stands on its own. Do not save what only matters to this conversation. \
Reply DONE if there is nothing to save.";

/// The most saves one flush runs.
pub const MAX_SAVES: usize = 10;

/// How long a flush may take, the model call and the saves together.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Give the agent of `context` one chance to save what should last from
/// `entries` (the messages about to be summarized), when it may use
/// `memory_save` in that conversation. Never fails: problems are logged.
pub async fn before_compaction(
    ctx: &TurnContext,
    provider: &dyn Provider,
    context: &ToolContext,
    entries: &[TranscriptEntry],
    budget: ContextBudget,
) {
    let Some(slot) = ctx.agents.get(&context.agent) else {
        return;
    };
    // Registered only when the gateway keeps memories; offered only where
    // the agent's policy allows it.
    let tools: Vec<Arc<dyn Tool>> = ctx
        .tools
        .select(&slot.tools, context)
        .into_iter()
        .filter(|t| t.shared_spec().name == SAVE)
        .collect();
    if tools.is_empty() || entries.is_empty() {
        return;
    }
    let key = context.session_key.as_str();
    let run = flush(provider, &tools, &slot.approvals, context, entries, budget);
    match tokio::time::timeout(FLUSH_TIMEOUT, run).await {
        Ok(Ok(0)) => tracing::debug!(session_key = key, "nothing saved before compaction"),
        Ok(Ok(saved)) => {
            tracing::info!(session_key = key, saved, "memories saved before compaction");
        }
        Ok(Err(e)) => tracing::warn!(
            session_key = key,
            error = %e,
            "the memory flush before compaction failed; compacting anyway"
        ),
        Err(_) => tracing::warn!(
            session_key = key,
            "the memory flush before compaction took more than {} s; compacting anyway",
            FLUSH_TIMEOUT.as_secs()
        ),
    }
}

/// The one model call and its saves; how many were saved.
async fn flush(
    provider: &dyn Provider,
    tools: &[Arc<dyn Tool>],
    approvals: &ApprovalPolicy,
    context: &ToolContext,
    entries: &[TranscriptEntry],
    budget: ContextBudget,
) -> Result<usize, String> {
    let specs: Vec<_> = tools.iter().map(|t| t.shared_spec()).collect();
    let overhead = estimate_tokens(FLUSH_PROMPT)
        + specs
            .iter()
            .map(|s| estimate_tokens(&s.parameters.to_string()) + estimate_tokens(&s.description))
            .sum::<usize>();
    let room = budget.prompt_limit().saturating_sub(overhead + 64).max(64);
    let text = newest_within(entries, room);
    if text.is_empty() {
        return Ok(0);
    }
    let request = ModelRequest {
        messages: vec![ChatMessage::system(FLUSH_PROMPT), ChatMessage::user(text)],
        tools: specs,
    };
    let mut calls = Vec::new();
    let mut stream = provider.stream(request);
    while let Some(item) = stream.next().await {
        match item {
            Ok(ProviderEvent::ToolCall(call)) => calls.push(call),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    drop(stream);
    if calls.len() > MAX_SAVES {
        tracing::warn!(
            session_key = %context.session_key,
            asked = calls.len(),
            run = MAX_SAVES,
            "the model asked for more saves before compaction than are run"
        );
    }
    let mut saved = 0;
    for call in calls.iter().take(MAX_SAVES) {
        if approvals.needs_approval(call) {
            // Nobody can be asked in the middle of a compaction.
            tracing::info!(tool = %call.name, "a save before compaction needs an approval; not run");
            continue;
        }
        let out = run_call(tools, &call.name, &call.arguments, context.clone()).await;
        if out.is_error {
            // The output says why without the memory's text.
            tracing::warn!(tool = %call.name, "a save before compaction failed");
            tracing::debug!(output = %out.content, "the failed save's answer");
        } else {
            saved += 1;
        }
    }
    Ok(saved)
}

/// The newest of `entries` that fit in `room` tokens, oldest first, as
/// `role: text` paragraphs (tool calls and results left out; an entry
/// longer than half the room cut, saying so).
fn newest_within(entries: &[TranscriptEntry], room: usize) -> String {
    let max_chars = (room * 4 / 2).max(200);
    let mut lines: Vec<String> = Vec::new();
    let mut used = 0;
    for e in entries
        .iter()
        .rev()
        .filter(|e| matches!(e.role, Role::User | Role::Assistant | Role::System))
    {
        let mut line = format!("{}: {}", e.role.as_str(), e.content);
        if line.len() > max_chars {
            let mut end = max_chars.saturating_sub(20);
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push_str(" […cut]");
        }
        let cost = estimate_tokens(&line);
        if used + cost > room {
            break;
        }
        used += cost;
        lines.push(line);
    }
    lines.reverse();
    lines.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(role: Role, content: &str) -> TranscriptEntry {
        TranscriptEntry {
            seq: 0,
            session_id: "s".into(),
            role,
            content: content.into(),
            ingress_id: None,
            created_at: 0,
        }
    }

    #[test]
    fn the_newest_messages_that_fit_are_shown_in_order() {
        let entries = vec![
            entry(Role::User, &"old ".repeat(200)),
            entry(Role::ToolCall, "{\"id\":\"c\"}"),
            entry(Role::User, "my sister is Maren"),
            entry(Role::Assistant, "noted"),
        ];
        let text = newest_within(&entries, 40);
        assert_eq!(text, "user: my sister is Maren\n\nassistant: noted");
        let all = newest_within(&entries, 10_000);
        assert!(all.starts_with("user: old"), "{all}");
        assert!(!all.contains("tool_call"));
        let cut = newest_within(&[entry(Role::User, &"é".repeat(5000))], 300);
        assert!(cut.ends_with("[…cut]"), "{cut}");
        assert!(estimate_tokens(&cut) <= 300);
    }
}
