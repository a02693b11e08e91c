//! Long-term memory, secrets, subjects and forgetting a person.

use switchboard_memory::{AllowEntry, MemoryRecord, Role, Store, TurnEntry, subject_of};

fn memory(id: &str, agent: &str, owner: &str, text: &str, at: i64) -> MemoryRecord {
    MemoryRecord {
        id: id.into(),
        agent: agent.into(),
        owner: owner.into(),
        text: text.into(),
        tags: vec!["t1".into()],
        vector: Some(vec![0.5, -1.0]),
        created_at: at,
    }
}

pub async fn memories_are_kept_per_agent_and_owner(store: &dyn Store) {
    store
        .memory_insert(memory("m1", "main", "telegram:1", "likes tea", 1))
        .await
        .unwrap();
    store
        .memory_insert(memory("m2", "main", "telegram:2", "likes coffee", 2))
        .await
        .unwrap();
    store
        .memory_insert(memory("m3", "other", "", "shared fact", 3))
        .await
        .unwrap();
    let one = store
        .memory_list(Some("main"), Some("telegram:1"))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0], memory("m1", "main", "telegram:1", "likes tea", 1));
    assert_eq!(
        store.memory_list(Some("main"), None).await.unwrap().len(),
        2
    );
    assert_eq!(
        store.memory_list(None, Some("")).await.unwrap()[0].text,
        "shared fact"
    );
    assert_eq!(store.memory_list(None, None).await.unwrap().len(), 3);
    assert!(store.memory_delete("m1").await.unwrap());
    assert!(!store.memory_delete("m1").await.unwrap());
    assert!(
        store
            .memory_list(Some("main"), Some("telegram:1"))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn secrets_are_set_listed_and_removed(store: &dyn Store) {
    store.secret_set("bot", "v1", 1).await.unwrap();
    store.secret_set("bot", "v2", 2).await.unwrap();
    store.secret_set("api", "k", 3).await.unwrap();
    assert_eq!(
        store.secret_get("bot").await.unwrap().as_deref(),
        Some("v2")
    );
    let names: Vec<(String, i64)> = store
        .secrets_list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.updated_at))
        .collect();
    assert_eq!(names, vec![("api".to_string(), 3), ("bot".to_string(), 2)]);
    assert!(store.secret_remove("bot").await.unwrap());
    assert!(!store.secret_remove("bot").await.unwrap());
    assert_eq!(store.secret_get("bot").await.unwrap(), None);
}

pub async fn a_session_keeps_its_subject(store: &dyn Store) {
    let s = store
        .session_open_as("agent:main:telegram:dm:1", "main", Some("telegram:1"), 1)
        .await
        .unwrap();
    assert_eq!(s.subject.as_deref(), Some("telegram:1"));
    let reset = store
        .session_reset_as("agent:main:telegram:dm:1", "main", None, 2)
        .await
        .unwrap();
    assert_eq!(
        reset.subject.as_deref(),
        Some("telegram:1"),
        "a reset keeps the subject"
    );
    let legacy = store
        .session_open("agent:main:telegram:dm:2", "main", 1)
        .await
        .unwrap();
    assert_eq!(legacy.subject, None);
    let learned = store
        .session_open_as("agent:main:telegram:dm:2", "main", Some("telegram:2"), 3)
        .await
        .unwrap();
    assert_eq!(learned.subject.as_deref(), Some("telegram:2"));
    assert_eq!(learned.session_id, legacy.session_id);
    let by_id = store
        .session_by_id(&learned.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id.key, "agent:main:telegram:dm:2");
}

async fn person(store: &dyn Store, sender: &str, text: &str) -> (String, i64) {
    let subject = subject_of("telegram", sender);
    let key = format!("agent:main:telegram:dm:{sender}");
    let s = store
        .session_open_as(&key, "main", Some(&subject), 1)
        .await
        .unwrap();
    let switchboard_memory::IngressAccept::Accepted(id) = store
        .ingress_accept_as(
            "telegram",
            "bot",
            &format!("m{sender}"),
            text,
            Some(&subject),
            1,
        )
        .await
        .unwrap()
    else {
        panic!("not accepted")
    };
    store
        .transcript_append(
            &s.session_id,
            TurnEntry {
                role: Role::User,
                content: text.into(),
                ingress_id: Some(id),
            },
            1,
        )
        .await
        .unwrap();
    store
        .memory_insert(memory(&format!("mem{sender}"), "main", &subject, text, 1))
        .await
        .unwrap();
    store
        .allow_add(AllowEntry {
            channel: "telegram".into(),
            account: "bot".into(),
            sender_id: sender.into(),
            added_at: 1,
            added_by: "test".into(),
        })
        .await
        .unwrap();
    (s.session_id, id)
}

pub async fn forget_removes_a_person_and_nothing_else(store: &dyn Store) {
    let (gone_session, gone_row) = person(store, "1", "my secret is 1").await;
    let (kept_session, kept_row) = person(store, "2", "my secret is 2").await;
    let report = store.forget("telegram", "1").await.unwrap();
    assert_eq!(report.sessions, 1);
    assert_eq!(report.memories, 1);
    assert_eq!(report.allowlist_entries, 1);
    assert!(
        report.ingress_rows >= 1 && report.transcript_entries >= 1,
        "{report:?}"
    );
    assert!(
        store
            .session_get("agent:main:telegram:dm:1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .transcript(&gone_session, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.ingress_get(gone_row).await.unwrap().is_none());
    assert!(!store.allow_contains("telegram", "bot", "1").await.unwrap());
    assert!(
        store
            .memory_list(None, Some("telegram:1"))
            .await
            .unwrap()
            .is_empty()
    );
    // The other person is untouched.
    assert_eq!(
        store.transcript(&kept_session, 10).await.unwrap()[0].content,
        "my secret is 2"
    );
    assert_eq!(
        store.ingress_get(kept_row).await.unwrap().unwrap().payload,
        "my secret is 2"
    );
    assert!(store.allow_contains("telegram", "bot", "2").await.unwrap());
    assert_eq!(
        store
            .memory_list(None, Some("telegram:2"))
            .await
            .unwrap()
            .len(),
        1
    );
}
