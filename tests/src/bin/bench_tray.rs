//! The tray's footprint: idle resident memory and CPU time of the real
//! `switchboard-tray` following a real gateway, on a private D-Bus session
//! bus with a StatusNotifierWatcher of its own (as a desktop's panel
//! provides).
//!
//! ```sh
//! cargo build --release -p switchboard-tray
//! SWITCHBOARD_TRAY_BIN=target/release/switchboard-tray \
//!     cargo run -p switchboard-tests --bin bench_tray   # target/bench/tray.json
//! ```
//!
//! It waits until the item registered and the first status arrived, lets
//! it settle, then reads `VmRSS` and the CPU time (user + system) it used
//! over an idle minute (`--quick`: 10 s).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_tests::fake_openai::FakeOpenAi;
use switchboard_tests::gateway::{self, Gateway, TOKEN, free_port, tray_binary};

fn say(what: &str) {
    eprintln!("bench_tray: {what}");
}

/// A process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmRSS` of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) `pid` used so far.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The panel's side: who registered an item.
struct Watcher(Arc<Mutex<Vec<String>>>);

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    fn register_status_notifier_item(&self, service: String) {
        self.0.lock().unwrap().push(service);
    }

    fn register_status_notifier_host(&self, _service: String) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let idle = Duration::from_secs(if quick { 10 } else { 60 });
    let dir = tempfile::tempdir().unwrap();

    // A private session bus.
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .arg(format!("--address=unix:dir={}", dir.path().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run dbus-daemon ({e}): install Debian's `dbus`"));
    let mut address = String::new();
    BufReader::new(bus.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let address = address.trim().to_string();
    let _bus = Killed(bus);
    let items = Arc::new(Mutex::new(Vec::new()));
    let _panel = zbus::conn::Builder::address(address.as_str())
        .unwrap()
        .name("org.kde.StatusNotifierWatcher")
        .unwrap()
        .serve_at("/StatusNotifierWatcher", Watcher(items.clone()))
        .unwrap()
        .build()
        .await
        .unwrap();

    // The gateway, idle (no sandbox, so nothing is troubled).
    let model = FakeOpenAi::start().await;
    let gw_dir = dir.path().join("gateway");
    std::fs::create_dir_all(&gw_dir).unwrap();
    let gw = Gateway::start(
        &gw_dir,
        &gateway::config(
            free_port(),
            &model.base_url(),
            "[sandbox]\nmode = \"off\"\n",
        ),
    )
    .await;

    let bin = tray_binary();
    say(&format!("tray {}", bin.display()));
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let tray = Killed(
        Command::new(&bin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("SWITCHBOARD_URL", &gw.url)
            .env("SWITCHBOARD_TOKEN", TOKEN)
            .env("SWITCHBOARD_TRAY_OPENER", "/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the tray"),
    );
    let pid = tray.0.id();
    let began = Instant::now();
    while items.lock().unwrap().is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the tray did not register its item within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    say(&format!(
        "item registered after {:?}; settling",
        began.elapsed()
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_before = cpu(pid);
    let rss_start = rss_kib(pid);
    say(&format!("idle for {} s", idle.as_secs()));
    tokio::time::sleep(idle).await;
    let cpu_idle = cpu(pid).saturating_sub(cpu_before);
    let rss = rss_kib(pid);
    let profile = if bin.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        "dev"
    };
    let result = json!({
        "profile": profile,
        "rss_idle_kib": rss,
        "rss_settled_kib": rss_start,
        "idle_secs": idle.as_secs(),
        "cpu_idle_ms": cpu_idle.as_millis() as u64,
        "cpu_idle_percent": cpu_idle.as_secs_f64() * 100.0 / idle.as_secs_f64(),
    });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("tray.json"), result.to_string()).unwrap();
    println!(
        "tray ({profile} build): idle RSS {:.1} MB (goal < 15 MB: {}), CPU over {} s idle {} ms ({:.3} %)",
        rss as f64 / 1024.0,
        if rss < 15 * 1024 { "met" } else { "NOT met" },
        idle.as_secs(),
        cpu_idle.as_millis(),
        cpu_idle.as_secs_f64() * 100.0 / idle.as_secs_f64()
    );
    println!("{result}");
}
