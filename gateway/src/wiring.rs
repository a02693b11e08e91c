//! What the config describes, built: the agents, each channel account's
//! channel and access rules, and the router. The one place channel kinds
//! are registered; used at start ([`crate::serve`]) and by a reload
//! ([`crate::reload`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use switchboard_agents::{Agent, FallbackChain, Provider, RetryPolicy};
use switchboard_channel::Channel;
use switchboard_discord::{DiscordChannel, DiscordSettings};
use switchboard_slack::{SlackChannel, SlackSettings};
use switchboard_telegram::{TelegramChannel, TelegramSettings};

use crate::config::{AccessRules, BindingConfig, Config, TelegramMode};
use crate::pipeline::routing::Router;
use crate::sessions::AgentSlot;
use crate::sessions::context::ContextBudget;
use crate::telemetry::Telemetry;

/// A channel account: (channel, account).
pub type AccountKey = (String, String);

/// Agents by name, and the (provider, model) pairs they ask.
pub(crate) type BuiltAgents = (HashMap<String, AgentSlot>, Vec<(String, String)>);

/// Build every agent of `config`, with the models they ask (for metrics).
pub(crate) fn build_agents(
    config: &Config,
    dir: &Path,
    telemetry: &Arc<Telemetry>,
) -> anyhow::Result<BuiltAgents> {
    let mut agents = HashMap::new();
    let mut models = Vec::new();
    for (name, a) in &config.agents {
        let workspace = crate::sandbox::agent_workspace(config, dir, name);
        std::fs::create_dir_all(&workspace).with_context(|| {
            format!(
                "agents.{name}.workspace: cannot create {}",
                workspace.display()
            )
        })?;
        let system_prompt = match &a.system_prompt_file {
            Some(file) => {
                let path = workspace.join(file);
                std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "agents.{name}.system_prompt_file: cannot read {}: create the file or remove the key",
                        path.display()
                    )
                })?
            }
            None => a.system_prompt.clone(),
        };
        let p = &config.providers[&a.provider];
        let model = a.model.clone().unwrap_or_else(|| p.model.clone());
        models.push((a.provider.clone(), model.clone()));
        let fallbacks = a
            .fallback_pairs()
            .into_iter()
            .map(|(name, m)| {
                let fp = &config.providers[name];
                crate::serve::provider_for(name, fp, m.unwrap_or(&fp.model), telemetry)
            })
            .collect();
        let policy = RetryPolicy {
            max_retries: p.max_retries,
            ..RetryPolicy::default()
        };
        let provider: Arc<dyn Provider> = Arc::new(FallbackChain::new(
            crate::serve::provider_for(&a.provider, p, &model, telemetry),
            fallbacks,
            policy,
        ));
        agents.insert(
            name.clone(),
            AgentSlot {
                agent: Agent::new(name, system_prompt, provider).with_max_steps(a.max_tool_steps),
                history_limit: a.history_limit,
                model,
                tools: a.tools.policy(),
                daily_token_budget: a.daily_token_budget,
                context: ContextBudget {
                    window: a.context_window as usize,
                    keep_recent: a.keep_recent_messages as usize,
                },
                approvals: a.approvals.policy(),
                approval_timeout: Duration::from_secs(a.approvals.timeout_secs.max(1)),
                approvers: a.approvals.approvers.clone(),
            },
        );
    }
    Ok((agents, models))
}

/// Each configured account of Telegram, Discord and Slack with its config
/// as a TOML value: two equal values are the same account.
pub(crate) fn account_specs(config: &Config) -> BTreeMap<AccountKey, toml::Value> {
    // A config that does not serialize (it always does) compares unequal
    // to anything, so its account counts as changed.
    fn value<T: Serialize>(v: &T) -> toml::Value {
        toml::Value::try_from(v)
            .unwrap_or_else(|_| toml::Value::String(uuid::Uuid::new_v4().to_string()))
    }
    let c = &config.channels;
    let telegram = c.telegram.accounts.iter().map(|(a, t)| {
        (
            (switchboard_telegram::NAME.to_string(), a.clone()),
            value(t),
        )
    });
    let discord = c
        .discord
        .accounts
        .iter()
        .map(|(a, d)| ((switchboard_discord::NAME.to_string(), a.clone()), value(d)));
    let slack = c
        .slack
        .accounts
        .iter()
        .map(|(a, s)| ((switchboard_slack::NAME.to_string(), a.clone()), value(s)));
    telegram.chain(discord).chain(slack).collect()
}

/// The channel of account `key` as `config` describes it.
pub(crate) fn build_account(config: &Config, key: &AccountKey) -> anyhow::Result<Arc<dyn Channel>> {
    let (channel, account) = (key.0.as_str(), key.1.as_str());
    let c = &config.channels;
    let built: Arc<dyn Channel> = match channel {
        switchboard_telegram::NAME => {
            let t = &c.telegram.accounts[account];
            let mut settings =
                TelegramSettings::new(account.to_string(), t.token().unwrap_or_default());
            settings.api_url = t.api_url.clone();
            settings.mode = match t.mode {
                TelegramMode::Polling => switchboard_telegram::Mode::Polling,
                TelegramMode::Webhook => switchboard_telegram::Mode::Webhook,
            };
            settings.webhook_url = t.webhook_url.clone();
            settings.webhook_secret = t.webhook_secret.clone();
            settings.poll_timeout = Duration::from_secs(t.poll_timeout_secs);
            settings.watchdog = Duration::from_secs(t.watchdog_secs);
            settings.edit_interval = Duration::from_millis(t.edit_interval_ms);
            Arc::new(TelegramChannel::new(settings).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        switchboard_discord::NAME => {
            let d = &c.discord.accounts[account];
            let mut settings =
                DiscordSettings::new(account.to_string(), d.token().unwrap_or_default());
            settings.api_url = d.api_url.clone();
            settings.gateway_url = d.gateway_url.clone();
            settings.guilds = d.guilds.clone();
            settings.allow_bots = d.allow_bots;
            settings.edit_interval = Duration::from_millis(d.edit_interval_ms);
            settings.max_lines = d.max_lines;
            settings.catch_up_channels = d.channels.clone();
            Arc::new(DiscordChannel::new(settings).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        switchboard_slack::NAME => {
            let a = &c.slack.accounts[account];
            let mut settings =
                SlackSettings::new(account.to_string(), a.bot_token().unwrap_or_default());
            settings.app_token = a.app_token();
            settings.signing_secret = a.signing_secret();
            settings.api_url = a.api_url.clone();
            settings.rules = switchboard_slack::events::Rules {
                allow_bots: a.allow_bots,
                mention_patterns: a.mention_patterns.clone(),
            };
            settings.slash_command = a.slash_command.clone();
            let emoji = |name: &str| {
                let name = name.trim().trim_matches(':');
                (!name.is_empty()).then(|| name.to_string())
            };
            settings.reactions = switchboard_slack::Reactions {
                working: emoji(&a.working_reaction),
                done: emoji(&a.done_reaction),
            };
            settings.edit_interval = Duration::from_millis(a.edit_interval_ms);
            Arc::new(SlackChannel::new(settings).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        other => anyhow::bail!("unknown channel {other}"),
    };
    Ok(built)
}

/// The access rules of every account that takes messages in (the web chat
/// too, when enabled).
pub(crate) fn access_rules(config: &Config) -> Vec<(AccountKey, AccessRules)> {
    let c = &config.channels;
    let mut access = Vec::new();
    if c.webchat.enabled {
        access.push((
            (
                crate::webchat::NAME.to_string(),
                crate::webchat::ACCOUNT.to_string(),
            ),
            c.webchat.access(),
        ));
    }
    for (a, t) in &c.telegram.accounts {
        access.push(((switchboard_telegram::NAME.into(), a.clone()), t.access()));
    }
    for (a, d) in &c.discord.accounts {
        access.push(((switchboard_discord::NAME.into(), a.clone()), d.access()));
    }
    for (a, s) in &c.slack.accounts {
        access.push(((switchboard_slack::NAME.into(), a.clone()), s.access()));
    }
    access
}

/// The router `config` describes: its bindings, then each account's
/// `agent = "…"` as a binding of the whole account.
pub(crate) fn router(config: &Config, default_agent: &str) -> Router {
    let mut bindings = config.bindings.clone();
    let c = &config.channels;
    let accounts = c
        .telegram
        .accounts
        .iter()
        .map(|(a, t)| (switchboard_telegram::NAME, a, t.agent.as_ref()))
        .chain(
            c.discord
                .accounts
                .iter()
                .map(|(a, d)| (switchboard_discord::NAME, a, d.agent.as_ref())),
        )
        .chain(
            c.slack
                .accounts
                .iter()
                .map(|(a, s)| (switchboard_slack::NAME, a, s.agent.as_ref())),
        );
    for (channel, account, agent) in accounts {
        if let Some(agent) = agent {
            bindings.push(BindingConfig {
                agent: agent.clone(),
                channel: Some(channel.to_string()),
                account: Some(account.clone()),
                peer: None,
            });
        }
    }
    Router::new(
        bindings,
        default_agent.to_string(),
        config.sessions.dm_scope,
    )
    .with_agents(config.agents.keys().cloned())
}

/// The agents by name, the default first (the UI's and `/api/status`'s
/// order).
pub(crate) fn agent_names(config: &Config, default_agent: &str) -> Vec<String> {
    let mut names = vec![default_agent.to_string()];
    names.extend(
        config
            .agents
            .keys()
            .filter(|a| *a != default_agent)
            .cloned(),
    );
    names
}
