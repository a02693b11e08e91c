//! Slack's Events API bodies and Socket Mode frames, read as the adapter
//! reads them (`switchboard_slack::socket::read_frame`, then the
//! `events` types), then turned into messages by `events::to_inbound` and
//! `events::command_inbound`. Nothing may panic; a message that comes out
//! is not the bot's own nor an edit or join, not another bot's unless bots
//! are allowed, a DM is addressed to the bot, a channel message is a
//! thread, and its id reads back as its channel and `ts`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard_channel::ChatKind;
use switchboard_slack::events::{self, Bot, Callback, Event, Rules, SlashCommand};
use switchboard_slack::socket::read_frame;

fn bot() -> Bot {
    Bot {
        user_id: "UBOT".into(),
        bot_id: Some("BBOT".into()),
    }
}

fn event(e: &Event) {
    let strict = Rules::default();
    let open = Rules {
        allow_bots: true,
        mention_patterns: vec!["assistant".into(), " ".into()],
    };
    for rules in [&strict, &open] {
        for in_thread in [false, true] {
            let Some(i) = events::to_inbound("main", &bot(), rules, e, in_thread) else {
                continue;
            };
            assert!(matches!(e.kind.as_str(), "message" | "app_mention") && !e.ts.is_empty());
            assert_ne!(e.user.as_deref(), Some("UBOT"), "the bot's own message");
            assert_ne!(e.bot_id.as_deref(), Some("BBOT"), "the bot's own message");
            assert!(matches!(
                e.subtype.as_deref(),
                None | Some("file_share" | "thread_broadcast" | "bot_message")
            ));
            assert!(rules.allow_bots || !i.sender.is_bot);
            assert_eq!(i.text, i.text.trim());
            assert_eq!(i.attachments.len(), e.files.len());
            assert_eq!(i.message_id, events::message_id(&e.channel, &e.ts));
            if !e.channel.is_empty() && !e.channel.contains(':') {
                assert_eq!(
                    events::split_message_id(&i.message_id),
                    Some((e.channel.as_str(), e.ts.as_str()))
                );
            }
            if i.chat_kind == ChatKind::Dm {
                assert!(i.mentioned, "a DM is addressed to the bot");
            } else {
                assert_eq!(i.chat_kind, ChatKind::Thread);
                let thread = e.thread_ts.as_ref().unwrap_or(&e.ts);
                assert_eq!(i.thread_id.as_ref(), Some(thread));
            }
        }
    }
}

/// An Events API body, as the webhook or an `events_api` envelope has it.
fn body(v: Value) {
    let Ok(callback) = serde_json::from_value::<Callback>(v) else {
        return;
    };
    if callback.kind == "event_callback"
        && let Some(e) = &callback.event
    {
        event(e);
    }
}

/// A slash command's fields.
fn command(v: Value) {
    let Ok(c) = serde_json::from_value::<SlashCommand>(v) else {
        return;
    };
    let i = events::command_inbound("main", &c);
    assert!(i.mentioned && i.message_id.starts_with(events::COMMAND));
    assert!(!i.text.is_empty(), "a command became an empty message");
    assert_eq!(i.chat_kind == ChatKind::Dm, c.channel_id.starts_with('D'));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match read_frame(text) {
        Ok((kind, Some(_), payload)) if kind == "events_api" => body(payload),
        Ok((kind, Some(_), payload)) if kind == "slash_commands" => command(payload),
        _ => {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                body(v);
            }
        }
    }
});
