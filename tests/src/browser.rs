//! A real browser for the control UI's tests: Debian's headless Chromium
//! (`/usr/bin/chromium`) driven over WebDriver by a `chromedriver`
//! (`/usr/bin/chromedriver`) this harness starts on a free port. Nothing
//! is downloaded: without the two packages the tests fail and say what to
//! install.
//!
//! The helpers find things the way a person does: a page by its heading, a
//! button by its text, a field by its label, a navigation link by its name.
//! Waiting is on the page's state (thirtyfour's polling queries, or a
//! script's answer checked again until it holds), never on a timer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use thirtyfour::extensions::query::{ElementPoller, ElementPollerWithTimeout};
use thirtyfour::prelude::*;

use crate::gateway::{free_port, urlencode};

/// The browser the tests drive (Debian's `chromium` package).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Its WebDriver server (Debian's `chromium-driver` package).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a wait for something on a page lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often a waited-for condition is checked again.
const POLL: Duration = Duration::from_millis(100);
/// The session cookie of the control UI.
pub const SESSION_COOKIE: &str = "switchboard_session";

/// What Chromium needs on this machine: headless, no sandbox (the tests
/// may run as root), nothing fetched from Google, nothing shared with
/// another run (each browser gets a fresh `--user-data-dir`).
const ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    // No desktop keyring is asked for the password field's value.
    "--password-store=basic",
];

/// A headless Chromium with its own chromedriver and profile. Derefs to
/// the thirtyfour [`WebDriver`] for anything the helpers do not cover.
/// End it with [`quit`](Self::quit); when a test fails first, dropping it
/// ends the session, then the driver.
pub struct Browser {
    // Dropped in this order: the session (which closes Chromium), then the
    // driver process, then the profile folder.
    driver: WebDriver,
    chromedriver: tokio::process::Child,
    profile: tempfile::TempDir,
}

impl std::ops::Deref for Browser {
    type Target = WebDriver;

    fn deref(&self) -> &WebDriver {
        &self.driver
    }
}

impl Browser {
    /// A desktop-sized browser (1280×900).
    pub async fn start() -> Self {
        Self::launch(None).await
    }

    /// A browser that lays pages out as a phone `width` CSS pixels wide
    /// and `height` high does (Chromium's mobile emulation: the page's
    /// `width=device-width` viewport is that wide).
    pub async fn start_phone(width: u32, height: u32) -> Self {
        Self::launch(Some((width, height))).await
    }

    async fn launch(phone: Option<(u32, u32)>) -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: install chromium and chromium-driver (scripts/test-all.sh does)"
            );
        }
        let profile = tempfile::tempdir().expect("a folder for the browser's profile");
        let port = free_port();
        let mut chromedriver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let server = format!("http://127.0.0.1:{port}");
        wait_until_ready(&mut chromedriver, &server).await;

        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(CHROMIUM)
            .expect("the browser binary as a capability");
        for arg in ARGS {
            caps.add_arg(arg)
                .expect("a browser argument as a capability");
        }
        caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))
            .expect("the profile folder as a capability");
        if let Some((width, height)) = phone {
            caps.add_experimental_option(
                "mobileEmulation",
                json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 } }),
            )
            .expect("mobile emulation as a capability");
        }
        let driver = WebDriver::new(server.clone(), caps)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{CHROMEDRIVER} at {server} could not start {CHROMIUM}: {e} (do the chromium and chromium-driver packages have the same version?)"
                )
            });
        Self {
            driver,
            chromedriver,
            profile,
        }
    }

    /// Close the browser and stop its driver.
    pub async fn quit(self) {
        let Self {
            driver,
            mut chromedriver,
            profile,
        } = self;
        // Best effort: the test's verdict does not depend on a clean exit.
        let _ = driver.quit().await;
        let _ = chromedriver.kill().await;
        drop(profile);
    }

    /// Open `url` and wait until it has loaded.
    pub async fn open(&self, url: &str) {
        if let Err(e) = self.driver.goto(url).await {
            panic!("the browser could not open {url}: {e}");
        }
    }

    /// What the address bar shows.
    pub async fn url(&self) -> String {
        match self.driver.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => panic!("the browser's address is unknown: {e}"),
        }
    }

    /// Where the browser is and what the page says, for failure messages.
    pub async fn describe(&self) -> String {
        let url = match self.driver.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => format!("(an unknown address: {e})"),
        };
        let text = self
            .driver
            .execute(
                "return document.body ? document.body.innerText : ''",
                Vec::new(),
            )
            .await
            .ok()
            .and_then(|r| r.json().as_str().map(str::to_string))
            .unwrap_or_default();
        let mut shown: String = text.chars().take(1500).collect();
        if shown.len() < text.len() {
            shown.push_str(" […]");
        }
        format!("the browser is at {url}, which shows:\n{shown}")
    }

    /// The first element `by` finds, once there is one (at most [`WAIT`]);
    /// else fail saying that `what` did not appear and what the page shows.
    pub async fn wait_for(&self, what: &str, by: By) -> WebElement {
        match self.driver.query(by).wait(WAIT, POLL).first().await {
            Ok(e) => e,
            Err(e) => {
                let page = self.describe().await;
                panic!("{what} did not appear within {WAIT:?} ({e}); {page}")
            }
        }
    }

    /// The page's `<h1>` once it reads `name`.
    pub async fn heading(&self, name: &str) -> WebElement {
        self.wait_for(
            &format!("the heading \"{name}\""),
            By::XPath(format!("//h1[normalize-space()={}]", xpath_literal(name))),
        )
        .await
    }

    /// The button whose text is `text`.
    pub async fn find_button(&self, text: &str) -> WebElement {
        self.wait_for(
            &format!("a button \"{text}\""),
            By::XPath(button_xpath("", text)),
        )
        .await
    }

    /// The button whose text is `text` inside what XPath `scope` selects
    /// (e.g. `//section[@id='pending']`).
    pub async fn find_button_in(&self, scope: &str, text: &str) -> WebElement {
        self.wait_for(
            &format!("a button \"{text}\" in {scope}"),
            By::XPath(button_xpath(scope, text)),
        )
        .await
    }

    /// The button whose text is `text`, once it can be pressed.
    pub async fn find_enabled_button(&self, text: &str) -> WebElement {
        let query = self
            .driver
            .query(By::XPath(button_xpath("", text)))
            .and_enabled()
            .wait(WAIT, POLL);
        match query.first().await {
            Ok(e) => e,
            Err(e) => {
                let page = self.describe().await;
                panic!("the button \"{text}\" was not enabled within {WAIT:?} ({e}); {page}")
            }
        }
    }

    /// The input, textarea or select that the label reading `label` names
    /// (by its `for`, or the field inside the label).
    pub async fn field_by_label(&self, label: &str) -> WebElement {
        let found = self
            .wait_for(
                &format!("a field labelled \"{label}\""),
                By::XPath(format!(
                    "//label[normalize-space()={}]",
                    xpath_literal(label)
                )),
            )
            .await;
        if let Ok(Some(id)) = found.attr("for").await
            && !id.is_empty()
        {
            return self
                .wait_for(
                    &format!("the field labelled \"{label}\" (#{id})"),
                    By::Id(id.clone()),
                )
                .await;
        }
        match found
            .find(By::XPath(".//input|.//textarea|.//select"))
            .await
        {
            Ok(field) => field,
            Err(_) => {
                let page = self.describe().await;
                panic!("the label \"{label}\" names no field (no `for`, nothing inside it); {page}")
            }
        }
    }

    /// Follow the navigation bar's link `name` and wait for that page's
    /// heading.
    pub async fn nav(&self, name: &str) {
        let link = self
            .wait_for(
                &format!("the navigation link \"{name}\""),
                By::XPath(format!(
                    "//nav//a[normalize-space()={}]",
                    xpath_literal(name)
                )),
            )
            .await;
        if let Err(e) = link.click().await {
            panic!("the navigation link \"{name}\" could not be clicked: {e}");
        }
        self.heading(name).await;
    }

    /// Run `script` (a function body; `arguments` holds `args`) until it
    /// returns something truthy, and return that; fail after [`WAIT`]
    /// saying that `what` did not happen and what the page shows.
    pub async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let mut poller = ElementPollerWithTimeout::new(WAIT, POLL);
        let mut last;
        loop {
            match self.driver.execute(script, args.clone()).await {
                Ok(r) if truthy(r.json()) => return r.json().clone(),
                Ok(r) => last = r.json().to_string(),
                // A page that is being replaced answers nothing useful yet.
                Err(e) => last = format!("an error: {e}"),
            }
            if !poller.tick().await {
                let page = self.describe().await;
                panic!(
                    "timed out after {WAIT:?} waiting for {what} (the last check returned {last}); {page}"
                );
            }
        }
    }

    /// Run `script` once and return what it returns.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        match self.driver.execute(script, args).await {
            Ok(r) => r.json().clone(),
            Err(e) => panic!("the browser could not run a script: {e}\n{script}"),
        }
    }

    /// Sign in at `base` with `token` through the sign-in form, landing on
    /// the Overview.
    pub async fn sign_in(&self, base: &str, token: &str) {
        self.open(&format!("{base}/login")).await;
        let field = self.field_by_label("Token").await;
        if let Err(e) = field.send_keys(token).await {
            panic!("cannot type into the Token field: {e}");
        }
        if let Err(e) = self.find_button("Sign in").await.click().await {
            panic!("cannot press Sign in: {e}");
        }
        self.heading("Overview").await;
    }

    /// Save what the window shows as `docs/ui/<name>.png` in the
    /// workspace; returns the file.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = screenshots_dir();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let path = dir.join(format!("{name}.png"));
        if let Err(e) = self.driver.screenshot(&path).await {
            panic!("cannot save a screenshot as {}: {e}", path.display());
        }
        path
    }
}

/// Wait (with a bounded number of tries) until chromedriver's `/status`
/// says it is ready for sessions.
async fn wait_until_ready(chromedriver: &mut tokio::process::Child, server: &str) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(Some(status)) = chromedriver.try_wait() {
            panic!("{CHROMEDRIVER} exited with {status} before it was ready");
        }
        if let Ok(r) = http.get(format!("{server}/status")).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == true
        {
            return;
        }
        // Polling a readiness endpoint: nothing else says when it listens.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{CHROMEDRIVER} did not answer {server}/status as ready within 10 s");
}

/// Where the screenshots of the pages go: `docs/ui/` in the workspace.
pub fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ui")
}

/// JavaScript's truthiness of a script's answer.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The XPath of a button reading `text` inside `scope` (an XPath; empty
/// for the whole page).
fn button_xpath(scope: &str, text: &str) -> String {
    format!("{scope}//button[normalize-space()={}]", xpath_literal(text))
}

/// `s` as an XPath string literal, whatever quotes it contains.
pub fn xpath_literal(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

/// Check `check` again (every 100 ms, at most [`WAIT`]) until it gives
/// something; fail saying `what` did not happen. For state only an API
/// shows (a gateway's runs in flight).
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let mut poller = ElementPollerWithTimeout::new(WAIT, POLL);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if !poller.tick().await {
            panic!("timed out after {WAIT:?} waiting for {what}");
        }
    }
}

/// Sign in to the control UI at `base` over plain HTTP (the token form):
/// the `Cookie` header value (`switchboard_session=…`) that a signed-in
/// browser sends.
pub async fn session_cookie(base: &str, token: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let r = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", urlencode(token)))
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot post the sign-in form to {base}/login: {e}"));
    let status = r.status();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{SESSION_COOKIE}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    match cookie {
        Some(c) if status.is_redirection() => c,
        _ => panic!("signing in with the token gave {status} and no {SESSION_COOKIE} cookie"),
    }
}

/// The CSRF token a page carries in `<meta name="csrf-token" content="…">`.
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf-token\"")?;
    let rest = &html[at..];
    let start = rest.find("content=\"")? + "content=\"".len();
    let len = rest[start..].find('"')?;
    Some(rest[start..start + len].to_string())
}

/// The assets a page or a stylesheet or module names: `/assets/<name>`,
/// and modules imported as `./<name>.js` (from `/assets/`).
fn asset_refs(text: &str) -> Vec<String> {
    let name_len = |s: &str| {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
            .unwrap_or(s.len())
    };
    let mut out = Vec::new();
    for (at, _) in text.match_indices("/assets/") {
        let rest = &text[at + "/assets/".len()..];
        let name = &rest[..name_len(rest)];
        if !name.is_empty() {
            out.push(format!("/assets/{name}"));
        }
    }
    for quote in ["\"./", "'./"] {
        for (at, _) in text.match_indices(quote) {
            let rest = &text[at + quote.len()..];
            let name = &rest[..name_len(rest)];
            if name.ends_with(".js") || name.ends_with(".css") {
                out.push(format!("/assets/{name}"));
            }
        }
    }
    out
}

/// `GET path` with the session `cookie`; the body, which must be there (200).
async fn fetch(http: &reqwest::Client, base: &str, cookie: &str, path: &str) -> Vec<u8> {
    let r = http
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(
        r.status().as_u16(),
        200,
        "GET {path} answered {} to a signed-in browser",
        r.status()
    );
    r.bytes()
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .to_vec()
}

/// What a browser with an empty cache downloads for the page at `path`
/// of `base`, signed in with `cookie` (see [`session_cookie`]): its HTML and
/// every asset it needs (and the modules and stylesheets those import), in
/// bytes, and those assets.
pub async fn page_weight(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    path: &str,
) -> (usize, Vec<String>) {
    let html = fetch(http, base, cookie, path).await;
    let mut total = html.len();
    let mut queue = asset_refs(&String::from_utf8_lossy(&html));
    let mut seen = BTreeSet::new();
    while let Some(asset) = queue.pop() {
        if !seen.insert(asset.clone()) {
            continue;
        }
        let body = fetch(http, base, cookie, &asset).await;
        total += body.len();
        if asset.ends_with(".js") || asset.ends_with(".css") {
            queue.extend(asset_refs(&String::from_utf8_lossy(&body)));
        }
    }
    (total, seen.into_iter().collect())
}
