//! Routing: which agent answers a message, and which session it belongs to.
//! Plain logic, no I/O.
//!
//! Session keys follow one grammar:
//! `agent:<agent>:<channel>:dm:<peer>` (DM scope `per-channel-peer`, the
//! default), `agent:<agent>:main` (`main`), `agent:<agent>:dm:<peer>`
//! (`per-peer`), `agent:<agent>:<channel>:<account>:dm:<peer>`
//! (`per-account-channel-peer`); groups are
//! `agent:<agent>:<channel>:group:<chat>`, with `:thread:<id>` appended for
//! threads and topics. A `:` or `%` inside an id is percent-encoded so the key
//! stays unambiguous.

use switchboard_channel::{ChatKind, Inbound};

use crate::config::{BindingConfig, DmScope};

/// The routing decision for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The agent that answers.
    pub agent: String,
    /// The session key.
    pub session_key: String,
}

/// Bindings and scope, ready to route.
#[derive(Debug, Clone)]
pub struct Router {
    agents: Vec<String>,
    bindings: Vec<BindingConfig>,
    default_agent: String,
    dm_scope: DmScope,
}

impl Router {
    /// A router over `bindings`, falling back to `default_agent`.
    pub fn new(bindings: Vec<BindingConfig>, default_agent: String, dm_scope: DmScope) -> Self {
        let mut agents: Vec<String> = bindings.iter().map(|b| b.agent.clone()).collect();
        agents.push(default_agent.clone());
        Self {
            agents,
            bindings,
            default_agent,
            dm_scope,
        }
    }

    /// Make these agents choosable by name (the web chat's `model`).
    pub fn with_agents(mut self, agents: impl IntoIterator<Item = String>) -> Self {
        self.agents.extend(agents);
        self
    }

    /// Agents that can be asked for by name.
    pub fn agents(&self) -> &[String] {
        &self.agents
    }

    /// The default agent.
    pub fn default_agent(&self) -> &str {
        &self.default_agent
    }

    /// The agent for a message: the most specific matching binding (peer
    /// beats account beats channel; among equals the first), else the
    /// default agent.
    pub fn agent_for(&self, channel: &str, account: &str, peer: &str) -> &str {
        self.bindings
            .iter()
            .filter_map(|b| {
                let matches = b.channel.as_deref().is_none_or(|c| c == channel)
                    && b.account.as_deref().is_none_or(|a| a == account)
                    && b.peer.as_deref().is_none_or(|p| p == peer);
                let rank = u8::from(b.peer.is_some()) * 4
                    + u8::from(b.account.is_some()) * 2
                    + u8::from(b.channel.is_some());
                matches.then_some((rank, b))
            })
            .fold(None::<(u8, &BindingConfig)>, |best, (rank, b)| match best {
                Some((r, _)) if r >= rank => best,
                _ => Some((rank, b)),
            })
            .map_or(self.default_agent.as_str(), |(_, b)| b.agent.as_str())
    }

    /// Route one message.
    pub fn route(&self, m: &Inbound) -> Route {
        self.route_with(m, None)
    }

    /// Route one message, to `wanted` if that agent exists.
    pub fn route_with(&self, m: &Inbound, wanted: Option<&str>) -> Route {
        let peer = match m.chat_kind {
            ChatKind::Dm => m.sender.id.as_str(),
            ChatKind::Group | ChatKind::Thread => m.chat_id.as_str(),
        };
        let agent = match wanted.filter(|w| self.agents.iter().any(|a| a == w)) {
            Some(w) => w.to_string(),
            None => self.agent_for(&m.channel, &m.account, peer).to_string(),
        };
        let session_key = session_key(&agent, self.dm_scope, m);
        Route { agent, session_key }
    }
}

/// Encode `:` and `%` so an id cannot break the key grammar.
fn part(id: &str) -> String {
    if id.contains([':', '%']) {
        id.replace('%', "%25").replace(':', "%3A")
    } else {
        id.to_string()
    }
}

/// The id a key part encodes (the inverse of [`part`]); `None` for a `%`
/// that is not `%25` or `%3A`, which `part` never writes.
fn unpart(p: &str) -> Option<String> {
    let mut out = String::with_capacity(p.len());
    let mut rest = p;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        out.push(match rest.get(i + 1..i + 3)? {
            "25" => '%',
            "3A" => ':',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// A session key as its parts, one variant per shape of the grammar (see
/// the module's documentation). Its `Display` is the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKey {
    /// `agent:<agent>:main`: every DM of the agent (`main`).
    Main {
        /// The agent.
        agent: String,
    },
    /// `agent:<agent>:dm:<peer>`: a peer across channels (`per-peer`).
    Peer {
        /// The agent.
        agent: String,
        /// The peer's id.
        peer: String,
    },
    /// `agent:<agent>:<channel>:dm:<peer>` (`per-channel-peer`).
    ChannelPeer {
        /// The agent.
        agent: String,
        /// The channel.
        channel: String,
        /// The peer's id.
        peer: String,
    },
    /// `agent:<agent>:<channel>:<account>:dm:<peer>`
    /// (`per-account-channel-peer`).
    AccountChannelPeer {
        /// The agent.
        agent: String,
        /// The channel.
        channel: String,
        /// The channel's account.
        account: String,
        /// The peer's id.
        peer: String,
    },
    /// `agent:<agent>:<channel>:group:<chat>`, with `:thread:<id>` for a
    /// thread or topic.
    Group {
        /// The agent.
        agent: String,
        /// The channel.
        channel: String,
        /// The group chat's id.
        chat: String,
        /// The thread's id.
        thread: Option<String>,
    },
}

impl SessionKey {
    /// The key of a message for `agent` under `scope`.
    pub fn of(agent: &str, scope: DmScope, m: &Inbound) -> Self {
        let agent = agent.to_string();
        let channel = m.channel.clone();
        match m.chat_kind {
            ChatKind::Dm => {
                let peer = m.sender.id.clone();
                match scope {
                    DmScope::Main => Self::Main { agent },
                    DmScope::PerPeer => Self::Peer { agent, peer },
                    DmScope::PerChannelPeer => Self::ChannelPeer {
                        agent,
                        channel,
                        peer,
                    },
                    DmScope::PerAccountChannelPeer => Self::AccountChannelPeer {
                        agent,
                        channel,
                        account: m.account.clone(),
                        peer,
                    },
                }
            }
            ChatKind::Group | ChatKind::Thread => Self::Group {
                agent,
                channel,
                chat: m.chat_id.clone(),
                thread: m.thread_id.clone(),
            },
        }
    }

    /// Read a key back; `None` when `key` does not follow the grammar or
    /// an id in it is not encoded the way keys encode ids. A key read is
    /// the key written: `parse(k)?.to_string() == k`.
    pub fn parse(key: &str) -> Option<Self> {
        let parts = key.split(':').map(unpart).collect::<Option<Vec<_>>>()?;
        let p: Vec<&str> = parts.iter().map(String::as_str).collect();
        let s = |i: usize| p[i].to_string();
        Some(match p.as_slice() {
            ["agent", _, "main"] => Self::Main { agent: s(1) },
            ["agent", _, "dm", _] => Self::Peer {
                agent: s(1),
                peer: s(3),
            },
            ["agent", _, _, "dm", _] => Self::ChannelPeer {
                agent: s(1),
                channel: s(2),
                peer: s(4),
            },
            ["agent", _, _, _, "dm", _] => Self::AccountChannelPeer {
                agent: s(1),
                channel: s(2),
                account: s(3),
                peer: s(5),
            },
            ["agent", _, _, "group", _] => Self::Group {
                agent: s(1),
                channel: s(2),
                chat: s(4),
                thread: None,
            },
            ["agent", _, _, "group", _, "thread", _] => Self::Group {
                agent: s(1),
                channel: s(2),
                chat: s(4),
                thread: Some(s(6)),
            },
            _ => return None,
        })
    }

    /// The agent the session belongs to.
    pub fn agent(&self) -> &str {
        match self {
            Self::Main { agent }
            | Self::Peer { agent, .. }
            | Self::ChannelPeer { agent, .. }
            | Self::AccountChannelPeer { agent, .. }
            | Self::Group { agent, .. } => agent,
        }
    }
}

impl std::fmt::Display for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Main { agent } => write!(f, "agent:{}:main", part(agent)),
            Self::Peer { agent, peer } => write!(f, "agent:{}:dm:{}", part(agent), part(peer)),
            Self::ChannelPeer {
                agent,
                channel,
                peer,
            } => write!(
                f,
                "agent:{}:{}:dm:{}",
                part(agent),
                part(channel),
                part(peer)
            ),
            Self::AccountChannelPeer {
                agent,
                channel,
                account,
                peer,
            } => write!(
                f,
                "agent:{}:{}:{}:dm:{}",
                part(agent),
                part(channel),
                part(account),
                part(peer)
            ),
            Self::Group {
                agent,
                channel,
                chat,
                thread,
            } => {
                write!(
                    f,
                    "agent:{}:{}:group:{}",
                    part(agent),
                    part(channel),
                    part(chat)
                )?;
                match thread {
                    Some(t) => write!(f, ":thread:{}", part(t)),
                    None => Ok(()),
                }
            }
        }
    }
}

/// The session key of a message for `agent` under `scope`.
pub fn session_key(agent: &str, scope: DmScope, m: &Inbound) -> String {
    SessionKey::of(agent, scope, m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_channel::Sender;

    fn msg(kind: ChatKind, chat: &str, sender: &str, thread: Option<&str>) -> Inbound {
        Inbound {
            channel: "telegram".into(),
            account: "bot1".into(),
            chat_kind: kind,
            chat_id: chat.into(),
            thread_id: thread.map(Into::into),
            sender: Sender {
                id: sender.into(),
                name: None,
                is_bot: false,
            },
            text: "hi".into(),
            attachments: vec![],
            mentioned: false,
            message_id: "1".into(),
            received_at_ms: 0,
        }
    }

    #[test]
    fn keys_follow_the_grammar_for_every_scope() {
        let dm = msg(ChatKind::Dm, "42", "42", None);
        assert_eq!(
            session_key("main", DmScope::PerChannelPeer, &dm),
            "agent:main:telegram:dm:42"
        );
        assert_eq!(session_key("main", DmScope::Main, &dm), "agent:main:main");
        assert_eq!(
            session_key("main", DmScope::PerPeer, &dm),
            "agent:main:dm:42"
        );
        assert_eq!(
            session_key("main", DmScope::PerAccountChannelPeer, &dm),
            "agent:main:telegram:bot1:dm:42"
        );
        let group = msg(ChatKind::Group, "-100", "42", None);
        assert_eq!(
            session_key("main", DmScope::Main, &group),
            "agent:main:telegram:group:-100"
        );
        let topic = msg(ChatKind::Thread, "-100", "42", Some("7"));
        assert_eq!(
            session_key("main", DmScope::PerChannelPeer, &topic),
            "agent:main:telegram:group:-100:thread:7"
        );
        let odd = msg(ChatKind::Dm, "x", "a:b%c", None);
        assert_eq!(
            session_key("main", DmScope::PerPeer, &odd),
            "agent:main:dm:a%3Ab%25c"
        );
    }

    #[test]
    fn keys_are_read_back_into_their_parts() {
        let odd = msg(ChatKind::Thread, "-100:x", "42", Some("7%"));
        let key = session_key("ma:in", DmScope::Main, &odd);
        assert_eq!(key, "agent:ma%3Ain:telegram:group:-100%3Ax:thread:7%25");
        let parsed = SessionKey::parse(&key).unwrap();
        assert_eq!(parsed, SessionKey::of("ma:in", DmScope::Main, &odd));
        assert_eq!((parsed.agent(), parsed.to_string()), ("ma:in", key));
        let dm = msg(ChatKind::Dm, "42", "42", None);
        for scope in [
            DmScope::Main,
            DmScope::PerPeer,
            DmScope::PerChannelPeer,
            DmScope::PerAccountChannelPeer,
        ] {
            let key = session_key("main", scope, &dm);
            assert_eq!(
                SessionKey::parse(&key),
                Some(SessionKey::of("main", scope, &dm))
            );
        }
        for bad in [
            "",
            "agent",
            "agent:main",
            "agent:a:b",
            "user:a:main",
            "agent:a%3a:main",
            "agent:a%:main",
            "agent:a:t:x:y:dm:1",
        ] {
            assert_eq!(SessionKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn most_specific_binding_wins() {
        let b = |agent: &str, channel: Option<&str>, account: Option<&str>, peer: Option<&str>| {
            BindingConfig {
                agent: agent.into(),
                channel: channel.map(Into::into),
                account: account.map(Into::into),
                peer: peer.map(Into::into),
            }
        };
        let router = Router::new(
            vec![
                b("by-peer", Some("telegram"), None, Some("42")),
                b("by-channel", Some("telegram"), None, None),
                b("by-account", Some("telegram"), Some("bot1"), None),
            ],
            "main".into(),
            DmScope::PerChannelPeer,
        );
        assert_eq!(router.agent_for("telegram", "bot1", "42"), "by-peer");
        assert_eq!(router.agent_for("telegram", "bot1", "7"), "by-account");
        assert_eq!(router.agent_for("telegram", "bot2", "7"), "by-channel");
        assert_eq!(router.agent_for("slack", "bot1", "42"), "main");
        let r = router.route(&msg(ChatKind::Dm, "42", "42", None));
        assert_eq!(
            r,
            Route {
                agent: "by-peer".into(),
                session_key: "agent:by-peer:telegram:dm:42".into()
            }
        );
    }
}
