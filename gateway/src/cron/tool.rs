//! `schedule`: the agent asks for a job of its own (a reminder at a time,
//! a check every so often) that answers in the conversation it was asked
//! in. Registered only when the operator allows it (`[cron]
//! agent_jobs = true`); a dangerous tool, so approvals gate it by default
//! and untrusted chats do not get it; at most `agent_jobs_per_hour` jobs an
//! hour.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{Value, json};
use switchboard_agents::ToolSpec;
use switchboard_agents::tools::{Tool, ToolContext, ToolOutput};

use super::runner::Cron;
use crate::config::CronJobConfig;

/// The `schedule` tool.
pub struct ScheduleTool {
    cron: Arc<OnceLock<Arc<Cron>>>,
    per_hour: usize,
    recent: Arc<Mutex<VecDeque<Instant>>>,
}

impl ScheduleTool {
    /// The tool over the scheduler `cron` will hold (set once it exists),
    /// allowing `per_hour` jobs an hour.
    pub fn new(cron: Arc<OnceLock<Arc<Cron>>>, per_hour: u32) -> Self {
        Self {
            cron,
            per_hour: per_hour.max(1) as usize,
            recent: Arc::new(Mutex::new(VecDeque::new())),
        }
    }
}

impl Tool for ScheduleTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "schedule".into(),
            description: "Schedule a message to yourself that starts a turn later in this conversation, \
                answered here: a reminder at a time (`at`, RFC 3339 with offset), or a recurring check \
                (`every`, like \"1h\", or a cron `schedule` with `tz`). Give exactly one of at, every, schedule."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "message": { "type": "string", "description": "What you will be told when it runs." },
                    "at": { "type": "string", "description": "One time, e.g. 2026-12-24T09:00:00+01:00" },
                    "every": { "type": "string", "description": "A period, e.g. 30m, 2h" },
                    "schedule": { "type": "string", "description": "A cron pattern, e.g. 0 30 7 * * Mon-Fri" },
                    "tz": { "type": "string", "description": "IANA zone for `schedule`, e.g. Europe/Berlin" }
                },
                "required": ["message"],
                "additionalProperties": false
            }),
        }
    }

    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        let cron = self.cron.get().cloned();
        let (recent, per_hour) = (self.recent.clone(), self.per_hour);
        Box::pin(async move {
            let Some(cron) = cron else {
                return ToolOutput::error("the scheduler is not running; jobs cannot be added now");
            };
            {
                let mut recent = recent.lock().unwrap_or_else(PoisonError::into_inner);
                while recent
                    .front()
                    .is_some_and(|t| t.elapsed() > Duration::from_secs(3600))
                {
                    recent.pop_front();
                }
                if recent.len() >= per_hour {
                    return ToolOutput::error(format!(
                        "at most {per_hour} jobs an hour may be scheduled; try again later or ask the operator"
                    ));
                }
                recent.push_back(Instant::now());
            }
            let text = |k: &str| args[k].as_str().map(str::to_string);
            let Some(message) = text("message").filter(|m| !m.trim().is_empty()) else {
                return ToolOutput::error("give `message`: what you will be told when it runs");
            };
            let deliver = if ctx.channel.is_empty()
                || ctx.channel == "webchat"
                || ctx.channel == super::runner::CHANNEL
            {
                "none".to_string()
            } else {
                match &ctx.thread_id {
                    Some(t) => format!("{}:{}:{}:{t}", ctx.channel, ctx.account, ctx.chat_id),
                    None => format!("{}:{}:{}", ctx.channel, ctx.account, ctx.chat_id),
                }
            };
            let mut job = CronJobConfig::new(message);
            job.at = text("at");
            job.every = text("every");
            job.schedule = text("schedule");
            job.tz = text("tz");
            job.agent = Some(ctx.agent.clone());
            job.deliver = deliver;
            job.session = ctx.session_key.clone();
            let name = format!("agent-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
            match cron.add(&name, job).await {
                Ok(()) => {
                    tracing::info!(job = %name, session_key = %ctx.session_key, "the agent scheduled a job");
                    ToolOutput::ok(format!(
                        "scheduled as `{name}`; the operator sees it in `switchboard cron list` and can remove it"
                    ))
                }
                Err(why) => ToolOutput::error(format!("not scheduled: {why}")),
            }
        })
    }
}
