//! Instructions per turn, counted by callgrind: a figure this shared
//! machine's noise does not move.

use std::path::Path;
use std::time::{Duration, Instant};

use switchboard_tests::fake_openai::FakeOpenAi;
use switchboard_tests::gateway::{self, free_port};

use super::{config, say, turn};

/// Instructions the gateway executes per web chat turn, counted by
/// `valgrind --tool=callgrind` (repeatable whatever else the machine does,
/// unlike times): the gateway starts under callgrind with instrumentation
/// off, takes 50 warm-up turns, then counting goes on (from zero) for
/// `turns` turns one at a time (new users: a person, a session and a
/// transcript each) and the counts are dumped.
pub(crate) async fn instructions_per_turn(
    bin: &Path,
    http: &reqwest::Client,
    model: &FakeOpenAi,
    turns: usize,
) -> Option<f64> {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_path = dir.path().join("switchboard.toml");
    std::fs::write(&config_path, config(port, &model.base_url(), "")).unwrap();
    let out = dir.path().join("callgrind.out");
    let log_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let log = log_dir.join("gateway-callgrind.log");
    let _ = std::fs::remove_file(&log);
    let out_arg = format!("--callgrind-out-file={}", out.display());
    let mut child = gateway::serve_command(
        &[
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            &out_arg,
        ],
        bin,
        &config_path,
        &dir.path().join("data"),
        &log,
        &[("SWITCHBOARD_LOG".into(), "warn".into())],
    )
    .spawn()
    .ok()?;
    let pid = child.id();
    let url = format!("http://127.0.0.1:{port}");
    let began = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status() == 200
        {
            break;
        }
        if began.elapsed() > Duration::from_secs(300) || child.try_wait().ok()?.is_some() {
            say("the gateway did not become ready under callgrind");
            let _ = child.kill();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    say(&format!(
        "under callgrind, ready after {:.1} s; 50 warm-up turns",
        began.elapsed().as_secs_f64()
    ));
    for i in 0..50 {
        turn(http, &url, &format!("warm-{i}"), "hello").await;
    }
    // callgrind_control reaches the process through vgdb, which wakes it
    // even while it waits in a system call.
    let control = |args: &'static [&'static str]| {
        let pid = pid.to_string();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("callgrind_control")
                    .args(args)
                    .arg(pid)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .await
            .unwrap_or(false)
        }
    };
    if !control(&["--instr=on"]).await || !control(&["--zero"]).await {
        say("callgrind_control failed");
    }
    say(&format!("counting {turns} turns"));
    for i in 0..turns {
        turn(http, &url, &format!("counted-{i}"), "hello").await;
    }
    if !control(&["--dump"]).await {
        say("callgrind_control --dump failed");
    }
    let _ = child.kill();
    let _ = child.wait();
    // The dump holds a `summary:` (or `totals:`) line: events counted, Ir
    // first.
    let mut total = 0u64;
    let mut counted = None;
    for entry in std::fs::read_dir(dir.path()).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("callgrind.out") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let line = text
            .lines()
            .find(|l| l.starts_with("summary:"))
            .or_else(|| text.lines().find(|l| l.starts_with("totals:")));
        if let Some(n) = line.and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            && n > total
        {
            total = n;
            counted = Some(entry.path());
        }
    }
    // The dump counted is kept for `callgrind_annotate target/bench/callgrind.out`.
    if let Some(path) = counted {
        let _ = std::fs::copy(path, log_dir.join("callgrind.out"));
    }
    (total > 0).then(|| total as f64 / turns as f64)
}
