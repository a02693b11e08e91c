//! Sessions: one actor per session key.
//!
//! An actor runs at most one agent turn at a time, holds a bounded queue of
//! waiting messages (answered per the queue mode), and leaves memory after an
//! idle time. A semaphore caps concurrent runs across all sessions; a turn
//! waiting for an approval gives its run slot back meanwhile (`slot`). On
//! shutdown, actors finish their running turn within the grace period and take
//! no more work; what they did not answer stays pending in the ingress queue.

mod actor;
pub mod context;
pub mod delivery;
pub(crate) use actor::BUSY_NOTICE;
mod inbound;
mod mailbox;
pub mod queue;
mod replies;
pub mod reset;
pub mod slot;
#[cfg(test)]
mod tests;
mod turn;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use switchboard_agents::Agent;
use switchboard_agents::tools::{ApprovalPolicy, ToolPolicy, ToolRegistry};
use switchboard_channel::Inbound;
use switchboard_memory::Store;

use crate::channels::ChannelSet;
use crate::config::QueueMode;
use crate::events::EventBus;
use mailbox::{Mailbox, Refused};
use reset::{ChatCommand, ResetPolicy, parse_command};

/// One admitted message on its way to a session.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its ingress row.
    pub ingress_id: i64,
    /// The message.
    pub inbound: Inbound,
    /// The agent that answers.
    pub agent: String,
    /// The session it belongs to.
    pub session_key: String,
    /// Its row's ownership in this process, taken when it is dispatched and
    /// released when the job (every copy) is gone; the periodic sweep
    /// leaves claimed rows alone.
    pub claim: Option<Arc<delivery::Claim>>,
    /// The platform message an earlier run of its reply left (a preview
    /// shown before the gateway stopped), to be edited into the answer.
    pub resume: Option<String>,
    /// The message's root span (`message`): the turn that answers it and
    /// its reply's delivery are its children.
    pub span: tracing::Span,
    /// Its wait in the session's queue (`queue`), from its hand-off to the
    /// start of the turn that answers it.
    pub queued: Option<tracing::Span>,
}

impl Job {
    fn command(&self) -> Option<ChatCommand> {
        parse_command(&self.inbound.text)
    }

    /// The person the message is from, `<channel>:<sender id>`.
    pub fn subject(&self) -> String {
        crate::memories::subject_of(&self.inbound)
    }

    /// Whose session this message's is: its sender's in a DM session of
    /// their own (their key seals it and `forget` removes it); `None` for
    /// a group's or the one `main` session everyone shares.
    pub fn session_subject(&self) -> Option<String> {
        (self.inbound.chat_kind == switchboard_channel::ChatKind::Dm
            && self.session_key.contains(":dm:"))
        .then(|| switchboard_memory::subject_of(&self.inbound.channel, &self.inbound.sender.id))
    }
}

/// What the tools of a turn of `agent` (on `slot`) in session `key` know
/// of it: the conversation of the batch's last message, whose sender is
/// the turn's person.
pub(crate) fn tool_context(
    key: &str,
    agent: &str,
    slot: &AgentSlot,
    batch: &[Job],
    turns: i64,
) -> switchboard_agents::tools::ToolContext {
    let last = batch.last();
    switchboard_agents::tools::ToolContext {
        session_key: key.to_string(),
        agent: agent.to_string(),
        model: slot.model.clone(),
        channel: last.map(|j| j.inbound.channel.clone()).unwrap_or_default(),
        chat_kind: last
            .map(|j| j.inbound.chat_kind.as_str().to_string())
            .unwrap_or_default(),
        turns,
        subject: last.map(Job::subject).unwrap_or_default(),
        account: last.map(|j| j.inbound.account.clone()).unwrap_or_default(),
        chat_id: last.map(|j| j.inbound.chat_id.clone()).unwrap_or_default(),
        thread_id: last.and_then(|j| j.inbound.thread_id.clone()),
        traceparent: None,
    }
}

impl queue::Batchable for Job {
    fn is_command(&self) -> bool {
        self.command().is_some()
    }
}

/// An agent and how much history it gets.
#[derive(Debug, Clone)]
pub struct AgentSlot {
    /// The agent.
    pub agent: Agent,
    /// Transcript entries sent with each message.
    pub history_limit: u32,
    /// The model name, for `/status`.
    pub model: String,
    /// Which tools it may use.
    pub tools: ToolPolicy,
    /// Tokens it may use per day (from local midnight).
    pub daily_token_budget: Option<u64>,
    /// Its context window and what compaction keeps.
    pub context: context::ContextBudget,
    /// Which tool calls wait for the operator.
    pub approvals: ApprovalPolicy,
    /// How long an approval request waits before it is denied.
    pub approval_timeout: Duration,
    /// Who may decide its approval requests from a chat, as
    /// `<channel>:<sender id>`; empty: only the asker, in their DM.
    pub approvers: Vec<String>,
}

/// The agents by name. A config reload replaces them whole: a turn holds
/// the slot it started with to its end, the next one takes the new one.
#[derive(Debug, Default)]
pub struct Agents(arc_swap::ArcSwap<HashMap<String, Arc<AgentSlot>>>);

impl Agents {
    /// These agents.
    pub fn new(agents: HashMap<String, AgentSlot>) -> Self {
        let agents = agents.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        Self(arc_swap::ArcSwap::from_pointee(agents))
    }

    /// The agent named `name`, as it is now.
    pub fn get(&self, name: &str) -> Option<Arc<AgentSlot>> {
        self.0.load().get(name).cloned()
    }

    /// Every agent's name.
    pub fn names(&self) -> Vec<String> {
        self.0.load().keys().cloned().collect()
    }

    /// Replace them all (a config reload).
    pub fn set(&self, agents: HashMap<String, AgentSlot>) {
        let agents = agents.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        self.0.store(Arc::new(agents));
    }
}

/// Everything a turn needs, shared by all actors.
#[derive(Debug)]
pub struct TurnContext {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Where replies go.
    pub channels: ChannelSet,
    /// Where events go.
    pub events: EventBus,
    /// Agents by name (replaced whole by a config reload).
    pub agents: Agents,
    /// Every tool the gateway offers; each agent's policy picks from it.
    pub tools: ToolRegistry,
    /// The approval desk.
    pub approvals: Arc<crate::approvals::Approvals>,
    /// Caps concurrent runs.
    pub runs: Arc<Semaphore>,
    /// The cap `runs` was made with.
    pub max_runs: usize,
    /// Automatic resets.
    pub reset: ResetPolicy,
    /// Queue mode.
    pub queue_mode: QueueMode,
    /// Messages one session may hold waiting.
    pub mailbox: usize,
    /// How long an idle actor stays.
    pub actor_idle: Duration,
    /// Cancelled when shutdown begins: take no new work.
    pub draining: CancellationToken,
    /// Cancelled when the grace period is over: stop running turns.
    pub hard_stop: CancellationToken,
    /// Sessions with work waiting for a free run slot (for health).
    pub runs_waiting: AtomicU64,
    /// Turns completed (for health).
    pub turns_done: AtomicU64,
    /// Turns that failed (for health).
    pub turns_failed: AtomicU64,
    /// Where conversations' files live: attachments are fetched into the
    /// session's sandbox workspace. `None`: attachments are only described.
    pub workbench: Option<Arc<switchboard_sandbox::Workbench>>,
    /// Which pending ingress rows have an owner here.
    pub claims: Arc<delivery::Claims>,
    /// Answers whose delivery failed, being sent again.
    pub deliveries: Arc<delivery::Deliveries>,
    /// Long-term memory (recall into prompts, the flush before
    /// compaction). `None`: the gateway keeps none.
    pub memories: Option<Arc<crate::memories::Memories>>,
    /// Metrics, and how spans are labelled.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// For replicas: a session's turns run only where its lease is held.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Why a message could not be handed to its session.
#[derive(Debug)]
pub enum DispatchError {
    /// The session already holds as many waiting messages as it may.
    Busy(Job),
    /// The gateway is shutting down.
    Closed(Job),
}

struct Inner {
    ctx: Arc<TurnContext>,
    /// Each live actor's mailbox (jobs travel boxed, a pointer a slot).
    /// Every actor that may wait idle has its open mailbox here: a drain
    /// ends idle actors by closing what it finds here, and nothing else
    /// does before their idle time is up.
    actors: Mutex<HashMap<String, Arc<Mailbox<Box<Job>>>>>,
    /// The cancel handle of each session's running turn.
    running: Mutex<HashMap<String, CancellationToken>>,
    tracker: TaskTracker,
}

/// The live session actors.
#[derive(Clone)]
pub struct SessionRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRegistry")
            .field("active", &self.active())
            .finish()
    }
}

impl SessionRegistry {
    /// A registry over `ctx`.
    pub fn new(ctx: Arc<TurnContext>) -> Self {
        Self {
            inner: Arc::new(Inner {
                ctx,
                actors: Mutex::new(HashMap::new()),
                running: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
            }),
        }
    }

    /// The shared turn context.
    pub fn context(&self) -> &Arc<TurnContext> {
        &self.inner.ctx
    }

    /// Hand a job to its session's actor, starting one if needed.
    pub fn dispatch(&self, mut job: Job) -> Result<(), DispatchError> {
        if self.inner.ctx.draining.is_cancelled() {
            return Err(DispatchError::Closed(job));
        }
        if job.claim.is_none() {
            match self.inner.ctx.claims.claim(job.ingress_id) {
                Some(c) => job.claim = Some(c),
                None => {
                    // Already on its way here (a second hand-off of one row):
                    // answering it twice is the one thing not to do.
                    tracing::warn!(
                        ingress_id = job.ingress_id,
                        "message already being handled; not handed on twice"
                    );
                    return Ok(());
                }
            }
        }
        job.queued = Some(tracing::info_span!(parent: &job.span, "queue"));
        let mut actors = self.inner.actors.lock().unwrap_or_else(|e| e.into_inner());
        // Asked again under the lock: a drain closes the mailboxes it finds
        // here after it began, so none may be added once it has.
        if self.inner.ctx.draining.is_cancelled() {
            return Err(DispatchError::Closed(job));
        }
        let mut job = job;
        if let Some(mailbox) = actors.get(&job.session_key) {
            match mailbox.send(Box::new(job)) {
                Ok(()) => return Ok(()),
                Err(Refused::Full(j)) => return Err(DispatchError::Busy(*j)),
                Err(Refused::Closed(j)) => {
                    actors.remove(&j.session_key);
                    job = *j;
                }
            }
        }
        let mailbox = Arc::new(Mailbox::new(self.inner.ctx.mailbox));
        let key = job.session_key.clone();
        // A fresh mailbox has room for one.
        if let Err(Refused::Full(j) | Refused::Closed(j)) = mailbox.send(Box::new(job)) {
            return Err(DispatchError::Closed(*j));
        }
        actors.insert(key.clone(), mailbox.clone());
        self.inner
            .tracker
            .spawn(actor::run(self.clone(), key, mailbox));
        Ok(())
    }

    /// Called by an idle actor: leave unless a job arrived meanwhile, which
    /// is then returned. Holding the lock makes this race-free with
    /// [`dispatch`](Self::dispatch).
    fn retire(&self, key: &str, mailbox: &Mailbox<Box<Job>>) -> Option<Box<Job>> {
        let mut actors = self.inner.actors.lock().unwrap_or_else(|e| e.into_inner());
        let job = mailbox.close_if_empty();
        if job.is_none() {
            actors.remove(key);
        }
        job
    }

    /// Cancel the running turn of session `key` (what was said so far is
    /// kept). Returns whether a turn was running.
    pub fn cancel(&self, key: &str) -> bool {
        match self
            .inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    fn turn_started(&self, key: &str, token: CancellationToken) {
        self.inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), token);
    }

    fn turn_ended(&self, key: &str) {
        self.inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Session actors in memory.
    pub fn active(&self) -> usize {
        self.inner
            .actors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Turns running right now.
    pub fn running(&self) -> usize {
        let ctx = &self.inner.ctx;
        ctx.max_runs.saturating_sub(ctx.runs.available_permits())
    }

    /// Stop taking work and wait for actors to finish their running turns;
    /// after `grace`, cancel what still runs. Returns whether all finished in
    /// time.
    pub async fn drain(&self, grace: Duration) -> bool {
        let ctx = &self.inner.ctx;
        ctx.draining.cancel();
        // Idle actors wait on their mailbox alone: closed, they leave.
        let mailboxes: Vec<_> = self
            .inner
            .actors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for mailbox in mailboxes {
            mailbox.close();
        }
        self.inner.tracker.close();
        let in_time = tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_ok();
        if !in_time {
            ctx.hard_stop.cancel();
            self.inner.tracker.wait().await;
        }
        in_time
    }
}
