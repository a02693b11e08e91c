//! Telegram updates as the gateway's [`Inbound`] messages.

use teloxide::types::{Me, Message, Update, UpdateKind};

use switchboard_channel::{Attachment, ChatKind, Inbound, Sender};

use crate::NAME;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The message of `update` for account `account` of bot `me`, if it is one
/// the gateway should see. Commands addressed to another bot
/// (`/status@other_bot`) are dropped; `@thisbot` is taken off ours.
pub fn to_inbound(account: &str, me: &Me, update: &Update) -> Option<Inbound> {
    let UpdateKind::Message(msg) = &update.kind else {
        return None;
    };
    let from = msg.from.as_ref()?;
    let username = me.username().to_lowercase();
    let raw = msg.text().or(msg.caption()).unwrap_or("").to_string();
    let (text, command_for_us) = strip_command_target(&raw, &username)?;
    let attachments = attachments(msg);
    if text.trim().is_empty() && attachments.is_empty() {
        return None;
    }
    let private = msg.chat.is_private();
    let chat_kind = if private {
        ChatKind::Dm
    } else if msg.is_topic_message && msg.thread_id.is_some() {
        ChatKind::Thread
    } else {
        ChatKind::Group
    };
    let replied_to_us = msg
        .reply_to_message()
        .and_then(|r| r.from.as_ref())
        .is_some_and(|u| u.id == me.user.id);
    let mentioned = private
        || command_for_us
        || replied_to_us
        || raw.to_lowercase().contains(&format!("@{username}"));
    let name = match &from.last_name {
        Some(last) => format!("{} {last}", from.first_name),
        None => from.first_name.clone(),
    };
    Some(Inbound {
        channel: NAME.into(),
        account: account.into(),
        chat_kind,
        chat_id: msg.chat.id.0.to_string(),
        thread_id: (chat_kind == ChatKind::Thread)
            .then(|| msg.thread_id.map(|t| t.0.0.to_string()))
            .flatten(),
        sender: Sender {
            id: from.id.0.to_string(),
            name: Some(name),
            is_bot: from.is_bot,
        },
        text,
        attachments,
        mentioned,
        // Message ids are per chat.
        message_id: format!("{}:{}", msg.chat.id.0, msg.id.0),
        received_at_ms: now_ms(),
    })
}

/// `/cmd@bot rest` → (`/cmd rest`, addressed to us); `None` when the command
/// names another bot.
fn strip_command_target(text: &str, me: &str) -> Option<(String, bool)> {
    if !text.starts_with('/') {
        return Some((text.to_string(), false));
    }
    let (first, rest) = match text.split_once(char::is_whitespace) {
        Some((f, r)) => (f, Some(r)),
        None => (text, None),
    };
    let Some((command, target)) = first.split_once('@') else {
        return Some((text.to_string(), false));
    };
    if target.to_lowercase() != me {
        return None;
    }
    Some(match rest {
        Some(r) => (format!("{command} {r}"), true),
        None => (command.to_string(), true),
    })
}

/// What is attached, described (the file itself is fetched by id).
fn attachments(msg: &Message) -> Vec<Attachment> {
    let mut out = Vec::new();
    if let Some(doc) = msg.document() {
        out.push(Attachment {
            name: doc.file_name.clone().unwrap_or_else(|| "document".into()),
            mime: doc.mime_type.as_ref().map(|m| m.to_string()),
            size: Some(u64::from(doc.file.size)),
            local_path: None,
            file_id: Some(doc.file.id.to_string()),
        });
    }
    if let Some(photo) = msg
        .photo()
        .and_then(|p| p.iter().max_by_key(|s| s.width * s.height))
    {
        out.push(Attachment {
            name: format!("photo-{}x{}.jpg", photo.width, photo.height),
            mime: Some("image/jpeg".into()),
            size: Some(u64::from(photo.file.size)),
            local_path: None,
            file_id: Some(photo.file.id.to_string()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_for_us_lose_the_bot_name_and_others_are_dropped() {
        assert_eq!(
            strip_command_target("/status@sb_bot", "sb_bot"),
            Some(("/status".into(), true))
        );
        assert_eq!(
            strip_command_target("/approve@SB_bot abc", "sb_bot"),
            Some(("/approve abc".into(), true))
        );
        assert_eq!(strip_command_target("/status@other_bot", "sb_bot"), None);
        assert_eq!(
            strip_command_target("/new", "sb_bot"),
            Some(("/new".into(), false))
        );
        assert_eq!(
            strip_command_target("hi @x", "sb_bot"),
            Some(("hi @x".into(), false))
        );
    }

    // teloxide's `Update` only deserializes from text, not from a `Value`.
    fn update(json: serde_json::Value) -> Update {
        serde_json::from_str(&json.to_string()).unwrap()
    }

    fn me() -> Me {
        serde_json::from_str(&serde_json::json!({
            "id": 999, "is_bot": true, "first_name": "SB", "username": "sb_bot",
            "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
            "can_connect_to_business": false, "has_main_web_app": false
        }).to_string())
        .unwrap()
    }

    #[test]
    fn private_groups_and_topics_map_to_their_kinds() {
        let dm = update(serde_json::json!({"update_id": 1, "message": {
            "message_id": 5, "date": 0, "chat": {"id": 42, "type": "private", "first_name": "Ada"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ada", "last_name": "L"}, "text": "hello"}}));
        let i = to_inbound("main", &me(), &dm).unwrap();
        assert_eq!(
            (i.chat_kind, i.chat_id.as_str(), i.message_id.as_str()),
            (ChatKind::Dm, "42", "42:5")
        );
        assert!(i.mentioned);
        assert_eq!(i.sender.name.as_deref(), Some("Ada L"));

        let group = update(serde_json::json!({"update_id": 2, "message": {
            "message_id": 6, "date": 0, "chat": {"id": -100, "type": "supergroup", "title": "G"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ada"}, "text": "hello all"}}));
        let i = to_inbound("main", &me(), &group).unwrap();
        assert_eq!(i.chat_kind, ChatKind::Group);
        assert!(!i.mentioned);

        let topic = update(serde_json::json!({"update_id": 3, "message": {
            "message_id": 7, "message_thread_id": 3, "is_topic_message": true, "date": 0,
            "chat": {"id": -100, "type": "supergroup", "title": "G", "is_forum": true},
            "from": {"id": 42, "is_bot": false, "first_name": "Ada"}, "text": "hey @SB_bot"}}));
        let i = to_inbound("main", &me(), &topic).unwrap();
        assert_eq!(
            (i.chat_kind, i.thread_id.as_deref()),
            (ChatKind::Thread, Some("3"))
        );
        assert!(i.mentioned);

        let reply = update(serde_json::json!({"update_id": 4, "message": {
            "message_id": 8, "date": 0, "chat": {"id": -100, "type": "group", "title": "G"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ada"}, "text": "and then?",
            "reply_to_message": {"message_id": 2, "date": 0, "chat": {"id": -100, "type": "group", "title": "G"},
                "from": {"id": 999, "is_bot": true, "first_name": "SB", "username": "sb_bot"}, "text": "answer"}}}));
        assert!(to_inbound("main", &me(), &reply).unwrap().mentioned);
    }
}
