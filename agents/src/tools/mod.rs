//! Tools an agent can call: the [`Tool`] contract, the registry, the policy
//! deciding which tools a conversation gets, and the built-in tools that need
//! no sandbox. The shell and file tools ([`sandboxed`]) plug into the same
//! registry and run where the sandbox's workbench says; the long-term memory
//! tools ([`memory`]) keep what they save in the gateway's [`MemoryBook`].

pub mod approval;
mod builtin;
pub mod memory;
pub mod policy;
pub mod sandboxed;
mod web_fetch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

pub use approval::{
    ApprovalGate, ApprovalMode, ApprovalPolicy, ApprovalRequest, Approver, Decision,
};
pub use builtin::{CurrentTime, SessionStatus};
pub use memory::{MemoryBook, MemoryHit, MemorySave, MemorySearch};
pub use policy::{DANGEROUS, Profile, ToolPolicy, glob_match};
pub use web_fetch::{WebFetch, WebFetchSettings, html_to_text, is_forbidden};

use crate::ToolSpec;

/// What a tool knows about the conversation it serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolContext {
    /// The session key.
    pub session_key: String,
    /// The agent's name.
    pub agent: String,
    /// The model the agent uses.
    pub model: String,
    /// The channel of the message (`webchat`, `telegram`, ...).
    pub channel: String,
    /// `dm`, `group` or `thread`.
    pub chat_kind: String,
    /// The channel account of the message.
    pub account: String,
    /// The chat of the message, as the platform names it.
    pub chat_id: String,
    /// The thread or topic, if any.
    pub thread_id: Option<String>,
    /// Turns completed in this session before this one.
    pub turns: i64,
    /// The person the message is from, `<channel>:<sender id>` (whose
    /// memories `memory_save` and `memory_search` use); empty when unknown.
    pub subject: String,
    /// The W3C `traceparent` of the turn, given to sandboxed commands as
    /// `TRACEPARENT` so what they report joins the turn's trace; none when
    /// traces are not exported.
    pub traceparent: Option<String>,
}

/// What a tool call returned, as the model will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// The result, or what went wrong and what to do.
    pub content: String,
    /// Whether the call failed.
    pub is_error: bool,
}

impl ToolOutput {
    /// A successful result.
    pub fn ok(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: false,
        }
    }
    /// A failed call, explained.
    pub fn error(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: true,
        }
    }
}

/// One tool.
pub trait Tool: Send + Sync + 'static {
    /// Its name, description and JSON-schema parameters.
    fn spec(&self) -> ToolSpec;
    /// Run it with parsed `args`.
    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput>;
    /// Whether it can serve the conversation `ctx` describes at all (the
    /// shell and file tools are not offered where no sandbox covers it).
    /// Default yes.
    fn offered(&self, _ctx: &ToolContext) -> bool {
        true
    }
    /// The longest a call may take. Default 60 s.
    fn timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
    /// Its spec, shared: a registered tool's is made once (a spec is a
    /// tree of JSON, built, copied and freed for every turn before).
    fn shared_spec(&self) -> Arc<ToolSpec> {
        Arc::new(self.spec())
    }
}

/// A registered tool, with its spec made once.
struct Registered {
    tool: Arc<dyn Tool>,
    spec: Arc<ToolSpec>,
}

impl Tool for Registered {
    fn spec(&self) -> ToolSpec {
        (*self.spec).clone()
    }
    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        self.tool.call(args, ctx)
    }
    fn offered(&self, ctx: &ToolContext) -> bool {
        self.tool.offered(ctx)
    }
    fn timeout(&self) -> Duration {
        self.tool.timeout()
    }
    fn shared_spec(&self) -> Arc<ToolSpec> {
        self.spec.clone()
    }
}

/// Every tool the gateway offers, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl ToolRegistry {
    /// The built-in tools that need no sandbox.
    pub fn builtin(web_fetch: WebFetchSettings) -> Self {
        let mut r = Self::default();
        r.register(Arc::new(CurrentTime));
        r.register(Arc::new(SessionStatus));
        r.register(Arc::new(WebFetch::new(web_fetch)));
        r
    }

    /// Every tool the gateway offers: the built-in ones and the shell and
    /// file tools on `bench` (each offered only where `bench` can run it).
    pub fn standard(
        web_fetch: WebFetchSettings,
        bench: Arc<switchboard_sandbox::Workbench>,
    ) -> Self {
        let mut r = Self::builtin(web_fetch);
        sandboxed::register(&mut r, bench);
        r
    }

    /// Add (or replace) a tool.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        let spec = tool.shared_spec();
        self.tools
            .insert(spec.name.clone(), Arc::new(Registered { tool, spec }));
    }

    /// The tools `policy` allows in the conversation `ctx` describes.
    pub fn select(&self, policy: &ToolPolicy, ctx: &ToolContext) -> Vec<Arc<dyn Tool>> {
        self.tools
            .iter()
            .filter(|(name, t)| policy.allows(name, ctx) && t.offered(ctx))
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Every registered tool's name.
    pub fn names(&self) -> Vec<String> {
        self.tools.keys().cloned().collect()
    }
}

/// Run one call of a tool from `tools` (already filtered by policy): an
/// unknown or disallowed name, bad arguments and timeouts become error
/// outputs the model can read.
pub async fn run_call(
    tools: &[Arc<dyn Tool>],
    name: &str,
    arguments: &str,
    ctx: ToolContext,
) -> ToolOutput {
    let Some(tool) = tools.iter().find(|t| t.shared_spec().name == name) else {
        let names: Vec<String> = tools.iter().map(|t| t.shared_spec().name.clone()).collect();
        return ToolOutput::error(format!(
            "no tool named `{name}` is available here; available: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ));
    };
    let args: Value = if arguments.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_str(arguments) {
            Ok(v) => v,
            Err(e) => {
                return ToolOutput::error(format!(
                    "the arguments are not valid JSON ({e}); send a JSON object"
                ));
            }
        }
    };
    let limit = tool.timeout();
    match tokio::time::timeout(limit, tool.call(args, ctx)).await {
        Ok(out) => out,
        Err(_) => ToolOutput::error(format!(
            "`{name}` did not finish within {} s and was stopped",
            limit.as_secs()
        )),
    }
}
