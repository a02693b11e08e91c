//! `switchboard audit …`: the audit log, read from the store itself (as
//! `secrets list` reads it; the gateway need not run), and the check of
//! its chain.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::Subcommand;
use serde_json::{Value, json};

use super::Cli;
use super::privacy::located;
use crate::audit::{Verification, Why, chain, record_json};
use crate::clock::now_ms;
use crate::vault;

/// `switchboard audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The records, newest first: who did what, when and from where.
    List {
        /// Only those since then: an RFC 3339 time
        /// ("2026-12-01T00:00:00Z") or a while ago ("30m", "2h", "3d").
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
    /// Check the chain of HMACs; exits 1 naming the first record that was
    /// changed, removed or reordered.
    Verify,
}

/// `--since` as ms since the epoch, at `now`.
fn parse_since(text: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(ago) = crate::cron::parse::parse_duration(text) {
        let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return Ok(now.saturating_sub(ago));
    }
    crate::cron::parse::parse_at(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            anyhow::anyhow!(
                "--since `{}` is neither a time (RFC 3339, e.g. 2026-12-01T00:00:00Z) nor a while ago (e.g. 30m, 2h, 3d)",
                text.trim()
            )
        })
}

pub(crate) async fn run(cli: &Cli, command: &AuditCommand) -> anyhow::Result<()> {
    // A bad --since is said before any key or passphrase is asked for.
    let since = match command {
        AuditCommand::List { since: Some(s), .. } => parse_since(s, now_ms())?,
        _ => 0,
    };
    let (loc, _) = located(cli)?;
    let opened = vault::open(&loc).await?;
    let audit = opened.audit();
    let result = async {
        match command {
            AuditCommand::List { limit, .. } => {
                let records = audit.list(since, *limit).await?;
                if cli.json {
                    let v = audit.verify().await?;
                    let list: Vec<Value> = records.iter().map(record_json).collect();
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &json!({ "records": list, "chain": v.to_json() })
                        )?
                    );
                } else if records.is_empty() {
                    println!(
                        "No audit records{}.",
                        if since > 0 { " in that time" } else { "" }
                    );
                } else {
                    print_records(&records);
                }
                Ok(())
            }
            AuditCommand::Verify => {
                let v = audit.verify().await?;
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&v.to_json())?);
                }
                verdict(&v, cli.json)
            }
        }
    }
    .await;
    opened.store.close().await;
    result
}

/// Exit 0 with a line saying the chain holds, or an error naming the first
/// bad record.
fn verdict(v: &Verification, quiet: bool) -> anyhow::Result<()> {
    match &v.broken {
        None => {
            if !quiet {
                let from = v
                    .checkpoint
                    .as_ref()
                    .map(|c| format!(" (from checkpoint at seq {})", c.seq))
                    .unwrap_or_default();
                println!("{} records verified, chain intact{from}", v.records);
            }
            Ok(())
        }
        Some(broken) => {
            let first = v.checkpoint.as_ref().map_or(1, |c| c.seq + 1);
            if broken.why == Why::Changed && broken.seq == first {
                eprintln!(
                    "note: when even the first record fails, the audit key may not be the one the log was written with (a keyring or audit.key restored from elsewhere)"
                );
            }
            Err(anyhow::anyhow!("{broken}"))
        }
    }
}

fn print_records(records: &[switchboard_memory::AuditRecord]) {
    println!(
        "{:>6}  {:<20}  {:<22}  {:<16}  {:<18}  {:<28}  DETAIL",
        "SEQ", "TIME (UTC)", "ACTOR", "SOURCE", "ACTION", "TARGET"
    );
    for r in records {
        println!(
            "{:>6}  {:<20}  {:<22}  {:<16}  {:<18}  {:<28}  {}",
            r.seq,
            chain::rfc3339(r.at),
            r.actor,
            r.source,
            r.action,
            if r.target.is_empty() {
                "-"
            } else {
                r.target.as_str()
            },
            r.detail
        );
    }
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_is_a_time_or_a_while_ago() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_since("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(parse_since("3d", now).unwrap(), now - 3 * 86_400_000);
        assert_eq!(
            parse_since("2026-12-02T08:00:00Z", now).unwrap(),
            1_796_198_400_000
        );
        let err = parse_since("yesterday", now).unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
