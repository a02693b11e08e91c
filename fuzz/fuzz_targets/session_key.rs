//! Session keys (`switchboard::pipeline::routing`): any text that reads
//! as a key (`SessionKey::parse`) is the key its parts write, and the key
//! written for any ids, under every DM scope and chat kind, reads back as
//! the same parts, however many `:` and `%` the ids hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::config::DmScope;
use switchboard::pipeline::routing::{SessionKey, session_key};
use switchboard_channel::{ChatKind, Inbound, Sender};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(key) = SessionKey::parse(text) {
        assert_eq!(key.to_string(), text, "read as {key:?}");
    }
    // The same text as ids, one a line.
    let mut ids = text.split('\n').map(str::to_string);
    let mut id = || ids.next().unwrap_or_default();
    let (agent, channel, account, chat, peer, thread) = (id(), id(), id(), id(), id(), id());
    for chat_kind in [ChatKind::Dm, ChatKind::Group, ChatKind::Thread] {
        let m = Inbound {
            channel: channel.clone(),
            account: account.clone(),
            chat_kind,
            chat_id: chat.clone(),
            thread_id: (chat_kind == ChatKind::Thread).then(|| thread.clone()),
            sender: Sender {
                id: peer.clone(),
                name: None,
                is_bot: false,
            },
            text: String::new(),
            attachments: Vec::new(),
            mentioned: false,
            message_id: String::new(),
            received_at_ms: 0,
        };
        for scope in [
            DmScope::Main,
            DmScope::PerPeer,
            DmScope::PerChannelPeer,
            DmScope::PerAccountChannelPeer,
        ] {
            let key = session_key(&agent, scope, &m);
            let read = SessionKey::parse(&key);
            assert_eq!(read, Some(SessionKey::of(&agent, scope, &m)), "{key}");
            assert_eq!(read.as_ref().map(SessionKey::agent), Some(agent.as_str()));
        }
    }
});
