//! One turn, measured: `switchboard_turns_total`, the turn-duration
//! histogram (its exemplar the turn's trace), time to first token, and the
//! tool calls it made.

use std::time::{Duration, Instant};

use super::Telemetry;
use super::metrics::{AgentLabels, ToolLabels, ToolNameLabels, TraceLabels, TurnLabels};

/// A running turn's clock. Ended once with its outcome; a turn that ends
/// otherwise (its store failed) counts as `error`.
pub struct TurnWatch<'a> {
    telemetry: &'a Telemetry,
    agent: String,
    span: tracing::Span,
    started: Instant,
    first_token: bool,
    ended: bool,
}

impl<'a> TurnWatch<'a> {
    /// A turn of `agent`, running in `span`, starting now.
    pub fn start(telemetry: &'a Telemetry, agent: &str, span: tracing::Span) -> Self {
        Self {
            telemetry,
            agent: agent.to_string(),
            span,
            started: Instant::now(),
            first_token: false,
            ended: false,
        }
    }

    /// Answer text arrived (the first time counts).
    pub fn text(&mut self) {
        if self.first_token {
            return;
        }
        self.first_token = true;
        self.telemetry
            .metrics
            .time_to_first_token
            .get_or_create(&AgentLabels {
                agent: self.agent.clone(),
            })
            .observe(self.started.elapsed().as_secs_f64());
    }

    /// A tool call finished; `known` says whether the tool is one the turn
    /// offered (a name the model made up counts as `unknown`, so a model
    /// cannot add series).
    pub fn tool(&self, name: &str, known: bool, is_error: bool, elapsed: Duration) {
        let tool = if known { name } else { "unknown" }.to_string();
        let m = &self.telemetry.metrics;
        m.tool_calls
            .get_or_create(&ToolLabels {
                tool: tool.clone(),
                outcome: if is_error { "error" } else { "ok" },
            })
            .inc();
        m.tool_duration
            .get_or_create(&ToolNameLabels { tool })
            .observe(elapsed.as_secs_f64());
    }

    /// The turn ended: `ok`, `error` or `cancelled`.
    pub fn end(&mut self, outcome: &'static str) {
        if self.ended {
            return;
        }
        self.ended = true;
        let elapsed = self.started.elapsed();
        tracing::debug!(
            agent = %self.agent,
            outcome,
            ms = elapsed.as_millis() as u64,
            "turn finished"
        );
        let m = &self.telemetry.metrics;
        m.turns
            .get_or_create(&TurnLabels {
                agent: self.agent.clone(),
                outcome,
            })
            .inc();
        let exemplar = super::trace_id(&self.span).map(|trace_id| TraceLabels { trace_id });
        m.turn_duration
            .get_or_create(&AgentLabels {
                agent: self.agent.clone(),
            })
            .observe(elapsed.as_secs_f64(), exemplar, None);
    }
}

impl Drop for TurnWatch<'_> {
    fn drop(&mut self) {
        self.end("error");
    }
}
