//! Session actors with an in-memory store, an in-process provider whose
//! answers the test releases, and a channel that records replies.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use switchboard_agents::ChatMessage;
use switchboard_channel::ReplyEvent;
use switchboard_memory::{IngressAccept, Store};

use super::{Job, SessionRegistry};
use crate::config::QueueMode;
use crate::testing::{dm, rig};

struct Harness {
    store: Arc<dyn Store>,
    sessions: SessionRegistry,
    calls: mpsc::UnboundedReceiver<Vec<ChatMessage>>,
    permits: Arc<Semaphore>,
    replies: mpsc::UnboundedReceiver<(String, ReplyEvent)>,
}

async fn harness(mode: QueueMode, max_runs: usize, mailbox: usize) -> Harness {
    harness_with_idle(mode, max_runs, mailbox, Duration::from_secs(60)).await
}

async fn harness_with_idle(
    mode: QueueMode,
    max_runs: usize,
    mailbox: usize,
    actor_idle: Duration,
) -> Harness {
    let rig = rig(mode, max_runs, mailbox, actor_idle, 0).await;
    Harness {
        store: rig.store,
        sessions: SessionRegistry::new(rig.ctx),
        calls: rig.calls,
        permits: rig.permits,
        replies: rig.replies,
    }
}

fn job(ingress_id: i64, session: &str, id: &str, text: &str) -> Job {
    let inbound = dm(session, id, text);
    Job {
        resume: None,
        ingress_id,
        inbound,
        agent: "main".into(),
        session_key: format!("s:{session}"),
        claim: None,
        span: tracing::Span::none(),
        queued: None,
    }
}

impl Harness {
    async fn accept(&self, id: &str) -> i64 {
        match self
            .store
            .ingress_accept("test", "a", id, "{}", 0)
            .await
            .unwrap()
        {
            IngressAccept::Accepted(ingress_id) => ingress_id,
            IngressAccept::Duplicate { .. } => panic!("message {id} is not new"),
        }
    }

    async fn send(&self, session: &str, id: &str, text: &str) {
        let job = job(self.accept(id).await, session, id, text);
        self.sessions
            .dispatch(job)
            .map_err(|e| format!("{e:?}"))
            .unwrap();
    }

    /// The next model call's user texts.
    async fn next_call(&mut self) -> Vec<String> {
        let call = tokio::time::timeout(Duration::from_secs(10), self.calls.recv())
            .await
            .expect("a model call")
            .unwrap();
        call.into_iter()
            .filter(|m| m.role == switchboard_agents::MessageRole::User)
            .map(|m| switchboard_agents::untrusted::said(&m.content))
            .collect()
    }

    /// The final reply event of the next reply to finish.
    async fn next_final(&mut self) -> (String, ReplyEvent) {
        loop {
            let (id, ev) = tokio::time::timeout(Duration::from_secs(10), self.replies.recv())
                .await
                .expect("a reply")
                .unwrap();
            if ev.is_final() {
                return (id, ev);
            }
        }
    }

    fn no_call_waiting(&mut self) -> bool {
        self.calls.try_recv().is_err()
    }
}

fn done_text(ev: &ReplyEvent) -> &str {
    match ev {
        ReplyEvent::Done { text, .. } => text,
        other => panic!("expected Done, got {other:?}"),
    }
}

#[tokio::test]
async fn followup_answers_each_message_in_its_own_turn_in_order() {
    let mut h = harness(QueueMode::Followup, 4, 8).await;
    h.send("ann", "1", "first").await;
    assert_eq!(h.next_call().await, ["first"]);
    h.send("ann", "2", "second").await;
    h.permits.add_permits(1);
    let (id, ev) = h.next_final().await;
    assert_eq!((id.as_str(), done_text(&ev)), ("1", "re: first"));
    // The second turn sees the first turn's history.
    assert_eq!(h.next_call().await, ["first", "second"]);
    h.permits.add_permits(1);
    let (id, ev) = h.next_final().await;
    assert_eq!((id.as_str(), done_text(&ev)), ("2", "re: second"));
}

#[tokio::test]
async fn interrupt_cancels_the_running_turn_for_the_newer_message() {
    let mut h = harness(QueueMode::Interrupt, 4, 8).await;
    h.send("bo", "1", "long question").await;
    assert_eq!(h.next_call().await, ["long question"]);
    h.send("bo", "2", "never mind, this instead").await;
    let (id, ev) = h.next_final().await;
    assert_eq!(id, "1");
    assert!(
        done_text(&ev).contains("stopped before finishing"),
        "{ev:?}"
    );
    let call = h.next_call().await;
    assert_eq!(
        call.last().map(String::as_str),
        Some("never mind, this instead")
    );
    h.permits.add_permits(1);
    let (id, ev) = h.next_final().await;
    assert_eq!(
        (id.as_str(), done_text(&ev)),
        ("2", "re: never mind, this instead")
    );
    let s = h.store.session_get("s:bo").await.unwrap().unwrap();
    let t = h.store.transcript(&s.session_id, 10).await.unwrap();
    assert_eq!(
        t.len(),
        4,
        "both turns are in the transcript, consistently: {t:?}"
    );
}

#[tokio::test]
async fn collect_answers_everything_that_arrived_during_a_run_in_one_turn() {
    let mut h = harness(QueueMode::Collect, 4, 8).await;
    h.send("cy", "1", "one").await;
    assert_eq!(h.next_call().await, ["one"]);
    h.send("cy", "2", "two").await;
    h.send("cy", "3", "three").await;
    h.permits.add_permits(1);
    assert_eq!(done_text(&h.next_final().await.1), "re: one");
    assert_eq!(
        h.next_call().await,
        ["one", "two", "three"],
        "one turn for both"
    );
    h.permits.add_permits(1);
    let (id, ev) = h.next_final().await;
    assert_eq!(
        (id.as_str(), done_text(&ev)),
        ("3", "re: three"),
        "one reply, to the last message"
    );
    assert!(h.no_call_waiting());
}

#[tokio::test]
async fn the_global_cap_holds_other_sessions_until_a_run_ends() {
    let mut h = harness(QueueMode::Followup, 1, 8).await;
    h.send("dee", "1", "from dee").await;
    assert_eq!(h.next_call().await, ["from dee"]);
    h.send("eli", "2", "from eli").await;
    // eli's actor waits for the one run slot; releasing dee's answer frees it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h
        .sessions
        .context()
        .runs_waiting
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "eli's turn never waited for a slot"
        );
        tokio::task::yield_now().await;
    }
    assert!(h.no_call_waiting(), "a second run started past the cap");
    assert_eq!(h.sessions.running(), 1);
    h.permits.add_permits(1);
    assert_eq!(h.next_final().await.0, "1");
    assert_eq!(h.next_call().await, ["from eli"]);
    h.permits.add_permits(1);
    assert_eq!(h.next_final().await.0, "2");
}

#[tokio::test]
async fn a_full_session_queue_refuses_with_a_notice() {
    let mut h = harness(QueueMode::Followup, 4, 1).await;
    h.send("fay", "1", "busy work").await;
    assert_eq!(h.next_call().await, ["busy work"]);
    h.send("fay", "2", "queued").await;
    // The actor drains its mailbox into its queue (capacity 1) while it
    // runs; the third message finds both full.
    let mut refused = None;
    for i in 3..6 {
        let id = i.to_string();
        h.send_or_busy("fay", &id, "too many").await;
        if let Ok((rid, ReplyEvent::Notice { text })) = h.replies.try_recv() {
            refused = Some((rid, text));
            break;
        }
    }
    let (_, text) = refused.expect("a refusal notice");
    assert!(text.contains("can't take this one"), "{text}");
}

impl Harness {
    async fn send_or_busy(&self, session: &str, id: &str, text: &str) {
        let job = job(self.accept(id).await, session, id, text);
        if let Err(super::DispatchError::Busy(job)) = self.sessions.dispatch(job) {
            // What the pipeline does with a full mailbox.
            self.sessions
                .context()
                .channels
                .notify(&job.inbound.reply_target(), super::BUSY_NOTICE.into())
                .await;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn an_idle_actor_leaves_memory_and_a_new_message_brings_it_back() {
    let mut h = harness_with_idle(QueueMode::Followup, 4, 8, Duration::from_millis(50)).await;
    h.permits.add_permits(10);
    h.send("gus", "1", "hello").await;
    h.next_final().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.sessions.active() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle actor never left"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.send("gus", "2", "back again").await;
    assert_eq!(h.next_final().await.0, "2");
    assert_eq!(h.next_call().await, ["hello"]);
    assert_eq!(
        h.next_call().await,
        ["hello", "back again"],
        "history survives the actor"
    );
}

#[tokio::test]
async fn a_drain_sends_idle_actors_away_at_once_and_takes_no_more_work() {
    // An hour of idle time: only the drain can make them leave.
    let mut h = harness_with_idle(QueueMode::Followup, 4, 8, Duration::from_secs(3600)).await;
    h.permits.add_permits(10);
    for who in ["ida", "ivo"] {
        h.send(who, who, "hello").await;
        h.next_final().await;
    }
    assert_eq!(h.sessions.active(), 2, "both actors wait, idle");
    // Were they not sent away, the drain would wait out its grace and
    // then for them (idle actors ignore the hard stop): bounded here.
    let drained = tokio::time::timeout(
        Duration::from_secs(30),
        h.sessions.drain(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(
        drained.ok(),
        Some(true),
        "idle actors left within the grace period"
    );
    let late = job(h.accept("late").await, "ida", "late", "too late");
    assert!(matches!(
        h.sessions.dispatch(late),
        Err(super::DispatchError::Closed(_))
    ));
    assert_eq!(
        h.store.ingress_pending().await.unwrap().len(),
        1,
        "the late message stays pending for the next start"
    );
}

#[tokio::test]
async fn drain_lets_the_running_turn_finish_and_leaves_waiting_ones_pending() {
    let mut h = harness(QueueMode::Followup, 4, 8).await;
    h.send("hal", "1", "running").await;
    h.next_call().await;
    h.send("hal", "2", "waiting").await;
    let sessions = h.sessions.clone();
    let drain = tokio::spawn(async move { sessions.drain(Duration::from_secs(30)).await });
    tokio::task::yield_now().await;
    h.permits.add_permits(1);
    assert_eq!(h.next_final().await.0, "1");
    assert!(drain.await.unwrap(), "finished within the grace period");
    let pending = h.store.ingress_pending().await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the waiting message stays for the next start"
    );
    assert_eq!(pending[0].message_id, "2");
}

#[tokio::test]
async fn the_operator_can_cancel_a_running_turn() {
    let mut h = harness(QueueMode::Followup, 4, 8).await;
    h.send("ida", "1", "long job").await;
    assert_eq!(h.next_call().await, ["long job"]);
    assert!(h.sessions.cancel("s:ida"), "a turn was running");
    let (id, ev) = h.next_final().await;
    assert_eq!(id, "1");
    assert!(
        done_text(&ev).contains("stopped before finishing"),
        "{ev:?}"
    );
    assert!(!h.sessions.cancel("s:ida"), "nothing runs any more");
    assert!(!h.sessions.cancel("s:nobody"));
}
