//! A real PostgreSQL server for tests.
//!
//! Debian's PostgreSQL server binaries (package `postgresql`, installed by
//! `scripts/test-all.sh`) make a cluster with `initdb` in a temporary
//! directory, as a non-root user (`postgres` when the tests run as root),
//! with password authentication, and serve it on a free loopback port.
//! One server per test process: it stops, and its directory is removed,
//! when the process ends (a shell beside it waits on a pipe from us). Each
//! test takes a fresh database of its own with [`Postgres::database`].
//!
//! This file is also compiled into `memory`'s store conformance tests
//! (`#[path]`), so it uses only `std`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The role and password every test database is owned by.
pub const USER: &str = "switchboard";

/// A running PostgreSQL server.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    password: String,
    bin: PathBuf,
    next: AtomicU32,
    /// The shell that stops the server when this pipe closes.
    _watch: Mutex<(Child, ChildStdin)>,
}

const SCRIPT: &str = r#"
set -e
bin=$1 port=$2 pw=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-pg.XXXXXX")
printf '%s\n' "$pw" > "$dir/pw"
if ! "$bin/initdb" -D "$dir/data" -U switchboard --pwfile="$dir/pw" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 > "$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1
fi
rm -f "$dir/pw"
"$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c full_page_writes=off -c max_connections=400 > "$dir/server.log" 2>&1 &
pid=$!
echo "dir $dir"
read _ || true
kill -INT "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
rm -rf "$dir"
"#;

impl Postgres {
    /// The test process's server, started at the first call.
    pub fn shared() -> &'static Postgres {
        static ONE: OnceLock<Postgres> = OnceLock::new();
        ONE.get_or_init(|| Postgres::start().unwrap_or_else(|e| panic!("{e}")))
    }

    fn start() -> Result<Postgres, String> {
        let bin = server_binaries()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let password: String = format!("pw-{}-{port}", std::process::id());
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let mut command = if root {
            // PostgreSQL refuses to run as root.
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", SCRIPT, "sh"]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", SCRIPT, "sh"]);
            c
        };
        let mut child = command
            .arg(&bin)
            .arg(port.to_string())
            .arg(&password)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start PostgreSQL's initdb: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .map_err(|e| format!("reading from the PostgreSQL starter: {e}"))?;
        let Some(dir) = line.trim().strip_prefix("dir ") else {
            return Err(format!(
                "initdb failed (see its output above); is `postgres` a user here? {line}"
            ));
        };
        let pg = Postgres {
            port,
            password,
            bin,
            next: AtomicU32::new(0),
            _watch: Mutex::new((child, stdin)),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(pg.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-t", "1", "-p"])
                .arg(port.to_string())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(pg);
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(format!("{dir}/server.log")).unwrap_or_default();
                return Err(format!(
                    "PostgreSQL did not accept connections within 60 s:\n{log}"
                ));
            }
            // pg_isready waits up to a second itself; this only spaces tries.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        let name = format!("t{}", self.next.fetch_add(1, Ordering::Relaxed));
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-U", USER, "-p"])
            .arg(self.port.to_string())
            .arg(&name)
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    /// The URL of database `name`, with the password.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{name}",
            self.password, self.port
        )
    }

    /// The password of [`USER`].
    pub fn password(&self) -> &str {
        &self.password
    }
}

/// The newest installed server's `bin` directory.
fn server_binaries() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL's server binaries are not installed (no /usr/lib/postgresql/*/bin/initdb): \
         install Debian's `postgresql` package (scripts/test-all.sh does)"
            .to_string()
    })
}
