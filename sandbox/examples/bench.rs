//! Sandbox latency benchmark: cold container start (first command of a new
//! session) and warm exec (a command in a running container), against the
//! real Docker engine. Not a test: it prints a table and writes JSON.
//!
//! ```sh
//! cargo run --release -p switchboard-sandbox --example bench -- [IMAGE ...]
//! ```
//!
//! Default images: `switchboard-sandbox:busybox` and
//! `switchboard-sandbox:bookworm` (build them with `switchboard sandbox
//! build-image`). Results go to `target/bench/sandbox.json`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use switchboard_sandbox::{ExecRequest, Place, SandboxSettings, Workbench, files};

const COLD_RUNS: usize = 10;
const WARM_RUNS: usize = 200;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let mut images: Vec<String> = std::env::args().skip(1).collect();
    if images.is_empty() {
        images = vec![
            "switchboard-sandbox:busybox".into(),
            "switchboard-sandbox:bookworm".into(),
        ];
    }
    let mut results = Vec::new();
    println!(
        "{:<32} {:>12} {:>12} {:>12} {:>12} {:>14}",
        "image", "cold p50 ms", "cold max ms", "warm p50 ms", "warm p99 ms", "read p50 ms"
    );
    for image in images {
        let state = std::env::temp_dir().join(format!("sb-bench-{}", std::process::id()));
        let bench = Workbench::new(
            SandboxSettings {
                image: image.clone(),
                ..Default::default()
            },
            &state,
            BTreeMap::new(),
        );
        let sb = bench.sandboxes().expect("sandbox on").clone();
        if !sb.image_present().await.unwrap_or(false) {
            eprintln!("skipping {image}: not built (switchboard sandbox build-image)");
            continue;
        }
        eprintln!("{image}: {COLD_RUNS} cold starts, {WARM_RUNS} warm execs ...");
        let mut cold = Vec::new();
        for i in 0..COLD_RUNS {
            let place = Place::new(format!("agent:bench:cold:{i}"), "bench");
            let t = Instant::now();
            let out = bench
                .exec(&place, ExecRequest::shell("true"))
                .await
                .unwrap();
            cold.push(t.elapsed());
            assert!(out.success());
        }
        sb.remove_all().await.unwrap();
        let place = Place::new("agent:bench:warm", "bench");
        bench
            .exec(&place, ExecRequest::shell("echo hi > f"))
            .await
            .unwrap();
        let mut warm = Vec::new();
        let mut read = Vec::new();
        for _ in 0..WARM_RUNS {
            let t = Instant::now();
            let out = bench
                .exec(&place, ExecRequest::shell("true"))
                .await
                .unwrap();
            warm.push(t.elapsed());
            assert!(out.success());
            let t = Instant::now();
            files::read_file(&bench, &place, "f", 0, 1024)
                .await
                .unwrap();
            read.push(t.elapsed());
        }
        sb.remove_all().await.unwrap();
        let _ = std::fs::remove_dir_all(&state);
        for v in [&mut cold, &mut warm, &mut read] {
            v.sort();
        }
        let row = serde_json::json!({
            "image": image,
            "cold_start_ms": { "p50": pct(&cold, 0.5), "max": pct(&cold, 1.0), "runs": COLD_RUNS },
            "warm_exec_ms": { "p50": pct(&warm, 0.5), "p99": pct(&warm, 0.99), "runs": WARM_RUNS },
            "read_file_ms": { "p50": pct(&read, 0.5), "p99": pct(&read, 0.99), "runs": WARM_RUNS },
        });
        println!(
            "{:<32} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>14.1}",
            image,
            pct(&cold, 0.5),
            pct(&cold, 1.0),
            pct(&warm, 0.5),
            pct(&warm, 0.99),
            pct(&read, 0.5)
        );
        results.push(row);
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join("sandbox.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    eprintln!("wrote {}", path.display());
}
