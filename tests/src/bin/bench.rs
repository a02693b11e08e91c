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
//! `sessions`, `telegram` or `watching`: the cost of exported traces and
//! scraped metrics) besides the idle figures, for profiling; its
//! figures go to `target/bench/gateway-partial.json`.

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

/// How much of each measurement to do.
struct Plan {
    starts: usize,
    turns: usize,
    sessions: usize,
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
    let child = gateway::spawn_serve(
        bin,
        &config_path,
        &dir.path().join("data"),
        &log_dir.join("gateway.log"),
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args.get(i + 1).cloned().unwrap_or_default());
    const PHASES: [&str; 6] = [
        "starts",
        "overhead",
        "throughput",
        "sessions",
        "telegram",
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
    let run = |phase: &str| only.as_deref().is_none_or(|o| o == phase);
    let plan = if quick {
        Plan {
            starts: 3,
            turns: 100,
            sessions: 500,
            concurrency: 16,
            load_secs: 3,
            telegram_turns: 20,
        }
    } else {
        Plan {
            starts: 15,
            turns: 1000,
            sessions: 10_000,
            concurrency: 64,
            load_secs: 15,
            telegram_turns: 200,
        }
    };
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
    let unlimited = "[channels.webchat.rate_limit]\nper_minute = 0\n";
    let (gw, _) = start(
        &bin,
        &http,
        &config(port, &model.base_url(), unlimited),
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
    // Sustained turns per second, many sessions at once.
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
        let cpu_before = gw.cpu();
        let began = Instant::now();
        let rate = {
            let (http, url) = (http.clone(), gw.url.clone());
            sustained(plan.concurrency, plan.load_secs, move |w, i| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    turn(&http, &url, &format!("load-{w}-{}", i % 8), "hello").await;
                }
            })
            .await
        };
        let cores = (gw.cpu() - cpu_before).as_secs_f64() / began.elapsed().as_secs_f64();
        say(&format!(
            "throughput {rate:.0} turns/s with {} concurrent clients; the gateway used {cores:.2} cores \
             (the fake model alone, asked by the same clients: {model_rate:.0} answers/s)",
            plan.concurrency
        ));
        results.insert("webchat_turns_per_sec".into(), json!(rate.round()));
        results.insert("webchat_concurrency".into(), json!(plan.concurrency));
        results.insert(
            "gateway_cores_used_under_load".into(),
            json!((cores * 100.0).round() / 100.0),
        );
        results.insert(
            "model_alone_answers_per_sec".into(),
            json!(model_rate.round()),
        );
    }
    // Memory after many distinct sessions, one turn each.
    if run("sessions") {
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..plan.concurrency {
            let http = http.clone();
            let url = gw.url.clone();
            let next = next.clone();
            let total = plan.sessions;
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    turn(&http, &url, &format!("session-{i}"), "hello").await;
                    if (i + 1).is_multiple_of(2000) {
                        say(&format!("sessions {}/{total}", i + 1));
                    }
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let after = gw.rss_kib();
        say(&format!(
            "RSS after {} sessions: {:.1} MB",
            plan.sessions,
            after as f64 / 1024.0
        ));
        results.insert("sessions".into(), json!(plan.sessions));
        results.insert("rss_after_sessions_kib".into(), json!(after));
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

/// The figures against the goals, as a Markdown table.
fn table(r: &Value) -> String {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let mb = |k: &str| f(k) / 1024.0;
    let rows = [
        (
            "cold start to /readyz (p50)",
            format!("{:.1} ms", f("start_to_ready_ms_p50")),
            "< 20 ms",
            f("start_to_ready_ms_p50") < 20.0,
        ),
        (
            "idle RSS",
            format!("{:.1} MB", mb("rss_idle_kib")),
            "< 20 MB",
            mb("rss_idle_kib") < 20.0,
        ),
        (
            "RSS after the sessions",
            format!(
                "{:.1} MB ({} sessions)",
                mb("rss_after_sessions_kib"),
                r["sessions"]
            ),
            "< 100 MB after 10,000",
            mb("rss_after_sessions_kib") < 100.0 && f("sessions") >= 10_000.0,
        ),
        (
            "web chat overhead p50",
            format!("{:.2} ms", f("webchat_overhead_ms_p50")),
            "< 2 ms",
            f("webchat_overhead_ms_p50") < 2.0,
        ),
        (
            "web chat overhead p99",
            format!("{:.2} ms", f("webchat_overhead_ms_p99")),
            "< 10 ms",
            f("webchat_overhead_ms_p99") < 10.0,
        ),
        (
            "Telegram overhead p50 / p99",
            format!(
                "{:.2} / {:.2} ms",
                f("telegram_overhead_ms_p50"),
                f("telegram_overhead_ms_p99")
            ),
            "—",
            true,
        ),
        (
            "web chat throughput",
            format!("{:.0} turns/s", f("webchat_turns_per_sec")),
            "≥ 2,000 turns/s",
            f("webchat_turns_per_sec") >= 2000.0,
        ),
        (
            "sent to the model, one-line message",
            format!(
                "{:.0} bytes (~{:.0} tokens)",
                f("model_request_bytes"),
                f("model_request_tokens_est")
            ),
            "< 12 KB",
            f("model_request_bytes") < 12.0 * 1024.0,
        ),
        (
            "sent to the model, `coding` profile",
            format!("{:.0} bytes", f("model_request_bytes_coding")),
            "—",
            true,
        ),
        (
            "watching: overhead added at p50",
            format!("{:.0} µs", f("watching_overhead_added_us_p50")),
            "< 100 µs",
            f("watching_overhead_added_us_p50") < 100.0,
        ),
        (
            "watching: throughput lost",
            format!("{:.1} %", f("watching_throughput_loss_pct")),
            "< 10 %",
            f("watching_throughput_loss_pct") < 10.0,
        ),
        (
            "release binary (stripped)",
            format!("{:.1} MB", f("binary_bytes") / 1e6),
            "< 30 MB",
            f("binary_bytes") < 30e6,
        ),
    ];
    let mut out = String::from("| measure | figure | goal | met |\n|---|---:|---|---|\n");
    for (name, figure, goal, met) in rows {
        if figure.contains("NaN") {
            continue; // not measured in this run (`--only`)
        }
        out.push_str(&format!(
            "| {name} | {figure} | {goal} | {} |\n",
            if goal == "—" {
                "—"
            } else if met {
                "yes"
            } else {
                "no"
            }
        ));
    }
    out
}
