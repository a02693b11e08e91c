//! The scheduler: one supervised task that ticks every second, settles
//! every job's due slots (each run, missed or skipped once, ever: the
//! store's `(job, slot)` key) and runs them as turns through the pipeline;
//! and the turns inbound webhooks start. A turn's answer goes where the
//! job's `deliver` says: a new message in a chat, a POST to a URL, or only
//! the session and the run history.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use switchboard_channel::{ChatKind, Inbound, Sender};
use switchboard_memory::{CronJobRecord, CronRunRecord, IngressStatus, Store, StoreError};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::parse::{self, Deliver};
use super::schedule::{self, MissReason, Policy, Timing};
use crate::clock::now_ms;
use crate::config::{CronJobConfig, HookConfig};
use crate::events::{EventBus, EventKind};
use crate::health::{Health, State};
use crate::pipeline::{Admission, Pipeline};

/// How often the scheduler looks for due slots.
pub const TICK: Duration = Duration::from_secs(1);
/// The longest a scheduled turn is waited for.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// The internal channel of runs whose answer goes to no chat.
pub const CHANNEL: &str = "cron";

/// One job as the scheduler holds it.
#[derive(Debug, Clone)]
struct Job {
    cfg: CronJobConfig,
    record: CronJobRecord,
    timing: Timing,
    policy: Policy,
    /// The last slot recorded, once read from the store.
    last: Option<Option<DateTime<Utc>>>,
    /// The next slot, as the last tick saw it.
    next: Option<DateTime<Utc>>,
}

/// A job as `cron list` and `/api/cron` show it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Its name.
    pub name: String,
    /// `config` or `runtime`.
    pub source: String,
    /// When it runs, as configured.
    pub when: String,
    /// Its zone.
    pub tz: String,
    /// The agent.
    pub agent: String,
    /// Where the answer goes (a URL shown without its path).
    pub deliver: String,
    /// Whether it is enabled in the config.
    pub enabled: bool,
    /// Whether it is paused, and why.
    pub paused: bool,
    /// Why it is paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    /// Failed runs in a row.
    pub failures: i64,
    /// Whether a run is going on.
    pub running: bool,
    /// The next slot, ms since the epoch.
    pub next_ms: Option<i64>,
    /// The next slot in the job's zone, with its offset.
    pub next: Option<String>,
    /// The latest run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<CronRunRecord>,
}

/// A turn [`Cron::begin`] stored and dispatched.
pub(crate) struct Begun {
    /// Its ingress row.
    pub ingress_id: i64,
    /// Whether its message id was seen before (it is not run again).
    pub duplicate: bool,
    message_id: String,
    events: tokio::sync::broadcast::Receiver<crate::events::GatewayEvent>,
}

/// The scheduler and the runs it and the webhooks start.
pub struct Cron {
    store: Arc<dyn Store>,
    pipeline: Arc<Pipeline>,
    events: EventBus,
    health: Arc<Health>,
    default_tz: Tz,
    default_agent: String,
    http: reqwest::Client,
    jobs: Mutex<BTreeMap<String, Job>>,
    running: Mutex<HashSet<String>>,
    last_tick: AtomicI64,
    /// The health detail last set.
    shown: Mutex<Option<String>>,
    hooks: BTreeMap<String, HookConfig>,
}

impl std::fmt::Debug for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cron").finish_non_exhaustive()
    }
}

/// The machine's zone (`TZ`, then the system's), UTC when unknown.
pub fn machine_zone() -> Tz {
    std::env::var("TZ")
        .ok()
        .and_then(|z| parse::parse_tz(z.trim_start_matches(':')).ok())
        .or_else(|| {
            iana_time_zone::get_timezone()
                .ok()
                .and_then(|z| parse::parse_tz(&z).ok())
        })
        .unwrap_or(chrono_tz::UTC)
}

fn utc_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn describe_when(cfg: &CronJobConfig) -> String {
    cfg.schedule
        .as_ref()
        .map(|s| format!("schedule \"{s}\""))
        .or_else(|| cfg.every.as_ref().map(|e| format!("every {e}")))
        .or_else(|| cfg.at.as_ref().map(|a| format!("at {a}")))
        .unwrap_or_default()
}

impl Cron {
    /// The scheduler of the config's jobs and the run-time jobs in the
    /// store (each stored on first sight: its creation is its anchor).
    pub async fn new(
        store: Arc<dyn Store>,
        pipeline: Arc<Pipeline>,
        events: EventBus,
        health: Arc<Health>,
        configured: &BTreeMap<String, CronJobConfig>,
        hooks: BTreeMap<String, HookConfig>,
        default_agent: String,
    ) -> Result<Arc<Self>, StoreError> {
        let cron = Arc::new(Self {
            store,
            pipeline,
            events,
            health,
            default_tz: machine_zone(),
            default_agent,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            jobs: Mutex::new(BTreeMap::new()),
            running: Mutex::new(HashSet::new()),
            last_tick: AtomicI64::new(0),
            shown: Mutex::new(None),
            hooks,
        });
        let now = now_ms();
        for (name, cfg) in configured {
            let record = cron
                .store
                .cron_job_ensure(name, "config", None, now)
                .await?;
            cron.insert(name, cfg.clone(), record);
        }
        for record in cron.store.cron_jobs().await? {
            if record.source != "runtime" || configured.contains_key(&record.name) {
                continue;
            }
            match record
                .spec
                .as_deref()
                .map(serde_json::from_str::<CronJobConfig>)
            {
                Some(Ok(cfg)) => {
                    let name = record.name.clone();
                    cron.insert(&name, cfg, record);
                }
                _ => {
                    tracing::warn!(job = %record.name, "a stored job's definition is unreadable; it does not run")
                }
            }
        }
        Ok(cron)
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_running(&self, name: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(name)
    }

    /// Hold `cfg` as job `name`; false (and a warning) when it does not
    /// parse (the config check refuses such a job before).
    fn insert(&self, name: &str, cfg: CronJobConfig, record: CronJobRecord) -> bool {
        let timing = Timing::from_config(&cfg, self.default_tz);
        let policy = Policy::from_config(&cfg, self.default_tz, TICK * 2);
        match (timing, policy) {
            (Ok(timing), Ok(policy)) => {
                self.jobs().insert(
                    name.to_string(),
                    Job {
                        cfg,
                        record,
                        timing,
                        policy,
                        last: None,
                        next: None,
                    },
                );
                true
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(job = name, error = %e, "a job cannot be scheduled");
                false
            }
        }
    }

    /// Tick until `stop`: the supervised task.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) -> Result<(), String> {
        // The supervisor has just reset the component's detail.
        *self.shown.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.settle_interrupted().await.map_err(|e| e.to_string())?;
        loop {
            self.tick().await.map_err(|e| e.to_string())?;
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Runs recorded as running by an earlier process ended with it (their
    /// message, stored, is answered after the restart; the run is not
    /// repeated).
    async fn settle_interrupted(&self) -> Result<(), StoreError> {
        let names: Vec<String> = self.jobs().keys().cloned().collect();
        for name in names {
            for run in self.store.cron_runs(&name, 5).await? {
                if run.status == "running" {
                    self.store
                        .cron_run_finish(
                            &name,
                            run.slot,
                            "failed",
                            Some("interrupted: the gateway stopped during the run (its message is answered after the restart, not run again)"),
                            now_ms(),
                        )
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Settle every job's due slots once.
    pub async fn tick(self: &Arc<Self>) -> Result<(), StoreError> {
        let now = Utc::now();
        self.last_tick
            .store(now.timestamp_millis(), Ordering::Relaxed);
        let names: Vec<String> = self.jobs().keys().cloned().collect();
        let mut soonest: Option<(DateTime<Utc>, String)> = None;
        for name in names {
            let Some(mut job) = self.jobs().get(&name).cloned() else {
                continue;
            };
            if job.last.is_none() {
                let latest = self.store.cron_runs(&name, 1).await?;
                job.last = Some(latest.first().map(|r| utc_ms(r.slot)));
            }
            let anchor = utc_ms(job.record.created_at);
            let last = job.last.flatten();
            if !job.cfg.enabled || job.record.paused {
                job.next = job
                    .timing
                    .next_after(last.unwrap_or(anchor).max(now), anchor);
                self.keep(&name, job);
                continue;
            }
            // A backlog longer than one plan looks at is settled in turns.
            let mut last = last;
            loop {
                let plan = schedule::plan(&job.timing, anchor, last, now, &job.policy);
                for (slot, why) in &plan.missed {
                    self.store
                        .cron_run_record(
                            &name,
                            slot.timestamp_millis(),
                            why.status(),
                            Some(&why.to_string()),
                            now_ms(),
                        )
                        .await?;
                }
                if !plan.run.is_empty() {
                    // Catch-up slots (`misfire = "all"`) run one after another.
                    let slots: Vec<i64> = plan.run.iter().map(DateTime::timestamp_millis).collect();
                    self.start(&name, &job.cfg, &slots, None).await?;
                }
                last = plan.last_slot().or(last);
                job.next = plan.next;
                match plan.next {
                    Some(n) if n <= now => continue,
                    _ => break,
                }
            }
            job.last = Some(last);
            if let Some(n) = job.next
                && soonest.as_ref().is_none_or(|(t, _)| n < *t)
            {
                soonest = Some((n, name.clone()));
            }
            self.keep(&name, job);
        }
        // Only what changes when a run is due: the status (and what
        // follows it, the UI and the tray) is not stirred every tick. A
        // scheduler that stops ticking is reported by the watchdog.
        let detail = match &soonest {
            Some((t, name)) => format!("next run: {name} at {}", t.format("%Y-%m-%d %H:%M:%S UTC")),
            None => "no run due".to_string(),
        };
        if self
            .shown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            != Some(detail.as_str())
        {
            self.health
                .set("cron", State::Running, Some(detail.clone()));
            *self.shown.lock().unwrap_or_else(PoisonError::into_inner) = Some(detail);
        }
        Ok(())
    }

    /// Put back a job's state unless it was removed or replaced meanwhile.
    fn keep(&self, name: &str, job: Job) {
        let mut jobs = self.jobs();
        if let Some(held) = jobs.get_mut(name)
            && held.record.created_at == job.record.created_at
            && held.cfg == job.cfg
        {
            held.last = job.last;
            held.next = job.next;
        }
    }

    /// Record slot `slot` of job `name` as running and run it, unless it
    /// was recorded before (then nothing happens) or the job's previous
    /// run still goes on (then it is recorded skipped).
    async fn start(
        self: &Arc<Self>,
        name: &str,
        cfg: &CronJobConfig,
        slots: &[i64],
        why: Option<&str>,
    ) -> Result<bool, StoreError> {
        let Some(&first) = slots.first() else {
            return Ok(false);
        };
        // Claimed under one lock, so two starts at once (a tick and `cron
        // run`) cannot both run it.
        let claimed = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string());
        if !claimed {
            let why = MissReason::StillRunning;
            for &slot in slots {
                self.store
                    .cron_run_record(name, slot, why.status(), Some(&why.to_string()), now_ms())
                    .await?;
            }
            return Ok(false);
        }
        let recorded = self
            .store
            .cron_run_record(name, first, "running", why, now_ms())
            .await;
        if !matches!(recorded, Ok(true)) {
            self.running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(name);
            return recorded;
        }
        let this = self.clone();
        let (name, cfg, slots) = (name.to_string(), cfg.clone(), slots.to_vec());
        tokio::spawn(async move {
            for (i, &slot) in slots.iter().enumerate() {
                if i > 0 {
                    // A later slot is recorded when its turn comes.
                    let paused = this.jobs().get(&name).is_none_or(|j| j.record.paused);
                    if paused {
                        break;
                    }
                    match this
                        .store
                        .cron_run_record(&name, slot, "running", None, now_ms())
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            tracing::error!(job = %name, error = %e, "a catch-up run could not be recorded");
                            break;
                        }
                    }
                }
                let outcome = this.execute(&name, &cfg, slot).await;
                if let Err(e) = this.finish(&name, &cfg, slot, outcome).await {
                    tracing::error!(job = %name, error = %e, "a run's outcome could not be stored");
                }
            }
            this.running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&name);
        });
        Ok(true)
    }

    /// Store a run's outcome; count failures in a row and pause the job
    /// after `max_failures`.
    async fn finish(
        &self,
        name: &str,
        cfg: &CronJobConfig,
        slot: i64,
        outcome: Result<String, String>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let Some(mut record) = self.jobs().get(name).map(|j| j.record.clone()) else {
            return Ok(());
        };
        match &outcome {
            Ok(note) => {
                self.store
                    .cron_run_finish(name, slot, "ok", Some(note), now)
                    .await?;
                record.failures = 0;
            }
            Err(why) => {
                tracing::warn!(job = name, error = %why, "a scheduled run failed");
                self.store
                    .cron_run_finish(name, slot, "failed", Some(why), now)
                    .await?;
                record.failures += 1;
                let failures = u32::try_from(record.failures).unwrap_or(u32::MAX);
                if schedule::should_pause(failures, cfg.max_failures) {
                    record.paused = true;
                    record.paused_reason = Some(format!(
                        "paused after {failures} failed runs in a row (the last: {why}); resume it with `switchboard cron resume {name}`"
                    ));
                    tracing::warn!(
                        job = name,
                        failures,
                        "a job was paused after failing repeatedly"
                    );
                }
            }
        }
        self.store
            .cron_job_state(
                name,
                record.paused,
                record.paused_reason.as_deref(),
                record.failures,
            )
            .await?;
        if let Some(job) = self.jobs().get_mut(name) {
            job.record.failures = record.failures;
            job.record.paused = record.paused;
            job.record.paused_reason = record.paused_reason;
        }
        Ok(())
    }

    /// Run slot `slot` of job `name`: its message as a turn of its agent in
    /// its session, the answer delivered as `deliver` says.
    async fn execute(&self, name: &str, cfg: &CronJobConfig, slot: i64) -> Result<String, String> {
        let deliver = parse::parse_deliver(&cfg.deliver)?;
        let agent = cfg
            .agent
            .clone()
            .unwrap_or_else(|| self.default_agent.clone());
        let session_key = if cfg.session == "isolated" {
            format!("agent:{agent}:cron:{name}")
        } else {
            cfg.session.clone()
        };
        let message_id = format!(
            "{}cron:{name}:{slot}",
            switchboard_channel::GATEWAY_MESSAGE_PREFIX
        );
        let answer = self
            .turn(
                &deliver,
                &format!("cron:{name}"),
                &cfg.message,
                &agent,
                &session_key,
                &message_id,
            )
            .await?;
        self.deliver_to_url(&deliver, &serde_json_job(name, slot, &answer))
            .await?;
        Ok(format!("answered ({} characters)", answer.chars().count()))
    }

    /// POST `body` when `deliver` is a URL.
    pub(crate) async fn deliver_to_url(
        &self,
        deliver: &Deliver,
        body: &serde_json::Value,
    ) -> Result<(), String> {
        let Deliver::Webhook(url) = deliver else {
            return Ok(());
        };
        let shown = switchboard_agents::shown_url(url);
        match self.http.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!(
                "delivering to {shown} failed: it answered {}",
                r.status()
            )),
            Err(e) => Err(format!("delivering to {shown} failed: {e}")),
        }
    }

    /// Start a turn of `agent` in `session_key` with `text` from `sender`,
    /// its reply a new message where `deliver` points (or nowhere), and
    /// wait for its answer. `message_id` runs it once, however often this
    /// is called.
    pub(crate) async fn turn(
        &self,
        deliver: &Deliver,
        sender: &str,
        text: &str,
        agent: &str,
        session_key: &str,
        message_id: &str,
    ) -> Result<String, String> {
        let begun = self
            .begin(deliver, sender, text, agent, session_key, message_id)
            .await?;
        self.wait(begun).await
    }

    /// Store and dispatch the turn [`Cron::turn`] waits for.
    pub(crate) async fn begin(
        &self,
        deliver: &Deliver,
        sender: &str,
        text: &str,
        agent: &str,
        session_key: &str,
        message_id: &str,
    ) -> Result<Begun, String> {
        let (channel, account, chat, thread) = match deliver {
            Deliver::Chat {
                channel,
                account,
                chat,
                thread,
            } => (
                channel.clone(),
                account.clone(),
                chat.clone(),
                thread.clone(),
            ),
            _ => (
                CHANNEL.to_string(),
                "default".to_string(),
                sender.to_string(),
                None,
            ),
        };
        let chat_kind = if thread.is_some() {
            ChatKind::Thread
        } else if chat.starts_with('-') {
            ChatKind::Group
        } else {
            ChatKind::Dm
        };
        let inbound = Inbound {
            channel,
            account,
            chat_kind,
            chat_id: chat,
            thread_id: thread,
            sender: Sender {
                id: sender.to_string(),
                name: Some(format!("scheduled ({sender})")),
                is_bot: false,
            },
            text: text.to_string(),
            attachments: Vec::new(),
            mentioned: true,
            message_id: message_id.to_string(),
            received_at_ms: now_ms(),
        };
        // Listening before the turn starts, so its end is not missed.
        let events = self.events.subscribe();
        let admission = self
            .pipeline
            .admit_scheduled(inbound, agent.to_string(), session_key.to_string())
            .await
            .map_err(|e| format!("the run could not be stored: {e}"))?;
        let (ingress_id, duplicate) = match admission {
            Admission::Queued { ingress_id, .. } => (ingress_id, false),
            Admission::Duplicate { ingress_id, .. } => (ingress_id, true),
            Admission::Busy => {
                return Err("the session's queue is full; the run was not started".into());
            }
            other => return Err(format!("the run was not started ({other:?})")),
        };
        Ok(Begun {
            ingress_id,
            duplicate,
            message_id: message_id.to_string(),
            events,
        })
    }

    /// Wait for the answer of a turn [`Cron::begin`] started.
    pub(crate) async fn wait(&self, begun: Begun) -> Result<String, String> {
        let Begun {
            ingress_id,
            message_id,
            mut events,
            ..
        } = begun;
        if let Some(answer) = self.outcome(ingress_id).await? {
            return answer;
        }
        let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, events.recv()).await;
            match event {
                Err(_) => {
                    return Err(format!("no answer within {} s", RUN_TIMEOUT.as_secs()));
                }
                Ok(Ok(e)) if e.message_id == message_id => match e.kind {
                    EventKind::Done { text, .. } => {
                        return self.settled(ingress_id, text).await;
                    }
                    EventKind::Error { message } => return Err(message),
                    _ => {}
                },
                Ok(Ok(_)) => {}
                Ok(Err(RecvError::Lagged(_))) => {
                    if let Some(answer) = self.outcome(ingress_id).await? {
                        return answer;
                    }
                }
                Ok(Err(RecvError::Closed)) => return Err("the gateway is stopping".into()),
            }
        }
    }

    /// The answer `text`, unless its row says the reply was not delivered.
    async fn settled(&self, ingress_id: i64, text: String) -> Result<String, String> {
        match self.store.ingress_get(ingress_id).await {
            Ok(Some(r)) if r.status == IngressStatus::Failed => Err(r
                .error
                .unwrap_or_else(|| "the reply was not delivered".into())),
            _ => Ok(text),
        }
    }

    /// The outcome of row `ingress_id` if it has one (after missed events).
    async fn outcome(&self, ingress_id: i64) -> Result<Option<Result<String, String>>, String> {
        let row = self
            .store
            .ingress_get(ingress_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(match row {
            Some(r) if r.status == IngressStatus::Done => {
                let answer = self
                    .store
                    .answer_for_ingress(ingress_id)
                    .await
                    .map_err(|e| e.to_string())?;
                Some(Ok(answer.map(|a| a.content).unwrap_or_default()))
            }
            Some(r) if r.status == IngressStatus::Failed => {
                Some(Err(r.error.unwrap_or_else(|| "the run failed".into())))
            }
            _ => None,
        })
    }

    // ---- what the operator sees and does ----

    /// Every job, by name.
    pub async fn list(&self) -> Result<Vec<JobView>, StoreError> {
        let jobs: Vec<(String, Job)> = self
            .jobs()
            .iter()
            .map(|(n, j)| (n.clone(), j.clone()))
            .collect();
        let mut out = Vec::with_capacity(jobs.len());
        for (name, job) in jobs {
            let last = self.store.cron_runs(&name, 1).await?.into_iter().next();
            out.push(self.view(&name, &job, last));
        }
        Ok(out)
    }

    fn view(&self, name: &str, job: &Job, last: Option<CronRunRecord>) -> JobView {
        let tz = job.policy.tz;
        let next = if job.cfg.enabled && !job.record.paused {
            job.next.or_else(|| {
                job.timing.next_after(
                    job.last
                        .flatten()
                        .unwrap_or(utc_ms(job.record.created_at))
                        .max(Utc::now()),
                    utc_ms(job.record.created_at),
                )
            })
        } else {
            None
        };
        JobView {
            name: name.to_string(),
            source: job.record.source.clone(),
            when: describe_when(&job.cfg),
            tz: tz.name().to_string(),
            agent: job
                .cfg
                .agent
                .clone()
                .unwrap_or_else(|| self.default_agent.clone()),
            deliver: parse::parse_deliver(&job.cfg.deliver)
                .map(|d| d.to_string())
                .unwrap_or_else(|e| e),
            enabled: job.cfg.enabled,
            paused: job.record.paused,
            paused_reason: job.record.paused_reason.clone(),
            failures: job.record.failures,
            running: self.is_running(name),
            next_ms: next.map(|t| t.timestamp_millis()),
            next: next.map(|t| schedule::format_in_zone(t, tz)),
            last,
        }
    }

    /// One job with its next 5 run times and its history (latest first).
    pub async fn show(
        &self,
        name: &str,
        history: u32,
    ) -> Result<Option<(JobView, Vec<String>, Vec<CronRunRecord>)>, StoreError> {
        let Some(job) = self.jobs().get(name).cloned() else {
            return Ok(None);
        };
        let runs = self.store.cron_runs(name, history).await?;
        let anchor = utc_ms(job.record.created_at);
        let from = job.last.flatten().unwrap_or(anchor).max(Utc::now());
        let upcoming = schedule::upcoming(&job.timing, anchor, from, 5)
            .into_iter()
            .map(|t| schedule::format_in_zone(t, job.policy.tz))
            .collect();
        let view = self.view(name, &job, runs.first().cloned());
        Ok(Some((view, upcoming, runs)))
    }

    /// Run job `name` now (a slot of its own, at this millisecond).
    pub async fn run_now(self: &Arc<Self>, name: &str) -> Result<Option<i64>, String> {
        let Some(cfg) = self.jobs().get(name).map(|j| j.cfg.clone()) else {
            return Ok(None);
        };
        if self.is_running(name) {
            return Err(format!(
                "`{name}` is running already; wait for it to finish"
            ));
        }
        let slot = now_ms();
        self.start(name, &cfg, &[slot], Some("started by the operator"))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(slot))
    }

    /// Pause or resume job `name` (resuming clears its failure count);
    /// false when there is none.
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<bool, StoreError> {
        let reason = paused.then_some("paused by the operator");
        let Some(mut job) = self.jobs().get(name).cloned() else {
            return Ok(false);
        };
        self.store.cron_job_state(name, paused, reason, 0).await?;
        job.record.paused = paused;
        job.record.paused_reason = reason.map(str::to_string);
        job.record.failures = 0;
        if !paused {
            // Slots passed while paused are not caught up.
            let now = Utc::now();
            job.last = Some(Some(now));
            let _ = self
                .store
                .cron_run_record(
                    name,
                    now.timestamp_millis(),
                    "skipped",
                    Some("skipped: resumed here; slots while paused do not run"),
                    now_ms(),
                )
                .await?;
        }
        if let Some(held) = self.jobs().get_mut(name) {
            *held = job;
        }
        Ok(true)
    }

    /// Add a run-time job (kept in the store); an error when the name is
    /// taken or the job does not parse.
    pub async fn add(&self, name: &str, cfg: CronJobConfig) -> Result<(), String> {
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            || name.is_empty()
        {
            return Err(format!(
                "`{name}` cannot name a job: use letters, digits, `_` and `-`"
            ));
        }
        if self.jobs().contains_key(name) {
            return Err(format!(
                "a job named `{name}` exists; remove it first or choose another name"
            ));
        }
        if let Some((key, why)) = cfg.problems().into_iter().next() {
            return Err(format!("{key}: {why}"));
        }
        let spec = serde_json::to_string(&cfg).map_err(|e| e.to_string())?;
        let record = self
            .store
            .cron_job_ensure(name, "runtime", Some(&spec), now_ms())
            .await
            .map_err(|e| e.to_string())?;
        if !self.insert(name, cfg, record) {
            return Err("the job cannot be scheduled".into());
        }
        Ok(())
    }

    /// Remove a run-time job; the config's are removed from the config.
    pub async fn remove(&self, name: &str) -> Result<bool, String> {
        let source = self.jobs().get(name).map(|j| j.record.source.clone());
        match source.as_deref() {
            None => Ok(false),
            Some("config") => Err(format!(
                "`{name}` is defined in the config file: remove its [cron.jobs.{name}] section (or set enabled = false)"
            )),
            Some(_) => {
                self.store
                    .cron_job_remove(name)
                    .await
                    .map_err(|e| e.to_string())?;
                self.jobs().remove(name);
                Ok(true)
            }
        }
    }

    /// The inbound webhook `name`, if configured.
    pub fn hook(&self, name: &str) -> Option<&HookConfig> {
        self.hooks.get(name)
    }

    /// The agent a job or hook without one uses.
    pub fn default_agent(&self) -> &str {
        &self.default_agent
    }

    /// Report the scheduler failed when it has not ticked for `limit` ms
    /// (stuck, not crashed: the supervisor sees no failure); its next tick
    /// reports it running again.
    pub fn check_stalled(&self, now: i64, limit: i64) {
        let last = self.last_tick_ms();
        if last > 0 && now - last > limit {
            *self.shown.lock().unwrap_or_else(PoisonError::into_inner) = None;
            self.health.set(
                "cron",
                State::Failed,
                Some(format!(
                    "the scheduler has not ticked for {} s",
                    (now - last) / 1000
                )),
            );
        }
    }

    /// When the scheduler last ticked, ms since the epoch (0: never).
    pub fn last_tick_ms(&self) -> i64 {
        self.last_tick.load(Ordering::Relaxed)
    }
}

fn serde_json_job(name: &str, slot: i64, answer: &str) -> serde_json::Value {
    serde_json::json!({ "job": name, "slot_ms": slot, "answer": answer })
}
