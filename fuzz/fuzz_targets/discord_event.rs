//! Discord gateway frames read as the connection reads them
//! (`switchboard_discord::gateway::decode`), then a MESSAGE_CREATE turned
//! into a message by `to_inbound` in each kind of place, and an
//! INTERACTION_CREATE by `command_inbound`. Nothing may panic; a message
//! that comes out is not the bot's own, not a system message, not another
//! bot's unless bots are allowed, has the bot's mention taken out and
//! sits where the place says; an interaction's debug output does not
//! depend on its token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_channel::ChatKind;
use switchboard_discord::gateway::{Dispatch, decode};
use switchboard_discord::model::{Interaction, Message};
use switchboard_discord::{Place, command_inbound, to_inbound};

const BOT: &str = "100";

fn message(m: &Message) {
    let places = [
        Place::Dm,
        Place::Channel,
        Place::Thread {
            parent: "70".into(),
        },
    ];
    for place in &places {
        for allow_bots in [false, true] {
            let Some(i) = to_inbound("main", BOT, allow_bots, m, place) else {
                continue;
            };
            assert_ne!(m.author.id, BOT, "the bot's own message came back");
            assert!(
                m.kind == 0 || m.kind == 19,
                "a system message (type {})",
                m.kind
            );
            assert!(allow_bots || !(m.author.bot || m.webhook_id.is_some()));
            assert_eq!((&i.message_id, &i.sender.id), (&m.id, &m.author.id));
            assert!(
                !i.text.contains("<@100>") && !i.text.contains("<@!100>"),
                "the bot's mention is left in {:?}",
                i.text
            );
            assert_eq!(i.attachments.len(), m.attachments.len());
            match place {
                Place::Dm => {
                    assert_eq!((i.chat_kind, &i.chat_id), (ChatKind::Dm, &m.channel_id));
                    assert!(i.mentioned, "a DM is addressed to the bot");
                }
                Place::Channel => {
                    assert_eq!((i.chat_kind, &i.chat_id), (ChatKind::Group, &m.channel_id));
                }
                Place::Thread { parent } => {
                    assert_eq!((i.chat_kind, &i.chat_id), (ChatKind::Thread, parent));
                    assert_eq!(i.thread_id.as_ref(), Some(&m.channel_id));
                }
            }
        }
    }
}

fn interaction(it: &Interaction) {
    let mut other = it.clone();
    other.token = "another token".into();
    assert_eq!(format!("{it:?}"), format!("{other:?}"), "the token shows");
    if let Some(i) = command_inbound("main", it, &Place::Channel) {
        let name = &it.data.as_ref().expect("a command has data").name;
        assert_eq!(i.text, format!("/{name}"));
        assert!(i.mentioned && i.message_id.starts_with("interaction:"));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode(text) {
        Ok(Some(Dispatch::Message(m))) => message(&m),
        Ok(Some(Dispatch::Interaction(it))) => interaction(&it),
        Ok(Some(Dispatch::Ready {
            ready, resume_url, ..
        })) => {
            assert_eq!(resume_url, ready.resume_gateway_url.unwrap_or_default());
        }
        Ok(Some(Dispatch::Channels(channels))) => {
            for c in &channels {
                assert_eq!(c.is_thread(), matches!(c.kind, 10..=12));
            }
        }
        Ok(None) | Err(_) => {}
    }
});
