//! The gateway's load harness: starts the real release binary against the
//! fake model and platform servers of this crate and measures start-up,
//! memory, per-turn overhead, throughput, what is sent to the model and the
//! binary's size. Prints a table and writes `target/bench/gateway.json`.
//!
//! ```sh
//! cargo build --release -p switchboard
//! cargo run --release -p switchboard-tests --bin bench            # full run
//! cargo run --release -p switchboard-tests --bin bench -- --quick # a smoke run
//! cargo run --release -p switchboard-tests --bin bench -- --only throughput
//! ```
//!
//! `--only` runs one measurement (`starts`, `overhead`, `throughput`,
//! `sessions`, `history`, `telegram`, `instructions` or `watching`: the
//! cost of exported traces and scraped metrics) besides the idle figures,
//! for profiling; its figures go to `target/bench/gateway-partial.json`.
//! `instructions` runs the gateway under `valgrind --tool=callgrind` and is
//! not part of a full run (it takes minutes); ask for it by name.
//! `--sessions 1000,5000` reads memory at other session counts.
//! `SWITCHBOARD_BENCH_CONFIG` is TOML added to the measured gateway's
//! config (to compare settings).

// A command-line harness: printing progress and the table is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::fake_openai::{FakeOpenAi, echo_answer};
use switchboard_tests::fake_telegram::{self, FakeTelegram};
use switchboard_tests::gateway::{self, TOKEN, free_port};

mod instructions;
mod report;

use instructions::instructions_per_turn;
use report::{scaling_tables, table};

/// How much of each measurement to do.
struct Plan {
    starts: usize,
    turns: usize,
    /// Session counts at which RSS and overhead are read, in order.
    sessions: Vec<usize>,
    /// Client counts of the throughput runs; the first one the goal's.
    clients: Vec<usize>,
    /// Stored messages per session at which a turn's cost is read.
    history: Vec<usize>,
    concurrency: usize,
    load_secs: u64,
    telegram_turns: usize,
}

fn say(what: &str) {
    eprintln!("bench: {what}");
}

fn release_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHBOARD_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = root.join("target/release/switchboard");
    if !bin.exists() {
        eprintln!(
            "bench: {} does not exist: build it first with `cargo build --release -p switchboard`",
            bin.display()
        );
        std::process::exit(2);
    }
    bin
}

/// The gateway's config: the fake model as the provider of the default
/// agent `main`, with the built-in system prompt and default tools (what a
/// new user runs), plus `extra`.
fn config(port: u16, model_base_url: &str, extra: &str) -> String {
    gateway::config_for(port, model_base_url, "", extra)
}

/// A gateway process with its own data directory.
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

impl Running {
    /// Resident memory now, in KiB (`VmRSS`).
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time used so far (user + system).
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces).
        let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // utime and stime are fields 14 and 15 (12 and 13 after the name).
        let hz = 100; // USER_HZ on Linux
        Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
    }
}

/// Start the binary with `config`; returns it and the time until `/readyz`
/// answered 200.
async fn start(
    bin: &Path,
    http: &reqwest::Client,
    config_text: &str,
    port: u16,
) -> (Running, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("switchboard.toml");
    std::fs::write(&config_path, config_text).unwrap();
    let log_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&log_dir).unwrap();
    let began = Instant::now();
    // SWITCHBOARD_BENCH_LOG sets the gateway's log filter, e.g.
    // `info,sqlx::query=debug` to see the statements of a turn.
    let filter = std::env::var("SWITCHBOARD_BENCH_LOG").unwrap_or_else(|_| "info".into());
    let child = gateway::spawn_serve_env(
        bin,
        &config_path,
        &dir.path().join("data"),
        &log_dir.join("gateway.log"),
        &[("SWITCHBOARD_LOG".into(), filter)],
    );
    let url = format!("http://127.0.0.1:{port}");
    let running = Running {
        child,
        url: url.clone(),
        _dir: dir,
    };
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status() == 200
        {
            return (running, began.elapsed());
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the gateway did not become ready"
        );
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// One web chat turn, not streamed; returns the time it took.
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

/// The size of the model request for a one-line message, and the tools it
/// offers.
async fn model_request(
    http: &reqwest::Client,
    url: &str,
    model: &FakeOpenAi,
) -> (usize, Vec<String>) {
    turn(http, url, "bench-prompt", "What is the capital of France?").await;
    let request = model
        .seen()
        .last()
        .map(|s| s.body.clone())
        .unwrap_or_default();
    let tools = request["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (request.to_string().len(), tools)
}

/// The fake model's own time for one answer, asked directly.
async fn model_alone(http: &reqwest::Client, model: &FakeOpenAi, n: usize) -> Duration {
    let url = model.base_url();
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let began = Instant::now();
        model_call(http, &url, i).await;
        times.push(began.elapsed());
    }
    times.sort();
    percentile(&times, 0.5)
}

/// One streamed answer from the fake model, asked directly.
async fn model_call(http: &reqwest::Client, base_url: &str, i: usize) {
    let body = json!({"model": "fake-model", "stream": true,
                      "messages": [{"role": "user", "content": format!("baseline {i}")}]});
    let r = http
        .post(format!("{base_url}/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("the fake model answers");
    let _ = r.bytes().await.expect("the fake model's answer");
}

/// Calls per second of `one(worker, i)` from `concurrency` workers, each
/// calling again as soon as answered, for `secs`.
async fn sustained<F, Fut>(concurrency: usize, secs: u64, one: F) -> f64
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let deadline = began + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (one, done) = (one.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < deadline {
                one(w, i).await;
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for w in workers {
        w.await.expect("a load worker");
    }
    done.load(Ordering::Relaxed) as f64 / began.elapsed().as_secs_f64()
}

/// Overheads (turn time minus the model's own), sorted.
fn overheads(mut times: Vec<Duration>, model: Duration) -> Vec<Duration> {
    times.sort();
    times.into_iter().map(|t| t.saturating_sub(model)).collect()
}

/// `clients` clients sending web chat turns as fast as answered for `secs`
/// (eight sessions each); returns turns/s, the gateway's CPU time per
/// turn in µs, and the cores it used.
async fn load(
    gw: &Running,
    http: &reqwest::Client,
    clients: usize,
    secs: u64,
    tag: &str,
) -> (f64, f64, f64) {
    let cpu_before = gw.cpu();
    let began = Instant::now();
    let rate = {
        let (http, url, tag) = (http.clone(), gw.url.clone(), tag.to_string());
        sustained(clients, secs, move |w, i| {
            let (http, url) = (http.clone(), url.clone());
            let user = format!("{tag}-{w}-{}", i % 8);
            async move {
                turn(&http, &url, &user, "hello").await;
            }
        })
        .await
    };
    let elapsed = began.elapsed().as_secs_f64();
    let cpu = (gw.cpu() - cpu_before).as_secs_f64();
    let turns = (rate * elapsed).max(1.0);
    (rate, cpu * 1e6 / turns, cpu / elapsed)
}

/// The gateway's CPU per turn (µs) and the overhead p50 of turns in
/// sessions that hold `level` stored messages: a few sessions are filled
/// to `level` through the gateway (two messages a turn), then 400 turns go
/// round them one at a time, so each grows by little while measured.
async fn history_cost(
    gw: &Running,
    http: &reqwest::Client,
    level: usize,
    alone: Duration,
) -> (f64, Duration) {
    let sessions = (2000 / level.max(1)).clamp(8, 200);
    let fill = level / 2;
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (http, url, next) = (http.clone(), gw.url.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= sessions * fill {
                    break;
                }
                // Session by session, so each is filled in order.
                let user = format!("history-{level}-{}", i % sessions);
                turn(&http, &url, &user, &format!("message {i}")).await;
                if (i + 1).is_multiple_of(5000) {
                    say(&format!("filling: {}/{} turns", i + 1, sessions * fill));
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let measured = 400;
    let mut times = Vec::with_capacity(measured);
    let cpu_before = gw.cpu();
    for i in 0..measured {
        let user = format!("history-{level}-{}", i % sessions);
        times.push(turn(http, &gw.url, &user, "hello").await);
    }
    let cpu = (gw.cpu() - cpu_before).as_secs_f64();
    let over = overheads(times, alone);
    (cpu * 1e6 / measured as f64, percentile(&over, 0.5))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args.get(i + 1).cloned().unwrap_or_default());
    const PHASES: [&str; 8] = [
        "starts",
        "overhead",
        "throughput",
        "sessions",
        "history",
        "telegram",
        "instructions",
        "watching",
    ];
    if let Some(o) = &only
        && !PHASES.contains(&o.as_str())
    {
        eprintln!(
            "bench: --only takes one of {}; got `{o}`",
            PHASES.join(", ")
        );
        std::process::exit(2);
    }
    let run = |phase: &str| {
        only.as_deref().is_none_or(|o| o == phase) && (phase != "instructions" || only.is_some())
    };
    let plan = if quick {
        Plan {
            starts: 3,
            turns: 100,
            sessions: vec![500],
            clients: vec![16],
            history: vec![10, 500],
            concurrency: 16,
            load_secs: 3,
            telegram_turns: 20,
        }
    } else {
        Plan {
            starts: 15,
            turns: 1000,
            sessions: vec![1000, 10_000, 100_000],
            clients: vec![64, 1, 8, 256],
            history: vec![10, 500, 5000],
            concurrency: 64,
            load_secs: 15,
            telegram_turns: 200,
        }
    };
    // `--sessions 1000,5000`: other session counts for the memory phase.
    let mut plan = plan;
    if let Some(list) = args
        .iter()
        .position(|a| a == "--sessions")
        .map(|i| args.get(i + 1).cloned().unwrap_or_default())
    {
        match list
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<usize>, _>>()
        {
            Ok(levels) if !levels.is_empty() && levels.is_sorted() => plan.sessions = levels,
            _ => {
                eprintln!(
                    "bench: --sessions takes rising session counts split by commas, \
                     e.g. `--sessions 1000,10000`; got `{list}`"
                );
                std::process::exit(2);
            }
        }
    }
    let bin = release_binary();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let model = FakeOpenAi::start().await;
    let mut results = serde_json::Map::new();

    // Binary size.
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    say(&format!(
        "binary {} ({:.1} MB)",
        bin.display(),
        size as f64 / 1e6
    ));
    results.insert("binary_bytes".into(), json!(size));

    // Cold starts.
    let mut starts = Vec::new();
    for i in 0..if run("starts") { plan.starts } else { 0 } {
        let port = free_port();
        let (_gw, took) = start(&bin, &http, &config(port, &model.base_url(), ""), port).await;
        say(&format!(
            "cold start {}/{}: {:.1} ms",
            i + 1,
            plan.starts,
            ms(took)
        ));
        starts.push(took);
    }
    starts.sort();
    if let Some(max) = starts.last() {
        results.insert(
            "start_to_ready_ms_p50".into(),
            json!(ms(percentile(&starts, 0.5))),
        );
        results.insert("start_to_ready_ms_max".into(), json!(ms(*max)));
    }

    // One gateway for the rest; the per-user rate limit is off so one
    // client can stand for many users.
    let port = free_port();
    let unlimited = format!(
        "[channels.webchat.rate_limit]\nper_minute = 0\n{}",
        std::env::var("SWITCHBOARD_BENCH_CONFIG").unwrap_or_default()
    );
    let (gw, _) = start(
        &bin,
        &http,
        &config(port, &model.base_url(), &unlimited),
        port,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = gw.rss_kib();
    say(&format!("idle RSS {:.1} MB", idle as f64 / 1024.0));
    results.insert("rss_idle_kib".into(), json!(idle));

    // What one turn sends to the model: the default agent as a new user
    // has it, and with the shell and file tools of the `coding` profile.
    let (sent, tools) = model_request(&http, &gw.url, &model).await;
    say(&format!(
        "sent to the model for a one-line message: {sent} bytes (~{} tokens), tools: {}",
        sent / 4,
        tools.join(", ")
    ));
    results.insert("model_request_bytes".into(), json!(sent));
    results.insert("model_request_tokens_est".into(), json!(sent / 4));
    results.insert("model_request_tools".into(), json!(tools));
    {
        let port = free_port();
        let coding = "[agents.main.tools]\nprofile = \"coding\"\n";
        let (coder, _) = start(&bin, &http, &config(port, &model.base_url(), coding), port).await;
        let (sent, tools) = model_request(&http, &coder.url, &model).await;
        say(&format!(
            "with the coding profile: {sent} bytes (~{} tokens), tools: {}",
            sent / 4,
            tools.join(", ")
        ));
        results.insert("model_request_bytes_coding".into(), json!(sent));
        results.insert("model_request_tools_coding".into(), json!(tools));
    }

    let alone = model_alone(&http, &model, 200).await;
    results.insert("model_alone_ms_p50".into(), json!(ms(alone)));

    // Overhead per turn through the web chat, one at a time.
    if run("overhead") {
        let mut times = Vec::with_capacity(plan.turns);
        for i in 0..plan.turns {
            times.push(turn(&http, &gw.url, &format!("seq-{i}"), "hello").await);
            if (i + 1).is_multiple_of(250) {
                say(&format!("web chat turns {}/{}", i + 1, plan.turns));
            }
        }
        let over = overheads(times, alone);
        let (p50, p99) = (percentile(&over, 0.5), percentile(&over, 0.99));
        say(&format!(
            "web chat overhead p50 {:.2} ms, p99 {:.2} ms (model alone {:.2} ms)",
            ms(p50),
            ms(p99),
            ms(alone)
        ));
        results.insert("webchat_overhead_ms_p50".into(), json!(ms(p50)));
        results.insert("webchat_overhead_ms_p99".into(), json!(ms(p99)));
    }
    // Sustained turns per second, many sessions at once, at several
    // client counts; the gateway's CPU time over each load per turn.
    if run("throughput") {
        // The same load straight at the fake model: what the harness and
        // the fake can do on this machine without the gateway between.
        let model_rate = {
            let (http, url) = (http.clone(), model.base_url());
            sustained(plan.concurrency, plan.load_secs.min(5), move |_, i| {
                let (http, url) = (http.clone(), url.clone());
                async move { model_call(&http, &url, i).await }
            })
            .await
        };
        results.insert(
            "model_alone_answers_per_sec".into(),
            json!(model_rate.round()),
        );
        let mut scaling = serde_json::Map::new();
        for &clients in &plan.clients {
            let (rate, cpu_us, cores) = load(&gw, &http, clients, plan.load_secs, "load").await;
            say(&format!(
                "throughput {rate:.0} turns/s with {clients} concurrent clients; the gateway used \
                 {cores:.2} cores, {cpu_us:.0} µs of CPU a turn (the fake model alone, asked by \
                 {} clients: {model_rate:.0} answers/s)",
                plan.concurrency
            ));
            scaling.insert(
                clients.to_string(),
                json!({"turns_per_sec": rate.round(), "cpu_us_per_turn": cpu_us.round(),
                       "cores": (cores * 100.0).round() / 100.0}),
            );
            if clients == plan.concurrency {
                results.insert("webchat_turns_per_sec".into(), json!(rate.round()));
                results.insert("webchat_concurrency".into(), json!(clients));
                results.insert("gateway_cpu_us_per_turn".into(), json!(cpu_us.round()));
                results.insert(
                    "gateway_cores_used_under_load".into(),
                    json!((cores * 100.0).round() / 100.0),
                );
            }
        }
        results.insert("throughput_by_clients".into(), Value::Object(scaling));
    }
    // Memory and overhead as sessions accumulate, one turn each; their
    // actors stay in memory (`sessions.actor_idle_secs`, 300 s).
    if run("sessions") {
        let mut made = 0;
        let mut scaling = serde_json::Map::new();
        for &level in &plan.sessions {
            let next = Arc::new(AtomicUsize::new(made));
            let mut workers = Vec::new();
            for _ in 0..plan.concurrency {
                let (http, url, next) = (http.clone(), gw.url.clone(), next.clone());
                workers.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= level {
                            break;
                        }
                        turn(&http, &url, &format!("session-{i}"), "hello").await;
                        if (i + 1).is_multiple_of(5000) {
                            say(&format!("sessions {}/{level}", i + 1));
                        }
                    }
                }));
            }
            for w in workers {
                w.await.unwrap();
            }
            made = level;
            let rss = gw.rss_kib();
            // Overhead with that many sessions held: new users, one turn
            // each, one at a time.
            let mut times = Vec::with_capacity(200);
            for i in 0..200 {
                times.push(turn(&http, &gw.url, &format!("probe-{level}-{i}"), "hello").await);
            }
            let over = overheads(times, alone);
            let (p50, p99) = (percentile(&over, 0.5), percentile(&over, 0.99));
            say(&format!(
                "{level} sessions: RSS {:.1} MB, overhead p50 {:.2} ms, p99 {:.2} ms",
                rss as f64 / 1024.0,
                ms(p50),
                ms(p99)
            ));
            scaling.insert(
                level.to_string(),
                json!({"rss_kib": rss, "overhead_ms_p50": ms(p50), "overhead_ms_p99": ms(p99)}),
            );
        }
        results.insert("sessions_scaling".into(), Value::Object(scaling));
    }
    // A turn's cost as its session's transcript grows.
    if run("history") {
        let mut scaling = serde_json::Map::new();
        for &level in &plan.history {
            let (cpu_us, p50) = history_cost(&gw, &http, level, alone).await;
            say(&format!(
                "{level} stored messages a session: {cpu_us:.0} µs of gateway CPU a turn, \
                 overhead p50 {:.2} ms",
                ms(p50)
            ));
            scaling.insert(
                level.to_string(),
                json!({"cpu_us_per_turn": cpu_us.round(), "overhead_ms_p50": ms(p50)}),
            );
        }
        results.insert("history_scaling".into(), Value::Object(scaling));
    }
    drop(gw);

    // Overhead per turn through the Telegram adapter.
    if run("telegram") {
        let tg = FakeTelegram::start().await;
        let port = free_port();
        let extra = format!(
            "[channels.telegram.accounts.main]\ntoken = \"{}\"\napi_url = \"{}\"\ndm_policy = \"open\"\npoll_timeout_secs = 25\n",
            fake_telegram::TOKEN,
            tg.url()
        );
        let (_gw, _) = start(&bin, &http, &config(port, &model.base_url(), &extra), port).await;
        let mut times = Vec::with_capacity(plan.telegram_turns);
        for i in 0..plan.telegram_turns {
            let user = 10_000 + i as i64;
            let text = format!("hello {i}");
            let want = echo_answer(&text);
            let began = Instant::now();
            tg.dm(user, "Bench", &text);
            tg.wait(Duration::from_secs(20), "the Telegram answer", |tg| {
                tg.chat(user)
                    .last()
                    .is_some_and(|m| m.text == want)
                    .then_some(())
            })
            .await;
            times.push(began.elapsed());
        }
        let over = overheads(times, alone);
        let (p50, p99) = (percentile(&over, 0.5), percentile(&over, 0.99));
        say(&format!(
            "Telegram overhead p50 {:.2} ms, p99 {:.2} ms",
            ms(p50),
            ms(p99)
        ));
        results.insert("telegram_overhead_ms_p50".into(), json!(ms(p50)));
        results.insert("telegram_overhead_ms_p99".into(), json!(ms(p99)));
    }
    // Instructions per turn, counted by callgrind.
    if run("instructions") {
        let turns = if quick { 50 } else { 200 };
        match instructions_per_turn(&bin, &http, &model, turns).await {
            Some(per_turn) => {
                say(&format!(
                    "{:.2} M instructions a web chat turn (callgrind, {turns} turns)",
                    per_turn / 1e6
                ));
                results.insert("instructions_per_turn".into(), json!(per_turn.round()));
            }
            None => say("instructions not counted: is valgrind installed?"),
        }
    }
    // What watching costs: the same turns with traces exported to a
    // collector and /metrics scraped every second, against none of it.
    if run("watching") {
        let otlp = switchboard_tests::fake_otlp::FakeOtlp::start().await;
        let unlimited = "[channels.webchat.rate_limit]\nper_minute = 0\n";
        let watched = format!(
            "{unlimited}[observability.otlp]\nendpoint = \"{}\"\n",
            otlp.base_url()
        );
        let mut figures = Vec::new();
        for (label, extra, scrape) in [
            ("unwatched", unlimited.to_string(), false),
            ("watched", watched, true),
        ] {
            let port = free_port();
            let (gw, _) = start(&bin, &http, &config(port, &model.base_url(), &extra), port).await;
            let scraper = scrape.then(|| {
                let (http, url) = (http.clone(), gw.url.clone());
                tokio::spawn(async move {
                    loop {
                        let _ = http
                            .get(format!("{url}/metrics"))
                            .bearer_auth(TOKEN)
                            .send()
                            .await
                            .and_then(|r| r.error_for_status());
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                })
            });
            let mut times = Vec::with_capacity(plan.turns);
            for i in 0..plan.turns {
                times.push(turn(&http, &gw.url, &format!("watch-{i}"), "hello").await);
            }
            let over = overheads(times, alone);
            let p50 = percentile(&over, 0.5);
            let cpu_before = gw.cpu();
            let rate = {
                let (http, url) = (http.clone(), gw.url.clone());
                sustained(plan.concurrency, plan.load_secs, move |w, i| {
                    let (http, url) = (http.clone(), url.clone());
                    async move {
                        turn(&http, &url, &format!("watch-load-{w}-{}", i % 8), "hello").await;
                    }
                })
                .await
            };
            // The gateway's own CPU per turn: what the collector (here in
            // this process, on the same cores) costs is left out.
            let cpu_us = (gw.cpu() - cpu_before).as_secs_f64() * 1e6
                / (rate * plan.load_secs as f64).max(1.0);
            if let Some(s) = scraper {
                s.abort();
            }
            say(&format!(
                "{label}: overhead p50 {:.3} ms, {rate:.0} turns/s, gateway CPU {cpu_us:.0} µs a turn",
                ms(p50)
            ));
            figures.push((p50, rate, cpu_us));
        }
        let (base, with) = (figures[0], figures[1]);
        let added_us = (with.0.as_secs_f64() - base.0.as_secs_f64()) * 1e6;
        let slower = (1.0 - with.1 / base.1) * 100.0;
        say(&format!(
            "watching adds {added_us:.0} µs at p50 and costs {slower:.1} % of the throughput ({} spans received)",
            otlp.spans().len()
        ));
        results.insert(
            "watching_overhead_added_us_p50".into(),
            json!(added_us.round()),
        );
        results.insert(
            "watching_throughput_loss_pct".into(),
            json!((slower * 10.0).round() / 10.0),
        );
        results.insert("watching_spans_received".into(), json!(otlp.spans().len()));
        results.insert(
            "watching_cpu_added_us_per_turn".into(),
            json!((with.2 - base.2).round()),
        );
        say(&format!(
            "the gateway's CPU per turn: {:.0} µs unwatched, {:.0} µs watched",
            base.2, with.2
        ));
    }
    let results = Value::Object(results);
    println!("{}", table(&results));
    println!("{}", scaling_tables(&results));
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join(if only.is_some() {
        "gateway-partial.json"
    } else if quick {
        "gateway-quick.json"
    } else {
        "gateway.json"
    });
    std::fs::write(&file, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    say(&format!("wrote {}", file.display()));
}
