//! What encryption at rest costs a turn, and what a passphrase costs a
//! start.
//!
//! `cargo run --release -p switchboard-memory --example seal_bench`
//! (`-- --quick` for a short run). Prints a table and writes
//! `target/bench/seal.json`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_memory::crypto::{KekSource, Key, Keyring, MIN_ITERATIONS};
use switchboard_memory::{
    IngressAccept, IngressStatus, Role, SealedStore, SqliteStore, Store, TurnCommit, TurnEntry,
    subject_of,
};

fn text(n: usize, seed: usize) -> String {
    let words = [
        "the", "meeting", "moved", "to", "thursday", "at", "noon", "please", "remind", "me",
    ];
    let mut s = String::with_capacity(n);
    let mut i = seed;
    while s.len() < n {
        s.push_str(words[i % words.len()]);
        s.push(' ');
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    s
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// One turn's store work as the gateway does it: accept the message, open
/// the session, read 20 entries of history, store the user entry, commit
/// the answer, read the row back. Returns its duration.
async fn turn(store: &dyn Store, n: usize) -> Duration {
    let started = Instant::now();
    let sender = format!("{}", n % 50);
    let subject = subject_of("telegram", &sender);
    let key = format!("agent:main:telegram:dm:{sender}");
    let payload = format!("{{\"text\":\"{}\",\"sender\":\"{sender}\"}}", text(200, n));
    let IngressAccept::Accepted(id) = store
        .ingress_accept_as(
            "telegram",
            "bot",
            &format!("m{n}"),
            &payload,
            Some(&subject),
            1,
        )
        .await
        .unwrap()
    else {
        panic!("duplicate")
    };
    let s = store
        .session_open_as(&key, "main", Some(&subject), 1)
        .await
        .unwrap();
    let history = store.transcript(&s.session_id, 20).await.unwrap();
    std::hint::black_box(history);
    store
        .transcript_append(
            &s.session_id,
            TurnEntry {
                role: Role::User,
                content: text(200, n),
                ingress_id: Some(id),
            },
            2,
        )
        .await
        .unwrap();
    store
        .commit_turn(TurnCommit {
            session_id: s.session_id.clone(),
            entries: vec![TurnEntry {
                role: Role::Assistant,
                content: text(600, n + 1),
                ingress_id: Some(id),
            }],
            ingress_ids: vec![id],
            status: IngressStatus::Done,
            error: None,
            now: 3,
            usage: None,
        })
        .await
        .unwrap();
    std::hint::black_box(store.ingress_get(id).await.unwrap());
    started.elapsed()
}

async fn run(store: &dyn Store, turns: usize, offset: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(turns);
    for n in 0..turns {
        times.push(turn(store, offset + n).await);
    }
    times.sort();
    times
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let turns = if quick { 500 } else { 5_000 };
    let dir = tempfile::tempdir().unwrap();

    // The crypto alone: what a turn seals and opens (3 values sealed, 20
    // history entries and the payload opened).
    let ring = Keyring::create(
        &dir.path().join("ring"),
        &KekSource::KeyFile(dir.path().join("key")),
    )
    .unwrap();
    let (values, history) = (
        [text(240, 1), text(200, 2), text(600, 3)],
        (0..20).map(|i| text(400, i)).collect::<Vec<_>>(),
    );
    let (kid, _, _) = ring.assign("telegram:1", 0).unwrap();
    let sealed_history: Vec<String> = history
        .iter()
        .map(|h| {
            let key = ring.person_key("telegram:1").unwrap().1;
            key.seal(&kid, b"transcript.content\0s_1", h.as_bytes())
        })
        .collect();
    let mut crypto = Vec::new();
    for _ in 0..turns {
        let t = Instant::now();
        for v in &values {
            let (kid, key) = ring.person_key("telegram:1").unwrap();
            std::hint::black_box(key.seal(&kid, b"ingress.payload\0x", v.as_bytes()));
        }
        for h in &sealed_history {
            std::hint::black_box(ring.unseal(b"transcript.content\0s_1", h).unwrap());
        }
        crypto.push(t.elapsed());
    }
    crypto.sort();

    // Whole store turns, plain and sealed, on files in WAL mode.
    let plain = SqliteStore::open(&dir.path().join("plain.db"))
        .await
        .unwrap();
    let inner: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("sealed.db"))
            .await
            .unwrap(),
    );
    let ring = Keyring::create(
        &dir.path().join("ring2"),
        &KekSource::KeyFile(dir.path().join("key2")),
    )
    .unwrap();
    let sealed = SealedStore::new(inner, Arc::new(ring));
    // Warm both (sessions exist, caches filled), then measure alternately.
    run(&plain, 200, 1_000_000).await;
    run(&sealed, 200, 1_000_000).await;
    // One after the other, turn by turn, so both see the same disk.
    let (mut p, mut s) = (Vec::with_capacity(turns), Vec::with_capacity(turns));
    for n in 0..turns {
        p.push(turn(&plain, n).await);
        s.push(turn(&sealed, n).await);
    }
    p.sort();
    s.sort();

    // A passphrase start: one PBKDF2 derivation.
    let t = Instant::now();
    std::hint::black_box(Key::derive(
        b"correct horse battery staple",
        b"0123456789abcdef",
        MIN_ITERATIONS,
    ));
    let pbkdf2 = t.elapsed();

    let rows = [
        (
            "crypto of one turn (3 sealed, 21 opened) p50",
            pct(&crypto, 0.5),
        ),
        ("crypto of one turn p99", pct(&crypto, 0.99)),
        ("store turn, plain p50", pct(&p, 0.5)),
        ("store turn, encrypted p50", pct(&s, 0.5)),
        (
            "added by encryption, p50 difference",
            pct(&s, 0.5) - pct(&p, 0.5),
        ),
        ("store turn, plain p99", pct(&p, 0.99)),
        ("store turn, encrypted p99", pct(&s, 0.99)),
    ];
    println!("{turns} turns each");
    for (name, us) in rows {
        println!("{name:<48} {us:>10.1} µs");
    }
    println!(
        "{:<48} {:>10.1} ms",
        format!("PBKDF2-HMAC-SHA256, {MIN_ITERATIONS} iterations"),
        pbkdf2.as_secs_f64() * 1e3
    );
    let json = serde_json::json!({
        "turns": turns,
        "crypto_turn_p50_us": pct(&crypto, 0.5),
        "crypto_turn_p99_us": pct(&crypto, 0.99),
        "store_turn_plain_p50_us": pct(&p, 0.5),
        "store_turn_sealed_p50_us": pct(&s, 0.5),
        "store_turn_plain_p99_us": pct(&p, 0.99),
        "store_turn_sealed_p99_us": pct(&s, 0.99),
        "pbkdf2_ms": pbkdf2.as_secs_f64() * 1e3,
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(
        out.join("seal.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    );
}
