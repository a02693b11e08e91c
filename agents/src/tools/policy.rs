//! Which tools an agent may use in a conversation: profiles refined by
//! allow and deny lists (deny wins, `*` wildcards), and the rule that
//! messages from groups and from channels other than the operator's own web
//! chat never reach shell or file-writing tools unless configured to.
//! Plain logic, no I/O.

use serde::{Deserialize, Serialize};

use super::ToolContext;

/// A starting set of tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Only tools that read the gateway's own state.
    Minimal,
    /// Minimal plus reading the web and long-term memory (the default).
    #[default]
    Messaging,
    /// Messaging plus the sandboxed shell and file tools.
    Coding,
    /// Every registered tool.
    Full,
}

/// Tools that run commands, change files or act later (`schedule`): kept
/// from untrusted contexts,
/// and the ones approvals gate by default. Every name is a registered tool
/// (a test holds the lists to the registry).
pub const DANGEROUS: &[&str] = &["exec", "write_file", "edit_file", "schedule"];

/// What each profile adds to the one before it.
const MINIMAL: &[&str] = &["current_time", "session_status"];
const MESSAGING: &[&str] = &["web_fetch", "memory_save", "memory_search"];
const CODING: &[&str] = &["exec", "read_file", "write_file", "edit_file", "list_files"];

impl Profile {
    /// Every profile, smallest first.
    pub const ALL: [Profile; 4] = [
        Profile::Minimal,
        Profile::Messaging,
        Profile::Coding,
        Profile::Full,
    ];

    /// The lists this profile is made of; `None` for `full`, which takes
    /// every registered tool.
    fn lists(self) -> Option<&'static [&'static [&'static str]]> {
        match self {
            Profile::Minimal => Some(&[MINIMAL]),
            Profile::Messaging => Some(&[MINIMAL, MESSAGING]),
            Profile::Coding => Some(&[MINIMAL, MESSAGING, CODING]),
            Profile::Full => None,
        }
    }

    /// The tools this profile names; `None` for `full`, which names none
    /// and takes every registered tool.
    pub fn tools(self) -> Option<Vec<&'static str>> {
        self.lists().map(|lists| lists.concat())
    }

    /// Whether `tool` is part of this profile.
    pub fn includes(self, tool: &str) -> bool {
        self.lists()
            .is_none_or(|lists| lists.iter().any(|list| list.contains(&tool)))
    }
}

/// An agent's tool policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPolicy {
    /// The starting set.
    pub profile: Profile,
    /// Tools added to the profile (`*` wildcards).
    pub allow: Vec<String>,
    /// Tools removed, whatever else says (`*` wildcards).
    pub deny: Vec<String>,
    /// Channels whose DMs count as the operator's own (default: `webchat`).
    pub trusted_channels: Vec<String>,
    /// People (`<channel>:<sender id>`) who count as the operator wherever
    /// they write (default: none).
    pub operators: Vec<String>,
    /// Whether group chats may reach dangerous tools.
    pub dangerous_in_groups: bool,
    /// Per-channel refinements: (channel, allow, deny), applied on top.
    pub per_channel: Vec<(String, Vec<String>, Vec<String>)>,
}

impl Default for ToolPolicy {
    fn default() -> Self {
        Self {
            profile: Profile::default(),
            allow: Vec::new(),
            deny: Vec::new(),
            trusted_channels: vec!["webchat".into()],
            operators: Vec::new(),
            dangerous_in_groups: false,
            per_channel: Vec::new(),
        }
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

impl ToolPolicy {
    /// Whether a message from `subject` (`<channel>:<sender id>`) in a chat
    /// of `chat_kind` on `channel` is the operator's: a DM on a trusted
    /// channel, or anything a named operator writes. Everyone else's
    /// messages reach the model marked as untrusted.
    pub fn from_operator(&self, channel: &str, chat_kind: &str, subject: &str) -> bool {
        (chat_kind == "dm" && self.trusted_channels.iter().any(|c| c == channel))
            || (!subject.is_empty() && self.operators.iter().any(|o| o == subject))
    }

    /// Whether `tool` may be offered in the conversation `ctx` describes.
    pub fn allows(&self, tool: &str, ctx: &ToolContext) -> bool {
        let channel = self.per_channel.iter().find(|(c, _, _)| c == &ctx.channel);
        let denied = |list: &[String]| list.iter().any(|p| glob_match(p, tool));
        if denied(&self.deny) || channel.is_some_and(|(_, _, deny)| denied(deny)) {
            return false;
        }
        if DANGEROUS.contains(&tool) {
            let trusted = ctx.chat_kind == "dm"
                && self.from_operator(&ctx.channel, &ctx.chat_kind, &ctx.subject);
            let group_ok = ctx.chat_kind != "dm" && self.dangerous_in_groups;
            if !trusted && !group_ok {
                return false;
            }
        }
        self.profile.includes(tool)
            || self.allow.iter().any(|p| glob_match(p, tool))
            || channel.is_some_and(|(_, allow, _)| allow.iter().any(|p| glob_match(p, tool)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(channel: &str, kind: &str) -> ToolContext {
        ToolContext {
            channel: channel.into(),
            chat_kind: kind.into(),
            ..ToolContext::default()
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "exec"));
        assert!(glob_match("web_*", "web_fetch"));
        assert!(glob_match("*_file", "read_file"));
        assert!(glob_match("r*d*e", "read_file"));
        assert!(!glob_match("web_*", "exec"));
        assert!(!glob_match("exec", "exec2"));
        assert!(!glob_match("a*a", "a"));
    }

    #[test]
    fn profiles_allow_and_deny() {
        let web = ctx("webchat", "dm");
        let p = ToolPolicy::default();
        assert!(p.allows("current_time", &web));
        assert!(p.allows("web_fetch", &web));
        assert!(!p.allows("exec", &web), "messaging has no shell");
        let p = ToolPolicy {
            profile: Profile::Minimal,
            allow: vec!["web_*".into()],
            ..ToolPolicy::default()
        };
        assert!(p.allows("web_fetch", &web));
        let p = ToolPolicy {
            profile: Profile::Full,
            deny: vec!["web_*".into()],
            allow: vec!["web_fetch".into()],
            ..ToolPolicy::default()
        };
        assert!(!p.allows("web_fetch", &web), "deny wins");
        assert!(p.allows("anything_else", &web));
    }

    #[test]
    fn dangerous_tools_stay_out_of_untrusted_conversations() {
        let p = ToolPolicy {
            profile: Profile::Coding,
            ..ToolPolicy::default()
        };
        assert!(p.allows("exec", &ctx("webchat", "dm")));
        assert!(
            p.allows("read_file", &ctx("telegram", "dm")),
            "reading is not dangerous"
        );
        assert!(!p.allows("exec", &ctx("telegram", "dm")));
        assert!(!p.allows("write_file", &ctx("webchat", "group")));
        let p = ToolPolicy {
            profile: Profile::Full,
            allow: vec!["*".into()],
            ..ToolPolicy::default()
        };
        assert!(
            !p.allows("exec", &ctx("discord", "group")),
            "an allow list does not lift the rule"
        );
        let p = ToolPolicy {
            profile: Profile::Coding,
            trusted_channels: vec!["webchat".into(), "telegram".into()],
            dangerous_in_groups: true,
            ..ToolPolicy::default()
        };
        assert!(p.allows("exec", &ctx("telegram", "dm")));
        assert!(p.allows("exec", &ctx("slack", "group")));
    }

    #[test]
    fn a_named_operator_is_trusted_in_their_dm_and_nobody_else_is() {
        let p = ToolPolicy {
            profile: Profile::Coding,
            operators: vec!["telegram:42".into()],
            ..ToolPolicy::default()
        };
        let from = |subject: &str, kind: &str| ToolContext {
            subject: subject.into(),
            ..ctx("telegram", kind)
        };
        assert!(p.allows("exec", &from("telegram:42", "dm")));
        assert!(!p.allows("exec", &from("telegram:43", "dm")));
        assert!(
            !p.allows("exec", &from("telegram:42", "group")),
            "a group holds others' words too"
        );
        assert!(p.from_operator("telegram", "group", "telegram:42"));
        assert!(!p.from_operator("telegram", "dm", "telegram:43"));
        assert!(p.from_operator("webchat", "dm", "webchat:anyone"));
        assert!(!p.from_operator("webchat", "group", "webchat:anyone"));
        assert!(!p.from_operator("telegram", "dm", ""));
    }

    #[test]
    fn per_channel_refinements() {
        let p = ToolPolicy {
            per_channel: vec![
                ("telegram".into(), vec![], vec!["web_*".into()]),
                ("slack".into(), vec!["list_*".into()], vec![]),
            ],
            profile: Profile::Minimal,
            ..ToolPolicy::default()
        };
        let q = ToolPolicy {
            profile: Profile::Messaging,
            ..p.clone()
        };
        assert!(q.allows("web_fetch", &ctx("webchat", "dm")));
        assert!(
            !q.allows("web_fetch", &ctx("telegram", "dm")),
            "denied on telegram only"
        );
        assert!(
            p.allows("list_files", &ctx("slack", "dm")),
            "allowed on slack only"
        );
        assert!(!p.allows("list_files", &ctx("discord", "dm")));
    }
}
