//! The retention part of the store suite: what each prune deletes, and
//! what it must keep.

use super::*;

pub async fn ingress_prune_keeps_pending_and_recent_rows(store: &dyn Store) {
    let mut ids = Vec::new();
    for m in ["done", "failed", "ignored-late", "pending"] {
        let IngressAccept::Accepted(id) = store
            .ingress_accept("slack", "main", m, "{}", 1)
            .await
            .unwrap()
        else {
            panic!("accepted")
        };
        ids.push(id);
    }
    for (id, status, at) in [
        (ids[0], IngressStatus::Done, 10),
        (ids[1], IngressStatus::Failed, 10),
        (ids[2], IngressStatus::Ignored, 30),
    ] {
        store.ingress_finish(id, status, None, at).await.unwrap();
    }
    assert_eq!(store.ingress_prune(20).await.unwrap(), 2);
    assert!(store.ingress_get(ids[0]).await.unwrap().is_none());
    assert!(store.ingress_get(ids[1]).await.unwrap().is_none());
    assert!(
        store.ingress_get(ids[2]).await.unwrap().is_some(),
        "a row finished after the cutoff was pruned"
    );
    assert_eq!(
        store.ingress_prune(i64::MAX).await.unwrap(),
        1,
        "a pending row was pruned"
    );
    let pending = store.ingress_pending().await.unwrap();
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[3]]);
    // Past retention a message is no longer remembered: the same id is
    // taken as new (why ingress is kept for days, not minutes).
    assert!(matches!(
        store
            .ingress_accept("slack", "main", "done", "{}", 40)
            .await
            .unwrap(),
        IngressAccept::Accepted(_)
    ));
}

pub async fn transcript_prune_keeps_recent_entries_and_owed_answers(store: &dyn Store) {
    let s = store.session_open("k", "main", 1).await.unwrap();
    let ids = accept_all(store, &["old", "owed", "new"]).await;
    store
        .commit_turn(turn(&s.session_id, ids[0], "q1", "a1", 10))
        .await
        .unwrap();
    // Answered but not delivered yet: the row stays pending.
    let mut owed = turn(&s.session_id, ids[1], "q2", "a2", 10);
    owed.status = IngressStatus::Pending;
    store.commit_turn(owed).await.unwrap();
    // A gateway note with no message behind it.
    store
        .commit_turn(TurnCommit {
            session_id: s.session_id.clone(),
            entries: vec![TurnEntry {
                role: Role::System,
                content: "summary".into(),
                ingress_id: None,
            }],
            ingress_ids: vec![],
            status: IngressStatus::Done,
            error: None,
            now: 10,
            usage: None,
        })
        .await
        .unwrap();
    store
        .commit_turn(turn(&s.session_id, ids[2], "q3", "a3", 30))
        .await
        .unwrap();
    let contents = async || {
        store
            .transcript(&s.session_id, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.content)
            .collect::<Vec<_>>()
    };

    assert_eq!(store.transcript_prune(20).await.unwrap(), 3);
    assert_eq!(contents().await, ["q2", "a2", "q3", "a3"]);
    assert_eq!(
        store
            .answer_for_ingress(ids[1])
            .await
            .unwrap()
            .map(|e| e.content)
            .as_deref(),
        Some("a2"),
        "the answer still owed was pruned"
    );
    // Once delivered, the owed turn ages out like the others.
    store
        .ingress_finish(ids[1], IngressStatus::Done, None, 40)
        .await
        .unwrap();
    assert_eq!(store.transcript_prune(20).await.unwrap(), 2);
    assert_eq!(contents().await, ["q3", "a3"]);
    assert_eq!(store.transcript_prune(20).await.unwrap(), 0);
    assert!(
        store.session_get("k").await.unwrap().is_some(),
        "the session itself stays"
    );
}

pub async fn usage_prune_deletes_old_turns_only(store: &dyn Store) {
    use switchboard_memory::{TokenCounts, TurnUsage};
    let s = store.session_open("ka", "main", 1).await.unwrap();
    for (tokens, now) in [(100, 5), (200, 50)] {
        store
            .commit_turn(TurnCommit {
                session_id: s.session_id.clone(),
                entries: vec![],
                ingress_ids: vec![],
                status: IngressStatus::Done,
                error: None,
                now,
                usage: Some(TurnUsage {
                    agent: "main".into(),
                    session_key: "ka".into(),
                    tokens: TokenCounts {
                        input_tokens: tokens,
                        output_tokens: 1,
                        cached_tokens: 0,
                        turns: 1,
                        cost_micros: 0,
                    },
                }),
            })
            .await
            .unwrap();
    }
    assert_eq!(store.usage_prune(10).await.unwrap(), 1);
    let left = store.usage_for_session("ka", 0).await.unwrap();
    assert_eq!((left.turns, left.input_tokens), (1, 200));
    assert_eq!(store.usage_for_agent("main", 0).await.unwrap().turns, 1);
    assert_eq!(store.usage_prune(10).await.unwrap(), 0);
}

pub async fn approvals_prune_keeps_pending_and_recent_requests(store: &dyn Store) {
    use switchboard_memory::ApprovalRecord;
    let req = |id: &str, status: &str| ApprovalRecord {
        id: id.into(),
        session_key: "k".into(),
        agent: "main".into(),
        tool: "exec".into(),
        arguments: "{}".into(),
        status: status.into(),
        decided_by: None,
        created_at: 1,
        expires_at: 2,
        decided_at: None,
    };
    // Old and never decided (its turn may still wait), decided long ago,
    // decided lately, and one marked expired with no decision time.
    for (id, status) in [
        ("waiting", "pending"),
        ("early", "pending"),
        ("late", "pending"),
        ("expired", "expired"),
    ] {
        store.approval_insert(req(id, status)).await.unwrap();
    }
    store
        .approval_decide("early", "approved", "cli", 5)
        .await
        .unwrap()
        .unwrap();
    store
        .approval_decide("late", "denied", "cli", 50)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.approvals_prune(20).await.unwrap(), 2);
    let kept = async |id: &str| store.approval_get(id).await.unwrap().is_some();
    assert!(kept("waiting").await, "a pending request was pruned");
    assert!(
        kept("late").await,
        "a request decided after the cutoff was pruned"
    );
    assert!(!kept("early").await);
    assert!(!kept("expired").await);
    assert_eq!(
        store.approvals_prune(i64::MAX).await.unwrap(),
        1,
        "only decided requests go"
    );
    let pending = store.approvals_list(true, 10).await.unwrap();
    assert_eq!(
        pending.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["waiting"]
    );
}
