//! The Socket Mode connection: a WebSocket (tokio-tungstenite, rustls on
//! ring) to the URL `apps.connections.open` hands out.
//!
//! Why not slack-morphism's Socket Mode listener: it logs a refused app
//! token or a failed connection and retries forever without telling its
//! caller, so health could not say what is wrong; and it awaits the event
//! callback inside its read loop. Here envelopes go through a bounded,
//! ordered queue to the adapter, and each is acknowledged on its own
//! connection only once the gateway stored its message — an envelope not
//! acknowledged (a crash, a dropped socket) is delivered again by Slack,
//! and the gateway's deduplication answers it once. When the queue is
//! full the loop stops reading the socket (it holds the one envelope that
//! did not fit) but keeps sending acknowledgements and pings, so nothing
//! read is dropped and Slack keeps what was not read; the dead-connection
//! watchdog does not count the pause as silence. slack-morphism makes the
//! `apps.connections.open` call.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use switchboard_channel::websocket::{self, Socket, backoff};
use switchboard_channel::{ChannelError, ChannelStatus};

use crate::api::Api;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// What an envelope carries, for the adapter.
#[derive(Debug)]
pub enum Payload {
    /// An `events_api` envelope: an Events API body.
    Events(serde_json::Value),
    /// A `slash_commands` envelope: the command's fields.
    Command(serde_json::Value),
}

/// One envelope, with the way to acknowledge it on the connection it came
/// on (gone when that connection is: Slack then delivers it again).
#[derive(Debug)]
pub struct Received {
    /// What came.
    pub payload: Payload,
    /// The envelope's id.
    pub envelope_id: String,
    /// Send `envelope_id` here once the message is stored. Bounded; the
    /// connection drains it even while it does not read the socket.
    pub ack: mpsc::Sender<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    envelope_id: Option<String>,
    #[serde(default)]
    payload: serde_json::Value,
    #[serde(default)]
    reason: Option<String>,
}

/// One Socket Mode text frame as the connection reads it: its type, its
/// envelope id and its payload. For the fuzz targets.
#[doc(hidden)]
pub fn read_frame(
    text: &str,
) -> Result<(String, Option<String>, serde_json::Value), serde_json::Error> {
    serde_json::from_str::<Message>(text).map(|m| (m.kind, m.envelope_id, m.payload))
}

/// How one connection ended.
enum Next {
    Stop,
    Reconnect(Duration),
}

/// What one text frame from Slack asks of the connection.
enum Step {
    /// Nothing more to do.
    Nothing,
    /// Hand this envelope to the adapter.
    Queue(Payload, String),
    /// Acknowledge this envelope now (a kind the adapter does not use).
    Ack(String),
    /// Close the socket and end the connection so.
    End(Next),
}

/// One account's Socket Mode connection.
pub struct SocketMode<'a> {
    /// The Web API (for `apps.connections.open`).
    pub api: &'a Api,
    /// The account, for logs and errors.
    pub account: &'a str,
    /// Health.
    pub status: &'a ChannelStatus,
    /// Gateway shutdown.
    pub shutdown: &'a CancellationToken,
    /// Where envelopes go, in order. Bounded: when it is full the socket
    /// is not read until the adapter takes one.
    pub events: mpsc::Sender<Received>,
    /// How often to ping; two intervals without a word from Slack mean
    /// the connection is dead.
    pub ping_interval: Duration,
}

async fn close(ws: &mut Socket) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
}

/// Tell Slack envelope `id` was handled.
async fn acknowledge(
    ws: &mut Socket,
    id: &str,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let body = serde_json::json!({"envelope_id": id}).to_string();
    ws.send(Frame::text(body)).await
}

impl SocketMode<'_> {
    /// Stay connected until shutdown; `Err` only for what retrying cannot
    /// fix (a refused app token).
    pub async fn run(&self) -> Result<(), ChannelError> {
        let mut failures = 0u32;
        loop {
            let wait = match self.connection(&mut failures).await? {
                Next::Stop => return Ok(()),
                Next::Reconnect(wait) => wait,
            };
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// A connection failed: say so and wait longer each time.
    fn lost(&self, failures: &mut u32, what: String) -> Next {
        *failures += 1;
        let wait = backoff(*failures);
        let what = format!("Socket Mode: {what}; reconnecting in {} s", wait.as_secs());
        tracing::warn!(account = %self.account, "{what}");
        self.status.problem(what);
        self.status.state("reconnecting");
        Next::Reconnect(wait)
    }

    async fn connection(&self, failures: &mut u32) -> Result<Next, ChannelError> {
        self.status.state("connecting");
        let url = match self.api.connections_open().await {
            Ok(url) => url,
            Err(e) if e.is_auth() => {
                return Err(ChannelError::Config(format!(
                    "Slack refused the app-level token of account `{}` ({}): make one with the connections:write scope under Basic Information → App-Level Tokens and set app_token",
                    self.account,
                    e.code.as_deref().unwrap_or("refused")
                )));
            }
            Err(e) => return Ok(self.lost(failures, e.to_string())),
        };
        // The URL holds a one-time ticket: the error does not show it.
        let mut ws = match websocket::connect(&url, CONNECT_TIMEOUT).await {
            Ok(ws) => ws,
            Err(e) => return Ok(self.lost(failures, e)),
        };
        // At most one acknowledgement per envelope handed out on this
        // connection is outstanding, and the loop drains them: the bound
        // of the envelope queue bounds this one too.
        let (ack, mut acks) = mpsc::channel::<String>(self.events.max_capacity().max(1));
        // The envelope the full queue could not take yet: while it waits,
        // the socket is not read.
        let mut waiting: Option<Received> = None;
        let mut last_heard = Instant::now();
        let mut ping =
            tokio::time::interval_at(Instant::now() + self.ping_interval, self.ping_interval);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    close(&mut ws).await;
                    return Ok(Next::Stop);
                }
                Some(id) = acks.recv() => {
                    if let Err(e) = acknowledge(&mut ws, &id).await {
                        return Ok(self.lost(failures, format!("cannot acknowledge an envelope: {e}")));
                    }
                }
                permit = self.events.reserve(), if waiting.is_some() => {
                    let Ok(permit) = permit else {
                        close(&mut ws).await;
                        return Ok(Next::Stop);
                    };
                    if let Some(received) = waiting.take() {
                        permit.send(received);
                    }
                    // Reading again: the quiet was ours, not Slack's.
                    last_heard = Instant::now();
                    tracing::debug!(account = %self.account, "Socket Mode: the envelope queue has room; reading again");
                }
                _ = ping.tick() => {
                    if waiting.is_none() && last_heard.elapsed() >= self.ping_interval * 2 {
                        self.status.watchdog_restart();
                        let what = format!(
                            "Socket Mode: nothing heard from Slack for {} s: the connection is dead; reconnecting",
                            last_heard.elapsed().as_secs()
                        );
                        tracing::warn!(account = %self.account, "{what}");
                        self.status.problem(what);
                        close(&mut ws).await;
                        return Ok(Next::Reconnect(Duration::ZERO));
                    }
                    if let Err(e) = ws.send(Frame::Ping(Vec::new().into())).await {
                        return Ok(self.lost(failures, format!("cannot ping: {e}")));
                    }
                }
                frame = ws.next(), if waiting.is_none() => {
                    last_heard = Instant::now();
                    let text = match frame {
                        Some(Ok(Frame::Text(t))) => t,
                        Some(Ok(Frame::Close(frame))) => {
                            let why = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                            return Ok(self.lost(failures, format!("Slack closed the connection {why}").trim_end().to_string()));
                        }
                        Some(Ok(_)) => {
                            self.status.contact();
                            continue;
                        }
                        Some(Err(e)) => return Ok(self.lost(failures, format!("connection dropped: {e}"))),
                        None => return Ok(self.lost(failures, "connection closed".into())),
                    };
                    match self.step(&text, failures) {
                        Step::Nothing => {}
                        Step::Ack(id) => {
                            if let Err(e) = acknowledge(&mut ws, &id).await {
                                return Ok(self.lost(failures, format!("cannot acknowledge an envelope: {e}")));
                            }
                        }
                        Step::Queue(payload, envelope_id) => {
                            let received = Received { payload, envelope_id, ack: ack.clone() };
                            match self.events.try_send(received) {
                                Ok(()) => {}
                                Err(TrySendError::Full(received)) => {
                                    tracing::debug!(account = %self.account, "Socket Mode: the envelope queue is full; not reading until the gateway stored one");
                                    waiting = Some(received);
                                }
                                Err(TrySendError::Closed(_)) => {
                                    close(&mut ws).await;
                                    return Ok(Next::Stop);
                                }
                            }
                        }
                        Step::End(next) => {
                            close(&mut ws).await;
                            return Ok(next);
                        }
                    }
                }
            }
        }
    }

    /// What the text frame `text` asks for.
    fn step(&self, text: &str, failures: &mut u32) -> Step {
        let message = match serde_json::from_str::<Message>(text) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(account = %self.account, error = %e, "unreadable Socket Mode message");
                return Step::Nothing;
            }
        };
        match message.kind.as_str() {
            "hello" => {
                *failures = 0;
                self.status.contact();
                self.status.state("connected");
                tracing::info!(account = %self.account, "Socket Mode connected");
                Step::Nothing
            }
            "disconnect" => {
                let reason = message.reason.unwrap_or_default();
                tracing::info!(account = %self.account, reason, "Slack asked to reconnect");
                if reason == "link_disabled" {
                    *failures += 1;
                    let what = "Socket Mode is turned off for this Slack app: turn it on under Settings → Socket Mode".to_string();
                    self.status.problem(what.clone());
                    tracing::warn!(account = %self.account, "{what}");
                    return Step::End(Next::Reconnect(
                        backoff(*failures).max(Duration::from_secs(5)),
                    ));
                }
                self.status.state("reconnecting");
                Step::End(Next::Reconnect(Duration::ZERO))
            }
            kind => {
                self.status.event();
                let Some(envelope_id) = message.envelope_id else {
                    return Step::Nothing;
                };
                match kind {
                    "events_api" => Step::Queue(Payload::Events(message.payload), envelope_id),
                    "slash_commands" => Step::Queue(Payload::Command(message.payload), envelope_id),
                    // Buttons and other interactivity are not used:
                    // acknowledged so Slack stops asking.
                    _ => Step::Ack(envelope_id),
                }
            }
        }
    }
}
