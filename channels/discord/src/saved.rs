//! What the adapter keeps across restarts, in the channel state the
//! gateway stores for it (this crate only names the keys): the gateway
//! session to resume — its id, its resume URL and the sequence of the
//! last event *handled* (stored by the gateway, not merely received) —
//! the bot and application it belongs to, and for each DM and catch-up
//! channel the last message handled there, where a catch-up through the
//! message history starts when the session could not be resumed.
//!
//! Writing is best effort: a value that could not be written stays older
//! than the truth, which only means that Discord replays (or the history
//! returns) events already handled, and the gateway's deduplication by
//! message id answers those once. A value newer than the truth is what
//! must never be written, so the sequence is written only after its event
//! was handled.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_channel::ChannelState;

use crate::Place;

const BOT: &str = "bot";
const APPLICATION: &str = "application";
const SESSION: &str = "session_id";
const RESUME_URL: &str = "resume_url";
const SEQ: &str = "seq";
/// `last:<channel id>` → a [`LastSeen`] as JSON.
const LAST: &str = "last:";

/// A gateway session to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumable {
    /// The session id READY named.
    pub id: String,
    /// Where to resume it (READY's `resume_gateway_url`).
    pub resume_url: String,
    /// The sequence of the last event handled.
    pub seq: u64,
}

/// The last message handled in a channel, and where the channel is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeen {
    /// The message's id.
    pub message: String,
    /// The guild; `None` for a DM.
    #[serde(default)]
    pub guild: Option<String>,
    /// For a thread, the channel it hangs off.
    #[serde(default)]
    pub parent: Option<String>,
}

impl LastSeen {
    /// Where the channel is, for sessions.
    pub fn place(&self) -> Place {
        match (&self.guild, &self.parent) {
            (None, _) => Place::Dm,
            (Some(_), Some(parent)) => Place::Thread {
                parent: parent.clone(),
            },
            (Some(_), None) => Place::Channel,
        }
    }
}

/// What the last run left.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The session to resume, if there was one.
    pub session: Option<Resumable>,
    /// The bot's application, as the last READY named it.
    pub application: Option<String>,
}

/// The numeric value of a snowflake (0 when it is none), for ordering.
pub fn snowflake(id: &str) -> u64 {
    id.parse().unwrap_or(0)
}

/// One account's saved state.
#[derive(Debug)]
pub struct Saved {
    state: Arc<dyn ChannelState>,
    account: String,
    /// The last event handled, and whether that is written.
    handled: Option<u64>,
    written: bool,
}

impl Saved {
    /// The state in `state`, of `account` (for messages).
    pub fn new(state: Arc<dyn ChannelState>, account: &str) -> Self {
        Self {
            state,
            account: account.to_string(),
            handled: None,
            written: true,
        }
    }

    fn failed(&self, what: &str, e: &switchboard_channel::ChannelError) {
        tracing::warn!(account = %self.account, error = %e, "cannot save {what}; after a restart Discord may replay events already answered (they are answered once)");
    }

    async fn write(&self, what: &str, entries: &[(&str, &str)]) -> bool {
        match self.state.set(entries).await {
            Ok(()) => true,
            Err(e) => {
                self.failed(what, &e);
                false
            }
        }
    }

    async fn get(&self, key: &str) -> Option<String> {
        self.state.get(key).await.ok().flatten()
    }

    /// What the last run left for bot `bot`. State of another bot (the
    /// token now names another one) is dropped: its session and channels
    /// are not this bot's.
    pub async fn load(&mut self, bot: &str) -> Loaded {
        match self.state.get(BOT).await {
            Ok(Some(saved)) if saved == bot => {}
            Ok(saved) => {
                if saved.is_some() {
                    tracing::info!(account = %self.account, "the saved Discord state is another bot's; starting afresh");
                    if let Ok(all) = self.state.list("").await {
                        let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
                        if let Err(e) = self.state.remove(&keys).await {
                            self.failed("the cleared state", &e);
                        }
                    }
                }
                self.write("the bot id", &[(BOT, bot)]).await;
                return Loaded::default();
            }
            Err(e) => {
                tracing::warn!(account = %self.account, error = %e, "cannot read the saved Discord session; identifying afresh");
                return Loaded::default();
            }
        }
        let application = self.get(APPLICATION).await.filter(|a| !a.is_empty());
        let session = match (self.get(SESSION).await, self.get(RESUME_URL).await) {
            (Some(id), Some(resume_url)) => {
                let seq = self
                    .get(SEQ)
                    .await
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                self.handled = Some(seq);
                Some(Resumable {
                    id,
                    resume_url,
                    seq,
                })
            }
            _ => None,
        };
        Loaded {
            session,
            application,
        }
    }

    /// A session started: READY (with sequence `seq`) was handled.
    pub async fn session_started(
        &mut self,
        id: &str,
        resume_url: &str,
        seq: Option<u64>,
        application: &str,
    ) {
        let seq = seq.unwrap_or(0);
        let seq_text = seq.to_string();
        let mut entries = vec![
            (SESSION, id),
            (RESUME_URL, resume_url),
            (SEQ, seq_text.as_str()),
        ];
        if !application.is_empty() {
            entries.push((APPLICATION, application));
        }
        self.handled = Some(seq);
        self.written = self.write("the Discord session", &entries).await;
    }

    /// Event `seq` was handled. Written with the next message (or by
    /// [`flush`](Self::flush)): replaying events that carry no message
    /// costs nothing.
    pub fn handled(&mut self, seq: Option<u64>) {
        if seq.is_some() && seq != self.handled {
            self.handled = seq;
            self.written = false;
        }
    }

    /// A message (or command), event `seq`, was handled; `last` is the
    /// channel's new last message when its history is caught up on.
    pub async fn message_handled(&mut self, seq: Option<u64>, last: Option<(&str, &LastSeen)>) {
        self.handled(seq);
        let seq_text = self.handled.map(|s| s.to_string());
        let mut entries: Vec<(&str, &str)> = Vec::new();
        if !self.written
            && let Some(s) = &seq_text
        {
            entries.push((SEQ, s.as_str()));
        }
        let last_entry = last.map(|(channel, l)| {
            (
                format!("{LAST}{channel}"),
                serde_json::to_string(l).unwrap_or_default(),
            )
        });
        if let Some((k, v)) = &last_entry {
            entries.push((k.as_str(), v.as_str()));
        }
        if entries.is_empty() {
            return;
        }
        let ok = self.write("the handled sequence", &entries).await;
        if ok && seq_text.is_some() {
            self.written = true;
        }
    }

    /// Write the handled sequence if it is not yet.
    pub async fn flush(&mut self) {
        if self.written {
            return;
        }
        if let Some(s) = self.handled {
            let s = s.to_string();
            self.written = self
                .write("the handled sequence", &[(SEQ, s.as_str())])
                .await;
        }
    }

    /// The channels whose last message is known, the most recently active
    /// first.
    pub async fn last_seen(&self) -> Vec<(String, LastSeen)> {
        let all = match self.state.list(LAST).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(account = %self.account, error = %e, "cannot read where each channel was left");
                return Vec::new();
            }
        };
        let mut seen: Vec<(String, LastSeen)> = all
            .into_iter()
            .filter_map(|(k, v)| {
                let channel = k.strip_prefix(LAST)?.to_string();
                Some((channel, serde_json::from_str(&v).ok()?))
            })
            .collect();
        seen.sort_by_key(|(_, l)| std::cmp::Reverse(snowflake(&l.message)));
        seen
    }

    /// Message `last.message` of `channel` was handled (in a catch-up).
    pub async fn remember(&self, channel: &str, last: &LastSeen) {
        let key = format!("{LAST}{channel}");
        let value = serde_json::to_string(last).unwrap_or_default();
        self.write(
            "where a channel was left",
            &[(key.as_str(), value.as_str())],
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_channel::MemoryState;

    fn last(message: &str) -> LastSeen {
        LastSeen {
            message: message.into(),
            guild: None,
            parent: None,
        }
    }

    #[tokio::test]
    async fn a_session_comes_back_with_the_last_handled_sequence() {
        let state: Arc<dyn ChannelState> = Arc::new(MemoryState::default());
        let mut saved = Saved::new(state.clone(), "main");
        assert!(saved.load("bot1").await.session.is_none());
        saved
            .session_started("s1", "wss://resume", Some(1), "app1")
            .await;
        // Received but not a message: not written by itself.
        saved.handled(Some(2));
        let mut again = Saved::new(state.clone(), "main");
        let loaded = again.load("bot1").await;
        assert_eq!(loaded.session.as_ref().map(|s| s.seq), Some(1));
        assert_eq!(loaded.application.as_deref(), Some("app1"));
        saved
            .message_handled(Some(3), Some(("77", &last("500"))))
            .await;
        let loaded = Saved::new(state.clone(), "main").load("bot1").await;
        assert_eq!(
            loaded.session,
            Some(Resumable {
                id: "s1".into(),
                resume_url: "wss://resume".into(),
                seq: 3
            })
        );
        saved.remember("78", &last("900")).await;
        let seen = saved.last_seen().await;
        assert_eq!(seen[0], ("78".to_string(), last("900")));
        assert_eq!(seen[1], ("77".to_string(), last("500")));
    }

    #[tokio::test]
    async fn another_bots_state_is_dropped() {
        let state: Arc<dyn ChannelState> = Arc::new(MemoryState::default());
        let mut saved = Saved::new(state.clone(), "main");
        saved.load("bot1").await;
        saved.session_started("s1", "wss://r", Some(5), "").await;
        saved.remember("77", &last("1")).await;
        let mut other = Saved::new(state.clone(), "main");
        assert!(other.load("bot2").await.session.is_none());
        assert!(other.last_seen().await.is_empty());
    }

    #[test]
    fn a_place_follows_from_guild_and_parent() {
        assert_eq!(last("1").place(), Place::Dm);
        let mut l = last("1");
        l.guild = Some("9".into());
        assert_eq!(l.place(), Place::Channel);
        l.parent = Some("70".into());
        assert_eq!(
            l.place(),
            Place::Thread {
                parent: "70".into()
            }
        );
    }
}
