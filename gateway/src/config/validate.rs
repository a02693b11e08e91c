//! Checks that need more than the types: references, addresses, ranges.

use std::net::SocketAddr;

use super::{Config, ConfigError};

/// Validate a deserialized config; returns the default agent's name.
pub(super) fn validate(config: &Config) -> Result<String, Vec<ConfigError>> {
    let mut errors = Vec::new();
    for (name, t) in &config.channels.telegram.accounts {
        let key = |k: &str| format!("channels.telegram.accounts.{name}.{k}");
        check_token(
            &mut errors,
            &key,
            "token",
            (&t.token, &t.token_env),
            t.token(),
            "the bot token from @BotFather",
            switchboard_telegram::token_problem,
        );
        if t.mode == super::TelegramMode::Webhook
            && t.webhook_secret
                .as_deref()
                .is_none_or(|s| s.trim().len() < 16)
        {
            errors.push(ConfigError::new(
                key("webhook_secret"),
                "webhook mode needs a secret of 16 or more characters (A-Z, a-z, 0-9, _ and -) so strangers cannot post updates",
            ));
        }
        check_agent(&mut errors, config, &key, t.agent.as_deref());
        if t.poll_timeout_secs == 0 || t.poll_timeout_secs > 50 {
            errors.push(ConfigError::new(
                key("poll_timeout_secs"),
                "must be between 1 and 50",
            ));
        }
    }
    for (name, d) in &config.channels.discord.accounts {
        let key = |k: &str| format!("channels.discord.accounts.{name}.{k}");
        check_token(
            &mut errors,
            &key,
            "token",
            (&d.token, &d.token_env),
            d.token(),
            "the bot token from the Discord Developer Portal (Bot → Reset Token)",
            switchboard_discord::token_problem,
        );
        check_agent(&mut errors, config, &key, d.agent.as_deref());
        for (k, url, schemes) in [
            ("api_url", &d.api_url, ["http://", "https://"]),
            ("gateway_url", &d.gateway_url, ["ws://", "wss://"]),
        ] {
            if let Some(u) = url
                && !schemes.iter().any(|s| u.starts_with(s))
            {
                errors.push(ConfigError::new(
                    key(k),
                    format!("`{u}` is not a {} URL", schemes.join(" or ")),
                ));
            }
        }
        if d.max_lines < 3 {
            errors.push(ConfigError::new(
                key("max_lines"),
                "must be 3 or more (a code line needs its two fence lines)",
            ));
        }
    }
    for (name, a) in &config.channels.slack.accounts {
        check_slack(&mut errors, config, name, a);
    }
    for (key, why) in config
        .cron
        .problems()
        .into_iter()
        .chain(config.hooks.problems())
    {
        errors.push(ConfigError::new(key, why));
    }
    let targets = config
        .cron
        .jobs
        .iter()
        .map(|(n, j)| (format!("cron.jobs.{n}.deliver"), &j.deliver))
        .chain(
            config
                .hooks
                .hooks
                .iter()
                .map(|(n, h)| (format!("hooks.{n}.deliver"), &h.deliver)),
        );
    for (key, deliver) in targets {
        if let Ok(crate::cron::parse::Deliver::Chat {
            channel, account, ..
        }) = crate::cron::parse::parse_deliver(deliver)
        {
            let known = match channel.as_str() {
                "telegram" => config.channels.telegram.accounts.contains_key(&account),
                "discord" => config.channels.discord.accounts.contains_key(&account),
                "slack" => config.channels.slack.accounts.contains_key(&account),
                _ => false,
            };
            if !known {
                errors.push(ConfigError::new(
                    key,
                    format!(
                        "delivers to `{channel}:{account}`, which is not a configured channel account: add [channels.{channel}.accounts.{account}], or write channel:account:chat with one of the telegram, discord or slack accounts"
                    ),
                ));
            }
        }
    }
    for (name, job) in &config.cron.jobs {
        if let Some(a) = &job.agent
            && !config.agents.contains_key(a)
        {
            errors.push(ConfigError::new(
                format!("cron.jobs.{name}.agent"),
                format!("names the agent `{a}`, which is not configured: add [agents.{a}] or name one of the agents"),
            ));
        }
    }
    for (name, hook) in &config.hooks.hooks {
        if let Some(a) = &hook.agent
            && !config.agents.contains_key(a)
        {
            errors.push(ConfigError::new(
                format!("hooks.{name}.agent"),
                format!("names the agent `{a}`, which is not configured: add [agents.{a}] or name one of the agents"),
            ));
        }
    }
    if let Some(url) = &config.store.url
        && !url.starts_with("secret:")
        && !url.starts_with("postgres://")
        && !url.starts_with("postgresql://")
    {
        // Never quoted: it may hold a password.
        errors.push(ConfigError::new(
            "store.url",
            "must be a PostgreSQL URL (postgres://user:password@host:5432/database) or \"secret:NAME\"; \
             leave it out for the embedded SQLite store",
        ));
    }
    let cluster = &config.cluster;
    if cluster.enabled && config.store.url.is_none() {
        errors.push(ConfigError::new(
            "cluster.enabled",
            "replicas need a shared PostgreSQL store: set [store] url = \"postgres://…\" \
             (a SQLite data directory allows one gateway only)",
        ));
    }
    if !(3..=300).contains(&cluster.lease_secs) {
        errors.push(ConfigError::new(
            "cluster.lease_secs",
            "must be 3 to 300 seconds (another replica takes over within this long after one dies)",
        ));
    }
    if let Some(id) = &cluster.replica_id
        && (id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    {
        errors.push(ConfigError::new(
            "cluster.replica_id",
            "must be 1 to 64 letters, digits, `-`, `_` or `.` (e.g. the pod's name)",
        ));
    }
    let enc = &config.store.encryption;
    if enc.iterations < switchboard_memory::crypto::MIN_ITERATIONS {
        errors.push(ConfigError::new(
            "store.encryption.iterations",
            format!(
                "must be {} or more (PBKDF2-HMAC-SHA256 below that is too cheap to guess against)",
                switchboard_memory::crypto::MIN_ITERATIONS
            ),
        ));
    }
    if enc.credential.is_empty() || enc.credential.contains('/') {
        errors.push(ConfigError::new(
            "store.encryption.credential",
            "must be a systemd credential name (no `/`)",
        ));
    }
    for (k, why) in config.sandbox.problems() {
        errors.push(ConfigError::new(format!("sandbox.{k}"), why));
    }
    let g = &config.gateway;
    match g.bind.parse::<SocketAddr>() {
        Ok(addr)
            if !addr.ip().is_loopback() && g.auth.token.as_deref().is_none_or(str::is_empty) =>
        {
            errors.push(ConfigError::new(
                "gateway.bind",
                format!(
                    "{} is reachable from other machines, so the control API needs a token: \
                     set gateway.auth.token or SWITCHBOARD_TOKEN, or bind 127.0.0.1",
                    g.bind
                ),
            ));
        }
        Ok(addr) if !addr.ip().is_loopback() && g.tls.is_none() && !g.behind_proxy => {
            errors.push(ConfigError::new(
                "gateway.bind",
                format!(
                    "{} is reachable from other machines, and plain HTTP would carry the token in the clear: \
                     set [gateway.tls] cert and key, or gateway.behind_proxy = true when a reverse proxy \
                     in front terminates TLS, or bind 127.0.0.1",
                    g.bind
                ),
            ));
        }
        Ok(_) => {}
        Err(_) => errors.push(ConfigError::new(
            "gateway.bind",
            format!(
                "`{}` is not an address: write it as IP:port, e.g. 127.0.0.1:7788",
                g.bind
            ),
        )),
    }
    for (key, token) in [
        ("gateway.auth.token", g.auth.token.as_deref()),
        (
            "observability.metrics_token",
            config.observability.metrics_token.as_deref(),
        ),
    ] {
        if let Some(why) = token
            .filter(|t| !t.trim().is_empty())
            .and_then(crate::token::weakness)
        {
            errors.push(ConfigError::new(
                key,
                format!(
                    "is too weak to guard the gateway: {why}. Make a token with `switchboard token new` and put it here (or in SWITCHBOARD_TOKEN, or in a stored secret as \"secret:NAME\")"
                ),
            ));
        }
    }
    for (i, p) in g.trusted_proxies.iter().enumerate() {
        if let Err(e) = crate::http::throttle::Net::parse(p) {
            errors.push(ConfigError::new(format!("gateway.trusted_proxies[{i}]"), e));
        }
    }
    if let Some(tls) = &g.tls {
        for (k, path) in [("cert", &tls.cert), ("key", &tls.key)] {
            if !path.is_file() {
                errors.push(ConfigError::new(
                    format!("gateway.tls.{k}"),
                    format!("{} is not a file: give the PEM file's path", path.display()),
                ));
            }
        }
    }
    let l = &g.limits;
    for (k, v) in [
        ("max_connections", l.max_connections),
        ("header_timeout_secs", l.header_timeout_secs as usize),
        ("chat_body_bytes", l.chat_body_bytes),
        ("webhook_body_bytes", l.webhook_body_bytes),
        ("config_body_bytes", l.config_body_bytes),
        ("ws_message_bytes", l.ws_message_bytes),
    ] {
        if v == 0 {
            errors.push(ConfigError::new(
                format!("gateway.limits.{k}"),
                "must be at least 1",
            ));
        }
    }
    if g.max_concurrent_runs == 0 {
        errors.push(ConfigError::new(
            "gateway.max_concurrent_runs",
            "must be at least 1",
        ));
    }
    if g.inbound_queue == 0 {
        errors.push(ConfigError::new(
            "gateway.inbound_queue",
            "must be at least 1",
        ));
    }
    for (name, p) in &config.providers {
        let key = |k: &str| format!("providers.{name}.{k}");
        match reqwest::Url::parse(&p.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ if p.base_url.trim().is_empty() => errors.push(ConfigError::new(
                key("base_url"),
                "is required for kind = \"openai\": the API base, e.g. http://127.0.0.1:11434/v1 or https://api.openai.com/v1",
            )),
            _ => errors.push(ConfigError::new(
                key("base_url"),
                format!("`{}` is not an http(s) URL: write it like http://127.0.0.1:11434/v1", p.base_url),
            )),
        }
        if p.model.trim().is_empty() {
            errors.push(ConfigError::new(
                key("model"),
                "is empty: name the model to ask, e.g. llama3.2",
            ));
        }
        if let Some(var) = &p.api_key_env {
            if p.api_key.is_none() && std::env::var_os(var).is_none() {
                errors.push(ConfigError::new(
                    key("api_key_env"),
                    format!("names the environment variable {var}, which is not set: export it, or set {}", key("api_key")),
                ));
            }
        }
        if p.timeout_secs == 0 {
            errors.push(ConfigError::new(key("timeout_secs"), "must be at least 1"));
        }
        if let Some(pricing) = &p.pricing {
            for (k, why) in pricing.problems(&key("pricing")) {
                errors.push(ConfigError::new(k, why));
            }
        }
    }
    let provider_names = || {
        config
            .providers
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (name, a) in &config.agents {
        if !config.providers.contains_key(&a.provider) {
            errors.push(ConfigError::new(
                format!("agents.{name}.provider"),
                format!(
                    "there is no provider named `{}`: add [providers.{}] or use one of: {}",
                    a.provider,
                    a.provider,
                    provider_names()
                ),
            ));
        }
        for (i, (provider, _)) in a.fallback_pairs().into_iter().enumerate() {
            if !config.providers.contains_key(provider) {
                errors.push(ConfigError::new(
                    format!("agents.{name}.fallbacks[{i}]"),
                    format!(
                        "there is no provider named `{provider}`: write \"name\" or \"name/model\" with one of: {}",
                        provider_names()
                    ),
                ));
            }
        }
        if a.context_window < 512 {
            errors.push(ConfigError::new(
                format!("agents.{name}.context_window"),
                "must be at least 512 tokens",
            ));
        }
        if a.history_limit == 0 {
            errors.push(ConfigError::new(
                format!("agents.{name}.history_limit"),
                "must be at least 1",
            ));
        }
        if a.keep_recent_messages == 0 {
            errors.push(ConfigError::new(
                format!("agents.{name}.keep_recent_messages"),
                "must be at least 1: a compaction keeps the conversation's latest message whole",
            ));
        }
        check_memory(&mut errors, config, name, a);
        let people = [
            ("approvals.approvers", &a.approvals.approvers),
            ("tools.operators", &a.tools.operators),
        ];
        for (list, entries) in people {
            for (i, entry) in entries.iter().enumerate() {
                if let Some(why) = approver_problem(entry) {
                    errors.push(ConfigError::new(format!("agents.{name}.{list}[{i}]"), why));
                }
            }
        }
    }
    let agent_names = || config.agents.keys().cloned().collect::<Vec<_>>().join(", ");
    let default_agent = match &g.default_agent {
        Some(a) if config.agents.contains_key(a) => Some(a.clone()),
        Some(a) => {
            errors.push(ConfigError::new(
                "gateway.default_agent",
                format!(
                    "there is no agent named `{a}`: use one of: {}",
                    agent_names()
                ),
            ));
            None
        }
        None if config.agents.contains_key("main") => Some("main".to_string()),
        None if config.agents.len() == 1 => config.agents.keys().next().cloned(),
        None if config.agents.is_empty() => {
            errors.push(ConfigError::new(
                "agents",
                "no agent is defined and there are several providers: add [agents.main] with provider = \"<name>\"",
            ));
            None
        }
        None => {
            errors.push(ConfigError::new(
                "gateway.default_agent",
                format!(
                    "several agents and none is named `main`: set it to one of: {}",
                    agent_names()
                ),
            ));
            None
        }
    };
    for (i, b) in config.bindings.iter().enumerate() {
        if !config.agents.contains_key(&b.agent) {
            errors.push(ConfigError::new(
                format!("bindings[{i}].agent"),
                format!(
                    "there is no agent named `{}`: use one of: {}",
                    b.agent,
                    agent_names()
                ),
            ));
        }
        if b.account.is_some() && b.channel.is_none() {
            errors.push(ConfigError::new(
                format!("bindings[{i}].account"),
                "an account belongs to a channel: set bindings.channel too",
            ));
        }
    }
    let s = &config.sessions;
    if s.mailbox == 0 {
        errors.push(ConfigError::new("sessions.mailbox", "must be at least 1"));
    }
    if s.daily_reset_hour.is_some_and(|h| h > 23) {
        errors.push(ConfigError::new(
            "sessions.daily_reset_hour",
            "must be an hour from 0 to 23",
        ));
    }
    if s.idle_reset_minutes == Some(0) {
        errors.push(ConfigError::new(
            "sessions.idle_reset_minutes",
            "must be at least 1; leave it out to turn idle resets off",
        ));
    }
    check_retention(&mut errors, &config.retention);
    match (errors.is_empty(), default_agent) {
        (true, Some(agent)) => Ok(agent),
        _ => Err(errors),
    }
}

/// A platform token: present (here or in its variable) and well formed.
fn check_token(
    errors: &mut Vec<ConfigError>,
    key: &dyn Fn(&str) -> String,
    name: &str,
    (token, var): (&Option<String>, &Option<String>),
    value: Option<String>,
    what: &str,
    problem: fn(&str) -> Option<&'static str>,
) {
    if token.is_none() && var.is_none() {
        errors.push(ConfigError::new(
            key(name),
            format!("is missing: set {what}, or {name}_env to a variable holding it"),
        ));
    }
    check_optional_secret(errors, key, name, (token, var), value, problem);
}

/// A secret that may be given in the file or by `<name>_env`: the
/// variable is set and the value looks right.
fn check_optional_secret(
    errors: &mut Vec<ConfigError>,
    key: &dyn Fn(&str) -> String,
    name: &str,
    (token, var): (&Option<String>, &Option<String>),
    value: Option<String>,
    problem: fn(&str) -> Option<&'static str>,
) {
    if let (None, Some(var)) = (token, var)
        && std::env::var(var).is_err()
    {
        errors.push(ConfigError::new(
            key(&format!("{name}_env")),
            format!("the variable {var} is not set: export it or put the value in `{name}`"),
        ));
    }
    if let Some(token) = value
        && let Some(why) = problem(&token)
    {
        errors.push(ConfigError::new(key(name), why));
    }
}

fn check_slack(
    errors: &mut Vec<ConfigError>,
    config: &Config,
    name: &str,
    a: &super::SlackAccountConfig,
) {
    let key = |k: &str| format!("channels.slack.accounts.{name}.{k}");
    check_token(
        errors,
        &key,
        "bot_token",
        (&a.bot_token, &a.bot_token_env),
        a.bot_token(),
        "the Bot User OAuth Token (xoxb-…) from OAuth & Permissions",
        switchboard_slack::bot_token_problem,
    );
    check_optional_secret(
        errors,
        &key,
        "app_token",
        (&a.app_token, &a.app_token_env),
        a.app_token(),
        switchboard_slack::app_token_problem,
    );
    check_optional_secret(
        errors,
        &key,
        "signing_secret",
        (&a.signing_secret, &a.signing_secret_env),
        a.signing_secret(),
        switchboard_slack::signing_secret_problem,
    );
    let none = |v: &Option<String>, var: &Option<String>| v.is_none() && var.is_none();
    if none(&a.app_token, &a.app_token_env) && none(&a.signing_secret, &a.signing_secret_env) {
        errors.push(ConfigError::new(
            key("app_token"),
            "is missing: set app_token (an xapp- token for Socket Mode; no public URL needed) or signing_secret (the Events API posting to /hooks/slack/<account>)",
        ));
    }
    if let Some(u) = &a.api_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        errors.push(ConfigError::new(
            key("api_url"),
            format!("`{u}` is not an http:// or https:// URL (e.g. https://slack.com/api)"),
        ));
    }
    if let Some(c) = &a.slash_command
        && (!c.starts_with('/') || c.len() < 2 || c.contains(char::is_whitespace))
    {
        errors.push(ConfigError::new(
            key("slash_command"),
            format!("`{c}` is not a slash command: write it with its slash, e.g. \"/assistant\""),
        ));
    }
    if a.edit_interval_ms < 200 {
        errors.push(ConfigError::new(
            key("edit_interval_ms"),
            "must be at least 200 (Slack rate-limits chat.update to about one a second)",
        ));
    }
    check_agent(errors, config, &key, a.agent.as_deref());
}

/// What is wrong with an `approvers` or `operators` entry, which must be
/// `<channel>:<sender id>` as the platform identifies the person.
fn approver_problem(entry: &str) -> Option<String> {
    const CHANNELS: &[&str] = &["telegram", "discord", "slack", "webchat"];
    const EXAMPLE: &str = "e.g. \"telegram:123456\" or \"slack:U0123\"";
    let Some((channel, id)) = entry.split_once(':') else {
        return Some(format!(
            "`{entry}` is not `<channel>:<sender id>`: write the channel, a colon and the person's user id, {EXAMPLE}"
        ));
    };
    if !CHANNELS.contains(&channel) {
        return Some(format!(
            "`{channel}` in `{entry}` is not a channel: use one of {}, {EXAMPLE}",
            CHANNELS.join(", ")
        ));
    }
    if id.is_empty() || id.trim() != id || id.contains(char::is_whitespace) {
        return Some(format!(
            "`{entry}` has no sender id after `{channel}:` (or one with spaces): write the person's user id, {EXAMPLE}"
        ));
    }
    if id.starts_with('@') || id.starts_with("<@") {
        return Some(format!(
            "`{entry}` names a username or a mention; people are named by user id, which does not change (Telegram and Discord: a number; Slack: U… or W…), {EXAMPLE}"
        ));
    }
    if matches!(channel, "telegram" | "discord") && !id.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!(
            "`{id}` is not a {channel} user id, which is a number: write it like \"{channel}:123456\" (Telegram shows it with @userinfobot; Discord with Developer Mode → Copy User ID)"
        ));
    }
    None
}

/// `[agents.<name>.memory]`: the embeddings model names an
/// OpenAI-compatible provider, the store holds at least one memory, and
/// the recall leaves room for the conversation.
fn check_memory(
    errors: &mut Vec<ConfigError>,
    config: &Config,
    agent: &str,
    a: &super::AgentConfig,
) {
    let m = &a.memory;
    let key = |k: &str| format!("agents.{agent}.memory.{k}");
    if m.max_entries == 0 {
        errors.push(ConfigError::new(
            key("max_entries"),
            "must be at least 1 (it is how many memories each person, or the agent, may keep)",
        ));
    }
    if u64::from(m.recall_tokens) * 2 > u64::from(a.context_window) {
        errors.push(ConfigError::new(
            key("recall_tokens"),
            format!(
                "{} tokens of recalled memories would take more than half of the context window ({} tokens, agents.{agent}.context_window): lower it, or 0 to turn recall off",
                m.recall_tokens, a.context_window
            ),
        ));
    }
    let Some(wanted) = &m.embeddings else { return };
    let providers = config
        .providers
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let Some((provider, _)) = m.embeddings_pair() else {
        errors.push(ConfigError::new(
            key("embeddings"),
            format!(
                "`{wanted}` is not \"provider/model\": write a provider of [providers.*] and its embeddings model, e.g. \"local/nomic-embed-text\""
            ),
        ));
        return;
    };
    match config.providers.get(provider) {
        None => errors.push(ConfigError::new(
            key("embeddings"),
            format!(
                "there is no provider named `{provider}`: write \"provider/model\" with one of: {providers}"
            ),
        )),
        Some(p) if p.kind != super::ProviderKind::Openai => errors.push(ConfigError::new(
            key("embeddings"),
            format!(
                "`{provider}` is not an OpenAI-compatible provider (kind = \"openai\"), so it has no /embeddings endpoint: name one that has, e.g. an Ollama or OpenAI provider"
            ),
        )),
        Some(_) => {}
    }
}

/// An account's `agent` names a configured agent.
/// `[retention]`: every period a day or more (no upper limit: `u32`
/// days in milliseconds fit an `i64`).
fn check_retention(errors: &mut Vec<ConfigError>, r: &super::RetentionConfig) {
    if r.ingress_days == 0 {
        errors.push(ConfigError::new(
            "retention.ingress_days",
            "must be at least 1: a redelivered message is recognized only while its finished row is kept",
        ));
    }
    for (key, days) in [
        ("transcript_days", r.transcript_days),
        ("usage_days", r.usage_days),
        ("approvals_days", r.approvals_days),
        ("audit_days", r.audit_days),
    ] {
        if days == Some(0) {
            errors.push(ConfigError::new(
                format!("retention.{key}"),
                "must be at least 1; leave it out to keep them forever",
            ));
        }
    }
}

fn check_agent(
    errors: &mut Vec<ConfigError>,
    config: &Config,
    key: &dyn Fn(&str) -> String,
    agent: Option<&str>,
) {
    if let Some(agent) = agent
        && !config.agents.is_empty()
        && !config.agents.contains_key(agent)
    {
        errors.push(ConfigError::new(
            key("agent"),
            format!(
                "there is no agent named `{agent}`: add [agents.{agent}] or name an existing one"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    fn problems(text: &str) -> String {
        load_str(text, "c", &[]).unwrap_err().to_string()
    }

    #[test]
    fn references_and_addresses_are_checked() {
        let p = problems("[agents.main]\nprovider = \"nope\"\n");
        assert!(
            p.contains("agents.main.provider: there is no provider named `nope`"),
            "{p}"
        );
        let p = problems("[gateway]\nbind = \"localhost\"\n");
        assert!(
            p.contains("gateway.bind: `localhost` is not an address"),
            "{p}"
        );
        let p = problems("[[bindings]]\nagent = \"ghost\"\n");
        assert!(p.contains("bindings[0].agent"), "{p}");
        let p = problems(
            "[providers.local]\nkind = \"openai\"\nbase_url = \"ftp://x\"\nmodel = \"m\"\n",
        );
        assert!(p.contains("providers.local.base_url"), "{p}");
    }

    #[test]
    fn a_negative_price_refuses_the_config() {
        let provider = "[providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"m\"\n[providers.local.pricing]\n";
        let p = problems(&format!("{provider}input_per_mtok = -1\n"));
        assert!(
            p.contains(
                "providers.local.pricing.input_per_mtok: is -1: a price must be a number ≥ 0"
            ),
            "{p}"
        );
        let ok = load_str(
            &format!("{provider}input_per_mtok = 0.15\noutput_per_mtok = 0.6\n"),
            "c",
            &[],
        );
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    #[test]
    fn public_bind_needs_a_token() {
        let p = problems("[gateway]\nbind = \"0.0.0.0:7788\"\n");
        assert!(p.contains("needs a token"), "{p}");
        let p = problems(
            "[gateway]\nbind = \"0.0.0.0:7788\"\n[gateway.auth]\ntoken = \"Zq7mR2vL9kT4wZ8nC1pF6hJ3bD5gS0aEy\"\n",
        );
        assert!(
            p.contains("set [gateway.tls] cert and key, or gateway.behind_proxy = true"),
            "{p}"
        );
        let ok = load_str(
            "[gateway]\nbind = \"0.0.0.0:7788\"\nbehind_proxy = true\n[gateway.auth]\ntoken = \"Zq7mR2vL9kT4wZ8nC1pF6hJ3bD5gS0aEy\"\n",
            "c",
            &[],
        );
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    #[test]
    fn a_weak_token_refuses_to_start_and_says_how_to_make_one() {
        for weak in [
            "short-token",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "change-me-change-me-change-me-change-me",
        ] {
            let p = problems(&format!("[gateway.auth]\ntoken = \"{weak}\"\n"));
            assert!(p.contains("gateway.auth.token: is too weak"), "{weak}: {p}");
            assert!(p.contains("switchboard token new"), "{p}");
            assert!(!p.contains(weak), "the token itself is not repeated: {p}");
        }
        let p = problems("[observability]\nmetrics_token = \"scrape\"\n");
        assert!(
            p.contains("observability.metrics_token: is too weak"),
            "{p}"
        );
    }

    #[test]
    fn the_host_network_is_refused_with_what_to_use_instead() {
        let p = problems("[sandbox]\nnetwork = \"host\"\n");
        assert!(
            p.contains("sandbox.network: \"host\" would put sandboxed commands on this machine's own network"),
            "{p}"
        );
        assert!(
            p.contains("use \"none\" (no network, the default) or a named bridge network"),
            "{p}"
        );
        for ok in ["none", "bridge"] {
            let text = format!("[sandbox]\nnetwork = \"{ok}\"\n");
            assert!(load_str(&text, "c", &[]).is_ok(), "{ok}");
        }
    }

    #[test]
    fn approvers_are_channel_and_user_id() {
        let ok = load_str(
            "[agents.main]\nprovider = \"local\"\n[agents.main.approvals]\napprovers = [\"telegram:123456\", \"slack:U0123\", \"discord:80351110224678912\", \"webchat:me\"]\n",
            "c",
            &[],
        );
        assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
        for (entry, says) in [
            ("123456", "is not `<channel>:<sender id>`"),
            (
                "tg:123456",
                "`tg` in `tg:123456` is not a channel: use one of telegram",
            ),
            ("telegram:", "has no sender id after `telegram:`"),
            ("telegram:@alice", "names a username"),
            (
                "telegram:alice",
                "is not a telegram user id, which is a number",
            ),
        ] {
            let p = problems(&format!(
                "[agents.main]\nprovider = \"local\"\n[agents.main.approvals]\napprovers = [\"slack:U1\", \"{entry}\"]\n"
            ));
            assert!(
                p.contains("agents.main.approvals.approvers[1]: ") && p.contains(says),
                "{entry}: {p}"
            );
        }
    }

    #[test]
    fn retention_days_are_at_least_one_and_default_to_a_week_of_ingress() {
        let d = load_str("", "c", &[]).unwrap().config.retention;
        assert_eq!(d.ingress_days, 7);
        assert_eq!(
            (d.transcript_days, d.usage_days, d.approvals_days),
            (None, None, None),
            "kept forever unless set"
        );
        let ok = load_str(
            "[retention]\ningress_days = 1\ntranscript_days = 30\nusage_days = 400\napprovals_days = 90\n",
            "c",
            &[],
        )
        .unwrap();
        assert_eq!(ok.config.retention.transcript_days, Some(30));
        let p = problems("[retention]\ningress_days = 0\n");
        assert!(
            p.contains("retention.ingress_days: must be at least 1"),
            "{p}"
        );
        for key in ["transcript_days", "usage_days", "approvals_days"] {
            let p = problems(&format!("[retention]\n{key} = 0\n"));
            assert!(
                p.contains(&format!("retention.{key}: must be at least 1"))
                    && p.contains("leave it out"),
                "{key}: {p}"
            );
        }
        let p = problems("[retention]\ningress_days = 7\ntranscripts_days = 3\n");
        assert!(p.contains("transcripts_days"), "an unknown key passed: {p}");
    }

    #[test]
    fn memory_settings_are_checked() {
        let d = load_str("", "c", &[]).unwrap().config.agents["main"]
            .memory
            .clone();
        assert_eq!(d.scope, crate::config::MemoryScope::Person);
        assert_eq!((d.recall_tokens, d.max_entries), (0, 10_000));
        assert_eq!(d.embeddings, None);
        let ok = load_str(
            "[agents.main]\nprovider = \"local\"\n[agents.main.memory]\nscope = \"agent\"\nembeddings = \"local/nomic-embed-text\"\nrecall_tokens = 500\n",
            "c",
            &[],
        );
        assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
        for (memory, says) in [
            (
                "embeddings = \"nope/m\"",
                "agents.main.memory.embeddings: there is no provider named `nope`",
            ),
            (
                "embeddings = \"nomic-embed-text\"",
                "agents.main.memory.embeddings: `nomic-embed-text` is not \"provider/model\"",
            ),
            (
                "embeddings = \"claude/m\"",
                "is not an OpenAI-compatible provider",
            ),
            (
                "max_entries = 0",
                "agents.main.memory.max_entries: must be at least 1",
            ),
            (
                "recall_tokens = 20000",
                "agents.main.memory.recall_tokens: 20000 tokens",
            ),
            ("scope = \"everyone\"", "scope"),
            ("recal_tokens = 5", "recal_tokens"),
        ] {
            let p = problems(&format!(
                "[providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"m\"\n[providers.claude]\nkind = \"anthropic\"\nmodel = \"c\"\napi_key = \"k\"\n[agents.main]\nprovider = \"local\"\n[agents.main.memory]\n{memory}\n"
            ));
            assert!(p.contains(says), "{memory}: {p}");
        }
    }

    #[test]
    fn several_problems_are_all_reported() {
        let err =
            load_str("[sessions]\nmailbox = 0\ndaily_reset_hour = 24\n", "c", &[]).unwrap_err();
        assert_eq!(err.errors.len(), 2, "{err}");
    }
}
