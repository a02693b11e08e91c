//! The SQLite store's own behaviour: batches are all or nothing.

use futures::FutureExt;

use super::*;

const TWO_SESSIONS: &str = "INSERT INTO sessions (key, session_id, agent, created_at, updated_at, last_active_at) VALUES (?, ?, 'main', 1, 1, 1);\
     INSERT INTO sessions (key, session_id, agent, created_at, updated_at, last_active_at) VALUES (?, ?, 'main', 1, 1, 1);";

async fn keys(store: &SqliteStore) -> Vec<String> {
    store
        .sessions_list(100)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect()
}

#[tokio::test]
async fn a_failing_statement_takes_back_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    // The second insert repeats the first's session id (UNIQUE).
    let failed = store
        .transact(TWO_SESSIONS, |q| {
            q.bind("a").bind("s1").bind("b").bind("s1")
        })
        .await;
    assert!(failed.is_err());
    assert!(keys(&store).await.is_empty(), "the first insert was kept");
    // The writer is usable afterwards: no transaction was left open.
    store
        .transact(TWO_SESSIONS, |q| {
            q.bind("a").bind("s1").bind("b").bind("s2")
        })
        .await
        .unwrap();
    assert_eq!(keys(&store).await.len(), 2);
}

#[tokio::test]
async fn a_batch_dropped_half_way_leaves_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    for round in 0..20 {
        let (k1, k2) = (format!("a{round}"), format!("b{round}"));
        let (s1, s2) = (format!("s{round}a"), format!("s{round}b"));
        // Polled once (the batch is on its way to the writer), then
        // dropped.
        let dropped = store
            .transact(TWO_SESSIONS, |q| q.bind(&k1).bind(&s1).bind(&k2).bind(&s2))
            .now_or_never();
        assert!(dropped.is_none() || matches!(dropped, Some(Ok(()))));
        let after = format!("c{round}");
        let sid = format!("s{round}c");
        store
            .transact(
                "INSERT INTO sessions (key, session_id, agent, created_at, updated_at, last_active_at) VALUES (?, ?, 'main', 1, 1, 1);",
                |q| q.bind(&after).bind(&sid),
            )
            .await
            .unwrap();
        let keys = keys(&store).await;
        assert_eq!(
            keys.contains(&k1),
            keys.contains(&k2),
            "half a batch was kept: {keys:?}"
        );
        assert!(keys.contains(&after));
    }
}
