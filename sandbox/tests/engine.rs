//! The sandbox against the real Docker engine (`scripts/test-all.sh` starts
//! `dockerd` when none answers). Most tests use a busybox image built in
//! seconds from Debian's static busybox; one checks the default image.

#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchboard_sandbox::files;
use switchboard_sandbox::image::Recipe;
use switchboard_sandbox::{
    ExecRequest, Place, SandboxError, SandboxSettings, Sandboxes, Workbench, WorkspaceAccess,
};
use tokio::sync::OnceCell;

const TEST_IMAGE: &str = "switchboard-sandbox:busybox";

static IMAGE: OnceCell<()> = OnceCell::const_new();

/// Build the busybox image once per run (it is rebuilt each run so the
/// recipe itself is exercised).
async fn image() {
    IMAGE
        .get_or_init(|| async {
            let sb = Sandboxes::new(SandboxSettings::default(), temp("image"), BTreeMap::new());
            if let Err(e) = sb.engine().await {
                panic!("no Docker engine answers ({e}); scripts/test-all.sh starts one");
            }
            sb.build_image(
                &Recipe::Busybox {
                    binary: "/bin/busybox".into(),
                },
                TEST_IMAGE,
                Arc::new(|line: &str| eprintln!("{line}")),
            )
            .await
            .expect("build the busybox test image");
        })
        .await;
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sb-test-{name}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    t ^ (N.fetch_add(1, Ordering::Relaxed) << 32)
}

fn settings() -> SandboxSettings {
    SandboxSettings {
        image: TEST_IMAGE.into(),
        memory_mb: 64,
        pids_limit: 64,
        exec_timeout_secs: 20,
        remove_on_shutdown: true,
        ..Default::default()
    }
}

/// A workbench of its own (own state dir, so own containers), removed at
/// the end of the test.
struct Bench {
    wb: Workbench,
    state: PathBuf,
}

impl Bench {
    async fn new(s: SandboxSettings) -> Self {
        Self::with_agents(s, BTreeMap::new()).await
    }
    async fn with_agents(s: SandboxSettings, agents: BTreeMap<String, PathBuf>) -> Self {
        image().await;
        let state = temp("state");
        Self {
            wb: Workbench::new(s, &state, agents),
            state,
        }
    }
    fn sb(&self) -> &Sandboxes {
        self.wb.sandboxes().unwrap()
    }
    async fn sh(&self, place: &Place, line: &str) -> switchboard_sandbox::ExecOutput {
        self.wb.exec(place, ExecRequest::shell(line)).await.unwrap()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        // Best effort: remove this test's containers.
        if let Some(sb) = self.wb.sandboxes().cloned() {
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async { sb.remove_all().await })
            })
            .join();
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn place(session: &str) -> Place {
    Place::new(format!("agent:main:test:dm:{session}"), "main")
}

#[tokio::test]
async fn a_command_gives_its_output_and_exit_code_as_a_non_root_user() {
    let b = Bench::new(settings()).await;
    let p = place("basic");
    let out = b.sh(&p, "echo out; echo err >&2; exit 3").await;
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err\n");
    assert_eq!(out.exit_code, Some(3));
    let who = b
        .sh(
            &p,
            "id -u; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status",
        )
        .await;
    let text = who.stdout_text();
    assert!(text.starts_with("1000\n"), "{text}");
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    let ro = b
        .sh(
            &p,
            "echo x > /etc/owned; echo x > /tmp/ok && echo tmp-writable",
        )
        .await;
    assert!(ro.stderr_text().contains("Read-only file system"), "{ro:?}");
    assert!(ro.stdout_text().contains("tmp-writable"));
    // Labels name the session.
    let list = b.sb().list(false).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].session, p.session_key);
    assert_eq!(list[0].state, "running");
}

#[tokio::test]
async fn output_past_the_cap_is_cut_and_counted() {
    let b = Bench::new(SandboxSettings {
        max_output_bytes: 1000,
        ..settings()
    })
    .await;
    let out = b.sh(&place("cap"), "yes | head -c 5000").await;
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(out.dropped, 4000);
}

#[tokio::test]
async fn a_fork_bomb_is_held_by_the_pids_limit() {
    let b = Bench::new(SandboxSettings {
        exec_timeout_secs: 5,
        ..settings()
    })
    .await;
    let p = place("bomb");
    // The bomb goes off in a child forked before any of it runs, and the
    // shell then becomes `sleep` without forking: a full process table
    // cannot make the command fail early instead of running into its limit.
    let out = b.sh(&p, "(f() { f | f & }; f) & exec sleep 60").await;
    assert!(out.timed_out, "{out:?}");
    // The machine and the session both survive: the next command runs and
    // the container holds only a handful of processes again.
    let after = b.sh(&p, "echo alive; ls -d /proc/[0-9]* | wc -l").await;
    let text = after.stdout_text();
    assert!(text.starts_with("alive\n"), "{after:?}");
    let procs: u32 = text.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(procs < 10, "{procs} processes left");
}

#[tokio::test]
async fn a_memory_hog_is_killed_by_the_memory_limit() {
    let b = Bench::new(settings()).await;
    let out = b
        .sh(
            &place("hog"),
            "awk 'BEGIN { s = \"x\"; while (1) s = s s }'",
        )
        .await;
    assert!(!out.timed_out);
    assert_eq!(out.exit_code, Some(137), "{out:?}");
}

#[tokio::test]
async fn the_network_is_off_unless_allowed() {
    // A listener on the host, reached through the engine's bridge gateway.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"hello from the host\n").await;
        }
    });
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let bridge = docker
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .unwrap();
    // The bridge's gateway is the host's side of it: the subnet's first address.
    let subnet = bridge.ipam.unwrap().config.unwrap()[0]
        .subnet
        .clone()
        .unwrap();
    let net = subnet.split('/').next().unwrap();
    let gateway = format!("{}.1", net.rsplit_once('.').unwrap().0);
    let probe = format!("nc -w 3 {gateway} {port} </dev/null; echo rc=$?; ls /sys/class/net");

    let closed = Bench::new(settings()).await;
    let out = closed.sh(&place("net"), &probe).await;
    assert!(
        !out.stdout_text().contains("hello from the host"),
        "{out:?}"
    );
    assert!(out.stdout_text().ends_with("rc=1\nlo\n"), "{out:?}");

    let open = Bench::new(SandboxSettings {
        network: "bridge".into(),
        ..settings()
    })
    .await;
    let out = open.sh(&place("net"), &probe).await;
    assert!(out.stdout_text().contains("hello from the host"), "{out:?}");
}

#[tokio::test]
async fn files_stay_in_the_workspace_and_host_files_are_out_of_reach() {
    let b = Bench::new(settings()).await;
    let p = place("files");
    let wb = &b.wb;
    // A secret on the host, outside anything mounted.
    let secret_dir = temp("secret");
    let secret = secret_dir.join("secret.txt");
    std::fs::write(&secret, "host secret").unwrap();

    let written = files::write_file(wb, &p, "notes/a.txt", b"one\ntwo\n")
        .await
        .unwrap();
    assert_eq!(written, "/workspace/notes/a.txt");
    // It lands in the scope's directory on the host.
    let host = b.sb().host_dir(&p).join("notes/a.txt");
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "one\ntwo\n");
    let chunk = files::read_file(wb, &p, "notes/a.txt", 0, 100)
        .await
        .unwrap();
    assert_eq!(chunk.bytes, b"one\ntwo\n");
    assert!(!chunk.more);
    let part = files::read_file(wb, &p, "notes/a.txt", 4, 2).await.unwrap();
    assert_eq!((part.bytes.as_slice(), part.more), (&b"tw"[..], true));

    for bad in ["/etc/passwd", "../../etc/passwd", &secret.to_string_lossy()] {
        let err = files::read_file(wb, &p, bad, 0, 100).await.unwrap_err();
        assert!(
            err.to_string().contains("outside the workspace"),
            "{bad}: {err}"
        );
    }
    let err = files::write_file(wb, &p, "/etc/cron.d/x", b"x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("outside the workspace"), "{err}");
    // A symlink planted by a command does not lead out either.
    b.sh(
        &p,
        "ln -s /etc/passwd /workspace/link; ln -s /etc /workspace/etc",
    )
    .await;
    let err = files::read_file(wb, &p, "link", 0, 100).await.unwrap_err();
    assert!(
        err.to_string().contains("leads outside the workspace"),
        "{err}"
    );
    let err = files::write_file(wb, &p, "etc/evil", b"x")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("leads outside the workspace"),
        "{err}"
    );
    // A command cannot see the host's files at all.
    let out = b.sh(&p, &format!("cat {}", secret.display())).await;
    assert_ne!(out.exit_code, Some(0));
    assert!(!out.stdout_text().contains("host secret"));

    // Editing: exact, unique, or a clear refusal that changes nothing.
    files::edit_file(wb, &p, "notes/a.txt", "two", "deux")
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "one\ndeux\n");
    let err = files::edit_file(wb, &p, "notes/a.txt", "three", "x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    files::write_file(wb, &p, "twice.txt", b"a a")
        .await
        .unwrap();
    let err = files::edit_file(wb, &p, "twice.txt", "a", "b")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("occurs 2 times"), "{err}");

    let (dir, entries, more) = files::list_files(wb, &p, "", 2, 100).await.unwrap();
    assert_eq!(dir, "/workspace");
    assert!(entries.contains(&"notes/".to_string()), "{entries:?}");
    assert!(entries.contains(&"notes/a.txt".to_string()), "{entries:?}");
    assert!(!more);
    let _ = std::fs::remove_dir_all(secret_dir);
}

#[tokio::test]
async fn the_agent_workspace_is_mounted_as_configured() {
    let agent_dir = temp("agent");
    std::fs::write(agent_dir.join("README"), "agent notes").unwrap();
    let agents = BTreeMap::from([("main".to_string(), agent_dir.clone())]);
    let p = place("agent-ws");

    let ro = Bench::with_agents(
        SandboxSettings {
            workspace: WorkspaceAccess::Ro,
            ..settings()
        },
        agents.clone(),
    )
    .await;
    let chunk = files::read_file(&ro.wb, &p, "/agent/README", 0, 100)
        .await
        .unwrap();
    assert_eq!(chunk.bytes, b"agent notes");
    let err = files::write_file(&ro.wb, &p, "/agent/new", b"x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    let out = ro.sh(&p, "echo x > /agent/new").await;
    assert!(
        out.stderr_text().contains("Read-only file system"),
        "{out:?}"
    );
    drop(ro);

    let rw = Bench::with_agents(
        SandboxSettings {
            workspace: WorkspaceAccess::Rw,
            ..settings()
        },
        agents,
    )
    .await;
    files::write_file(&rw.wb, &p, "/agent/new", b"made in the sandbox")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(agent_dir.join("new")).unwrap(),
        "made in the sandbox"
    );
    let none = Bench::new(settings()).await;
    let err = files::read_file(&none.wb, &p, "/agent/README", 0, 100)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("outside the workspace"), "{err}");
    let _ = std::fs::remove_dir_all(agent_dir);
}

#[tokio::test]
async fn a_timeout_really_ends_the_command_and_its_children() {
    let b = Bench::new(settings()).await;
    let p = place("timeout");
    let mut req = ExecRequest::shell("sleep 301 & setsid sleep 302 & sleep 303");
    req.timeout = Some(Duration::from_secs(2));
    let out = b.wb.exec(&p, req).await.unwrap();
    assert!(out.timed_out);
    assert_eq!(out.timeout, Duration::from_secs(2));
    let ps = b.sh(&p, "ps -o args").await.stdout_text();
    for s in ["sleep 301", "sleep 302", "sleep 303"] {
        assert!(!ps.contains(s), "{s} still runs:\n{ps}");
    }
}

#[tokio::test]
async fn concurrent_calls_of_one_session_share_one_container() {
    let b = Bench::new(settings()).await;
    let p = place("concurrent");
    // Both ask at once; they take turns in the one container (neither
    // finds the other's mark while it holds it), and each finds nothing the
    // other left running.
    let line = "[ -e busy ] && echo overlap; touch busy; n=31; ps -o args | grep -c \"^sleep ${n}01\"; sleep ${n}01 >/dev/null 2>&1 & sleep 0.5; rm busy";
    let (one, two) = tokio::join!(b.sh(&p, line), b.sh(&p, line));
    assert_eq!(one.stdout_text(), "0\n");
    assert_eq!(two.stdout_text(), "0\n");
    let list = b.sb().list(false).await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
}

/// What runs in `place`'s container, less the `ps` asking.
async fn processes(b: &Bench, p: &Place) -> Vec<String> {
    let ps = b.sh(p, "ps -o args").await.stdout_text();
    ps.lines()
        .skip(1)
        .filter(|l| !l.contains("ps -o args"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn nothing_a_command_starts_outlives_it_however_it_detaches() {
    let b = Bench::new(settings()).await;
    let p = place("escapes");
    b.sh(&p, "true").await;
    let before = processes(&b, &p).await;
    // Each of these returns at once and leaves a process behind that is
    // not in its process group, or not its child, or has no trace of it
    // in its environment.
    let escapes = [
        "env -i sleep 4101 >/dev/null 2>&1 &",
        "nohup sleep 4102 >/dev/null 2>&1 &",
        "setsid sleep 4103 >/dev/null 2>&1 &",
        "( ( sleep 4104 >/dev/null 2>&1 & ) & )",
        "setsid sh -c 'exec env -i sh -c \"sleep 4105\"' </dev/null >/dev/null 2>&1 &",
        "cp /bin/busybox /tmp/innocent && (cd /tmp && exec -a sleep ./innocent sleep 4106 >/dev/null 2>&1 &)",
        // A chain that hops to a new process id every few milliseconds.
        "hop() { sleep 0.01; hop & exit 0; }; (hop &) >/dev/null 2>&1",
    ];
    for line in escapes {
        let out = b.sh(&p, line).await;
        assert!(!out.timed_out, "{line}: {out:?}");
        assert_eq!(processes(&b, &p).await, before, "after `{line}`");
    }
    // And past the time limit, with the escapes running when it strikes.
    let mut req = ExecRequest::shell(format!("{}\nsleep 4107", escapes.join("\n")));
    req.timeout = Some(Duration::from_secs(2));
    let out = b.wb.exec(&p, req).await.unwrap();
    assert!(out.timed_out);
    assert_eq!(processes(&b, &p).await, before);
}

#[tokio::test]
async fn a_cancelled_command_is_ended() {
    let b = Bench::new(settings()).await;
    let p = place("cancel");
    b.sh(&p, "true").await;
    let before = processes(&b, &p).await;
    let dir = b.wb.host_dir(&p).unwrap();
    let wb = &b.wb;
    let mut run = Box::pin(wb.exec(
        &p,
        ExecRequest::shell("setsid sleep 5101 >/dev/null 2>&1 & touch started; sleep 5102"),
    ));
    // Drive the command until it has started, then drop it as a cancelled
    // turn drops its tool call.
    let started = async {
        while !dir.join("started").exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        out = &mut run => panic!("the command ended by itself: {out:?}"),
        () = started => {}
    }
    drop(run);
    assert_eq!(processes(&b, &p).await, before);
}

#[tokio::test]
async fn one_file_cannot_grow_past_the_workspace_limit() {
    let b = Bench::new(SandboxSettings {
        workspace_max_mb: 2,
        ..settings()
    })
    .await;
    let p = place("fsize");
    let out = b
        .sh(
            &p,
            "dd if=/dev/zero of=big bs=1048576 count=8; echo exit=$?",
        )
        .await;
    assert!(!out.stdout_text().contains("exit=0"), "{out:?}");
    let size = std::fs::metadata(b.wb.host_dir(&p).unwrap().join("big"))
        .unwrap()
        .len();
    assert!(size <= 2 * 1024 * 1024, "big grew to {size} bytes");
    // Many files together: the command is stopped once the workspace is
    // over its limit, and says why.
    let out = b
        .sh(
            &p,
            "rm -f big; for i in 1 2 3 4; do dd if=/dev/zero of=f$i bs=1048576 count=1 2>/dev/null; done; sleep 30; echo done",
        )
        .await;
    assert!(!out.timed_out, "{out:?}");
    assert!(!out.stdout_text().contains("done"), "{out:?}");
    assert!(
        out.stderr_text().contains("over its limit of 2 MiB"),
        "{}",
        out.stderr_text()
    );
}

#[tokio::test]
async fn host_commands_get_none_of_the_gateways_environment() {
    let state = temp("hostenv");
    let wb = Workbench::new(
        SandboxSettings {
            mode: switchboard_sandbox::SandboxMode::Off,
            host_exec: true,
            env: BTreeMap::from([("PIP_INDEX_URL".to_string(), "http://mirror".to_string())]),
            ..Default::default()
        },
        &state,
        BTreeMap::new(),
    );
    // The test runner's own environment (cargo sets CARGO_* for it) stands
    // in for the gateway's tokens and keys.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
    let out = wb
        .exec(&place("hostenv"), ExecRequest::shell("env"))
        .await
        .unwrap();
    let mut names: Vec<String> = out
        .stdout_text()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    names.sort();
    names.retain(|n| !matches!(n.as_str(), "PWD" | "SHLVL" | "_" | "OLDPWD"));
    assert_eq!(
        names,
        ["HOME", "LANG", "PATH", "PIP_INDEX_URL", "TERM"],
        "{}",
        out.stdout_text()
    );
    assert!(out.stdout_text().contains("PIP_INDEX_URL=http://mirror"));
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test]
async fn sessions_get_their_own_containers_and_agent_scope_shares() {
    let b = Bench::new(settings()).await;
    b.sh(&place("s1"), "echo private > mine").await;
    let other = b.sh(&place("s2"), "cat mine").await;
    assert_ne!(
        other.exit_code,
        Some(0),
        "another session's file is visible"
    );
    assert_eq!(b.sb().list(false).await.unwrap().len(), 2);

    let shared = Bench::new(SandboxSettings {
        scope: switchboard_sandbox::SandboxScope::Agent,
        ..settings()
    })
    .await;
    shared.sh(&place("s1"), "echo shared > ours").await;
    let seen = shared.sh(&place("s2"), "cat ours").await;
    assert_eq!(seen.stdout_text(), "shared\n");
    assert_eq!(shared.sb().list(false).await.unwrap().len(), 1);
}

#[tokio::test]
async fn idle_containers_are_pruned_and_busy_ones_kept() {
    let b = Bench::new(SandboxSettings {
        idle_prune_secs: 0,
        ..settings()
    })
    .await;
    let idle = place("idle");
    let busy = place("busy");
    b.sh(&idle, "echo x > kept-on-host").await;
    let host = b.sb().host_dir(&busy);
    let wb = &b.wb;
    let long = async {
        wb.exec(
            &busy,
            ExecRequest::shell(
                "touch started; while [ ! -e go ]; do sleep 0.05; done; echo finished",
            ),
        )
        .await
        .unwrap()
    };
    let prune = async {
        wait_for(&host.join("started")).await;
        let removed = b.sb().prune_idle().await.unwrap();
        std::fs::write(host.join("go"), "").unwrap();
        removed
    };
    let (out, removed) = tokio::join!(long, prune);
    assert_eq!(out.stdout_text(), "finished\n");
    assert_eq!(removed.len(), 1, "{removed:?}");
    let left = b.sb().list(false).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].session, busy.session_key);
    // The pruned session gets a fresh container; its files were on the host.
    let again = b.sh(&idle, "cat kept-on-host").await;
    assert_eq!(again.stdout_text(), "x\n");
    // `prune` (as the CLI does) removes what runs nothing.
    let (gone, kept) = b.sb().prune(false).await.unwrap();
    assert_eq!((gone.len(), kept.len()), (2, 0));
    assert!(b.sb().list(false).await.unwrap().is_empty());
}

#[tokio::test]
async fn containers_past_their_maximum_age_are_pruned_even_when_recently_used() {
    let b = Bench::new(SandboxSettings {
        idle_prune_secs: 3600,
        max_age_secs: 0,
        ..settings()
    })
    .await;
    b.sh(&place("old"), "true").await;
    let removed = b.sb().prune_idle().await.unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(b.sb().list(false).await.unwrap().is_empty());

    let young = Bench::new(SandboxSettings {
        idle_prune_secs: 3600,
        ..settings()
    })
    .await;
    young.sh(&place("young"), "true").await;
    assert!(young.sb().prune_idle().await.unwrap().is_empty());
    assert_eq!(young.sb().list(false).await.unwrap().len(), 1);
}

/// Wait until `path` exists (it is made by a command in the sandbox).
async fn wait_for(path: &Path) {
    for _ in 0..600 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test]
async fn a_missing_image_names_the_command_that_builds_it() {
    let b = Bench::new(SandboxSettings {
        image: "switchboard-sandbox:not-built".into(),
        ..settings()
    })
    .await;
    let err =
        b.wb.exec(&place("img"), ExecRequest::shell("true"))
            .await
            .unwrap_err();
    assert!(matches!(err, SandboxError::ImageMissing { .. }));
    assert!(
        err.to_string().contains("switchboard sandbox build-image"),
        "{err}"
    );
}

#[tokio::test]
async fn an_engine_that_goes_away_mid_session_fails_closed() {
    image().await;
    let dir = temp("proxy");
    let socket = dir.join("docker.sock");
    let proxy = SocketProxy::start(&socket, Path::new("/var/run/docker.sock"));
    let b = Bench::new(SandboxSettings {
        docker_host: Some(format!("unix://{}", socket.display())),
        ..settings()
    })
    .await;
    let p = place("engine-gone");
    assert_eq!(b.sh(&p, "echo up").await.stdout_text(), "up\n");
    let owner = b.sb().owner().to_string();
    proxy.stop();
    let marker = dir.join("ran-on-host");
    let err =
        b.wb.exec(
            &p,
            ExecRequest::shell(format!("touch {}", marker.display())),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, SandboxError::EngineUnreachable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("nothing ran"), "{err}");
    assert!(
        err.to_string().contains(&socket.display().to_string()),
        "{err}"
    );
    assert!(!marker.exists(), "the command ran on the host");
    // Clean up through the real socket.
    let direct = Sandboxes::new(settings(), &b.state, BTreeMap::new());
    assert_eq!(direct.owner(), owner);
    direct.remove_all().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// A unix-socket proxy in front of the engine that can be cut off.
struct SocketProxy {
    task: tokio::task::JoinHandle<()>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl SocketProxy {
    fn start(at: &Path, engine: &Path) -> Self {
        let listener = tokio::net::UnixListener::bind(at).unwrap();
        let engine = engine.to_path_buf();
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let list = conns.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let engine = engine.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::UnixStream::connect(&engine).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                    }
                });
                list.lock().unwrap().push(h);
            }
        });
        Self { task, conns }
    }

    fn stop(&self) {
        self.task.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

#[tokio::test]
async fn the_default_image_has_what_agents_reach_for() {
    let sb = Sandboxes::new(SandboxSettings::default(), temp("default"), BTreeMap::new());
    assert!(
        sb.image_present().await.unwrap(),
        "the default image {} is missing: scripts/test-all.sh builds it (`switchboard sandbox build-image`)",
        sb.settings().image
    );
    let wb = Workbench::new(SandboxSettings::default(), temp("default"), BTreeMap::new());
    let p = place("default-image");
    let out = wb
        .exec(
            &p,
            ExecRequest::shell(
                "python3 -c 'print(6*7)' && git --version && curl --version | head -1 && echo '{\"a\":1}' | jq .a && rg --version | head -1 && id -un",
            ),
        )
        .await
        .unwrap();
    wb.sandboxes().unwrap().remove_all().await.unwrap();
    let text = out.stdout_text();
    assert!(out.success(), "{out:?}");
    assert!(text.starts_with("42\ngit version"), "{text}");
    assert!(text.contains("curl "), "{text}");
    assert!(text.contains("\n1\nripgrep "), "{text}");
    assert!(text.ends_with("sandbox\n"), "{text}");
}
