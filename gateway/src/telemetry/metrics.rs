//! The gateway's metrics: one explicit `prometheus-client` registry, the
//! families an operator graphs, and their exposition in the Prometheus text
//! format (0.0.4) or OpenMetrics (with exemplars).
//!
//! No label holds a session key, a user id or message text: labels are
//! channel and account names, agent, provider, model and tool names from
//! the config, and small fixed vocabularies (reasons, outcomes, statuses),
//! so the number of series is bounded whatever the traffic.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `{channel, account}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    /// The channel (`telegram`, `webchat`, ...).
    pub channel: String,
    /// The channel account's name in the config.
    pub account: String,
}

/// `{channel, reason}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// The channel.
    pub channel: String,
    /// `policy`, `pairing`, `rate_limit`, `duplicate` or `busy`.
    pub reason: &'static str,
}

/// `{agent}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabels {
    /// The agent's name.
    pub agent: String,
}

/// `{agent, outcome}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TurnLabels {
    /// The agent's name.
    pub agent: String,
    /// `ok`, `error` or `cancelled`.
    pub outcome: &'static str,
}

/// `{provider, model, status}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The provider's name in the config.
    pub provider: String,
    /// The model asked.
    pub model: String,
    /// `ok`, an HTTP status code, `timeout`, `unreachable`, `protocol` or
    /// `cancelled`.
    pub status: String,
}

/// `{provider, model, kind}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The provider's name in the config.
    pub provider: String,
    /// The model asked.
    pub model: String,
    /// `input`, `output` or `cached`.
    pub kind: &'static str,
}

/// `{provider, model}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// The provider's name in the config.
    pub provider: String,
    /// The model asked.
    pub model: String,
}

/// `{tool, outcome}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    /// The tool's name.
    pub tool: String,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// `{tool}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolNameLabels {
    /// The tool's name.
    pub tool: String,
}

/// `{outcome}`
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `approved`, `denied` or `timeout`.
    pub outcome: &'static str,
}

/// An exemplar's labels: the trace of an example observation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceLabels {
    /// The trace id, 32 hex digits.
    pub trace_id: String,
}

/// The `reason`s of `switchboard_messages_rejected_total`.
pub const REJECT_REASONS: [&str; 5] = ["policy", "pairing", "rate_limit", "duplicate", "busy"];

type Seconds = Family<AgentLabels, Histogram, fn() -> Histogram>;
type SecondsWithTrace = Family<
    AgentLabels,
    HistogramWithExemplars<TraceLabels>,
    fn() -> HistogramWithExemplars<TraceLabels>,
>;
type ToolSeconds = Family<ToolNameLabels, Histogram, fn() -> Histogram>;
type F64Counter = Counter<f64, AtomicU64>;
type F64Gauge = Gauge<f64, AtomicU64>;

/// Turn-length buckets: 5 ms to about 5.5 min.
fn turn_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 17))
}

fn turn_buckets_with_trace() -> HistogramWithExemplars<TraceLabels> {
    HistogramWithExemplars::new(exponential_buckets(0.005, 2.0, 17))
}

/// Tool-call buckets: 1 ms to about 65 s.
fn tool_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every family, registered in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `switchboard_messages_received_total{channel,account}`
    pub messages_received: Family<ChannelLabels, Counter>,
    /// `switchboard_messages_rejected_total{channel,reason}`
    pub messages_rejected: Family<RejectLabels, Counter>,
    /// `switchboard_turns_total{agent,outcome}`
    pub turns: Family<TurnLabels, Counter>,
    /// `switchboard_turn_duration_seconds{agent}`, with the trace of an
    /// example turn as an exemplar.
    pub turn_duration: SecondsWithTrace,
    /// `switchboard_time_to_first_token_seconds{agent}`
    pub time_to_first_token: Seconds,
    /// `switchboard_model_requests_total{provider,model,status}`
    pub model_requests: Family<RequestLabels, Counter>,
    /// `switchboard_model_tokens_total{provider,model,kind}`
    pub model_tokens: Family<TokenLabels, Counter>,
    /// `switchboard_cost_usd_total{provider,model}`
    pub cost_usd: Family<ModelLabels, F64Counter>,
    /// `switchboard_tool_calls_total{tool,outcome}`
    pub tool_calls: Family<ToolLabels, Counter>,
    /// `switchboard_tool_duration_seconds{tool}`
    pub tool_duration: ToolSeconds,
    /// `switchboard_approvals_total{outcome}`
    pub approvals: Family<OutcomeLabels, Counter>,
    /// `switchboard_sessions_in_memory`
    pub sessions_in_memory: Gauge,
    /// `switchboard_runs_active`
    pub runs_active: Gauge,
    /// `switchboard_ingress_pending`
    pub ingress_pending: Gauge,
    /// `switchboard_channel_up{channel,account}`
    pub channel_up: Family<ChannelLabels, Gauge>,
    /// `switchboard_channel_last_event_timestamp_seconds{channel,account}`
    pub channel_last_event: Family<ChannelLabels, F64Gauge>,
    /// `switchboard_sandbox_containers`
    pub sandbox_containers: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family, registered and at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let m = Self {
            messages_received: Family::default(),
            messages_rejected: Family::default(),
            turns: Family::default(),
            turn_duration: Family::new_with_constructor(turn_buckets_with_trace),
            time_to_first_token: Family::new_with_constructor(turn_buckets),
            model_requests: Family::default(),
            model_tokens: Family::default(),
            cost_usd: Family::default(),
            tool_calls: Family::default(),
            tool_duration: Family::new_with_constructor(tool_buckets),
            approvals: Family::default(),
            sessions_in_memory: Gauge::default(),
            runs_active: Gauge::default(),
            ingress_pending: Gauge::default(),
            channel_up: Family::default(),
            channel_last_event: Family::default(),
            sandbox_containers: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "messages_received",
            "Messages received from the channels, per channel account",
            m.messages_received.clone(),
        );
        r.register(
            "messages_rejected",
            "Messages not answered: the access policy, pairing, the rate limit, a duplicate delivery or a full session queue",
            m.messages_rejected.clone(),
        );
        r.register(
            "turns",
            "Agent turns run, by how they ended",
            m.turns.clone(),
        );
        r.register(
            "turn_duration_seconds",
            "Time from the start of a turn to its end",
            m.turn_duration.clone(),
        );
        r.register(
            "time_to_first_token_seconds",
            "Time from the start of a turn to the first answer text",
            m.time_to_first_token.clone(),
        );
        r.register(
            "model_requests",
            "Model requests, by provider, model and status",
            m.model_requests.clone(),
        );
        r.register(
            "model_tokens",
            "Tokens the providers reported: input (cached ones included), output, cached",
            m.model_tokens.clone(),
        );
        r.register(
            "cost_usd",
            "What the model requests cost in US dollars, from [providers.<name>.pricing]",
            m.cost_usd.clone(),
        );
        r.register(
            "tool_calls",
            "Tool calls, by tool and outcome",
            m.tool_calls.clone(),
        );
        r.register(
            "tool_duration_seconds",
            "Time a tool call took, its wait for approval included",
            m.tool_duration.clone(),
        );
        r.register(
            "approvals",
            "Approval requests decided, by outcome",
            m.approvals.clone(),
        );
        r.register(
            "sessions_in_memory",
            "Session actors alive",
            m.sessions_in_memory.clone(),
        );
        r.register(
            "runs_active",
            "Agent turns running now",
            m.runs_active.clone(),
        );
        r.register(
            "ingress_pending",
            "Messages received and not yet answered",
            m.ingress_pending.clone(),
        );
        r.register(
            "channel_up",
            "1 when the channel account's listener runs, 0 otherwise",
            m.channel_up.clone(),
        );
        r.register(
            "channel_last_event_timestamp_seconds",
            "When the channel account last received a message (Unix time)",
            m.channel_last_event.clone(),
        );
        r.register(
            "sandbox_containers",
            "Sandbox containers this gateway runs",
            m.sandbox_containers.clone(),
        );
        Self { registry, ..m }
    }

    /// Create the series the config makes known, at zero, so that a graph
    /// or an alert has them from the start (Prometheus reads a missing
    /// series as no data, not as none): each channel account's counters,
    /// each agent's turns, each provider model's requests.
    pub fn prepare(
        &self,
        accounts: &[(String, String)],
        agents: &[String],
        models: &[(String, String)],
    ) {
        for (channel, account) in accounts {
            let labels = ChannelLabels {
                channel: channel.clone(),
                account: account.clone(),
            };
            let _ = self.messages_received.get_or_create(&labels);
            for reason in REJECT_REASONS {
                let _ = self.messages_rejected.get_or_create(&RejectLabels {
                    channel: channel.clone(),
                    reason,
                });
            }
        }
        for agent in agents {
            for outcome in ["ok", "error", "cancelled"] {
                let _ = self.turns.get_or_create(&TurnLabels {
                    agent: agent.clone(),
                    outcome,
                });
            }
            let labels = AgentLabels {
                agent: agent.clone(),
            };
            let _ = self.turn_duration.get_or_create(&labels);
            let _ = self.time_to_first_token.get_or_create(&labels);
        }
        for (provider, model) in models {
            let _ = self.model_requests.get_or_create(&RequestLabels {
                provider: provider.clone(),
                model: model.clone(),
                status: "ok".into(),
            });
            for kind in ["input", "output", "cached"] {
                let _ = self.model_tokens.get_or_create(&TokenLabels {
                    provider: provider.clone(),
                    model: model.clone(),
                    kind,
                });
            }
        }
        for outcome in ["approved", "denied", "timeout"] {
            let _ = self.approvals.get_or_create(&OutcomeLabels { outcome });
        }
    }

    /// A rejected message of `channel`, for `reason`.
    pub fn rejected(&self, channel: &str, reason: &'static str) {
        self.messages_rejected
            .get_or_create(&RejectLabels {
                channel: channel.to_string(),
                reason,
            })
            .inc();
    }

    /// The registry's metrics as text: OpenMetrics (with exemplars and
    /// `# EOF`) when `openmetrics`, else the Prometheus text format 0.0.4.
    pub fn render(&self, openmetrics: bool) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        if openmetrics {
            out
        } else {
            to_prometheus_text(&out)
        }
    }
}

/// The content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut fields = part.split(';');
            let kind = fields.next().unwrap_or("").trim();
            let q_zero = fields.any(|f| {
                f.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            kind.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
        })
    })
}

/// OpenMetrics text as the Prometheus text format 0.0.4 reads it: a
/// counter's `# HELP` and `# TYPE` name its `_total` sample, `# UNIT` and
/// `# EOF` go, and exemplars are cut off their samples.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let lines: Vec<&str> = openmetrics.lines().collect();
    let mut out = String::with_capacity(openmetrics.len());
    for (i, line) in lines.iter().enumerate() {
        if *line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            let is_counter = lines[i + 1..]
                .iter()
                .find(|l| l.starts_with("# TYPE "))
                .is_some_and(|l| *l == format!("# TYPE {name} counter"));
            if is_counter && !name.ends_with("_total") {
                out.push_str(&format!("# HELP {name}_total{}\n", &rest[name.len()..]));
                continue;
            }
        } else if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|r| r.strip_suffix(" counter"))
        {
            if !name.ends_with("_total") {
                out.push_str(&format!("# TYPE {name}_total counter\n"));
                continue;
            }
        } else if !line.starts_with('#') {
            if let Some(at) = line.find(" # {") {
                out.push_str(&line[..at]);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exposed_by_its_name_and_counters_read_as_prometheus_text() {
        let m = Metrics::new();
        m.prepare(
            &[("telegram".into(), "default".into())],
            &["main".into()],
            &[("local".into(), "llama3".into())],
        );
        m.tool_calls
            .get_or_create(&ToolLabels {
                tool: "exec".into(),
                outcome: "ok",
            })
            .inc();
        m.tool_duration
            .get_or_create(&ToolNameLabels {
                tool: "exec".into(),
            })
            .observe(0.1);
        m.cost_usd
            .get_or_create(&ModelLabels {
                provider: "local".into(),
                model: "llama3".into(),
            })
            .inc_by(0.5);
        m.channel_up
            .get_or_create(&ChannelLabels {
                channel: "telegram".into(),
                account: "default".into(),
            })
            .set(1);
        m.channel_last_event
            .get_or_create(&ChannelLabels {
                channel: "telegram".into(),
                account: "default".into(),
            })
            .set(1.0);
        m.messages_received
            .get_or_create(&ChannelLabels {
                channel: "telegram".into(),
                account: "default".into(),
            })
            .inc();
        m.turn_duration
            .get_or_create(&AgentLabels {
                agent: "main".into(),
            })
            .observe(
                0.02,
                Some(TraceLabels {
                    trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
                }),
                None,
            );
        let om = m.render(true);
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(
            om.contains("# {trace_id=\"0af7651916cd43dd8448eb211c80319c\"} 0.02"),
            "{om}"
        );
        let text = m.render(false);
        for family in [
            "switchboard_messages_received_total counter",
            "switchboard_messages_rejected_total counter",
            "switchboard_turns_total counter",
            "switchboard_turn_duration_seconds histogram",
            "switchboard_time_to_first_token_seconds histogram",
            "switchboard_model_requests_total counter",
            "switchboard_model_tokens_total counter",
            "switchboard_cost_usd_total counter",
            "switchboard_tool_calls_total counter",
            "switchboard_tool_duration_seconds histogram",
            "switchboard_approvals_total counter",
            "switchboard_sessions_in_memory gauge",
            "switchboard_runs_active gauge",
            "switchboard_ingress_pending gauge",
            "switchboard_channel_up gauge",
            "switchboard_channel_last_event_timestamp_seconds gauge",
            "switchboard_sandbox_containers gauge",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family}\n")),
                "{family}: {text}"
            );
        }
        assert!(
            text.contains(
                "switchboard_messages_received_total{channel=\"telegram\",account=\"default\"} 1\n"
            ),
            "{text}"
        );
        assert!(!text.contains("# EOF") && !text.contains("# {"), "{text}");
    }

    #[test]
    fn openmetrics_is_served_only_to_who_asks() {
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )));
        assert!(wants_openmetrics(Some("application/OpenMetrics-text")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
        assert!(!wants_openmetrics(None));
    }
}
