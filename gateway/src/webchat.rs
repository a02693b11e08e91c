//! The built-in web chat channel: messages come from the gateway's own HTTP
//! API (`/v1/chat/completions`, `/api/ws`), and replies go back to the
//! requests that wait for them.
//!
//! Each message id being answered has one *flight*: the requests waiting for
//! its reply — any number of them, since a client that repeats a request
//! with the same idempotency key waits beside the first — and what the reply
//! said so far, so a request that joins late still sees the whole answer. A
//! flight ends with the reply's final event, when its reply is dropped
//! unfinished, or when nobody waits and no reply is open. Waiters never take
//! each other's place. This module knows nothing of HTTP or of the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::mpsc;

use switchboard_channel::{
    Channel, ChannelContext, ChannelError, ReplyEvent, ReplySink, ReplyTarget,
};

use crate::clock::now_ms;

/// The channel name.
pub const NAME: &str = "webchat";
/// Its only account.
pub const ACCOUNT: &str = "default";

/// Events a waiter may hold unread before the reply waits for it.
const WAITER_BUFFER: usize = 256;

/// One message's reply and who waits for it.
#[derive(Debug)]
struct Flight {
    /// Tells this flight from a later one of the same message id.
    id: u64,
    /// When it began, ms since the epoch.
    started_ms: i64,
    waiters: Vec<(u64, mpsc::Sender<ReplyEvent>)>,
    /// Replies (sinks) open on it.
    replies: usize,
    /// Whether the reply said it is working.
    working: bool,
    /// The answer's text so far.
    text: String,
}

#[derive(Debug, Default)]
struct Flights {
    by_message: HashMap<String, Flight>,
    next_id: u64,
}

impl Flights {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The flight of `message_id`, begun now if there is none; and whether
    /// it was there before.
    fn open(&mut self, message_id: &str) -> (&mut Flight, bool) {
        let fresh = self.next_id();
        let mut existed = true;
        let flight = self
            .by_message
            .entry(message_id.to_string())
            .or_insert_with(|| {
                existed = false;
                Flight {
                    id: fresh,
                    started_ms: now_ms(),
                    waiters: Vec::new(),
                    replies: 0,
                    working: false,
                    text: String::new(),
                }
            });
        (flight, existed)
    }

    /// The flight `id` of `message_id`, if it still runs.
    fn get(&mut self, message_id: &str, id: u64) -> Option<&mut Flight> {
        self.by_message.get_mut(message_id).filter(|f| f.id == id)
    }

    fn end(&mut self, message_id: &str, id: u64) {
        if self.get(message_id, id).is_some() {
            self.by_message.remove(message_id);
        }
    }
}

type Shared = Arc<Mutex<Flights>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Flights> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The web chat channel.
#[derive(Debug, Default)]
pub struct WebChat {
    flights: Shared,
}

/// A request waiting for the reply to its message; stops waiting on drop.
#[derive(Debug)]
pub struct ReplyWaiter {
    /// Reply events, in order, ending with a final one. A waiter that joined
    /// a reply under way first gets what it said so far (`Working`, then
    /// one `Delta` with the text so far). The events end without a final
    /// one when the flight ended unanswered (see [`ReplyWaiter::abandon`])
    /// or its reply was dropped (a shutdown).
    pub events: mpsc::Receiver<ReplyEvent>,
    message_id: String,
    flight: u64,
    id: u64,
    joined: bool,
    started_ms: i64,
    flights: Shared,
}

impl ReplyWaiter {
    /// Whether the flight was there before: another request waits for the
    /// same message, or its reply is under way.
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// When the flight began, ms since the epoch.
    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    /// The message will not be answered through this flight (it was
    /// refused, or answered already): unless a reply is open, end the
    /// flight, so every other waiter's events end and it looks elsewhere.
    pub fn abandon(self) {
        let mut flights = lock(&self.flights);
        if flights
            .get(&self.message_id, self.flight)
            .is_some_and(|f| f.replies == 0)
        {
            flights.end(&self.message_id, self.flight);
        }
    }
}

impl Drop for ReplyWaiter {
    fn drop(&mut self) {
        let mut flights = lock(&self.flights);
        let Some(flight) = flights.get(&self.message_id, self.flight) else {
            return;
        };
        flight.waiters.retain(|(id, _)| *id != self.id);
        if flight.waiters.is_empty() && flight.replies == 0 {
            flights.end(&self.message_id, self.flight);
        }
    }
}

impl WebChat {
    /// A web chat with nobody waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wait for the reply to `message_id` (register before admitting it).
    /// Joins the flight of that message when there is one.
    pub fn wait_for(&self, message_id: &str) -> ReplyWaiter {
        let (tx, rx) = mpsc::channel(WAITER_BUFFER);
        let mut flights = lock(&self.flights);
        let id = flights.next_id();
        let (flight, joined) = flights.open(message_id);
        // A fresh channel has room for the two events of the catch-up.
        if flight.working {
            let _ = tx.try_send(ReplyEvent::Working);
        }
        if !flight.text.is_empty() {
            let _ = tx.try_send(ReplyEvent::Delta {
                text: flight.text.clone(),
            });
        }
        flight.waiters.push((id, tx));
        ReplyWaiter {
            events: rx,
            message_id: message_id.to_string(),
            flight: flight.id,
            id,
            joined,
            started_ms: flight.started_ms,
            flights: self.flights.clone(),
        }
    }

    /// Messages with a flight (for tests and metrics).
    pub fn in_flight(&self) -> usize {
        lock(&self.flights).by_message.len()
    }
}

/// A reply to one message: every event goes to each of its waiters.
struct FlightSink {
    flights: Shared,
    /// The message and its flight; `None` once the reply ended (or when
    /// the target named no message).
    flight: Option<(String, u64)>,
}

#[async_trait]
impl ReplySink for FlightSink {
    async fn send(&mut self, event: ReplyEvent) -> Result<(), ChannelError> {
        let Some((message_id, id)) = self.flight.clone() else {
            return Ok(());
        };
        let last = event.is_final();
        {
            let mut flights = lock(&self.flights);
            let Some(flight) = flights.get(&message_id, id) else {
                self.flight = None;
                return Ok(());
            };
            // Recorded and fanned out under one lock: a waiter joining now
            // gets this event either in its catch-up or from here, not both.
            match &event {
                ReplyEvent::Working => flight.working = true,
                ReplyEvent::Delta { text } => flight.text.push_str(text),
                _ => {}
            }
            // Never waited on: a client that stopped reading (its buffer
            // full) or went away is let go, and the turn goes on; the
            // answer is stored for a repeat of the request.
            flight
                .waiters
                .retain(|(_, tx)| tx.try_send(event.clone()).is_ok());
            if last {
                flights.end(&message_id, id);
                self.flight = None;
            }
        }
        Ok(())
    }
}

impl Drop for FlightSink {
    fn drop(&mut self) {
        let Some((message_id, id)) = self.flight.take() else {
            return;
        };
        let mut flights = lock(&self.flights);
        if let Some(flight) = flights.get(&message_id, id) {
            flight.replies = flight.replies.saturating_sub(1);
            // Dropped unfinished (a shutdown): nobody is answered through
            // this flight any more, so its waiters are let go.
            if flight.replies == 0 {
                flights.end(&message_id, id);
            }
        }
    }
}

#[async_trait]
impl Channel for WebChat {
    fn name(&self) -> &str {
        NAME
    }

    fn account(&self) -> &str {
        ACCOUNT
    }

    fn reply_per_message(&self) -> bool {
        true
    }

    async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError> {
        // Messages arrive through the HTTP server; nothing to poll.
        ctx.shutdown.cancelled().await;
        Ok(())
    }

    async fn open_reply(&self, target: &ReplyTarget) -> Result<Box<dyn ReplySink>, ChannelError> {
        // The reply opens the flight when nobody waits yet, so a request
        // that comes later (a repeat) still sees all of it.
        let flight = target.reply_to.as_ref().map(|message_id| {
            let mut flights = lock(&self.flights);
            let (flight, _) = flights.open(message_id);
            flight.replies += 1;
            (message_id.clone(), flight.id)
        });
        Ok(Box::new(FlightSink {
            flights: self.flights.clone(),
            flight,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(message_id: &str) -> ReplyTarget {
        ReplyTarget {
            channel: NAME.into(),
            account: ACCOUNT.into(),
            chat_kind: switchboard_channel::ChatKind::Dm,
            chat_id: "u".into(),
            thread_id: None,
            reply_to: Some(message_id.into()),
            resume: None,
        }
    }

    fn delta(text: &str) -> ReplyEvent {
        ReplyEvent::Delta { text: text.into() }
    }

    fn done(text: &str) -> ReplyEvent {
        ReplyEvent::Done {
            text: text.into(),
            usage: None,
        }
    }

    #[tokio::test]
    async fn two_waiters_of_one_message_both_get_the_reply() {
        let chat = WebChat::new();
        let mut first = chat.wait_for("k");
        let mut second = chat.wait_for("k");
        assert!(!first.joined());
        assert!(second.joined());
        let mut sink = chat.open_reply(&target("k")).await.unwrap();
        sink.send(delta("he")).await.unwrap();
        sink.send(done("he")).await.unwrap();
        for w in [&mut first, &mut second] {
            assert_eq!(w.events.recv().await, Some(delta("he")));
            assert_eq!(w.events.recv().await, Some(done("he")));
            assert_eq!(w.events.recv().await, None, "the flight ended");
        }
        assert_eq!(chat.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_leaves_does_not_end_the_others_wait() {
        let chat = WebChat::new();
        let first = chat.wait_for("k");
        let mut second = chat.wait_for("k");
        drop(first);
        let mut sink = chat.open_reply(&target("k")).await.unwrap();
        sink.send(done("answer")).await.unwrap();
        assert_eq!(second.events.recv().await, Some(done("answer")));
    }

    #[tokio::test]
    async fn a_late_waiter_catches_up_on_the_reply_so_far() {
        let chat = WebChat::new();
        let mut sink = chat.open_reply(&target("k")).await.unwrap();
        sink.send(ReplyEvent::Working).await.unwrap();
        sink.send(delta("hel")).await.unwrap();
        sink.send(delta("lo")).await.unwrap();
        let mut late = chat.wait_for("k");
        assert!(late.joined(), "the reply under way is its flight");
        sink.send(delta("!")).await.unwrap();
        sink.send(done("hello!")).await.unwrap();
        assert_eq!(late.events.recv().await, Some(ReplyEvent::Working));
        assert_eq!(late.events.recv().await, Some(delta("hello")));
        assert_eq!(late.events.recv().await, Some(delta("!")));
        assert_eq!(late.events.recv().await, Some(done("hello!")));
    }

    #[tokio::test]
    async fn an_abandoned_flight_lets_its_waiters_go_unless_a_reply_is_open() {
        let chat = WebChat::new();
        let first = chat.wait_for("k");
        let mut second = chat.wait_for("k");
        first.abandon();
        assert_eq!(second.events.recv().await, None);
        drop(second);

        let first = chat.wait_for("k");
        let mut second = chat.wait_for("k");
        let mut sink = chat.open_reply(&target("k")).await.unwrap();
        first.abandon();
        sink.send(done("still")).await.unwrap();
        assert_eq!(second.events.recv().await, Some(done("still")));
    }

    #[tokio::test]
    async fn a_reply_dropped_unfinished_lets_its_waiters_go() {
        let chat = WebChat::new();
        let mut waiter = chat.wait_for("k");
        let sink = chat.open_reply(&target("k")).await.unwrap();
        drop(sink);
        assert_eq!(waiter.events.recv().await, None);
        drop(waiter);
        assert_eq!(chat.in_flight(), 0);
    }
}
