//! Keeping a session's prompt inside the model's context window: when the
//! history would overflow, older messages are summarized by the model (one
//! attempt, never a loop) and the session continues in a new generation made
//! of the summary and the recent messages, kept whole.

use futures::StreamExt;

use switchboard_agents::tools::ToolContext;
use switchboard_agents::{ChatMessage, MessageRole, Provider, ProviderEvent};
use switchboard_memory::{Role, SessionRecord, StoreError, TranscriptEntry, TurnEntry};

use super::TurnContext;
use crate::clock::now_ms;

/// A rough token count: about four characters a token, plus a little per
/// message. Providers count exactly; this only has to err on the safe side.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4) + 4
}

/// An agent's context limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextBudget {
    /// The model's context window, in tokens.
    pub window: usize,
    /// Messages at the end of the history always kept whole.
    pub keep_recent: usize,
}

impl ContextBudget {
    /// Tokens the prompt may take: the window less room for the answer.
    pub fn prompt_limit(&self) -> usize {
        self.window - self.window / 4
    }

    /// Whether `history` (with `overhead` tokens of system prompt and tools)
    /// must be compacted.
    pub fn overflows(&self, overhead: usize, history: &[ChatMessage]) -> bool {
        overhead
            + history
                .iter()
                .map(|m| estimate_tokens(&m.content))
                .sum::<usize>()
            > self.prompt_limit()
    }

    /// How many of `entries` (oldest first) go into the summary: all but the
    /// last `keep_recent`, or `None` when there is nothing to summarize.
    pub fn split(&self, entries: usize) -> Option<usize> {
        let older = entries.saturating_sub(self.keep_recent);
        (older > 0).then_some(older)
    }
}

const SUMMARY_PROMPT: &str = "You are compacting a conversation so it can continue within a limited context. \
Summarize the conversation below for your own later use: facts about the user, decisions, results, open \
questions and anything promised. Be concise (at most 300 words). Reply with the summary only.";

/// The marker that starts a summary entry.
pub const SUMMARY_PREFIX: &str = "Summary of the earlier conversation:\n";

fn as_text(entries: &[TranscriptEntry]) -> String {
    entries
        .iter()
        .map(|e| format!("{}: {}", e.role.as_str(), e.content))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Ask `provider` for a summary of `entries`, once.
async fn summarize(provider: &dyn Provider, entries: &[TranscriptEntry]) -> Result<String, String> {
    summarize_text(provider, &as_text(entries)).await
}

/// Ask `provider` for a summary of `text`, once.
async fn summarize_text(provider: &dyn Provider, text: &str) -> Result<String, String> {
    let request = vec![ChatMessage::system(SUMMARY_PROMPT), ChatMessage::user(text)];
    let mut stream = provider.stream(request.into());
    let mut summary = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(ProviderEvent::TextDelta(d)) => summary.push_str(&d),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if summary.trim().is_empty() {
        return Err("the model returned an empty summary".into());
    }
    Ok(summary)
}

/// How many pieces, at most, a long history is summarized in; past that
/// the oldest are left out of the summary.
const MAX_PIECES: usize = 16;

/// The history `entries` as pieces of text that each fit a summary request
/// inside the window (`limit` tokens), oldest first. An entry too long for
/// one piece is cut, saying so.
fn pieces(entries: &[TranscriptEntry], limit: usize) -> Vec<String> {
    let room = limit
        .saturating_sub(estimate_tokens(SUMMARY_PROMPT) + 64)
        .max(64);
    let max_chars = room * 4;
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for e in entries {
        let mut line = format!("{}: {}", e.role.as_str(), e.content);
        if line.len() > max_chars {
            let mut end = max_chars.saturating_sub(40);
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push_str(" […cut for the summary]");
        }
        if !current.is_empty() && estimate_tokens(&current) + estimate_tokens(&line) > room {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    if out.len() > MAX_PIECES {
        out.drain(..out.len() - MAX_PIECES);
    }
    out
}

/// A summary of `entries` whose every request fits the window: one request
/// when they fit, else one per piece and a last one of the pieces'
/// summaries (each of which is short).
async fn summarize_within(
    provider: &dyn Provider,
    entries: &[TranscriptEntry],
    budget: ContextBudget,
) -> Result<String, String> {
    let limit = budget.prompt_limit();
    let parts = pieces(entries, limit);
    if parts.len() <= 1 {
        return summarize(provider, entries).await;
    }
    let mut summaries = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let s = summarize_text(provider, part).await?;
        summaries.push(format!("Part {} of {}:\n{s}", i + 1, parts.len()));
    }
    let joined = summaries.join("\n\n");
    if estimate_tokens(&joined) + estimate_tokens(SUMMARY_PROMPT) > limit {
        // Even the summaries do not fit one request: keep the newest.
        let mut kept = String::new();
        for s in summaries.iter().rev() {
            if estimate_tokens(&kept) + estimate_tokens(s) + estimate_tokens(SUMMARY_PROMPT) > limit
            {
                break;
            }
            kept = if kept.is_empty() {
                s.clone()
            } else {
                format!("{s}\n\n{kept}")
            };
        }
        return Ok(kept);
    }
    summarize_text(provider, &joined).await
}

/// Where the kept part of `entries` starts: at least the last
/// `keep_recent`, and always at a person's message, so a turn (its
/// question, its tool calls and results) is never split between the
/// summary and what is kept. `None` when nothing before it is left to
/// summarize.
fn keep_from(entries: &[TranscriptEntry], budget: ContextBudget) -> Option<usize> {
    let mut at = budget.split(entries.len())?;
    while at > 0 && entries[at].role != Role::User {
        at -= 1;
    }
    (at > 0).then_some(at)
}

/// What a compaction did.
#[derive(Debug)]
pub struct Compacted {
    /// The session's new generation.
    pub session: SessionRecord,
    /// Messages folded into the summary.
    pub summarized: usize,
}

/// Compact the session under `key`: summarize all but the last
/// `keep_recent` entries of its generation and continue in a new
/// generation of the summary and those entries. First the agent gets one
/// bounded chance to save what should last from them with `memory_save`,
/// in the conversation `tools` describes (see
/// [`crate::memories::flush`]). `Ok(None)` when there is nothing to
/// summarize; an error when the summary failed (the session is left as it
/// was).
pub async fn compact(
    ctx: &TurnContext,
    key: &str,
    session: &SessionRecord,
    provider: &dyn Provider,
    budget: ContextBudget,
    tools: &ToolContext,
) -> Result<Option<Compacted>, CompactError> {
    let entries = ctx.store.transcript(&session.session_id, u32::MAX).await?;
    let Some(older) = keep_from(&entries, budget) else {
        return Ok(None);
    };
    crate::memories::flush::before_compaction(ctx, provider, tools, &entries[..older], budget)
        .await;
    let summary = summarize_within(provider, &entries[..older], budget)
        .await
        .map_err(CompactError::Summary)?;
    let now = now_ms();
    let mut kept = vec![TurnEntry {
        role: Role::System,
        content: format!("{SUMMARY_PREFIX}{summary}"),
        ingress_id: None,
    }];
    kept.extend(entries[older..].iter().map(|e| TurnEntry {
        role: e.role,
        content: e.content.clone(),
        ingress_id: e.ingress_id,
    }));
    // The new generation and its entries in one transaction: a crash
    // leaves the old generation or the new one, never an empty one.
    let Some(fresh) = ctx
        .store
        .session_compact(key, &session.session_id, kept, now)
        .await?
    else {
        tracing::info!(
            session_key = key,
            "the session was reset while it was compacted; left as it is"
        );
        return Ok(None);
    };
    tracing::info!(session_key = key, summarized = older, "session compacted");
    Ok(Some(Compacted {
        session: fresh,
        summarized: older,
    }))
}

/// Why a compaction did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// The model could not summarize.
    #[error("the summary failed: {0}")]
    Summary(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored tool call (a [`Role::ToolCall`] entry's content).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredCall {
    /// The provider's id of the call.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its arguments (JSON text).
    pub arguments: String,
}

/// A stored tool result (a [`Role::ToolResult`] entry's content).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredResult {
    /// The call it answers.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Whether it failed.
    pub is_error: bool,
    /// What it returned (cut to the context's share).
    pub output: String,
}

/// What the model is told of a call whose result was never stored: the
/// gateway stopped while it ran.
pub const INTERRUPTED_CALL: &str = "This tool call was interrupted: the gateway stopped while it ran, so it may or may not have taken effect. Check its effect before running it again, and tell the user if it matters.";

/// The messages of a transcript, as the model sees them. Consecutive tool
/// calls are one assistant step; each is followed by its result, or by a
/// note that it was interrupted when the gateway stopped before the result
/// was stored (providers refuse a call without a result). Results whose
/// call is not in `entries` (cut off by the history's limit) are left out.
pub fn to_messages(entries: Vec<TranscriptEntry>) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(entries.len());
    // Calls of the current step still waiting for their results.
    let mut open: Vec<String> = Vec::new();
    let close = |out: &mut Vec<ChatMessage>, open: &mut Vec<String>| {
        for id in open.drain(..) {
            out.push(ChatMessage::tool_result(id, INTERRUPTED_CALL));
        }
    };
    let mut previous: Option<Role> = None;
    for e in entries {
        let role = e.role;
        let before = previous.replace(role);
        match role {
            Role::ToolCall => {
                // A call after a result starts a new step: the calls of the
                // last one still open were cut short.
                if before == Some(Role::ToolResult) {
                    close(&mut out, &mut open);
                }
                let Ok(call) = serde_json::from_str::<StoredCall>(&e.content) else {
                    continue;
                };
                let call = switchboard_agents::ToolCall {
                    id: call.id,
                    name: call.name,
                    arguments: call.arguments,
                };
                open.push(call.id.clone());
                // Calls of one step: one assistant message.
                match out.last_mut() {
                    Some(m)
                        if m.role == MessageRole::Assistant
                            && !m.tool_calls.is_empty()
                            && before == Some(Role::ToolCall) =>
                    {
                        m.tool_calls.push(call);
                    }
                    _ => out.push(ChatMessage::assistant_calls("", vec![call])),
                }
            }
            Role::ToolResult => {
                let Ok(result) = serde_json::from_str::<StoredResult>(&e.content) else {
                    continue;
                };
                let Some(at) = open.iter().position(|id| *id == result.id) else {
                    continue;
                };
                open.remove(at);
                out.push(ChatMessage::tool_result(result.id, result.output));
            }
            _ => {
                close(&mut out, &mut open);
                out.push(match role {
                    Role::User => ChatMessage::user(e.content),
                    Role::System => ChatMessage::system(e.content),
                    _ => ChatMessage::assistant(e.content),
                });
            }
        }
    }
    close(&mut out, &mut open);
    out
}

/// Drop the oldest messages until `history` fits: the last resort when a
/// summary cannot be had.
pub fn truncate_to_fit(
    budget: ContextBudget,
    overhead: usize,
    history: &mut Vec<ChatMessage>,
) -> usize {
    let mut dropped = 0;
    while history.len() > 1 && budget.overflows(overhead, history) {
        history.remove(0);
        dropped += 1;
    }
    // Never start with a lone assistant message or a tool result whose
    // call was dropped: a call goes with its results.
    while history.len() > 1 && matches!(history[0].role, MessageRole::Assistant | MessageRole::Tool)
    {
        history.remove(0);
        dropped += 1;
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_arithmetic() {
        let b = ContextBudget {
            window: 1000,
            keep_recent: 4,
        };
        assert_eq!(b.prompt_limit(), 750);
        let small = vec![ChatMessage::user("x".repeat(400))];
        assert!(!b.overflows(100, &small));
        let big = vec![ChatMessage::user("x".repeat(3000))];
        assert!(b.overflows(0, &big));
        assert_eq!(b.split(10), Some(6));
        assert_eq!(b.split(4), None);
    }

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
    fn a_compaction_never_splits_a_turn() {
        let b = ContextBudget {
            window: 1000,
            keep_recent: 2,
        };
        let e = vec![
            entry(Role::User, "old"),
            entry(Role::Assistant, "old answer"),
            entry(Role::User, "do it"),
            entry(Role::ToolCall, "{}"),
            entry(Role::ToolResult, "{}"),
        ];
        // The last two are a call and its result: the kept part starts at
        // their question.
        assert_eq!(keep_from(&e, b), Some(2));
        // A history that is one turn has nothing to summarize.
        assert_eq!(keep_from(&e[2..], b), None);
    }

    #[test]
    fn a_long_history_is_summarized_in_pieces_that_each_fit() {
        let entries: Vec<_> = (0..40)
            .map(|i| entry(Role::User, &format!("{i} {}", "x".repeat(400))))
            .chain([entry(Role::ToolResult, &"y".repeat(100_000))])
            .collect();
        let limit = 1000;
        let parts = pieces(&entries, limit);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(
                estimate_tokens(p) + estimate_tokens(SUMMARY_PROMPT) <= limit,
                "a piece of {} tokens does not fit",
                estimate_tokens(p)
            );
        }
        assert!(parts.last().unwrap().contains("cut for the summary"));
        assert!(parts.len() <= MAX_PIECES);
        assert_eq!(
            pieces(&entries[..2], 100_000).len(),
            1,
            "a short history is one piece"
        );
    }

    #[test]
    fn stored_tool_steps_become_calls_with_their_results() {
        let call = |id: &str| {
            entry(
                Role::ToolCall,
                &format!(r#"{{"id":"{id}","name":"exec","arguments":"{{}}"}}"#),
            )
        };
        let result = |id: &str| {
            entry(
                Role::ToolResult,
                &format!(r#"{{"id":"{id}","name":"exec","is_error":false,"output":"out {id}"}}"#),
            )
        };
        // A step of two calls, one answered before the stop; a result whose
        // call was cut off by the history's limit comes first.
        let m = to_messages(vec![
            result("old"),
            entry(Role::User, "do it"),
            call("a"),
            call("b"),
            result("a"),
            entry(Role::User, "next"),
        ]);
        let roles: Vec<MessageRole> = m.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                MessageRole::User,
                MessageRole::Assistant,
                MessageRole::Tool,
                MessageRole::Tool,
                MessageRole::User
            ]
        );
        assert_eq!(m[1].tool_calls.len(), 2, "one step, two calls");
        // A step of two calls cut short after one result, then a new step
        // of the continued turn: the cut call is closed before it.
        let m2 = to_messages(vec![
            entry(Role::User, "go"),
            call("a"),
            call("b"),
            result("a"),
            call("c"),
            result("c"),
            entry(Role::Assistant, "done"),
        ]);
        let shape: Vec<(MessageRole, Option<&str>)> = m2
            .iter()
            .map(|m| (m.role, m.tool_call_id.as_deref()))
            .collect();
        assert_eq!(
            shape,
            [
                (MessageRole::User, None),
                (MessageRole::Assistant, None),
                (MessageRole::Tool, Some("a")),
                (MessageRole::Tool, Some("b")),
                (MessageRole::Assistant, None),
                (MessageRole::Tool, Some("c")),
                (MessageRole::Assistant, None),
            ]
        );
        assert_eq!(m2[3].content, INTERRUPTED_CALL);
        assert_eq!(m[2].content, "out a");
        assert_eq!(m[3].tool_call_id.as_deref(), Some("b"));
        assert_eq!(m[3].content, INTERRUPTED_CALL);
    }

    #[test]
    fn truncation_keeps_the_newest_and_starts_with_a_user() {
        let b = ContextBudget {
            window: 200,
            keep_recent: 2,
        };
        let mut h = vec![
            ChatMessage::user("a".repeat(200)),
            ChatMessage::assistant("b".repeat(200)),
            ChatMessage::user("c".repeat(100)),
            ChatMessage::assistant("d".repeat(100)),
            ChatMessage::user("newest"),
        ];
        let dropped = truncate_to_fit(b, 0, &mut h);
        assert!(dropped >= 2);
        assert_eq!(h.last().unwrap().content, "newest");
        assert_eq!(h[0].role, MessageRole::User);
        assert!(!b.overflows(0, &h));
    }
}
