//! **Config**: the config file with its secrets shown as `••••` (they never
//! reach the browser; a file that is not valid TOML is not shown at all),
//! the effective configuration with the defaults, and **Validate** and
//! **Save** of the edited file. Save refuses when the file changed on disk
//! since the page was opened (the SHA-256 of its bytes is the form's
//! `base`) and when a kept secret would go to a changed address, writes
//! atomically, then reloads the running gateway with it (see
//! [`crate::reload`]) and says what applied and what waits for a restart.

mod mask;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Value;

use crate::audit::{Actor, action};
use crate::config::{self, Config, ConfigError};
use crate::http::AppState;
use crate::ui::{Flash, Layout, Signed, check_csrf, done, render};

/// The largest config text accepted from the browser.
const MAX_TEXT: usize = 1024 * 1024;
/// What validation calls the edited text in its messages.
const SOURCE: &str = "the edited config";
/// One save at a time: the base check and the write go together.
static SAVING: Mutex<()> = Mutex::new(());

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/config", get(page))
        .route("/config/validate", post(validate))
        .route("/config/save", post(save))
}

/// One problem of the edited config, next to its key.
struct ErrorRow {
    /// The dotted key (`data-key`); empty for the file as a whole.
    key: String,
    /// The key as shown.
    shown_key: String,
    message: String,
    /// "line 3", "near line 3", or empty.
    line: String,
}

#[derive(Template)]
#[template(path = "config.html")]
struct ConfigPage {
    layout: Layout,
    /// The config file, when the gateway runs with one.
    path: Option<String>,
    /// Why the file cannot be edited here, if so.
    problem: Option<String>,
    /// Whether the editor is shown.
    editable: bool,
    /// The text in the editor, secrets masked.
    text: String,
    /// The SHA-256 of the file as it was when the page was opened.
    base: String,
    /// The result of Validate.
    outcome: Option<String>,
    /// A warning about the file on disk.
    warning: Option<String>,
    errors_title: String,
    errors: Vec<ErrorRow>,
    /// The effective configuration as TOML, secrets masked.
    effective: String,
}

impl ConfigPage {
    fn new(state: &AppState, layout: Layout) -> Self {
        Self {
            layout,
            path: state.config_path.as_ref().map(|p| p.display().to_string()),
            problem: None,
            editable: false,
            text: String::new(),
            base: String::new(),
            outcome: None,
            warning: None,
            errors_title: String::new(),
            errors: Vec::new(),
            effective: effective(&state.config.load()),
        }
    }

    /// The editor with `text` (as posted, still masked) and `base`.
    fn editing(mut self, text: String, base: String) -> Self {
        self.editable = true;
        self.text = text;
        self.base = base;
        self
    }

    fn with_errors(mut self, title: &str, errors: Vec<ErrorRow>) -> Self {
        self.errors_title = title.to_string();
        self.errors = errors;
        self
    }
}

/// The effective configuration as TOML with its secrets masked.
fn effective(config: &Config) -> String {
    let shown = Value::try_from(config).and_then(|mut v| {
        mask::mask_value(&mut v);
        toml::to_string_pretty(&v)
    });
    shown.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the effective config could not be shown");
        "(the effective configuration cannot be shown here; `switchboard config check` prints a summary)".into()
    })
}

/// The config file as it is on disk.
struct Current {
    /// Its text, with `\n` line ends.
    text: String,
    /// Whether it has `\r\n` line ends.
    crlf: bool,
    /// The SHA-256 of its bytes, as hex.
    hash: String,
    bytes: Vec<u8>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Current {
    fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, String> {
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            format!(
                "{} is not UTF-8 text, so it cannot be edited here: edit it on the gateway's machine.",
                path.display()
            )
        })?;
        Ok(Self {
            crlf: text.contains("\r\n"),
            text: normalize(text),
            hash: sha256_hex(&bytes),
            bytes,
        })
    }

    fn read(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| cannot_read(path, &e))?;
        Self::from_bytes(path, bytes)
    }

    async fn read_async(path: &Path) -> Result<Self, String> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| cannot_read(path, &e))?;
        Self::from_bytes(path, bytes)
    }
}

fn cannot_read(path: &Path, e: &std::io::Error) -> String {
    format!(
        "Cannot read the config file {}: {e}. Check that it is there and readable by the gateway's user.",
        path.display()
    )
}

/// Browsers send a textarea's lines ended by `\r\n`.
fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// The file's text masked for the browser, checked: the file and the
/// masked text must both be TOML (what is not cannot be masked with
/// certainty), and no secret may be left in the masked one. Otherwise no
/// text of the file is shown, only why.
fn masked_for_browser(text: &str, path: &str) -> Result<String, String> {
    if let Err(e) = text.parse::<toml::Table>() {
        let problem = syntax_problem(text, &e);
        tracing::warn!(%problem, "the config file is not valid TOML; the editor is not shown");
        return Err(format!(
            "The config file on disk is not valid TOML ({problem}): fix it on the gateway's machine; it is not shown here so no secret in it can leak."
        ));
    }
    let masked = mask::mask(text);
    let safe = masked
        .parse::<toml::Table>()
        .is_ok_and(|table| !mask::has_unmasked_secret(&Value::Table(table)));
    if !safe {
        tracing::warn!(
            "the config editor could not mask every secret of the file; it is not shown"
        );
        return Err(format!(
            "This file is laid out in a way the editor cannot hide every secret of, so it is not shown here: edit {path} on the gateway's machine."
        ));
    }
    Ok(masked)
}

/// Where a TOML syntax error is and what it is, without the text of its
/// line (the parser's message names only what it expected).
fn syntax_problem(text: &str, e: &toml::de::Error) -> String {
    let first = e.message().lines().next().unwrap_or_default().trim();
    let mut what: String = mask::mask_loose(first, true).chars().take(200).collect();
    if what.is_empty() {
        what = "a syntax error".into();
    }
    match e.span().and_then(|span| text.get(..span.start)) {
        Some(before) => {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what,
    }
}

async fn page(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
) -> Response {
    let page = ConfigPage::new(&state, Layout::new("Config", &signed, &flash));
    let Some(path) = state.config_path.clone() else {
        return render(&page);
    };
    let shown = path.display().to_string();
    let page = match Current::read_async(&path).await {
        Err(why) => ConfigPage {
            problem: Some(why),
            ..page
        },
        Ok(current) => match masked_for_browser(&current.text, &shown) {
            Ok(text) => page.editing(text, current.hash),
            Err(why) => ConfigPage {
                problem: Some(why),
                ..page
            },
        },
    };
    render(&page)
}

/// The edit form: `text` is the edited file with secrets still `••••`.
#[derive(Debug, Deserialize)]
struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    base: String,
    #[serde(default)]
    text: String,
}

/// A page with `status` saying what is wrong with the request itself.
fn refused(state: &AppState, signed: &Signed, status: StatusCode, why: String) -> Response {
    let mut page = ConfigPage::new(state, Layout::new("Config", signed, &Flash::default()));
    page.layout.error = Some(why);
    (status, render(&page)).into_response()
}

/// The form, or the page saying why it was refused (too large, no CSRF
/// token, no config file).
fn accept(
    state: &AppState,
    signed: &Signed,
    form: Result<Form<EditForm>, FormRejection>,
) -> Result<(EditForm, PathBuf), Response> {
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(too_large(state, signed));
        }
        Err(e) => {
            return Err(refused(
                state,
                signed,
                e.status(),
                format!(
                    "The form could not be read ({}). Reload the page and try again.",
                    e.body_text()
                ),
            ));
        }
    };
    check_csrf(signed, &form.csrf)?;
    if form.text.len() > MAX_TEXT {
        return Err(too_large(state, signed));
    }
    let Some(path) = state.config_path.clone() else {
        return Err(refused(
            state,
            signed,
            StatusCode::CONFLICT,
            "The gateway runs with the defaults (no config file), so there is nothing to validate or save here. Start it with --config <file> to edit it here.".into(),
        ));
    };
    Ok((form, path))
}

fn too_large(state: &AppState, signed: &Signed) -> Response {
    refused(
        state,
        signed,
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "The edited config is larger than the {} KiB the editor accepts, so it was neither checked nor saved. Edit a file this large on the gateway's machine.",
            MAX_TEXT / 1024
        ),
    )
}

/// Every secret validation messages must not show: those of the edited
/// and the current text, the running config and the environment.
pub(crate) fn known_secrets(
    texts: &[&str],
    running: &Config,
    env: &[(String, String)],
) -> Vec<String> {
    let mut out: Vec<String> = texts.iter().flat_map(|t| mask::secret_values(t)).collect();
    if let Ok(v) = Value::try_from(running) {
        mask::secrets_in(&v, &mut out);
    }
    for (name, value) in env {
        if name == "SWITCHBOARD_TOKEN" {
            out.push(value.clone());
            continue;
        }
        // `SWITCHBOARD_A__B__C` sets the key `a.b.c`.
        let path = name
            .strip_prefix("SWITCHBOARD_")
            .unwrap_or(name)
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(".");
        mask::secrets_of(&path, value, &mut out);
    }
    // Short values would garble the messages and hide nothing.
    out.retain(|s| s.chars().count() >= 4 && s != mask::MASK);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// A validation message without secrets (a TOML syntax error quotes the
/// line it is on).
pub(crate) fn scrub(message: &str, secrets: &[String]) -> String {
    let mut out = message
        .lines()
        .map(|l| mask::mask_loose(l, false))
        .collect::<Vec<_>>()
        .join("\n");
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), mask::MASK);
        }
    }
    out
}

/// The errors as rows, each with its line in `text` when it can be found.
fn rows(errors: &[ConfigError], text: &str, secrets: &[String]) -> Vec<ErrorRow> {
    let found = mask::scan(text);
    errors
        .iter()
        .map(|e| ErrorRow {
            key: e.key.clone(),
            shown_key: if e.key.is_empty() {
                "(the file)".into()
            } else {
                e.key.clone()
            },
            message: scrub(&e.message, secrets),
            line: match found.line_of(&e.key) {
                Some((n, true)) => format!("line {n}"),
                Some((n, false)) => format!("near line {n}"),
                None => String::new(),
            },
        })
        .collect()
}

/// The stored values of the secrets (`"secret:NAME"`) the `texts` name,
/// for validating them as the gateway would load them; never shown.
async fn stored_secrets(
    state: &AppState,
    texts: &[&str],
    env: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut names: Vec<String> = texts
        .iter()
        .flat_map(|t| config::secret_names(t, env))
        .collect();
    names.sort();
    names.dedup();
    crate::vault::read_secrets(state.store.as_ref(), &names)
        .await
        .unwrap_or_default()
}

/// The edited text with its secrets put back from the current file,
/// validated as the gateway would load it. The secrets that may not be put
/// back come first among the problems; the rest of the text is checked all
/// the same, so that every problem shows at once.
fn check(
    edited: &str,
    current: &str,
    env: &[(String, String)],
    secrets: &BTreeMap<String, String>,
) -> Result<(String, config::LoadedConfig), Vec<ConfigError>> {
    let restored = mask::restore(edited, current);
    let loaded = config::load_str_with_secrets(&restored.text, SOURCE, env, secrets);
    let mut errors = restored.errors;
    match loaded {
        Ok(loaded) if errors.is_empty() => return Ok((restored.text, loaded)),
        Ok(_) => {}
        Err(e) => {
            // A refused secret is still `••••`: what the loader says of it
            // adds nothing.
            let more: Vec<ConfigError> = e
                .errors
                .into_iter()
                .filter(|x| !errors.iter().any(|r| r.key == x.key))
                .collect();
            errors.extend(more);
        }
    }
    Err(errors)
}

async fn validate(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    form: Result<Form<EditForm>, FormRejection>,
) -> Response {
    let (form, path) = match accept(&state, &signed, form) {
        Ok(ok) => ok,
        Err(resp) => return resp,
    };
    let edited = normalize(&form.text);
    let page = ConfigPage::new(&state, Layout::new("Config", &signed, &Flash::default()));
    let current = match Current::read_async(&path).await {
        Ok(c) => c,
        Err(why) => {
            let page = ConfigPage {
                problem: Some(why),
                ..page
            };
            return (StatusCode::CONFLICT, render(&page)).into_response();
        }
    };
    let mut page = page.editing(edited.clone(), form.base.clone());
    if current.hash != form.base {
        page.warning = Some(changed_on_disk());
    }
    let env = crate::cli::switchboard_env();
    let secrets = stored_secrets(&state, &[&edited, &current.text], &env).await;
    match check(&edited, &current.text, &env, &secrets) {
        Ok(_) => {
            page.outcome = Some("The config is valid.".into());
            render(&page)
        }
        Err(errors) => {
            let secrets = known_secrets(
                &[edited.as_str(), current.text.as_str()],
                &state.config.load(),
                &env,
            );
            let rows = rows(&errors, &edited, &secrets);
            let page = page.with_errors(&problems_title(rows.len(), false), rows);
            (StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response()
        }
    }
}

fn changed_on_disk() -> String {
    "The config file changed on disk since you opened it; reload the page to see the current file (your edits are kept below).".into()
}

fn problems_title(n: usize, saving: bool) -> String {
    let what = if n == 1 { "problem" } else { "problems" };
    if saving {
        format!("The config has {n} {what}, so it was not saved:")
    } else {
        format!("The config has {n} {what}:")
    }
}

/// What a save came to.
enum Saved {
    /// The file on disk is not the one the edits started from.
    Conflict,
    /// The edited config does not validate; nothing was written.
    Invalid(Vec<ConfigError>),
    /// Written (or the same bytes as before); these sections changed.
    Done(Vec<String>),
    /// Reading or writing failed.
    Failed(String),
}

async fn save(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    by: Actor,
    form: Result<Form<EditForm>, FormRejection>,
) -> Response {
    let (form, path) = match accept(&state, &signed, form) {
        Ok(ok) => ok,
        Err(resp) => return resp,
    };
    let edited = normalize(&form.text);
    let env = crate::cli::switchboard_env();
    let secrets = match Current::read_async(&path).await {
        Ok(c) => stored_secrets(&state, &[&edited, &c.text], &env).await,
        Err(_) => BTreeMap::new(),
    };
    let job = {
        let (path, base, edited, env) =
            (path.clone(), form.base.clone(), edited.clone(), env.clone());
        let running = state.config.load_full();
        tokio::task::spawn_blocking(move || {
            save_blocking(&path, &base, &edited, &env, &secrets, &running)
        })
    };
    let saved = job
        .await
        .unwrap_or_else(|e| Saved::Failed(format!("the save stopped unexpectedly ({e})")));
    let page = ConfigPage::new(&state, Layout::new("Config", &signed, &Flash::default()))
        .editing(edited.clone(), form.base.clone());
    match saved {
        Saved::Done(changed) => {
            tracing::info!(sections = ?changed, "config saved from the control UI");
            state
                .audit
                .record(
                    &by.clone().named("ui"),
                    action::CONFIG_SAVED,
                    &path.display().to_string(),
                    serde_json::json!({ "sections": changed }),
                )
                .await;
            let message = if changed.is_empty() {
                "Saved; nothing changed.".to_string()
            } else {
                match crate::http::control::config_reload(&state, &by.named("ui"), "ui").await {
                    Ok(v) => format!(
                        "Saved and reloaded: {}.",
                        v["summary"].as_str().unwrap_or("applied")
                    ),
                    Err(e) => format!(
                        "Saved, but the running gateway did not take it: {} It runs as before; fix the file and save again (a restart would refuse the file too).",
                        e.message()
                    ),
                }
            };
            done("/config", &message)
        }
        Saved::Conflict => {
            let mut page = page;
            page.layout.error = Some(changed_on_disk());
            (StatusCode::CONFLICT, render(&page)).into_response()
        }
        Saved::Invalid(errors) => {
            let current = Current::read_async(&path)
                .await
                .map(|c| c.text)
                .unwrap_or_default();
            let secrets = known_secrets(
                &[edited.as_str(), current.as_str()],
                &state.config.load(),
                &env,
            );
            let rows = rows(&errors, &edited, &secrets);
            let page = page.with_errors(&problems_title(rows.len(), true), rows);
            (StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response()
        }
        Saved::Failed(why) => {
            tracing::warn!(error = %why, "saving the config from the control UI failed");
            let mut page = page;
            page.layout.error = Some(format!("The config was not saved: {why}"));
            (StatusCode::INTERNAL_SERVER_ERROR, render(&page)).into_response()
        }
    }
}

/// Check the base, validate, write: under [`SAVING`], off the async
/// threads.
fn save_blocking(
    path: &Path,
    base: &str,
    edited: &str,
    env: &[(String, String)],
    secrets: &BTreeMap<String, String>,
    running: &Config,
) -> Saved {
    let _one_at_a_time = SAVING.lock().unwrap_or_else(PoisonError::into_inner);
    let current = match Current::read(path) {
        Ok(c) => c,
        Err(why) => return Saved::Failed(why),
    };
    if current.hash != base {
        return Saved::Conflict;
    }
    let (restored, loaded) = match check(edited, &current.text, env, secrets) {
        Ok(ok) => ok,
        Err(errors) => return Saved::Invalid(errors),
    };
    let bytes = if current.crlf {
        restored.replace('\n', "\r\n").into_bytes()
    } else {
        restored.into_bytes()
    };
    if bytes == current.bytes {
        return Saved::Done(Vec::new());
    }
    if let Err(e) = crate::staged::replace(path, &bytes) {
        return Saved::Failed(format!(
            "writing {} failed: {e}. Check that the gateway's user may write its directory.",
            path.display()
        ));
    }
    // What the file said before, read as the gateway would; the running
    // config when the old file did not load.
    let before = config::load_str_with_secrets(&current.text, SOURCE, env, secrets)
        .map(|l| l.config)
        .unwrap_or_else(|_| running.clone());
    Saved::Done(changed_sections(&before, &loaded.config))
}

/// The top-level sections (`gateway`, `providers`, …) that differ.
fn changed_sections(before: &Config, after: &Config) -> Vec<String> {
    let (Ok(Value::Table(a)), Ok(Value::Table(b))) =
        (Value::try_from(before), Value::try_from(after))
    else {
        return vec!["(all)".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(k.as_str()) != b.get(k.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn sections_that_differ_are_named() {
        let a = config::load_str("", "a", &[]).expect("defaults").config;
        let b = config::load_str(
            "[gateway]\nmax_concurrent_runs = 3\n[ui]\nsession_idle_hours = 2\n",
            "b",
            &[],
        )
        .expect("valid")
        .config;
        assert_eq!(changed_sections(&a, &b), ["gateway", "ui"]);
        assert!(changed_sections(&a, &a).is_empty());
    }

    #[test]
    fn writes_replace_the_file_and_keep_its_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, "old\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        crate::staged::replace(&path, b"new\n").expect("saved");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new\n");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(left.len(), 1, "no temporary file is left");
    }

    #[test]
    fn save_refuses_a_changed_file_and_invalid_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchboard.toml");
        let text = "[gateway.auth]\ntoken = \"Zq7mR2vL9kT4wZ8nC1pF6hJ3bD5gS0aEy\"\n";
        std::fs::write(&path, text).expect("write");
        let running = config::load_str(text, "c", &[]).expect("valid").config;
        let base = sha256_hex(text.as_bytes());
        let masked = mask::mask(text);
        assert!(!masked.contains("Zq7mR2vL9kT4wZ8nC1pF6hJ3bD5gS0aEy"));
        assert!(matches!(
            save_blocking(&path, "other", &masked, &[], &BTreeMap::new(), &running),
            Saved::Conflict
        ));
        let bad = format!("{masked}[gateway]\nbnd = 1\n");
        match save_blocking(&path, &base, &bad, &[], &BTreeMap::new(), &running) {
            Saved::Invalid(errors) => assert_eq!(errors[0].key, "gateway.bnd"),
            _ => panic!("invalid text was accepted"),
        }
        let edited = format!("{masked}\n[ui]\nsession_idle_hours = 3\n");
        match save_blocking(&path, &base, &edited, &[], &BTreeMap::new(), &running) {
            Saved::Done(changed) => assert_eq!(changed, ["ui"]),
            _ => panic!("the save failed"),
        }
        let now = std::fs::read_to_string(&path).expect("read");
        assert!(
            now.contains("token = \"Zq7mR2vL9kT4wZ8nC1pF6hJ3bD5gS0aEy\""),
            "{now}"
        );
        assert!(now.contains("session_idle_hours = 3"), "{now}");
    }

    #[test]
    fn messages_do_not_show_secrets() {
        let secrets = known_secrets(&["token = 12345678\n"], &Config::default(), &[]);
        let m = scrub(
            "invalid type: integer `12345678`, expected a string",
            &secrets,
        );
        assert!(!m.contains("12345678"), "{m}");
        let m = scrub("TOML parse error at line 1\n1 | token = \"abcdef\n  |", &[]);
        assert!(!m.contains("abcdef"), "{m}");
        let secrets = known_secrets(
            &["[providers.x]\nbase_url = \"https://u:pa55word@h.example/v1?key=q-value\"\n"],
            &Config::default(),
            &[(
                "SWITCHBOARD_SANDBOX__ENV__PAT".into(),
                "ghp-env-value".into(),
            )],
        );
        let m = scrub(
            "invalid URL https://u:pa55word@h.example/v1?key=q-value; PAT is ghp-env-value",
            &secrets,
        );
        for secret in ["pa55word", "q-value", "ghp-env-value"] {
            assert!(!m.contains(secret), "{secret} in {m}");
        }
    }

    #[test]
    fn a_file_that_is_not_toml_is_not_shown() {
        for text in [
            "[gateway.auth]\ntoken = \"s3cret-unclosed\n",
            "[gateway.auth]\ntoken: \"s3cret-colon\"\n",
            "note = \"\"\"\n[gateway.auth]\ntoken = \"s3cret-in-a-string\"\n",
            "[sandbox.env]\nGITHUB_PAT = \"s3cret-env\n",
            "[providers.x]\nbase_url = \"https://u:s3cret-pw@h.example/v1\n",
        ] {
            let why =
                masked_for_browser(text, "switchboard.toml").expect_err("the file is not shown");
            assert!(
                why.starts_with("The config file on disk is not valid TOML ("),
                "{why}"
            );
            assert!(!why.contains("s3cret"), "{why}");
        }
        let shown = masked_for_browser(
            "[gateway.auth]\ntoken = \"s3cret-token\"\n",
            "switchboard.toml",
        )
        .expect("a valid file is shown");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn save_refuses_a_kept_key_next_to_a_changed_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchboard.toml");
        let text = "[providers.openai]\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\nmodel = \"gpt-4o\"\napi_key = \"sk-live-0123456789\"\n";
        std::fs::write(&path, text).expect("write");
        let running = Config::default();
        let base = sha256_hex(text.as_bytes());
        let edited =
            mask::mask(text).replace("https://api.openai.com/v1", "https://evil.example/v1");
        assert!(!edited.contains("sk-live-0123456789"), "{edited}");
        match save_blocking(&path, &base, &edited, &[], &BTreeMap::new(), &running) {
            Saved::Invalid(errors) => {
                assert_eq!(errors[0].key, "providers.openai.api_key", "{errors:?}");
                assert!(
                    errors[0].message.contains("providers.openai.base_url"),
                    "{errors:?}"
                );
            }
            _ => panic!("the key was kept for a new address"),
        }
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            text,
            "the file was written"
        );
    }
}
