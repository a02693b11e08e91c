//! `switchboard memory …`: the agents' long-term memories, through the
//! running gateway's control API (which decrypts them).
#![allow(clippy::print_stdout)]

use clap::Subcommand;
use serde_json::Value;

use super::{Cli, Client, encode, ms_to_local};

/// `switchboard memory …`
#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Memories, newest first.
    List {
        /// Only this agent's.
        #[arg(long)]
        agent: Option<String>,
        /// Only this person's, as `<channel>:<sender id>` (e.g.
        /// telegram:123456); `--owner ""` lists what an agent with
        /// `memory.scope = "agent"` shares with everyone.
        #[arg(long)]
        owner: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Memories matching QUERY: ranked as the assistant's own search ranks
    /// them when --agent and --owner are given, else those containing it.
    Search {
        /// Words to look for.
        query: String,
        /// Only this agent's.
        #[arg(long)]
        agent: Option<String>,
        /// Only this person's (`<channel>:<sender id>`; `""`: everyone's).
        #[arg(long)]
        owner: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Every memory as a JSON array (without embeddings), oldest first.
    Export {
        /// Only this agent's.
        #[arg(long)]
        agent: Option<String>,
        /// Only this person's (`<channel>:<sender id>`; `""`: everyone's).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Delete one memory (the assistant no longer finds it).
    Delete {
        /// The memory's id, as `memory list` shows it.
        id: String,
    },
}

/// The query string of a memory request.
fn query(agent: Option<&str>, owner: Option<&str>, q: Option<&str>, limit: Option<u32>) -> String {
    let mut parts = Vec::new();
    if let Some(a) = agent {
        parts.push(format!("agent={}", encode(a)));
    }
    if let Some(o) = owner {
        parts.push(format!("owner={}", encode(o)));
    }
    if let Some(q) = q {
        parts.push(format!("q={}", encode(q)));
    }
    if let Some(n) = limit {
        parts.push(format!("limit={n}"));
    }
    parts.join("&")
}

/// Run `switchboard memory …` against the running gateway.
pub(super) async fn run(cli: &Cli, command: &MemoryCommand) -> anyhow::Result<()> {
    let client = Client::new(cli).await?;
    match command {
        MemoryCommand::List {
            agent,
            owner,
            limit,
        } => {
            let q = query(agent.as_deref(), owner.as_deref(), None, Some(*limit));
            let v = client.get(&format!("/api/memory?{q}")).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_memories(&v, "No memories saved yet.");
            }
        }
        MemoryCommand::Search {
            query: words,
            agent,
            owner,
            limit,
        } => {
            let q = query(
                agent.as_deref(),
                owner.as_deref(),
                Some(words.as_str()),
                Some(*limit),
            );
            let v = client.get(&format!("/api/memory?{q}")).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_memories(&v, &format!("No memories match \"{words}\"."));
            }
        }
        MemoryCommand::Export { agent, owner } => {
            let q = query(agent.as_deref(), owner.as_deref(), None, None);
            let v = client.get(&format!("/api/memory/export?{q}")).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        MemoryCommand::Delete { id } => {
            let v = client
                .post(&format!("/api/memory/{}/delete", encode(id)))
                .await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("Deleted memory {id}.");
            }
        }
    }
    Ok(())
}

/// `text` on one line, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn print_memories(v: &Value, none: &str) {
    let list = v["memories"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("{none}");
        return;
    }
    println!(
        "{:<16} {:<10} {:<24} {:<19} {:<16} TEXT",
        "ID", "AGENT", "OWNER", "SAVED", "TAGS"
    );
    for m in list {
        let owner = match m["owner"].as_str() {
            Some("") => "(everyone)",
            Some(o) => o,
            None => "?",
        };
        let tags = m["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        println!(
            "{:<16} {:<10} {:<24} {:<19} {:<16} {}",
            m["id"].as_str().unwrap_or("?"),
            m["agent"].as_str().unwrap_or("?"),
            owner,
            ms_to_local(m["created_at"].as_i64()),
            one_line(&tags, 16),
            one_line(m["text"].as_str().unwrap_or(""), 100)
        );
    }
    println!("\nDelete one with: switchboard memory delete <id>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_to_one_line_and_queries_encoded() {
        assert_eq!(one_line("a\nb   c", 100), "a b c");
        let long = "é".repeat(150);
        let cut = one_line(&long, 100);
        assert_eq!(cut.chars().count(), 100);
        assert!(cut.ends_with('…'));
        assert_eq!(
            query(None, Some("telegram:42"), Some("cat food"), Some(5)),
            "owner=telegram%3A42&q=cat%20food&limit=5"
        );
    }
}
