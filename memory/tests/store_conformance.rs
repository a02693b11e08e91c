//! One store conformance suite, run against every backend.
//!
//! `store_suite!(name, constructor)` expands the suite into a module of tests
//! for one backend. A PostgreSQL backend adds one more invocation.

use switchboard_memory::{
    AllowEntry, IngressAccept, IngressStatus, PairingRequest, Role, SqliteStore, Store, TurnCommit,
    TurnEntry,
};

#[path = "store_conformance/retention.rs"]
mod retention;
use retention::*;
#[path = "store_conformance/privacy.rs"]
mod privacy;
use privacy::*;
#[path = "store_conformance/audit.rs"]
mod audit;
#[path = "../../tests/src/postgres.rs"]
#[allow(dead_code)]
mod pg;
use audit::*;

const HOUR: i64 = 3_600_000;

/// Accept one webchat message per name; their row ids, in order.
async fn accept_all(store: &dyn Store, names: &[&str]) -> Vec<i64> {
    let mut ids = Vec::new();
    for m in names {
        let IngressAccept::Accepted(id) = store
            .ingress_accept("webchat", "default", m, "{}", 1)
            .await
            .unwrap()
        else {
            panic!("{m} was not accepted")
        };
        ids.push(id);
    }
    ids
}

fn pairing(channel: &str, sender: &str, code: &str, now: i64) -> PairingRequest {
    PairingRequest {
        channel: channel.into(),
        account: "default".into(),
        sender_id: sender.into(),
        sender_name: Some(format!("{sender} name")),
        chat_id: sender.into(),
        code: code.into(),
        created_at: now,
        expires_at: now + HOUR,
    }
}

fn turn(session_id: &str, ingress: i64, user: &str, answer: &str, now: i64) -> TurnCommit {
    TurnCommit {
        session_id: session_id.into(),
        entries: vec![
            TurnEntry {
                role: Role::User,
                content: user.into(),
                ingress_id: Some(ingress),
            },
            TurnEntry {
                role: Role::Assistant,
                content: answer.into(),
                ingress_id: Some(ingress),
            },
        ],
        ingress_ids: vec![ingress],
        status: IngressStatus::Done,
        error: None,
        now,
        usage: None,
    }
}

pub async fn sessions_open_is_idempotent(store: &dyn Store) {
    let a = store
        .session_open("agent:main:webchat:dm:ann", "main", 10)
        .await
        .unwrap();
    let b = store
        .session_open("agent:main:webchat:dm:ann", "main", 20)
        .await
        .unwrap();
    assert_eq!(
        a.session_id, b.session_id,
        "opening twice must not start a new generation"
    );
    assert_eq!(b.created_at, 10);
    let other = store
        .session_open("agent:main:webchat:dm:bob", "main", 30)
        .await
        .unwrap();
    assert_ne!(a.session_id, other.session_id);
    let listed = store.sessions_list(10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].key, "agent:main:webchat:dm:bob",
        "most recent first"
    );
}

pub async fn reset_starts_an_empty_generation(store: &dyn Store) {
    let s = store.session_open("k", "main", 1).await.unwrap();
    let IngressAccept::Accepted(id) = store
        .ingress_accept("webchat", "default", "m1", "{}", 1)
        .await
        .unwrap()
    else {
        panic!("first offer must be accepted")
    };
    store
        .commit_turn(turn(&s.session_id, id, "hi", "hello", 2))
        .await
        .unwrap();
    assert_eq!(store.transcript(&s.session_id, 100).await.unwrap().len(), 2);
    let fresh = store.session_reset("k", "main", 3).await.unwrap();
    assert_ne!(fresh.session_id, s.session_id);
    assert_eq!(fresh.turns, 0);
    assert!(
        store
            .transcript(&fresh.session_id, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // The old generation is kept, not destroyed.
    assert_eq!(store.transcript(&s.session_id, 100).await.unwrap().len(), 2);
}

pub async fn compaction_replaces_the_generation_in_one_step(store: &dyn Store) {
    let old = store.session_open("k:compact", "main", 1).await.unwrap();
    let [id] = accept_all(store, &["c-1"]).await[..] else {
        unreachable!()
    };
    store
        .commit_turn(turn(&old.session_id, id, "hello", "hi", 2))
        .await
        .unwrap();
    let entries = vec![
        TurnEntry {
            role: Role::System,
            content: "Summary: greeted".into(),
            ingress_id: None,
        },
        TurnEntry {
            role: Role::ToolCall,
            content: r#"{"id":"c1","name":"t","arguments":"{}"}"#.into(),
            ingress_id: Some(id),
        },
    ];
    let fresh = store
        .session_compact("k:compact", &old.session_id, entries.clone(), 3)
        .await
        .unwrap()
        .expect("compacted");
    assert_ne!(fresh.session_id, old.session_id);
    assert_eq!(fresh.turns, 0);
    let t = store.transcript(&fresh.session_id, 10).await.unwrap();
    let roles: Vec<Role> = t.iter().map(|e| e.role).collect();
    assert_eq!(roles, [Role::System, Role::ToolCall]);
    assert_eq!(t[1].ingress_id, Some(id));
    // The old generation is left as it was.
    assert_eq!(
        store.transcript(&old.session_id, 10).await.unwrap().len(),
        2
    );
    // A compaction of a generation that is no longer current (the
    // session was reset meanwhile) writes nothing.
    let reset = store.session_reset("k:compact", "main", 4).await.unwrap();
    assert!(
        store
            .session_compact("k:compact", &fresh.session_id, entries, 5)
            .await
            .unwrap()
            .is_none()
    );
    let now = store.session_get("k:compact").await.unwrap().unwrap();
    assert_eq!(now.session_id, reset.session_id);
    assert!(
        store
            .transcript(&reset.session_id, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_deleted_session_is_gone_with_its_transcript(store: &dyn Store) {
    assert!(!store.session_delete("k:none").await.unwrap());
    let s = store.session_open("k:delete", "main", 1).await.unwrap();
    let [id] = accept_all(store, &["d-1"]).await[..] else {
        unreachable!()
    };
    store
        .commit_turn(turn(&s.session_id, id, "secret", "ok", 2))
        .await
        .unwrap();
    assert!(store.session_delete("k:delete").await.unwrap());
    assert!(store.session_get("k:delete").await.unwrap().is_none());
    assert!(
        store
            .transcript(&s.session_id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Opened again, it is a new session.
    let again = store.session_open("k:delete", "main", 3).await.unwrap();
    assert_ne!(again.session_id, s.session_id);
}

pub async fn transcript_keeps_order_and_limits_to_latest(store: &dyn Store) {
    let s = store.session_open("k", "main", 1).await.unwrap();
    for i in 0..5 {
        let IngressAccept::Accepted(id) = store
            .ingress_accept("webchat", "default", &format!("m{i}"), "{}", i)
            .await
            .unwrap()
        else {
            panic!("accepted")
        };
        store
            .commit_turn(turn(
                &s.session_id,
                id,
                &format!("q{i}"),
                &format!("a{i}"),
                10 + i,
            ))
            .await
            .unwrap();
    }
    let all = store.transcript(&s.session_id, 100).await.unwrap();
    let texts: Vec<_> = all.iter().map(|e| e.content.as_str()).collect();
    assert_eq!(
        texts,
        ["q0", "a0", "q1", "a1", "q2", "a2", "q3", "a3", "q4", "a4"]
    );
    assert_eq!(all[0].role, Role::User);
    assert_eq!(all[1].role, Role::Assistant);
    let last = store.transcript(&s.session_id, 3).await.unwrap();
    let texts: Vec<_> = last.iter().map(|e| e.content.as_str()).collect();
    assert_eq!(
        texts,
        ["a3", "q4", "a4"],
        "the latest entries, oldest first"
    );
    assert_eq!(store.session_get("k").await.unwrap().unwrap().turns, 5);
}

pub async fn ingress_deduplicates(store: &dyn Store) {
    let first = store
        .ingress_accept("telegram", "bot", "77", "{\"a\":1}", 1)
        .await
        .unwrap();
    let IngressAccept::Accepted(id) = first else {
        panic!("first offer must be accepted")
    };
    let again = store
        .ingress_accept("telegram", "bot", "77", "{\"a\":2}", 2)
        .await
        .unwrap();
    assert_eq!(
        again,
        IngressAccept::Duplicate {
            id,
            status: IngressStatus::Pending
        }
    );
    // The same message id on another account or channel is another message.
    assert!(matches!(
        store
            .ingress_accept("telegram", "other", "77", "{}", 3)
            .await
            .unwrap(),
        IngressAccept::Accepted(_)
    ));
    assert!(matches!(
        store
            .ingress_accept("discord", "bot", "77", "{}", 3)
            .await
            .unwrap(),
        IngressAccept::Accepted(_)
    ));
    store
        .ingress_finish(id, IngressStatus::Done, None, 4)
        .await
        .unwrap();
    let later = store
        .ingress_accept("telegram", "bot", "77", "{}", 5)
        .await
        .unwrap();
    assert_eq!(
        later,
        IngressAccept::Duplicate {
            id,
            status: IngressStatus::Done
        }
    );
    let row = store.ingress_get(id).await.unwrap().unwrap();
    assert_eq!(
        row.payload, "{\"a\":1}",
        "a duplicate must not overwrite the accepted message"
    );
}

pub async fn ingress_pending_is_what_is_unfinished(store: &dyn Store) {
    let mut ids = Vec::new();
    for i in 0..4 {
        let IngressAccept::Accepted(id) = store
            .ingress_accept("webchat", "default", &format!("m{i}"), "{}", i)
            .await
            .unwrap()
        else {
            panic!("accepted")
        };
        ids.push(id);
    }
    store.ingress_started(ids[0], 5).await.unwrap();
    store
        .ingress_finish(ids[1], IngressStatus::Done, None, 5)
        .await
        .unwrap();
    store
        .ingress_finish(ids[2], IngressStatus::Ignored, Some("policy"), 5)
        .await
        .unwrap();
    let pending = store.ingress_pending().await.unwrap();
    let got: Vec<_> = pending.iter().map(|r| r.id).collect();
    assert_eq!(
        got,
        [ids[0], ids[3]],
        "oldest first, finished rows excluded"
    );
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(
        store.ingress_prune(6).await.unwrap(),
        2,
        "only finished rows are pruned"
    );
    assert_eq!(store.ingress_pending().await.unwrap().len(), 2);
}

pub async fn commit_turn_marks_ingress(store: &dyn Store) {
    let s = store.session_open("k", "main", 1).await.unwrap();
    let IngressAccept::Accepted(id) = store
        .ingress_accept("webchat", "default", "x", "{}", 1)
        .await
        .unwrap()
    else {
        panic!("accepted")
    };
    let mut failed = turn(&s.session_id, id, "q", "a", 2);
    failed.entries.truncate(1);
    failed.status = IngressStatus::Failed;
    failed.error = Some("provider down".into());
    store.commit_turn(failed).await.unwrap();
    let row = store.ingress_get(id).await.unwrap().unwrap();
    assert_eq!(row.status, IngressStatus::Failed);
    assert_eq!(row.error.as_deref(), Some("provider down"));
    assert!(store.ingress_pending().await.unwrap().is_empty());
    let entries = store.transcript(&s.session_id, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].ingress_id, Some(id));
}

pub async fn answer_for_ingress_finds_the_reply_of_a_collected_message(store: &dyn Store) {
    let s = store.session_open("k", "main", 1).await.unwrap();
    let ids = accept_all(store, &["m1", "m2", "m3"]).await;
    assert_eq!(store.answer_for_ingress(ids[0]).await.unwrap(), None);
    // m1 and m2 answered together; the answer hangs off the first one.
    store
        .commit_turn(TurnCommit {
            session_id: s.session_id.clone(),
            entries: vec![
                TurnEntry {
                    role: Role::User,
                    content: "one".into(),
                    ingress_id: Some(ids[0]),
                },
                TurnEntry {
                    role: Role::User,
                    content: "two".into(),
                    ingress_id: Some(ids[1]),
                },
                TurnEntry {
                    role: Role::Assistant,
                    content: "both".into(),
                    ingress_id: Some(ids[0]),
                },
            ],
            ingress_ids: vec![ids[0], ids[1]],
            status: IngressStatus::Pending,
            error: None,
            now: 2,
            usage: None,
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .answer_for_ingress(ids[0])
            .await
            .unwrap()
            .unwrap()
            .content,
        "both"
    );
    assert_eq!(
        store
            .answer_for_ingress(ids[1])
            .await
            .unwrap()
            .unwrap()
            .content,
        "both"
    );
    assert_eq!(store.answer_for_ingress(ids[2]).await.unwrap(), None);
    assert_eq!(
        store.ingress_pending().await.unwrap().len(),
        3,
        "pending until delivered"
    );
    // m3's turn stored its message and stopped; a later message's turn
    // answered. That answer is not m3's.
    store
        .transcript_append(
            &s.session_id,
            TurnEntry {
                role: Role::User,
                content: "three".into(),
                ingress_id: Some(ids[2]),
            },
            3,
        )
        .await
        .unwrap();
    let [m4] = accept_all(store, &["m4"]).await[..] else {
        unreachable!()
    };
    store
        .commit_turn(turn(&s.session_id, m4, "four", "answer to four", 4))
        .await
        .unwrap();
    assert_eq!(store.answer_for_ingress(ids[2]).await.unwrap(), None);
    assert_eq!(
        store.answer_for_ingress(m4).await.unwrap().unwrap().content,
        "answer to four"
    );
}

pub async fn usage_is_summed_per_session_and_agent(store: &dyn Store) {
    use switchboard_memory::{TokenCounts, TurnUsage};
    let a = store.session_open("ka", "main", 1).await.unwrap();
    let b = store.session_open("kb", "other", 1).await.unwrap();
    let c = |sid: &str, key: &str, agent: &str, i: i64, o: i64, now: i64| TurnCommit {
        session_id: sid.into(),
        entries: vec![],
        ingress_ids: vec![],
        status: IngressStatus::Done,
        error: None,
        now,
        usage: Some(TurnUsage {
            agent: agent.into(),
            session_key: key.into(),
            tokens: TokenCounts {
                input_tokens: i,
                output_tokens: o,
                cached_tokens: i / 2,
                turns: 1,
                cost_micros: i * 37,
            },
        }),
    };
    store
        .commit_turn(c(&a.session_id, "ka", "main", 100, 10, 5))
        .await
        .unwrap();
    store
        .commit_turn(c(&a.session_id, "ka", "main", 200, 20, 50))
        .await
        .unwrap();
    store
        .commit_turn(c(&b.session_id, "kb", "other", 7, 3, 50))
        .await
        .unwrap();
    let s = store.usage_for_session("ka", 0).await.unwrap();
    assert_eq!(
        s,
        TokenCounts {
            input_tokens: 300,
            output_tokens: 30,
            cached_tokens: 150,
            turns: 2,
            cost_micros: 11_100,
        },
        "cost is stored with each turn and summed like the tokens"
    );
    assert_eq!(
        store.usage_for_agent("main", 10).await.unwrap().cost_micros,
        7_400,
        "since excludes the cost of older turns"
    );
    assert_eq!(
        store.usage_for_agent("main", 10).await.unwrap().total(),
        220,
        "since excludes older turns"
    );
    assert_eq!(
        store.usage_for_agent("nobody", 0).await.unwrap(),
        TokenCounts::default()
    );
    let by = store.usage_by_agent(0).await.unwrap();
    assert_eq!(
        by.iter()
            .map(|(a, t)| (a.as_str(), t.turns, t.cost_micros))
            .collect::<Vec<_>>(),
        [("main", 2, 11_100), ("other", 1, 259)]
    );
}

pub async fn approvals_are_decided_once_with_who_decided(store: &dyn Store) {
    use switchboard_memory::ApprovalRecord;
    let req = |id: &str, at: i64| ApprovalRecord {
        id: id.into(),
        session_key: "k".into(),
        agent: "main".into(),
        tool: "exec".into(),
        arguments: "{\"cmd\":\"ls\"}".into(),
        status: "pending".into(),
        decided_by: None,
        created_at: at,
        expires_at: at + 300_000,
        decided_at: None,
    };
    store.approval_insert(req("a1", 1)).await.unwrap();
    store.approval_insert(req("a2", 2)).await.unwrap();
    assert_eq!(store.approvals_list(true, 10).await.unwrap().len(), 2);
    let decided = store
        .approval_decide("a1", "approved", "cli", 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            decided.status.as_str(),
            decided.decided_by.as_deref(),
            decided.decided_at
        ),
        ("approved", Some("cli"), Some(5))
    );
    assert!(
        store
            .approval_decide("a1", "denied", "api", 6)
            .await
            .unwrap()
            .is_none(),
        "decided once"
    );
    assert!(
        store
            .approval_decide("zz", "denied", "api", 6)
            .await
            .unwrap()
            .is_none()
    );
    let pending = store.approvals_list(true, 10).await.unwrap();
    assert_eq!(
        pending.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a2"]
    );
    assert_eq!(store.approvals_list(false, 10).await.unwrap().len(), 2);
    assert_eq!(
        store.approval_get("a1").await.unwrap().unwrap().status,
        "approved"
    );
}

pub async fn pairing_approve_allows_sender(store: &dyn Store) {
    store
        .pairing_insert(pairing("telegram", "42", "ABCDEFGH", 0))
        .await
        .unwrap();
    store
        .pairing_insert(pairing("telegram", "43", "JKLMNPQR", 1))
        .await
        .unwrap();
    let listed = store.pairing_list(Some("telegram"), 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        store
            .pairing_list(Some("discord"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .allow_contains("telegram", "default", "42")
            .await
            .unwrap()
    );
    // The code is valid on its own channel only.
    assert!(
        store
            .pairing_approve("discord", "ABCDEFGH", "cli", 10)
            .await
            .unwrap()
            .is_none()
    );
    let approved = store
        .pairing_approve("telegram", "ABCDEFGH", "cli", 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(approved.sender_id, "42");
    assert!(
        store
            .allow_contains("telegram", "default", "42")
            .await
            .unwrap()
    );
    assert!(
        store
            .pairing_approve("telegram", "ABCDEFGH", "cli", 11)
            .await
            .unwrap()
            .is_none(),
        "a code works once"
    );
    let allowed = store.allow_list(None).await.unwrap();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0].added_by, "cli");
    let denied = store
        .pairing_deny("telegram", "JKLMNPQR", 12)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(denied.sender_id, "43");
    assert!(
        !store
            .allow_contains("telegram", "default", "43")
            .await
            .unwrap()
    );
    assert!(store.pairing_list(None, 12).await.unwrap().is_empty());
}

pub async fn pairing_expires(store: &dyn Store) {
    store
        .pairing_insert(pairing("telegram", "42", "ABCDEFGH", 0))
        .await
        .unwrap();
    assert_eq!(store.pairing_list(None, HOUR - 1).await.unwrap().len(), 1);
    assert!(
        store.pairing_list(None, HOUR).await.unwrap().is_empty(),
        "valid for one hour"
    );
    assert!(
        store
            .pairing_approve("telegram", "ABCDEFGH", "cli", HOUR)
            .await
            .unwrap()
            .is_none()
    );
    // A fresh request may replace an expired one; it must not replace a live one.
    store
        .pairing_insert(pairing("telegram", "42", "STUVWXYZ", HOUR + 1))
        .await
        .unwrap();
    store
        .pairing_insert(pairing("telegram", "42", "22223333", HOUR + 2))
        .await
        .unwrap();
    let listed = store.pairing_list(None, HOUR + 3).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].code, "STUVWXYZ");
    assert_eq!(store.pairing_purge_expired(3 * HOUR).await.unwrap(), 1);
}

pub async fn allowlist_add_remove(store: &dyn Store) {
    let entry = AllowEntry {
        channel: "slack".into(),
        account: "team".into(),
        sender_id: "U1".into(),
        added_at: 1,
        added_by: "api".into(),
    };
    store.allow_add(entry.clone()).await.unwrap();
    store.allow_add(entry).await.unwrap();
    assert_eq!(store.allow_list(Some("slack")).await.unwrap().len(), 1);
    assert!(
        !store.allow_contains("slack", "other", "U1").await.unwrap(),
        "allowlists are per account"
    );
    assert!(store.allow_remove("slack", "team", "U1").await.unwrap());
    assert!(!store.allow_remove("slack", "team", "U1").await.unwrap());
    assert!(!store.allow_contains("slack", "team", "U1").await.unwrap());
    store.ping().await.unwrap();
}

macro_rules! store_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            store_suite!(@tests $make;
                sessions_open_is_idempotent,
                reset_starts_an_empty_generation,
                compaction_replaces_the_generation_in_one_step,
                a_deleted_session_is_gone_with_its_transcript,
                transcript_keeps_order_and_limits_to_latest,
                ingress_deduplicates,
                ingress_pending_is_what_is_unfinished,
                commit_turn_marks_ingress,
                answer_for_ingress_finds_the_reply_of_a_collected_message,
                usage_is_summed_per_session_and_agent,
                approvals_are_decided_once_with_who_decided,
                pairing_approve_allows_sender,
                pairing_expires,
                allowlist_add_remove,
                ingress_prune_keeps_pending_and_recent_rows,
                transcript_prune_keeps_recent_entries_and_owed_answers,
                usage_prune_deletes_old_turns_only,
                approvals_prune_keeps_pending_and_recent_requests,
                memories_are_kept_per_agent_and_owner,
                secrets_are_set_listed_and_removed,
                forget_removes_a_person_and_nothing_else,
                a_session_keeps_its_subject,
                audit_records_go_in_at_the_next_seq_only,
                audit_prune_leaves_a_checkpoint_the_chain_goes_on_from,
            );
        }
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, _guard) = $make.await;
                super::$name(&store).await;
            }
        )*
    };
}

async fn sqlite_file() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("switchboard.db"))
        .await
        .unwrap();
    (store, dir)
}

async fn sqlite_memory() -> (SqliteStore, ()) {
    (SqliteStore::in_memory().await.unwrap(), ())
}

async fn sealed_file() -> (switchboard_memory::SealedStore, tempfile::TempDir) {
    use switchboard_memory::crypto::{KekSource, Keyring};
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteStore::open(&dir.path().join("switchboard.db"))
        .await
        .unwrap();
    let ring = Keyring::create(
        &dir.path().join("keyring"),
        &KekSource::KeyFile(dir.path().join("key")),
    )
    .unwrap();
    (
        switchboard_memory::SealedStore::new(std::sync::Arc::new(inner), std::sync::Arc::new(ring)),
        dir,
    )
}

/// A fresh database on the test process's PostgreSQL server.
async fn postgres() -> (switchboard_memory::PgStore, ()) {
    let url = pg::Postgres::shared().database();
    (
        switchboard_memory::PgStore::connect(&url).await.unwrap(),
        (),
    )
}

async fn sealed_postgres() -> (switchboard_memory::SealedStore, tempfile::TempDir) {
    use switchboard_memory::crypto::{KekSource, Keyring};
    let dir = tempfile::tempdir().unwrap();
    let (inner, ()) = postgres().await;
    let ring = Keyring::create(
        &dir.path().join("keyring"),
        &KekSource::KeyFile(dir.path().join("key")),
    )
    .unwrap();
    (
        switchboard_memory::SealedStore::new(std::sync::Arc::new(inner), std::sync::Arc::new(ring)),
        dir,
    )
}

store_suite!(sqlite, sqlite_file());
store_suite!(postgresql, postgres());
store_suite!(sealed_postgresql, sealed_postgres());
store_suite!(sealed_sqlite, sealed_file());
store_suite!(sqlite_in_memory, sqlite_memory());

#[tokio::test]
async fn sqlite_uses_wal_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.journal_mode().await.unwrap(), "wal");
        store.session_open("k", "main", 1).await.unwrap();
        store
            .ingress_accept("webchat", "default", "m", "{}", 1)
            .await
            .unwrap();
        store.close().await;
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(store.session_get("k").await.unwrap().is_some());
    assert_eq!(store.ingress_pending().await.unwrap().len(), 1);
}
