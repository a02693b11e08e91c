//! One turn of a session: open the replies, check the budget, load and fit
//! the history, run the agent, stream its events out, and write the turn to
//! the store (before the reply goes out; the ingress rows are marked done once
//! it was delivered).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{Local, Offset};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use switchboard_agents::tools::{ApprovalGate, ToolContext};
use switchboard_agents::{AgentEvent, ChatMessage, TurnRequest, Usage, untrusted};
use switchboard_channel::{ReplyEvent, TokenUsage};
use switchboard_memory::{
    IngressStatus, Role, SessionRecord, StoreError, TokenCounts, TranscriptEntry, TurnBegin,
    TurnCommit, TurnEntry, TurnUsage,
};

use super::context::{
    StoredCall, StoredResult, compact, estimate_tokens, to_messages, truncate_to_fit,
};
use super::inbound::{fetch_attachments, user_text};
use super::replies::Replies;
use super::reset::ChatCommand;
use super::slot::RunSlot;
use super::{AgentSlot, Job, TurnContext, tool_context};
use crate::approvals::SessionApprover;
use crate::approvals::rules::{ChatDeciders, ChatParty};
use crate::clock::{local_midnight_ms, now_ms};
use crate::events::{EventKind, GatewayEvent};
use crate::telemetry::turn::TurnWatch;

fn publish(ctx: &TurnContext, key: &str, batch: &[Job], kind: EventKind) {
    if !ctx.events.has_subscribers() {
        return;
    }
    for job in batch {
        ctx.events.publish(GatewayEvent {
            session_key: key.to_string(),
            channel: job.inbound.channel.clone(),
            message_id: job.inbound.message_id.clone(),
            kind: kind.clone(),
        });
    }
}

pub(super) async fn run_batch(
    ctx: &Arc<TurnContext>,
    key: &str,
    mut batch: Vec<Job>,
    cancel: CancellationToken,
    run_slot: Arc<RunSlot>,
) {
    let Some(first) = batch.first() else { return };
    if let Some(command) = first.command() {
        if let Err(e) = run_command(ctx, key, first, command).await {
            tracing::error!(error = %e, "command failed");
        }
        return;
    }
    // The wait in the queue ends here; the turn is a child of the last
    // message's trace, linked from the others'.
    let span = {
        let last = batch
            .last()
            .map_or_else(tracing::Span::none, |j| j.span.clone());
        let span = tracing::info_span!(
            parent: &last,
            "turn",
            agent = %batch.last().map_or("", |j| j.agent.as_str()),
            session = tracing::field::Empty,
        );
        ctx.telemetry.record_session(&span, key);
        for job in &mut batch {
            job.queued = None;
            if job.span.id() != last.id() {
                span.follows_from(&job.span);
            }
        }
        span
    };
    for job in &mut batch {
        fetch_attachments(ctx, key, job)
            .instrument(span.clone())
            .await;
    }
    let turn = run_turn(ctx, key, &batch, cancel, run_slot, span.clone()).instrument(span);
    if let Err(e) = turn.await {
        // Rows stay pending and are answered again after a restart.
        tracing::error!(error = %e, "turn could not be stored");
    }
}

async fn run_command(
    ctx: &TurnContext,
    key: &str,
    job: &Job,
    command: ChatCommand,
) -> Result<(), StoreError> {
    let now = now_ms();
    ctx.store.ingress_started(job.ingress_id, now).await?;
    let text = match command {
        ChatCommand::Reset => {
            ctx.store
                .session_reset_as(key, &job.agent, job.session_subject().as_deref(), now)
                .await?;
            "Started a new session. Earlier messages are no longer part of the conversation."
                .to_string()
        }
        ChatCommand::Compact => {
            let s = ctx
                .store
                .session_open_as(key, &job.agent, job.session_subject().as_deref(), now)
                .await?;
            match ctx.agents.get(&job.agent) {
                None => format!("The agent `{}` is not configured.", job.agent),
                Some(slot) => {
                    let slot = &*slot;
                    let tools =
                        tool_context(key, &job.agent, slot, std::slice::from_ref(job), s.turns);
                    let provider = slot.agent.provider().as_ref();
                    match compact(ctx, key, &s, provider, slot.context, &tools).await {
                        Ok(Some(c)) => format!(
                            "Compacted {} earlier messages into a summary; the last {} are kept as they were.",
                            c.summarized, slot.context.keep_recent
                        ),
                        Ok(None) => {
                            "Nothing to compact yet: the conversation is still short.".to_string()
                        }
                        Err(e) => format!("Could not compact: {e}. The conversation is unchanged."),
                    }
                }
            }
        }
        ChatCommand::Status => {
            let s = ctx
                .store
                .session_open_as(key, &job.agent, job.session_subject().as_deref(), now)
                .await?;
            let slot = ctx.agents.get(&job.agent);
            let slot = slot.as_deref();
            let model = slot.map_or("?", |a| a.model.as_str());
            let used = ctx.store.usage_for_session(key, s.updated_at).await?;
            let mut text = format!(
                "Session {key}\nAgent: {} (model {model})\nTurns in this session: {}\nTokens in this session: {} in ({} cached), {} out",
                job.agent, s.turns, used.input_tokens, used.cached_tokens, used.output_tokens
            );
            if used.cost_micros > 0 {
                text.push_str(&format!(
                    "\nCost in this session: {}",
                    crate::telemetry::cost::format_usd(used.cost_micros)
                ));
            }
            if let Some(budget) = slot.and_then(|a| a.daily_token_budget) {
                let today = ctx
                    .store
                    .usage_for_agent(&job.agent, local_midnight_ms())
                    .await?
                    .total();
                text.push_str(&format!("\nAgent's tokens today: {today} of {budget}"));
            }
            text
        }
    };
    let mut replies = Replies::open(ctx, std::slice::from_ref(job)).await;
    replies
        .send(ReplyEvent::Notice { text: text.clone() })
        .await;
    publish(
        ctx,
        key,
        std::slice::from_ref(job),
        EventKind::Notice { text },
    );
    ctx.store
        .ingress_finish(job.ingress_id, IngressStatus::Done, None, now_ms())
        .await
}

async fn run_turn(
    ctx: &Arc<TurnContext>,
    key: &str,
    batch: &[Job],
    cancel: CancellationToken,
    run_slot: Arc<RunSlot>,
    span: tracing::Span,
) -> Result<(), StoreError> {
    let primary = batch.last().map(|j| j.agent.clone()).unwrap_or_default();
    let mut watch = TurnWatch::start(&ctx.telemetry, &primary, span.clone());
    let now = now_ms();
    let mut replies = Replies::open(ctx, batch).await;
    let Some(slot) = ctx.agents.get(&primary) else {
        let message = format!(
            "The agent `{primary}` is not configured any more; ask the operator to check the bindings."
        );
        replies
            .send(ReplyEvent::Failed {
                message: message.clone(),
            })
            .await;
        return commit(
            ctx,
            key,
            batch,
            None,
            Ending::new(IngressStatus::Failed).error(message),
        )
        .await;
    };
    // The agent as it was when the turn began: a reload that changes it
    // applies from the next turn.
    let slot = &*slot;
    if let Some(budget) = slot.daily_token_budget {
        let used = ctx
            .store
            .usage_for_agent(&primary, local_midnight_ms())
            .await?
            .total();
        if used >= i64::try_from(budget).unwrap_or(i64::MAX) {
            let message = format!(
                "Today's token budget of agent `{primary}` ({budget} tokens) is spent ({used} used); it renews at midnight. The operator can raise agents.{primary}.daily_token_budget."
            );
            tracing::warn!(agent = %primary, used, budget, "daily token budget spent");
            commit(
                ctx,
                key,
                batch,
                None,
                Ending::new(IngressStatus::Failed).error("daily token budget spent".into()),
            )
            .await?;
            publish(
                ctx,
                key,
                batch,
                EventKind::Error {
                    message: message.clone(),
                },
            );
            replies.send(ReplyEvent::Failed { message }).await;
            return Ok(());
        }
    }
    let subject = batch.first().and_then(Job::session_subject);
    let mut session = ctx
        .store
        .session_open_as(key, &primary, subject.as_deref(), now)
        .await?;
    let offset = Local::now().offset().fix();
    // The history is read once; what this turn appends is added to it here
    // rather than read back.
    let mut recent = ctx
        .store
        .transcript(&session.session_id, slot.history_limit)
        .await?;
    // A turn continued after a stop keeps its generation, where its
    // messages and tool calls are: a reset would run them again.
    let mut in_place = stored_in_place(ctx, &session, slot, batch, &recent).await?;
    if in_place.is_empty()
        && session.turns > 0
        && ctx.reset.is_stale(session.last_active_at, now, offset)
    {
        session = ctx
            .store
            .session_reset_as(key, &primary, subject.as_deref(), now)
            .await?;
        recent.clear();
        in_place.clear();
    }
    begin(ctx, &session, slot, batch, &in_place, &mut recent, now).await?;
    replies.send(ReplyEvent::Working).await;
    publish(ctx, key, batch, EventKind::Started);
    let mut context = tool_context(key, &primary, slot, batch, session.turns);
    context.traceparent = crate::telemetry::traceparent(&span);
    let tools = ctx.tools.select(&slot.tools, &context);
    let approval = approval_gate(ctx, key, slot, batch, run_slot);
    let asked: Vec<&str> = batch.iter().map(|j| j.inbound.text.as_str()).collect();
    let recalled =
        crate::memories::recall_for_turn(ctx.memories.as_ref(), &context, &asked.join("\n")).await;
    let overhead = estimate_tokens(slot.agent.system_prompt())
        + (!recalled.is_empty())
            .then(|| estimate_tokens(&recalled))
            .unwrap_or(0)
        + tools
            .iter()
            .map(|t| {
                // The spec is made once; its schema is serialized here
                // each turn to estimate its size.
                let spec = t.shared_spec();
                estimate_tokens(&spec.parameters.to_string()) + estimate_tokens(&spec.description)
            })
            .sum::<usize>();
    let mut history = to_messages(recent);
    if slot.context.overflows(overhead, &history) {
        if let Some(s) = compact_or_log(ctx, key, &session, slot, &context).await {
            session = s;
            history = load_history(ctx, &session, slot, batch).await?;
        }
        let dropped = truncate_to_fit(slot.context, overhead, &mut history);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "history still too long after compaction; oldest messages left out"
            );
        }
    }
    // A stranger's message or an attachment taints the turn from its start.
    let tainted_by = batch
        .iter()
        .find_map(|j| untrusted::find(&user_text(ctx, j)));
    // About a quarter of the window (four bytes a token).
    let max_tool_result_chars = slot.context.window.max(1024);
    let start = |history| {
        let request = TurnRequest {
            history,
            tools: tools.clone(),
            context: context.clone(),
            approval: approval.clone(),
            max_tool_result_chars: Some(max_tool_result_chars),
            system_suffix: recalled.clone(),
            tainted_by: tainted_by.clone(),
        };
        slot.agent.run(request, cancel.clone())
    };
    let mut overflow_retried = false;
    // Once a tool ran, starting the turn over would run it again.
    let mut tools_ran = false;
    let mut stream = start(history);
    let mut usage = Usage::default();
    while let Some(event) = stream.next().await {
        match event {
            AgentEvent::TextDelta(text) => {
                watch.text();
                publish(ctx, key, batch, EventKind::Delta { text: text.clone() });
                replies.send(ReplyEvent::Delta { text }).await;
            }
            AgentEvent::Usage(u) => usage = u,
            AgentEvent::ToolCall(call) => {
                tools_ran = true;
                tracing::info!(tool = %call.name, "tool call");
                // Stored as it is made, so a turn continued after a crash
                // knows it was made.
                let stored = StoredCall {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                };
                append(ctx, &session, Role::ToolCall, &stored, batch).await?;
                publish(
                    ctx,
                    key,
                    batch,
                    EventKind::ToolCall {
                        id: call.id,
                        name: call.name,
                        arguments: call.arguments,
                    },
                );
                replies.send(ReplyEvent::Working).await;
            }
            AgentEvent::ToolResult {
                id,
                name,
                is_error,
                output,
                elapsed,
            } => {
                let known = tools.iter().any(|t| t.shared_spec().name == name);
                watch.tool(&name, known, is_error, elapsed);
                let stored = StoredResult {
                    id: id.clone(),
                    name: name.clone(),
                    is_error,
                    output: switchboard_agents::cut_tool_result(
                        output.clone(),
                        Some(max_tool_result_chars),
                    ),
                };
                append(ctx, &session, Role::ToolResult, &stored, batch).await?;
                publish(
                    ctx,
                    key,
                    batch,
                    EventKind::ToolResult {
                        id,
                        name,
                        is_error,
                        output,
                    },
                );
            }
            AgentEvent::Done(outcome) => {
                let text = if outcome.text.trim().is_empty() {
                    "(the model returned an empty answer)".to_string()
                } else {
                    outcome.text
                };
                let u = outcome.usage;
                let usage = TokenUsage {
                    input_tokens: u.input_tokens,
                    output_tokens: u.output_tokens,
                    cached_tokens: u.cached_tokens,
                };
                // Store the turn first, so whoever reads the session after
                // the reply sees it; the rows stay pending until the reply
                // is delivered, and a restart in between re-delivers the
                // stored answer instead of asking the model again.
                let ending = Ending::new(IngressStatus::Pending)
                    .answer(Some(text.clone()))
                    .usage(outcome.usage);
                commit(ctx, key, batch, Some(&session.session_id), ending).await?;
                ctx.turns_done.fetch_add(1, Ordering::Relaxed);
                watch.end("ok");
                publish(
                    ctx,
                    key,
                    batch,
                    EventKind::Done {
                        text: text.clone(),
                        usage: outcome.usage,
                    },
                );
                return replies.finish(ctx, batch, text, usage).await;
            }
            AgentEvent::Error {
                context_overflow: true,
                ref partial,
                ..
            } if !overflow_retried && !tools_ran && partial.is_empty() => {
                // The provider says the prompt is too long: compact once
                // and try once more, never more.
                overflow_retried = true;
                tracing::warn!(
                    "context overflow reported by the provider; compacting and retrying once"
                );
                if let Some(s) = compact_or_log(ctx, key, &session, slot, &context).await {
                    session = s;
                }
                let mut history = load_history(ctx, &session, slot, batch).await?;
                truncate_to_fit(slot.context, overhead, &mut history);
                stream = start(history);
            }
            AgentEvent::Error {
                message, partial, ..
            } => {
                tracing::warn!(error = %message, "turn failed");
                let shown = format!("Sorry, I couldn't answer: {message}");
                ctx.turns_failed.fetch_add(1, Ordering::Relaxed);
                watch.end("error");
                let partial = (!partial.is_empty()).then_some(partial);
                let ending = Ending::new(IngressStatus::Failed)
                    .error(message)
                    .answer(partial)
                    .usage(usage);
                commit(ctx, key, batch, Some(&session.session_id), ending).await?;
                publish(
                    ctx,
                    key,
                    batch,
                    EventKind::Error {
                        message: shown.clone(),
                    },
                );
                replies.send(ReplyEvent::Failed { message: shown }).await;
                return Ok(());
            }
            AgentEvent::Cancelled { partial } => {
                watch.end("cancelled");
                if ctx.hard_stop.is_cancelled() {
                    // Shutdown: store nothing; the rows stay pending and are
                    // answered after the restart.
                    tracing::info!("turn cancelled by shutdown; it will be answered after restart");
                    return Ok(());
                }
                let text = if partial.is_empty() {
                    "(stopped before finishing)".to_string()
                } else {
                    format!("{partial}\n\n(stopped before finishing)")
                };
                let ending = Ending::new(IngressStatus::Done)
                    .answer(Some(text.clone()))
                    .usage(usage);
                commit(ctx, key, batch, Some(&session.session_id), ending).await?;
                publish(
                    ctx,
                    key,
                    batch,
                    EventKind::Done {
                        text: text.clone(),
                        usage,
                    },
                );
                replies.send(ReplyEvent::Done { text, usage: None }).await;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The turn's approval gate: the agent's rules, and a desk clerk who
/// announces requests to the conversation, knows who may decide them from a
/// chat (the agent's approvers, or the asker in their DM), and gives the
/// turn's run slot back while a call waits.
fn approval_gate(
    ctx: &TurnContext,
    key: &str,
    slot: &AgentSlot,
    batch: &[Job],
    run_slot: Arc<RunSlot>,
) -> Option<ApprovalGate> {
    let asker = batch.last()?;
    let per_message = ctx
        .channels
        .get(&asker.inbound.channel, &asker.inbound.account)
        .is_some_and(|c| c.reply_per_message());
    Some(ApprovalGate {
        policy: slot.approvals.clone(),
        approver: Arc::new(SessionApprover {
            desk: ctx.approvals.clone(),
            announce_to: (!per_message).then(|| asker.inbound.reply_target()),
            timeout: slot.approval_timeout,
            message_id: asker.inbound.message_id.clone(),
            deciders: ChatDeciders {
                agent: asker.agent.clone(),
                approvers: slot.approvers.clone(),
                asker: ChatParty {
                    channel: asker.inbound.channel.clone(),
                    sender_id: asker.inbound.sender.id.clone(),
                    chat_kind: asker.inbound.chat_kind,
                    session_key: key.to_string(),
                },
            },
            run_slot: Some(run_slot),
            telemetry: ctx.telemetry.clone(),
        }),
    })
}

/// How a turn ended, as the store records it.
struct Ending {
    status: IngressStatus,
    error: Option<String>,
    answer: Option<String>,
    usage: Option<Usage>,
}

impl Ending {
    fn new(status: IngressStatus) -> Self {
        Self {
            status,
            error: None,
            answer: None,
            usage: None,
        }
    }
    fn error(mut self, e: String) -> Self {
        self.error = Some(e);
        self
    }
    fn answer(mut self, a: Option<String>) -> Self {
        self.answer = a;
        self
    }
    fn usage(mut self, u: Usage) -> Self {
        self.usage = Some(u);
        self
    }
}

/// The session generation's recent transcript, which ends with the batch's
/// messages (stored when the turn started) and whatever tool calls and
/// results an earlier run of this turn stored before the gateway stopped.
async fn load_history(
    ctx: &TurnContext,
    session: &SessionRecord,
    slot: &AgentSlot,
    _batch: &[Job],
) -> Result<Vec<ChatMessage>, StoreError> {
    Ok(to_messages(
        ctx.store
            .transcript(&session.session_id, slot.history_limit)
            .await?,
    ))
}

/// The batch's rows whose messages an earlier run of this turn stored at
/// the end of the generation (after its last answer): the turn continues
/// there. `recent` is the generation's last `history_limit` entries; only
/// when it holds no answer and may not be all of the generation is more
/// read.
async fn stored_in_place(
    ctx: &TurnContext,
    session: &SessionRecord,
    slot: &AgentSlot,
    batch: &[Job],
    recent: &[TranscriptEntry],
) -> Result<Vec<i64>, StoreError> {
    let answered = recent.iter().rposition(|e| e.role == Role::Assistant);
    let longer;
    let (recent, answered) = if answered.is_none()
        && recent.len() >= slot.history_limit as usize
        && slot.history_limit < 256
    {
        longer = ctx.store.transcript(&session.session_id, 256).await?;
        let answered = longer.iter().rposition(|e| e.role == Role::Assistant);
        (&longer[..], answered)
    } else {
        (recent, answered)
    };
    let after_last_answer = answered.map_or(0, |i| i + 1);
    Ok(batch
        .iter()
        .map(|j| j.ingress_id)
        .filter(|id| {
            recent[after_last_answer..]
                .iter()
                .any(|e| e.role == Role::User && e.ingress_id == Some(*id))
        })
        .collect())
}

/// Start the turn in one write: count an attempt on each of the batch's
/// rows, and store its messages in the session generation, unless an
/// earlier run of the same turn (cut short by a crash) stored them at its
/// end already (`in_place`). One stored before a later answer (its turn
/// never finished, others went on) is stored again, so the history ends
/// with the question. What is stored is added to `recent`, which keeps
/// its last `history_limit` entries.
async fn begin(
    ctx: &TurnContext,
    session: &SessionRecord,
    slot: &AgentSlot,
    batch: &[Job],
    in_place: &[i64],
    recent: &mut Vec<TranscriptEntry>,
    now: i64,
) -> Result<(), StoreError> {
    let entries: Vec<TurnEntry> = batch
        .iter()
        .filter(|j| !in_place.contains(&j.ingress_id))
        .map(|job| TurnEntry {
            role: Role::User,
            content: user_text(ctx, job),
            ingress_id: Some(job.ingress_id),
        })
        .collect();
    ctx.store
        .turn_begin(TurnBegin {
            session_id: session.session_id.clone(),
            ingress_ids: batch.iter().map(|j| j.ingress_id).collect(),
            entries: entries.clone(),
            now,
        })
        .await?;
    recent.extend(entries.into_iter().map(|e| TranscriptEntry {
        seq: 0,
        session_id: session.session_id.clone(),
        role: e.role,
        content: e.content,
        ingress_id: e.ingress_id,
        created_at: now,
    }));
    let keep = slot.history_limit as usize;
    if recent.len() > keep {
        recent.drain(..recent.len() - keep);
    }
    Ok(())
}

/// Store a tool call or result of the running turn as it happens.
async fn append(
    ctx: &TurnContext,
    session: &SessionRecord,
    role: Role,
    content: &impl serde::Serialize,
    batch: &[Job],
) -> Result<(), StoreError> {
    let content = serde_json::to_string(content)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode a tool entry: {e}")))?;
    let entry = TurnEntry {
        role,
        content,
        // The batch's first row: its answer is found from each of its rows
        // and never from an earlier one (`Store::answer_for_ingress`).
        ingress_id: batch.first().map(|j| j.ingress_id),
    };
    ctx.store
        .transcript_append(&session.session_id, entry, now_ms())
        .await
}

/// Compact the session; a failed summary is logged and the session left as
/// it was.
async fn compact_or_log(
    ctx: &TurnContext,
    key: &str,
    session: &SessionRecord,
    slot: &AgentSlot,
    context: &ToolContext,
) -> Option<SessionRecord> {
    match compact(
        ctx,
        key,
        session,
        slot.agent.provider().as_ref(),
        slot.context,
        context,
    )
    .await
    {
        Ok(Some(c)) => Some(c.session),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "compaction failed");
            None
        }
    }
}

/// Write the end of a turn. With `session_id` the turn ran in that
/// generation and its user messages are stored already; without, it ended
/// before it started (no agent, budget spent) and they are stored now.
async fn commit(
    ctx: &TurnContext,
    key: &str,
    batch: &[Job],
    session_id: Option<&str>,
    ending: Ending,
) -> Result<(), StoreError> {
    let users_stored = session_id.is_some();
    let Ending {
        status,
        error,
        answer,
        usage,
    } = ending;
    let now = now_ms();
    let session_id = match session_id {
        Some(id) => id.to_string(),
        None => {
            let agent = batch.last().map_or("", |j| j.agent.as_str());
            ctx.store.session_open(key, agent, now).await?.session_id
        }
    };
    let mut entries: Vec<TurnEntry> = batch
        .iter()
        .filter(|_| !users_stored)
        .map(|j| TurnEntry {
            role: Role::User,
            content: user_text(ctx, j),
            ingress_id: Some(j.ingress_id),
        })
        .collect();
    if let Some(answer) = answer {
        let ingress_id = batch.first().map(|j| j.ingress_id);
        entries.push(TurnEntry {
            role: Role::Assistant,
            content: answer,
            ingress_id,
        });
    }
    ctx.store
        .commit_turn(TurnCommit {
            session_id,
            entries,
            ingress_ids: batch.iter().map(|j| j.ingress_id).collect(),
            status,
            error,
            now,
            usage: usage.map(|u| TurnUsage {
                agent: batch.last().map(|j| j.agent.clone()).unwrap_or_default(),
                session_key: key.to_string(),
                tokens: TokenCounts {
                    input_tokens: i64::try_from(u.input_tokens).unwrap_or(i64::MAX),
                    output_tokens: i64::try_from(u.output_tokens).unwrap_or(i64::MAX),
                    cached_tokens: i64::try_from(u.cached_tokens).unwrap_or(i64::MAX),
                    turns: 1,
                    cost_micros: i64::try_from(u.cost_micros).unwrap_or(i64::MAX),
                },
            }),
        })
        .await
}
