//! The pipeline with an in-memory store, a recording channel and a gated
//! in-process provider.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use switchboard_agents::{ChatMessage, MessageRole};
use switchboard_channel::{ChatKind, Delivery, ReplyEvent, ReplyTarget};
use switchboard_memory::{AllowEntry, IngressStatus, Store};

use super::intake::Intake;
use super::routing::Router;
use super::{Admission, Pipeline};
use crate::audit::Actor;
use crate::config::{AccessRules, DmPolicy, DmScope, GroupPolicy, QueueMode, RateLimitConfig};
use crate::sessions::SessionRegistry;
use crate::testing::{dm, rig};

struct Harness {
    pipeline: Arc<Pipeline>,
    store: Arc<dyn Store>,
    calls: mpsc::UnboundedReceiver<Vec<ChatMessage>>,
    permits: Arc<Semaphore>,
    replies: mpsc::UnboundedReceiver<(String, ReplyEvent)>,
}

fn rules() -> AccessRules {
    AccessRules {
        dm_policy: DmPolicy::Pairing,
        allow_from: vec![],
        group_policy: GroupPolicy::Allowlist,
        groups: vec!["team".into()],
        require_mention: true,
        rate_limit: RateLimitConfig {
            per_minute: 0,
            burst: 0,
        },
        allow_bots: false,
    }
}

async fn harness(rules: AccessRules) -> Harness {
    let rig = rig(QueueMode::Followup, 4, 8, Duration::from_secs(60), 100).await;
    let channels = rig.ctx.channels.clone();
    let approvals = rig.ctx.approvals.clone();
    let audit = rig.audit.clone();
    let sessions = SessionRegistry::new(rig.ctx);
    let router = Router::new(vec![], "main".into(), DmScope::PerChannelPeer);
    let pipeline = Arc::new(Pipeline::new(
        rig.store.clone(),
        channels,
        sessions,
        router,
        vec![(("test".into(), "a".into()), rules)],
        approvals,
        audit,
    ));
    // The task that sends notices, as the supervisor runs it.
    let notices = pipeline.notices().clone();
    tokio::spawn(async move { notices.run(CancellationToken::new()).await });
    Harness {
        pipeline,
        store: rig.store,
        calls: rig.calls,
        permits: rig.permits,
        replies: rig.replies,
    }
}

/// The last notice [`Harness::notices`] waits for.
const SENTINEL: &str = "(sentinel)";

impl Harness {
    /// The notices sent so far (other reply events are passed over): a
    /// sentinel is queued behind them and they are read until it arrives.
    async fn notices(&mut self) -> Vec<(String, String)> {
        let target = ReplyTarget {
            channel: "test".into(),
            account: "a".into(),
            chat_kind: ChatKind::Dm,
            chat_id: "sentinel".into(),
            thread_id: None,
            reply_to: Some("sentinel".into()),
            resume: None,
        };
        self.pipeline.notices().send(&target, SENTINEL.into()).await;
        let mut out = Vec::new();
        loop {
            let (id, ev) = tokio::time::timeout(Duration::from_secs(10), self.replies.recv())
                .await
                .expect("the sentinel notice")
                .unwrap();
            match ev {
                ReplyEvent::Notice { text } if text == SENTINEL => return out,
                ReplyEvent::Notice { text } => out.push((id, text)),
                _ => {}
            }
        }
    }

    async fn answered(&mut self) -> String {
        loop {
            let (_, ev) = tokio::time::timeout(Duration::from_secs(10), self.replies.recv())
                .await
                .expect("reply")
                .unwrap();
            if let ReplyEvent::Done { text, .. } = ev {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn pairing_gives_one_code_and_nothing_reaches_the_model_until_approved() {
    let mut h = harness(rules()).await;
    assert_eq!(
        h.pipeline
            .admit(dm("u1", "1", "secret plans"), None)
            .await
            .unwrap(),
        Admission::Pairing
    );
    let notices = h.notices().await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    let pending = h
        .store
        .pairing_list(Some("test"), crate::clock::now_ms())
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let code = pending[0].code.clone();
    assert!(
        notices[0].1.contains(&code),
        "the reply carries the code: {}",
        notices[0].1
    );
    assert_eq!(pending[0].chat_id, "chat-u1");

    assert_eq!(
        h.pipeline
            .admit(dm("u1", "2", "hello??"), None)
            .await
            .unwrap(),
        Admission::Pairing
    );
    assert!(
        h.notices().await.is_empty(),
        "only one reply per pending code"
    );
    assert!(h.calls.try_recv().is_err(), "nothing reached a model");

    let approved = h
        .pipeline
        .approve_pairing(
            "test",
            &code.to_lowercase(),
            &Actor::new("cli", "127.0.0.1"),
        )
        .await
        .unwrap();
    assert_eq!(approved.map(|r| r.sender_id), Some("u1".into()));
    let recorded: Vec<(String, String, String, String)> = h
        .store
        .audit_all()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.actor, r.source, r.target))
        .collect();
    assert_eq!(
        recorded,
        [
            ("pairing.issued", "chat:test:u1", "chat:test", "test:u1"),
            ("pairing.approved", "cli", "127.0.0.1", "test:u1"),
        ]
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string())),
        "the code issued and approved, with who and from where"
    );
    assert!(
        h.store
            .audit_all()
            .await
            .unwrap()
            .iter()
            .all(|r| !r.detail.contains(&code)),
        "the code itself is not recorded"
    );
    let told = h.notices().await;
    assert_eq!(told.len(), 1);
    assert!(told[0].1.contains("approved"), "{told:?}");
    assert!(h.store.allow_contains("test", "a", "u1").await.unwrap());

    let admitted = h.pipeline.admit(dm("u1", "3", "now?"), None).await.unwrap();
    assert!(
        matches!(admitted, Admission::Queued { ref session_key, .. } if session_key == "agent:main:test:dm:u1"),
        "{admitted:?}"
    );
    assert_eq!(h.answered().await, "re: now?");
    let call = h.calls.recv().await.unwrap();
    let users: Vec<_> = call
        .iter()
        .filter(|m| m.role == MessageRole::User)
        .map(|m| switchboard_agents::untrusted::said(&m.content))
        .collect();
    assert_eq!(
        users,
        ["now?"],
        "messages sent before approval never reach the model"
    );
}

#[tokio::test]
async fn at_most_three_codes_wait_per_account() {
    let mut h = harness(rules()).await;
    for i in 0..4 {
        h.pipeline
            .admit(dm(&format!("s{i}"), &i.to_string(), "hi"), None)
            .await
            .unwrap();
    }
    assert_eq!(h.notices().await.len(), 3);
    assert_eq!(
        h.store
            .pairing_list(None, crate::clock::now_ms())
            .await
            .unwrap()
            .len(),
        3
    );
    let denied = h
        .pipeline
        .deny_pairing(
            "test",
            &h.store
                .pairing_list(None, crate::clock::now_ms())
                .await
                .unwrap()[0]
                .code,
            &Actor::cli(),
        )
        .await
        .unwrap();
    assert!(denied.is_some());
    h.pipeline
        .admit(dm("s3", "4", "hi again"), None)
        .await
        .unwrap();
    assert_eq!(
        h.notices().await.len(),
        1,
        "a freed place gives the next stranger a code"
    );
}

#[tokio::test]
async fn redelivery_is_a_duplicate_and_groups_need_a_mention() {
    let mut r = rules();
    r.dm_policy = DmPolicy::Open;
    let mut h = harness(r).await;
    assert!(matches!(
        h.pipeline.admit(dm("u", "m1", "hi"), None).await.unwrap(),
        Admission::Queued { .. }
    ));
    assert!(matches!(
        h.pipeline.admit(dm("u", "m1", "hi"), None).await.unwrap(),
        Admission::Duplicate { .. }
    ));
    assert_eq!(h.answered().await, "re: hi");

    let mut group = dm("u", "g1", "chatter");
    group.chat_kind = ChatKind::Group;
    group.chat_id = "team".into();
    assert!(matches!(
        h.pipeline.admit(group.clone(), None).await.unwrap(),
        Admission::Ignored { .. }
    ));
    group.message_id = "g2".into();
    group.mentioned = true;
    let admitted = h.pipeline.admit(group.clone(), None).await.unwrap();
    assert!(
        matches!(admitted, Admission::Queued { ref session_key, .. } if session_key == "agent:main:test:group:team"),
        "{admitted:?}"
    );
    group.message_id = "g3".into();
    group.chat_id = "elsewhere".into();
    assert!(matches!(
        h.pipeline.admit(group, None).await.unwrap(),
        Admission::Ignored { .. }
    ));
}

#[tokio::test]
async fn a_chatty_sender_is_told_once_and_others_still_pass() {
    let mut r = rules();
    r.dm_policy = DmPolicy::Open;
    r.rate_limit = RateLimitConfig {
        per_minute: 1,
        burst: 2,
    };
    let mut h = harness(r).await;
    h.permits.add_permits(100);
    for i in 0..2 {
        assert!(matches!(
            h.pipeline
                .admit(dm("loud", &format!("l{i}"), "x"), None)
                .await
                .unwrap(),
            Admission::Queued { .. }
        ));
    }
    assert_eq!(
        h.pipeline.admit(dm("loud", "l2", "x"), None).await.unwrap(),
        Admission::RateLimited
    );
    assert_eq!(
        h.pipeline.admit(dm("loud", "l3", "x"), None).await.unwrap(),
        Admission::RateLimited
    );
    let notices: Vec<_> = h
        .notices()
        .await
        .into_iter()
        .filter(|(_, t)| t.contains("faster than I can take"))
        .collect();
    assert_eq!(notices.len(), 1, "one polite notice per window");
    assert!(matches!(
        h.pipeline
            .admit(dm("quiet", "q0", "x"), None)
            .await
            .unwrap(),
        Admission::Queued { .. }
    ));
    let row = h.store.ingress_get(3).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.error.as_deref()),
        (IngressStatus::Ignored, Some("rate limited"))
    );
}

#[tokio::test]
async fn pending_rows_are_replayed_and_given_up_after_three_attempts() {
    let mut r = rules();
    r.dm_policy = DmPolicy::Open;
    let mut h = harness(r).await;
    let payload = serde_json::json!({ "inbound": dm("u", "p1", "left over") }).to_string();
    h.store
        .ingress_accept("test", "a", "p1", &payload, 0)
        .await
        .unwrap();
    let payload2 = serde_json::json!({ "inbound": dm("v", "p2", "cursed") }).to_string();
    let switchboard_memory::IngressAccept::Accepted(cursed) = h
        .store
        .ingress_accept("test", "a", "p2", &payload2, 0)
        .await
        .unwrap()
    else {
        panic!()
    };
    for _ in 0..3 {
        h.store.ingress_started(cursed, 0).await.unwrap();
    }
    assert_eq!(h.pipeline.replay_pending().await.unwrap(), 1);
    let mut told = 0;
    loop {
        let (_, ev) = tokio::time::timeout(Duration::from_secs(10), h.replies.recv())
            .await
            .unwrap()
            .unwrap();
        match ev {
            ReplyEvent::Notice { text } if text.contains("failed several times") => told += 1,
            ReplyEvent::Done { text, .. } => {
                assert_eq!(text, "re: left over");
                break;
            }
            _ => {}
        }
    }
    // Notices go out on their own task: it may come after the answer.
    told += h
        .notices()
        .await
        .iter()
        .filter(|(_, t)| t.contains("failed several times"))
        .count();
    assert_eq!(
        told, 1,
        "the sender of the given-up message is told, not left waiting"
    );
    let row = h.store.ingress_get(cursed).await.unwrap().unwrap();
    assert_eq!(row.status, IngressStatus::Failed);
}

#[tokio::test]
async fn a_stored_but_undelivered_answer_is_delivered_again_without_the_model() {
    let mut r = rules();
    r.dm_policy = DmPolicy::Open;
    let mut h = harness(r).await;
    let payload = serde_json::json!({ "inbound": dm("u", "p1", "question") }).to_string();
    let switchboard_memory::IngressAccept::Accepted(id) = h
        .store
        .ingress_accept("test", "a", "p1", &payload, 0)
        .await
        .unwrap()
    else {
        panic!()
    };
    let s = h
        .store
        .session_open("agent:main:test:dm:u", "main", 0)
        .await
        .unwrap();
    h.store
        .commit_turn(switchboard_memory::TurnCommit {
            session_id: s.session_id,
            entries: vec![
                switchboard_memory::TurnEntry {
                    role: switchboard_memory::Role::User,
                    content: "question".into(),
                    ingress_id: Some(id),
                },
                switchboard_memory::TurnEntry {
                    role: switchboard_memory::Role::Assistant,
                    content: "stored answer".into(),
                    ingress_id: Some(id),
                },
            ],
            ingress_ids: vec![id],
            status: IngressStatus::Pending,
            error: None,
            now: 1,
            usage: None,
        })
        .await
        .unwrap();
    h.pipeline.replay_pending().await.unwrap();
    assert_eq!(h.answered().await, "stored answer");
    assert!(h.calls.try_recv().is_err(), "the model was not asked again");
    assert_eq!(
        h.store.ingress_get(id).await.unwrap().unwrap().status,
        IngressStatus::Done
    );
}

#[tokio::test]
async fn a_flooding_stranger_is_rate_limited_before_pairing() {
    let mut r = rules();
    r.rate_limit = RateLimitConfig {
        per_minute: 1,
        burst: 2,
    };
    let mut h = harness(r).await;
    let mut admissions = Vec::new();
    for i in 0..10 {
        admissions.push(
            h.pipeline
                .admit(dm("stranger", &format!("s{i}"), "let me in"), None)
                .await
                .unwrap(),
        );
    }
    assert_eq!(admissions[..2], [Admission::Pairing, Admission::Pairing]);
    assert!(
        admissions[2..].iter().all(|a| *a == Admission::RateLimited),
        "{admissions:?}"
    );
    let notices = h.notices().await;
    assert_eq!(
        notices.len(),
        1,
        "one pairing code, nothing else: {notices:?}"
    );
    assert!(notices[0].1.contains("switchboard pairing approve test"));
    for id in 3..=10 {
        let row = h.store.ingress_get(id).await.unwrap().unwrap();
        assert_eq!(
            (row.status, row.error.as_deref()),
            (IngressStatus::Ignored, Some("rate limited")),
            "row {id}"
        );
    }
    // The operator says no; the stranger's flood goes on, and no new code
    // is written or sent while they are over the limit.
    let code = h
        .store
        .pairing_list(Some("test"), crate::clock::now_ms())
        .await
        .unwrap()[0]
        .code
        .clone();
    h.pipeline
        .deny_pairing("test", &code, &Actor::cli())
        .await
        .unwrap();
    assert_eq!(
        h.pipeline
            .admit(dm("stranger", "s10", "please?"), None)
            .await
            .unwrap(),
        Admission::RateLimited
    );
    assert!(h.notices().await.is_empty());
    assert!(
        h.store
            .pairing_list(Some("test"), crate::clock::now_ms())
            .await
            .unwrap()
            .is_empty(),
        "no pairing request was written past the limit"
    );
}

#[tokio::test]
async fn an_approved_sender_over_the_limit_is_told_once() {
    let mut r = rules();
    r.rate_limit = RateLimitConfig {
        per_minute: 1,
        burst: 1,
    };
    let mut h = harness(r).await;
    h.permits.add_permits(100);
    h.store
        .allow_add(AllowEntry {
            channel: "test".into(),
            account: "a".into(),
            sender_id: "known".into(),
            added_at: 0,
            added_by: "test".into(),
        })
        .await
        .unwrap();
    assert!(matches!(
        h.pipeline
            .admit(dm("known", "k0", "x"), None)
            .await
            .unwrap(),
        Admission::Queued { .. }
    ));
    for i in 1..4 {
        assert_eq!(
            h.pipeline
                .admit(dm("known", &format!("k{i}"), "x"), None)
                .await
                .unwrap(),
            Admission::RateLimited
        );
    }
    let told: Vec<_> = h
        .notices()
        .await
        .into_iter()
        .filter(|(_, t)| t.contains("faster than I can take"))
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
}

#[tokio::test]
async fn group_chatter_without_a_mention_is_stored_without_its_text() {
    let mut h = harness(rules()).await;
    let mut chatter = dm("bob", "g1", "my secret plans for friday");
    chatter.chat_kind = ChatKind::Group;
    chatter.chat_id = "team".into();
    assert_eq!(
        h.pipeline.admit(chatter.clone(), None).await.unwrap(),
        Admission::Ignored {
            reason: "group message without a mention"
        }
    );
    let row = h.store.ingress_get(1).await.unwrap().unwrap();
    assert_eq!(row.status, IngressStatus::Ignored);
    assert!(!row.payload.contains("secret"), "{}", row.payload);
    assert!(!row.payload.contains("bob name"), "{}", row.payload);
    // The row still keeps a redelivery from being taken again.
    assert!(matches!(
        h.pipeline.admit(chatter.clone(), None).await.unwrap(),
        Admission::Duplicate { ingress_id: 1, .. }
    ));
    // A message for the assistant is stored whole (it is answered from it).
    let mut asked = chatter;
    asked.message_id = "g2".into();
    asked.mentioned = true;
    asked.text = "@bot my question".into();
    let Admission::Queued { ingress_id, .. } = h.pipeline.admit(asked, None).await.unwrap() else {
        panic!("a mention was not queued")
    };
    let row = h.store.ingress_get(ingress_id).await.unwrap().unwrap();
    assert!(row.payload.contains("my question"), "{}", row.payload);
    assert_eq!(h.answered().await, "re: @bot my question");
}

#[tokio::test]
async fn a_redacted_row_left_pending_is_closed_not_answered() {
    let mut r = rules();
    r.group_policy = GroupPolicy::Open;
    r.require_mention = false;
    let mut h = harness(r).await;
    // Stored without its text under stricter rules; a stop came before it
    // was closed, and the rules changed since.
    let mut m = dm("bob", "g1", "");
    m.chat_kind = ChatKind::Group;
    m.chat_id = "team".into();
    let payload = serde_json::json!({ "inbound": m, "redacted": true }).to_string();
    let switchboard_memory::IngressAccept::Accepted(id) = h
        .store
        .ingress_accept("test", "a", "g1", &payload, 0)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(h.pipeline.replay_pending().await.unwrap(), 0);
    let row = h.store.ingress_get(id).await.unwrap().unwrap();
    assert_eq!(row.status, IngressStatus::Ignored);
    assert!(h.calls.try_recv().is_err(), "nothing reached the model");
}

/// Hand `inbound` to the dispatcher as a listener does; the answer to
/// "is it stored?".
async fn deliver(
    tx: &mpsc::Sender<Delivery>,
    inbound: switchboard_channel::Inbound,
) -> Result<(), String> {
    let (stored, answer) = oneshot::channel();
    tx.send(Delivery { inbound, stored }).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("an answer from the dispatcher")
        .expect("the dispatcher answered")
}

#[tokio::test]
async fn the_dispatcher_confirms_stored_messages_and_a_restarted_one_goes_on() {
    let mut r = rules();
    r.dm_policy = DmPolicy::Open;
    let mut h = harness(r).await;
    h.permits.add_permits(10);
    let (tx, rx) = mpsc::channel(8);
    let intake = Arc::new(Intake::new(h.pipeline.clone(), rx));
    let first = tokio::spawn({
        let intake = intake.clone();
        async move { intake.run(CancellationToken::new()).await }
    });
    deliver(&tx, dm("u", "d1", "one")).await.unwrap();
    assert_eq!(h.answered().await, "re: one");
    // A run that ends (as a panic ends it) leaves the queue to the next.
    first.abort();
    let _ = first.await;
    let (stored, mut answer) = oneshot::channel();
    tx.send(Delivery {
        inbound: dm("u", "d2", "two"),
        stored,
    })
    .await
    .unwrap();
    assert!(answer.try_recv().is_err(), "no dispatcher runs");
    let stop = CancellationToken::new();
    let second = tokio::spawn({
        let intake = intake.clone();
        let stop = stop.clone();
        async move { intake.run(stop).await }
    });
    answer.await.unwrap().unwrap();
    assert_eq!(h.answered().await, "re: two");
    // At shutdown it stops once every listener has let go.
    stop.cancel();
    drop(tx);
    second.await.unwrap().unwrap();
}
