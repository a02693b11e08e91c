//! Start the real `switchboard` binary and talk to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// The control token every test gateway uses.
pub const TOKEN: &str = "sbt-Xq7mR2vL9kT4wZ8nC1pF6hJ3bD5gS0aE";

/// A binary of the workspace the tests run, and what it is built from.
struct Product {
    /// Its cargo package.
    package: &'static str,
    /// Its binary's name.
    bin: &'static str,
    /// The variable that names another build to test instead.
    env: &'static str,
    /// What it is built from, relative to the workspace root.
    sources: &'static [&'static str],
}

/// The gateway (the tray and these tests are not part of it).
const GATEWAY: Product = Product {
    package: "switchboard",
    bin: "switchboard",
    env: "SWITCHBOARD_BIN",
    sources: &[
        "Cargo.toml",
        "Cargo.lock",
        ".cargo",
        "gateway",
        "channels",
        "agents",
        "memory",
        "sandbox",
    ],
};

/// The desktop tray (it depends on no other workspace crate).
const TRAY: Product = Product {
    package: "switchboard-tray",
    bin: "switchboard-tray",
    env: "SWITCHBOARD_TRAY_BIN",
    sources: &["Cargo.toml", "Cargo.lock", ".cargo", "tray"],
};

/// `product`'s binary: its variable's value as given, or the build of the
/// profile these tests were built with, made current once per test
/// process.
fn current(
    product: &'static Product,
    built: &'static OnceLock<Result<PathBuf, String>>,
) -> PathBuf {
    if let Some(p) = std::env::var_os(product.env) {
        return PathBuf::from(p);
    }
    let built = built.get_or_init(|| {
        let (target_dir, profile) = own_build()?;
        build_if_stale(&target_dir, &profile, product)
    });
    match built {
        Ok(bin) => bin.clone(),
        Err(why) => panic!("{why}"),
    }
}

/// The `switchboard` binary the tests run: `SWITCHBOARD_BIN` as given, or
/// `target/<profile>/switchboard` of the profile these tests were built
/// with, made current once per test process by [`built_binary`] (so
/// `cargo test -p switchboard-tests` alone never tests a stale build).
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    current(&GATEWAY, &BUILT)
}

/// The `switchboard-tray` binary the tests run: `SWITCHBOARD_TRAY_BIN` as
/// given, or `target/<profile>/switchboard-tray`, built with `cargo build
/// -p switchboard-tray` when it is older than its sources, as [`binary`]
/// does for the gateway.
pub fn tray_binary() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    current(&TRAY, &BUILT)
}

/// The `switchboard` binary of cargo profile `profile` (`dev`, `release`,
/// ...) in this build's target directory, built with `cargo build -p
/// switchboard --bin switchboard --profile <profile>` unless it is already
/// newer than every source it is built from. For the bench:
/// `built_binary("release")`. Panics, saying why, when the build fails.
pub fn built_binary(profile: &str) -> PathBuf {
    own_build()
        .and_then(|(target_dir, _)| build_if_stale(&target_dir, profile, &GATEWAY))
        .unwrap_or_else(|why| panic!("{why}"))
}

/// The target directory and cargo profile this executable was built in:
/// `<target>/<profile dir>/deps/<test>` or `<target>/<profile dir>/<bin>`.
fn own_build() -> Result<(PathBuf, String), String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the test executable: {e}"))?;
    let mut dir = exe.parent().ok_or("the test executable has no folder")?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().ok_or("deps/ has no parent folder")?;
    }
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(name) => name.to_string(),
        None => {
            return Err(format!(
                "cannot tell the cargo profile of {}",
                exe.display()
            ));
        }
    };
    let target_dir = dir
        .parent()
        .ok_or_else(|| format!("cannot find the target folder of {}", exe.display()))?;
    Ok((target_dir.to_path_buf(), profile))
}

/// The workspace's root folder.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The newest modification time under `path` (files and folders, which
/// change when a file is removed), skipping `target` and hidden entries.
fn newest_under(path: &Path, newest: &mut Option<SystemTime>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if let Ok(m) = meta.modified() {
        *newest = (*newest).max(Some(m));
    }
    if !meta.is_dir() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "target" || name.starts_with('.') {
            continue;
        }
        newest_under(&entry.path(), newest);
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `<target_dir>/<profile dir>/<product's binary>`, built first unless it
/// (or the stamp of the last build from here, written when that build
/// started) is newer than every source. Cargo decides what to rebuild;
/// when nothing changed, nothing runs at all.
#[allow(clippy::print_stderr)] // progress of a build the tests wait for
fn build_if_stale(target_dir: &Path, profile: &str, product: &Product) -> Result<PathBuf, String> {
    let profile_dir = target_dir.join(match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    });
    let bin = profile_dir.join(product.bin);
    let stamp = profile_dir.join(format!("{}.tests-stamp", product.bin));
    let root = workspace_root();
    let mut newest = None;
    for part in product.sources {
        newest_under(&root.join(part), &mut newest);
    }
    let built = modified(&bin).map(|b| b.max(modified(&stamp).unwrap_or(b)));
    if bin.exists() && newest.is_some() && built >= newest {
        return Ok(bin);
    }
    let command = format!(
        "cargo build -p {} --bin {} --profile {profile}",
        product.package, product.bin
    );
    eprintln!(
        "switchboard-tests: {} is missing or older than the sources; running `{command}` (set {} to test another binary)",
        bin.display(),
        product.env
    );
    // Sources changed after this moment are not in the build: the stamp
    // is older than them, so the next run builds again.
    let _ = std::fs::create_dir_all(&profile_dir);
    let _ = std::fs::write(&stamp, b"");
    // The cargo running these tests (it sets CARGO), else the one that
    // built them, else the one on PATH.
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "-p", product.package, "--bin", product.bin])
        .args(["--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .status();
    let failed = match status {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!(
            "`{command}` failed ({s}): fix the build (its errors are above), or set {} to the binary to test",
            product.env
        )),
        Err(e) => Some(format!(
            "cannot run {} to build the {} binary: {e}. Build it with `{command}` and set {} to it",
            Path::new(&cargo).display(),
            product.bin,
            product.env
        )),
    };
    if let Some(why) = failed {
        let _ = std::fs::remove_file(&stamp);
        return Err(why);
    }
    if !bin.exists() {
        let _ = std::fs::remove_file(&stamp);
        return Err(format!(
            "`{command}` succeeded but {} is not there",
            bin.display()
        ));
    }
    eprintln!("switchboard-tests: using {}", bin.display());
    Ok(bin)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start `bin serve` with `config` and `data_dir`, its log appended to
/// `log`.
pub fn spawn_serve(bin: &Path, config: &Path, data_dir: &Path, log: &Path) -> Child {
    spawn_serve_env(bin, config, data_dir, log, &[])
}

/// [`spawn_serve`] with `env` added to its environment.
pub fn spawn_serve_env(
    bin: &Path,
    config: &Path,
    data_dir: &Path,
    log: &Path,
    env: &[(String, String)],
) -> Child {
    serve_command(&[], bin, config, data_dir, log, env)
        .spawn()
        .expect("start switchboard")
}

/// The command [`spawn_serve_env`] runs, started through `wrapper` (a
/// program and its arguments, e.g. `valgrind --tool=callgrind`) when it
/// is not empty.
pub fn serve_command(
    wrapper: &[&str],
    bin: &Path,
    config: &Path,
    data_dir: &Path,
    log: &Path,
    env: &[(String, String)],
) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the gateway's log file");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    command
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("serve")
        .env_remove("SWITCHBOARD_TOKEN")
        .env_remove("SWITCHBOARD_PASSPHRASE")
        .env("SWITCHBOARD_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    command
}

/// The config of a test gateway on `port` whose `main` agent asks
/// `model_base_url`; `extra` is appended verbatim.
pub fn config(port: u16, model_base_url: &str, extra: &str) -> String {
    config_for(
        port,
        model_base_url,
        "system_prompt = \"You are the test assistant.\"\n",
        extra,
    )
}

/// The gateway config of [`config`], with `agent` as the lines of
/// `[agents.main]` after its provider (empty: the built-in defaults, as a
/// new user has them).
pub fn config_for(port: u16, model_base_url: &str, agent: &str, extra: &str) -> String {
    format!(
        r#"[gateway]
bind = "127.0.0.1:{port}"
shutdown_grace_secs = 20

[gateway.auth]
token = "{TOKEN}"

[providers.fake]
kind = "openai"
base_url = "{model_base_url}"
model = "fake-model"
api_key = "sk-test-key"
timeout_secs = 30

[agents.main]
provider = "fake"
{agent}
{extra}
"#
    )
}

/// A running gateway process.
pub struct Gateway {
    child: Option<Child>,
    /// Its base URL.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its config file.
    pub config_path: PathBuf,
    log_path: PathBuf,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// Variables added to the environment of the gateway and its CLI.
    pub env: Vec<(String, String)>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Gateway {
    /// Write `config` into `dir` and start the gateway with it; returns when
    /// `/readyz` answers 200.
    pub async fn start(dir: &Path, config: &str) -> Self {
        Self::start_until(dir, config, "/readyz").await
    }

    /// Start the binary and wait only until it answers `/healthz` (for
    /// gateways that are not meant to become ready).
    pub async fn start_live(dir: &Path, config: &str) -> Self {
        Self::start_until(dir, config, "/healthz").await
    }

    /// [`Gateway::start`] with `env` added to its environment (and its
    /// CLI's).
    pub async fn start_with_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> Self {
        let mut gw = Self::prepare(dir, config);
        gw.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        gw.spawn_until("/readyz").await;
        gw
    }

    /// The gateway of `config` in `dir`, not started.
    pub fn prepare(dir: &Path, config: &str) -> Self {
        let config_path = dir.join("switchboard.toml");
        std::fs::write(&config_path, config).unwrap();
        let data_dir = dir.join("data");
        let port = config
            .lines()
            .find_map(|l| l.trim().strip_prefix("bind = \"127.0.0.1:"))
            .and_then(|rest| rest.trim_end_matches('"').parse::<u16>().ok())
            .expect("config has a loopback bind");
        Self {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            data_dir,
            config_path,
            log_path: dir.join("gateway.log"),
            http: reqwest::Client::new(),
            env: Vec::new(),
        }
    }

    async fn start_until(dir: &Path, config: &str, probe: &'static str) -> Self {
        let mut gw = Self::prepare(dir, config);
        gw.spawn_until(probe).await;
        gw
    }

    /// Start the process and return without waiting (for a start that is
    /// meant to fail: see [`Gateway::wait_exit`]).
    pub fn spawn_only(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.child = Some(spawn_serve_env(
            &binary(),
            &self.config_path,
            &self.data_dir,
            &self.log_path,
            &self.env,
        ));
    }

    /// Rewrite its config file (takes effect at the next start).
    pub fn rewrite_config(&self, config: &str) {
        std::fs::write(&self.config_path, config).unwrap();
    }

    async fn spawn(&mut self) {
        self.spawn_until("/readyz").await;
    }

    async fn spawn_until(&mut self, probe: &'static str) {
        let child = spawn_serve_env(
            &binary(),
            &self.config_path,
            &self.data_dir,
            &self.log_path,
            &self.env,
        );
        self.child = Some(child);
        self.wait_for(probe).await;
    }

    /// Start again after [`kill`](Self::kill) or [`terminate`](Self::terminate).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn().await;
    }

    /// Poll `/readyz` until 200 (at most 30 s), failing early if the
    /// process exits.
    pub async fn wait_ready(&mut self) {
        self.wait_for("/readyz").await;
    }

    async fn wait_for(&mut self, probe: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "switchboard exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = self.http.get(format!("{}{probe}", self.url)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "switchboard was not ready within 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// What the gateway logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kill it without warning (a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Send SIGTERM and wait (at most 60 s) for it to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.signal_term();
        self.wait_exit().await
    }

    /// Send SIGTERM.
    pub fn signal_term(&self) {
        self.signal("TERM");
    }

    /// Send the signal `name` (`HUP`, `TERM`, …).
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// The first line of the log that contains `text`, once there is one
    /// (the log is read again every 25 ms; fails after `within`, with the
    /// log).
    pub async fn log_until(&self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(text)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "`{text}` was not logged within {within:?}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Wait (at most 60 s) for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "switchboard did not exit within 60 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET path` with the token; returns status and JSON body.
    /// The first pending approval request, once there is one (fails after
    /// 30 s, with the log).
    pub async fn pending_approval(&self) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, v) = self.get("/api/approvals").await;
            if let Some(first) = v["approvals"].as_array().and_then(|a| a.first()) {
                return first.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no approval request appeared:\n{}",
                self.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` with the token and a JSON body; returns status, headers
    /// and text.
    pub async fn post_json(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().await.unwrap())
    }

    /// Ask the assistant through `/v1/chat/completions` as `user` without
    /// streaming; returns status and body.
    pub async fn chat(&self, user: &str, text: &str) -> (u16, Value) {
        let body = serde_json::json!({
            "model": "main",
            "user": user,
            "messages": [{ "role": "user", "content": text }],
        });
        let (status, _, text) = self.post_json("/v1/chat/completions", &body, &[]).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The transcript of a session (`None` when it does not exist).
    pub async fn transcript(&self, key: &str) -> Option<Vec<(String, String)>> {
        let (status, v) = self.get(&format!("/api/sessions/{}", urlencode(key))).await;
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "{v}");
        Some(
            v["transcript"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["role"].as_str().unwrap().to_string(),
                        e["content"].as_str().unwrap().to_string(),
                    )
                })
                .collect(),
        )
    }

    /// `/api/status`'s entry for `component` once `check` holds (within
    /// 20 s). Health has no change notification, so this asks again every
    /// 50 ms.
    pub async fn component_until(
        &self,
        component: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (_, status) = self.get("/api/status").await;
            let c = status["components"][component].clone();
            if check(&c) {
                return c;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {status}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Approve the pairing request whose notice (as the stranger saw it)
    /// is `notice`, with `switchboard pairing approve CHANNEL CODE`.
    pub fn approve_pairing(&self, channel: &str, notice: &str) {
        assert!(
            notice.contains(&format!("switchboard pairing approve {channel}")),
            "the notice does not say how to approve: {notice}"
        );
        let code = notice
            .split_whitespace()
            .find(|w| {
                w.len() == 8
                    && w.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            })
            .unwrap_or_else(|| panic!("no pairing code in: {notice}"));
        let (ok, out, err) = self.cli(&["pairing", "approve", channel, code]);
        assert!(ok.success(), "{out}{err}");
    }

    /// Run a CLI command against this gateway; returns exit status, stdout
    /// and stderr.
    pub fn cli(&self, args: &[&str]) -> (ExitStatus, String, String) {
        self.cli_with_stdin(args, None)
    }

    /// [`Gateway::cli`] with `stdin` piped in (`None`: no input).
    pub fn cli_with_stdin(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (ExitStatus, String, String) {
        use std::io::Write as _;
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .env_remove("SWITCHBOARD_TOKEN")
            .env_remove("SWITCHBOARD_PASSPHRASE")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }
}

/// Percent-encode a path segment.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
