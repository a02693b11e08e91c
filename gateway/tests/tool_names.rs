//! Every tool name a list holds — in a profile, in the dangerous list, in
//! the default gated list and in the example config — is a tool the
//! gateway registers. A name that matches nothing gates nothing: a tool
//! meant to wait for the operator would run unasked under its real name.

use std::sync::Arc;

use futures::future::BoxFuture;
use switchboard::config::{Config, load_str};
use switchboard_agents::tools::{
    ApprovalPolicy, MemoryBook, MemoryHit, Profile, ToolContext, ToolRegistry, policy::DANGEROUS,
};

/// A memory book that keeps nothing: only the tools' names matter here.
struct NoMemory;

impl MemoryBook for NoMemory {
    fn save(
        &self,
        _ctx: &ToolContext,
        _text: String,
        _tags: Vec<String>,
    ) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async { Err("this test keeps no memories".to_string()) })
    }

    fn search(
        &self,
        _ctx: &ToolContext,
        _query: String,
        _limit: usize,
    ) -> BoxFuture<'static, Result<Vec<MemoryHit>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// The registry as `switchboard serve` builds it, sandboxed and memory
/// tools included.
fn registered(config: &Config) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let bench = Arc::new(switchboard::sandbox::workbench(config, dir.path()));
    let mut tools = ToolRegistry::standard(config.tools.web_fetch.settings(), bench);
    tools.register_memory(Arc::new(NoMemory));
    // Registered when `[cron] agent_jobs = true`.
    tools.register(Arc::new(switchboard::cron::tool::ScheduleTool::new(
        Arc::new(std::sync::OnceLock::new()),
        3,
    )));
    tools.names()
}

fn assert_registered(names: &[String], list: &str, tools: &[impl AsRef<str>]) {
    for tool in tools {
        let tool = tool.as_ref();
        // A pattern is the operator's to write; a plain name must exist.
        if tool.contains('*') {
            continue;
        }
        assert!(
            names.iter().any(|n| n == tool),
            "{list} names `{tool}`, which is not a registered tool (registered: {})",
            names.join(", ")
        );
    }
}

#[test]
fn every_listed_tool_is_a_registered_tool() {
    let defaults = load_str("", "defaults", &[]).unwrap().config;
    let names = registered(&defaults);
    for tool in [
        "exec",
        "read_file",
        "write_file",
        "edit_file",
        "list_files",
        "memory_save",
        "memory_search",
    ] {
        assert!(
            names.iter().any(|n| n == tool),
            "`{tool}` is missing from {names:?}"
        );
    }

    for profile in Profile::ALL {
        if let Some(tools) = profile.tools() {
            assert_registered(&names, &format!("profile {profile:?}"), &tools);
        }
    }
    assert_registered(&names, "the dangerous-tool list", DANGEROUS);
    assert_registered(
        &names,
        "the default approvals.tools",
        &ApprovalPolicy::default().tools,
    );
    for (agent, a) in &defaults.agents {
        assert_registered(
            &names,
            &format!("agents.{agent}.approvals.tools (default)"),
            &a.approvals.tools,
        );
    }

    let text = include_str!("../../deploy/switchboard.example.toml");
    let example = load_str(text, "deploy/switchboard.example.toml", &[])
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let names = registered(&example);
    for (agent, a) in &example.agents {
        let key = format!("deploy/switchboard.example.toml: agents.{agent}");
        assert_registered(
            &names,
            &format!("{key}.approvals.tools"),
            &a.approvals.tools,
        );
        assert_registered(&names, &format!("{key}.tools.allow"), &a.tools.allow);
        assert_registered(&names, &format!("{key}.tools.deny"), &a.tools.deny);
    }
}
