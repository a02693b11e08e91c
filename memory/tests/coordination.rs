//! Replicas coordinating through a real PostgreSQL server: two stores on
//! one database are two replicas.

use std::collections::HashSet;
use std::time::Duration;

use switchboard_memory::{
    Coordination, IngressAccept, PgStore, ReplicaRecord, SqliteStore, Store, StoreError,
};

#[path = "../../tests/src/postgres.rs"]
#[allow(dead_code)]
mod pg;

/// Two replicas on one fresh database.
async fn pair() -> (PgStore, PgStore) {
    let url = pg::Postgres::shared().database();
    let a = PgStore::connect(&url).await.unwrap();
    let b = PgStore::connect(&url).await.unwrap();
    (a, b)
}

fn replica(id: &str) -> ReplicaRecord {
    ReplicaRecord {
        id: id.into(),
        address: format!("http://{id}:8080"),
        version: "test".into(),
        started_at: 1,
        heartbeat_at: 0,
    }
}

fn held(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn coord(s: &PgStore) -> &dyn Coordination {
    s.coordination().expect("PostgreSQL coordinates")
}

async fn accept(s: &PgStore, message: &str) -> i64 {
    match s
        .ingress_accept("telegram", "main", message, "{}", 1)
        .await
        .unwrap()
    {
        IngressAccept::Accepted(id) => id,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_runs_out_or_is_given_up() {
    let (a, b) = pair().await;
    let (ca, cb) = (coord(&a), coord(&b));
    assert!(
        ca.lease_acquire("listener:telegram/main", "a", "t", 60_000)
            .await
            .unwrap()
    );
    assert!(
        !cb.lease_acquire("listener:telegram/main", "b", "t", 60_000)
            .await
            .unwrap()
    );
    // The holder renews it; the other still cannot have it.
    assert!(
        ca.lease_acquire("listener:telegram/main", "a", "t", 60_000)
            .await
            .unwrap()
    );
    assert!(
        !cb.lease_acquire("listener:telegram/main", "b", "t", 60_000)
            .await
            .unwrap()
    );
    let held = ca.leases().await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].name.as_str(), held[0].holder.as_str()),
        ("listener:telegram/main", "a")
    );
    // Given up: the other takes it at once; the old holder's release of a
    // lease it no longer holds changes nothing.
    ca.lease_release("listener:telegram/main", "a", "t")
        .await
        .unwrap();
    assert!(
        cb.lease_acquire("listener:telegram/main", "b", "t", 60_000)
            .await
            .unwrap()
    );
    ca.lease_release("listener:telegram/main", "a", "t")
        .await
        .unwrap();
    assert!(
        !ca.lease_acquire("listener:telegram/main", "a", "t", 60_000)
            .await
            .unwrap()
    );
    // A lease that ran out (renewed for a negative term: its end is past)
    // goes to whoever asks next.
    assert!(
        cb.lease_acquire("listener:telegram/main", "b", "t", -1)
            .await
            .unwrap()
    );
    assert!(
        ca.lease_acquire("listener:telegram/main", "a", "t", 60_000)
            .await
            .unwrap()
    );
    assert_eq!(ca.leases().await.unwrap()[0].holder, "a");
    // A late release of an earlier taking leaves the newer one alone.
    assert!(
        ca.lease_acquire("session:s", "a", "first", 60_000)
            .await
            .unwrap()
    );
    assert!(
        ca.lease_acquire("session:s", "a", "second", 60_000)
            .await
            .unwrap()
    );
    ca.lease_release("session:s", "a", "first").await.unwrap();
    assert!(
        !cb.lease_acquire("session:s", "b", "t", 60_000)
            .await
            .unwrap()
    );
    ca.lease_release("session:s", "a", "second").await.unwrap();
    assert!(
        cb.lease_acquire("session:s", "b", "t", 60_000)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_heartbeat_does_not_revive_a_lease_the_process_let_go_of() {
    let (a, b) = pair().await;
    let (ca, cb) = (coord(&a), coord(&b));
    // Held in the database, forgotten by the process (its release failed).
    assert!(
        ca.lease_acquire("listener:slack/main", "a", "t", -1)
            .await
            .unwrap()
    );
    assert!(
        ca.heartbeat(&replica("a"), &[], 60_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        cb.lease_acquire("listener:slack/main", "b", "t", 60_000)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn many_replicas_asking_at_once_give_a_lease_one_holder() {
    let url = pg::Postgres::shared().database();
    let mut stores = Vec::new();
    for _ in 0..6 {
        stores.push(PgStore::connect(&url).await.unwrap());
    }
    for round in 0..20 {
        let name = format!("session:race-{round}");
        let asks = stores.iter().enumerate().map(|(i, s)| {
            let name = name.clone();
            async move {
                coord(s)
                    .lease_acquire(&name, &format!("r{i}"), "t", 60_000)
                    .await
                    .unwrap()
            }
        });
        let got = futures::future::join_all(asks).await;
        assert_eq!(
            got.iter().filter(|g| **g).count(),
            1,
            "round {round}: {got:?}"
        );
    }
}

#[tokio::test]
async fn a_heartbeat_renews_what_is_held_and_tells_what_was_taken_over() {
    let (a, b) = pair().await;
    let (ca, cb) = (coord(&a), coord(&b));
    assert!(
        ca.lease_acquire("listener:telegram/main", "a", "t", 60_000)
            .await
            .unwrap()
    );
    assert!(
        ca.lease_acquire("listener:discord/main", "a", "t", 60_000)
            .await
            .unwrap()
    );
    // a's heartbeat with a term that has already ended: both run out.
    assert_eq!(
        ca.heartbeat(
            &replica("a"),
            &held(&["listener:discord/main", "listener:telegram/main"]),
            -1
        )
        .await
        .unwrap(),
        ["listener:discord/main", "listener:telegram/main"]
    );
    assert!(
        cb.lease_acquire("listener:discord/main", "b", "t", 60_000)
            .await
            .unwrap()
    );
    // a learns at its next beat that it holds only one.
    assert_eq!(
        ca.heartbeat(
            &replica("a"),
            &held(&["listener:discord/main", "listener:telegram/main"]),
            60_000
        )
        .await
        .unwrap(),
        ["listener:telegram/main"]
    );
    cb.heartbeat(&replica("b"), &[], 60_000).await.unwrap();
    let live: Vec<String> = ca
        .replicas(60_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(live, ["a", "b"]);
    assert!(ca.now_ms().await.unwrap() > 1_700_000_000_000);
}

#[tokio::test]
async fn a_dead_replicas_rows_are_taken_over_once_and_a_live_ones_never() {
    let (a, b) = pair().await;
    let (ca, cb) = (coord(&a), coord(&b));
    ca.claim_accepted_as("a", 60_000);
    cb.claim_accepted_as("b", 60_000);
    let mine: Vec<i64> = {
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(accept(&a, &format!("m{i}")).await);
        }
        ids
    };
    // a is alive: b takes nothing of it, even with no grace.
    assert!(
        cb.ingress_take_over("b", 60_000, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // a dies: its last beat's term ends.
    ca.heartbeat(&replica("a"), &[], -1).await.unwrap();
    assert_eq!(
        cb.ingress_take_over("b", 60_000, 3_600_000, 100)
            .await
            .unwrap(),
        mine
    );
    let row = a.ingress_get(mine[1]).await.unwrap().unwrap();
    assert_eq!(row.claimed_by.as_deref(), Some("b"));
    // Now b's: a third replica finds nothing to take.
    assert!(
        ca.ingress_take_over("c", 60_000, 3_600_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // A finished row is never taken.
    b.ingress_finish(mine[0], switchboard_memory::IngressStatus::Done, None, 2)
        .await
        .unwrap();
    cb.heartbeat(&replica("b"), &[], -1).await.unwrap();
    assert_eq!(
        ca.ingress_take_over("a", 60_000, 3_600_000, 100)
            .await
            .unwrap(),
        mine[1..]
    );
}

#[tokio::test]
async fn replicas_taking_over_at_once_split_the_rows_between_them() {
    let url = pg::Postgres::shared().database();
    let dead = PgStore::connect(&url).await.unwrap();
    coord(&dead).claim_accepted_as("dead", 60_000);
    let mut all = HashSet::new();
    for i in 0..200 {
        all.insert(accept(&dead, &format!("m{i}")).await);
    }
    coord(&dead)
        .heartbeat(&replica("dead"), &[], -1)
        .await
        .unwrap();
    let mut takers = Vec::new();
    for _ in 0..4 {
        takers.push(PgStore::connect(&url).await.unwrap());
    }
    let takes = takers.iter().enumerate().map(|(i, s)| async move {
        let mut got = Vec::new();
        loop {
            let ids = coord(s)
                .ingress_take_over(&format!("t{i}"), 60_000, 3_600_000, 7)
                .await
                .unwrap();
            if ids.is_empty() {
                return got;
            }
            got.extend(ids);
        }
    });
    let got = futures::future::join_all(takes).await;
    let mut seen = HashSet::new();
    for ids in &got {
        for id in ids {
            assert!(seen.insert(*id), "row {id} was taken twice");
        }
    }
    assert_eq!(seen, all, "every row was taken");
}

#[tokio::test]
async fn a_replica_that_leaves_hands_its_work_over_at_once() {
    let (a, b) = pair().await;
    let (ca, cb) = (coord(&a), coord(&b));
    ca.claim_accepted_as("a", 60_000);
    ca.heartbeat(&replica("a"), &[], 60_000).await.unwrap();
    assert!(
        ca.lease_acquire("listener:telegram/main", "a", "t", 60_000)
            .await
            .unwrap()
    );
    let row = accept(&a, "m").await;
    ca.replica_leave("a").await.unwrap();
    assert!(ca.replicas(60_000).await.unwrap().is_empty());
    assert!(
        cb.lease_acquire("listener:telegram/main", "b", "t", 60_000)
            .await
            .unwrap()
    );
    // No grace needed: its claims ended when it left.
    assert_eq!(
        cb.ingress_take_over("b", 60_000, 3_600_000, 100)
            .await
            .unwrap(),
        [row]
    );
}

#[tokio::test]
async fn a_notice_reaches_every_listener_and_an_oversized_one_is_refused() {
    let (a, b) = pair().await;
    let mut heard = coord(&b).subscribe("switchboard_events").await.unwrap();
    let mut own = coord(&a).subscribe("switchboard_events").await.unwrap();
    coord(&a)
        .publish("switchboard_events", "héllo")
        .await
        .unwrap();
    coord(&a)
        .publish("other_topic", "not for them")
        .await
        .unwrap();
    coord(&a)
        .publish("switchboard_events", "sentinel")
        .await
        .unwrap();
    for rx in [&mut heard, &mut own] {
        let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap();
        assert_eq!(first.as_deref(), Some("héllo"));
        let second = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap();
        assert_eq!(second.as_deref(), Some("sentinel"));
    }
    let big = "x".repeat(switchboard_memory::MAX_NOTICE + 1);
    let e = coord(&a)
        .publish("switchboard_events", &big)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Corrupt(ref m) if m.contains("bytes")),
        "{e}"
    );
}

#[tokio::test]
async fn only_a_shared_store_coordinates() {
    let sqlite = SqliteStore::in_memory().await.unwrap();
    assert!(sqlite.coordination().is_none());
    let (a, _b) = pair().await;
    let dir = tempfile::tempdir().unwrap();
    let ring = switchboard_memory::crypto::Keyring::create(
        &dir.path().join("keyring"),
        &switchboard_memory::crypto::KekSource::KeyFile(dir.path().join("key")),
    )
    .unwrap();
    let sealed =
        switchboard_memory::SealedStore::new(std::sync::Arc::new(a), std::sync::Arc::new(ring));
    assert!(
        sealed.coordination().is_some(),
        "sealing keeps coordination"
    );
}
