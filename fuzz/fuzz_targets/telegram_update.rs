//! Telegram updates (a `getUpdates` result or a webhook body) read by
//! teloxide, as the adapter reads them, then turned into a message by the
//! adapter's `switchboard_telegram::to_inbound`. Neither may panic, and a
//! message that comes out keeps its promises: its id names its chat, a
//! private chat is a DM addressed to the bot, it has text or a file, and
//! a command that names another bot never gets through.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchboard_channel::ChatKind;
use teloxide::types::{Me, Update, UpdateKind};

/// The bot: `@sb_bot`, id 999.
fn me() -> &'static Me {
    static ME: OnceLock<Me> = OnceLock::new();
    ME.get_or_init(|| {
        serde_json::from_str(
            r#"{"id": 999, "is_bot": true, "first_name": "SB", "username": "sb_bot",
                "can_join_groups": true, "can_read_all_group_messages": false,
                "supports_inline_queries": false, "can_connect_to_business": false,
                "has_main_web_app": false}"#,
        )
        .expect("the bot's own description reads")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(update) = serde_json::from_slice::<Update>(data) else {
        return;
    };
    let Some(inbound) = switchboard_telegram::to_inbound("main", me(), &update) else {
        return;
    };
    let UpdateKind::Message(msg) = &update.kind else {
        panic!("a message from an update that is not one: {update:?}");
    };
    assert_eq!(
        (inbound.channel.as_str(), inbound.account.as_str()),
        ("telegram", "main")
    );
    assert_eq!(
        inbound.message_id,
        format!("{}:{}", msg.chat.id.0, msg.id.0)
    );
    assert_eq!(inbound.chat_id, msg.chat.id.0.to_string());
    assert_eq!(inbound.chat_kind == ChatKind::Dm, msg.chat.is_private());
    if inbound.chat_kind == ChatKind::Dm {
        assert!(inbound.mentioned, "a DM is addressed to the bot");
    }
    assert_eq!(
        inbound.thread_id.is_some(),
        inbound.chat_kind == ChatKind::Thread
    );
    assert!(!inbound.text.trim().is_empty() || !inbound.attachments.is_empty());
    if inbound.text.starts_with('/') {
        let first = inbound.text.split_whitespace().next().unwrap_or("");
        assert!(
            !first.contains('@'),
            "a command for another bot got through: {first:?}"
        );
    }
});
