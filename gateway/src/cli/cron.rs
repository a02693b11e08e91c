//! `switchboard cron …`: the scheduler's jobs, through the running
//! gateway's control API.
#![allow(clippy::print_stdout)]

use clap::Subcommand;
use serde_json::{Value, json};

use super::{Cli, Client, encode, ms_to_local};

/// `switchboard cron …`
#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// Every job: when it runs next and how its last run went.
    List,
    /// One job: its next 5 run times (with their zone offsets) and its run
    /// history.
    Show {
        /// The job.
        name: String,
        /// How many past runs to show.
        #[arg(long, default_value_t = 20)]
        history: u32,
    },
    /// Run a job now.
    Run {
        /// The job.
        name: String,
    },
    /// Pause a job (its slots are skipped until it is resumed).
    Pause {
        /// The job.
        name: String,
    },
    /// Resume a paused job (slots passed while paused do not run).
    Resume {
        /// The job.
        name: String,
    },
    /// Add a job kept in the store (the config's jobs are in the config).
    Add {
        /// Its name (letters, digits, `_`, `-`).
        name: String,
        /// What is said to the agent at each run.
        #[arg(long)]
        message: String,
        /// A cron pattern, seconds optional: "0 30 7 * * Mon-Fri".
        #[arg(long, conflicts_with_all = ["every", "at"])]
        schedule: Option<String>,
        /// A period: "15m", "1h30m".
        #[arg(long, conflicts_with = "at")]
        every: Option<String>,
        /// One time, RFC 3339: "2026-12-24T09:00:00+01:00".
        #[arg(long)]
        at: Option<String>,
        /// The zone the schedule is read in (default: the machine's).
        #[arg(long)]
        tz: Option<String>,
        /// The agent (default: the default agent).
        #[arg(long)]
        agent: Option<String>,
        /// Where the answer goes: channel:account:chat[:thread], a URL, or
        /// none.
        #[arg(long, default_value = "none")]
        deliver: String,
        /// `isolated` (the job's own session) or a session key.
        #[arg(long, default_value = "isolated")]
        session: String,
    },
    /// Remove a job added with `cron add`.
    Remove {
        /// The job.
        name: String,
    },
}

fn line(j: &Value) -> String {
    let state = if j["running"].as_bool() == Some(true) {
        "running".to_string()
    } else if j["paused"].as_bool() == Some(true) {
        "PAUSED".to_string()
    } else if j["enabled"].as_bool() == Some(false) {
        "disabled".to_string()
    } else {
        "active".to_string()
    };
    let last = match &j["last"] {
        Value::Null => "never ran".to_string(),
        l => format!(
            "last {} at {}",
            l["status"].as_str().unwrap_or("?"),
            ms_to_local(l["slot"].as_i64())
        ),
    };
    format!(
        "{:<20} {:<8} next {:<40} {} → {} ({last})",
        j["name"].as_str().unwrap_or("?"),
        state,
        j["next"].as_str().unwrap_or("—"),
        j["when"].as_str().unwrap_or(""),
        j["deliver"].as_str().unwrap_or(""),
    )
}

/// Run `command` against the gateway `cli` names.
pub(crate) async fn run(cli: &Cli, command: &CronCommand) -> anyhow::Result<()> {
    let client = Client::new(cli).await?;
    let v = match command {
        CronCommand::List => client.get("/api/cron").await?,
        CronCommand::Show { name, history } => {
            client
                .get(&format!("/api/cron/{}?history={history}", encode(name)))
                .await?
        }
        CronCommand::Run { name } => {
            client
                .post(&format!("/api/cron/{}/run", encode(name)))
                .await?
        }
        CronCommand::Pause { name } => {
            client
                .post(&format!("/api/cron/{}/pause", encode(name)))
                .await?
        }
        CronCommand::Resume { name } => {
            client
                .post(&format!("/api/cron/{}/resume", encode(name)))
                .await?
        }
        CronCommand::Remove { name } => {
            client
                .post(&format!("/api/cron/{}/remove", encode(name)))
                .await?
        }
        CronCommand::Add {
            name,
            message,
            schedule,
            every,
            at,
            tz,
            agent,
            deliver,
            session,
        } => {
            let mut body = json!({
                "name": name, "message": message, "deliver": deliver, "session": session,
            });
            for (k, v) in [
                ("schedule", schedule),
                ("every", every),
                ("at", at),
                ("tz", tz),
                ("agent", agent),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            client
                .send(
                    client
                        .http
                        .post(format!("{}/api/cron", client.base))
                        .json(&body),
                )
                .await?
        }
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match command {
        CronCommand::List => {
            let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
            if jobs.is_empty() {
                println!(
                    "No jobs. Add one under [cron.jobs.<name>] in the config, or with `switchboard cron add`."
                );
            }
            for j in &jobs {
                println!("{}", line(j));
                if let Some(why) = j["paused_reason"].as_str() {
                    println!("{:<20} {why}", "");
                }
            }
        }
        CronCommand::Show { .. } => {
            println!("{}", line(&v["job"]));
            println!("\nNext runs ({}):", v["job"]["tz"].as_str().unwrap_or(""));
            for t in v["upcoming"].as_array().cloned().unwrap_or_default() {
                println!("  {}", t.as_str().unwrap_or(""));
            }
            println!("\nHistory (latest first):");
            let runs = v["runs"].as_array().cloned().unwrap_or_default();
            if runs.is_empty() {
                println!("  none yet");
            }
            for r in runs {
                println!(
                    "  {}  {:<8} {}",
                    ms_to_local(r["slot"].as_i64()),
                    r["status"].as_str().unwrap_or("?"),
                    r["reason"].as_str().unwrap_or("")
                );
            }
        }
        CronCommand::Run { name } => {
            println!("Started {name}; see `switchboard cron show {name}`.")
        }
        CronCommand::Pause { name } => println!("Paused {name}."),
        CronCommand::Resume { name } => println!("Resumed {name}."),
        CronCommand::Add { name, .. } => {
            println!("Added {name}; see `switchboard cron show {name}`.")
        }
        CronCommand::Remove { name } => println!("Removed {name}."),
    }
    Ok(())
}
