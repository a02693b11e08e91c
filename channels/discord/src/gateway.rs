//! The gateway connection: one WebSocket (tokio-tungstenite, rustls on
//! ring) speaking Discord's gateway protocol — HELLO, IDENTIFY or RESUME,
//! heartbeats at the interval HELLO names, DISPATCH events with their
//! sequence numbers, RECONNECT and INVALID_SESSION, and the close codes.
//!
//! Why not serenity's shard runner: serenity 0.12 resumes at the URL it
//! first connected to rather than the session's `resume_gateway_url`, and
//! on a missed heartbeat ACK it starts a new session (losing what was sent
//! meanwhile) where Discord asks clients to resume. Its receive calls are
//! crate-private, so the loop is ours; serenity still does REST.
//!
//! What the loop guarantees: events are handed on in the order Discord
//! numbered them; a dropped socket, a RECONNECT, a resumable
//! INVALID_SESSION and a connection that stopped acknowledging heartbeats
//! (a "zombie") all lead to a RESUME at the session's resume URL, so the
//! events sent meanwhile are replayed; a session that cannot be resumed
//! starts over with IDENTIFY at the gateway URL after 1–5 seconds, as
//! Discord asks.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use switchboard_channel::websocket::{self, Socket, backoff};
use switchboard_channel::{ChannelError, ChannelStatus};

use crate::model::{ChannelInfo, GuildCreate, Interaction, Message, Ready, ThreadListSync};

/// The gateway API version.
pub const VERSION: u8 = 10;

/// `GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT`: channels
/// and threads (for routing), messages in guilds and DMs, and their text.
/// MESSAGE_CONTENT is privileged: it must be switched on for the bot in
/// the Developer Portal, or Discord closes the connection with 4014.
pub const INTENTS: u64 = (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the connection hands on, in order.
#[derive(Debug)]
pub enum Dispatch {
    /// A session started: who the bot is.
    Ready(Ready),
    /// A message was posted.
    Message(Message),
    /// A slash command was used.
    Interaction(Interaction),
    /// Channels or threads became known (their kinds route messages).
    Channels(Vec<ChannelInfo>),
}

/// How one connection ended.
enum Next {
    /// Shutdown.
    Stop,
    /// Connect again after the wait and resume the session if there is one.
    Resume(Duration),
    /// Drop the session; connect again after the wait and identify.
    Identify(Duration),
}

struct Session {
    id: String,
    resume_url: String,
}

/// One account's gateway connection.
pub struct Gateway<'a> {
    /// The bot token (sent in IDENTIFY and RESUME only).
    pub token: &'a str,
    /// The gateway URL (from `GET /gateway` or the config).
    pub url: String,
    /// The account, for messages.
    pub account: &'a str,
    /// Health.
    pub status: &'a ChannelStatus,
    /// Shutdown.
    pub shutdown: &'a CancellationToken,
    /// Where events go.
    pub events: mpsc::UnboundedSender<Dispatch>,
}

#[derive(Deserialize)]
struct Payload {
    op: u8,
    #[serde(default)]
    d: serde_json::Value,
    #[serde(default)]
    s: Option<u64>,
    #[serde(default)]
    t: Option<String>,
}

fn with_query(url: &str) -> String {
    let base = url.trim_end_matches('/');
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}v={VERSION}&encoding=json")
}

/// Discord asks for a random 1–5 s wait before identifying again after an
/// invalid session.
fn identify_wait() -> Duration {
    Duration::from_millis(rand::random_range(1000..=5000))
}

impl Gateway<'_> {
    /// Stay connected until shutdown; `Err` only for what retrying cannot
    /// fix (a refused token, intents not enabled).
    pub async fn run(&self) -> Result<(), ChannelError> {
        let mut session: Option<Session> = None;
        let mut seq: Option<u64> = None;
        let mut failures = 0u32;
        loop {
            let next = self
                .connection(&mut session, &mut seq, &mut failures)
                .await?;
            let wait = match next {
                Next::Stop => return Ok(()),
                Next::Resume(wait) => wait,
                Next::Identify(wait) => {
                    session = None;
                    seq = None;
                    wait
                }
            };
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn connection(
        &self,
        session: &mut Option<Session>,
        seq: &mut Option<u64>,
        failures: &mut u32,
    ) -> Result<Next, ChannelError> {
        let resuming = session.is_some();
        let url = session
            .as_ref()
            .map_or(self.url.as_str(), |s| s.resume_url.as_str());
        self.status
            .state(if resuming { "resuming" } else { "connecting" });
        let mut ws = match websocket::connect(&with_query(url), CONNECT_TIMEOUT).await {
            Ok(ws) => ws,
            Err(e) => return Ok(self.lost(failures, e)),
        };
        // HELLO comes first and names the heartbeat interval.
        let interval = match tokio::time::timeout(CONNECT_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Frame::Text(t)))) => match serde_json::from_str::<Payload>(&t) {
                Ok(p) if p.op == 10 => p.d["heartbeat_interval"].as_u64().unwrap_or(41_250),
                _ => return Ok(self.lost(failures, "the gateway did not say HELLO".into())),
            },
            Ok(Some(Ok(Frame::Close(frame)))) => return self.closed(frame),
            _ => return Ok(self.lost(failures, "the gateway did not say HELLO".into())),
        };
        let interval = Duration::from_millis(interval.max(100));
        let hello = match session.as_ref() {
            Some(s) => serde_json::json!({"op": 6, "d": {
                "token": self.token, "session_id": s.id, "seq": *seq,
            }}),
            None => serde_json::json!({"op": 2, "d": {
                "token": self.token,
                "intents": INTENTS,
                "properties": {"os": std::env::consts::OS, "browser": "switchboard", "device": "switchboard"},
            }}),
        };
        if let Err(e) = ws.send(Frame::text(hello.to_string())).await {
            return Ok(self.lost(failures, format!("cannot send IDENTIFY/RESUME: {e}")));
        }
        // The first heartbeat after a random part of the interval.
        let mut next_beat = Instant::now() + interval.mul_f64(rand::random::<f64>());
        let mut acked = true;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    // 1000 ends the session: the bot shows offline.
                    close(&mut ws, CloseCode::Normal).await;
                    return Ok(Next::Stop);
                }
                () = tokio::time::sleep_until(next_beat) => {
                    if !acked {
                        self.status.watchdog_restart();
                        let what = format!("no heartbeat ACK within {interval:?}: the connection is a zombie; reconnecting to resume");
                        tracing::warn!(account = %self.account, "{what}");
                        self.status.problem(what);
                        close(&mut ws, CloseCode::Library(4000)).await;
                        return Ok(Next::Resume(Duration::ZERO));
                    }
                    if let Err(e) = heartbeat(&mut ws, *seq).await {
                        return Ok(self.lost(failures, format!("cannot send a heartbeat: {e}")));
                    }
                    acked = false;
                    next_beat = Instant::now() + interval;
                }
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(Frame::Text(t))) => t,
                        Some(Ok(Frame::Close(frame))) => return self.closed(frame),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Ok(self.lost(failures, format!("connection dropped: {e}"))),
                        None => return Ok(self.lost(failures, "connection closed".into())),
                    };
                    let payload = match serde_json::from_str::<Payload>(&text) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!(account = %self.account, error = %e, "unreadable gateway payload");
                            continue;
                        }
                    };
                    match payload.op {
                        0 => {
                            if let Some(s) = payload.s {
                                *seq = Some(s);
                            }
                            self.status.event();
                            self.dispatch(payload, session, failures);
                        }
                        1 => {
                            if let Err(e) = heartbeat(&mut ws, *seq).await {
                                return Ok(self.lost(failures, format!("cannot send a heartbeat: {e}")));
                            }
                        }
                        7 => {
                            tracing::info!(account = %self.account, "Discord asked to reconnect");
                            close(&mut ws, CloseCode::Library(4000)).await;
                            return Ok(Next::Resume(Duration::ZERO));
                        }
                        9 => {
                            let resumable = payload.d.as_bool().unwrap_or(false);
                            tracing::info!(account = %self.account, resumable, "Discord invalidated the session");
                            close(&mut ws, CloseCode::Library(4000)).await;
                            return Ok(if resumable && session.is_some() {
                                Next::Resume(Duration::ZERO)
                            } else {
                                Next::Identify(identify_wait())
                            });
                        }
                        11 => {
                            acked = true;
                            self.status.contact();
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Hand a dispatch on; READY and RESUMED also update the session.
    fn dispatch(&self, p: Payload, session: &mut Option<Session>, failures: &mut u32) {
        let Some(t) = p.t.as_deref() else { return };
        let event = match t {
            "READY" => match serde_json::from_value::<Ready>(p.d) {
                Ok(ready) => {
                    *session = Some(Session {
                        id: ready.session_id.clone(),
                        resume_url: ready
                            .resume_gateway_url
                            .clone()
                            .unwrap_or_else(|| self.url.clone()),
                    });
                    *failures = 0;
                    self.status.state("connected");
                    self.status.contact();
                    tracing::info!(account = %self.account, bot = %ready.user.username, "discord gateway ready");
                    Ok(Dispatch::Ready(ready))
                }
                Err(e) => Err(e),
            },
            "RESUMED" => {
                *failures = 0;
                self.status.state("connected");
                self.status.contact();
                tracing::info!(account = %self.account, "discord session resumed");
                return;
            }
            "MESSAGE_CREATE" => serde_json::from_value(p.d).map(Dispatch::Message),
            "INTERACTION_CREATE" => serde_json::from_value(p.d).map(Dispatch::Interaction),
            "GUILD_CREATE" => serde_json::from_value::<GuildCreate>(p.d)
                .map(|g| Dispatch::Channels(g.channels.into_iter().chain(g.threads).collect())),
            "CHANNEL_CREATE" | "CHANNEL_UPDATE" | "THREAD_CREATE" | "THREAD_UPDATE" => {
                serde_json::from_value(p.d).map(|c| Dispatch::Channels(vec![c]))
            }
            "THREAD_LIST_SYNC" => {
                serde_json::from_value::<ThreadListSync>(p.d).map(|s| Dispatch::Channels(s.threads))
            }
            _ => return,
        };
        match event {
            Ok(e) => {
                let _ = self.events.send(e);
            }
            Err(e) => {
                tracing::warn!(account = %self.account, event = t, error = %e, "a Discord event could not be read; skipped");
            }
        }
    }

    /// The connection was lost: reconnect (and resume), soon at first and
    /// then with growing waits.
    fn lost(&self, failures: &mut u32, why: String) -> Next {
        *failures += 1;
        let wait = backoff(*failures);
        let what = format!("Discord gateway: {why}; reconnecting in {wait:?}");
        tracing::warn!(account = %self.account, "{what}");
        if *failures > 1 {
            self.status.problem(what);
        }
        self.status.state("reconnecting");
        Next::Resume(wait)
    }

    /// Discord closed the connection: what its close code asks for.
    fn closed(&self, frame: Option<CloseFrame>) -> Result<Next, ChannelError> {
        let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
        let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
        let account = self.account;
        let fatal = |why: String| {
            self.status.problem(why.clone());
            self.status.state("stopped");
            tracing::error!(account = %account, "{why}");
            Err(ChannelError::Config(why))
        };
        match code {
            4004 => fatal(format!(
                "Discord refused the bot token of account `{account}` (close 4004 Authentication failed): copy a new token from the Developer Portal (Bot → Reset Token)"
            )),
            4014 => fatal(format!(
                "Discord refused the gateway intents of account `{account}` (close 4014 Disallowed intent(s)): turn on MESSAGE CONTENT INTENT under Bot → Privileged Gateway Intents in the Discord Developer Portal, then restart"
            )),
            4013 => fatal(format!(
                "Discord refused the gateway intents of account `{account}` (close 4013 Invalid intent(s): {reason})"
            )),
            4010 | 4011 => fatal(format!(
                "Discord requires sharding for account `{account}` (close {code}: {reason}); this bot is in too many guilds for one connection"
            )),
            4012 => fatal(format!(
                "Discord no longer accepts gateway v{VERSION} (close 4012)"
            )),
            4007 | 4009 => {
                tracing::info!(account = %account, code, "session cannot be resumed; identifying again");
                Ok(Next::Identify(Duration::ZERO))
            }
            4008 => Ok(Next::Resume(Duration::from_secs(5))),
            _ => {
                tracing::info!(account = %account, code, reason = %reason, "gateway closed the connection; resuming");
                Ok(Next::Resume(Duration::ZERO))
            }
        }
    }
}

async fn heartbeat(ws: &mut Socket, seq: Option<u64>) -> Result<(), String> {
    let beat = serde_json::json!({"op": 1, "d": seq});
    ws.send(Frame::text(beat.to_string()))
        .await
        .map_err(|e| e.to_string())
}

/// Close politely, but never wait long for a peer that stopped answering.
async fn close(ws: &mut Socket, code: CloseCode) {
    let frame = CloseFrame {
        code,
        reason: "".into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_version_and_encoding() {
        assert_eq!(
            with_query("wss://gateway.discord.gg"),
            "wss://gateway.discord.gg?v=10&encoding=json"
        );
        assert_eq!(
            with_query("ws://h/x?a=1"),
            "ws://h/x?a=1&v=10&encoding=json"
        );
    }

    #[test]
    fn identify_waits_one_to_five_seconds() {
        let w = identify_wait();
        assert!(w >= Duration::from_secs(1) && w <= Duration::from_secs(5));
    }
}
