//! The chain against each kind of tampering, and the handle over an
//! in-memory store: appends from two writers, pruning behind a
//! checkpoint, the sandbox policy recorded once per change.

use std::sync::Arc;

use serde_json::json;
use switchboard_memory::{AuditRecord, SqliteStore, Store};

use super::chain::{self, AuditKey, Why, verify};
use super::{Actor, Audit, AuditError, action};

const DAY: i64 = 86_400_000;

/// A signed chain of `n` records, one a day from day 1.
fn signed(key: &AuditKey, n: i64) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    for seq in 1..=n {
        let mut r = AuditRecord {
            seq,
            at: seq * DAY,
            actor: "cli".into(),
            action: "pairing.approved".into(),
            target: format!("telegram:{seq}"),
            source: "127.0.0.1".into(),
            detail: json!({ "account": "default" }).to_string(),
            prev: out.last().map_or(String::new(), |p| p.mac.clone()),
            mac: String::new(),
        };
        r.mac = chain::record_mac(key, &r);
        out.push(r);
    }
    out
}

#[test]
fn an_untouched_chain_verifies() {
    let key = AuditKey::random();
    assert_eq!(verify(&signed(&key, 5), None, &key), Ok(5));
    assert_eq!(verify(&[], None, &key), Ok(0));
}

#[test]
fn a_changed_field_is_named() {
    let key = AuditKey::random();
    let changes: [fn(&mut AuditRecord); 4] = [
        |r| r.detail = json!({ "account": "other" }).to_string(),
        |r| r.actor = "api".into(),
        |r| r.at += 1,
        |r| r.prev = "00".into(),
    ];
    for change in changes {
        let mut log = signed(&key, 5);
        change(&mut log[2]);
        let broken = verify(&log, None, &key).unwrap_err();
        assert_eq!((broken.seq, broken.why.clone()), (3, Why::Changed));
        let text = broken.to_string();
        assert!(
            text.starts_with("record 3 (pairing.approved at 1970-01-04T00:00:00Z) was changed"),
            "{text}"
        );
    }
}

#[test]
fn a_removed_record_is_named_as_the_gap() {
    let key = AuditKey::random();
    let mut log = signed(&key, 5);
    log.remove(2);
    let broken = verify(&log, None, &key).unwrap_err();
    assert_eq!(
        (broken.seq, broken.why.clone()),
        (3, Why::Removed { through: 3 })
    );
    assert!(
        broken.to_string().contains("record 3 was removed"),
        "{broken}"
    );

    let mut log = signed(&key, 5);
    log.drain(0..2);
    let broken = verify(&log, None, &key).unwrap_err();
    assert_eq!((broken.seq, broken.why), (1, Why::Removed { through: 2 }));
}

#[test]
fn a_removed_record_with_the_rest_renumbered_is_found_out_of_place() {
    let key = AuditKey::random();
    let mut log = signed(&key, 5);
    log.remove(2);
    for r in &mut log[2..] {
        r.seq -= 1;
    }
    let broken = verify(&log, None, &key).unwrap_err();
    assert_eq!((broken.seq, broken.why), (3, Why::Moved { signed_as: 4 }));
}

#[test]
fn reordered_records_are_found_out_of_place() {
    let key = AuditKey::random();
    let mut log = signed(&key, 5);
    // Rows swap places: each keeps its content under the other's seq.
    let (a, b) = (log[1].seq, log[2].seq);
    log[1].seq = b;
    log[2].seq = a;
    log.swap(1, 2);
    let broken = verify(&log, None, &key).unwrap_err();
    assert_eq!((broken.seq, broken.why), (2, Why::Moved { signed_as: 3 }));
}

#[test]
fn a_genuine_record_after_a_replaced_one_is_unlinked() {
    let key = AuditKey::random();
    let mut log = signed(&key, 4);
    // Record 2 replaced by one signed with the key but after another record.
    let mut other = log[1].clone();
    other.prev = "ff".into();
    other.mac = chain::record_mac(&key, &other);
    log[1] = other;
    let broken = verify(&log, None, &key).unwrap_err();
    assert_eq!((broken.seq, broken.why), (2, Why::Unlinked));
}

#[test]
fn another_key_verifies_nothing() {
    let key = AuditKey::random();
    let broken = verify(&signed(&key, 3), None, &AuditKey::random()).unwrap_err();
    assert_eq!((broken.seq, broken.why), (1, Why::Changed));
}

#[test]
fn a_checkpoint_continues_the_chain_and_a_forged_one_is_named() {
    let key = AuditKey::random();
    let log = signed(&key, 6);
    let cp = chain::checkpoint(&key, &log[2], 10 * DAY);
    assert_eq!(verify(&log[3..], Some(&cp), &key), Ok(3));
    let broken = verify(&log[4..], Some(&cp), &key).unwrap_err();
    assert_eq!((broken.seq, broken.why), (4, Why::Removed { through: 4 }));
    let forged = chain::checkpoint(&AuditKey::random(), &log[3], 10 * DAY);
    let broken = verify(&log[4..], Some(&forged), &key).unwrap_err();
    assert_eq!((broken.seq, broken.why), (4, Why::Checkpoint));
    let broken = verify(&log[2..], Some(&cp), &key).unwrap_err();
    assert_eq!((broken.seq, broken.why), (3, Why::Misplaced));
}

async fn store() -> Arc<dyn Store> {
    Arc::new(SqliteStore::in_memory().await.unwrap())
}

#[tokio::test]
async fn two_writers_on_one_store_keep_one_chain() {
    let store = store().await;
    let key = AuditKey::random();
    // Two handles: two processes (the gateway and the CLI) as the store sees them.
    let a = Arc::new(Audit::new(store.clone(), key.clone()));
    let b = Arc::new(Audit::new(store.clone(), key));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let audit = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            audit
                .try_record(
                    &Actor::cli(),
                    action::SECRET_SET,
                    &format!("s{i}"),
                    json!({}),
                )
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let v = a.verify().await.unwrap();
    assert_eq!((v.records, v.broken), (10, None));
    let listed = a.list(0, 3).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![10, 9, 8]
    );
    assert_eq!(listed[0].actor, "cli");
    assert_eq!(listed[0].source, "cli");
}

#[tokio::test]
async fn pruning_leaves_a_chain_that_still_verifies() {
    let store = store().await;
    let audit = Audit::new(store.clone(), AuditKey::random());
    for day in 1..=5 {
        audit
            .append_at(day * DAY, &Actor::gateway(), "forget", "x", &json!({}))
            .await
            .unwrap();
    }
    assert_eq!(audit.prune(3 * DAY + 1, 6 * DAY).await.unwrap(), 3);
    let v = audit.verify().await.unwrap();
    assert_eq!(v.broken, None, "{}", v.summary());
    assert_eq!(v.records, 2);
    assert_eq!(v.checkpoint.as_ref().map(|c| c.seq), Some(3));
    assert_eq!(
        v.summary(),
        "chain intact: 2 records (from the checkpoint at record 3)"
    );
    // Everything pruned, then the chain goes on from the checkpoint.
    assert_eq!(audit.prune(10 * DAY, 10 * DAY).await.unwrap(), 2);
    let seq = audit
        .append_at(11 * DAY, &Actor::gateway(), "forget", "y", &json!({}))
        .await
        .unwrap();
    assert_eq!(seq, 6);
    let v = audit.verify().await.unwrap();
    assert_eq!((v.records, v.broken), (1, None));
    assert_eq!(
        audit.prune(DAY, 12 * DAY).await.unwrap(),
        0,
        "nothing that old"
    );
}

#[tokio::test]
async fn a_broken_chain_is_not_pruned() {
    let store = store().await;
    let audit = Audit::new(store.clone(), AuditKey::random());
    for day in 1..=3 {
        audit
            .append_at(day * DAY, &Actor::cli(), "secret.set", "x", &json!({}))
            .await
            .unwrap();
    }
    let other = Audit::new(store.clone(), AuditKey::random());
    other
        .append_at(4 * DAY, &Actor::cli(), "secret.set", "forged", &json!({}))
        .await
        .unwrap();
    assert!(matches!(
        audit.prune(10 * DAY, 10 * DAY).await,
        Err(AuditError::Broken(b)) if b.seq == 4
    ));
    assert_eq!(
        store.audit_all().await.unwrap().len(),
        4,
        "the evidence stays"
    );
}

#[tokio::test]
async fn the_sandbox_policy_is_recorded_when_it_changes_without_env_values() {
    let store = store().await;
    let audit = Audit::new(store.clone(), AuditKey::random());
    let mut settings = switchboard_sandbox::SandboxSettings::default();
    settings
        .env
        .insert("API_TOKEN".into(), "hunter2-value".into());
    audit.sandbox_policy(&settings).await;
    audit.sandbox_policy(&settings).await;
    assert_eq!(store.audit_all().await.unwrap().len(), 1, "unchanged: once");
    settings.network = "bridge".into();
    audit.sandbox_policy(&settings).await;
    let all = store.audit_all().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].action, "sandbox.policy");
    assert!(all[1].detail.contains("\"bridge\""), "{}", all[1].detail);
    assert!(all[1].detail.contains("API_TOKEN"));
    assert!(
        !all[1].detail.contains("hunter2"),
        "an env value was recorded"
    );
}
