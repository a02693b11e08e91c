//! Discord events → [`Inbound`] messages.

use switchboard_channel::{Attachment, ChatKind, Inbound, Sender};

use crate::NAME;
use crate::model::{Interaction, Message};

/// Where a message was sent, as far as sessions are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A direct message channel.
    Dm,
    /// A guild text channel.
    Channel,
    /// A thread; `parent` is the channel it hangs off.
    Thread {
        /// The parent channel's id.
        parent: String,
    },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Take `<@id>` and `<@!id>` of the bot out of `text`.
fn strip_mention(text: &str, bot_id: &str) -> (String, bool) {
    let mut out = text.to_string();
    let mut found = false;
    for m in [format!("<@{bot_id}>"), format!("<@!{bot_id}>")] {
        if out.contains(&m) {
            found = true;
            out = out.replace(&m, " ");
        }
    }
    let out = out.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>();
    let text = if found {
        out.join(" ")
    } else {
        text.trim().to_string()
    };
    (text, found)
}

fn chat(place: &Place, channel_id: &str) -> (ChatKind, String, Option<String>) {
    match place {
        Place::Dm => (ChatKind::Dm, channel_id.to_string(), None),
        Place::Channel => (ChatKind::Group, channel_id.to_string(), None),
        Place::Thread { parent } => (
            ChatKind::Thread,
            parent.clone(),
            Some(channel_id.to_string()),
        ),
    }
}

/// The message as the gateway sees it, or `None` when it is not for us:
/// the bot's own messages, other bots' (unless `allow_bots`), webhooks and
/// system messages (joins, pins, thread starts).
pub fn to_inbound(
    account: &str,
    bot_id: &str,
    allow_bots: bool,
    m: &Message,
    place: &Place,
) -> Option<Inbound> {
    if m.author.id == bot_id {
        return None;
    }
    let is_bot = m.author.bot || m.webhook_id.is_some();
    if is_bot && !allow_bots {
        return None;
    }
    // 0 = default, 19 = reply; everything else is a system message.
    if m.kind != 0 && m.kind != 19 {
        return None;
    }
    let (text, named) = strip_mention(&m.content, bot_id);
    let mentioned = *place == Place::Dm
        || named
        || m.mentions.iter().any(|u| u.id == bot_id)
        || m.referenced_message
            .as_ref()
            .is_some_and(|r| r.author.id == bot_id);
    let (chat_kind, chat_id, thread_id) = chat(place, &m.channel_id);
    Some(Inbound {
        channel: NAME.into(),
        account: account.into(),
        chat_kind,
        chat_id,
        thread_id,
        sender: Sender {
            id: m.author.id.clone(),
            name: m.author.display(),
            is_bot,
        },
        text,
        attachments: m
            .attachments
            .iter()
            .map(|a| Attachment {
                name: a.filename.clone(),
                mime: a.content_type.clone(),
                size: Some(a.size),
                local_path: None,
                file_id: Some(a.url.clone()),
            })
            .collect(),
        mentioned,
        message_id: m.id.clone(),
        received_at_ms: now_ms(),
    })
}

/// The prefix of message ids that stand for a slash command.
pub const INTERACTION: &str = "interaction:";

/// A slash command as a text command (`/status`), addressed to the bot.
pub fn command_inbound(account: &str, i: &Interaction, place: &Place) -> Option<Inbound> {
    let name = &i.data.as_ref()?.name;
    let who = i.who()?;
    let channel_id = i
        .channel_id
        .clone()
        .or_else(|| i.channel.as_ref().map(|c| c.id.clone()))?;
    let (chat_kind, chat_id, thread_id) = chat(place, &channel_id);
    Some(Inbound {
        channel: NAME.into(),
        account: account.into(),
        chat_kind,
        chat_id,
        thread_id,
        sender: Sender {
            id: who.id.clone(),
            name: who.display(),
            is_bot: who.bot,
        },
        text: format!("/{name}"),
        attachments: Vec::new(),
        mentioned: true,
        message_id: format!("{INTERACTION}{}", i.id),
        received_at_ms: now_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Referenced, User};

    const BOT: &str = "100";

    fn user(id: &str, bot: bool) -> User {
        User {
            id: id.into(),
            username: format!("user{id}"),
            global_name: None,
            bot,
        }
    }

    fn message(text: &str) -> Message {
        serde_json::from_value(serde_json::json!({
            "id": "555", "channel_id": "77", "guild_id": "9",
            "author": {"id": "42", "username": "ann", "global_name": "Ann"},
            "content": text, "type": 0, "tts": false, "mentions": [],
        }))
        .unwrap()
    }

    #[test]
    fn a_dm_is_addressed_to_the_bot() {
        let m = to_inbound("main", BOT, false, &message("hi"), &Place::Dm).unwrap();
        assert_eq!(m.chat_kind, ChatKind::Dm);
        assert_eq!(m.chat_id, "77");
        assert!(m.mentioned);
        assert_eq!(m.sender.name.as_deref(), Some("Ann"));
        assert_eq!(m.message_id, "555");
    }

    #[test]
    fn guild_mentions_are_found_and_taken_out() {
        let plain = to_inbound("main", BOT, false, &message("hello all"), &Place::Channel);
        assert!(!plain.unwrap().mentioned);
        let mut m = message("<@!100> what time is it");
        m.mentions.push(user(BOT, true));
        let m = to_inbound("main", BOT, false, &m, &Place::Channel).unwrap();
        assert!(m.mentioned);
        assert_eq!(m.text, "what time is it");
        let mut reply = message("and then?");
        reply.referenced_message = Some(Box::new(Referenced {
            author: user(BOT, true),
        }));
        assert!(
            to_inbound("main", BOT, false, &reply, &Place::Channel)
                .unwrap()
                .mentioned
        );
    }

    #[test]
    fn threads_keep_their_parent_channel() {
        let place = Place::Thread {
            parent: "70".into(),
        };
        let m = to_inbound("main", BOT, false, &message("x"), &place).unwrap();
        assert_eq!(m.chat_kind, ChatKind::Thread);
        assert_eq!(m.chat_id, "70");
        assert_eq!(m.thread_id.as_deref(), Some("77"));
    }

    #[test]
    fn own_bot_and_system_messages_are_dropped() {
        let mut own = message("x");
        own.author = user(BOT, true);
        assert!(to_inbound("main", BOT, true, &own, &Place::Dm).is_none());
        let mut other = message("x");
        other.author = user("7", true);
        assert!(to_inbound("main", BOT, false, &other, &Place::Dm).is_none());
        let allowed = to_inbound("main", BOT, true, &other, &Place::Dm).unwrap();
        assert!(allowed.sender.is_bot);
        let mut join = message("");
        join.kind = 7;
        assert!(to_inbound("main", BOT, false, &join, &Place::Dm).is_none());
    }
}
