//! The gateway's HTTP protocol as the tray uses it: following
//! `GET /api/status/stream` (server-sent events `status`, keep-alive
//! comments every 2 s) and asking `POST /api/ui/ticket` for one-time
//! sign-in links.
//!
//! A follower reports [`Observed::NotRunning`] as soon as the stream ends
//! or fails, or when [`IDLE`] passes without a byte (a gateway that went
//! away without closing the connection), then connects again with
//! [`Backoff`].

use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::Error;
use crate::locate::TokenSource;
use crate::model::{Observed, Page, Snapshot};
use crate::sse::SseParser;

/// Without a byte for this long (keep-alives come every 2 s), the gateway
/// is gone.
pub const IDLE: Duration = Duration::from_secs(3);

/// How long connecting may take.
const CONNECT: Duration = Duration::from_secs(2);

/// How long a ticket request may take.
const REQUEST: Duration = Duration::from_secs(10);

/// The first wait before connecting again.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);

/// The longest wait before connecting again.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The waits between attempts to connect: 0.5 s, doubling to 5 s, from the
/// start again after a stream that worked.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        now
    }

    /// Start again from the first wait.
    pub fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// How one connection to the stream ended.
#[derive(Debug)]
enum Ended {
    /// Nothing answers, or it went away.
    Gone,
    /// It answers but will not stream to the tray.
    Refused(String),
}

#[derive(Deserialize)]
struct Ticket {
    ticket: String,
}

/// A client of one gateway.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    http: reqwest::Client,
    url: String,
    token: TokenSource,
}

impl GatewayClient {
    /// A client of the gateway at `url` (no trailing `/`).
    pub fn new(url: String, token: TokenSource) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT)
            .build()
            .map_err(|e| Error::Unreachable {
                url: url.clone(),
                why: format!("cannot set up HTTP: {e}"),
            })?;
        Ok(Self { http, url, token })
    }

    /// The gateway's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A fresh one-time link that signs a browser in and lands on `page`.
    /// The link is a secret until used: never log it.
    pub async fn sign_in_link(&self, page: Page) -> Result<String, Error> {
        let token = self.token.read()?;
        let resp = self
            .http
            .post(format!("{}/api/ui/ticket", self.url))
            .bearer_auth(token)
            .header("x-switchboard-client", "tray")
            .timeout(REQUEST)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(Error::Refused {
                url: self.url.clone(),
                status,
                hint: refusal_hint(status, "/api/ui/ticket"),
            });
        }
        let ticket: Ticket = resp.json().await.map_err(|e| self.unreachable(&e))?;
        Ok(format!(
            "{}/login?ticket={}&next={}",
            self.url,
            ticket.ticket,
            page.path()
        ))
    }

    fn unreachable(&self, e: &reqwest::Error) -> Error {
        let why = if e.is_connect() {
            "it is not running (cannot connect): start it with `switchboard serve`".to_string()
        } else {
            e.to_string()
        };
        Error::Unreachable {
            url: self.url.clone(),
            why,
        }
    }

    /// Follow the status stream until `tx` closes: every snapshot as
    /// [`Observed::Running`], and what the tray sees when the stream ends
    /// or cannot be had, then again after a backoff.
    pub async fn follow(&self, tx: mpsc::Sender<Observed>) {
        let mut backoff = Backoff::default();
        loop {
            let (streamed, ended) = self.follow_once(&tx).await;
            if tx.is_closed() {
                return;
            }
            let observed = match ended {
                Ended::Gone => Observed::NotRunning {
                    url: self.url.clone(),
                },
                Ended::Refused(why) => Observed::Refused {
                    url: self.url.clone(),
                    why,
                },
            };
            if tx.send(observed).await.is_err() {
                return;
            }
            if streamed {
                backoff.reset();
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }

    /// One connection: whether it gave a snapshot, and how it ended.
    async fn follow_once(&self, tx: &mpsc::Sender<Observed>) -> (bool, Ended) {
        // Without a token (its file not written yet), still find out
        // whether anything answers: then the missing token is the news.
        let token = self.token.read();
        let mut request = self
            .http
            .get(format!("{}/api/status/stream", self.url))
            .header("accept", "text/event-stream")
            .header("x-switchboard-client", "tray");
        if let Ok(t) = &token {
            request = request.bearer_auth(t);
        }
        let request = request.send();
        // A gateway that accepts the connection but never answers is gone too.
        let resp = match tokio::time::timeout(REQUEST, request).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) | Err(_) => return (false, Ended::Gone),
        };
        let status = resp.status().as_u16();
        if let Err(e) = token {
            return (false, Ended::Refused(e.to_string()));
        }
        if status != 200 {
            return (
                false,
                Ended::Refused(refusal_hint(status, "/api/status/stream")),
            );
        }
        let mut stream = std::pin::pin!(resp.bytes_stream());
        let mut parser = SseParser::new();
        let mut streamed = false;
        let mut unreadable_logged = false;
        loop {
            let chunk = match tokio::time::timeout(IDLE, stream.next()).await {
                Ok(Some(Ok(bytes))) => bytes,
                // Silence, an error or the end: gone either way.
                Err(_) | Ok(Some(Err(_))) | Ok(None) => return (streamed, Ended::Gone),
            };
            let Ok(events) = parser.push(&chunk) else {
                crate::log("the status stream sent an event too large to read; connecting again");
                return (streamed, Ended::Gone);
            };
            for event in events.into_iter().filter(|e| e.name == "status") {
                match Snapshot::parse(&event.data) {
                    Ok(snapshot) => {
                        streamed = true;
                        if tx.send(Observed::Running(snapshot)).await.is_err() {
                            return (streamed, Ended::Gone);
                        }
                    }
                    Err(e) if !unreadable_logged => {
                        unreadable_logged = true;
                        crate::log(format!(
                            "cannot read a status event ({e}); is the gateway newer than this tray?"
                        ));
                        // Something answers: say so rather than keep an
                        // old view (or "not running").
                        if !streamed {
                            let refused = Observed::Refused {
                                url: self.url.clone(),
                                why: "its status cannot be read: the gateway may be newer than this tray; update switchboard-tray".into(),
                            };
                            if tx.send(refused).await.is_err() {
                                return (streamed, Ended::Gone);
                            }
                        }
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// What a refusal of `path` with HTTP `status` means, and what to do.
fn refusal_hint(status: u16, path: &str) -> String {
    match status {
        401 | 403 => format!(
            "it refused the control token (HTTP {status}): give the tray the gateway's token (SWITCHBOARD_TOKEN, gateway.auth.token in the config passed with --config, or control-token in the data directory passed with --data-dir)"
        ),
        404 => {
            format!("it has no {path} (HTTP 404): the gateway is older than this tray; update it")
        }
        _ => format!("it answered HTTP {status} to {path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_seconds_and_starts_over() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..6).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(500));
    }

    #[test]
    fn refusals_say_what_to_do() {
        assert!(refusal_hint(401, "/api/status/stream").contains("SWITCHBOARD_TOKEN"));
        assert!(refusal_hint(404, "/api/status/stream").contains("update it"));
        assert_eq!(refusal_hint(500, "/x"), "it answered HTTP 500 to /x");
    }
}
