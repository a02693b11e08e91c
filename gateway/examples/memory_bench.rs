//! `memory_search` latency over 100,000 memories in one scope: the
//! in-memory index alone (keywords, and keywords with 256-dimension
//! vectors), and the memory service over a store (the first search of a
//! scope loads it; later ones use the index). Not a test: it prints a
//! table and writes `target/bench/memory.json`.
//!
//! ```sh
//! cargo run --release -p switchboard --example memory_bench            # 100,000 entries
//! cargo run --release -p switchboard --example memory_bench -- --quick # 10,000
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::config::MemoryScope;
use switchboard::memories::{AgentMemory, Memories, ScopeIndex};
use switchboard_memory::{MemoryRecord, SqliteStore, Store};

/// Words in the synthetic vocabulary.
const VOCABULARY: usize = 20_000;
/// Words per memory.
const WORDS: usize = 12;
/// Dimensions of the synthetic embeddings.
const DIMENSIONS: usize = 256;
/// Searches timed per figure.
const QUERIES: usize = 1_000;

/// A small deterministic generator (SplitMix64): the same data every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A word index, Zipf-like: a few words are very common, most rare.
    fn word(&mut self) -> usize {
        let x = self.unit();
        ((VOCABULARY as f64).powf(x) as usize).saturating_sub(1) % VOCABULARY
    }

    fn vector(&mut self) -> Vec<f32> {
        (0..DIMENSIONS)
            .map(|_| (self.unit() * 2.0 - 1.0) as f32)
            .collect()
    }
}

/// Word `i` of the vocabulary: letters only, so the tokenizer keeps it.
fn word(i: usize) -> String {
    let mut n = i + 1;
    let mut w = String::new();
    while n > 0 {
        w.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
    }
    format!("w{w}")
}

fn sentence(rng: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| word(rng.word()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn records(n: usize, vectors: bool) -> Vec<MemoryRecord> {
    let mut rng = Rng(42);
    (0..n)
        .map(|i| MemoryRecord {
            id: format!("{i:016x}"),
            agent: "main".into(),
            owner: "telegram:1".into(),
            text: sentence(&mut rng, WORDS),
            tags: Vec::new(),
            vector: vectors.then(|| rng.vector()),
            created_at: i as i64,
        })
        .collect()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// p50 and p95 (ms) of `QUERIES` runs of `search` with fresh queries.
async fn time<F, Fut>(mut search: F) -> (f64, f64)
where
    F: FnMut(String, Vec<f32>) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut rng = Rng(7);
    let mut took = Vec::with_capacity(QUERIES);
    let mut found = 0;
    for _ in 0..QUERIES {
        let words = 2 + (rng.next() % 3) as usize;
        let query = sentence(&mut rng, words);
        let vector = rng.vector();
        let start = Instant::now();
        found += search(query, vector).await;
        took.push(start.elapsed());
    }
    took.sort();
    eprintln!("memory_bench: {found} hits over {QUERIES} searches");
    (pct(&took, 0.5), pct(&took, 0.95))
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 10_000 } else { 100_000 };
    let mut rows: Vec<(String, f64, f64)> = Vec::new();

    let start = Instant::now();
    let index = ScopeIndex::from_records(records(n, false));
    let built = start.elapsed();
    let (p50, p95) = time(|q, _| {
        let hits = index.search(&q, None, 5).len();
        async move { hits }
    })
    .await;
    rows.push(("index, keywords".into(), p50, p95));
    drop(index);

    let index = ScopeIndex::from_records(records(n, true));
    let (p50, p95) = time(|q, v| {
        let hits = index.search(&q, Some(v.as_slice()), 5).len();
        async move { hits }
    })
    .await;
    rows.push((
        format!("index, keywords + {DIMENSIONS}-d vectors"),
        p50,
        p95,
    ));
    drop(index);

    // The service over a store: what the tool calls.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.expect("a store"));
    let start = Instant::now();
    for r in records(n, false) {
        store.memory_insert(r).await.expect("stored");
    }
    let inserted = start.elapsed();
    let settings = AgentMemory {
        scope: MemoryScope::Person,
        max_entries: n + 1,
        ..AgentMemory::default()
    };
    let memories = Memories::new(store, HashMap::from([("main".to_string(), settings)]));
    let start = Instant::now();
    let first = memories
        .search("main", "telegram:1", "wb wc", 5)
        .await
        .expect("searched")
        .len();
    let loaded = start.elapsed();
    let memories = &memories;
    let (p50, p95) = time(|q, _| async move {
        memories
            .search("main", "telegram:1", &q, 5)
            .await
            .map(|h| h.len())
            .unwrap_or(0)
    })
    .await;
    rows.push(("service (store loaded), keywords".into(), p50, p95));

    println!(
        "memory_search over {n} memories in one scope ({QUERIES} searches of 2–4 words, limit 5)"
    );
    println!("{:<40} {:>10} {:>10}", "", "p50 ms", "p95 ms");
    for (what, p50, p95) in &rows {
        println!("{what:<40} {p50:>10.3} {p95:>10.3}");
    }
    println!(
        "index built from records in {:.0} ms; {n} stored in {:.1} s; first search of the scope (load + index + search, {first} hits) {:.0} ms",
        built.as_secs_f64() * 1000.0,
        inserted.as_secs_f64(),
        loaded.as_secs_f64() * 1000.0
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    let json = serde_json::json!({
        "entries": n,
        "queries": QUERIES,
        "build_ms": built.as_secs_f64() * 1000.0,
        "insert_s": inserted.as_secs_f64(),
        "first_search_ms": loaded.as_secs_f64() * 1000.0,
        "rows": rows.iter().map(|(what, p50, p95)| serde_json::json!({ "what": what, "p50_ms": p50, "p95_ms": p95 })).collect::<Vec<_>>(),
    });
    let path = out.join("memory.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json")).expect("written");
    eprintln!("memory_bench: wrote {}", path.display());
}
