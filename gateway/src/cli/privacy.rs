//! `switchboard secrets …`, `keys rotate` and `forget`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Cli, Client, environment, ms_to_local};
use crate::audit::{Actor, action};
use crate::config::{self, Bootstrap, EncryptionMode};
use crate::vault::{self, Location};

/// `switchboard secrets …`
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Set (or replace) a secret; the value is read from stdin, or asked
    /// for without echo on a terminal.
    Set {
        /// Its name (letters, digits, `_`, `-`, `.`), as used in
        /// `"secret:NAME"`.
        name: String,
    },
    /// List the secrets' names and when each was set (never values).
    List,
    /// Remove a secret.
    Remove {
        /// Its name.
        name: String,
    },
}

/// `switchboard keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Wrap the data keys under a new key file (or a new passphrase from
    /// SWITCHBOARD_NEW_PASSPHRASE or the terminal), at once. Run it with
    /// the gateway stopped.
    Rotate {
        /// Also re-encrypt every record under new data keys (resumable,
        /// with progress).
        #[arg(long)]
        reencrypt: bool,
        /// PBKDF2 iterations for the new passphrase key (passphrase mode).
        #[arg(long, value_name = "N")]
        iterations: Option<u32>,
    },
}

/// Where the store of the config at `path` lives.
pub(crate) fn location(path: Option<&Path>, boot: &Bootstrap) -> anyhow::Result<Location> {
    let data_dir = match &boot.data_dir {
        Some(d) => d.clone(),
        None => dirs::data_dir()
            .map(|d| d.join("switchboard"))
            .context("cannot find a data directory for this user (is HOME set?): pass --data-dir or set SWITCHBOARD_DATA_DIR")?,
    };
    Ok(Location {
        data_dir,
        config_dir: vault::config_dir(path),
        encryption: boot.store.encryption.clone(),
        url: boot.store.url.clone(),
    })
}

/// Where the store of the command line's config lives, and the config's
/// bootstrap part.
pub(super) fn located(cli: &Cli) -> anyhow::Result<(Location, Bootstrap)> {
    let boot = config::bootstrap(cli.config.as_deref(), &environment(cli, None));
    Ok((location(cli.config.as_deref(), &boot)?, boot))
}

/// The secret's value: stdin when it is not a terminal (one trailing
/// newline dropped), else asked twice without echo.
fn read_value(name: &str) -> anyhow::Result<Zeroizing<String>> {
    let value = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = Zeroizing::new(rpassword::prompt_password(format!("Value of {name}: "))?);
        let again = Zeroizing::new(rpassword::prompt_password("Type it again: ")?);
        if *first != *again {
            anyhow::bail!("the two values differ; nothing was stored");
        }
        first
    } else {
        let mut text = Zeroizing::new(String::new());
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the value from stdin")?;
        let trimmed = text.strip_suffix('\n').unwrap_or(&text);
        let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
        Zeroizing::new(trimmed.to_string())
    };
    if value.is_empty() {
        anyhow::bail!(
            "the value is empty; nothing was stored (pipe it in, e.g. `printf %s \"$TOKEN\" | switchboard secrets set {name}`)"
        );
    }
    Ok(value)
}

pub(crate) async fn secrets(cli: &Cli, command: &SecretsCommand) -> anyhow::Result<()> {
    let (loc, _) = located(cli)?;
    let name_ok = |name: &str| {
        if vault::valid_secret_name(name) {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "`{name}` cannot name a secret: use 1 to 64 letters, digits, `_`, `-` or `.`"
            ))
        }
    };
    // Read the value before the store (and maybe a passphrase prompt).
    let value = match command {
        SecretsCommand::Set { name } => {
            name_ok(name)?;
            Some(read_value(name)?)
        }
        _ => None,
    };
    let opened = vault::open(&loc).await?;
    let store = opened.store.clone();
    let audit = opened.audit();
    let result = async {
        match command {
            SecretsCommand::Set { name } => {
                let value = value.unwrap_or_default();
                store
                    .secret_set(name, &value, crate::clock::now_ms())
                    .await?;
                // Its name only, never the value.
                audit
                    .record(&Actor::cli(), action::SECRET_SET, name, json!({}))
                    .await;
                if opened.mode == EncryptionMode::Off {
                    eprintln!("warning: [store.encryption] mode is `off`: the secret is stored in plain text");
                }
                if cli.json {
                    println!("{}", json!({ "name": name, "set": true }));
                } else {
                    println!(
                        "Secret {name} set. Use it in the config as \"secret:{name}\"; a running gateway reads it at its next start or `switchboard config reload`."
                    );
                }
            }
            SecretsCommand::List => {
                let list = store.secrets_list().await?;
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else if list.is_empty() {
                    println!("No secrets. Set one with: switchboard secrets set NAME");
                } else {
                    for s in list {
                        println!("{:<32} set {}", s.name, ms_to_local(Some(s.updated_at)));
                    }
                }
            }
            SecretsCommand::Remove { name } => {
                if store.secret_remove(name).await? {
                    audit
                        .record(&Actor::cli(), action::SECRET_REMOVED, name, json!({}))
                        .await;
                    println!("Secret {name} removed.");
                } else {
                    anyhow::bail!("no secret named `{name}` (see `switchboard secrets list`)");
                }
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// Whether something answers at the gateway's address.
async fn gateway_running(bind: &str) -> Option<String> {
    let addr: std::net::SocketAddr = bind.parse().ok()?;
    let host = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let probe = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        tokio::net::TcpStream::connect(host),
    )
    .await;
    matches!(probe, Ok(Ok(_))).then(|| host.to_string())
}

pub(crate) async fn keys(cli: &Cli, command: &KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Rotate {
        reencrypt,
        iterations,
    } = command;
    let (loc, boot) = located(cli)?;
    let bind = boot
        .bind
        .clone()
        .unwrap_or_else(|| config::Config::default().gateway.bind);
    if let Some(at) = gateway_running(&bind).await {
        anyhow::bail!(
            "a gateway is running at {at}: stop it first (it holds the keyring in memory), then run this again"
        );
    }
    let opened = vault::open(&loc).await?;
    let result = vault::rotate(&loc, &opened, *reencrypt, *iterations).await;
    if result.is_ok() {
        // The audit key is derived from the keyring's root, which a
        // rotation keeps: the chain goes on.
        opened
            .audit()
            .record(
                &Actor::cli(),
                action::KEYS_ROTATED,
                &loc.keyring().display().to_string(),
                json!({
                    "mode": loc.encryption.mode.as_str(),
                    "reencrypt": reencrypt,
                    "iterations": iterations,
                }),
            )
            .await;
    }
    opened.store.close().await;
    result
}

pub(crate) async fn forget(
    client: &Client,
    json_out: bool,
    channel: &str,
    sender: &str,
) -> anyhow::Result<()> {
    let body = json!({ "channel": channel, "sender": sender });
    let v: Value = client
        .send(
            client
                .http
                .post(format!("{}/api/forget", client.base))
                .json(&body),
        )
        .await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let r = &v["removed"];
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    println!(
        "Forgot {channel} sender {sender}: {} sessions, {} transcript entries, {} messages, {} memories, {} approvals, {} pairing requests, {} allowlist entries removed; {} keys destroyed.",
        n("sessions"),
        n("transcript_entries"),
        n("ingress_rows"),
        n("memories"),
        n("approvals"),
        n("pairing_requests"),
        n("allowlist_entries"),
        n("keys"),
    );
    Ok(())
}
