//! `switchboard serve`: wire the parts together, run until a signal, drain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use switchboard_agents::tools::ToolRegistry;
use switchboard_agents::{
    AnthropicProvider, EmbeddingsClient, OpenAiProvider, Provider, ProviderSettings,
};
use switchboard_channel::{Channel, Delivery};
use switchboard_memory::Store;

use crate::approvals::Approvals;
use crate::auth::{self, TokenSource};
use crate::channels::ChannelSet;
use crate::clock::now_ms;
use crate::config::{Config, LoadedConfig, ProviderConfig, ProviderKind};
use crate::events::EventBus;
use crate::health::{Health, State};
use crate::http::{self, AppState};
use crate::pipeline::Pipeline;
use crate::pipeline::intake::Intake;
use crate::retention::Retention;
use crate::sessions::reset::ResetPolicy;
use crate::sessions::{SessionRegistry, TurnContext};
use crate::supervisor::Supervisor;
use crate::telemetry::Telemetry;
use crate::telemetry::model::Observed;
use crate::webchat::WebChat;

/// How often pending rows without an owner are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
/// How old such a row must be (a row just written is being handed on).
const SWEEP_GRACE: Duration = Duration::from_secs(15);
/// Rows a replica takes over from others in one go at most.
const TAKE_OVER_AT_ONCE: i64 = 500;

/// The data directory: configured, or the platform's.
pub fn data_dir(config: &Config) -> anyhow::Result<PathBuf> {
    if let Some(d) = &config.gateway.data_dir {
        return Ok(d.clone());
    }
    dirs::data_dir()
        .map(|d| d.join("switchboard"))
        .context("cannot find a data directory for this user (is HOME set?): pass --data-dir or set SWITCHBOARD_DATA_DIR")
}

fn api_key(name: &str, p: &ProviderConfig) -> Option<String> {
    p.api_key.clone().or_else(|| {
        let var = p.api_key_env.as_deref()?;
        let v = std::env::var(var).ok();
        if v.is_none() {
            tracing::warn!(
                provider = name,
                variable = var,
                "the API key variable is not set"
            );
        }
        v
    })
}

/// The client for provider `name` asking `model`: the one place provider
/// kinds are registered.
pub(crate) fn provider_for(
    name: &str,
    p: &ProviderConfig,
    model: &str,
    telemetry: &Arc<Telemetry>,
) -> Arc<dyn Provider> {
    let settings = ProviderSettings {
        name: name.to_string(),
        base_url: p.base_url.clone(),
        api_key: api_key(name, p),
        model: model.to_string(),
        idle_timeout: Duration::from_secs(p.timeout_secs),
        temperature: p.temperature,
        max_tokens: p.max_tokens,
        traceparent: telemetry.traceparent_fn(),
    };
    let (inner, system): (Arc<dyn Provider>, _) = match p.kind {
        ProviderKind::Openai => (Arc::new(OpenAiProvider::new(settings)), "openai"),
        ProviderKind::Anthropic => (Arc::new(AnthropicProvider::new(settings)), "anthropic"),
    };
    Arc::new(Observed::new(
        inner,
        telemetry.clone(),
        system,
        p.pricing.clone(),
    ))
}

/// The embeddings client of provider `name` asking `model`
/// (`agents.<agent>.memory.embeddings`; validation saw to it that the
/// provider is OpenAI-compatible).
pub(crate) fn embeddings_for(name: &str, p: &ProviderConfig, model: &str) -> EmbeddingsClient {
    EmbeddingsClient::new(ProviderSettings {
        name: name.to_string(),
        base_url: p.base_url.clone(),
        api_key: api_key(name, p),
        model: model.to_string(),
        idle_timeout: Duration::from_secs(p.timeout_secs),
        temperature: None,
        max_tokens: None,
        traceparent: None,
    })
}

/// Run the gateway until Ctrl-C or SIGTERM, then drain and return. The
/// store is `opened` already (by the CLI, which read the config's secrets
/// from it), or opened here.
pub async fn serve(
    loaded: LoadedConfig,
    opened: Option<crate::vault::Opened>,
    env: Vec<(String, String)>,
) -> anyhow::Result<()> {
    // Not dumpable: a process of the same user (a host command with
    // `host_exec`, anything else) cannot read this one's environment or
    // memory through /proc, where the tokens and keys are.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(error = %e, "cannot keep other processes out of this one's /proc entries");
    }
    let config_path = loaded.path.clone();
    let config = loaded.config.clone();
    let (reload_handle, reload_asks) = crate::reload::ReloadHandle::new();
    // Taken at once, so that a SIGHUP while starting (systemd's
    // ExecReload) does not end the process; answered once running.
    let hangups = hangups();
    let dir = data_dir(&config)?;
    let bind: SocketAddr = config
        .gateway
        .bind
        .parse()
        .context("gateway.bind is not an address")?;

    let opened = match opened {
        Some(o) => o,
        None => {
            crate::vault::open(&crate::vault::Location {
                data_dir: dir.clone(),
                config_dir: crate::vault::config_dir(config_path.as_deref()),
                encryption: config.store.encryption.clone(),
                url: config.store.url.clone(),
            })
            .await?
        }
    };
    let db_path = opened.db_path.clone();
    let store: Arc<dyn Store> = opened.store.clone();
    let audit = Arc::new(opened.audit());
    if opened.mode == crate::config::EncryptionMode::Off {
        tracing::warn!(
            "[store.encryption] mode is off: transcripts and messages are stored in plain text"
        );
    }
    // For replicas: join before taking any work.
    let cluster = match config.cluster.enabled {
        true => {
            let scheme = if config.gateway.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let c = crate::cluster::Cluster::join(
                store.clone(),
                &config.cluster,
                format!("{scheme}://{bind}"),
            )
            .await
            .context("cannot join the replicas on the store")?;
            tracing::info!(replica = %c.id(), lease_secs = config.cluster.lease_secs, "running as a replica");
            if let Some(sealed) = &opened.sealed {
                // Keys the others made since this copy of the keyring was.
                sealed
                    .learn_shared_keys()
                    .await
                    .context("cannot read the keyring the replicas share")?;
            }
            Some(c)
        }
        false => None,
    };
    // What the last run left unanswered, read before any intake starts.
    // A replica takes only what no live replica owns.
    let leftover = match &cluster {
        None => store.ingress_pending().await,
        Some(c) => crate::pipeline::leftover(&*store, c, TAKE_OVER_AT_ONCE).await,
    }
    .context("cannot read the ingress queue")?;
    let health = Arc::new(Health::new());
    health.set("store", State::Running, Some(db_path.display().to_string()));

    let (token, source) =
        auth::resolve(config.gateway.auth.token.as_deref(), &dir).with_context(|| {
            format!(
                "cannot read or write the control token in {}",
                dir.display()
            )
        })?;
    if source == TokenSource::Generated {
        crate::telemetry::logging::say(&format!(
            "\nA control token was generated and saved to {} (mode 0600).\nIt is shown only this once; the CLI reads it from that file:\n\n    {token}\n",
            auth::token_path(&dir).display()
        ));
    }

    let telemetry = Arc::new(Telemetry::new(
        &config.observability,
        crate::telemetry::logging::exporting(),
    ));
    if let Some(url) = crate::telemetry::logging::traces_url() {
        tracing::info!(url = %url, "traces are exported over OTLP");
    }

    // Providers and agents.
    let mut probes: Vec<(String, String, Arc<dyn Provider>)> = Vec::new();
    for (name, p) in &config.providers {
        probes.push((
            name.clone(),
            p.base_url.clone(),
            provider_for(name, p, &p.model, &telemetry),
        ));
    }
    let (agents, models) = crate::wiring::build_agents(&config, &dir, &telemetry)?;
    for (name, url, provider) in probes {
        let health = health.clone();
        let url = switchboard_agents::shown_url(&url);
        tokio::spawn(probe_provider(name, url, provider, health));
    }

    // Tools: the built-in ones, and the shell and file tools wherever the
    // sandbox (or an explicit host_exec) lets them run.
    let bench = Arc::new(crate::sandbox::workbench(&config, &dir));
    let mut tools = ToolRegistry::standard(config.tools.web_fetch.settings(), bench.clone());
    // Long-term memory: each scope's index is built from the store when
    // first used, so nothing is read here.
    let memories = Arc::new(crate::memories::Memories::from_config(
        store.clone(),
        &config,
        embeddings_for,
    ));
    tools.register_memory(crate::memories::Memories::book(&memories));
    // The scheduler is made after the sessions that hold the tools: the
    // `schedule` tool finds it here once it exists.
    let scheduler = Arc::new(std::sync::OnceLock::new());
    if config.cron.agent_jobs {
        tools.register(Arc::new(crate::cron::tool::ScheduleTool::new(
            scheduler.clone(),
            config.cron.agent_jobs_per_hour,
        )));
    }
    tokio::spawn(crate::sandbox::check_at_start(
        bench.clone(),
        health.clone(),
    ));
    audit.sandbox_policy(&config.sandbox).await;

    // Channels: the one place they are registered.
    let channels = ChannelSet::default();
    let webchat_channel = config
        .channels
        .webchat
        .enabled
        .then(|| Arc::new(WebChat::new()));
    if let Some(w) = &webchat_channel {
        channels.add(w.clone() as Arc<dyn Channel>);
    }
    // Scheduled runs whose answer goes to no chat reply through this.
    channels.add(Arc::new(crate::cron::NullChannel) as Arc<dyn Channel>);
    for key in crate::wiring::account_specs(&config).keys() {
        let channel = crate::wiring::build_account(&config, key)
            .with_context(|| format!("channels.{}.accounts.{}", key.0, key.1))?;
        channels.add(channel);
    }
    let access = crate::wiring::access_rules(&config);
    let shutdown = CancellationToken::new();
    let events = EventBus::new(1024);
    let approvals = Arc::new(Approvals::new(
        store.clone(),
        channels.clone(),
        events.clone(),
        audit.clone(),
    ));
    // A replica leaves them: another one's turn may be waiting on them.
    if cluster.is_none() {
        approvals
            .expire_stale()
            .await
            .context("cannot read the approval requests")?;
    }
    if let Some(c) = &cluster {
        approvals.set_cluster(c.clone());
    }
    // For replicas: what is published here goes to the others too (sent
    // once the supervisor runs, below).
    let outgoing = cluster
        .as_ref()
        .map(|_| crate::cluster::fanout::forward(&events));
    let runs = config.gateway.max_concurrent_runs;
    let draining = CancellationToken::new();
    let deliveries = crate::sessions::delivery::Deliveries::new(
        store.clone(),
        channels.clone(),
        health.clone(),
        Duration::from_secs(config.sessions.delivery_retry_secs),
        draining.clone(),
    );
    let ctx = Arc::new(TurnContext {
        store: store.clone(),
        channels: channels.clone(),
        events: events.clone(),
        agents: crate::sessions::Agents::new(agents),
        tools,
        approvals: approvals.clone(),
        runs: Arc::new(Semaphore::new(runs)),
        max_runs: runs,
        reset: ResetPolicy {
            idle_minutes: config.sessions.idle_reset_minutes,
            daily_hour: config.sessions.daily_reset_hour,
        },
        queue_mode: config.sessions.queue_mode,
        mailbox: config.sessions.mailbox,
        actor_idle: Duration::from_secs(config.sessions.actor_idle_secs.max(1)),
        draining,
        hard_stop: CancellationToken::new(),
        runs_waiting: AtomicU64::new(0),
        workbench: Some(bench.clone()),
        turns_done: AtomicU64::new(0),
        turns_failed: AtomicU64::new(0),
        claims: Default::default(),
        deliveries,
        memories: Some(memories),
        telemetry: telemetry.clone(),
        cluster: cluster.clone(),
    });
    let sessions = SessionRegistry::new(ctx);
    let router = crate::wiring::router(&config, &loaded.default_agent);
    telemetry.metrics.prepare(
        &access.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        &config.agents.keys().cloned().collect::<Vec<_>>(),
        &models,
    );
    let pipeline = Arc::new(Pipeline::new(
        store.clone(),
        channels.clone(),
        sessions.clone(),
        router,
        access,
        approvals.clone(),
        audit.clone(),
    ));

    let cron = crate::cron::runner::Cron::new(
        store.clone(),
        pipeline.clone(),
        events.clone(),
        health.clone(),
        &config.cron.jobs,
        config.hooks.hooks.clone(),
        loaded.default_agent.clone(),
    )
    .await
    .context("cannot read the scheduled jobs")?;
    let _ = scheduler.set(cron.clone());

    let restarts = crate::supervisor::Restarts::default();
    let ui = Arc::new(crate::ui::UiAuth::new(
        Some(dir.join("ui-sessions.json")),
        config.ui.session_idle_hours,
        &token,
    ));
    // Stops the HTTP server; long-lived streams (server-sent events) end
    // with it, so they do not hold shutdown up.
    let http_stop = CancellationToken::new();
    let state = Arc::new(AppState {
        pipeline: pipeline.clone(),
        store: store.clone(),
        health: health.clone(),
        events,
        webchat: webchat_channel,
        channels: channels.clone(),
        approvals: approvals.clone(),
        token: crate::token::TokenDigest::of(&token),
        scrape_token: config
            .observability
            .metrics_token
            .as_deref()
            .map(crate::token::TokenDigest::of),
        agents: arc_swap::ArcSwap::from_pointee(crate::wiring::agent_names(
            &config,
            &loaded.default_agent,
        )),
        ready: false.into(),
        started_ms: now_ms(),
        client_limit: http::ClientLimit::new(config.channels.webchat.rate_limit),
        answers: http::AnswerMemo::new(),
        ui,
        config: arc_swap::ArcSwap::from_pointee(config.clone()),
        reload: Some(reload_handle.clone()),
        config_path: loaded.path.clone(),
        data_dir: dir.clone(),
        restarts: restarts.clone(),
        http_stop: http_stop.clone(),
        live: crate::ui::live::Live::default(),
        cron: Some(cron.clone()),
        cluster: cluster.clone(),
        audit: audit.clone(),
        throttle: Arc::new(http::throttle::AuthThrottle::new(
            config.gateway.auth.failed_per_minute,
            config.gateway.auth.failed_global_per_minute,
        )),
        trusted_proxies: config
            .gateway
            .trusted_proxies
            .iter()
            .filter_map(|p| http::throttle::Net::parse(p).ok())
            .collect(),
    });
    tokio::spawn(crate::ui::live::Live::run(state.clone()));

    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
        format!("cannot listen on {bind}: is another switchboard running? Choose another address with --bind or gateway.bind")
    })?;
    let app = http::router(state.clone());
    let limits = http::server::ConnLimits {
        max_connections: config.gateway.limits.max_connections,
        header_timeout: Duration::from_secs(config.gateway.limits.header_timeout_secs.max(1)),
    };
    let tls = match &config.gateway.tls {
        Some(t) => {
            let tls = Arc::new(
                http::server::Tls::load(&t.cert, &t.key).map_err(|e| anyhow::anyhow!("{e}"))?,
            );
            // A renewed certificate is picked up without a restart.
            tokio::spawn(tls.clone().watch(Duration::from_secs(2), http_stop.clone()));
            Some(tls)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let http_task = tokio::spawn(http::server::serve(
        listener,
        app,
        limits,
        tls.clone(),
        http_stop.clone(),
    ));
    health.set("http", State::Running, Some(format!("{scheme}://{bind}")));
    let metrics_task = match config
        .observability
        .metrics_bind
        .as_deref()
        .filter(|_| config.observability.metrics)
    {
        Some(addr) => {
            Some(serve_metrics(addr, state.clone(), limits, http_stop.clone(), &health).await?)
        }
        None => None,
    };
    watch_exports(&health);

    // Long-running tasks.
    let supervisor =
        Supervisor::new(shutdown.clone(), health.clone()).with_restarts(restarts.clone());
    let (inbound_tx, inbound_rx) = mpsc::channel::<Delivery>(config.gateway.inbound_queue);
    if let Some(c) = &cluster {
        crate::cluster::services::spawn(
            c,
            &supervisor,
            opened.sealed.clone(),
            approvals.clone(),
            state.events.clone(),
            outgoing,
            shutdown.clone(),
        )?;
    }
    let listeners = crate::reload::Listeners::new(
        supervisor.clone(),
        health.clone(),
        store.clone(),
        inbound_tx.clone(),
        cluster.clone(),
    );
    for channel in channels.all() {
        listeners.start(channel).await;
    }
    drop(inbound_tx);
    // Reloads, one at a time, from SIGHUP, the API and the UI.
    let reloads = tokio::spawn(
        crate::reload::Reloader {
            path: config_path.clone(),
            env,
            dir: dir.clone(),
            store: store.clone(),
            telemetry: telemetry.clone(),
            channels: channels.clone(),
            pipeline: pipeline.clone(),
            ctx: sessions.context().clone(),
            state: state.clone(),
            listeners,
            running: loaded.clone(),
            started: config.clone(),
            webchat_rate: config.channels.webchat.rate_limit,
        }
        .run(reload_asks, shutdown.clone()),
    );
    spawn_sighup(hangups, reload_handle.clone(), shutdown.clone());
    {
        // The dispatcher, and the notices it queues, under supervision: a
        // panic restarts them with what is still queued.
        let intake = Arc::new(Intake::new(pipeline.clone(), inbound_rx));
        supervisor.spawn("intake", move |stop| {
            let intake = intake.clone();
            async move { intake.run(stop).await }
        });
        let notices = pipeline.notices().clone();
        supervisor.spawn("notices", move |stop| {
            let notices = notices.clone();
            async move { notices.run(stop).await }
        });
    }
    {
        let cron = cron.clone();
        supervisor.spawn("cron", move |stop| cron.clone().run(stop));
    }
    {
        // A scheduler that stopped ticking (stuck, not crashed) is a failed
        // component, not silence.
        let cron = cron.clone();
        supervisor.spawn("cron-watchdog", move |stop| {
            let cron = cron.clone();
            async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                    cron.check_stalled(now_ms(), 15_000);
                }
            }
        });
    }
    // `[retention]`: old records pruned a minute after start, then hourly.
    let retention = Retention::from(&config.retention);
    {
        let store = store.clone();
        let audit = audit.clone();
        supervisor.spawn("retention", move |stop| {
            crate::retention::run(store.clone(), audit.clone(), retention, stop)
        });
    }
    {
        let pipeline = pipeline.clone();
        supervisor.spawn("upkeep", move |stop| {
            let pipeline = pipeline.clone();
            async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(Duration::from_secs(60)) => {}
                    }
                    // The same ingress period as the retention task.
                    pipeline
                        .upkeep(retention.ingress_ms)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        });
    }
    if let Some(sb) = bench.sandboxes() {
        let sb = sb.clone();
        supervisor.spawn("sandbox-prune", move |stop| {
            crate::sandbox::prune_loop(sb.clone(), stop)
        });
    }

    let replayed = pipeline
        .replay(leftover)
        .await
        .context("cannot read the ingress queue")?;
    // Only now: the sweep must not race the start-up replay for its rows.
    {
        // Rows accepted but owned by no one (an admission that failed after
        // the ingress write, an actor that died) are answered without
        // waiting for a restart; for replicas, also the rows of a replica
        // that died, as soon as its claims run out.
        let pipeline = pipeline.clone();
        let cluster = cluster.clone();
        let every = cluster.as_ref().map_or(SWEEP_EVERY, |c| c.timing().beat);
        supervisor.spawn("ingress-sweep", move |stop| {
            let pipeline = pipeline.clone();
            let cluster = cluster.clone();
            async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(every) => {}
                    }
                    match &cluster {
                        None => pipeline.sweep_unowned(SWEEP_GRACE).await,
                        Some(c) => {
                            pipeline
                                .sweep_cluster(c, SWEEP_GRACE, TAKE_OVER_AT_ONCE)
                                .await
                        }
                    }
                    .map_err(|e| e.to_string())?;
                }
            }
        });
    }

    state.ready.store(true, Ordering::Release);
    tracing::info!(
        address = %format!("{scheme}://{bind}"),
        data_dir = %dir.display(),
        default_agent = %loaded.default_agent,
        replayed,
        "switchboard is ready"
    );

    wait_for_signal().await;
    let grace = Duration::from_secs(config.gateway.shutdown_grace_secs);
    tracing::info!(grace = ?grace, running = sessions.running(), "shutting down: finishing in-flight turns");
    state.ready.store(false, Ordering::Release);
    let in_time = sessions.drain(grace).await;
    if !in_time {
        tracing::warn!(
            "some turns did not finish in time; they will be answered after the next start"
        );
    }
    shutdown.cancel();
    let _ = reloads.await;
    supervisor.wait().await;
    // Listeners and turns have stopped: the others take what is left now.
    if let Some(c) = &cluster {
        c.leave().await;
    }
    http_stop.cancel();
    // Open WebSockets do not end by themselves: give requests a moment.
    match tokio::time::timeout(Duration::from_secs(2), http_task).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server error at shutdown"),
        Err(_) => tracing::info!("closing remaining connections"),
        _ => {}
    }
    if let Some(task) = metrics_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    if let Some(sb) = bench.sandboxes()
        && sb.settings().remove_on_shutdown
        && sb.used()
    {
        match tokio::time::timeout(Duration::from_secs(30), sb.remove_all()).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(count = n, "removed the sandbox containers"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot remove the sandbox containers"),
            Err(_) => tracing::warn!(
                "removing the sandbox containers took too long; `switchboard sandbox prune` removes them"
            ),
        }
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// `observability.metrics_bind`: `/metrics` on a listener of its own.
async fn serve_metrics(
    addr: &str,
    state: Arc<AppState>,
    limits: http::server::ConnLimits,
    stop: CancellationToken,
    health: &Health,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("observability.metrics_bind: cannot listen on {addr}: choose a free address")
    })?;
    let shown = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    health.set(
        "metrics",
        State::Running,
        Some(format!("http://{shown}/metrics")),
    );
    let app = http::metrics::standalone(state);
    Ok(tokio::spawn(http::server::serve(
        listener, app, limits, None, stop,
    )))
}

/// The `telemetry` component: running while spans reach the collector,
/// degraded (never failed: users are answered all the same) while they
/// do not.
fn watch_exports(health: &Arc<Health>) {
    let (Some(mut state), Some(url)) = (
        crate::telemetry::logging::export_state(),
        crate::telemetry::logging::traces_url(),
    ) else {
        return;
    };
    let shown = switchboard_agents::shown_url(url);
    health.set(
        "telemetry",
        State::Running,
        Some(format!("traces to {shown}")),
    );
    let health = health.clone();
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            let now = state.borrow_and_update().clone();
            match now {
                None => health.set(
                    "telemetry",
                    State::Running,
                    Some(format!("traces to {shown}")),
                ),
                Some(e) => {
                    tracing::warn!(error = %e, "spans could not be sent to the collector");
                    health.set(
                        "telemetry",
                        State::Degraded,
                        Some(format!("spans could not be sent to {shown}: {e}; they are dropped until the collector answers")),
                    );
                }
            }
        }
    });
}

pub(crate) async fn probe_provider(
    name: String,
    url: String,
    provider: Arc<dyn Provider>,
    health: Arc<Health>,
) {
    let component = format!("provider:{name}");
    match provider.probe().await {
        Ok(()) => {
            tracing::info!(provider = %name, url = %url, "model provider answers");
            health.set(&component, State::Running, Some(url));
        }
        Err(e) => {
            let hint = if url.contains(":11434") {
                " Start Ollama (`ollama serve`) or point base_url at your endpoint."
            } else {
                ""
            };
            tracing::warn!("{e}{hint} Until then, messages are answered with this error.");
            health.set(&component, State::Failed, Some(format!("{e}{hint}")));
        }
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let hup = signal(SignalKind::hangup());
        if let Err(e) = &hup {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with `switchboard config reload`");
        }
        hup.ok()
    }
}

/// SIGHUP reloads the config.
fn spawn_sighup(hangups: Hangups, reload: crate::reload::ReloadHandle, stop: CancellationToken) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Some(mut hup) = hangups else { return };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            // The reload task logs what it did.
            let _ = reload.reload("SIGHUP").await;
        }
    });
    #[cfg(not(unix))]
    let _ = (hangups, reload, stop);
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
