//! The audit part of the store suite: records go in at the next seq only
//! (so two writers cannot both extend the chain from one record), come
//! back as written, and pruning leaves a checkpoint the chain goes on
//! from. The HMACs are the gateway's; here they are stand-ins.

use switchboard_memory::{AuditCheckpoint, AuditRecord, StoreError};

use super::*;

fn record(seq: i64, at: i64) -> AuditRecord {
    AuditRecord {
        seq,
        at,
        actor: "cli".into(),
        action: "allowlist.removed".into(),
        target: format!("telegram:{seq}"),
        source: "127.0.0.1".into(),
        detail: format!("{{\"account\":\"default\",\"n\":{seq}}}"),
        prev: if seq == 1 {
            String::new()
        } else {
            format!("mac{}", seq - 1)
        },
        mac: format!("mac{seq}"),
    }
}

fn checkpoint(seq: i64, at: i64) -> AuditCheckpoint {
    AuditCheckpoint {
        seq,
        mac: format!("mac{seq}"),
        at,
        checkpoint_mac: format!("cp{seq}"),
    }
}

async fn append_through(store: &dyn Store, last: i64) {
    for seq in 1..=last {
        assert_eq!(
            store.audit_append(record(seq, seq * 10)).await.unwrap(),
            seq
        );
    }
}

pub async fn audit_records_go_in_at_the_next_seq_only(store: &dyn Store) {
    assert_eq!(store.audit_last().await.unwrap(), None);
    assert!(matches!(
        store.audit_append(record(2, 10)).await,
        Err(StoreError::Conflict(_))
    ));
    append_through(store, 2).await;
    for seq in [2, 1, 4] {
        assert!(
            matches!(
                store.audit_append(record(seq, 99)).await,
                Err(StoreError::Conflict(_))
            ),
            "record {seq} was taken, or is not the next one"
        );
    }
    assert_eq!(
        store.audit_last().await.unwrap(),
        Some((2, "mac2".to_string()))
    );
    append_through_from(store, 3, 5).await;
    let all = store.audit_all().await.unwrap();
    assert_eq!(
        all,
        (1..=5).map(|s| record(s, s * 10)).collect::<Vec<_>>(),
        "every record comes back as written, in seq order"
    );
    let recent = store.audit_list(30, 2).await.unwrap();
    assert_eq!(
        recent.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![5, 4],
        "newest first, at most the limit"
    );
    let since = store.audit_list(40, 100).await.unwrap();
    assert_eq!(since.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5, 4]);
    assert_eq!(store.audit_checkpoint().await.unwrap(), None);
}

async fn append_through_from(store: &dyn Store, first: i64, last: i64) {
    for seq in first..=last {
        store.audit_append(record(seq, seq * 10)).await.unwrap();
    }
}

pub async fn audit_prune_leaves_a_checkpoint_the_chain_goes_on_from(store: &dyn Store) {
    append_through(store, 5).await;
    let wrong = AuditCheckpoint {
        mac: "not-mac3".into(),
        ..checkpoint(3, 1000)
    };
    assert!(matches!(
        store.audit_prune(wrong).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.audit_all().await.unwrap().len(),
        5,
        "a checkpoint naming another record deletes nothing"
    );
    assert_eq!(store.audit_checkpoint().await.unwrap(), None);

    assert_eq!(store.audit_prune(checkpoint(3, 1000)).await.unwrap(), 3);
    let left: Vec<i64> = store
        .audit_all()
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(left, vec![4, 5]);
    assert_eq!(
        store.audit_checkpoint().await.unwrap(),
        Some(checkpoint(3, 1000))
    );
    assert_eq!(
        store.audit_last().await.unwrap(),
        Some((5, "mac5".to_string()))
    );

    // Everything pruned: the chain goes on from the checkpoint.
    assert_eq!(store.audit_prune(checkpoint(5, 2000)).await.unwrap(), 2);
    assert!(store.audit_all().await.unwrap().is_empty());
    assert_eq!(
        store.audit_checkpoint().await.unwrap(),
        Some(checkpoint(5, 2000)),
        "one checkpoint, the latest"
    );
    assert_eq!(
        store.audit_last().await.unwrap(),
        Some((5, "mac5".to_string()))
    );
    assert!(matches!(
        store.audit_append(record(1, 3000)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.audit_append(record(6, 3000)).await.unwrap(), 6);
    assert_eq!(
        store.audit_last().await.unwrap(),
        Some((6, "mac6".to_string()))
    );
}
