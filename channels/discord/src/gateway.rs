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
//! numbered them, each with its sequence number, through a bounded queue:
//! while the queue is full the socket is not read (heartbeats go on, and
//! ACKs left unread then do not count against the connection), so
//! Discord's own buffer holds what we cannot take yet. A dropped socket,
//! a RECONNECT, a resumable INVALID_SESSION and a connection that stopped
//! acknowledging heartbeats (a "zombie") all lead to a RESUME at the
//! session's resume URL, so the events sent meanwhile are replayed; a
//! session that cannot be resumed starts over with IDENTIFY at the gateway
//! URL after 1–5 seconds, as Discord asks, and the READY that follows says
//! a session was lost (what was sent meanwhile may be missing).
//!
//! The connection may start from a saved session (`Resumable`): it then
//! resumes at once, so a restarted gateway gets what was sent while it
//! was down. At shutdown it closes with 4000 rather than 1000, which
//! would end the session (Discord keeps a session closed otherwise
//! resumable for a while, showing the bot online meanwhile).

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
use crate::saved::Resumable;

/// The gateway API version.
pub const VERSION: u8 = 10;

/// `GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT`: channels
/// and threads (for routing), messages in guilds and DMs, and their text.
/// MESSAGE_CONTENT is privileged: it must be switched on for the bot in
/// the Developer Portal, or Discord closes the connection with 4014.
pub const INTENTS: u64 = (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// After this many failed connections in a row to a session's resume URL,
/// resume at the gateway URL instead (a saved resume URL may name a host
/// that is gone).
const RESUME_URL_ATTEMPTS: u32 = 6;

/// One event as it came: its sequence number, to be counted as handled
/// once the event is, and what it says.
#[derive(Debug)]
pub struct Event {
    /// The dispatch's sequence number.
    pub seq: Option<u64>,
    /// What it says.
    pub dispatch: Dispatch,
}

/// What the connection hands on, in order.
#[derive(Debug)]
pub enum Dispatch {
    /// A session started: who the bot is, and where to resume it.
    Ready {
        /// The READY event.
        ready: Ready,
        /// Where to resume this session.
        resume_url: String,
        /// Whether a session was lost before this one started: events
        /// sent between the two may never come.
        after_loss: bool,
    },
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
    /// Where events go (bounded: a full queue stops reading the socket).
    pub events: mpsc::Sender<Event>,
    /// A session saved by an earlier run, to resume first.
    pub resume: Option<Resumable>,
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

/// What one connection knows and changes of the session.
struct Link {
    /// The session, once READY named it (or saved by an earlier run).
    session: Option<Session>,
    /// The last sequence received (what heartbeats and an in-process
    /// RESUME send: events received but not yet handled are still in the
    /// queue, which outlives the connection).
    seq: Option<u64>,
    /// A session was dropped since the last READY.
    lost: bool,
    /// Failed connections in a row.
    failures: u32,
}

impl Gateway<'_> {
    /// Stay connected until shutdown; `Err` only for what retrying cannot
    /// fix (a refused token, intents not enabled).
    pub async fn run(&self) -> Result<(), ChannelError> {
        let mut link = Link {
            session: self.resume.as_ref().map(|r| Session {
                id: r.id.clone(),
                resume_url: r.resume_url.clone(),
            }),
            seq: self.resume.as_ref().map(|r| r.seq),
            lost: false,
            failures: 0,
        };
        loop {
            let next = self.connection(&mut link).await?;
            let wait = match next {
                Next::Stop => return Ok(()),
                Next::Resume(wait) => wait,
                Next::Identify(wait) => {
                    if link.session.take().is_some() {
                        link.lost = true;
                    }
                    link.seq = None;
                    wait
                }
            };
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn connection(&self, link: &mut Link) -> Result<Next, ChannelError> {
        let resuming = link.session.is_some();
        let url = match &link.session {
            Some(s) if link.failures < RESUME_URL_ATTEMPTS => s.resume_url.as_str(),
            _ => self.url.as_str(),
        };
        self.status
            .state(if resuming { "resuming" } else { "connecting" });
        let mut ws = match websocket::connect(&with_query(url), CONNECT_TIMEOUT).await {
            Ok(ws) => ws,
            Err(e) => return Ok(self.lost(&mut link.failures, e)),
        };
        // HELLO comes first and names the heartbeat interval.
        let interval = match tokio::time::timeout(CONNECT_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Frame::Text(t)))) => match serde_json::from_str::<Payload>(&t) {
                Ok(p) if p.op == 10 => p.d["heartbeat_interval"].as_u64().unwrap_or(41_250),
                _ => {
                    return Ok(
                        self.lost(&mut link.failures, "the gateway did not say HELLO".into())
                    );
                }
            },
            Ok(Some(Ok(Frame::Close(frame)))) => return self.closed(frame),
            _ => return Ok(self.lost(&mut link.failures, "the gateway did not say HELLO".into())),
        };
        let interval = Duration::from_millis(interval.max(100));
        let hello = match link.session.as_ref() {
            Some(s) => serde_json::json!({"op": 6, "d": {
                "token": self.token, "session_id": s.id, "seq": link.seq,
            }}),
            None => serde_json::json!({"op": 2, "d": {
                "token": self.token,
                "intents": INTENTS,
                "properties": {"os": std::env::consts::OS, "browser": "switchboard", "device": "switchboard"},
            }}),
        };
        if let Err(e) = ws.send(Frame::text(hello.to_string())).await {
            return Ok(self.lost(
                &mut link.failures,
                format!("cannot send IDENTIFY/RESUME: {e}"),
            ));
        }
        // The first heartbeat after a random part of the interval.
        let mut next_beat = Instant::now() + interval.mul_f64(rand::random::<f64>());
        let mut acked = true;
        // A place in the queue for the next event: the socket is read only
        // while there is one, so a full queue holds back what Discord sends.
        let mut slot: Option<mpsc::Permit<'_, Event>> = None;
        // Whether the queue was full since the last heartbeat (its ACK may
        // then be unread rather than missing).
        let mut held_back = false;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    // Not 1000, which would end the session: a restart
                    // soon resumes it.
                    close(&mut ws, CloseCode::Library(4000)).await;
                    return Ok(Next::Stop);
                }
                () = tokio::time::sleep_until(next_beat) => {
                    if !acked && !held_back {
                        self.status.watchdog_restart();
                        let what = format!("no heartbeat ACK within {interval:?}: the connection is a zombie; reconnecting to resume");
                        tracing::warn!(account = %self.account, "{what}");
                        self.status.problem(what);
                        close(&mut ws, CloseCode::Library(4000)).await;
                        return Ok(Next::Resume(Duration::ZERO));
                    }
                    if let Err(e) = heartbeat(&mut ws, link.seq).await {
                        return Ok(self.lost(&mut link.failures, format!("cannot send a heartbeat: {e}")));
                    }
                    acked = false;
                    held_back = slot.is_none();
                    next_beat = Instant::now() + interval;
                }
                permit = self.events.reserve(), if slot.is_none() => match permit {
                    Ok(p) => slot = Some(p),
                    // The events' reader has stopped: so does the gateway.
                    Err(_) => return Ok(Next::Stop),
                },
                frame = ws.next(), if slot.is_some() => {
                    let text = match frame {
                        Some(Ok(Frame::Text(t))) => t,
                        Some(Ok(Frame::Close(frame))) => return self.closed(frame),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Ok(self.lost(&mut link.failures, format!("connection dropped: {e}"))),
                        None => return Ok(self.lost(&mut link.failures, "connection closed".into())),
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
                                link.seq = Some(s);
                            }
                            self.status.event();
                            if let Some(event) = self.dispatch(payload, link) {
                                if let Some(p) = slot.take() {
                                    p.send(event);
                                }
                                // Take the next place at once if there is
                                // one; otherwise wait for it without reading.
                                match self.events.try_reserve() {
                                    Ok(p) => slot = Some(p),
                                    Err(mpsc::error::TrySendError::Full(())) => held_back = true,
                                    Err(mpsc::error::TrySendError::Closed(())) => return Ok(Next::Stop),
                                }
                            }
                        }
                        1 => {
                            if let Err(e) = heartbeat(&mut ws, link.seq).await {
                                return Ok(self.lost(&mut link.failures, format!("cannot send a heartbeat: {e}")));
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
                            return Ok(if resumable && link.session.is_some() {
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

    /// The event a dispatch is, if it is one we hand on; READY and
    /// RESUMED also update the session.
    fn dispatch(&self, p: Payload, link: &mut Link) -> Option<Event> {
        let t = p.t.as_deref()?;
        let seq = p.s;
        let event = match t {
            "READY" => match serde_json::from_value::<Ready>(p.d) {
                Ok(ready) => {
                    let resume_url = ready
                        .resume_gateway_url
                        .clone()
                        .unwrap_or_else(|| self.url.clone());
                    link.session = Some(Session {
                        id: ready.session_id.clone(),
                        resume_url: resume_url.clone(),
                    });
                    link.failures = 0;
                    self.status.state("connected");
                    self.status.contact();
                    tracing::info!(account = %self.account, bot = %ready.user.username, "discord gateway ready");
                    Ok(Dispatch::Ready {
                        ready,
                        resume_url,
                        after_loss: std::mem::take(&mut link.lost),
                    })
                }
                Err(e) => Err(e),
            },
            "RESUMED" => {
                link.failures = 0;
                self.status.state("connected");
                self.status.contact();
                tracing::info!(account = %self.account, "discord session resumed");
                return None;
            }
            t => data(t, p.d)?,
        };
        match event {
            Ok(dispatch) => Some(Event { seq, dispatch }),
            Err(e) => {
                tracing::warn!(account = %self.account, event = t, error = %e, "a Discord event could not be read; skipped");
                None
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

/// The dispatch the data `d` of an event of type `t` is, for the types
/// handed on besides READY; `None` for the others.
fn data(t: &str, d: serde_json::Value) -> Option<Result<Dispatch, serde_json::Error>> {
    Some(match t {
        "MESSAGE_CREATE" => serde_json::from_value(d).map(Dispatch::Message),
        "INTERACTION_CREATE" => serde_json::from_value(d).map(Dispatch::Interaction),
        "GUILD_CREATE" => serde_json::from_value::<GuildCreate>(d)
            .map(|g| Dispatch::Channels(g.channels.into_iter().chain(g.threads).collect())),
        "CHANNEL_CREATE" | "CHANNEL_UPDATE" | "THREAD_CREATE" | "THREAD_UPDATE" => {
            serde_json::from_value(d).map(|c| Dispatch::Channels(vec![c]))
        }
        "THREAD_LIST_SYNC" => {
            serde_json::from_value::<ThreadListSync>(d).map(|s| Dispatch::Channels(s.threads))
        }
        _ => return None,
    })
}

/// The event one gateway text frame carries, read as the connection reads
/// it but touching no session: `Ok(None)` for a payload that is not a
/// dispatch handed on (a heartbeat ACK, RESUMED, a type not used). A READY
/// names its own resume URL (empty when it has none). For the fuzz targets.
#[doc(hidden)]
pub fn decode(text: &str) -> Result<Option<Dispatch>, serde_json::Error> {
    let p: Payload = serde_json::from_str(text)?;
    let Some(t) = p.t.as_deref().filter(|_| p.op == 0) else {
        return Ok(None);
    };
    if t == "READY" {
        let ready: Ready = serde_json::from_value(p.d)?;
        let resume_url = ready.resume_gateway_url.clone().unwrap_or_default();
        return Ok(Some(Dispatch::Ready {
            ready,
            resume_url,
            after_loss: false,
        }));
    }
    data(t, p.d).transpose()
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
