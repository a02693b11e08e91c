//! The `switchboard` command line. `serve` runs the gateway; the other
//! commands ask the running gateway over its control API (or, for `config
//! check`, only read the config).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::config::{self, Config, LoadedConfig};

mod audit;
mod cron;
mod init;
mod memory;
mod privacy;

/// Switchboard: a self-hosted multi-channel messaging gateway for your AI assistant.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about, propagate_version = true)]
pub struct Cli {
    /// The config file (TOML). Default: `switchboard.toml` in the config
    /// directory (`~/.config/switchboard/`) when it exists (`switchboard
    /// init` writes it), else the built-in defaults.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Where the database and the control token live.
    #[arg(long, global = true, env = "SWITCHBOARD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The running gateway's address, for commands that ask it
    /// (default: from gateway.bind).
    #[arg(long, global = true, env = "SWITCHBOARD_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up a model provider and channels, checking each live, and
    /// write the config (again: edit it).
    Init(init::InitArgs),
    /// Run the gateway until Ctrl-C or SIGTERM.
    Serve {
        /// The HTTP address, e.g. 127.0.0.1:7788.
        #[arg(long, env = "SWITCHBOARD_BIND", value_name = "ADDR")]
        bind: Option<String>,
    },
    /// Ask the running gateway how it is.
    Status,
    /// List, show and reset sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// List, approve and deny pairing requests of unknown senders.
    Pairing {
        #[command(subcommand)]
        command: PairingCommand,
    },
    /// List, approve and deny tool calls waiting for the operator.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// List, search, export and delete the agents' long-term memories.
    Memory {
        #[command(subcommand)]
        command: memory::MemoryCommand,
    },
    /// Check a config file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Build the sandbox image; list and prune sandbox containers.
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
    /// Check the config, the data directory, the providers and the sandbox
    /// (engine, image, policy), and name the risks.
    Doctor {
        /// Read the setup as an attacker would: findings with stable ids,
        /// severity and the fix (with --json as JSON); exits non-zero on a
        /// high one.
        #[arg(long)]
        security: bool,
    },
    /// List, show, run, pause, resume, add and remove scheduled jobs.
    Cron {
        #[command(subcommand)]
        command: cron::CronCommand,
    },
    /// Set, list and remove secrets a config names as "secret:NAME".
    Secrets {
        #[command(subcommand)]
        command: privacy::SecretsCommand,
    },
    /// Rotate the encryption keys.
    Keys {
        #[command(subcommand)]
        command: privacy::KeysCommand,
    },
    /// List the audit log (who did what, when, from where) and verify its
    /// chain of HMACs.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Forget a person: delete their sessions, transcripts, memory,
    /// pending messages and allowlist entry, and destroy their key.
    Forget {
        /// The channel, e.g. `telegram`.
        channel: String,
        /// Their sender id on it.
        sender: String,
    },
    /// Make tokens: `switchboard token new` prints a random one for
    /// gateway.auth.token, observability.metrics_token or a hook's secret.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print a one-time sign-in link to the control web UI (valid 5
    /// minutes, used once).
    Ui {
        /// Also open it in the desktop's browser.
        #[arg(long)]
        open: bool,
    },
}

/// `switchboard token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new random token (32 random bytes, URL-safe base64).
    New,
}

/// How `sandbox build-image` makes the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageSource {
    /// Offline: a Debian root filesystem made with debootstrap (needs root
    /// and Debian's package archive; cached), imported into the engine.
    Debootstrap,
    /// `docker build` of deploy/sandbox/Dockerfile (needs a registry).
    Dockerfile,
    /// A tiny image of Debian's static busybox, for tests.
    Busybox,
}

/// `switchboard sandbox …`
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Build the sandbox image, showing progress.
    BuildImage {
        /// The recipe.
        #[arg(long, value_enum, default_value = "debootstrap")]
        from: ImageSource,
        /// The image's name (default: [sandbox] image).
        #[arg(long)]
        tag: Option<String>,
        /// Debian suite for debootstrap.
        #[arg(long, default_value = "bookworm")]
        suite: String,
        /// Debian archive for debootstrap.
        #[arg(long, default_value = "http://deb.debian.org/debian")]
        mirror: String,
        /// Where debootstrap's root filesystem is cached (default
        /// /var/cache/switchboard as root, else ~/.cache/switchboard).
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// The static busybox binary, for --from busybox.
        #[arg(long, default_value = "/bin/busybox", value_name = "PATH")]
        busybox: PathBuf,
    },
    /// List this gateway's sandbox containers.
    List {
        /// Every Switchboard container on the engine, of any gateway.
        #[arg(long)]
        all: bool,
    },
    /// Remove this gateway's sandbox containers that run no command now.
    Prune {
        /// Remove them even while they run a command.
        #[arg(long)]
        force: bool,
    },
}

/// `switchboard sessions …`
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Sessions, most recently active first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One session and its transcript.
    Show {
        /// The session key, e.g. agent:main:webchat:dm:alice.
        key: String,
        /// At most this many transcript entries (the latest).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Start the session afresh (its history is kept but no longer used).
    Reset {
        /// The session key.
        key: String,
    },
}

/// `switchboard pairing …`
#[derive(Debug, Subcommand)]
pub enum PairingCommand {
    /// Pending requests.
    List {
        /// Only this channel.
        channel: Option<String>,
    },
    /// Let the sender in: they join the allowlist and are told.
    Approve {
        /// The channel, e.g. telegram.
        channel: String,
        /// The code the sender was given.
        code: String,
    },
    /// Refuse the request.
    Deny {
        /// The channel.
        channel: String,
        /// The code.
        code: String,
    },
}

/// `switchboard approvals …`
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Pending requests (with --all, decided ones too).
    List {
        /// Include decided requests.
        #[arg(long)]
        all: bool,
    },
    /// Let the call run.
    Approve {
        /// The request's id.
        id: String,
    },
    /// Refuse the call.
    Deny {
        /// The request's id.
        id: String,
    },
}

/// `switchboard config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file (with the SWITCHBOARD_… environment applied).
    Check {
        /// The file; default: --config or SWITCHBOARD_CONFIG.
        path: Option<PathBuf>,
    },
    /// Make the running gateway read its config again and apply what
    /// changed (the same as SIGHUP); says what applied and what waits for
    /// a restart.
    Reload,
}

/// Run the command line; the exit code says whether it worked.
pub fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.config.is_none()
        && !matches!(cli.command, Command::Init(_))
        && let Some(path) = default_config_path().filter(|p| p.exists())
    {
        cli.config = Some(path);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&cli, runtime.handle().clone());
    let result = runtime.block_on(run(cli));
    crate::telemetry::logging::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The log goes to stderr (as `[observability] log_format` says) and, for
/// the control UI's Logs page, into [`crate::ui::logs::tail`]; `serve`
/// also exports spans when `[observability.otlp]` names a collector.
fn init_logging(cli: &Cli, runtime: tokio::runtime::Handle) {
    let serving = matches!(cli.command, Command::Serve { .. });
    let bind = match &cli.command {
        Command::Serve { bind } => bind.as_deref(),
        _ => None,
    };
    let boot = config::bootstrap(cli.config.as_deref(), &environment(cli, bind));
    crate::telemetry::logging::init(&boot.observability, serving, runtime);
}

/// Where `switchboard init` writes the config, and where commands look for
/// one without `--config`.
pub(crate) fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("switchboard").join("switchboard.toml"))
}

/// The `SWITCHBOARD_…` variables of this process, sorted: where the
/// config's environment overrides come from.
pub(crate) fn switchboard_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("SWITCHBOARD_"))
        .collect();
    env.sort();
    env
}

/// The `SWITCHBOARD_…` environment, plus command-line overrides last.
fn environment(cli: &Cli, bind: Option<&str>) -> Vec<(String, String)> {
    let mut env = switchboard_env();
    if let Some(d) = &cli.data_dir {
        env.push((
            "SWITCHBOARD_GATEWAY__DATA_DIR".into(),
            d.display().to_string(),
        ));
    }
    if let Some(b) = bind {
        env.push(("SWITCHBOARD_GATEWAY__BIND".into(), b.to_string()));
    }
    env
}

/// The config at `path`, with the secrets it names read from the store
/// (which is opened for that only when it names any).
async fn load(cli: &Cli, path: Option<&Path>, bind: Option<&str>) -> anyhow::Result<LoadedConfig> {
    let env = environment(cli, bind);
    let boot = config::bootstrap(path, &env);
    if boot.secrets.is_empty() {
        return config::load(path, &env).map_err(|e| anyhow::anyhow!("{e}"));
    }
    let opened = crate::vault::open(&privacy::location(path, &boot)?).await?;
    let secrets = crate::vault::read_secrets(opened.store.as_ref(), &boot.secrets).await;
    opened.store.close().await;
    config::load_with_secrets(path, &env, &secrets?).map_err(|e| anyhow::anyhow!("{e}"))
}

/// [`load`], keeping the store open (for `serve`).
async fn load_opening(
    cli: &Cli,
    path: Option<&Path>,
    bind: Option<&str>,
) -> anyhow::Result<(LoadedConfig, crate::vault::Opened)> {
    let env = environment(cli, bind);
    let boot = config::bootstrap(path, &env);
    // A config that does not load is reported before any key is asked for.
    if boot.secrets.is_empty() {
        config::load(path, &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let opened = crate::vault::open(&privacy::location(path, &boot)?).await?;
    let secrets = match crate::vault::read_secrets(opened.store.as_ref(), &boot.secrets).await {
        Ok(s) => s,
        Err(e) => {
            opened.store.close().await;
            return Err(e);
        }
    };
    match config::load_with_secrets(path, &env, &secrets) {
        Ok(loaded) => Ok((loaded, opened)),
        Err(e) => {
            opened.store.close().await;
            Err(anyhow::anyhow!("{e}"))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Init(args) => init::run(&cli, args).await,
        Command::Serve { bind } => {
            // Before the store is opened (which may migrate or seal it):
            // one gateway per data directory.
            let boot =
                config::bootstrap(cli.config.as_deref(), &environment(&cli, bind.as_deref()));
            let dir = match boot.data_dir {
                Some(d) => d,
                None => dirs::data_dir()
                    .map(|d| d.join("switchboard"))
                    .ok_or_else(|| anyhow::anyhow!(
                        "cannot find a data directory for this user (is HOME set?): pass --data-dir or set SWITCHBOARD_DATA_DIR"
                    ))?,
            };
            let address = boot.bind.unwrap_or_else(|| Config::default().gateway.bind);
            let mut lock = crate::lock::DataDirLock::acquire(&dir)?;
            let (loaded, opened) =
                load_opening(&cli, cli.config.as_deref(), bind.as_deref()).await?;
            lock.record(&address)?;
            let env = environment(&cli, bind.as_deref());
            crate::serve::serve(loaded, Some(opened), env).await
        }
        Command::Config {
            command: ConfigCommand::Check { path },
        } => {
            let path = path.as_deref().or(cli.config.as_deref());
            let loaded = load(&cli, path, None).await?;
            print_config_ok(path, &loaded);
            Ok(())
        }
        Command::Sandbox { command } => {
            let loaded = load(&cli, cli.config.as_deref(), None).await?;
            crate::sandbox::cli(&loaded.config, command, cli.json).await
        }
        Command::Doctor { security: false } => {
            crate::doctor::run(load(&cli, cli.config.as_deref(), None).await).await
        }
        Command::Doctor { security: true } => {
            let (loaded, opened) = load_opening(&cli, cli.config.as_deref(), None).await?;
            let dir = crate::serve::data_dir(&loaded.config)?;
            let mut found = crate::security::findings(&loaded.config, loaded.path.as_deref(), &dir);
            let audit = opened.audit();
            match audit.verify().await {
                Ok(v) if v.broken.is_none() => {}
                Ok(v) => found.insert(0, crate::security::audit_finding(&v.summary())),
                Err(e) => found.insert(0, crate::security::audit_finding(&e.to_string())),
            }
            opened.store.close().await;
            crate::security::report(&found, cli.json)
        }
        Command::Token {
            command: TokenCommand::New,
        } => {
            let token = crate::token::generate();
            if cli.json {
                println!("{}", serde_json::json!({ "token": token }));
            } else {
                println!("{token}");
                eprintln!(
                    "Put it in the config (gateway.auth.token = \"…\"), in SWITCHBOARD_TOKEN, or store it with `switchboard secrets set NAME` and write \"secret:NAME\"."
                );
            }
            Ok(())
        }
        Command::Ui { open } => {
            let client = Client::new(&cli).await?;
            let v = client.post("/api/ui/ticket").await?;
            let path = v["path"].as_str().unwrap_or("/login");
            let url = format!("{}{path}", client.base.trim_end_matches('/'));
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({ "url": url, "expires_in_secs": v["expires_in_secs"] })
                );
            } else {
                println!("Open the control UI (this link works once, within 5 minutes):");
                println!("  {url}");
            }
            if *open {
                open_in_browser(&url);
            }
            Ok(())
        }
        Command::Memory { command } => memory::run(&cli, command).await,
        Command::Cron { command } => cron::run(&cli, command).await,
        Command::Secrets { command } => privacy::secrets(&cli, command).await,
        Command::Keys { command } => privacy::keys(&cli, command).await,
        Command::Audit { command } => audit::run(&cli, command).await,
        Command::Forget { channel, sender } => {
            let client = Client::new(&cli).await?;
            privacy::forget(&client, cli.json, channel, sender).await
        }
        Command::Config {
            command: ConfigCommand::Reload,
        } => {
            let client = Client::for_reload(&cli).await?;
            let v = client.post("/api/config/reload").await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_reload(&v);
            }
            Ok(())
        }
        Command::Status => {
            let client = Client::new(&cli).await?;
            let v = client.get("/api/status").await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_status(&client.base, &v);
            }
            Ok(())
        }
        Command::Sessions { command } => {
            let client = Client::new(&cli).await?;
            let v = match command {
                SessionsCommand::List { limit } => {
                    client.get(&format!("/api/sessions?limit={limit}")).await?
                }
                SessionsCommand::Show { key, limit } => {
                    client
                        .get(&format!("/api/sessions/{}?limit={limit}", encode(key)))
                        .await?
                }
                SessionsCommand::Reset { key } => {
                    client
                        .post(&format!("/api/sessions/{}/reset", encode(key)))
                        .await?
                }
            };
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            match command {
                SessionsCommand::List { .. } => print_sessions(&v),
                SessionsCommand::Show { .. } => print_session(&v),
                SessionsCommand::Reset { key } => {
                    println!("Session {key} starts afresh with its next message.")
                }
            }
            Ok(())
        }
        Command::Approvals { command } => {
            let client = Client::new(&cli).await?;
            let v = match command {
                ApprovalsCommand::List { all } => {
                    client.get(&format!("/api/approvals?all={all}")).await?
                }
                ApprovalsCommand::Approve { id } => {
                    client
                        .post(&format!("/api/approvals/{}/approve", encode(id)))
                        .await?
                }
                ApprovalsCommand::Deny { id } => {
                    client
                        .post(&format!("/api/approvals/{}/deny", encode(id)))
                        .await?
                }
            };
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            match command {
                ApprovalsCommand::List { .. } => print_approvals(&v),
                _ => {
                    let r = &v["approval"];
                    println!(
                        "{} {}: `{}` in {}.",
                        if r["status"] == "approved" {
                            "Approved"
                        } else {
                            "Denied"
                        },
                        r["id"].as_str().unwrap_or("?"),
                        r["tool"].as_str().unwrap_or("?"),
                        r["session_key"].as_str().unwrap_or("?")
                    );
                }
            }
            Ok(())
        }
        Command::Pairing { command } => {
            let client = Client::new(&cli).await?;
            let v = match command {
                PairingCommand::List { channel } => match channel {
                    Some(c) => {
                        client
                            .get(&format!("/api/pairing?channel={}", encode(c)))
                            .await?
                    }
                    None => client.get("/api/pairing").await?,
                },
                PairingCommand::Approve { channel, code } => {
                    client
                        .post(&format!(
                            "/api/pairing/{}/{}/approve",
                            encode(channel),
                            encode(code)
                        ))
                        .await?
                }
                PairingCommand::Deny { channel, code } => {
                    client
                        .post(&format!(
                            "/api/pairing/{}/{}/deny",
                            encode(channel),
                            encode(code)
                        ))
                        .await?
                }
            };
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            match command {
                PairingCommand::List { .. } => print_pairing(&v),
                PairingCommand::Approve { .. } | PairingCommand::Deny { .. } => {
                    let r = &v["request"];
                    let who = r["sender_name"]
                        .as_str()
                        .unwrap_or_else(|| r["sender_id"].as_str().unwrap_or("?"));
                    let verb = if v["approved"].as_bool() == Some(true) {
                        "Approved"
                    } else {
                        "Denied"
                    };
                    println!(
                        "{verb} {who} (id {}) on {}/{}.",
                        r["sender_id"].as_str().unwrap_or("?"),
                        r["channel"].as_str().unwrap_or("?"),
                        r["account"].as_str().unwrap_or("?")
                    );
                }
            }
            Ok(())
        }
    }
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn print_config_ok(path: Option<&Path>, loaded: &LoadedConfig) {
    let c = &loaded.config;
    match path {
        Some(p) => println!("{} is valid.", p.display()),
        None => println!(
            "No config file given: the defaults (with the SWITCHBOARD_… environment) are valid."
        ),
    }
    println!("  HTTP: {}", c.gateway.bind);
    for (name, a) in &c.agents {
        let p = &c.providers[&a.provider];
        let default = if *name == loaded.default_agent {
            " (default)"
        } else {
            ""
        };
        let model = a.model.as_deref().unwrap_or(&p.model);
        println!(
            "  agent {name}{default}: provider {} ({model} at {})",
            a.provider, p.base_url
        );
    }
    println!(
        "  web chat: {}",
        if c.channels.webchat.enabled {
            "on"
        } else {
            "off"
        }
    );
}

fn print_reload(v: &Value) {
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let applied = list("applied");
    if applied.is_empty() {
        println!("Reloaded: nothing that applies live changed.");
    } else {
        println!("Reloaded; applied now: {}.", applied.join(", "));
    }
    for (label, key) in [
        ("Started", "started"),
        ("Stopped", "stopped"),
        ("Restarted", "restarted"),
    ] {
        let l = list(key);
        if !l.is_empty() {
            println!("{label}: {}.", l.join(", "));
        }
    }
    let waiting = list("restart_needed");
    if !waiting.is_empty() {
        println!(
            "These changed but apply only after a restart of the gateway: {}.",
            waiting.join(", ")
        );
    }
}

fn ms_to_local(ms: Option<i64>) -> String {
    use chrono::TimeZone;
    ms.and_then(|ms| chrono::Local.timestamp_millis_opt(ms).single())
        .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn print_status(base: &str, v: &Value) {
    println!(
        "Switchboard {} at {base}",
        v["version"].as_str().unwrap_or("?")
    );
    println!(
        "  ready:    {}",
        if v["ready"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        }
    );
    println!("  uptime:   {} s", v["uptime_secs"]);
    println!(
        "  agents:   {} (default {})",
        join(&v["agents"]),
        v["default_agent"].as_str().unwrap_or("?")
    );
    println!(
        "  sessions: {} in memory, {} running; {} turns done, {} failed",
        v["sessions_in_memory"], v["runs_in_flight"], v["turns_done"], v["turns_failed"]
    );
    if let Some(components) = v["components"].as_object() {
        println!("  components:");
        for (name, c) in components {
            let detail = c["detail"]
                .as_str()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default();
            let restarts = match c["restarts"].as_u64() {
                Some(n) if n > 0 => {
                    let last = c["last_failure"]
                        .as_str()
                        .map(|f| format!(", last: {f}"))
                        .unwrap_or_default();
                    format!(" (restarted {n}×{last})")
                }
                _ => String::new(),
            };
            let notice = c["connection"]["notice"]
                .as_str()
                .map(|n| format!(" — {n}"))
                .unwrap_or_default();
            println!(
                "    {name:<28} {}{detail}{notice}{restarts}",
                c["state"].as_str().unwrap_or("?")
            );
        }
    }
    print_cluster(&v["cluster"]);
}

/// The replicas and leases of a gateway that runs as a replica.
fn print_cluster(c: &Value) {
    if !c.is_object() {
        return;
    }
    let me = c["replica_id"].as_str().unwrap_or("?");
    println!(
        "  cluster:  this is replica {me} (leases of {} s)",
        c["lease_secs"]
    );
    let seen = c["last_heartbeat_ms"].as_i64().unwrap_or(0);
    println!("  replicas:");
    for r in c["replicas"].as_array().into_iter().flatten() {
        let id = r["id"].as_str().unwrap_or("?");
        let ago = (seen - r["heartbeat_at"].as_i64().unwrap_or(0)).max(0) as f64 / 1000.0;
        println!(
            "    {id:<28} {} — heartbeat {ago:.1} s ago{}",
            r["address"].as_str().unwrap_or("?"),
            if id == me { " (this one)" } else { "" }
        );
    }
    println!("  leases:");
    let leases = c["leases"].as_array().into_iter().flatten();
    let mut any = false;
    for l in leases {
        any = true;
        println!(
            "    {:<28} held by {}",
            l["name"].as_str().unwrap_or("?"),
            l["holder"].as_str().unwrap_or("?")
        );
    }
    if !any {
        println!("    (none held)");
    }
}

/// Open `url` in the desktop's browser (`xdg-open`, `open` on macOS),
/// saying so when that is not possible; the link was printed anyway.
fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => eprintln!("Opening it in your browser."),
        Err(e) => eprintln!("Cannot open a browser ({opener}: {e}); open the link above yourself."),
    }
}

fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn print_sessions(v: &Value) {
    let list = v["sessions"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("No sessions yet.");
        return;
    }
    println!("{:<50} {:>6}  {}", "KEY", "TURNS", "LAST ACTIVE");
    for s in list {
        println!(
            "{:<50} {:>6}  {}",
            s["key"].as_str().unwrap_or("?"),
            s["turns"],
            ms_to_local(s["last_active_at"].as_i64())
        );
    }
}

fn print_session(v: &Value) {
    let s = &v["session"];
    println!("Session {}", s["key"].as_str().unwrap_or("?"));
    println!(
        "  agent: {}   turns: {}   id: {}",
        s["agent"].as_str().unwrap_or("?"),
        s["turns"],
        s["session_id"].as_str().unwrap_or("?")
    );
    println!(
        "  started: {}   last active: {}",
        ms_to_local(s["updated_at"].as_i64()),
        ms_to_local(s["last_active_at"].as_i64())
    );
    let u = &v["usage"];
    let cost = match u["cost_micros"].as_i64() {
        Some(micros) if micros > 0 => crate::telemetry::cost::format_usd(micros),
        _ => "—".to_string(),
    };
    println!(
        "  tokens: {} in ({} cached), {} out over {} turns   cost: {cost}",
        u["input_tokens"], u["cached_tokens"], u["output_tokens"], u["turns"]
    );
    let entries = v["transcript"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        println!("  (no messages in this session yet)");
    }
    for e in entries {
        println!(
            "\n[{}] {}:",
            ms_to_local(e["created_at"].as_i64()),
            e["role"].as_str().unwrap_or("?")
        );
        println!("{}", e["content"].as_str().unwrap_or(""));
    }
}

fn print_approvals(v: &Value) {
    let list = v["approvals"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("No approval requests.");
        return;
    }
    println!(
        "{:<8} {:<10} {:<12} {:<40} {}",
        "ID", "STATUS", "TOOL", "SESSION", "ARGUMENTS"
    );
    for r in list {
        println!(
            "{:<8} {:<10} {:<12} {:<40} {}",
            r["id"].as_str().unwrap_or("?"),
            r["status"].as_str().unwrap_or("?"),
            r["tool"].as_str().unwrap_or("?"),
            r["session_key"].as_str().unwrap_or("?"),
            r["arguments"].as_str().unwrap_or("")
        );
    }
    println!("\nDecide with: switchboard approvals approve|deny <id>");
}

fn print_pairing(v: &Value) {
    let list = v["pending"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("No pending pairing requests.");
        return;
    }
    println!(
        "{:<10} {:<12} {:<24} {:<10} {}",
        "CHANNEL", "ACCOUNT", "SENDER", "CODE", "EXPIRES"
    );
    for r in list {
        let who = match r["sender_name"].as_str() {
            Some(n) => format!("{n} ({})", r["sender_id"].as_str().unwrap_or("?")),
            None => r["sender_id"].as_str().unwrap_or("?").to_string(),
        };
        println!(
            "{:<10} {:<12} {:<24} {:<10} {}",
            r["channel"].as_str().unwrap_or("?"),
            r["account"].as_str().unwrap_or("?"),
            who,
            r["code"].as_str().unwrap_or("?"),
            ms_to_local(r["expires_at"].as_i64())
        );
    }
    println!("\nApprove with: switchboard pairing approve <channel> <code>");
}

/// A client of the running gateway's control API.
struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the gateway the config describes. For `config reload`,
    /// a config that does not load is no reason not to ask: the gateway
    /// is found from the part of it that reads (`gateway.bind`,
    /// `data_dir`, the token), and says itself what is wrong.
    async fn for_reload(cli: &Cli) -> anyhow::Result<Self> {
        match Self::new(cli).await {
            Ok(c) => Ok(c),
            Err(full) => {
                let boot = config::bootstrap(cli.config.as_deref(), &environment(cli, None));
                let mut c = Config::default();
                if let Some(bind) = boot.bind {
                    c.gateway.bind = bind;
                }
                c.gateway.data_dir = boot.data_dir;
                c.gateway.auth.token = boot.token;
                Self::of(cli, &c).map_err(|_| full)
            }
        }
    }

    async fn new(cli: &Cli) -> anyhow::Result<Self> {
        let loaded = load(cli, cli.config.as_deref(), None).await?;
        Self::of(cli, &loaded.config)
    }

    fn of(cli: &Cli, c: &Config) -> anyhow::Result<Self> {
        let base = match &cli.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let addr: std::net::SocketAddr = c.gateway.bind.parse()?;
                let host = if addr.ip().is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    addr.ip().to_string()
                };
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host
                };
                format!("http://{host}:{}", addr.port())
            }
        };
        let token = match c.gateway.auth.token.clone() {
            Some(t) => t,
            None => {
                let dir = crate::serve::data_dir(c)?;
                crate::auth::read_stored(&dir)?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "no control token: set SWITCHBOARD_TOKEN, or run this as the user whose data directory ({}) holds control-token",
                        dir.display()
                    )
                })?
            }
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Self { base, token, http })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)))
            .await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.bearer_auth(&self.token).header("x-switchboard-client", "cli").send().await.map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!("the gateway is not running at {} (cannot connect): start it with `switchboard serve`", self.base)
            } else {
                anyhow::anyhow!("cannot reach the gateway at {}: {e}", self.base)
            }
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("no details")
            .to_string();
        anyhow::bail!("the gateway answered {status}: {message}")
    }
}
