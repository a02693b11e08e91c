//! Turns per second and per-turn overhead of the gateway on SQLite, on
//! PostgreSQL alone, and as two replicas on one PostgreSQL database (a real
//! server, started as the tests start it), through the web chat against the
//! fake model. Prints a table and writes `target/bench/replicas.json`.
//!
//! ```sh
//! cargo build --release -p switchboard
//! cargo run --release -p switchboard-tests --bin bench_replicas            # full run
//! cargo run --release -p switchboard-tests --bin bench_replicas -- --quick # a smoke run
//! ```
//!
//! The load is 32 web chat clients, each with its own session, sending a
//! turn as soon as the last is answered; with two replicas each client
//! talks to one of them, half to each. Overhead is a turn's time minus the
//! fake model's own, over turns sent one at a time.

// A command-line harness: printing progress and the table is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::fake_openai::FakeOpenAi;
use switchboard_tests::gateway::{self, TOKEN, free_port};
use switchboard_tests::postgres::Postgres;

const CLIENTS: usize = 32;

fn say(what: &str) {
    eprintln!("bench_replicas: {what}");
}

fn release_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHBOARD_BIN") {
        return PathBuf::from(p);
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/switchboard");
    if !bin.exists() {
        say(&format!(
            "{} does not exist: build it first with `cargo build --release -p switchboard`",
            bin.display()
        ));
        std::process::exit(2);
    }
    bin
}

/// A gateway process with its own directories.
struct Running {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(bin: &Path, http: &reqwest::Client, name: &str, config: &str, port: u16) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("switchboard.toml");
    std::fs::write(&config_path, config).unwrap();
    let log_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&log_dir).unwrap();
    let child = gateway::spawn_serve(
        bin,
        &config_path,
        &dir.path().join("data"),
        &log_dir.join(format!("replicas-{name}.log")),
    );
    let url = format!("http://127.0.0.1:{port}");
    let began = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "{name} did not become ready; see target/bench/replicas-{name}.log"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Running {
        child,
        url,
        _dir: dir,
    }
}

async fn turn(http: &reqwest::Client, url: &str, user: &str, text: &str) -> Duration {
    let body =
        json!({"model": "main", "user": user, "messages": [{"role": "user", "content": text}]});
    let began = Instant::now();
    let r = http
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("a web chat turn");
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "a turn failed: {status} {answer}");
    began.elapsed()
}

/// The fake model's own time for one streamed answer.
async fn model_alone(http: &reqwest::Client, model: &FakeOpenAi, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"model": "fake-model", "stream": true,
                          "messages": [{"role": "user", "content": format!("baseline {i}")}]});
        let began = Instant::now();
        let r = http
            .post(format!("{}/chat/completions", model.base_url()))
            .json(&body)
            .send()
            .await
            .expect("the fake model answers");
        let _ = r.bytes().await;
        times.push(began.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// One setup's figures.
async fn measure(
    http: &reqwest::Client,
    name: &str,
    urls: &[String],
    model: Duration,
    turns: usize,
    secs: u64,
) -> Value {
    say(&format!("{name}: {turns} turns one at a time"));
    let mut times = Vec::with_capacity(turns);
    for i in 0..turns {
        let url = &urls[i % urls.len()];
        times.push(turn(http, url, &format!("seq-{name}"), &format!("turn {i}")).await);
    }
    times.sort();
    let over: Vec<Duration> = times.iter().map(|t| t.saturating_sub(model)).collect();
    say(&format!("{name}: {CLIENTS} clients for {secs} s"));
    let done = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let deadline = began + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for w in 0..CLIENTS {
        let (http, done) = (http.clone(), done.clone());
        let url = urls[w % urls.len()].clone();
        let name = name.to_string();
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < deadline {
                turn(
                    &http,
                    &url,
                    &format!("load-{name}-{w}"),
                    &format!("load {i}"),
                )
                .await;
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for w in workers {
        w.await.expect("a load worker");
    }
    let rate = done.load(Ordering::Relaxed) as f64 / began.elapsed().as_secs_f64();
    json!({
        "setup": name,
        "turns_per_sec": rate.round(),
        "overhead_p50_ms": ms(percentile(&over, 0.5)),
        "overhead_p99_ms": ms(percentile(&over, 0.99)),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (turns, secs) = if quick { (50, 3) } else { (400, 15) };
    let bin = release_binary();
    let http = reqwest::Client::new();
    let model = FakeOpenAi::start().await;
    let model_time = model_alone(&http, &model, 100).await;
    say(&format!("the fake model alone: {:.3} ms", ms(model_time)));
    say("starting PostgreSQL");
    let pg = Postgres::shared();
    let cfg = |port: u16, extra: &str| {
        gateway::config_for(
            port,
            &model.base_url(),
            "",
            &format!(
                "[store.encryption]\nmode = \"off\"\n[channels.webchat.rate_limit]\nper_minute = 0\n{extra}"
            ),
        )
    };
    let mut rows = Vec::new();

    {
        let port = free_port();
        let gw = start(&bin, &http, "sqlite", &cfg(port, ""), port).await;
        rows.push(
            measure(
                &http,
                "SQLite, one gateway",
                std::slice::from_ref(&gw.url),
                model_time,
                turns,
                secs,
            )
            .await,
        );
    }
    {
        let url = pg.database();
        let port = free_port();
        let store = format!("[store]\nurl = \"{url}\"\n");
        let gw = start(&bin, &http, "pg-one", &cfg(port, &store), port).await;
        rows.push(
            measure(
                &http,
                "PostgreSQL, one gateway",
                std::slice::from_ref(&gw.url),
                model_time,
                turns,
                secs,
            )
            .await,
        );
    }
    {
        let url = pg.database();
        let mut gws = Vec::new();
        for id in ["a", "b"] {
            let port = free_port();
            let extra = format!(
                "[store]\nurl = \"{url}\"\n[cluster]\nenabled = true\nreplica_id = \"{id}\"\n"
            );
            gws.push(start(&bin, &http, &format!("pg-{id}"), &cfg(port, &extra), port).await);
        }
        let urls: Vec<String> = gws.iter().map(|g| g.url.clone()).collect();
        rows.push(
            measure(
                &http,
                "PostgreSQL, two replicas",
                &urls,
                model_time,
                turns,
                secs,
            )
            .await,
        );
    }

    println!("| setup | turns/s ({CLIENTS} clients) | overhead p50 | overhead p99 |");
    println!("|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} ms | {} ms |",
            r["setup"].as_str().unwrap_or("?"),
            r["turns_per_sec"],
            r["overhead_p50_ms"],
            r["overhead_p99_ms"]
        );
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join("replicas.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json!({ "rows": rows, "quick": quick })).unwrap(),
    )
    .unwrap();
    say(&format!("written {}", path.display()));
}
