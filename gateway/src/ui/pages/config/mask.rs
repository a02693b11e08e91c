//! Secrets in config text: the values of secret keys (found by name), every
//! variable of `[sandbox.env]`, and the credentials of addresses (the
//! `user:pw@` and the `?query` of a `…url` key's value). They are masked as
//! `••••` before the text goes to the browser, and put back from the file
//! on disk when the edited text comes back, but never next to an address
//! that changed. The text is scanned, not re-serialized, so comments and
//! layout are kept; the scan knows TOML's tables, arrays of tables, dotted
//! and quoted keys, inline tables, arrays and the four kinds of strings,
//! and gives every value its dotted path (`providers.openai.api_key`,
//! `bindings[0].agent`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use toml::Value;

use crate::config::ConfigError;

mod scan;
pub(super) use scan::*;

/// What a secret is shown as.
pub(super) const MASK: &str = "••••";
/// A masked value as the text has it.
const MASKED: &str = "\"••••\"";
/// Every value under this path is a secret: `[sandbox.env]` hands its
/// variables (tokens among them) to the tools.
const SANDBOX_ENV: &str = "sandbox.env";

/// Whether a key (the last part of a path) holds a secret. Keys ending in
/// `_env` hold the name of a variable, not a secret.
pub(super) fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_env") {
        return false;
    }
    matches!(
        k.as_str(),
        "token"
            | "api_key"
            | "bot_token"
            | "app_token"
            | "signing_secret"
            | "webhook_secret"
            | "secret"
            | "password"
    ) || k.ends_with("_token")
        || k.ends_with("_key")
        || k.ends_with("_secret")
        || k.ends_with("_password")
}

/// Whether the table at `path` is `[sandbox.env]` or inside it.
fn in_sandbox_env(path: &str) -> bool {
    path.strip_prefix(SANDBOX_ENV)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Whether the value at `path` (whose last key is `key`) is a secret as a
/// whole: by its key's name, or as a variable of `[sandbox.env]`.
pub(super) fn is_secret_at(path: &str, key: &str) -> bool {
    is_secret_key(key) || (path != SANDBOX_ENV && in_sandbox_env(path))
}

/// Whether a key holds an address (`base_url`, `api_url`, `webhook_url`,
/// …): its credentials are secrets, and a secret in its table goes to it.
pub(super) fn is_url_key(key: &str) -> bool {
    key.to_ascii_lowercase().contains("url")
}

/// `text` with `edits` (ranges and their replacements) made; an edit inside
/// one made before it is dropped.
fn apply(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, with) in edits {
        if range.start < at {
            continue;
        }
        out.push_str(&text[at..range.start]);
        out.push_str(&with);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

fn is_empty_string(raw: &str) -> bool {
    matches!(raw, "\"\"" | "''")
}

fn is_masked(raw: &str) -> bool {
    raw == MASKED || raw == "'••••'"
}

/// The value a TOML value's text (`"a\tb"`, `'x'`, `3`) stands for.
fn decode(raw: &str) -> Option<Value> {
    let mut table: toml::Table = format!("v = {raw}").parse().ok()?;
    table.remove("v")
}

/// [`decode`], or the text itself when it does not read as a value.
fn decoded(raw: &str) -> Value {
    decode(raw).unwrap_or_else(|| Value::String(raw.to_string()))
}

/// A string as a TOML literal.
fn literal(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

// ---- addresses ----

/// A URL cut where credentials may be in it:
/// `scheme://` `userinfo@` `host:port/path` `?query` (or `#fragment`).
#[derive(Debug, Clone, Copy)]
struct UrlParts<'a> {
    /// `https://`, or empty when there is none.
    scheme: &'a str,
    /// What is before the authority's `@`, when it has one.
    userinfo: Option<&'a str>,
    /// Host, port and path.
    place: &'a str,
    /// `?` or `#`, and what follows it, when there is one.
    tail: Option<(&'a str, &'a str)>,
}

impl<'a> UrlParts<'a> {
    fn of(url: &'a str) -> Self {
        let scheme_len = url
            .find("://")
            .filter(|&i| {
                i > 0
                    && url[..i]
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
            })
            .map_or(0, |i| i + 3);
        let rest = &url[scheme_len..];
        let (main, tail) = match rest.find(['?', '#']) {
            Some(i) => (&rest[..i], Some((&rest[i..i + 1], &rest[i + 1..]))),
            None => (rest, None),
        };
        let authority = main.find('/').map_or(main, |i| &main[..i]);
        let (userinfo, place) = match authority.rfind('@') {
            Some(at) => (Some(&main[..at]), &main[at + 1..]),
            None => (None, main),
        };
        Self {
            scheme: &url[..scheme_len],
            userinfo,
            place,
            tail,
        }
    }

    /// The URL with this scheme and place, and the given credentials.
    fn with(&self, userinfo: Option<&str>, tail: Option<(&str, &str)>) -> String {
        let mut out = String::from(self.scheme);
        if let Some(u) = userinfo {
            out.push_str(u);
            out.push('@');
        }
        out.push_str(self.place);
        if let Some((sep, rest)) = tail {
            out.push_str(sep);
            out.push_str(rest);
        }
        out
    }

    /// As the browser sees it: each credential that is set as `••••`.
    fn hidden(&self) -> String {
        let hide = |s: &'a str| -> &'a str { if s.is_empty() { s } else { MASK } };
        self.with(
            self.userinfo.map(hide),
            self.tail.map(|(sep, rest)| (sep, hide(rest))),
        )
    }

    /// Whether it holds a credential that is not `••••`.
    fn shows_credentials(&self) -> bool {
        let shows = |s: &str| !s.is_empty() && s != MASK;
        self.userinfo.is_some_and(shows) || self.tail.is_some_and(|(_, rest)| shows(rest))
    }
}

/// `url` with its credentials masked; `None` when it shows none.
fn mask_url(url: &str) -> Option<String> {
    let parts = UrlParts::of(url);
    parts.shows_credentials().then(|| parts.hidden())
}

/// The credentials in `url` (the userinfo, its password, the query and
/// each of its values), for scrubbing messages.
fn url_secrets(url: &str, out: &mut Vec<String>) {
    let parts = UrlParts::of(url);
    if let Some(user) = parts.userinfo.filter(|u| !u.is_empty() && *u != MASK) {
        out.push(user.to_string());
        if let Some((_, password)) = user.split_once(':') {
            out.push(password.to_string());
        }
    }
    if let Some((_, rest)) = parts
        .tail
        .filter(|(_, rest)| !rest.is_empty() && *rest != MASK)
    {
        out.push(rest.to_string());
        for pair in rest.split(['&', ';', '#']) {
            if let Some((_, value)) = pair.split_once('=') {
                out.push(value.to_string());
            }
        }
    }
}

/// Why the `••••` credentials of an address were not put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlRefusal {
    /// The file has no credentials there to keep.
    Missing,
    /// Its scheme, host, port or path is not the file's.
    Moved,
}

impl UrlRefusal {
    fn on(self, path: &str) -> ConfigError {
        match self {
            Self::Missing => nothing_to_keep(path),
            Self::Moved => ConfigError::new(
                path,
                "the address changed: enter its credentials again or remove them",
            ),
        }
    }
}

/// The edited address `posted` with its `••••` credentials put back from
/// `original` (the file's value at its path), only when it still points
/// where that one does; `None` when it has none to put back.
fn restore_url(posted: &str, original: Option<&str>) -> Result<Option<String>, UrlRefusal> {
    let p = UrlParts::of(posted);
    let user_kept = p.userinfo == Some(MASK);
    let tail_kept = p.tail.is_some_and(|(_, rest)| rest == MASK);
    if !user_kept && !tail_kept {
        return Ok(None);
    }
    let o = UrlParts::of(original.ok_or(UrlRefusal::Missing)?);
    if (p.scheme, p.place) != (o.scheme, o.place) {
        return Err(UrlRefusal::Moved);
    }
    let userinfo = if user_kept {
        Some(
            o.userinfo
                .filter(|u| !u.is_empty())
                .ok_or(UrlRefusal::Missing)?,
        )
    } else {
        p.userinfo
    };
    let tail = if tail_kept {
        Some(
            o.tail
                .filter(|(_, rest)| !rest.is_empty())
                .ok_or(UrlRefusal::Missing)?,
        )
    } else {
        p.tail
    };
    Ok(Some(p.with(userinfo, tail)))
}

/// The literal to save for the address literal `raw` of the edited text
/// (see [`restore_url`]); the file's own literal when the address comes
/// back unchanged.
fn restore_url_literal(raw: &str, original: Option<&str>) -> Result<Option<String>, UrlRefusal> {
    let Some(Value::String(posted)) = decode(raw) else {
        return Ok(None);
    };
    let was = match original.and_then(decode) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let Some(back) = restore_url(&posted, was.as_deref())? else {
        return Ok(None);
    };
    Ok(Some(match (original, was) {
        (Some(o), Some(w)) if w == back => o.to_string(),
        _ => literal(&back),
    }))
}

/// Where each address key of a text points (see [`place_of`]) by its
/// path, with the table it is in.
type Addresses = HashMap<String, (String, Value)>;

/// Where the address literal `raw` points: its scheme, host, port and
/// path (credentials changed in place move nothing).
fn place_of(raw: &str) -> Value {
    match decoded(raw) {
        Value::String(url) => {
            let parts = UrlParts::of(&url);
            Value::String(format!("{}{}", parts.scheme, parts.place))
        }
        other => other,
    }
}

/// The addresses of `table` that point elsewhere in `after` than in
/// `before` (also one added or removed), joined by `, `.
fn moved_address(table: &str, before: &Addresses, after: &Addresses) -> Option<String> {
    let mut moved: Vec<&str> = before
        .iter()
        .chain(after.iter())
        .filter(|(_, (t, _))| t.as_str() == table)
        .filter(|(path, _)| {
            before.get(path.as_str()).map(|(_, v)| v) != after.get(path.as_str()).map(|(_, v)| v)
        })
        .map(|(path, _)| path.as_str())
        .collect();
    moved.sort_unstable();
    moved.dedup();
    (!moved.is_empty()).then(|| moved.join(", "))
}

// ---- masking ----

/// In free text (a comment, a line of an error message): the value after
/// each `<secret key> =` (and `:` when `colon`) replaced by `"••••"`, and
/// the credentials of the value after each `<address key> =`.
pub(super) fn mask_loose(text: &str, colon: bool) -> String {
    loose(text, colon, false)
}

/// [`mask_loose`]; with `every`, the value after any `key =` is masked.
fn loose(text: &str, colon: bool, every: bool) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut last) = (0, 0);
    while i < b.len() {
        if !(is_bare(b[i]) && (i == 0 || !is_bare(b[i - 1]))) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_bare(b[i]) {
            i += 1;
        }
        let key = &text[start..i];
        let secret = is_secret_key(key);
        let url = !secret && is_url_key(key);
        if !(secret || url || every) {
            continue;
        }
        let mut j = i;
        // `"token" = …` as well as `token = …`.
        if matches!(b.get(j), Some(b'"' | b'\'')) {
            j += 1;
        }
        while matches!(b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        let colon = colon && (secret || url);
        if !(b.get(j) == Some(&b'=') || (colon && b.get(j) == Some(&b':'))) {
            continue;
        }
        j += 1;
        while matches!(b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        let value_start = j;
        let value_end = match b.get(j) {
            Some(&q) if q == b'"' || q == b'\'' => b[j + 1..]
                .iter()
                .position(|&c| c == q)
                .map_or(b.len(), |n| j + 1 + n + 1),
            _ => b[j..]
                .iter()
                .position(|&c| matches!(c, b' ' | b'\t' | b'\n' | b',' | b'}' | b']'))
                .map_or(b.len(), |n| j + n),
        };
        let raw = &text[value_start..value_end];
        if secret || every {
            if value_end > value_start && !is_empty_string(raw) && !is_masked(raw) {
                out.push_str(&text[last..value_start]);
                out.push_str(MASKED);
                last = value_end;
            }
        } else {
            // The address without its quotes (the closing one may be missing).
            let (inner_start, inner_end) = match b.get(value_start) {
                Some(&q) if q == b'"' || q == b'\'' => {
                    let closed = value_end > value_start + 1 && b[value_end - 1] == q;
                    (
                        value_start + 1,
                        if closed { value_end - 1 } else { value_end },
                    )
                }
                _ => (value_start, value_end),
            };
            if let Some(shown) = mask_url(&text[inner_start..inner_end]) {
                out.push_str(&text[last..inner_start]);
                out.push_str(&shown);
                last = inner_end;
            }
        }
        i = value_end.max(i);
    }
    out.push_str(&text[last..]);
    out
}

/// A comment as the browser sees it: in `[sandbox.env]` every value in it
/// masked, elsewhere those of secret keys and the credentials of addresses.
fn mask_comment(text: &str, table: &str) -> String {
    loose(text, true, in_sandbox_env(table))
}

/// What the value `raw` of `a` is shown as in the browser, when that is
/// not `raw` itself.
fn shown_value(a: &Assignment, raw: &str) -> Option<String> {
    // `env = "…"` under `[sandbox]` is not valid, but may hold a secret.
    let bad_env = a.path == SANDBOX_ENV && !raw.starts_with('{');
    if is_secret_at(&a.path, &a.key) || bad_env {
        return (!is_empty_string(raw) && !is_masked(raw)).then(|| MASKED.to_string());
    }
    if !is_url_key(&a.key) {
        return None;
    }
    match decode(raw) {
        Some(Value::String(url)) => mask_url(&url).map(|shown| literal(&shown)),
        Some(Value::Array(items)) => items
            .iter()
            .any(shows_url_credentials)
            .then(|| MASKED.to_string()),
        Some(_) => None,
        // What cannot be read is not shown.
        None => Some(MASKED.to_string()),
    }
}

/// `text` with its secrets masked (empty values are left, they tell
/// nothing), also where a comment has one.
pub(super) fn mask(text: &str) -> String {
    let found = scan(text);
    let mut edits = Vec::new();
    for a in &found.assignments {
        if let Some(shown) = shown_value(a, &text[a.value.clone()]) {
            edits.push((a.value.clone(), shown));
        }
    }
    for c in &found.comments {
        let original = &text[c.range.clone()];
        let masked = mask_comment(original, &c.table);
        if masked != original {
            edits.push((c.range.clone(), masked));
        }
    }
    apply(text, edits)
}

// ---- restoring ----

/// What [`restore`] made of an edited text.
#[derive(Debug)]
pub(super) struct Restored {
    /// The text with each secret put back that may be; one refused stays
    /// `••••`.
    pub text: String,
    /// Each secret that was not put back, on its key.
    pub errors: Vec<ConfigError>,
}

fn nothing_to_keep(path: &str) -> ConfigError {
    ConfigError::new(
        path,
        format!(
            "is shown as {MASK}, but the file on disk has no value here to keep: enter the value, or remove the line"
        ),
    )
}

/// The edited `posted` text with each secret that is still `••••` put
/// back from `current` (the file on disk) by its path, and each comment
/// that was masked put back as it was. Refused, each an error on its key:
/// a masked secret whose path the file does not have; masked credentials
/// of an address that points elsewhere than the file's; a masked secret
/// in a table one of whose addresses changed (it would be sent there).
pub(super) fn restore(posted: &str, current: &str) -> Restored {
    let now = scan(current);
    let originals: HashMap<&str, &str> = now
        .assignments
        .iter()
        .map(|a| (a.path.as_str(), &current[a.value.clone()]))
        .collect();
    let edited = scan(posted);
    let mut edits = Vec::new();
    let mut errors = Vec::new();
    // Secrets kept whole from the file, with their literal there.
    let mut kept: Vec<(&Assignment, &str)> = Vec::new();
    // The addresses of the edited text as it would be saved.
    let mut after = Addresses::new();
    for a in &edited.assignments {
        let raw = &posted[a.value.clone()];
        let original = originals.get(a.path.as_str()).copied();
        let saved: Cow<'_, str> = if is_secret_at(&a.path, &a.key) {
            match (is_masked(raw), original) {
                (true, Some(o)) => {
                    kept.push((a, o));
                    Cow::Borrowed(o)
                }
                (true, None) => {
                    errors.push(nothing_to_keep(&a.path));
                    Cow::Borrowed(raw)
                }
                (false, _) => Cow::Borrowed(raw),
            }
        } else if is_url_key(&a.key) {
            match restore_url_literal(raw, original) {
                Ok(Some(back)) => {
                    edits.push((a.value.clone(), back.clone()));
                    Cow::Owned(back)
                }
                Ok(None) => Cow::Borrowed(raw),
                Err(refusal) => {
                    errors.push(refusal.on(&a.path));
                    Cow::Borrowed(raw)
                }
            }
        } else {
            continue;
        };
        if is_url_key(&a.key) {
            after.insert(a.path.clone(), (a.table().to_string(), place_of(&saved)));
        }
    }
    let before: Addresses = now
        .assignments
        .iter()
        .filter(|a| is_url_key(&a.key))
        .map(|a| {
            let place = place_of(&current[a.value.clone()]);
            (a.path.clone(), (a.table().to_string(), place))
        })
        .collect();
    for (a, original) in kept {
        match moved_address(a.table(), &before, &after) {
            Some(moved) => errors.push(ConfigError::new(
                a.path.clone(),
                format!(
                    "the address of this table changed ({moved}); enter this secret again so it is not sent to a new address unasked"
                ),
            )),
            None => edits.push((a.value.clone(), original.to_string())),
        }
    }
    let mut comments: HashMap<String, &str> = HashMap::new();
    for c in &now.comments {
        let original = &current[c.range.clone()];
        let masked = mask_comment(original, &c.table);
        if masked != original {
            comments.entry(masked).or_insert(original);
        }
    }
    for c in &edited.comments {
        if let Some(original) = comments.get(&posted[c.range.clone()]) {
            edits.push((c.range.clone(), (*original).to_string()));
        }
    }
    Restored {
        text: apply(posted, edits),
        errors,
    }
}

// ---- finding secrets ----

/// The secret values `text` holds: each secret's value as written, without
/// its quotes and as it reads; the credentials of each address.
pub(super) fn secret_values(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for a in scan(text).assignments {
        let raw = &text[a.value.clone()];
        if is_secret_at(&a.path, &a.key) {
            if is_masked(raw) || is_empty_string(raw) {
                continue;
            }
            out.push(raw.to_string());
            let inner = raw
                .trim_start_matches(['"', '\''])
                .trim_end_matches(['"', '\'']);
            if inner != raw && !inner.is_empty() {
                out.push(inner.to_string());
            }
            if let Some(Value::String(s)) = decode(raw)
                && s != inner
            {
                out.push(s);
            }
        } else if is_url_key(&a.key)
            && let Some(Value::String(url)) = decode(raw)
        {
            url_secrets(&url, &mut out);
        }
    }
    out
}

/// The secrets in `value` when it is the value at `path` (e.g. from the
/// environment variable that sets that key).
pub(super) fn secrets_of(path: &str, value: &str, out: &mut Vec<String>) {
    let key = path.rsplit('.').next().unwrap_or(path);
    if is_secret_at(path, key) {
        out.push(value.to_string());
    } else if is_url_key(key) {
        url_secrets(value, out);
    }
}

/// Whether an address value (or a list of them) shows a credential.
fn shows_url_credentials(value: &Value) -> bool {
    match value {
        Value::String(s) => UrlParts::of(s).shows_credentials(),
        Value::Array(items) => items.iter().any(shows_url_credentials),
        _ => false,
    }
}

/// The credentials of an address value (or a list of them) masked.
fn hide_urls(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Some(shown) = mask_url(s.as_str()) {
                *s = shown;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(hide_urls),
        _ => {}
    }
}

/// Mask every secret in a value tree (a serialized config).
pub(super) fn mask_value(value: &mut Value) {
    mask_value_at(value, "");
}

fn mask_value_at(value: &mut Value, path: &str) {
    match value {
        Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let p = join(path, k);
                let empty = matches!(v, Value::String(s) if s.is_empty());
                if is_secret_at(&p, k) && !v.is_table() && !empty {
                    *v = Value::String(MASK.into());
                } else if is_url_key(k) && !v.is_table() {
                    hide_urls(v);
                } else {
                    mask_value_at(v, &p);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| mask_value_at(v, path)),
        _ => {}
    }
}

/// The secret strings in a value tree.
pub(super) fn secrets_in(value: &Value, out: &mut Vec<String>) {
    secrets_at(value, "", out);
}

fn secrets_at(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Table(t) => {
            for (k, v) in t {
                let p = join(path, k);
                match v {
                    Value::String(s) if is_secret_at(&p, k) => {
                        if !s.is_empty() {
                            out.push(s.clone());
                        }
                    }
                    Value::String(s) if is_url_key(k) => url_secrets(s, out),
                    Value::Array(items) if is_url_key(k) => items
                        .iter()
                        .filter_map(Value::as_str)
                        .for_each(|s| url_secrets(s, out)),
                    _ => secrets_at(v, &p, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| secrets_at(v, path, out)),
        _ => {}
    }
}

/// Whether a value tree holds a secret that is not masked: the check that
/// [`mask`] missed nothing.
pub(super) fn has_unmasked_secret(value: &Value) -> bool {
    unmasked_at(value, "")
}

fn unmasked_at(value: &Value, path: &str) -> bool {
    match value {
        Value::Table(t) => t.iter().any(|(k, v)| {
            let p = join(path, k);
            match v {
                Value::Table(_) => unmasked_at(v, &p),
                Value::String(s) if is_secret_at(&p, k) || p == SANDBOX_ENV => {
                    !(s.is_empty() || s == MASK)
                }
                _ if is_secret_at(&p, k) => true,
                _ if is_url_key(k) => shows_url_credentials(v),
                _ => unmasked_at(v, &p),
            }
        }),
        Value::Array(a) => a.iter().any(|v| unmasked_at(v, path)),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
