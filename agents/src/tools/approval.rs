//! Approvals: which tool calls wait for an operator's decision, and the
//! [`Approver`] the agent loop asks. Deciding (storing, notifying, timing
//! out) is the gateway's; this module only says when to ask.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::ToolContext;
use super::policy::glob_match;
use crate::ToolCall;

/// When a call of an approval-gated tool waits for the operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalMode {
    /// Never ask.
    Never,
    /// Ask unless the call matches the allowlist (the default).
    #[default]
    OnMiss,
    /// Always ask.
    Always,
}

/// An agent's approval rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// When to ask.
    pub mode: ApprovalMode,
    /// Tools whose calls are gated (`*` wildcards).
    pub tools: Vec<String>,
    /// Calls that pass without asking under `on-miss`: globs matched against
    /// the tool name, and against `"<tool> <arguments JSON>"`.
    pub allowlist: Vec<String>,
    /// Whether a turn that has read untrusted content asks before every
    /// call of a dangerous or gated tool, whatever `mode` and the
    /// allowlist say (default true).
    pub taint: bool,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        Self {
            mode: ApprovalMode::OnMiss,
            tools: super::policy::DANGEROUS
                .iter()
                .map(|t| (*t).to_string())
                .collect(),
            allowlist: Vec::new(),
            taint: true,
        }
    }
}

impl ApprovalPolicy {
    /// Whether `call` must wait for a decision in a turn that has read
    /// untrusted content (`tainted`) or not: after untrusted content, a
    /// dangerous or gated tool always asks unless `taint` is off.
    pub fn needs_approval_in(&self, call: &ToolCall, tainted: bool) -> bool {
        let risky = super::policy::DANGEROUS.contains(&call.name.as_str())
            || self.tools.iter().any(|t| glob_match(t, &call.name));
        (tainted && self.taint && risky) || self.needs_approval(call)
    }

    /// Whether `call` must wait for a decision.
    pub fn needs_approval(&self, call: &ToolCall) -> bool {
        if !self.tools.iter().any(|t| glob_match(t, &call.name)) {
            return false;
        }
        match self.mode {
            ApprovalMode::Never => false,
            ApprovalMode::Always => true,
            ApprovalMode::OnMiss => {
                let full = format!("{} {}", call.name, call.arguments);
                !self
                    .allowlist
                    .iter()
                    .any(|p| glob_match(p, &call.name) || glob_match(p, &full))
            }
        }
    }
}

/// A call waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// The call.
    pub call: ToolCall,
    /// The conversation it comes from.
    pub context: ToolContext,
    /// Why it asks although the rules alone would not have: the untrusted
    /// content the turn read (`None`: the rules ask).
    pub tainted_by: Option<String>,
}

/// The operator's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run the call.
    Approved {
        /// Who approved.
        by: String,
    },
    /// Do not run it; the model is told why.
    Denied {
        /// Who denied (`timeout` when nobody answered).
        by: String,
    },
}

/// Whoever decides approval requests.
pub trait Approver: Send + Sync + 'static {
    /// Ask, and wait for the decision (the implementation bounds the wait).
    fn decide(&self, request: ApprovalRequest) -> BoxFuture<'static, Decision>;
}

/// The rules and the decider, for one turn.
#[derive(Clone)]
pub struct ApprovalGate {
    /// When to ask.
    pub policy: ApprovalPolicy,
    /// Who decides.
    pub approver: Arc<dyn Approver>,
}

impl std::fmt::Debug for ApprovalGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalGate")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &str) -> ToolCall {
        ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments: args.into(),
        }
    }

    #[test]
    fn modes_and_allowlist() {
        let p = ApprovalPolicy {
            allowlist: vec![r#"exec {"command":"ls*"#.into()],
            ..ApprovalPolicy::default()
        };
        assert!(
            !p.needs_approval(&call("current_time", "{}")),
            "only gated tools ask"
        );
        assert!(p.needs_approval(&call("exec", r#"{"command":"rm -rf /"}"#)));
        assert!(
            !p.needs_approval(&call("exec", r#"{"command":"ls -la"}"#)),
            "allowlisted"
        );
        let always = ApprovalPolicy {
            mode: ApprovalMode::Always,
            ..p.clone()
        };
        assert!(always.needs_approval(&call("exec", r#"{"command":"ls -la"}"#)));
        let never = ApprovalPolicy {
            mode: ApprovalMode::Never,
            ..p
        };
        assert!(!never.needs_approval(&call("exec", r#"{"command":"rm -rf /"}"#)));
        let web = ApprovalPolicy {
            mode: ApprovalMode::Always,
            tools: vec!["web_*".into()],
            allowlist: vec![],
            taint: true,
        };
        assert!(web.needs_approval(&call("web_fetch", "{}")));
    }

    #[test]
    fn after_untrusted_content_dangerous_calls_ask_whatever_the_allowlist() {
        let ls = call("exec", r#"{"command":"ls -la"}"#);
        for mode in [ApprovalMode::OnMiss, ApprovalMode::Never] {
            let p = ApprovalPolicy {
                mode,
                allowlist: vec!["exec".into()],
                ..ApprovalPolicy::default()
            };
            assert!(!p.needs_approval_in(&ls, false), "{mode:?}: allowlisted");
            assert!(p.needs_approval_in(&ls, true), "{mode:?}: tainted");
            assert!(
                !p.needs_approval_in(&call("current_time", "{}"), true),
                "a harmless tool never asks"
            );
            let off = ApprovalPolicy {
                taint: false,
                ..p.clone()
            };
            assert!(!off.needs_approval_in(&ls, true), "{mode:?}: taint off");
        }
        // A dangerous tool left out of the gated list still asks when tainted.
        let p = ApprovalPolicy {
            mode: ApprovalMode::Never,
            tools: vec![],
            ..ApprovalPolicy::default()
        };
        assert!(p.needs_approval_in(&call("write_file", "{}"), true));
    }
}
