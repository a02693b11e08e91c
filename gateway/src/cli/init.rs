//! `switchboard init`: from nothing to a config that answers. Asks for a
//! model provider, its key and model (checked with a real request, the
//! provider's models listed where it can), then optionally for each
//! channel's tokens (each checked live: `getMe`, Discord's `/users/@me`,
//! Slack's `auth.test`, with what is wrong and where to click). Then it
//! stores the keys and tokens as secrets and writes a commented config that
//! names them (`"secret:NAME"`), never their values.
//!
//! Nothing is written until every answer is in and checked: Ctrl-C or a
//! refused key leaves the disk as it was. Run again, it edits the existing
//! config (comments and other keys stay) instead of replacing it. Every
//! question has a flag; `--non-interactive` asks nothing.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::json;
use zeroize::Zeroizing;

mod checks;

use checks::{
    check_discord, check_slack_app, check_slack_bot, check_telegram, list_models, ping,
    wrong_key_kind,
};

use super::Cli;
use crate::audit::{Actor, action};
use crate::config;
use crate::vault;

/// A model provider `init` knows how to set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderChoice {
    /// OpenAI (api.openai.com).
    Openai,
    /// Anthropic (api.anthropic.com).
    Anthropic,
    /// OpenRouter (openrouter.ai), OpenAI-compatible.
    Openrouter,
    /// Ollama on this machine (no key).
    Ollama,
    /// Any other OpenAI-compatible endpoint (vLLM, llama.cpp, LM Studio…).
    Custom,
}

impl ProviderChoice {
    const ALL: [Self; 5] = [
        Self::Openai,
        Self::Anthropic,
        Self::Openrouter,
        Self::Ollama,
        Self::Custom,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Openai => "OpenAI",
            Self::Anthropic => "Anthropic",
            Self::Openrouter => "OpenRouter",
            Self::Ollama => "Ollama (on this machine)",
            Self::Custom => "Another OpenAI-compatible URL",
        }
    }

    /// The `[providers.<name>]` table's name.
    fn name(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Openrouter => "openrouter",
            Self::Ollama => "ollama",
            Self::Custom => "custom",
        }
    }

    fn base_url(self) -> Option<&'static str> {
        match self {
            Self::Openai => Some("https://api.openai.com/v1"),
            Self::Anthropic => Some("https://api.anthropic.com"),
            Self::Openrouter => Some("https://openrouter.ai/api/v1"),
            Self::Ollama => Some("http://127.0.0.1:11434/v1"),
            Self::Custom => None,
        }
    }

    fn suggested_model(self) -> Option<&'static str> {
        match self {
            Self::Openai => Some("gpt-4o-mini"),
            Self::Anthropic => Some("claude-3-5-haiku-latest"),
            Self::Openrouter => Some("openai/gpt-4o-mini"),
            Self::Ollama | Self::Custom => None,
        }
    }

    fn needs_key(self) -> bool {
        !matches!(self, Self::Ollama | Self::Custom)
    }

    fn where_keys_are(self) -> &'static str {
        match self {
            Self::Openai => " (https://platform.openai.com/api-keys)",
            Self::Anthropic => " (https://console.anthropic.com/settings/keys)",
            Self::Openrouter => " (https://openrouter.ai/keys)",
            Self::Ollama | Self::Custom => "",
        }
    }
}

/// `switchboard init`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The model provider.
    #[arg(long, value_enum)]
    provider: Option<ProviderChoice>,
    /// The provider's API base URL (default: the provider's own).
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// The model to ask.
    #[arg(long)]
    model: Option<String>,
    /// Read the provider's API key from stdin (one line; the lines of the
    /// `--…-stdin` flags come in the order they are listed here).
    #[arg(long)]
    api_key_stdin: bool,
    /// Read a Telegram bot token from stdin (the next line).
    #[arg(long)]
    telegram_token_stdin: bool,
    /// Read a Discord bot token from stdin (the next line).
    #[arg(long)]
    discord_token_stdin: bool,
    /// Read a Slack bot token (xoxb-…) from stdin (the next line).
    #[arg(long)]
    slack_bot_token_stdin: bool,
    /// Read a Slack app-level token (xapp-…, Socket Mode) from stdin (the
    /// next line).
    #[arg(long)]
    slack_app_token_stdin: bool,
    /// A self-hosted Telegram Bot API server.
    #[arg(long, value_name = "URL")]
    telegram_api_url: Option<String>,
    /// Discord's REST base URL (a proxy).
    #[arg(long, value_name = "URL")]
    discord_api_url: Option<String>,
    /// Slack's Web API base URL.
    #[arg(long, value_name = "URL")]
    slack_api_url: Option<String>,
    /// Ask nothing: what no flag gives is left out (a channel) or an error
    /// (the provider, when the config has none).
    #[arg(long)]
    non_interactive: bool,
}

/// The questions, asked on the terminal or answered by flags.
struct Ask {
    interactive: bool,
    stdin_lines: std::collections::VecDeque<Zeroizing<String>>,
}

impl Ask {
    fn say(&self, text: &str) {
        eprintln!("{text}");
    }

    /// A line, with `default` when the answer is empty.
    fn line(&self, prompt: &str, default: Option<&str>) -> anyhow::Result<String> {
        let shown = match default {
            Some(d) if !d.is_empty() => format!("{prompt} [{d}]: "),
            _ => format!("{prompt}: "),
        };
        eprint!("{shown}");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        let n = std::io::stdin().lock().read_line(&mut answer)?;
        if n == 0 {
            anyhow::bail!("the input ended; nothing was written");
        }
        let answer = answer.trim();
        Ok(if answer.is_empty() {
            default.unwrap_or_default().to_string()
        } else {
            answer.to_string()
        })
    }

    fn yes(&self, prompt: &str) -> anyhow::Result<bool> {
        loop {
            let a = self.line(&format!("{prompt} (y/N)"), None)?;
            match a.to_ascii_lowercase().as_str() {
                "" | "n" | "no" => return Ok(false),
                "y" | "yes" => return Ok(true),
                _ => self.say("Answer y or n."),
            }
        }
    }

    /// A secret, not echoed.
    fn secret(&self, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
        let v = Zeroizing::new(rpassword::prompt_password(format!("{prompt}: "))?);
        Ok(Zeroizing::new(v.trim().to_string()))
    }

    /// The next line of stdin given to a `--…-stdin` flag.
    fn next_stdin_line(&mut self, what: &str) -> anyhow::Result<Zeroizing<String>> {
        self.stdin_lines
            .pop_front()
            .ok_or_else(|| anyhow::anyhow!("stdin ended before the {what}; nothing was written"))
    }
}

/// A provider that answered.
struct Provider {
    choice: ProviderChoice,
    base_url: String,
    key: Option<Zeroizing<String>>,
    model: String,
}

/// A channel account that answered, with its tokens (as secret name and
/// value) and other keys.
struct Account {
    channel: &'static str,
    secrets: Vec<(&'static str, String, Zeroizing<String>)>,
    keys: Vec<(&'static str, String)>,
    shown: String,
}

pub(crate) async fn run(cli: &Cli, args: &InitArgs) -> anyhow::Result<()> {
    let path = match &cli.config {
        Some(p) => p.clone(),
        None => super::default_config_path()
            .context("cannot find a config directory (is HOME set?): pass --config PATH")?,
    };
    let interactive = !args.non_interactive;
    if interactive && !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "init asks its questions on a terminal; for scripted use pass --non-interactive with the flags (see `switchboard init --help`)"
        );
    }
    let mut ask = Ask {
        interactive,
        stdin_lines: Default::default(),
    };
    let wants_stdin = args.api_key_stdin
        || args.telegram_token_stdin
        || args.discord_token_stdin
        || args.slack_bot_token_stdin
        || args.slack_app_token_stdin;
    if wants_stdin {
        if interactive {
            anyhow::bail!("the --…-stdin flags go with --non-interactive");
        }
        if std::io::stdin().is_terminal() {
            anyhow::bail!(
                "the --…-stdin flags read their values from a pipe, not a terminal: e.g. `printf '%s\\n' \"$KEY\" | switchboard init --non-interactive … --api-key-stdin`"
            );
        }
        let mut text = Zeroizing::new(String::new());
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        ask.stdin_lines = text
            .lines()
            .map(|l| Zeroizing::new(l.trim().to_string()))
            .collect();
    }
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut doc: toml_edit::DocumentMut = match &existing {
        Some(t) => t.parse().map_err(|e: toml_edit::TomlError| {
            anyhow::anyhow!(
                "{} is not valid TOML ({}), so init cannot edit it: fix it (`switchboard config check`) or move it away",
                path.display(),
                config::toml_problem(t, e.message(), e.span())
            )
        })?,
        None => TEMPLATE.parse().expect("the template is TOML"),
    };
    if existing.is_some() {
        ask.say(&format!(
            "Editing {} (what you do not change stays as it is).",
            path.display()
        ));
    } else {
        ask.say(&format!("Writing a new config to {}.", path.display()));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;

    // 1. The model provider.
    let has_provider = doc
        .get("providers")
        .and_then(|p| p.as_table_like())
        .is_some_and(|t| !t.is_empty());
    let provider = if args.provider.is_some() || interactive {
        Some(ask_provider(&mut ask, args, &http).await?)
    } else if has_provider {
        None
    } else {
        anyhow::bail!(
            "--non-interactive needs --provider (and --model; --api-key-stdin for a hosted provider); nothing was written"
        );
    };

    // 2. Channels.
    let mut accounts = Vec::new();
    let offer = |flag: bool| flag || interactive;
    if offer(args.telegram_token_stdin)
        && (args.telegram_token_stdin || ask.yes("Connect a Telegram bot?")?)
    {
        accounts.push(ask_telegram(&mut ask, args, &http).await?);
    }
    if offer(args.discord_token_stdin)
        && (args.discord_token_stdin || ask.yes("Connect a Discord bot?")?)
    {
        accounts.push(ask_discord(&mut ask, args, &http).await?);
    }
    if offer(args.slack_bot_token_stdin)
        && (args.slack_bot_token_stdin || ask.yes("Connect a Slack app?")?)
    {
        accounts.push(ask_slack(&mut ask, args, &http).await?);
    }

    // 3. Everything answered: edit the document, check it as the gateway
    // would load it, then store the secrets and write the file.
    let mut secrets: Vec<(String, Zeroizing<String>)> = Vec::new();
    if let Some(p) = &provider {
        let name = p.choice.name();
        let (t, _) = table(&mut doc, &["providers", name])?;
        t.insert(
            "kind",
            toml_edit::value(if p.choice == ProviderChoice::Anthropic {
                "anthropic"
            } else {
                "openai"
            }),
        );
        t.insert("base_url", toml_edit::value(&p.base_url));
        t.insert("model", toml_edit::value(&p.model));
        // The key is the secret now, not a variable.
        t.remove("api_key_env");
        if let Some(key) = &p.key {
            let secret = format!("{name}_api_key");
            t.insert("api_key", toml_edit::value(format!("secret:{secret}")));
            secrets.push((secret, key.clone()));
        } else {
            t.remove("api_key");
        }
        let (agents, _) = table(&mut doc, &["agents"])?;
        let names: Vec<String> = agents.iter().map(|(k, _)| k.to_string()).collect();
        let agent = if names.is_empty() || names.iter().any(|n| n == "main") {
            "main".to_string()
        } else {
            names[0].clone()
        };
        let (a, _) = table(&mut doc, &["agents", &agent])?;
        a.insert("provider", toml_edit::value(name));
        a.remove("model");
    }
    for acc in &accounts {
        let (t, inline) = table(&mut doc, &["channels", acc.channel, "accounts", "main"])?;
        for (key, secret, value) in &acc.secrets {
            t.insert(key, toml_edit::value(format!("secret:{secret}")));
            t.remove(&format!("{key}_env"));
            secrets.push((secret.clone(), value.clone()));
        }
        for (key, value) in &acc.keys {
            t.insert(key, toml_edit::value(value));
        }
        if !t.contains_key("dm_policy") {
            t.insert("dm_policy", toml_edit::value("pairing"));
            if !inline && let Some(mut key) = t.key_mut("dm_policy") {
                key.leaf_decor_mut().set_prefix(
                    "# Strangers get a code; approve it with `switchboard pairing approve`.\n",
                );
            }
        }
    }
    if let Some(d) = &cli.data_dir {
        let (g, _) = table(&mut doc, &["gateway"])?;
        g.insert("data_dir", toml_edit::value(d.display().to_string()));
    }
    let text = doc.to_string();
    let env = super::environment(cli, None);
    let mut values: std::collections::BTreeMap<String, String> = secrets
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    // The secrets the file already named come from the store, so that the
    // whole file is checked as the gateway will load it. The store is
    // opened before Ctrl-C is held (it may ask for a passphrase).
    let names = config::secret_names(&text, &env);
    let missing: Vec<String> = names
        .into_iter()
        .filter(|n| !values.contains_key(n))
        .collect();
    let opened = if secrets.is_empty() && missing.is_empty() {
        None
    } else {
        let boot = config::bootstrap(Some(&path), &env);
        let loc = super::privacy::location(Some(&path), &boot)?;
        Some(vault::open(&loc).await?)
    };
    if let Some(o) = &opened {
        let stored = vault::read_secrets(o.store.as_ref(), &missing)
            .await
            .context("cannot read the secrets the config names")?;
        values.extend(stored);
    }
    let checked = config::load_str_with_secrets(&text, &path.display().to_string(), &env, &values)
        .map_err(|e| anyhow::anyhow!("the config would not load, so nothing was written:\n{e}"));
    if let Err(e) = checked {
        if let Some(o) = &opened {
            o.store.close().await;
        }
        return Err(e);
    }

    // Ctrl-C from here waits for the writes to finish.
    let _held = tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nFinishing the write first…");
        }
    });
    let written = write_and_store(&path, text.as_bytes(), opened.as_ref(), &secrets).await;
    if let Some(o) = &opened {
        o.store.close().await;
    }
    written?;

    println!("\nWrote {}.", path.display());
    if let Some(p) = &provider {
        println!(
            "  model: {} on {} ({})",
            p.model,
            p.choice.label(),
            p.base_url
        );
    }
    for a in &accounts {
        println!("  {}: {}", a.channel, a.shown);
    }
    if !secrets.is_empty() {
        let list: Vec<&str> = secrets.iter().map(|(n, _)| n.as_str()).collect();
        println!("  secrets stored (not in the file): {}", list.join(", "));
    }
    let flag = if cli.config.is_some() {
        format!(" --config {}", path.display())
    } else {
        String::new()
    };
    println!(
        "\nStart it with `switchboard{flag} serve`; a running gateway takes the change with `switchboard{flag} config reload`."
    );
    Ok(())
}

/// A new config's comments; the questions fill in the rest.
const TEMPLATE: &str = "\
# Switchboard's config, written by `switchboard init`.
# Every key is described in docs/config.md. Check a change with
# `switchboard config check`; a running gateway takes it with
# `switchboard config reload` (or SIGHUP).
#
# Keys and tokens are not in this file: they are stored as secrets
# (`switchboard secrets list`) and named here as \"secret:NAME\".
";

/// The table at `path`, and whether it is an inline one: edited where it
/// is when it exists (a header table or an inline one), made where it is
/// missing (a header table, or inline inside an inline table). A value
/// that is not a table is the user's to fix, not init's to overwrite.
fn table<'a>(
    doc: &'a mut toml_edit::DocumentMut,
    path: &[&str],
) -> anyhow::Result<(&'a mut dyn toml_edit::TableLike, bool)> {
    let mut t: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    let mut inline = false;
    for (i, key) in path.iter().enumerate() {
        if t.get(key).is_none() {
            let new = if inline {
                toml_edit::Item::Value(toml_edit::Value::InlineTable(Default::default()))
            } else {
                let mut new = toml_edit::Table::new();
                // Intermediate tables are not written as empty headers.
                new.set_implicit(i + 1 < path.len());
                toml_edit::Item::Table(new)
            };
            t.insert(key, new);
        }
        let item = t.get_mut(key).expect("just made");
        inline = inline || item.is_inline_table();
        t = item.as_table_like_mut().ok_or_else(|| {
            anyhow::anyhow!(
                "`{}` in the config is not a table, so init cannot change it: fix it by hand (`switchboard config check` says what is wrong); nothing was written",
                path[..=i].join(".")
            )
        })?;
    }
    Ok((t, inline))
}

async fn ask_provider(
    ask: &mut Ask,
    args: &InitArgs,
    http: &reqwest::Client,
) -> anyhow::Result<Provider> {
    let choice = match args.provider {
        Some(c) => c,
        None => {
            ask.say("\nWhich model provider?");
            for (i, c) in ProviderChoice::ALL.iter().enumerate() {
                ask.say(&format!("  {}. {}", i + 1, c.label()));
            }
            loop {
                let a = ask.line("Provider", Some("1"))?;
                match a
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| ProviderChoice::ALL.get(n.wrapping_sub(1)))
                {
                    Some(c) => break *c,
                    None => ask.say("Type the number of one of the providers above."),
                }
            }
        }
    };
    loop {
        let base_url = match (&args.base_url, choice.base_url()) {
            (Some(u), _) => u.clone(),
            (None, Some(u)) if !ask.interactive || choice != ProviderChoice::Ollama => {
                u.to_string()
            }
            (None, None) if !ask.interactive => {
                return Err(nothing_written(
                    "--provider custom needs --base-url (the API's base, ending before /chat/completions)",
                ));
            }
            (None, default) => ask.line(
                "The API's base URL (ending before /chat/completions)",
                default,
            )?,
        };
        let base_url = base_url.trim_end_matches('/').to_string();
        let key = if args.api_key_stdin {
            Some(ask.next_stdin_line("API key")?)
        } else if ask.interactive && (choice.needs_key() || choice == ProviderChoice::Custom) {
            let prompt = if choice.needs_key() {
                format!("API key{}", choice.where_keys_are())
            } else {
                "API key (Enter for none)".to_string()
            };
            let k = ask.secret(&prompt)?;
            (!k.is_empty()).then_some(k)
        } else {
            None
        };
        if choice.needs_key() && key.is_none() {
            let why = format!(
                "{} needs an API key{}",
                choice.label(),
                choice.where_keys_are()
            );
            if ask.interactive {
                ask.say(&why);
                continue;
            }
            anyhow::bail!("{why}: pass it with --api-key-stdin; nothing was written");
        }
        if let Some(hint) = key.as_deref().and_then(|k| wrong_key_kind(choice, k)) {
            if ask.interactive {
                ask.say(&hint);
                continue;
            }
            return Err(nothing_written(&hint));
        }
        ask.say(&format!("Checking {base_url} …"));
        let models =
            match list_models(http, choice, &base_url, key.as_deref().map(|k| k.as_str())).await {
                Ok(m) => m,
                Err(why) => {
                    if ask.interactive {
                        ask.say(&format!("{why}\nLet's try again."));
                        continue;
                    }
                    return Err(nothing_written(&why));
                }
            };
        if let Some(m) = &models {
            let shown: Vec<&str> = m.iter().take(15).map(String::as_str).collect();
            ask.say(&format!(
                "It answers, with {} model(s): {}{}",
                m.len(),
                shown.join(", "),
                if m.len() > shown.len() { ", …" } else { "" }
            ));
        } else {
            ask.say("It answers (it does not list its models).");
        }
        let suggested = match (choice.suggested_model(), &models) {
            (Some(s), Some(m)) if m.iter().any(|x| x == s) => Some(s.to_string()),
            (_, Some(m)) => m.first().cloned(),
            (s, None) => s.map(String::from),
        };
        let model = loop {
            let model = match &args.model {
                Some(m) => m.clone(),
                None if ask.interactive => ask.line("Model", suggested.as_deref())?,
                None => suggested.clone().ok_or_else(|| {
                    anyhow::anyhow!(
                        "--non-interactive needs --model for this provider; nothing was written"
                    )
                })?,
            };
            if model.is_empty() {
                ask.say("Type a model name.");
                continue;
            }
            match &models {
                Some(m) if !m.iter().any(|x| *x == model) => {
                    let why = format!("{} does not offer the model `{model}`", choice.label());
                    if ask.interactive && args.model.is_none() {
                        ask.say(&format!("{why}; choose one of those listed."));
                        continue;
                    }
                    return Err(nothing_written(&why));
                }
                Some(_) => break model,
                None => {
                    // No list to check against: one real request.
                    match ping(
                        http,
                        choice,
                        &base_url,
                        key.as_deref().map(|k| k.as_str()),
                        &model,
                    )
                    .await
                    {
                        Ok(()) => break model,
                        Err(why) if ask.interactive && args.model.is_none() => ask.say(&why),
                        Err(why) => return Err(nothing_written(&why)),
                    }
                }
            }
        };
        return Ok(Provider {
            choice,
            base_url,
            key,
            model,
        });
    }
}

/// `why`, and that the disk is as it was.
fn nothing_written(why: &str) -> anyhow::Error {
    anyhow::anyhow!("{}; nothing was written", why.trim_end_matches('.'))
}

/// A token for `what`: from stdin, or asked until one passes `check`.
async fn token_until<F, Fut, T>(
    ask: &mut Ask,
    from_stdin: bool,
    what: &str,
    prompt: &str,
    check: F,
) -> anyhow::Result<(Zeroizing<String>, T)>
where
    F: Fn(Zeroizing<String>) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    loop {
        let token = if from_stdin {
            ask.next_stdin_line(what)?
        } else {
            ask.secret(prompt)?
        };
        match check(token.clone()).await {
            Ok(v) => return Ok((token, v)),
            Err(why) if !from_stdin => {
                ask.say(&format!("{why}\nLet's try again (Ctrl-C to stop)."))
            }
            Err(why) => return Err(nothing_written(&format!("{what}: {why}"))),
        }
    }
}

async fn ask_telegram(
    ask: &mut Ask,
    args: &InitArgs,
    http: &reqwest::Client,
) -> anyhow::Result<Account> {
    let api = args
        .telegram_api_url
        .clone()
        .unwrap_or_else(|| "https://api.telegram.org".into());
    let api = api.trim_end_matches('/').to_string();
    if !args.telegram_token_stdin {
        ask.say("In Telegram, talk to @BotFather: /newbot (or /mybots → your bot → API Token) gives the token.");
    }
    let (token, name) = token_until(
        ask,
        args.telegram_token_stdin,
        "Telegram bot token",
        "Telegram bot token",
        |t| check_telegram(http, api.clone(), t),
    )
    .await?;
    ask.say(&format!("Telegram: connected to @{name}."));
    let mut keys = Vec::new();
    if let Some(u) = &args.telegram_api_url {
        keys.push(("api_url", u.clone()));
    }
    Ok(Account {
        channel: "telegram",
        secrets: vec![("token", "telegram_main_token".into(), token)],
        keys,
        shown: format!("@{name}"),
    })
}

async fn ask_discord(
    ask: &mut Ask,
    args: &InitArgs,
    http: &reqwest::Client,
) -> anyhow::Result<Account> {
    let api = args
        .discord_api_url
        .clone()
        .unwrap_or_else(|| "https://discord.com".into());
    let api = api.trim_end_matches('/').to_string();
    if !args.discord_token_stdin {
        ask.say("In the Discord Developer Portal (https://discord.com/developers/applications): your app → Bot → Reset Token gives the token.");
    }
    let (token, name) = token_until(
        ask,
        args.discord_token_stdin,
        "Discord bot token",
        "Discord bot token",
        |t| check_discord(http, api.clone(), t),
    )
    .await?;
    ask.say(&format!("Discord: connected as {name}."));
    let mut keys = Vec::new();
    if let Some(u) = &args.discord_api_url {
        keys.push(("api_url", u.clone()));
    }
    Ok(Account {
        channel: "discord",
        secrets: vec![("token", "discord_main_token".into(), token)],
        keys,
        shown: name,
    })
}

async fn ask_slack(
    ask: &mut Ask,
    args: &InitArgs,
    http: &reqwest::Client,
) -> anyhow::Result<Account> {
    let api = args
        .slack_api_url
        .clone()
        .unwrap_or_else(|| "https://slack.com/api".into());
    let api = api.trim_end_matches('/').to_string();
    if !args.slack_bot_token_stdin {
        ask.say("At https://api.slack.com/apps: your app → OAuth & Permissions → Bot User OAuth Token (xoxb-…).");
    }
    let (bot, team) = token_until(
        ask,
        args.slack_bot_token_stdin,
        "Slack bot token",
        "Slack bot token (xoxb-…)",
        |t| check_slack_bot(http, api.clone(), t),
    )
    .await?;
    if !args.slack_app_token_stdin {
        ask.say("For Socket Mode (no public URL): Basic Information → App-Level Tokens → Generate, scope connections:write (xapp-…).");
    }
    let (app, ()) = token_until(
        ask,
        args.slack_app_token_stdin || !ask.interactive,
        "Slack app-level token",
        "Slack app-level token (xapp-…)",
        |t| check_slack_app(http, api.clone(), t),
    )
    .await?;
    ask.say(&format!("Slack: connected to {team}."));
    let mut keys = Vec::new();
    if let Some(u) = &args.slack_api_url {
        keys.push(("api_url", u.clone()));
    }
    Ok(Account {
        channel: "slack",
        secrets: vec![
            ("bot_token", "slack_main_bot_token".into(), bot),
            ("app_token", "slack_main_app_token".into(), app),
        ],
        keys,
        shown: team,
    })
}

/// Stage `bytes` beside `path`, store `secrets`, then move the file in
/// ([`crate::staged`]): a failure before the move leaves the old file (or
/// none) in place.
async fn write_and_store(
    path: &Path,
    bytes: &[u8],
    opened: Option<&vault::Opened>,
    secrets: &[(String, Zeroizing<String>)],
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let staged = crate::staged::Staged::write(path, bytes)
        .with_context(|| format!("cannot write {}; nothing was written", path.display()))?;
    if let Some(o) = opened {
        let audit = o.audit();
        for (name, value) in secrets {
            o.store
                .secret_set(name, value, crate::clock::now_ms())
                .await
                .context("cannot store the secrets; the config was not written")?;
            audit
                .record(
                    &Actor::cli(),
                    action::SECRET_SET,
                    name,
                    json!({ "by": "init" }),
                )
                .await;
        }
    }
    staged
        .commit()
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::checks::token_kind;
    use super::*;

    #[test]
    fn a_key_of_another_provider_is_named() {
        let hint = wrong_key_kind(ProviderChoice::Openai, "sk-ant-api03-xyz").unwrap();
        assert!(hint.contains("Anthropic"), "{hint}");
        assert!(wrong_key_kind(ProviderChoice::Openai, "sk-proj-abc").is_none());
        assert!(wrong_key_kind(ProviderChoice::Custom, "sk-ant-x").is_none());
    }

    #[test]
    fn tokens_pasted_in_the_wrong_place_are_recognized() {
        assert_eq!(token_kind("xoxb-1-2-abc"), Some("a Slack bot token"));
        assert_eq!(
            token_kind("123456789:AAHfakeTokenForSwitchboardTests_0123"),
            Some("a Telegram bot token")
        );
    }

    #[test]
    fn editing_keeps_comments_and_other_keys() {
        let mut doc: toml_edit::DocumentMut = "# mine\n[gateway]\nbind = \"127.0.0.1:9\" # here\n"
            .parse()
            .unwrap();
        table(&mut doc, &["providers", "openai"])
            .unwrap()
            .0
            .insert("model", toml_edit::value("m"));
        let text = doc.to_string();
        assert!(text.contains("# mine") && text.contains("# here"), "{text}");
        assert!(text.contains("[providers.openai]\nmodel = \"m\""), "{text}");
        assert!(!text.contains("[providers]\n"), "{text}");
    }

    #[test]
    fn an_inline_table_is_edited_where_it_is_and_a_value_is_not_overwritten() {
        let mut doc: toml_edit::DocumentMut =
            "[agents]\nmain = { provider = \"x\", system_prompt = \"mine\" }\n"
                .parse()
                .unwrap();
        let (t, inline) = table(&mut doc, &["agents", "main"]).unwrap();
        assert!(inline);
        t.insert("provider", toml_edit::value("openai"));
        let text = doc.to_string();
        assert!(text.contains("system_prompt = \"mine\""), "{text}");
        assert!(text.contains("provider = \"openai\""), "{text}");
        let mut doc: toml_edit::DocumentMut = "providers = 3\n".parse().unwrap();
        let err = table(&mut doc, &["providers", "openai"]).err().unwrap();
        assert!(err.to_string().contains("`providers`"), "{err}");
    }
}
