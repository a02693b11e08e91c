//! `switchboard doctor --security`: the configuration and the files read
//! as an attacker would, each finding with a stable id, a severity and
//! the fix. Pure over the config and the file system; the audit chain's
//! state is handed in by the caller, which opened the store.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde::Serialize;

use crate::config::{Config, DmPolicy, EncryptionMode, GroupPolicy};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Low,
    /// Should be fixed.
    Medium,
    /// Fix before trusting the gateway with messages; the command fails.
    High,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id, e.g. `SB-DM-OPEN`: scripts and suppressions rely on it.
    pub id: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong, and where.
    pub what: String,
    /// What to do.
    pub fix: String,
}

fn finding(id: &'static str, severity: Severity, what: String, fix: &str) -> Finding {
    Finding {
        id,
        severity,
        what,
        fix: fix.to_string(),
    }
}

/// Every account's (name, DM policy, group policy).
fn accounts(config: &Config) -> Vec<(String, DmPolicy, GroupPolicy)> {
    let c = &config.channels;
    let mut out = Vec::new();
    for (name, a) in &c.telegram.accounts {
        let r = a.access();
        out.push((
            format!("channels.telegram.accounts.{name}"),
            r.dm_policy,
            r.group_policy,
        ));
    }
    for (name, a) in &c.discord.accounts {
        let r = a.access();
        out.push((
            format!("channels.discord.accounts.{name}"),
            r.dm_policy,
            r.group_policy,
        ));
    }
    for (name, a) in &c.slack.accounts {
        let r = a.access();
        out.push((
            format!("channels.slack.accounts.{name}"),
            r.dm_policy,
            r.group_policy,
        ));
    }
    out
}

/// Whether `mode` lets anyone else read or write the file.
fn shared(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// The findings of `config` (from `config_path`, with data in `data_dir`).
pub fn findings(config: &Config, config_path: Option<&Path>, data_dir: &Path) -> Vec<Finding> {
    use Severity::*;
    let mut out = Vec::new();
    let g = &config.gateway;
    let public = g
        .bind
        .parse::<SocketAddr>()
        .is_ok_and(|a| !a.ip().is_loopback());
    if public && g.tls.is_none() {
        out.push(finding(
            "SB-BIND-PLAIN",
            if g.behind_proxy { Medium } else { High },
            format!(
                "gateway.bind {} is reachable from other machines without TLS{}",
                g.bind,
                if g.behind_proxy {
                    " (behind_proxy = true: the proxy must terminate TLS and be the only way in)"
                } else {
                    ""
                }
            ),
            "set [gateway.tls] cert and key, or keep the port reachable only from the reverse proxy",
        ));
    }
    if let Some(why) = g.auth.token.as_deref().and_then(crate::token::weakness) {
        out.push(finding(
            "SB-TOKEN-WEAK",
            High,
            format!("gateway.auth.token is weak: {why}"),
            "make one with `switchboard token new`",
        ));
    }
    if public && g.auth.failed_per_minute == 0 {
        out.push(finding(
            "SB-AUTH-UNTHROTTLED",
            Medium,
            "gateway.auth.failed_per_minute = 0: guesses of the token are not throttled on a public port".into(),
            "set gateway.auth.failed_per_minute (default 10)",
        ));
    }
    for (key, dm, group) in accounts(config) {
        if dm == DmPolicy::Open {
            out.push(finding(
                "SB-DM-OPEN",
                High,
                format!(
                    "{key}.dm_policy = \"open\": anyone who finds the bot talks to the assistant"
                ),
                "use dm_policy = \"pairing\" (the default) or \"allowlist\"",
            ));
        }
        if group == GroupPolicy::Open {
            out.push(finding(
                "SB-GROUP-OPEN",
                Medium,
                format!("{key}: every group the bot is added to is answered"),
                "use an allowlist of groups (group_policy = \"allowlist\")",
            ));
        }
    }
    let untrusted_reach = accounts(config)
        .iter()
        .any(|(_, dm, group)| *dm == DmPolicy::Open || *group != GroupPolicy::Disabled);
    for (name, a) in &config.agents {
        let tools = a.tools.policy();
        let approvals = a.approvals.policy();
        let dangerous: Vec<&str> = switchboard_agents::tools::DANGEROUS
            .iter()
            .copied()
            .filter(|t| {
                tools.profile.includes(t)
                    || tools
                        .allow
                        .iter()
                        .any(|p| switchboard_agents::tools::glob_match(p, t))
            })
            .collect();
        if dangerous.is_empty() {
            continue;
        }
        let unguarded = approvals.mode == switchboard_agents::tools::ApprovalMode::Never;
        if tools.dangerous_in_groups && untrusted_reach {
            out.push(finding(
                "SB-DANGEROUS-IN-GROUPS",
                if unguarded { High } else { Medium },
                format!(
                    "agents.{name} offers {} in groups{}",
                    dangerous.join(", "),
                    if unguarded { " without approval" } else { "" }
                ),
                "set agents.<name>.tools.dangerous_in_groups = false, or keep approvals on",
            ));
        }
        if unguarded {
            out.push(finding(
                "SB-APPROVALS-OFF",
                Medium,
                format!(
                    "agents.{name}.approvals.mode = \"never\": {} run without anyone deciding",
                    dangerous.join(", ")
                ),
                "use mode = \"on-miss\" (the default) with an allowlist of what may run unasked",
            ));
        }
        if !approvals.taint {
            out.push(finding(
                "SB-TAINT-OFF",
                if unguarded || !approvals.allowlist.is_empty() { High } else { Medium },
                format!(
                    "agents.{name}.approvals.taint = false: after reading a fetched page, an attachment or a stranger's message, {} still run as the rules say, so that content can steer them",
                    dangerous.join(", ")
                ),
                "remove agents.<name>.approvals.taint (it defaults to true)",
            ));
        }
    }
    let sb = &config.sandbox;
    if sb.host_exec {
        out.push(finding(
            "SB-HOST-EXEC",
            High,
            "sandbox.host_exec = true: shell and file tools run directly on this machine for sessions outside the sandbox".into(),
            "set sandbox.host_exec = false and sandbox.mode = \"all\"",
        ));
    } else if sb.mode == switchboard_sandbox::SandboxMode::Off {
        out.push(finding(
            "SB-SANDBOX-OFF",
            Low,
            "sandbox.mode = \"off\": the shell and file tools are not offered".into(),
            "set sandbox.mode = \"all\" to offer them inside containers",
        ));
    }
    if config.store.encryption.mode == EncryptionMode::Off {
        out.push(finding(
            "SB-ENCRYPTION-OFF",
            High,
            "[store.encryption] mode = \"off\": transcripts, messages and memories are stored in plain text".into(),
            "set mode = \"keyfile\" (the default) or \"passphrase\"; the records are encrypted at the next start",
        ));
    }
    let mode_of = |p: &Path| std::fs::metadata(p).ok().map(|m| m.permissions().mode());
    if let Some(path) = config_path
        && let Some(mode) = mode_of(path)
        && shared(mode)
        && std::fs::read_to_string(path).is_ok_and(|t| {
            t.lines().any(|l| {
                let l = l.trim_start();
                !l.starts_with('#')
                    && crate::config::SECRET_KEYS.iter().any(|k| {
                        l.strip_prefix(k).is_some_and(|r| {
                            r.trim_start().starts_with('=') && !r.contains("\"secret:")
                        })
                    })
            })
        })
    {
        out.push(finding(
            "SB-CONFIG-PERMS",
            High,
            format!(
                "{} holds secrets and can be read by other users (mode {:o})",
                path.display(),
                mode & 0o777
            ),
            "run `chmod 600` on it, or move the secrets into the store (`switchboard secrets set`)",
        ));
    }
    for (what, path) in [
        ("the data directory", data_dir.to_path_buf()),
        ("the database", data_dir.join("switchboard.db")),
        ("the control token file", crate::auth::token_path(data_dir)),
    ] {
        if let Some(mode) = mode_of(&path)
            && shared(mode)
            && (what != "the data directory" || mode & 0o007 != 0)
        {
            out.push(finding(
                "SB-DATA-PERMS",
                if what == "the control token file" {
                    High
                } else {
                    Medium
                },
                format!(
                    "{what} {} can be read by other users (mode {:o})",
                    path.display(),
                    mode & 0o777
                ),
                "run `chmod 700` on the data directory and `chmod 600` on its files",
            ));
        }
    }
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(b.id)));
    out
}

/// The finding of an audit chain that does not verify.
pub fn audit_finding(broken: &str) -> Finding {
    finding(
        "SB-AUDIT-BROKEN",
        Severity::High,
        format!("the audit log does not verify: {broken}"),
        "find out who changed the database; `switchboard audit verify` names the first bad record",
    )
}

/// Print `found` (as JSON when `json`); fails when one is high.
pub fn report(found: &[Finding], json: bool) -> anyhow::Result<()> {
    let high = found
        .iter()
        .filter(|f| f.severity == Severity::High)
        .count();
    if json {
        println!("{}", serde_json::json!({ "findings": found, "high": high }));
    } else if found.is_empty() {
        println!("no findings: nothing in the configuration or the files stands out");
    } else {
        for f in found {
            let sev = match f.severity {
                Severity::High => "HIGH  ",
                Severity::Medium => "MEDIUM",
                Severity::Low => "LOW   ",
            };
            println!("{sev} {} {}\n       fix: {}", f.id, f.what, f.fix);
        }
    }
    if high > 0 {
        anyhow::bail!("{high} high finding(s): fix them before exposing the gateway");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::load_str(text, "c", &[])
            .expect("valid")
            .config
    }

    #[test]
    fn defaults_have_no_high_finding_and_risks_are_named_with_their_fix() {
        let dir = tempfile::tempdir().unwrap();
        let found = findings(&config(""), None, dir.path());
        assert!(
            found.iter().all(|f| f.severity != Severity::High),
            "{found:#?}"
        );
        let risky = config(
            "[store.encryption]\nmode = \"off\"\n[sandbox]\nhost_exec = true\n[channels.telegram.accounts.main]\ntoken = \"123456789:AAHfakeTokenForSwitchboardTests_0123\"\ndm_policy = \"open\"\n",
        );
        let found = findings(&risky, None, dir.path());
        let ids: Vec<&str> = found.iter().map(|f| f.id).collect();
        for id in ["SB-ENCRYPTION-OFF", "SB-HOST-EXEC", "SB-DM-OPEN"] {
            assert!(ids.contains(&id), "{id}: {found:#?}");
        }
        assert_eq!(found[0].severity, Severity::High, "high ones first");
        let untainted = config(
            "[agents.main]\nprovider = \"p\"\n[agents.main.tools]\nprofile = \"coding\"\n[agents.main.approvals]\nallowlist = [\"exec\"]\ntaint = false\n[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n",
        );
        let taint = findings(&untainted, None, dir.path())
            .into_iter()
            .find(|f| f.id == "SB-TAINT-OFF")
            .expect("taint off is a finding");
        assert_eq!(taint.severity, Severity::High, "allowlisted and untainted");
        assert!(report(&found, true).is_err());
    }

    #[test]
    fn a_readable_config_with_a_secret_is_high() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(
            &path,
            "[gateway.auth]\ntoken = \"Zq7mR2vL9kT4wZ8nC1pF6hJ3bD5gS0aEy\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = config("");
        let found = findings(&c, Some(&path), dir.path());
        assert!(
            found.iter().any(|f| f.id == "SB-CONFIG-PERMS"),
            "{found:#?}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let found = findings(&c, Some(&path), dir.path());
        assert!(
            !found.iter().any(|f| f.id == "SB-CONFIG-PERMS"),
            "{found:#?}"
        );
    }
}
