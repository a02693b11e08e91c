//! The access policy: who may reach the assistant. Plain logic, no I/O.

use switchboard_channel::{ChatKind, Inbound};

use crate::config::{AccessRules, DmPolicy, GroupPolicy};

/// The verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Let it through to routing.
    Allow,
    /// Drop it silently, for the reason given (logged, stored on the
    /// ingress row).
    Ignore(&'static str),
    /// An unknown DM sender under the `pairing` policy.
    Pair,
}

/// The verdict before the stored allowlist is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precheck {
    /// Decided without the store.
    Decided(Access),
    /// Allow if the sender is on the stored allowlist, else `on_miss`.
    IfAllowlisted {
        /// The verdict for a sender not on the allowlist.
        on_miss: Access,
    },
}

/// Apply `rules` to `m` as far as possible without the store.
pub fn precheck(rules: &AccessRules, m: &Inbound) -> Precheck {
    use Precheck::{Decided, IfAllowlisted};
    if m.sender.is_bot && !rules.allow_bots {
        return Decided(Access::Ignore("sent by a bot"));
    }
    match m.chat_kind {
        ChatKind::Dm => {
            let listed = rules.allow_from.iter().any(|a| a == &m.sender.id);
            match rules.dm_policy {
                DmPolicy::Disabled => Decided(Access::Ignore("DMs are disabled")),
                DmPolicy::Open => Decided(Access::Allow),
                _ if listed => Decided(Access::Allow),
                DmPolicy::Allowlist => IfAllowlisted {
                    on_miss: Access::Ignore("sender not on the allowlist"),
                },
                DmPolicy::Pairing => IfAllowlisted {
                    on_miss: Access::Pair,
                },
            }
        }
        ChatKind::Group | ChatKind::Thread => {
            let group_ok = match rules.group_policy {
                GroupPolicy::Disabled => return Decided(Access::Ignore("groups are disabled")),
                GroupPolicy::Open => true,
                GroupPolicy::Allowlist => rules.groups.iter().any(|g| g == &m.chat_id),
            };
            if !group_ok {
                Decided(Access::Ignore("group not on the allowlist"))
            } else if rules.require_mention && !m.mentioned {
                Decided(Access::Ignore("group message without a mention"))
            } else {
                Decided(Access::Allow)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimitConfig;
    use switchboard_channel::Sender;

    fn rules(dm: DmPolicy, group: GroupPolicy) -> AccessRules {
        AccessRules {
            dm_policy: dm,
            allow_from: vec!["friend".into()],
            group_policy: group,
            groups: vec!["g1".into()],
            require_mention: true,
            rate_limit: RateLimitConfig::default(),
            allow_bots: false,
        }
    }

    fn msg(kind: ChatKind, chat: &str, sender: &str, mentioned: bool) -> Inbound {
        Inbound {
            channel: "telegram".into(),
            account: "a".into(),
            chat_kind: kind,
            chat_id: chat.into(),
            thread_id: None,
            sender: Sender {
                id: sender.into(),
                name: None,
                is_bot: false,
            },
            text: "hi".into(),
            attachments: vec![],
            mentioned,
            message_id: "1".into(),
            received_at_ms: 0,
        }
    }

    #[test]
    fn dm_policies() {
        let stranger = msg(ChatKind::Dm, "s", "stranger", false);
        let friend = msg(ChatKind::Dm, "f", "friend", false);
        let r = rules(DmPolicy::Pairing, GroupPolicy::Allowlist);
        assert_eq!(
            precheck(&r, &stranger),
            Precheck::IfAllowlisted {
                on_miss: Access::Pair
            }
        );
        assert_eq!(precheck(&r, &friend), Precheck::Decided(Access::Allow));
        let r = rules(DmPolicy::Allowlist, GroupPolicy::Allowlist);
        assert!(matches!(
            precheck(&r, &stranger),
            Precheck::IfAllowlisted {
                on_miss: Access::Ignore(_)
            }
        ));
        let r = rules(DmPolicy::Open, GroupPolicy::Allowlist);
        assert_eq!(precheck(&r, &stranger), Precheck::Decided(Access::Allow));
        let r = rules(DmPolicy::Disabled, GroupPolicy::Allowlist);
        assert!(matches!(
            precheck(&r, &friend),
            Precheck::Decided(Access::Ignore(_))
        ));
    }

    #[test]
    fn bots_are_ignored_unless_the_account_allows_them() {
        let mut bot = msg(ChatKind::Dm, "b", "friend", false);
        bot.sender.is_bot = true;
        let mut r = rules(DmPolicy::Open, GroupPolicy::Allowlist);
        assert_eq!(
            precheck(&r, &bot),
            Precheck::Decided(Access::Ignore("sent by a bot"))
        );
        r.allow_bots = true;
        assert_eq!(precheck(&r, &bot), Precheck::Decided(Access::Allow));
    }

    #[test]
    fn group_policies_and_mention_gating() {
        let r = rules(DmPolicy::Pairing, GroupPolicy::Allowlist);
        assert!(matches!(
            precheck(&r, &msg(ChatKind::Group, "g1", "x", false)),
            Precheck::Decided(Access::Ignore(_))
        ));
        assert_eq!(
            precheck(&r, &msg(ChatKind::Group, "g1", "x", true)),
            Precheck::Decided(Access::Allow)
        );
        assert!(matches!(
            precheck(&r, &msg(ChatKind::Group, "g2", "x", true)),
            Precheck::Decided(Access::Ignore(_))
        ));
        let mut open = rules(DmPolicy::Pairing, GroupPolicy::Open);
        assert_eq!(
            precheck(&open, &msg(ChatKind::Thread, "g9", "x", true)),
            Precheck::Decided(Access::Allow)
        );
        open.require_mention = false;
        assert_eq!(
            precheck(&open, &msg(ChatKind::Group, "g9", "x", false)),
            Precheck::Decided(Access::Allow)
        );
        let off = rules(DmPolicy::Open, GroupPolicy::Disabled);
        assert!(matches!(
            precheck(&off, &msg(ChatKind::Group, "g1", "x", true)),
            Precheck::Decided(Access::Ignore(_))
        ));
        let mut bot = msg(ChatKind::Dm, "b", "friend", false);
        bot.sender.is_bot = true;
        assert!(matches!(
            precheck(&off, &bot),
            Precheck::Decided(Access::Ignore(_))
        ));
    }
}
