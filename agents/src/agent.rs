//! The agent loop: system prompt + history + new message → model; tool
//! calls of a step run concurrently and their results go back to the model,
//! up to a step limit; text streams out as it comes.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::provider::http::AbortOnDrop;
use crate::tools::{
    ApprovalGate, ApprovalRequest, Decision, Tool, ToolContext, ToolOutput, run_call,
};
use crate::{ChatMessage, ModelRequest, Provider, ProviderEvent, ToolCall, Usage};

/// What a turn yields, in order: deltas, tool calls and results, usage,
/// then exactly one of `Done`, `Error` or `Cancelled`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// More answer text.
    TextDelta(String),
    /// The model asked for a tool call (about to run).
    ToolCall(ToolCall),
    /// A tool call finished.
    ToolResult {
        /// The call's id.
        id: String,
        /// The tool's name.
        name: String,
        /// What it returned.
        output: String,
        /// Whether it failed.
        is_error: bool,
        /// How long the call took (its wait for approval included).
        elapsed: std::time::Duration,
    },
    /// Tokens used so far by the turn's model calls.
    Usage(Usage),
    /// The answer is complete.
    Done(TurnOutcome),
    /// The turn failed; `message` is written for the user.
    Error {
        /// What went wrong and what to do.
        message: String,
        /// Whether retrying later may help.
        retryable: bool,
        /// Whether the prompt did not fit the model's context window.
        context_overflow: bool,
        /// What had been streamed before the failure.
        partial: String,
    },
    /// The turn was cancelled; `partial` is what had been streamed.
    Cancelled {
        /// What had been streamed before cancellation.
        partial: String,
    },
}

impl AgentEvent {
    /// Whether this event ends the turn.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            AgentEvent::Done(_) | AgentEvent::Error { .. } | AgentEvent::Cancelled { .. }
        )
    }
}

/// The result of a completed turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnOutcome {
    /// The whole answer.
    pub text: String,
    /// Tokens used.
    pub usage: Usage,
    /// Model calls made (one plus one per tool step).
    pub steps: u32,
}

/// What one turn works with.
#[derive(Clone, Default)]
pub struct TurnRequest {
    /// The conversation so far, ending with the new user message(s).
    pub history: Vec<ChatMessage>,
    /// The tools this conversation may use (already filtered by policy).
    pub tools: Vec<Arc<dyn Tool>>,
    /// What tools know of the conversation.
    pub context: ToolContext,
    /// Which calls wait for an operator, and who decides.
    pub approval: Option<ApprovalGate>,
    /// Most bytes of one tool result the model is shown (a share of
    /// its context window); longer results are cut and the cut said.
    /// `None`: no cut.
    pub max_tool_result_chars: Option<usize>,
    /// Text added to the agent's system prompt for this turn only (the
    /// memories recalled for the message); empty: none.
    pub system_suffix: String,
    /// The untrusted content the turn's new messages hold (a stranger's
    /// message, an attachment), which taints it from its start: dangerous
    /// calls then ask (see `ApprovalPolicy::needs_approval_in`). A tool
    /// result marked untrusted taints the rest of the turn as well.
    pub tainted_by: Option<String>,
}

/// `content` cut to at most `max` bytes (on a character boundary),
/// with a note that tells the model what was left out and what to do. Text
/// marked untrusted is cut inside its tag, which stays closed.
pub fn cut_tool_result(content: String, max: Option<usize>) -> String {
    let Some(max) = max else { return content };
    if content.len() <= max {
        return content;
    }
    crate::untrusted::cut_inside(content, max, cut_plain)
}

fn cut_plain(content: String, max: usize) -> String {
    if content.len() <= max {
        return content;
    }
    let note = format!(
        "\n\n[cut: this result was {} bytes; only the first {} fit in the context window. Ask for a smaller part (an offset, a narrower command) if you need the rest.]",
        content.len(),
        max
    );
    let mut end = max.saturating_sub(note.len()).min(content.len());
    while !content.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = content;
    cut.truncate(end);
    cut.push_str(&note);
    cut
}

/// The default limit on tool steps per turn.
pub const DEFAULT_MAX_STEPS: u32 = 8;

/// One configured agent.
#[derive(Clone)]
pub struct Agent {
    name: String,
    system_prompt: String,
    provider: Arc<dyn Provider>,
    max_steps: u32,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field("provider", &self.provider.name())
            .field("model", &self.provider.model())
            .field("max_steps", &self.max_steps)
            .finish()
    }
}

impl Agent {
    /// An agent answering with `provider` under `system_prompt`.
    pub fn new(
        name: impl Into<String>,
        system_prompt: impl Into<String>,
        provider: Arc<dyn Provider>,
    ) -> Self {
        Self {
            name: name.into(),
            system_prompt: system_prompt.into(),
            provider,
            max_steps: DEFAULT_MAX_STEPS,
        }
    }

    /// Limit tool steps per turn.
    pub fn with_max_steps(mut self, steps: u32) -> Self {
        self.max_steps = steps;
        self
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its system prompt.
    pub fn system_prompt(&self) -> &str {
        &self.system_prompt
    }

    /// The provider it uses.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// Run one turn without tools over `history`.
    pub fn turn(
        &self,
        history: Vec<ChatMessage>,
        cancel: CancellationToken,
    ) -> BoxStream<'static, AgentEvent> {
        self.run(
            TurnRequest {
                history,
                ..TurnRequest::default()
            },
            cancel,
        )
    }

    /// Run one turn. The stream ends after its final event; cancelling
    /// `cancel` ends it with [`AgentEvent::Cancelled`] (running tool calls
    /// are dropped).
    pub fn run(
        &self,
        request: TurnRequest,
        cancel: CancellationToken,
    ) -> BoxStream<'static, AgentEvent> {
        let mut messages = Vec::with_capacity(request.history.len() + 1);
        let system = match (
            self.system_prompt.is_empty(),
            request.system_suffix.is_empty(),
        ) {
            (_, true) => self.system_prompt.clone(),
            (true, false) => request.system_suffix.clone(),
            (false, false) => format!("{}\n\n{}", self.system_prompt, request.system_suffix),
        };
        if !system.is_empty() {
            messages.push(ChatMessage::system(system));
        }
        messages.extend(request.history);
        let run = TurnLoop {
            tainted_by: request.tainted_by,
            provider: self.provider.clone(),
            tools: request.tools,
            context: request.context,
            approval: request.approval,
            max_tool_result_chars: request.max_tool_result_chars,
            max_steps: self.max_steps,
            messages,
            text: String::new(),
            usage: Usage::default(),
        };
        let (tx, rx) = mpsc::channel(64);
        // In the caller's span (the turn's): model calls and tool calls
        // are its children.
        let task = tokio::spawn(
            async move {
                let last = tokio::select! {
                    biased;
                    () = cancel.cancelled() => None,
                    last = run.run(&tx) => Some(last),
                };
                let event = match last {
                    Some(event) => event,
                    None => AgentEvent::Cancelled {
                        partial: String::new(),
                    },
                };
                let _ = tx.send(event).await;
            }
            .in_current_span(),
        );
        let guard = AbortOnDrop(task);
        futures::stream::unfold(
            (rx, guard, String::new()),
            |(mut rx, guard, mut seen)| async move {
                let event = rx.recv().await?;
                // A cancellation reports what had been streamed.
                let event = match event {
                    AgentEvent::TextDelta(ref d) => {
                        seen.push_str(d);
                        event
                    }
                    AgentEvent::Cancelled { .. } => AgentEvent::Cancelled {
                        partial: seen.clone(),
                    },
                    other => other,
                };
                Some((event, (rx, guard, seen)))
            },
        )
        .boxed()
    }
}

struct TurnLoop {
    provider: Arc<dyn Provider>,
    tools: Vec<Arc<dyn Tool>>,
    context: ToolContext,
    approval: Option<ApprovalGate>,
    max_tool_result_chars: Option<usize>,
    max_steps: u32,
    messages: Vec<ChatMessage>,
    text: String,
    usage: Usage,
    /// The untrusted content the turn has read, once it has.
    tainted_by: Option<String>,
}

impl TurnLoop {
    /// Run `call` in its own span (`execute_tool <name>`, as OpenTelemetry's
    /// GenAI conventions name it), timed.
    async fn timed_call(&self, call: &ToolCall) -> (ToolOutput, std::time::Duration) {
        let span = tracing::info_span!(
            "execute_tool",
            otel.name = %format_args!("execute_tool {}", call.name),
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = %call.name,
            gen_ai.tool.call.id = %call.id,
            "error.type" = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let out = self.approved_call(call).instrument(span.clone()).await;
        if out.is_error {
            span.record("error.type", "tool_error");
        }
        (out, started.elapsed())
    }

    /// Run `call`, first asking for approval when the gate says so.
    async fn approved_call(&self, call: &ToolCall) -> ToolOutput {
        let tainted = self.tainted_by.is_some();
        if let Some(gate) = self
            .approval
            .as_ref()
            .filter(|g| g.policy.needs_approval_in(call, tainted))
        {
            let request = ApprovalRequest {
                call: call.clone(),
                context: self.context.clone(),
                tainted_by: self
                    .tainted_by
                    .clone()
                    .filter(|_| !gate.policy.needs_approval(call)),
            };
            let because = request
                .tainted_by
                .as_ref()
                .map(|what| format!(" (this turn has read {what})"))
                .unwrap_or_default();
            if let Decision::Denied { by } = gate.approver.decide(request).await {
                let why = if by == "timeout" {
                    "nobody answered the approval request in time".to_string()
                } else {
                    format!("{by} denied it")
                };
                return ToolOutput::error(format!(
                    "This call of `{}` needs the operator's approval{because} and was not run: {why}. Do not retry it unasked; tell the user.",
                    call.name
                ));
            }
        }
        run_call(
            &self.tools,
            &call.name,
            &call.arguments,
            self.context.clone(),
        )
        .await
    }

    /// Run to the end; returns the final event (sends the others).
    async fn run(mut self, tx: &mpsc::Sender<AgentEvent>) -> AgentEvent {
        let specs: Vec<_> = self.tools.iter().map(|t| t.shared_spec()).collect();
        let mut step = 0u32;
        loop {
            step += 1;
            let request = ModelRequest {
                messages: self.messages.clone(),
                tools: specs.clone(),
            };
            let mut stream = self.provider.stream(request);
            let mut step_text = String::new();
            let mut calls = Vec::new();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ProviderEvent::TextDelta(d)) => {
                        step_text.push_str(&d);
                        self.text.push_str(&d);
                        let _ = tx.send(AgentEvent::TextDelta(d)).await;
                    }
                    Ok(ProviderEvent::ToolCall(c)) => calls.push(c),
                    Ok(ProviderEvent::Usage(u)) => {
                        self.usage.add(u);
                        let _ = tx.send(AgentEvent::Usage(self.usage)).await;
                    }
                    Err(e) => {
                        return AgentEvent::Error {
                            message: e.to_string(),
                            retryable: e.is_retryable(),
                            context_overflow: e.is_context_overflow(),
                            partial: std::mem::take(&mut self.text),
                        };
                    }
                }
            }
            if calls.is_empty() {
                return AgentEvent::Done(TurnOutcome {
                    text: self.text,
                    usage: self.usage,
                    steps: step,
                });
            }
            if step > self.max_steps {
                let note = format!(
                    "\n\n(I stopped after {} tool steps without finishing; ask me to continue if you want more.)",
                    self.max_steps
                );
                self.text.push_str(&note);
                let _ = tx.send(AgentEvent::TextDelta(note)).await;
                return AgentEvent::Done(TurnOutcome {
                    text: self.text,
                    usage: self.usage,
                    steps: step,
                });
            }
            self.messages
                .push(ChatMessage::assistant_calls(step_text, calls.clone()));
            for c in &calls {
                let _ = tx.send(AgentEvent::ToolCall(c.clone())).await;
            }
            // Independent calls of one step run concurrently; a gated call
            // waits for its decision without holding up the others.
            let runs = calls.iter().map(|c| self.timed_call(c));
            let outputs: Vec<(ToolOutput, std::time::Duration)> =
                futures::future::join_all(runs).await;
            for (c, (out, elapsed)) in calls.iter().zip(outputs) {
                let _ = tx
                    .send(AgentEvent::ToolResult {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        output: out.content.clone(),
                        is_error: out.is_error,
                        elapsed,
                    })
                    .await;
                if self.tainted_by.is_none() {
                    self.tainted_by = crate::untrusted::find(&out.content);
                }
                let content = cut_tool_result(out.content, self.max_tool_result_chars);
                self.messages
                    .push(ChatMessage::tool_result(c.id.clone(), content));
            }
        }
    }
}
