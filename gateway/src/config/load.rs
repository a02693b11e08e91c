//! Reading a config: file, environment overrides, defaults, validation.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{AgentConfig, Config, ProviderConfig, validate};

/// One problem with the configuration: the key it concerns, what is wrong,
/// and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The dotted key, e.g. `providers.local.base_url` (empty for the file
    /// as a whole).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// Where the config came from (a path, or "the defaults").
    pub source_name: String,
    /// The problems, in the order found.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{} has {n} problem{}:",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

/// A loaded, normalized and validated configuration.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration with defaults filled in.
    pub config: Config,
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    /// The agent used when no binding matches.
    pub default_agent: String,
}

/// Load the file at `path` (or only defaults when `None`), apply the
/// environment `env` (pairs of name and value), normalize and validate.
/// A `"secret:NAME"` value is an error here: see [`load_with_secrets`].
pub fn load(path: Option<&Path>, env: &[(String, String)]) -> Result<LoadedConfig, ConfigErrors> {
    load_with_secrets(path, env, &BTreeMap::new())
}

/// The keys whose values are secrets: each accepts `"secret:NAME"`, the
/// secret `NAME` set with `switchboard secrets set`.
pub const SECRET_KEYS: &[&str] = &[
    "api_key",
    "token",
    "bot_token",
    "app_token",
    "signing_secret",
    "webhook_secret",
    "secret",
    "url",
    "metrics_token",
];

/// What the store must be opened with before `"secret:NAME"` values can
/// be read: the data directory and `[store]`, read from the file and the
/// environment alone, and the secrets it names.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    /// `gateway.data_dir`, if set.
    pub data_dir: Option<PathBuf>,
    /// `gateway.bind`, if set.
    pub bind: Option<String>,
    /// `gateway.auth.token` (or `SWITCHBOARD_TOKEN`), if set to a value
    /// rather than a secret's name.
    pub token: Option<String>,
    /// `[store]`.
    pub store: super::StoreConfig,
    /// The names of the secrets the config refers to, sorted, once each.
    pub secrets: Vec<String>,
    /// `[observability]`, for the log set up before the full load (the
    /// defaults when it does not parse: the full load says why).
    pub observability: super::ObservabilityConfig,
}

/// Read what [`Bootstrap`] holds from the file at `path` and `env`. Errors
/// are left to the full load, which reports them properly.
pub fn bootstrap(path: Option<&Path>, env: &[(String, String)]) -> Bootstrap {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Gateway {
        data_dir: Option<PathBuf>,
        bind: Option<String>,
        auth: Auth,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Auth {
        token: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Partial {
        gateway: Gateway,
        store: super::StoreConfig,
        observability: Option<toml::Value>,
    }
    let text = path
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    // Text that is not TOML: the environment alone (the full load says
    // what is wrong with the file).
    let mut table = text.parse::<Table>().unwrap_or_default();
    let _ = apply_env(&mut table, env);
    let mut secrets = Vec::new();
    secret_refs(&table, "", &mut secrets);
    let secrets: Vec<String> = {
        let mut names: Vec<String> = secrets.into_iter().map(|(_, n)| n).collect();
        names.sort();
        names.dedup();
        names
    };
    let partial: Partial = Value::Table(table).try_into().unwrap_or_default();
    Bootstrap {
        data_dir: partial.gateway.data_dir,
        bind: partial.gateway.bind,
        token: partial
            .gateway
            .auth
            .token
            .filter(|t| !t.starts_with("secret:")),
        store: partial.store,
        secrets,
        observability: partial
            .observability
            .and_then(|v| v.try_into().ok())
            .unwrap_or_default(),
    }
}

/// The names of the secrets config text `text` (with `env` applied)
/// refers to, sorted, once each; none when it does not parse.
pub fn secret_names(text: &str, env: &[(String, String)]) -> Vec<String> {
    let Ok(mut table) = text.parse::<Table>() else {
        return Vec::new();
    };
    let _ = apply_env(&mut table, env);
    let mut refs = Vec::new();
    secret_refs(&table, "", &mut refs);
    let mut names: Vec<String> = refs.into_iter().map(|(_, n)| n).collect();
    names.sort();
    names.dedup();
    names
}

/// Every `(key path, secret name)` of a `"secret:NAME"` value at a secret
/// key under `table`.
fn secret_refs(table: &Table, at: &str, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        match v {
            Value::Table(t) => secret_refs(t, &path, out),
            // Read from a file before the store opens (StoreConfig::postgres_url).
            Value::String(_) if path == "store.url" => {}
            Value::String(s) if SECRET_KEYS.contains(&k.as_str()) => {
                if let Some(name) = s.strip_prefix("secret:") {
                    out.push((path, name.trim().to_string()));
                }
            }
            _ => {}
        }
    }
}

/// Put each secret's value in place of its `"secret:NAME"`; an error per
/// secret that is not set.
fn resolve_secrets(
    table: &mut Table,
    at: &str,
    secrets: &BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) {
    for (k, v) in table.iter_mut() {
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        match v {
            Value::Table(t) => resolve_secrets(t, &path, secrets, errors),
            Value::String(_) if path == "store.url" => {}
            Value::String(s) if SECRET_KEYS.contains(&k.as_str()) => {
                if let Some(name) = s.strip_prefix("secret:").map(str::trim) {
                    match secrets.get(name) {
                        Some(value) => *s = value.clone(),
                        None => errors.push(ConfigError::new(
                            path,
                            format!(
                                "names the secret `{name}`, which is not set: run `switchboard secrets set {name}` (see `switchboard secrets list`)"
                            ),
                        )),
                    }
                }
            }
            _ => {}
        }
    }
}

/// [`load`], with the values of the secrets the config names (by name).
pub fn load_with_secrets(
    path: Option<&Path>,
    env: &[(String, String)],
    secrets: &BTreeMap<String, String>,
) -> Result<LoadedConfig, ConfigErrors> {
    let source_name = path.map_or_else(
        || "the default config".to_string(),
        |p| p.display().to_string(),
    );
    let text = match path {
        Some(p) => std::fs::read_to_string(p).map_err(|e| ConfigErrors {
            source_name: source_name.clone(),
            errors: vec![ConfigError::new(
                "",
                format!(
                    "cannot read it: {e}. Check the path given with --config or SWITCHBOARD_CONFIG."
                ),
            )],
        })?,
        None => String::new(),
    };
    let mut loaded = load_str_with_secrets(&text, &source_name, env, secrets)?;
    loaded.path = path.map(Path::to_path_buf);
    Ok(loaded)
}

/// Where and what a TOML syntax error is, without quoting the line: a
/// line that does not parse may hold a secret, and the message is shown
/// and logged.
pub(crate) fn toml_problem(
    text: &str,
    message: &str,
    span: Option<std::ops::Range<usize>>,
) -> String {
    let message = message.trim();
    match span {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    }
}

/// [`load`] for config text already in memory.
pub fn load_str(
    text: &str,
    source_name: &str,
    env: &[(String, String)],
) -> Result<LoadedConfig, ConfigErrors> {
    load_str_with_secrets(text, source_name, env, &BTreeMap::new())
}

/// [`load_with_secrets`] for config text already in memory.
pub fn load_str_with_secrets(
    text: &str,
    source_name: &str,
    env: &[(String, String)],
    secrets: &BTreeMap<String, String>,
) -> Result<LoadedConfig, ConfigErrors> {
    let fail = |errors| ConfigErrors {
        source_name: source_name.to_string(),
        errors,
    };
    let mut table: Table = text.parse().map_err(|e: toml::de::Error| {
        fail(vec![ConfigError::new(
            "",
            format!(
                "is not valid TOML: {}",
                toml_problem(text, e.message(), e.span())
            ),
        )])
    })?;
    // A file without providers gets the default one before the environment
    // applies, so `SWITCHBOARD_PROVIDERS__LOCAL__BASE_URL` can adjust it.
    if !table.contains_key("providers") {
        if let Ok(Value::Table(p)) = Value::try_from(ProviderConfig::ollama()) {
            let mut providers = Table::new();
            providers.insert("local".into(), Value::Table(p));
            table.insert("providers".into(), Value::Table(providers));
        }
    }
    apply_env(&mut table, env).map_err(|e| fail(vec![e]))?;
    let mut unset = Vec::new();
    resolve_secrets(&mut table, "", secrets, &mut unset);
    if !unset.is_empty() {
        return Err(fail(unset));
    }
    let mut config: Config = serde_path_to_error::deserialize(Value::Table(table))
        .map_err(|e| fail(vec![deserialize_error(&e)]))?;
    fill_defaults(&mut config);
    let default_agent = validate::validate(&config).map_err(fail)?;
    Ok(LoadedConfig {
        config,
        path: None,
        default_agent,
    })
}

fn deserialize_error(e: &serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let inner = e.inner().to_string();
    // toml appends "in `key`" on a second line; the key is named already.
    let inner = inner.trim().lines().next().unwrap_or("").trim().to_string();
    let path = e.path().to_string();
    let key = if path == "." { String::new() } else { path };
    let hint = if inner.starts_with("unknown field") {
        "remove it or correct its spelling"
    } else if inner.starts_with("missing field") {
        "add it"
    } else if inner.starts_with("unknown variant") {
        "use one of the values listed"
    } else {
        "correct the value's type"
    };
    ConfigError::new(key, format!("{inner}: {hint}"))
}

/// A fresh install has no providers or agents: give it Ollama and `main`.
/// An Anthropic provider without `base_url` gets Anthropic's.
fn fill_defaults(config: &mut Config) {
    for p in config.providers.values_mut() {
        if p.base_url.trim().is_empty() && p.kind == super::ProviderKind::Anthropic {
            p.base_url = super::ANTHROPIC_BASE_URL.into();
        }
    }
    if config.providers.is_empty() {
        config
            .providers
            .insert("local".into(), ProviderConfig::ollama());
    }
    if config.agents.is_empty() && config.providers.len() == 1 {
        let provider = config.providers.keys().next().cloned().unwrap_or_default();
        config
            .agents
            .insert("main".into(), AgentConfig::on(&provider));
    }
}

/// Apply `SWITCHBOARD_…` variables: `SWITCHBOARD_TOKEN` sets
/// `gateway.auth.token`, and `SWITCHBOARD_<A>__<B>__<C>` sets the key
/// `a.b.c` (e.g. `SWITCHBOARD_PROVIDERS__LOCAL__API_KEY`).
fn apply_env(table: &mut Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    // In the order given: a later pair overrides an earlier one.
    for (name, value) in env {
        let path: Vec<String> = if name == "SWITCHBOARD_TOKEN" {
            vec!["gateway".into(), "auth".into(), "token".into()]
        } else if let Some(rest) = name
            .strip_prefix("SWITCHBOARD_")
            .filter(|r| r.contains("__"))
        {
            rest.split("__").map(str::to_ascii_lowercase).collect()
        } else {
            continue;
        };
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::new(
                "",
                format!(
                    "environment variable {name} has an empty key part: write keys as SWITCHBOARD_SECTION__KEY"
                ),
            ));
        }
        let key = path.join(".");
        let value = typed_env_value(&path, value).map_err(|m| {
            ConfigError::new(
                key.clone(),
                format!("from environment variable {name}: {m}"),
            )
        })?;
        set_path(table, &path, value).map_err(|m| {
            ConfigError::new(
                key.clone(),
                format!("from environment variable {name}: {m}"),
            )
        })?;
    }
    Ok(())
}

/// Give an environment value the type the key has in the defaults, so that
/// `SWITCHBOARD_GATEWAY__MAX_CONCURRENT_RUNS=4` is a number and a numeric
/// token stays a string.
fn typed_env_value(path: &[String], raw: &str) -> Result<Value, String> {
    let template = template_value(path).or_else(|| optional_number(path));
    match template {
        Some(Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("`{raw}` is not a whole number")),
        Some(Value::Float(_)) => raw
            .trim()
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("`{raw}` is not a number")),
        Some(Value::Boolean(_)) => match raw.trim() {
            "true" | "1" | "yes" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" => Ok(Value::Boolean(false)),
            _ => Err(format!("`{raw}` is not true or false")),
        },
        Some(Value::Array(_)) => {
            let literal = format!("v = {raw}");
            match literal.parse::<Table>() {
                Ok(mut t) if t.get("v").is_some_and(Value::is_array) => {
                    Ok(t.remove("v").unwrap_or(Value::Array(vec![])))
                }
                _ => Ok(Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.into()))
                        .collect(),
                )),
            }
        }
        _ => Ok(Value::String(raw.to_string())),
    }
}

/// Keys that are numbers but unset by default, so the defaults hold no
/// value to take the type from (`SWITCHBOARD_RETENTION__TRANSCRIPT_DAYS=30`).
fn optional_number(path: &[String]) -> Option<Value> {
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    match parts.as_slice() {
        [
            "retention",
            "transcript_days" | "usage_days" | "approvals_days" | "audit_days",
        ]
        | ["agents", _, "daily_token_budget"] => Some(Value::Integer(0)),
        [
            "providers",
            _,
            "pricing",
            "input_per_mtok" | "output_per_mtok" | "cached_per_mtok",
        ] => Some(Value::Float(0.0)),
        _ => None,
    }
}

/// The value a key has in a config made of defaults, if the key is known.
fn template_value(path: &[String]) -> Option<Value> {
    let mut root = Value::try_from(Config::default()).ok()?;
    if let Value::Table(t) = &mut root {
        let provider = Value::try_from(ProviderConfig::ollama()).ok()?;
        let agent = Value::try_from(AgentConfig::on("local")).ok()?;
        // Map entries have user-chosen names: look them up in a template.
        if let (Some(first), Some(_name)) = (path.first(), path.get(1)) {
            let entry = match first.as_str() {
                "providers" => Some(provider),
                "agents" => Some(agent),
                _ => None,
            };
            if let Some(mut entry) = entry {
                if let Value::Table(e) = &mut entry {
                    e.entry("temperature").or_insert(Value::Float(0.0));
                    e.entry("max_tokens").or_insert(Value::Integer(0));
                }
                let mut v = &entry;
                for part in &path[2..] {
                    v = v.get(part)?;
                }
                return Some(v.clone());
            }
        }
        let mut v: &Value = &Value::Table(t.clone());
        for part in path {
            v = v.get(part)?;
        }
        return Some(v.clone());
    }
    None
}

fn set_path(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut cur = table;
    for part in parents {
        let next = cur
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        cur = match next {
            Value::Table(t) => t,
            _ => return Err(format!("`{part}` is not a table in the config file")),
        };
    }
    cur.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn unset_numbers_can_be_set_from_the_environment() {
        let env = |k: &str, v: &str| (k.to_string(), v.to_string());
        let c = load_str(
            "[agents.main]\nprovider = \"local\"\n",
            "x",
            &[
                env("SWITCHBOARD_RETENTION__TRANSCRIPT_DAYS", "30"),
                env("SWITCHBOARD_AGENTS__MAIN__DAILY_TOKEN_BUDGET", "5000"),
            ],
        )
        .unwrap()
        .config;
        assert_eq!(c.retention.transcript_days, Some(30));
        assert_eq!(c.agents["main"].daily_token_budget, Some(5000));
        let err = load_str(
            "",
            "x",
            &[env("SWITCHBOARD_RETENTION__USAGE_DAYS", "a month")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("retention.usage_days") && err.contains("whole number"),
            "{err}"
        );
    }

    #[test]
    fn no_file_gives_ollama_and_main() {
        let c = load_str("", "x", &[]).unwrap();
        assert_eq!(c.default_agent, "main");
        assert_eq!(c.config.gateway.bind, "127.0.0.1:7788");
        let p = &c.config.providers["local"];
        assert_eq!(p.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(c.config.agents["main"].provider, "local");
        assert!(c.config.channels.webchat.enabled);
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let err = load_str("[gateway]\nbnd = \"127.0.0.1:1\"\n", "cfg.toml", &[]).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.errors[0].key, "gateway.bnd", "{text}");
        assert!(text.contains("unknown field `bnd`"), "{text}");
        assert!(text.contains("remove it or correct its spelling"), "{text}");
    }

    #[test]
    fn wrong_type_and_missing_field_are_named() {
        let err = load_str("[gateway]\nmax_concurrent_runs = \"many\"\n", "c", &[]).unwrap_err();
        assert_eq!(err.errors[0].key, "gateway.max_concurrent_runs");
        let err = load_str("[providers.x]\nkind = \"openai\"\n", "c", &[]).unwrap_err();
        assert_eq!(err.errors[0].key, "providers.x");
        assert!(err.to_string().contains("missing field `model`"), "{err}");
        let err = load_str(
            "[providers.x]\nkind = \"openai\"\nmodel = \"m\"\n",
            "c",
            &[],
        )
        .unwrap_err();
        assert_eq!(err.errors[0].key, "providers.x.base_url");
        assert!(err.to_string().contains("is required"), "{err}");
        let ok = load_str(
            "[providers.x]\nkind = \"anthropic\"\nmodel = \"claude-sonnet-4-5\"\n",
            "c",
            &[],
        )
        .unwrap();
        assert_eq!(
            ok.config.providers["x"].base_url,
            "https://api.anthropic.com"
        );
    }

    #[test]
    fn env_overrides_file_with_typed_values() {
        let text =
            "[providers.local]\nkind = \"openai\"\nbase_url = \"http://a/v1\"\nmodel = \"m\"\n";
        let c = load_str(
            text,
            "c",
            &env(&[
                (
                    "SWITCHBOARD_TOKEN",
                    "8203957164820395716482039571648203957164",
                ),
                ("SWITCHBOARD_PROVIDERS__LOCAL__API_KEY", "987"),
                ("SWITCHBOARD_GATEWAY__MAX_CONCURRENT_RUNS", "3"),
                ("SWITCHBOARD_CHANNELS__WEBCHAT__ENABLED", "false"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.config.gateway.auth.token.as_deref(),
            Some("8203957164820395716482039571648203957164")
        );
        assert_eq!(c.config.providers["local"].api_key.as_deref(), Some("987"));
        assert_eq!(c.config.gateway.max_concurrent_runs, 3);
        assert!(!c.config.channels.webchat.enabled);
        let err = load_str(
            "",
            "c",
            &env(&[("SWITCHBOARD_GATEWAY__MAX_CONCURRENT_RUNS", "x")]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("SWITCHBOARD_GATEWAY__MAX_CONCURRENT_RUNS"),
            "{err}"
        );
    }

    #[test]
    fn env_adjusts_the_default_provider_without_a_file() {
        let c = load_str(
            "",
            "c",
            &env(&[(
                "SWITCHBOARD_PROVIDERS__LOCAL__BASE_URL",
                "http://10.0.0.5:8000/v1",
            )]),
        )
        .unwrap();
        assert_eq!(
            c.config.providers["local"].base_url,
            "http://10.0.0.5:8000/v1"
        );
        assert_eq!(c.config.providers["local"].model, "llama3.2");
        assert_eq!(c.config.agents["main"].provider, "local");
        // A file with its own providers does not get the default one.
        let c = load_str(
            "[providers.x]\nkind = \"openai\"\nbase_url = \"http://a/v1\"\nmodel = \"m\"\n",
            "c",
            &[],
        )
        .unwrap();
        assert!(!c.config.providers.contains_key("local"));
        assert_eq!(c.config.agents["main"].provider, "x");
    }

    #[test]
    fn bad_toml_says_where() {
        let err = load_str("[gateway\n", "c", &[]).unwrap_err();
        assert!(err.to_string().contains("is not valid TOML"), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
        // The line is not quoted: it may hold a secret.
        let err = load_str("[gateway.auth]\ntoken = \"sbt-secret-value\n", "c", &[]).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(!err.to_string().contains("sbt-secret-value"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = load_str(
            "[gateway.auth]\ntoken = \"supersecret-Xq7mR2vL9kT4wZ8nC1pF6hJ3\"\n",
            "c",
            &[],
        )
        .unwrap();
        assert!(!format!("{:?}", c.config).contains("supersecret"));
    }

    #[test]
    fn discord_accounts_are_checked_and_their_access_follows_guilds() {
        let err = load_str(
            "[channels.discord.accounts.main]\ntoken = \"Bot abc\"\ngateway_url = \"http://x\"\nmax_lines = 1\n",
            "c",
            &[],
        )
        .unwrap_err();
        let keys: Vec<&str> = err.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "channels.discord.accounts.main.token",
                "channels.discord.accounts.main.gateway_url",
                "channels.discord.accounts.main.max_lines"
            ],
            "{err}"
        );
        let err = load_str("[channels.discord.accounts.main]\n", "c", &[]).unwrap_err();
        assert!(err.to_string().contains("Developer Portal"), "{err}");
        let token = "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GxAbCd.abcdefghijklmnopqrstuvwxyz0123456789AB";
        let c = load_str(
            &format!("[channels.discord.accounts.main]\ntoken = \"{token}\"\nguilds = [\"1\"]\n"),
            "c",
            &[],
        )
        .unwrap();
        let d = &c.config.channels.discord.accounts["main"];
        assert_eq!(d.access().group_policy, super::super::GroupPolicy::Open);
        assert!(!format!("{:?}", c.config).contains("GxAbCd"));
        let c = load_str(
            &format!("[channels.discord.accounts.main]\ntoken = \"{token}\"\nguilds = [\"1\"]\nchannels = [\"2\"]\n"),
            "c",
            &[],
        )
        .unwrap();
        let rules = c.config.channels.discord.accounts["main"].access();
        assert_eq!(rules.group_policy, super::super::GroupPolicy::Allowlist);
        assert_eq!(rules.groups, ["2"]);
    }

    #[test]
    fn slack_accounts_are_checked() {
        let err = load_str(
            "[channels.slack.accounts.main]\nbot_token = \"xapp-1-A0-123-abcdefghij\"\napi_url = \"slack.com\"\nslash_command = \"assistant\"\n",
            "c",
            &[],
        )
        .unwrap_err();
        let keys: Vec<&str> = err.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "channels.slack.accounts.main.bot_token",
                "channels.slack.accounts.main.app_token",
                "channels.slack.accounts.main.api_url",
                "channels.slack.accounts.main.slash_command"
            ],
            "{err}"
        );
        assert!(err.to_string().contains("xoxb-"), "{err}");
        assert!(err.to_string().contains("Socket Mode"), "{err}");
        let err = load_str(
            "[channels.slack.accounts.main]\nbot_token = \"xoxb-1234567890-abcdefghijk\"\napp_token_env = \"SWITCHBOARD_TEST_UNSET_APP_TOKEN\"\n",
            "c",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err.errors[0].key, "channels.slack.accounts.main.app_token_env",
            "{err}"
        );
        let c = load_str(
            "[channels.slack.accounts.main]\nbot_token = \"xoxb-1234567890-abcdefghijk\"\nsigning_secret = \"8f742231b10e8888abcd99yyyzzz85a5\"\nchannels = [\"C1\"]\n",
            "c",
            &[],
        )
        .unwrap();
        let a = &c.config.channels.slack.accounts["main"];
        assert_eq!(a.access().groups, ["C1"]);
        assert!(a.access().require_mention);
        assert_eq!(a.working_reaction, "eyes");
        let shown = format!("{:?}", c.config);
        assert!(
            !shown.contains("abcdefghijk") && !shown.contains("8f742231"),
            "{shown}"
        );
    }
}
