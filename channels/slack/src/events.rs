//! Slack's events as far as the adapter reads them, and how they become
//! [`Inbound`] messages.
//!
//! The types hold only the fields we use, optional ones defaulted, so an
//! event Slack extends (or sends with a field missing) is still delivered.

use serde::Deserialize;

use switchboard_channel::{Attachment, ChatKind, Inbound, Sender};

use crate::NAME;

/// The outer body of the Events API (and of a Socket Mode `events_api`
/// payload).
#[derive(Debug, Clone, Deserialize)]
pub struct Callback {
    /// `event_callback`, `url_verification`, `app_rate_limited`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `url_verification`: what to answer.
    #[serde(default)]
    pub challenge: Option<String>,
    /// The event, for `event_callback`.
    #[serde(default)]
    pub event: Option<Event>,
    /// Slack's id of the delivery (the same on retries).
    #[serde(default)]
    pub event_id: Option<String>,
}

/// A `message` or `app_mention` event.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Event {
    /// `message`, `app_mention`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `bot_message`, `message_changed`, `file_share`, …
    #[serde(default)]
    pub subtype: Option<String>,
    /// The sender's user id.
    #[serde(default)]
    pub user: Option<String>,
    /// Set on messages a bot (or app) posted.
    #[serde(default)]
    pub bot_id: Option<String>,
    /// The text, in Slack's markup.
    #[serde(default)]
    pub text: String,
    /// The message's timestamp: its id within the channel.
    #[serde(default)]
    pub ts: String,
    /// The thread's parent message, for messages in a thread.
    #[serde(default)]
    pub thread_ts: Option<String>,
    /// The conversation.
    #[serde(default)]
    pub channel: String,
    /// `im`, `mpim`, `channel`, `group` (not on `app_mention`).
    #[serde(default)]
    pub channel_type: Option<String>,
    /// Files shared with the message.
    #[serde(default)]
    pub files: Vec<File>,
    /// The sender's profile, when Slack includes it.
    #[serde(default)]
    pub user_profile: Option<Profile>,
}

/// A shared file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct File {
    /// The file's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its MIME type.
    #[serde(default)]
    pub mimetype: Option<String>,
    /// Its size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// Where to download it with the bot token.
    #[serde(default)]
    pub url_private_download: Option<String>,
    /// The same, for viewing.
    #[serde(default)]
    pub url_private: Option<String>,
}

/// A sender's profile.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Profile {
    /// The display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The full name.
    #[serde(default)]
    pub real_name: Option<String>,
}

/// A slash command's fields (a Socket Mode payload, or the form the
/// Events API URL receives).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlashCommand {
    /// The command, with its slash.
    pub command: String,
    /// What followed it.
    #[serde(default)]
    pub text: String,
    /// Who ran it.
    pub user_id: String,
    /// Their name.
    #[serde(default)]
    pub user_name: Option<String>,
    /// Where.
    pub channel_id: String,
    /// Slack's id of this invocation.
    #[serde(default)]
    pub trigger_id: String,
}

/// Who the bot is, for telling its own messages and mentions apart.
#[derive(Debug, Clone, Default)]
pub struct Bot {
    /// The bot user (`U…`).
    pub user_id: String,
    /// The bot (`B…`).
    pub bot_id: Option<String>,
}

/// The account's rules for turning events into messages.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Take messages from other bots.
    pub allow_bots: bool,
    /// Words that count as a mention (matched case-insensitively).
    pub mention_patterns: Vec<String>,
}

/// The message id of message `ts` in `channel`. A `message` and an
/// `app_mention` event for the same message share it, as do Slack's
/// retried deliveries, so the gateway answers it once.
pub fn message_id(channel: &str, ts: &str) -> String {
    format!("{channel}:{ts}")
}

/// The channel and `ts` of a message id made by [`message_id`].
pub fn split_message_id(id: &str) -> Option<(&str, &str)> {
    id.split_once(':')
        .filter(|(c, ts)| !c.is_empty() && !ts.is_empty())
}

/// Where a conversation is: `im` by its type or, for events that do not
/// say (`app_mention`), by the id's first letter.
fn is_dm(e: &Event) -> bool {
    match e.channel_type.as_deref() {
        Some(t) => t == "im",
        None => e.channel.starts_with('D'),
    }
}

/// Turn `e` into a message for the gateway, or `None` when it is not one
/// to answer (the bot's own, an edit, a join, a bot's when bots are not
/// allowed). `in_thread_with_bot` says whether the bot already talks in the
/// event's thread (a follow-up there needs no new mention).
pub fn to_inbound(
    account: &str,
    bot: &Bot,
    rules: &Rules,
    e: &Event,
    in_thread_with_bot: bool,
) -> Option<Inbound> {
    if !matches!(e.kind.as_str(), "message" | "app_mention") || e.ts.is_empty() {
        return None;
    }
    let own = e.user.as_deref() == Some(bot.user_id.as_str())
        || (e.bot_id.is_some() && e.bot_id == bot.bot_id);
    if own {
        return None;
    }
    match e.subtype.as_deref() {
        None | Some("file_share" | "thread_broadcast" | "bot_message") => {}
        // Edits, deletions, joins, topic changes, …
        Some(_) => return None,
    }
    let is_bot = e.bot_id.is_some() || e.subtype.as_deref() == Some("bot_message");
    if is_bot && !rules.allow_bots {
        return None;
    }
    let sender_id = e.user.clone().or_else(|| e.bot_id.clone())?;
    let mention = format!("<@{}", bot.user_id);
    let named = e.text.contains(&mention);
    let text = plain_text(&strip_mention(&e.text, &bot.user_id));
    let dm = is_dm(e);
    let patterned = !dm && {
        let lower = text.to_lowercase();
        rules
            .mention_patterns
            .iter()
            .any(|p| !p.trim().is_empty() && lower.contains(&p.trim().to_lowercase()))
    };
    let mentioned = dm || named || e.kind == "app_mention" || patterned || in_thread_with_bot;
    let (chat_kind, thread_id) = match (&e.thread_ts, dm) {
        (Some(t), true) => (ChatKind::Dm, Some(t.clone())),
        (None, true) => (ChatKind::Dm, None),
        // In channels every conversation is a thread: a top-level message
        // starts one (the answer goes under it) and its replies continue
        // the same session.
        (Some(t), false) => (ChatKind::Thread, Some(t.clone())),
        (None, false) => (ChatKind::Thread, Some(e.ts.clone())),
    };
    let name = e.user_profile.as_ref().and_then(|p| {
        p.display_name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| p.real_name.clone())
    });
    let attachments = e
        .files
        .iter()
        .map(|f| Attachment {
            name: f.name.clone().unwrap_or_else(|| "file".into()),
            mime: f.mimetype.clone(),
            size: f.size,
            local_path: None,
            file_id: f
                .url_private_download
                .clone()
                .or_else(|| f.url_private.clone()),
        })
        .collect();
    Some(Inbound {
        channel: NAME.into(),
        account: account.into(),
        chat_kind,
        chat_id: e.channel.clone(),
        thread_id,
        sender: Sender {
            id: sender_id,
            name,
            is_bot,
        },
        text,
        attachments,
        mentioned,
        message_id: message_id(&e.channel, &e.ts),
        received_at_ms: now_ms(),
    })
}

/// The prefix of a command message id: slash commands have no message.
pub const COMMAND: &str = "command:";

/// Turn a slash command into a text command (`/assistant status` →
/// `/status`, `/assistant approve ID`) or a plain message (`/assistant
/// what's up?`); `/assistant` alone or `help` shows the status.
pub fn command_inbound(account: &str, c: &SlashCommand) -> Inbound {
    let words: Vec<&str> = c.text.split_whitespace().collect();
    let first = words.first().map(|w| w.to_lowercase()).unwrap_or_default();
    // A command word alone (or approve/deny with its id) is a command;
    // anything else ("new ideas for dinner?") is a question.
    let text = match (first.as_str(), words.len()) {
        ("" | "help", _) if words.len() <= 1 => "/status".to_string(),
        ("new" | "reset" | "status", 1) => format!("/{first}"),
        ("approve" | "deny", 2) => format!("/{first} {}", words[1]),
        _ => c.text.trim().to_string(),
    };
    let dm = c.channel_id.starts_with('D');
    Inbound {
        channel: NAME.into(),
        account: account.into(),
        chat_kind: if dm { ChatKind::Dm } else { ChatKind::Group },
        chat_id: c.channel_id.clone(),
        thread_id: None,
        sender: Sender {
            id: c.user_id.clone(),
            name: c.user_name.clone(),
            is_bot: false,
        },
        text,
        attachments: Vec::new(),
        mentioned: true,
        message_id: format!(
            "{COMMAND}{}",
            if c.trigger_id.is_empty() {
                format!("{}:{}", c.channel_id, now_ms())
            } else {
                c.trigger_id.clone()
            }
        ),
        received_at_ms: now_ms(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The text without mentions of the bot (`<@U123>` or `<@U123|name>`),
/// each taking one following space with it.
fn strip_mention(text: &str, bot: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let open = format!("<@{bot}");
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        match after.find('>') {
            Some(end) if end == 0 || after.starts_with('|') => {
                out.push_str(&rest[..i]);
                rest = after[end + 1..]
                    .strip_prefix(' ')
                    .unwrap_or(&after[end + 1..]);
            }
            _ => {
                out.push_str(&rest[..i + open.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Slack's markup as plain text: `<url|label>` → `label (url)`, `<url>` →
/// `url`, `<@U1>` → `@U1`, `<#C1|general>` → `#general`, `<!here>` →
/// `@here`, and `&amp;`, `&lt;`, `&gt;` decoded.
pub fn plain_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(end) = after.find('>') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l)),
            None => (inner, None),
        };
        let shown = match target.chars().next() {
            Some('@') => format!("@{}", label.unwrap_or(&target[1..])),
            Some('#') => format!("#{}", label.unwrap_or(&target[1..])),
            Some('!') => {
                let special = target[1..].split('^').next().unwrap_or("");
                format!("@{}", label.unwrap_or(special))
            }
            _ => match label {
                Some(l) if l != target => format!("{l} ({target})"),
                _ => target.to_string(),
            },
        };
        out.push_str(&shown);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot() -> Bot {
        Bot {
            user_id: "UBOT".into(),
            bot_id: Some("BBOT".into()),
        }
    }

    fn event(channel: &str, text: &str) -> Event {
        Event {
            kind: "message".into(),
            user: Some("U1".into()),
            text: text.into(),
            ts: "100.1".into(),
            channel: channel.into(),
            channel_type: Some(
                if channel.starts_with('D') {
                    "im"
                } else {
                    "channel"
                }
                .into(),
            ),
            ..Event::default()
        }
    }

    fn convert(e: &Event, rules: &Rules, in_thread: bool) -> Option<Inbound> {
        to_inbound("main", &bot(), rules, e, in_thread)
    }

    #[test]
    fn dms_channels_and_threads() {
        let rules = Rules::default();
        let dm = convert(&event("D1", "hi"), &rules, false).unwrap();
        assert_eq!(
            (dm.chat_kind, dm.thread_id.as_deref()),
            (ChatKind::Dm, None)
        );
        assert!(dm.mentioned);
        assert_eq!(dm.message_id, "D1:100.1");

        // A top-level channel message starts a thread of its own.
        let top = convert(&event("C1", "<@UBOT> hi"), &rules, false).unwrap();
        assert_eq!(top.chat_kind, ChatKind::Thread);
        assert_eq!(top.thread_id.as_deref(), Some("100.1"));
        assert!(top.mentioned);
        assert_eq!(top.text, "hi");

        let mut reply = event("C1", "more");
        reply.thread_ts = Some("99.0".into());
        let r = convert(&reply, &rules, false).unwrap();
        assert_eq!(r.thread_id.as_deref(), Some("99.0"));
        assert!(!r.mentioned, "a thread the bot is not in needs a mention");
        assert!(convert(&reply, &rules, true).unwrap().mentioned);

        // app_mention has no channel_type: the id tells.
        let mut mention = event("C1", "<@UBOT|switchboard> hi");
        mention.kind = "app_mention".into();
        mention.channel_type = None;
        let m = convert(&mention, &rules, false).unwrap();
        assert_eq!((m.chat_kind, m.text.as_str()), (ChatKind::Thread, "hi"));
        assert_eq!(m.message_id, top.message_id, "one message, one id");
    }

    #[test]
    fn own_bot_and_system_messages_are_dropped() {
        let rules = Rules::default();
        let mut own = event("C1", "my answer");
        own.user = Some("UBOT".into());
        assert!(convert(&own, &rules, false).is_none());
        let mut other_bot = event("C1", "<@UBOT> beep");
        other_bot.bot_id = Some("BOTHER".into());
        assert!(convert(&other_bot, &rules, false).is_none());
        let allow = Rules {
            allow_bots: true,
            ..Rules::default()
        };
        assert!(convert(&other_bot, &allow, false).unwrap().sender.is_bot);
        for subtype in ["message_changed", "message_deleted", "channel_join"] {
            let mut e = event("C1", "<@UBOT> x");
            e.subtype = Some(subtype.into());
            assert!(convert(&e, &rules, false).is_none(), "{subtype}");
        }
        let mut file = event("D1", "see this");
        file.subtype = Some("file_share".into());
        file.files = vec![File {
            name: Some("a.txt".into()),
            url_private_download: Some("https://files.slack.com/a.txt".into()),
            ..File::default()
        }];
        let f = convert(&file, &rules, false).unwrap();
        assert_eq!(
            f.attachments[0].file_id.as_deref(),
            Some("https://files.slack.com/a.txt")
        );
    }

    #[test]
    fn mention_patterns_count_in_channels() {
        let rules = Rules {
            mention_patterns: vec!["Assistant".into()],
            ..Rules::default()
        };
        assert!(
            convert(&event("C1", "hey assistant, help"), &rules, false)
                .unwrap()
                .mentioned
        );
        assert!(
            !convert(&event("C1", "hey everyone"), &rules, false)
                .unwrap()
                .mentioned
        );
    }

    #[test]
    fn slack_markup_becomes_plain_text() {
        assert_eq!(
            plain_text(
                "a &lt;b&gt; &amp;amp; <https://x.io|site> <https://y.io> <@U2> <#C1|general> <!here>"
            ),
            "a <b> &amp; site (https://x.io) https://y.io @U2 #general @here"
        );
        assert_eq!(
            plain_text("no markup\n  kept lines"),
            "no markup\n  kept lines"
        );
        assert_eq!(strip_mention("<@UBOT> hi <@UBOTX>", "UBOT"), "hi <@UBOTX>");
    }

    #[test]
    fn slash_commands_become_text_commands() {
        let c = |text: &str| SlashCommand {
            command: "/assistant".into(),
            text: text.into(),
            user_id: "U1".into(),
            channel_id: "D1".into(),
            trigger_id: "t.1".into(),
            ..SlashCommand::default()
        };
        assert_eq!(command_inbound("main", &c("status")).text, "/status");
        assert_eq!(
            command_inbound("main", &c("approve ab12")).text,
            "/approve ab12"
        );
        assert_eq!(command_inbound("main", &c("")).text, "/status");
        assert_eq!(
            command_inbound("main", &c("new ideas for dinner?")).text,
            "new ideas for dinner?"
        );
        let q = command_inbound("main", &c("what is new?"));
        assert_eq!(
            (q.text.as_str(), q.chat_kind),
            ("what is new?", ChatKind::Dm)
        );
        assert_eq!(q.message_id, "command:t.1");
    }
}
