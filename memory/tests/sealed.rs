//! Encryption at rest, tried the way an attacker with the files would.

use std::path::Path;
use std::sync::Arc;

use switchboard_memory::crypto::{KekSource, Keyring};
use switchboard_memory::{
    ApprovalRecord, IngressAccept, MemoryRecord, Role, SealedStore, SqliteStore, Store, StoreError,
    TurnEntry, subject_of,
};

const CANARY: &str = "CANARY-7f3a9c-purple-elephant";

fn source(dir: &Path) -> KekSource {
    KekSource::KeyFile(dir.join("switchboard.key"))
}

async fn sealed(dir: &Path) -> SealedStore {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let inner = SqliteStore::open(&dir.join("data/switchboard.db"))
        .await
        .unwrap();
    let ring_path = dir.join("switchboard.keyring");
    let ring = if ring_path.exists() {
        Keyring::open(&ring_path, &source(dir)).unwrap()
    } else {
        Keyring::create(&ring_path, &source(dir)).unwrap()
    };
    SealedStore::new(Arc::new(inner), Arc::new(ring))
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

/// Write the canary everywhere user content goes, for `sender`.
async fn fill(store: &dyn Store, sender: &str) -> String {
    let subject = subject_of("telegram", sender);
    let key = format!("agent:main:telegram:dm:{sender}");
    let s = store
        .session_open_as(&key, "main", Some(&subject), 1)
        .await
        .unwrap();
    let IngressAccept::Accepted(id) = store
        .ingress_accept_as(
            "telegram",
            "bot",
            &format!("msg-{sender}"),
            &format!("{{\"text\":\"{CANARY} from {sender}\"}}"),
            Some(&subject),
            1,
        )
        .await
        .unwrap()
    else {
        panic!("duplicate")
    };
    for (role, text) in [(Role::User, "asks"), (Role::Assistant, "answers")] {
        store
            .transcript_append(
                &s.session_id,
                TurnEntry {
                    role,
                    content: format!("{CANARY} {text} {sender}"),
                    ingress_id: Some(id),
                },
                2,
            )
            .await
            .unwrap();
    }
    store
        .memory_insert(MemoryRecord {
            id: format!("mem-{sender}"),
            agent: "main".into(),
            owner: subject.clone(),
            text: format!("{CANARY} remembered for {sender}"),
            tags: vec![CANARY.into()],
            vector: None,
            created_at: 3,
        })
        .await
        .unwrap();
    store
        .approval_insert(ApprovalRecord {
            id: format!("ap-{sender}"),
            session_key: key,
            agent: "main".into(),
            tool: "exec".into(),
            arguments: format!("{{\"command\":\"echo {CANARY}\"}}"),
            status: "pending".into(),
            decided_by: None,
            created_at: 4,
            expires_at: 5,
            decided_at: None,
        })
        .await
        .unwrap();
    s.session_id
}

#[tokio::test]
async fn no_user_content_is_left_in_plain_text_in_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = sealed(dir.path()).await;
    let session = fill(&store, "1").await;
    store.secret_set("bot_token", CANARY, 5).await.unwrap();
    // Everything reads back.
    let t = store.transcript(&session, 10).await.unwrap();
    assert!(t[0].content.starts_with(CANARY));
    assert_eq!(
        store.secret_get("bot_token").await.unwrap().as_deref(),
        Some(CANARY)
    );
    assert!(
        store.ingress_pending().await.unwrap()[0]
            .payload
            .contains(CANARY)
    );
    assert!(
        store
            .approval_get("ap-1")
            .await
            .unwrap()
            .unwrap()
            .arguments
            .contains(CANARY)
    );
    // While open (the WAL holds the writes) and after closing.
    assert_eq!(files_containing(dir.path(), CANARY), Vec::<String>::new());
    store.close().await;
    assert_eq!(files_containing(dir.path(), CANARY), Vec::<String>::new());
}

#[tokio::test]
async fn a_ciphertext_copied_into_another_row_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let store = sealed(dir.path()).await;
    let a = fill(&store, "1").await;
    let b = fill(&store, "2").await;
    store.close().await;
    // The attacker, with write access to the database file, moves a's
    // ciphertexts into b's rows.
    let raw = SqliteStore::open(&dir.path().join("data/switchboard.db"))
        .await
        .unwrap();
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("data/switchboard.db").display()
    ))
    .await
    .unwrap();
    sqlx::query(
        "UPDATE transcript SET content = (SELECT content FROM transcript WHERE session_id = ?1 LIMIT 1) \
         WHERE session_id = ?2",
    )
    .bind(&a)
    .bind(&b)
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE ingress SET payload = (SELECT payload FROM ingress WHERE message_id = 'msg-1') \
         WHERE message_id = 'msg-2'",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("UPDATE secrets SET value = 'x'")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    raw.close().await;
    let store = sealed(dir.path()).await;
    assert!(
        store.transcript(&a, 10).await.is_ok(),
        "a's own rows still open"
    );
    let moved = store.transcript(&b, 10).await.unwrap_err();
    assert!(matches!(moved, StoreError::Crypto { .. }), "{moved}");
    assert!(moved.to_string().contains("transcript.content"), "{moved}");
    let moved = store.ingress_pending().await.unwrap_err();
    assert!(matches!(moved, StoreError::Crypto { .. }), "{moved}");
}

#[tokio::test]
async fn reencryption_keeps_every_record_readable_under_new_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = sealed(dir.path()).await;
    let s1 = fill(&store, "1").await;
    let s2 = fill(&store, "2").await;
    store.secret_set("api", "k-value", 1).await.unwrap();
    let old: Vec<String> = store
        .cells(switchboard_memory::Column::TranscriptContent, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.value)
        .collect();
    store.keyring().begin_reencrypt().unwrap();
    let mut seen = Vec::new();
    let n = store
        .seal_all(false, &mut |c, done| seen.push((c, done)))
        .await
        .unwrap();
    assert!(n >= 10, "{n} values re-sealed");
    assert!(!seen.is_empty(), "progress was reported");
    store.keyring().finish_reencrypt().unwrap();
    store.close().await;
    let store = sealed(dir.path()).await;
    assert!(!store.keyring().reencrypting());
    for (s, sender) in [(&s1, "1"), (&s2, "2")] {
        let t = store.transcript(s, 10).await.unwrap();
        assert_eq!(t[1].content, format!("{CANARY} answers {sender}"));
    }
    assert_eq!(
        store.secret_get("api").await.unwrap().as_deref(),
        Some("k-value")
    );
    assert_eq!(store.memory_list(None, None).await.unwrap().len(), 2);
    let new: Vec<String> = store
        .cells(switchboard_memory::Column::TranscriptContent, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.value)
        .collect();
    for (o, n) in old.iter().zip(&new) {
        assert_ne!(
            switchboard_memory::crypto::key_id(o),
            switchboard_memory::crypto::key_id(n),
            "every record is under a new key"
        );
    }
}

#[tokio::test]
async fn a_plain_store_is_encrypted_in_place_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/switchboard.db");
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let plain = SqliteStore::open(&db).await.unwrap();
    let s = fill(&plain, "1").await;
    plain.secret_set("tok", CANARY, 1).await.unwrap();
    // Someone once sent text that looks sealed: the upgrade seals it too.
    let lookalike = "sb1:abcdef0123:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    plain.secret_set("lookalike", lookalike, 1).await.unwrap();
    plain.close().await;
    assert!(
        !files_containing(dir.path(), CANARY).is_empty(),
        "the old release stored plain text"
    );
    let store = sealed(dir.path()).await;
    let n = store.seal_all(true, &mut |_, _| {}).await.unwrap();
    assert!(n >= 6, "{n}");
    store.scrub().await.unwrap();
    let t = store.transcript(&s, 10).await.unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].content, format!("{CANARY} asks 1"));
    let m = store.memory_list(None, None).await.unwrap();
    assert_eq!(m[0].tags, vec![CANARY.to_string()], "tags kept");
    assert_eq!(
        store.secret_get("tok").await.unwrap().as_deref(),
        Some(CANARY)
    );
    assert_eq!(
        store.secret_get("lookalike").await.unwrap().as_deref(),
        Some(lookalike)
    );
    // Running it again finds nothing left to do.
    assert_eq!(store.seal_all(true, &mut |_, _| {}).await.unwrap(), 0);
    store.close().await;
    assert_eq!(files_containing(dir.path(), CANARY), Vec::<String>::new());
}

#[tokio::test]
async fn a_forgotten_person_cannot_be_read_even_from_a_copy_made_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = sealed(dir.path()).await;
    let gone = fill(&store, "1").await;
    let kept = fill(&store, "2").await;
    store.close().await;
    let backup = dir.path().join("backup.db");
    std::fs::copy(dir.path().join("data/switchboard.db"), &backup).unwrap();

    let store = sealed(dir.path()).await;
    let report = store.forget("telegram", "1").await.unwrap();
    assert_eq!(report.keys, 1, "{report:?}");
    store.close().await;

    // The backup, opened with today's keyring and key file.
    let old = SqliteStore::open(&backup).await.unwrap();
    let ring = Keyring::open(&dir.path().join("switchboard.keyring"), &source(dir.path())).unwrap();
    let old = SealedStore::new(Arc::new(old), Arc::new(ring));
    let err = old.transcript(&gone, 10).await.unwrap_err();
    assert!(err.to_string().contains("does not hold"), "{err}");
    assert!(old.memory_list(None, Some("telegram:1")).await.is_err());
    assert!(old.approval_get("ap-1").await.is_err());
    // Everyone else is still there in it.
    assert_eq!(old.transcript(&kept, 10).await.unwrap().len(), 2);
    old.close().await;
}

#[tokio::test]
async fn every_person_gets_a_key_of_their_own_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let kid_of = |v: &str| switchboard_memory::crypto::key_id(v).unwrap().to_string();
    let store = sealed(dir.path()).await;
    for (i, who) in ["a", "b", "c"].iter().enumerate() {
        accept(&store, who, i as u32).await;
    }
    store.close().await;
    let store = sealed(dir.path()).await;
    accept(&store, "a", 10).await;
    accept(&store, "d", 11).await;
    let cells = store
        .cells(switchboard_memory::Column::IngressPayload, None, 100)
        .await
        .unwrap();
    let by: std::collections::HashMap<String, Vec<String>> =
        cells.iter().fold(Default::default(), |mut m, c| {
            m.entry(c.subject.clone().unwrap())
                .or_default()
                .push(kid_of(&c.value));
            m
        });
    assert_eq!(
        by["telegram:a"][0], by["telegram:a"][1],
        "a keeps their key after a restart"
    );
    let mut firsts: Vec<&String> = by.values().map(|k| &k[0]).collect();
    firsts.sort();
    firsts.dedup();
    assert_eq!(firsts.len(), 4, "four people, four keys: {by:?}");
}

async fn accept(store: &dyn Store, sender: &str, n: u32) {
    store
        .ingress_accept_as(
            "telegram",
            "bot",
            &format!("{sender}-{n}"),
            "hello",
            Some(&subject_of("telegram", sender)),
            1,
        )
        .await
        .unwrap();
}
