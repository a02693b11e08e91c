//! Live config reload: on SIGHUP, `switchboard config reload`
//! (`POST /api/config/reload`) or a save from the control UI, the gateway
//! reads its config again, validates it whole and applies the difference.
//!
//! What applies at once: providers, agents (their models, prompts, tool
//! and approval policies, budgets), bindings and the DM scope, and every
//! channel account. An account that changed has only its own listener
//! restarted; one that was added starts, one that was removed stops (its
//! listener has ended before the answer is given). The next turn takes the
//! new agents; a running turn finishes with the agent it started with.
//! Everything else (the bind address, the data directory, the store, the
//! sandbox, …) is named in the answer as waiting for a restart. A file that
//! does not load changes nothing, and the error names the key.
//!
//! Reloads are taken one at a time by a single task ([`Reloader::run`]);
//! [`ReloadHandle`] asks it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use switchboard_channel::{Channel, ChannelContext, ChannelState, Delivery};
use switchboard_memory::Store;

use crate::channels::{ChannelSet, StoredState};
use crate::config::{self, AccessRules, Config, LoadedConfig};
use crate::health::Health;
use crate::pipeline::Pipeline;
use crate::sessions::TurnContext;
use crate::supervisor::{Retirable, Supervisor};
use crate::telemetry::Telemetry;

pub use crate::wiring::AccountKey;
use crate::wiring::{
    access_rules, account_specs, agent_names, build_account, build_agents, router,
};

/// The running channel listeners, each a retirable supervised service.
pub(crate) struct Listeners {
    supervisor: Supervisor,
    health: Arc<Health>,
    store: Arc<dyn Store>,
    inbound: mpsc::Sender<Delivery>,
    running: Mutex<HashMap<AccountKey, Retirable>>,
    /// For replicas: each listener runs only while its lease is held here.
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Listeners {
    /// Listeners handing what they receive to `inbound`.
    pub(crate) fn new(
        supervisor: Supervisor,
        health: Arc<Health>,
        store: Arc<dyn Store>,
        inbound: mpsc::Sender<Delivery>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> Self {
        Self {
            supervisor,
            health,
            store,
            inbound,
            running: Mutex::default(),
            cluster,
        }
    }

    /// The health component of an account's listener.
    pub(crate) fn component(channel: &str, account: &str) -> String {
        format!("channel:{channel}/{account}")
    }

    /// Start `channel`'s listener (after stopping one that ran for its
    /// account: never two pollers of one bot).
    pub(crate) async fn start(&self, channel: Arc<dyn Channel>) {
        let key = (channel.name().to_string(), channel.account().to_string());
        self.stop(&key).await;
        let name = Self::component(channel.name(), channel.account());
        let inbound = self.inbound.clone();
        let status = self.health.channel_status(&name);
        let state: Arc<dyn ChannelState> = Arc::new(StoredState::new(
            self.store.clone(),
            channel.name(),
            channel.account(),
        ));
        // What arrives over HTTP (the web chat, an account in webhook mode,
        // behind a load balancer that may send it to any replica) or from
        // inside (scheduled runs) is taken by every replica, the ingress
        // queue keeping each message once; only pollers and sockets of a
        // platform are leased.
        let local = matches!(
            channel.name(),
            crate::webchat::NAME | crate::cron::runner::CHANNEL
        ) || channel.webhook().is_some();
        let cluster = self.cluster.clone().filter(|_| !local);
        let health = self.health.clone();
        let component = name.clone();
        let run = self.supervisor.spawn_retirable(&name, move |stop| {
            let channel = channel.clone();
            let ctx = ChannelContext {
                inbound: inbound.clone(),
                shutdown: stop.clone(),
                status: status.clone(),
                state: state.clone(),
            };
            let Some(cluster) = cluster.clone() else {
                return futures::future::Either::Left(async move {
                    channel.run(ctx).await.map_err(|e| e.to_string())
                });
            };
            let (health, component) = (health.clone(), component.clone());
            futures::future::Either::Right(async move {
                run_leased(&cluster, &channel, ctx, &health, &component).await
            })
        });
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, run);
    }

    /// Stop the listener of `key` and wait until it has ended.
    pub(crate) async fn stop(&self, key: &AccountKey) {
        let run = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        if let Some(run) = run {
            run.retire().await;
        }
    }
}

/// Run `channel`'s listener whenever this replica holds its lease: wait
/// for it (standby), listen until it is lost or `ctx.shutdown`, give it up,
/// and wait again. The listener of a lost lease has ended before the wait
/// starts, so two replicas never listen for one account at once.
async fn run_leased(
    cluster: &Arc<crate::cluster::Cluster>,
    channel: &Arc<dyn Channel>,
    ctx: ChannelContext,
    health: &Health,
    component: &str,
) -> Result<(), String> {
    let lease_name = crate::cluster::listener_lease(channel.name(), channel.account());
    let stop = ctx.shutdown.clone();
    loop {
        health.set(
            component,
            crate::health::State::Standby,
            Some(match cluster.holder_of(&lease_name) {
                Some(h) if h != cluster.id() => format!("listening on replica {h}"),
                _ => "waiting for this account's lease".into(),
            }),
        );
        let Some(lease) = cluster
            .hold(&lease_name, cluster.timing().beat, &stop)
            .await
        else {
            return Ok(());
        };
        health.set(component, crate::health::State::Running, None);
        tracing::info!(lease = %lease_name, replica = %cluster.id(), "holding the listener's lease");
        let shutdown = stop.child_token();
        let run = ChannelContext {
            shutdown: shutdown.clone(),
            ..ctx.clone()
        };
        let listening = channel.run(run);
        tokio::pin!(listening);
        let result = tokio::select! {
            r = &mut listening => Some(r),
            () = lease.lost().cancelled() => None,
        };
        let result = match result {
            Some(r) => r,
            None => {
                tracing::warn!(lease = %lease_name, "lost the listener's lease; stopping the listener");
                shutdown.cancel();
                listening.await
            }
        };
        lease.release().await;
        if stop.is_cancelled() {
            return result.map_err(|e| e.to_string());
        }
        // A listener that failed while holding the lease is restarted by
        // the supervisor, which waits for the lease again.
        result.map_err(|e| e.to_string())?;
    }
}

/// What a reload did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Outcome {
    /// The parts that apply now (`providers`, `agents`, …).
    pub applied: Vec<String>,
    /// Accounts whose listeners were started (`telegram/ops`).
    pub started: Vec<String>,
    /// Accounts whose listeners were stopped.
    pub stopped: Vec<String>,
    /// Accounts whose listeners were restarted with their new settings.
    pub restarted: Vec<String>,
    /// Keys that changed but wait for a restart of the gateway.
    pub restart_needed: Vec<String>,
}

impl Outcome {
    /// One line for the log and the CLI.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.applied.is_empty() {
            parts.push("nothing changed".to_string());
        } else {
            parts.push(format!("applied: {}", self.applied.join(", ")));
        }
        for (what, list) in [
            ("started", &self.started),
            ("stopped", &self.stopped),
            ("restarted", &self.restarted),
        ] {
            if !list.is_empty() {
                parts.push(format!("{what} {}", list.join(", ")));
            }
        }
        if !self.restart_needed.is_empty() {
            parts.push(format!(
                "these need a restart of the gateway to apply: {}",
                self.restart_needed.join(", ")
            ));
        }
        parts.join("; ")
    }
}

/// Why a reload changed nothing.
#[derive(Debug, Clone)]
pub enum ReloadError {
    /// The config does not load; each error names its key.
    Invalid(config::ConfigErrors),
    /// It loads, but what it describes cannot be built (a prompt file that
    /// is missing, an account's client that cannot be made).
    Failed(String),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(e) => write!(f, "{e}"),
            Self::Failed(e) => write!(f, "{e}"),
        }
    }
}

type Reply = oneshot::Sender<Result<Outcome, ReloadError>>;

/// Asks the reload task for a reload.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    ask: mpsc::Sender<(String, Reply)>,
}

impl ReloadHandle {
    /// A handle and the receiving end the reload task runs on.
    pub fn new() -> (Self, mpsc::Receiver<(String, Reply)>) {
        let (ask, rx) = mpsc::channel(8);
        (Self { ask }, rx)
    }

    /// Reload now (`why` is logged: `SIGHUP`, `api`, `ui`) and say what
    /// was done.
    pub async fn reload(&self, why: &str) -> Result<Outcome, ReloadError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || ReloadError::Failed("the gateway is shutting down".into());
        self.ask
            .send((why.to_string(), tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// The parts a reload changes, and what it builds them from.
pub(crate) struct Reloader {
    /// The config file (none: defaults and the environment).
    pub path: Option<PathBuf>,
    /// The `SWITCHBOARD_…` environment and command-line overrides the
    /// gateway started with.
    pub env: Vec<(String, String)>,
    pub dir: PathBuf,
    pub store: Arc<dyn Store>,
    pub telemetry: Arc<Telemetry>,
    pub channels: ChannelSet,
    pub pipeline: Arc<Pipeline>,
    pub ctx: Arc<TurnContext>,
    pub state: Arc<crate::http::AppState>,
    pub listeners: Listeners,
    /// The config in force.
    pub running: LoadedConfig,
    /// The config the gateway started with.
    pub started: Config,
    /// The web chat's rate limit at start.
    pub webchat_rate: config::RateLimitConfig,
}

impl Reloader {
    /// Take reloads one at a time until `stop`.
    pub(crate) async fn run(
        mut self,
        mut asks: mpsc::Receiver<(String, Reply)>,
        stop: CancellationToken,
    ) {
        loop {
            let (why, reply) = tokio::select! {
                () = stop.cancelled() => return,
                ask = asks.recv() => match ask {
                    Some(ask) => ask,
                    None => return,
                },
            };
            let result = self.reload().await;
            match &result {
                Ok(outcome) => tracing::info!(by = %why, "config reloaded: {}", outcome.summary()),
                Err(e) => {
                    tracing::warn!(by = %why, "config reload refused; nothing was changed: {e}")
                }
            }
            let _ = reply.send(result);
        }
    }

    /// Read, validate, build, then apply.
    async fn reload(&mut self) -> Result<Outcome, ReloadError> {
        let next = self.load().await?;
        let old = &self.running.config;
        let new = &next.config;
        // Everything is built before anything changes. An agent's
        // workspace stays where it was at start (the sandbox mounts it), so
        // its prompt file is read from there.
        let mut effective = new.clone();
        for (name, a) in &mut effective.agents {
            if let Some(was) = old.agents.get(name) {
                a.workspace.clone_from(&was.workspace);
            }
        }
        let (agents, models) = build_agents(&effective, &self.dir, &self.telemetry)
            .map_err(|e| ReloadError::Failed(format!("{e:#}")))?;
        let (before, after) = (account_specs(old), account_specs(new));
        let removed: Vec<AccountKey> = before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .cloned()
            .collect();
        let mut changed = Vec::new();
        let mut added = Vec::new();
        for (key, spec) in &after {
            match before.get(key) {
                Some(was) if was == spec => {}
                Some(_) => changed.push(key.clone()),
                None => added.push(key.clone()),
            }
        }
        let mut built = Vec::new();
        for key in changed.iter().chain(&added) {
            let channel = build_account(new, key).map_err(|e| {
                ReloadError::Failed(format!("channels.{}.accounts.{}: {e:#}", key.0, key.1))
            })?;
            built.push(channel);
        }

        let mut outcome = Outcome::default();
        let sections = changed_paths(old, new);
        for part in ["providers", "agents", "bindings"] {
            if sections
                .iter()
                .any(|p| p == part || p.starts_with(&format!("{part}.")))
            {
                outcome.applied.push(part.to_string());
            }
        }
        if old.sessions.dm_scope != new.sessions.dm_scope {
            outcome.applied.push("sessions.dm_scope".into());
        }
        if sections
            .iter()
            .any(|p| p.starts_with("channels.webchat.") && applies_live(p))
        {
            outcome.applied.push("channels.webchat".into());
        }
        if !(removed.is_empty() && changed.is_empty() && added.is_empty()) {
            outcome.applied.push("channel accounts".into());
        }
        // What waits is what differs from the config the gateway started
        // with, so a second reload still names it.
        let mut waiting: BTreeSet<String> = changed_paths(&self.started, new)
            .into_iter()
            .filter(|p| !applies_live(p))
            .collect();
        // A new agent answers now; its sandbox workspace and its memory
        // are set up at start.
        for name in new
            .agents
            .keys()
            .filter(|n| !self.started.agents.contains_key(*n))
        {
            waiting.insert(format!("agents.{name}.workspace"));
            waiting.insert(format!("agents.{name}.memory"));
        }
        // Memory's embeddings clients are made at start from their
        // provider.
        for (name, a) in &new.agents {
            let Some(provider) = a
                .memory
                .embeddings
                .as_deref()
                .and_then(|e| e.split('/').next())
            else {
                continue;
            };
            if changed_paths(&self.started, new)
                .iter()
                .any(|p| p.starts_with(&format!("providers.{provider}.")))
            {
                waiting.insert(format!("agents.{name}.memory.embeddings"));
            }
        }
        outcome.restart_needed = waiting.into_iter().collect();

        // Apply. The agents, routes and rules change together, before any
        // listener is stopped (which may take a few seconds), so that a
        // message is never routed by the old rules to the new agents.
        self.ctx.agents.set(agents);
        let mut fresh: HashSet<AccountKey> = changed.iter().chain(&added).cloned().collect();
        if outcome.applied.iter().any(|a| a == "channels.webchat") {
            fresh.insert((
                crate::webchat::NAME.to_string(),
                crate::webchat::ACCOUNT.to_string(),
            ));
        }
        let rules = self.access_rules(new);
        self.pipeline.set_access(rules.clone(), &fresh);
        self.pipeline.set_router(router(new, &next.default_agent));
        self.state
            .agents
            .store(Arc::new(agent_names(new, &next.default_agent)));
        // The listeners that stop, all at once; then the ones that start.
        futures::future::join_all(
            removed
                .iter()
                .chain(&changed)
                .map(|key| self.listeners.stop(key)),
        )
        .await;
        for key in &removed {
            self.channels.remove(&key.0, &key.1);
        }
        let accounts: Vec<AccountKey> = rules.into_iter().map(|(k, _)| k).collect();
        self.telemetry.metrics.prepare(
            &accounts,
            &new.agents.keys().cloned().collect::<Vec<_>>(),
            &models,
        );
        for channel in built {
            self.channels.add(channel.clone());
            self.listeners.start(channel).await;
        }
        self.probe_providers(old, new);
        let shown = |keys: &[AccountKey]| keys.iter().map(|(c, a)| format!("{c}/{a}")).collect();
        outcome.stopped = shown(&removed);
        outcome.restarted = shown(&changed);
        outcome.started = shown(&added);
        self.state.config.store(Arc::new(new.clone()));
        self.running = next;
        Ok(outcome)
    }

    /// [`access_rules`] of `config` for the accounts that run: the web chat
    /// stays as it started (on or off, and its rate limit, which one-off
    /// requests share).
    fn access_rules(&self, config: &Config) -> Vec<(AccountKey, AccessRules)> {
        let mut c = config.clone();
        c.channels.webchat.enabled = self.state.webchat.is_some();
        c.channels.webchat.rate_limit = self.webchat_rate;
        access_rules(&c)
    }

    /// Ask the providers that are new or changed whether they answer;
    /// forget the health of those removed.
    fn probe_providers(&self, old: &Config, new: &Config) {
        for name in old
            .providers
            .keys()
            .filter(|n| !new.providers.contains_key(*n))
        {
            self.state.health.remove(&format!("provider:{name}"));
        }
        for (name, p) in &new.providers {
            let same = old
                .providers
                .get(name)
                .and_then(|o| toml::Value::try_from(o).ok())
                == toml::Value::try_from(p).ok();
            if same {
                continue;
            }
            let provider = crate::serve::provider_for(name, p, &p.model, &self.telemetry);
            let url = switchboard_agents::shown_url(&p.base_url);
            tokio::spawn(crate::serve::probe_provider(
                name.clone(),
                url,
                provider,
                self.state.health.clone(),
            ));
        }
    }

    /// The config as a start would load it: the same file, environment
    /// and overrides, with the secrets it names read from the store.
    async fn load(&self) -> Result<LoadedConfig, ReloadError> {
        let text = match &self.path {
            Some(p) => tokio::fs::read_to_string(p).await.map_err(|e| {
                ReloadError::Failed(format!(
                    "cannot read {}: {e}; nothing was changed",
                    p.display()
                ))
            })?,
            None => String::new(),
        };
        let names = config::secret_names(&text, &self.env);
        let secrets = crate::vault::read_secrets(self.store.as_ref(), &names)
            .await
            .map_err(|e| {
                ReloadError::Failed(format!("cannot read the secrets the config names: {e}"))
            })?;
        let path = self.path.clone();
        let env = self.env.clone();
        let stored = secrets.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            config::load_with_secrets(path.as_deref(), &env, &stored)
        })
        .await
        .map_err(|e| ReloadError::Failed(format!("loading stopped unexpectedly ({e})")))?;
        // What is wrong is shown and logged: never with a secret in it (a
        // line of bad TOML is quoted as it is).
        loaded.map_err(|mut e| {
            let values: Vec<String> = secrets.into_values().collect();
            for err in &mut e.errors {
                err.message = crate::ui::scrub_config_message(
                    &err.message,
                    &text,
                    &self.running.config,
                    &self.env,
                    &values,
                );
            }
            ReloadError::Invalid(e)
        })
    }
}

/// Whether a change at `path` (dotted, from [`changed_paths`]) is applied
/// by a reload.
fn applies_live(path: &str) -> bool {
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        ["providers", ..] | ["bindings", ..] => true,
        ["sessions", "dm_scope"] => true,
        // An agent's memory and workspace are set up at start.
        ["agents", _, "memory" | "workspace", ..] => false,
        ["agents", ..] => true,
        ["channels", "telegram" | "discord" | "slack", "accounts", ..] => true,
        // Its rate limit is also the one of one-off requests, set at start.
        ["channels", "webchat", "dm_policy" | "allow_from", ..] => true,
        _ => false,
    }
}

/// The dotted paths of the values that differ between `a` and `b`: leaves,
/// or whole tables and arrays that exist on one side only.
pub(crate) fn changed_paths(a: &Config, b: &Config) -> Vec<String> {
    fn walk(
        prefix: &str,
        a: Option<&toml::Value>,
        b: Option<&toml::Value>,
        out: &mut BTreeSet<String>,
    ) {
        match (a, b) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, x.get(k), y.get(k), out);
                }
            }
            (x, y) if x != y => {
                out.insert(prefix.to_string());
            }
            _ => {}
        }
    }
    let (Ok(a), Ok(b)) = (toml::Value::try_from(a), toml::Value::try_from(b)) else {
        return vec!["(all)".into()];
    };
    let mut out = BTreeSet::new();
    walk("", Some(&a), Some(&b), &mut out);
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Config {
        config::load_str(text, "test", &[]).expect("valid").config
    }

    #[test]
    fn what_waits_for_a_restart_is_named_and_what_applies_is_not() {
        let a = load("[gateway]\nbind = \"127.0.0.1:7000\"\n");
        let b = load(
            "[gateway]\nbind = \"127.0.0.1:7001\"\n[sessions]\ndm_scope = \"main\"\n[ui]\nsession_idle_hours = 2\n",
        );
        let paths = changed_paths(&a, &b);
        assert!(paths.contains(&"gateway.bind".to_string()), "{paths:?}");
        let waiting: Vec<&String> = paths.iter().filter(|p| !applies_live(p)).collect();
        assert!(waiting.iter().any(|p| *p == "gateway.bind"), "{waiting:?}");
        assert!(
            waiting.iter().any(|p| *p == "ui.session_idle_hours"),
            "{waiting:?}"
        );
        assert!(
            !waiting.iter().any(|p| *p == "sessions.dm_scope"),
            "{waiting:?}"
        );
        assert!(changed_paths(&a, &a).is_empty());
        // The web chat's access applies; its rate limit, which also holds
        // one-off requests, waits.
        assert!(applies_live("channels.webchat.dm_policy"));
        assert!(!applies_live("channels.webchat.rate_limit.per_minute"));
        assert!(!applies_live("channels.webchat.enabled"));
        assert!(!applies_live("agents.main.memory.scope"));
        assert!(applies_live("agents.main.tools.profile"));
    }

    #[test]
    fn accounts_differ_only_where_their_settings_do() {
        let one = "[channels.telegram.accounts.a]\ntoken = \"123456789:AAHfakeTokenForSwitchboardTests_0001\"\n[channels.telegram.accounts.b]\ntoken = \"123456789:AAHfakeTokenForSwitchboardTests_0002\"\n";
        let two = "[channels.telegram.accounts.a]\ntoken = \"123456789:AAHfakeTokenForSwitchboardTests_0001\"\n[channels.telegram.accounts.b]\ntoken = \"123456789:AAHfakeTokenForSwitchboardTests_0002\"\nallow_from = [\"7\"]\n";
        let (x, y) = (account_specs(&load(one)), account_specs(&load(two)));
        let a = ("telegram".to_string(), "a".to_string());
        let b = ("telegram".to_string(), "b".to_string());
        assert_eq!(x[&a], y[&a]);
        assert_ne!(x[&b], y[&b]);
        assert!(
            changed_paths(&load(one), &load(two))
                .iter()
                .all(|p| applies_live(p))
        );
    }
}
