//! The desktop tray, headless, against the real gateway: a private D-Bus
//! session bus (`dbus-daemon` from Debian's `dbus` package), a
//! StatusNotifierWatcher and a notification server served by this test,
//! the real `switchboard` and the real `switchboard-tray`. Everything is
//! read through D-Bus as a tray host reads it: the registered item, its
//! `Status` and tooltip as the gateway changes (a waiting approval makes
//! it `NeedsAttention`, a killed gateway `Passive`), the menu from
//! `com.canonical.dbusmenu.GetLayout`, a click on **Open control UI**
//! through `Event` (the opener gets a link that signs in once), and the
//! approval's notification, whose action opens the Approvals page.
// org.freedesktop.Notifications.Notify takes eight arguments.
#![allow(clippy::too_many_arguments)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_tests::fake_openai::FakeOpenAi;
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port, tray_binary};
use switchboard_tests::wait_on;
use tokio::sync::Notify;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedValue, Value};

const WAIT: Duration = Duration::from_secs(30);

/// An agent whose `session_status` tool waits for the operator; no
/// sandbox, so nothing is troubled while idle.
const GUARDED: &str = r#"
[agents.guarded]
provider = "fake"

[agents.guarded.tools]
profile = "minimal"

[agents.guarded.approvals]
mode = "always"
tools = ["session_status"]
timeout_secs = 300

[sandbox]
mode = "off"
"#;

/// A private session bus, stopped when dropped.
struct Bus {
    child: Child,
    address: String,
}

impl Bus {
    fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!("--address=unix:dir={}", dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run dbus-daemon ({e}): install Debian's `dbus` package (scripts/test-all.sh does)")
            });
        let mut address = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed no address: {address:?}"
        );
        Self { child, address }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A notification as the server received it.
#[derive(Debug, Clone)]
struct Note {
    id: u32,
    app_name: String,
    summary: String,
    body: String,
    actions: Vec<String>,
}

/// What the test's services were told.
#[derive(Default)]
struct Seen {
    /// `RegisterStatusNotifierItem` calls: (its argument, the caller).
    items: Mutex<Vec<(String, String)>>,
    notes: Mutex<Vec<Note>>,
    changed: Notify,
}

struct Watcher(Arc<Seen>);

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    async fn register_status_notifier_item(
        &self,
        service: String,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) {
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        self.0.items.lock().unwrap().push((service.clone(), sender));
        self.0.changed.notify_waiters();
        let _ = Self::status_notifier_item_registered(&emitter, &service).await;
    }

    fn register_status_notifier_host(&self, _service: String) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        self.0
            .items
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }

    #[zbus(signal)]
    async fn status_notifier_item_registered(
        emitter: &SignalEmitter<'_>,
        service: &str,
    ) -> zbus::Result<()>;
}

struct Notifications(Arc<Seen>);

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut notes = self.0.notes.lock().unwrap();
        let id = u32::try_from(notes.len()).unwrap() + 1;
        notes.push(Note {
            id,
            app_name,
            summary,
            body,
            actions,
        });
        drop(notes);
        self.0.changed.notify_waiters();
        id
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["actions".into(), "body".into()]
    }

    #[zbus(out_args("name", "vendor", "version", "spec_version"))]
    fn get_server_information(&self) -> zbus::fdo::Result<(String, String, String, String)> {
        Ok((
            "test".into(),
            "switchboard-tests".into(),
            "1".into(),
            "1.2".into(),
        ))
    }
}

/// The real tray, killed when dropped.
struct Tray {
    child: Child,
    log: PathBuf,
}

impl Tray {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tray {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A deadline for one wait: polls of observable state, no sleeps as
/// synchronisation.
struct Deadline {
    until: Instant,
    what: &'static str,
}

impl Deadline {
    fn new(what: &'static str) -> Self {
        Self {
            until: Instant::now() + WAIT,
            what,
        }
    }

    /// Wait a little before looking again; panic, saying `detail`, once
    /// the deadline passed.
    async fn again(&self, detail: impl FnOnce() -> String) {
        assert!(
            Instant::now() < self.until,
            "timed out waiting for {}; {}",
            self.what,
            detail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One entry of the menu as GetLayout gives it.
#[derive(Debug, Clone)]
struct MenuEntry {
    id: i32,
    label: String,
    enabled: bool,
}

#[derive(Debug, serde::Deserialize, zbus::zvariant::Type)]
struct Layout {
    id: i32,
    #[allow(dead_code)] // the root's properties: only its children matter here
    properties: HashMap<String, OwnedValue>,
    children: Vec<OwnedValue>,
}

/// `v` without the variants around it.
fn plain<'r, 'v>(v: &'r Value<'v>) -> &'r Value<'v> {
    match v {
        Value::Value(inner) => plain(inner),
        other => other,
    }
}

/// The entries of the layout `v` (an `(ia{sv}av)`), depth first.
fn entries(v: &Value<'_>, out: &mut Vec<MenuEntry>) {
    let Value::Structure(s) = plain(v) else {
        return;
    };
    let [Value::I32(id), Value::Dict(props), Value::Array(children)] = s.fields() else {
        return;
    };
    let mut entry = MenuEntry {
        id: *id,
        label: String::new(),
        enabled: true,
    };
    let mut separator = false;
    for (key, value) in props.iter() {
        let Value::Str(key) = plain(key) else {
            continue;
        };
        match (key.to_string().as_str(), plain(value)) {
            ("label", Value::Str(l)) => entry.label = l.to_string(),
            ("enabled", Value::Bool(e)) => entry.enabled = *e,
            ("type", Value::Str(t)) => separator = t.to_string() == "separator",
            _ => {}
        }
    }
    if !separator {
        out.push(entry);
    }
    for child in children.inner() {
        entries(child, out);
    }
}

/// Every string in `v`.
fn strings(v: &Value<'_>, out: &mut Vec<String>) {
    match v {
        Value::Str(s) => out.push(s.to_string()),
        Value::Value(inner) => strings(inner, out),
        Value::Structure(s) => s.fields().iter().for_each(|f| strings(f, out)),
        Value::Array(a) => a.inner().iter().for_each(|e| strings(e, out)),
        Value::Dict(d) => d.iter().for_each(|(k, v)| {
            strings(k, out);
            strings(v, out);
        }),
        _ => {}
    }
}

async fn proxy<'a>(
    conn: &zbus::Connection,
    destination: &'a str,
    path: &'a str,
    interface: &'a str,
) -> zbus::Proxy<'a> {
    zbus::proxy::Builder::<zbus::Proxy<'a>>::new(conn)
        .destination(destination)
        .unwrap()
        .path(path)
        .unwrap()
        .interface(interface)
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap()
}

/// The item's `Status`.
async fn status(item: &zbus::Proxy<'_>) -> String {
    item.get_property::<String>("Status").await.unwrap()
}

/// The item's tooltip: its title and text.
async fn tooltip(item: &zbus::Proxy<'_>) -> String {
    let v: OwnedValue = item.get_property("ToolTip").await.unwrap();
    let mut out = Vec::new();
    strings(&v, &mut out);
    out.join(" | ")
}

/// The whole menu, as a host reads it.
async fn menu(menu: &zbus::Proxy<'_>) -> Vec<MenuEntry> {
    let reply = menu
        .call_method("GetLayout", &(0i32, -1i32, Vec::<String>::new()))
        .await
        .unwrap();
    let (_revision, root): (u32, Layout) = reply.body().deserialize().unwrap();
    assert_eq!(root.id, 0, "the layout starts at the root");
    let mut out = Vec::new();
    for child in &root.children {
        entries(child, &mut out);
    }
    out
}

fn labels(entries: &[MenuEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.label.as_str()).collect()
}

fn opened(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Ask the guarded agent something that makes its tool wait for approval.
fn ask(gw: &Gateway) -> tokio::task::JoinHandle<()> {
    let request = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(TOKEN)
        .json(&json!({ "model": "guarded", "user": "amy", "messages": [{ "role": "user", "content": "use tool session_status" }] }));
    // The answer comes after the approval, or never: the gateway is killed.
    tokio::spawn(async move {
        let _ = request.send().await;
    })
}

#[tokio::test]
async fn the_tray_shows_the_gateway_on_dbus_and_opens_the_ui_with_one_time_links() {
    // Built (when stale) before anything starts that would wait for it.
    let tray_bin = tray_binary();
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(&dir.path().join("bus"));

    // The desktop's side: a StatusNotifierWatcher and a notification server.
    let seen = Arc::new(Seen::default());
    let conn = zbus::conn::Builder::address(bus.address.as_str())
        .unwrap()
        .serve_at("/StatusNotifierWatcher", Watcher(seen.clone()))
        .unwrap()
        .serve_at(
            "/org/freedesktop/Notifications",
            Notifications(seen.clone()),
        )
        .unwrap()
        .name("org.kde.StatusNotifierWatcher")
        .unwrap()
        .name("org.freedesktop.Notifications")
        .unwrap()
        .build()
        .await
        .unwrap();

    let fake = FakeOpenAi::start().await;
    let mut gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), GUARDED)).await;

    // The opener records the links it is given, and its environment.
    let opened_file = dir.path().join("opened.txt");
    let opener_env = dir.path().join("opener-env.txt");
    let opener = dir.path().join("opener.sh");
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\nenv > '{}'\nprintf '%s\\n' \"$1\" >> '{}'\n",
            opener_env.display(),
            opened_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();

    // A home of its own: no systemd user manager or unit of this machine
    // is within the tray's reach.
    let home = dir.path().join("home");
    let runtime = dir.path().join("runtime");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = dir.path().join("tray.log");
    let child = Command::new(&tray_bin)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("SWITCHBOARD_URL", &gw.url)
        .env("SWITCHBOARD_TOKEN", TOKEN)
        .env("SWITCHBOARD_TRAY_OPENER", &opener)
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start switchboard-tray");
    let tray = Tray { child, log };

    // The item registers with the watcher.
    let (service, sender) = wait_on(
        &seen.changed,
        WAIT,
        "the tray's item to register with the StatusNotifierWatcher",
        || seen.items.lock().unwrap().first().cloned(),
        || format!("tray log:\n{}", tray.log()),
    )
    .await;
    let (destination, path) = match service.strip_prefix('/') {
        Some(_) => (sender, service.clone()),
        None => (service.clone(), "/StatusNotifierItem".to_string()),
    };
    let item = proxy(&conn, &destination, &path, "org.kde.StatusNotifierItem").await;
    assert_eq!(
        item.get_property::<String>("Id").await.unwrap(),
        "switchboard"
    );
    assert_eq!(
        item.get_property::<String>("Title").await.unwrap(),
        "Switchboard"
    );
    assert_eq!(
        item.get_property::<String>("IconName").await.unwrap(),
        "",
        "no icon theme"
    );
    let menu_path: zbus::zvariant::OwnedObjectPath = item.get_property("Menu").await.unwrap();
    let menu_path = menu_path.to_string();
    let dbusmenu = proxy(&conn, &destination, &menu_path, "com.canonical.dbusmenu").await;

    // Idle and healthy: Active.
    let d = Deadline::new("the item to be Active while the gateway idles");
    loop {
        let s = status(&item).await;
        if s == "Active" {
            break;
        }
        let tip = tooltip(&item).await;
        d.again(|| format!("Status {s}, tooltip {tip}; tray log:\n{}", tray.log()))
            .await;
    }
    let tip = tooltip(&item).await;
    assert!(tip.contains("Switchboard — all well"), "{tip}");
    let idle = menu(&dbusmenu).await;
    assert!(labels(&idle).contains(&"Approvals (0)"), "{idle:?}");
    assert!(
        !labels(&idle).contains(&"Stop gateway"),
        "a gateway the tray did not start is not its to stop: {idle:?}"
    );

    // An approval waits: NeedsAttention, a notification, the menu counts it.
    let _reply = ask(&gw);
    let d = Deadline::new("the item to need attention for the waiting approval");
    loop {
        let s = status(&item).await;
        if s == "NeedsAttention" {
            break;
        }
        d.again(|| {
            format!(
                "Status {s}; gateway log:\n{}\ntray log:\n{}",
                gw.log(),
                tray.log()
            )
        })
        .await;
    }
    let note = wait_on(
        &seen.changed,
        WAIT,
        "the notification of the waiting approval",
        || {
            seen.notes
                .lock()
                .unwrap()
                .iter()
                .find(|n| n.summary.to_lowercase().contains("approval"))
                .cloned()
        },
        || {
            format!(
                "notes {:?}; tray log:\n{}",
                seen.notes.lock().unwrap(),
                tray.log()
            )
        },
    )
    .await;
    assert_eq!(note.app_name, "Switchboard");
    assert!(note.summary.contains("session_status"), "{note:?}");
    assert!(
        note.body.contains("agent:guarded:webchat:dm:amy"),
        "{note:?}"
    );
    assert_eq!(note.actions, ["default", "Open"]);

    let d = Deadline::new("the menu to count the waiting approval");
    let shown = loop {
        let shown = menu(&dbusmenu).await;
        if labels(&shown).contains(&"Approvals (1)") {
            break shown;
        }
        d.again(|| format!("menu {shown:?}")).await;
    };
    for label in [
        "Open control UI",
        "Approvals (1)",
        "Pairing requests (0)",
        "Quit",
    ] {
        assert!(
            labels(&shown).contains(&label),
            "{label} is missing: {shown:?}"
        );
    }
    let status_line = &shown[0];
    assert!(!status_line.enabled, "the status line is not clickable");
    assert!(
        status_line.label.contains("1 approval waiting"),
        "{status_line:?}"
    );
    assert!(
        shown
            .iter()
            .any(|e| e.label == "webchat/default: running" && !e.enabled),
        "one line per channel account: {shown:?}"
    );

    // Open control UI: the opener gets a one-time link that signs in once.
    let open_ui = shown.iter().find(|e| e.label == "Open control UI").unwrap();
    assert!(open_ui.enabled);
    dbusmenu
        .call_method("Event", &(open_ui.id, "clicked", Value::from(0i32), 0u32))
        .await
        .unwrap();
    let d = Deadline::new("the opener to get a sign-in link");
    let link = loop {
        if let Some(l) = opened(&opened_file)
            .into_iter()
            .find(|l| l.contains("/login?ticket="))
        {
            break l;
        }
        d.again(|| {
            format!(
                "opened {:?}; tray log:\n{}",
                opened(&opened_file),
                tray.log()
            )
        })
        .await;
    };
    // The browser gets a one-time link, never the token.
    let env = std::fs::read_to_string(&opener_env).unwrap_or_default();
    assert!(
        !env.contains(TOKEN) && !env.contains("SWITCHBOARD_TOKEN"),
        "the opener's environment holds the control token"
    );
    assert!(
        link.starts_with(&format!("{}/login?ticket=", gw.url)),
        "{link}"
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = browser.get(&link).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 303, "the link signs in");
    assert_eq!(
        first.headers()["location"].to_str().unwrap(),
        "/",
        "and lands on the overview"
    );
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(cookie.starts_with("switchboard_session="), "{cookie}");
    let second = browser.get(&link).send().await.unwrap();
    assert_eq!(second.status().as_u16(), 401, "a link works once");

    // The notification's action opens the Approvals page.
    conn.emit_signal(
        None::<&str>,
        "/org/freedesktop/Notifications",
        "org.freedesktop.Notifications",
        "ActionInvoked",
        &(note.id, "default"),
    )
    .await
    .unwrap();
    let d = Deadline::new("the notification's action to open the Approvals page");
    let approvals_link = loop {
        if let Some(l) = opened(&opened_file)
            .into_iter()
            .find(|l| l.ends_with("next=/approvals"))
        {
            break l;
        }
        d.again(|| {
            format!(
                "opened {:?}; tray log:\n{}",
                opened(&opened_file),
                tray.log()
            )
        })
        .await;
    };
    let landed = browser.get(&approvals_link).send().await.unwrap();
    assert_eq!(landed.status().as_u16(), 303);
    assert_eq!(landed.headers()["location"].to_str().unwrap(), "/approvals");

    // The gateway dies: Passive, and the tooltip says so.
    gw.kill();
    let d = Deadline::new("the item to turn Passive once the gateway is gone");
    loop {
        let s = status(&item).await;
        if s == "Passive" {
            break;
        }
        d.again(|| format!("Status {s}; tray log:\n{}", tray.log()))
            .await;
    }
    let tip = tooltip(&item).await;
    assert!(tip.contains(&format!("not running at {}", gw.url)), "{tip}");
    let down = menu(&dbusmenu).await;
    assert!(!labels(&down).contains(&"Stop gateway"), "{down:?}");
    assert!(
        down.iter()
            .any(|e| e.label == "Open control UI" && !e.enabled),
        "nothing to open while it is down: {down:?}"
    );
    drop(tray);
    drop(bus);
}
