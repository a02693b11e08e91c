//! The memory service over an in-memory store: scopes, limits, deletes,
//! reloads, and what a recall puts into the prompt.

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_memory::{MemoryRecord, SqliteStore, Store};

use super::*;

async fn memories(agents: &[(&str, MemoryScope, usize)]) -> (Arc<dyn Store>, Memories) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let settings: HashMap<String, AgentMemory> = agents
        .iter()
        .map(|(name, scope, max)| {
            let m = AgentMemory {
                scope: *scope,
                max_entries: *max,
                recall_tokens: 80,
                ..AgentMemory::default()
            };
            (name.to_string(), m)
        })
        .collect();
    (store.clone(), Memories::new(store, settings))
}

fn texts(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.record.text.as_str()).collect()
}

#[tokio::test]
async fn a_persons_memories_are_theirs_and_an_agents_are_everyones() {
    let (store, m) = memories(&[
        ("main", MemoryScope::Person, 100),
        ("team", MemoryScope::Agent, 100),
    ])
    .await;
    let ada = m.owner_for("main", "telegram:1").unwrap();
    let bob = m.owner_for("main", "slack:U2").unwrap();
    assert!(matches!(
        m.owner_for("main", ""),
        Err(MemoryError::NoPerson)
    ));
    m.save(
        "main",
        &ada,
        "Ada's cat is called Pixel",
        vec!["pets".into()],
    )
    .await
    .unwrap();
    let found = m.search("main", &ada, "cat", 5).await.unwrap();
    assert_eq!(texts(&found), ["Ada's cat is called Pixel"]);
    assert_eq!(found[0].record.tags, ["pets"]);
    assert!(m.search("main", &bob, "cat", 5).await.unwrap().is_empty());
    // The store has it, under its owner.
    let stored = store.memory_list(Some("main"), Some(&ada)).await.unwrap();
    assert_eq!(stored.len(), 1);

    let everyone = m.owner_for("team", "telegram:1").unwrap();
    assert_eq!(everyone, m.owner_for("team", "slack:U2").unwrap());
    m.save("team", &everyone, "Stand-up is at nine", Vec::new())
        .await
        .unwrap();
    assert_eq!(
        texts(&m.search("team", &everyone, "stand-up", 5).await.unwrap()),
        ["Stand-up is at nine"]
    );
    assert!(
        m.search("main", &ada, "stand-up", 5)
            .await
            .unwrap()
            .is_empty(),
        "another agent's memories are its own"
    );
}

#[tokio::test]
async fn a_full_scope_refuses_saying_how_to_make_room() {
    let (_, m) = memories(&[("main", MemoryScope::Person, 2)]).await;
    for text in ["one fact", "two facts"] {
        m.save("main", "telegram:1", text, Vec::new())
            .await
            .unwrap();
    }
    let e = m
        .save("main", "telegram:1", "three facts", Vec::new())
        .await
        .unwrap_err();
    let said = e.to_string();
    assert!(said.contains("memory is full"), "{said}");
    assert!(said.contains("switchboard memory delete"), "{said}");
    assert!(said.contains("agents.main.memory.max_entries"), "{said}");
    // Another person has room of their own.
    m.save("main", "telegram:2", "three facts", Vec::new())
        .await
        .unwrap();
    assert!(matches!(
        m.save("main", "telegram:1", "  ", Vec::new()).await,
        Err(MemoryError::Empty)
    ));
}

#[tokio::test]
async fn deleted_memories_are_not_found_and_unloaded_scopes_load_again() {
    let (store, m) = memories(&[("main", MemoryScope::Person, 100)]).await;
    let m = m.with_max_scopes(1);
    let kept = m
        .save("main", "telegram:1", "pizza on fridays", Vec::new())
        .await
        .unwrap();
    let gone = m
        .save("main", "telegram:1", "pizza with olives", Vec::new())
        .await
        .unwrap();
    assert!(m.delete(&gone.id).await.unwrap());
    assert!(!m.delete(&gone.id).await.unwrap(), "deleted already");
    assert_eq!(
        texts(&m.search("main", "telegram:1", "pizza", 5).await.unwrap()),
        ["pizza on fridays"]
    );
    // Another scope pushes this one out; it loads from the store again.
    m.save("main", "telegram:2", "tea, no sugar", Vec::new())
        .await
        .unwrap();
    assert_eq!(m.loaded_scopes(), 1);
    let again = m.search("main", "telegram:1", "pizza", 5).await.unwrap();
    assert_eq!(texts(&again), ["pizza on fridays"]);
    assert_eq!(again[0].record.id, kept.id);

    // Removed behind the index's back (as `forget` does), then dropped.
    assert!(store.memory_delete(&kept.id).await.unwrap());
    m.forget_owner("telegram:1").await;
    assert!(
        m.search("main", "telegram:1", "pizza", 5)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_recall_is_the_best_memories_within_the_budget() {
    let (_, m) = memories(&[("main", MemoryScope::Person, 100)]).await;
    m.save(
        "main",
        "telegram:1",
        "Ada's sister is called Maren",
        Vec::new(),
    )
    .await
    .unwrap();
    m.save(
        "main",
        "telegram:1",
        "Ada walks her dog at seven",
        Vec::new(),
    )
    .await
    .unwrap();
    let block = m
        .recall("main", "telegram:1", "what is my sister called?")
        .await;
    assert!(block.starts_with(RECALL_HEADING), "{block}");
    assert!(
        block.contains("- Ada's sister is called Maren (saved "),
        "{block}"
    );
    assert!(!block.contains("dog"), "not related: {block}");
    assert_eq!(m.recall("main", "telegram:2", "my sister").await, "");
    assert_eq!(m.recall("main", "telegram:1", "zebras").await, "");
    assert_eq!(
        m.recall("other", "telegram:1", "my sister").await,
        "",
        "recall off"
    );
}

#[test]
fn a_recall_block_keeps_to_its_budget() {
    let hit = |text: &str| Hit {
        record: MemoryRecord {
            id: "x".into(),
            agent: "main".into(),
            owner: "o".into(),
            text: text.into(),
            tags: vec!["t".into()],
            vector: None,
            created_at: 0,
        },
        score: 1.0,
        keyword: 1.0,
        cosine: None,
    };
    let hits = [hit(&"long ".repeat(100)), hit("short one")];
    let heading = estimate_tokens(RECALL_HEADING);
    let block = recall_block(&hits, heading + 20);
    assert!(
        block.contains("- short one (tags: t; saved 1970-01-01)"),
        "{block}"
    );
    assert!(!block.contains("long"), "too long for the budget: {block}");
    assert_eq!(recall_block(&hits, heading), "", "nothing fits");
}
