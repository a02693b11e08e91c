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

/// One `key = value` of a config text.
#[derive(Debug, Clone)]
pub(super) struct Assignment {
    /// Its dotted path.
    pub path: String,
    /// The last key of the path.
    pub key: String,
    /// Where the value's text is.
    pub value: Range<usize>,
    /// The line (from 1) of the key.
    pub line: usize,
}

impl Assignment {
    /// The path of the table it is in.
    fn table(&self) -> &str {
        self.path
            .strip_suffix(self.key.as_str())
            .map_or("", |p| p.strip_suffix('.').unwrap_or(p))
    }
}

/// One comment of a config text.
#[derive(Debug, Clone)]
pub(super) struct Comment {
    /// From its `#` to the end of its line.
    pub range: Range<usize>,
    /// The path of the table it is in (the last header above it).
    pub table: String,
}

/// What a scan of a config text found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Every `key = value`, also inside inline tables and arrays.
    pub assignments: Vec<Assignment>,
    /// Table headers: path and line.
    pub tables: Vec<(String, usize)>,
    /// Every comment.
    pub comments: Vec<Comment>,
}

impl Scan {
    /// The line of `key` (a path as config errors name it): `(line, true)`
    /// when the key itself is there, `(line, false)` for the nearest table
    /// or key that encloses it.
    pub(super) fn line_of(&self, key: &str) -> Option<(usize, bool)> {
        let find = |path: &str| {
            self.assignments
                .iter()
                .find(|a| a.path == path)
                .map(|a| a.line)
                .or_else(|| self.tables.iter().find(|(p, _)| p == path).map(|(_, l)| *l))
        };
        if key.is_empty() {
            return None;
        }
        if let Some(line) = find(key) {
            return Some((line, true));
        }
        let mut path = key;
        while let Some(cut) = path.rfind(['.', '[']) {
            path = &path[..cut];
            if let Some(line) = find(path) {
                return Some((line, false));
            }
        }
        None
    }
}

/// Scan `text` (which need not be valid TOML: what cannot be read is
/// skipped to the end of its line).
pub(super) fn scan(text: &str) -> Scan {
    let mut line_starts = vec![0];
    line_starts.extend(
        text.bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .map(|(i, _)| i + 1),
    );
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: if text.starts_with('\u{feff}') { 3 } else { 0 },
        line_starts,
        out: Scan::default(),
        arrays: HashMap::new(),
        table: String::new(),
    };
    s.run();
    s.out
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    line_starts: Vec<usize>,
    out: Scan,
    /// Arrays of tables (`[[x]]`) by path, and how many elements each has.
    arrays: HashMap<String, usize>,
    /// The path of the last table header.
    table: String,
}

fn is_bare(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Scanner<'_> {
    fn line(&self, at: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= at)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Blanks, newlines and comments (between the parts of arrays and
    /// inline tables).
    fn skip_space(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.i += 1,
                Some(b'#') => self.comment(),
                _ => break,
            }
        }
    }

    /// To the end of the line, not past its newline.
    fn to_line_end(&mut self) {
        match self.b[self.i.min(self.b.len())..]
            .iter()
            .position(|&c| c == b'\n')
        {
            Some(n) => self.i += n,
            None => self.i = self.b.len(),
        }
    }

    fn comment(&mut self) {
        let start = self.i;
        self.to_line_end();
        self.out.comments.push(Comment {
            range: start..self.i,
            table: self.table.clone(),
        });
    }

    fn run(&mut self) {
        let mut table = String::new();
        while self.i < self.b.len() {
            match self.b[self.i] {
                b' ' | b'\t' | b'\r' | b'\n' => self.i += 1,
                b'#' => self.comment(),
                b'[' => {
                    table = self.header();
                    self.table.clone_from(&table);
                    self.rest_of_line();
                }
                _ => {
                    if self.key_value(&table) {
                        self.rest_of_line();
                    } else {
                        self.to_line_end();
                    }
                }
            }
        }
    }

    /// After a header or a top-level value: a comment, then the newline.
    fn rest_of_line(&mut self) {
        self.skip_blank();
        if self.peek() == Some(b'#') {
            self.comment();
        }
        if self.peek() == Some(b'\r') {
            self.i += 1;
        }
        if !matches!(self.peek(), None | Some(b'\n')) {
            self.to_line_end();
        }
    }

    /// `[a.b]` or `[[a.b]]`; returns the table's path.
    fn header(&mut self) -> String {
        let line = self.line(self.i);
        self.i += 1;
        let array = self.peek() == Some(b'[');
        if array {
            self.i += 1;
        }
        let keys = self.key_path();
        self.skip_blank();
        if self.peek() == Some(b']') {
            self.i += 1;
            if array && self.peek() == Some(b']') {
                self.i += 1;
            }
        }
        let Some(keys) = keys else {
            return String::new();
        };
        let mut path = String::new();
        let last = keys.len().saturating_sub(1);
        for (n, key) in keys.iter().enumerate() {
            path = join(&path, key);
            if array && n == last {
                let count = self.arrays.entry(path.clone()).or_insert(0);
                let index = *count;
                *count += 1;
                path = format!("{path}[{index}]");
            } else if let Some(count) = self.arrays.get(&path) {
                path = format!("{path}[{}]", count.saturating_sub(1));
            }
        }
        self.out.tables.push((path.clone(), line));
        path
    }

    /// A dotted key: bare and quoted parts.
    fn key_path(&mut self) -> Option<Vec<String>> {
        let mut keys = Vec::new();
        loop {
            self.skip_blank();
            let key = match self.peek()? {
                q @ (b'"' | b'\'') => {
                    let start = self.i;
                    self.quoted(q)?;
                    self.text[start + 1..self.i - 1].to_string()
                }
                c if is_bare(c) => {
                    let start = self.i;
                    while self.peek().is_some_and(is_bare) {
                        self.i += 1;
                    }
                    self.text[start..self.i].to_string()
                }
                _ => return None,
            };
            keys.push(key);
            self.skip_blank();
            if self.peek() == Some(b'.') {
                self.i += 1;
            } else {
                return Some(keys);
            }
        }
    }

    /// `key = value` under the table `prefix`.
    fn key_value(&mut self, prefix: &str) -> bool {
        let line = self.line(self.i);
        let Some(keys) = self.key_path() else {
            return false;
        };
        self.skip_blank();
        if self.peek() != Some(b'=') {
            return false;
        }
        self.i += 1;
        self.skip_blank();
        let mut path = prefix.to_string();
        for k in &keys {
            path = join(&path, k);
        }
        let Some(value) = self.value(&path) else {
            return false;
        };
        self.out.assignments.push(Assignment {
            path,
            key: keys.last().cloned().unwrap_or_default(),
            value,
            line,
        });
        true
    }

    /// A value of any kind; returns where its text is.
    fn value(&mut self, path: &str) -> Option<Range<usize>> {
        let start = self.i;
        match self.peek()? {
            q @ (b'"' | b'\'') => {
                if self.b[self.i..].starts_with(&[q, q, q]) {
                    self.multiline(q);
                } else {
                    self.quoted(q)?;
                }
            }
            b'{' => self.inline_table(path)?,
            b'[' => self.array(path)?,
            _ => {
                // Numbers, booleans, dates (which may hold a blank).
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b']' | b'}' | b'#' | b'\n' | b'\r') {
                        break;
                    }
                    self.i += 1;
                }
                let mut end = self.i;
                while end > start && matches!(self.b[end - 1], b' ' | b'\t') {
                    end -= 1;
                }
                return (end > start).then_some(start..end);
            }
        }
        Some(start..self.i)
    }

    /// A one-line string opened by `q` at the cursor; the cursor ends after
    /// its closing quote.
    fn quoted(&mut self, q: u8) -> Option<()> {
        let mut j = self.i + 1;
        loop {
            match self.b.get(j) {
                None => {
                    self.i = self.b.len();
                    return None;
                }
                Some(b'\n') => {
                    self.i = j;
                    return None;
                }
                Some(&c) if c == q => {
                    self.i = j + 1;
                    return Some(());
                }
                Some(b'\\') if q == b'"' => j += 2,
                Some(_) => j += 1,
            }
        }
    }

    /// A multi-line string (`"""…"""` or `'''…'''`) at the cursor.
    fn multiline(&mut self, q: u8) {
        let mut j = self.i + 3;
        while j < self.b.len() {
            if self.b[j] == b'\\' && q == b'"' {
                j += 2;
            } else if self.b[j..].starts_with(&[q, q, q]) {
                j += 3;
                // Up to two quotes more belong to the content.
                let mut extra = 0;
                while extra < 2 && self.b.get(j) == Some(&q) {
                    j += 1;
                    extra += 1;
                }
                self.i = j;
                return;
            } else {
                j += 1;
            }
        }
        self.i = self.b.len();
    }

    /// `{ k = v, … }`.
    fn inline_table(&mut self, path: &str) -> Option<()> {
        self.i += 1;
        loop {
            self.skip_space();
            match self.peek()? {
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                b',' => self.i += 1,
                _ => {
                    if !self.key_value(path) {
                        return None;
                    }
                }
            }
        }
    }

    /// `[ v, … ]`; element `n` has the path `path[n]`.
    fn array(&mut self, path: &str) -> Option<()> {
        self.i += 1;
        let mut index = 0;
        loop {
            self.skip_space();
            if self.peek()? == b']' {
                self.i += 1;
                return Some(());
            }
            self.value(&format!("{path}[{index}]"))?;
            index += 1;
            self.skip_space();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
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
mod tests {
    use super::*;

    const FILE: &str = r#"# Switchboard
[gateway]
bind = "127.0.0.1:7788"   # loopback
[gateway.auth]
token = "s3cret-control-token"

[providers.openai]
kind = "openai"
model = "gpt-4o"
base_url = "https://api.openai.com/v1"
api_key = 'sk-live-abc'
api_key_env = "OPENAI_API_KEY"
max_tokens = 512
# old: api_key = "sk-old-key"

[channels.telegram.accounts.main]
token = """123:multi"""
webhook_secret = ""

[channels.slack.accounts]
work = { bot_token = "xoxb-inline", signing_secret = "abcd1234", channels = ["C1"] }

[[bindings]]
agent = "main"
[[bindings]]
agent = "other"
peer = { password = "p4ss" }
"#;

    /// `text` masked: none of `secrets` in it, still TOML, nothing left
    /// for the check to find; and put back as it was.
    fn assert_masked(text: &str, secrets: &[&str]) -> String {
        let m = mask(text);
        for secret in secrets {
            assert!(!m.contains(secret), "{secret} in\n{m}");
        }
        let parsed = Value::Table(m.parse().expect("still TOML"));
        assert!(
            !has_unmasked_secret(&parsed),
            "the check finds a secret in\n{m}"
        );
        let original = Value::Table(text.parse().expect("TOML"));
        assert!(
            has_unmasked_secret(&original),
            "the check misses one in\n{text}"
        );
        let back = restore(&m, text);
        assert!(back.errors.is_empty(), "{:?}", back.errors);
        assert_eq!(back.text, text);
        m
    }

    #[test]
    fn secrets_are_masked_and_the_rest_is_kept() {
        let m = assert_masked(
            FILE,
            &[
                "s3cret-control-token",
                "sk-live-abc",
                "sk-old-key",
                "123:multi",
                "xoxb-inline",
                "abcd1234",
                "p4ss",
            ],
        );
        assert!(m.contains("# Switchboard\n"), "{m}");
        assert!(m.contains("bind = \"127.0.0.1:7788\"   # loopback"), "{m}");
        assert!(m.contains("token = \"••••\""), "{m}");
        assert!(
            m.contains("base_url = \"https://api.openai.com/v1\""),
            "{m}"
        );
        assert!(m.contains("api_key_env = \"OPENAI_API_KEY\""), "{m}");
        assert!(m.contains("max_tokens = 512"), "{m}");
        assert!(m.contains("webhook_secret = \"\""), "{m}");
        assert!(m.contains("channels = [\"C1\"]"), "{m}");
    }

    #[test]
    fn every_sandbox_variable_is_masked() {
        let m = assert_masked(
            "[sandbox]\nnetwork = \"bridge\"\n[sandbox.env]\nGITHUB_PAT = \"ghp-value-1\"\nPLAIN = 'plain-value-2'\nNUMBER = 12345678\n# OLD = \"old-value-3\"\n",
            &["ghp-value-1", "plain-value-2", "12345678", "old-value-3"],
        );
        assert!(m.contains("network = \"bridge\""), "{m}");
        assert!(m.contains("GITHUB_PAT = \"••••\""), "{m}");
        assert_masked(
            "sandbox.env.DOTTED = \"dotted-value-4\"\n",
            &["dotted-value-4"],
        );
        assert_masked("[sandbox]\nenv.X = \"x-value-5\"\n", &["x-value-5"]);
        let m = assert_masked(
            "[sandbox]\nenv = { INLINE = \"inline-value-6\", B = \"b-value-7\" }\n",
            &["inline-value-6", "b-value-7"],
        );
        assert!(m.contains("INLINE = \"••••\""), "{m}");
    }

    const ADDRESSES: &str = r#"[providers.openai]
base_url = "https://user:pa55word@proxy.example.com:8443/v1?api-key=q-value-1"
api_key = "sk-live-abc"

[channels.telegram.accounts.main]
token = "123:tg-value"
api_url = 'https://bot:tg-pass@tg.example.com/'
# webhook_url = "https://hook:old-pass@hooks.example.com/x"
"#;

    #[test]
    fn credentials_of_addresses_are_masked_and_the_address_kept() {
        let m = assert_masked(
            ADDRESSES,
            &[
                "user",
                "pa55word",
                "api-key",
                "q-value-1",
                "tg-pass",
                "old-pass",
            ],
        );
        assert!(
            m.contains("base_url = \"https://••••@proxy.example.com:8443/v1?••••\""),
            "{m}"
        );
        assert!(m.contains("https://••••@tg.example.com/"), "{m}");
        assert!(m.contains("https://••••@hooks.example.com/x"), "{m}");
        // A new password is taken as written.
        let edited = m.replace(
            "https://••••@tg.example.com/",
            "https://bot:new-pass@tg.example.com/",
        );
        let back = restore(&edited, ADDRESSES);
        assert!(back.errors.is_empty(), "{:?}", back.errors);
        assert!(
            back.text.contains("https://bot:new-pass@tg.example.com/"),
            "{}",
            back.text
        );
    }

    #[test]
    fn credentials_do_not_follow_a_changed_address() {
        let edited = mask(ADDRESSES).replace("proxy.example.com:8443/v1", "evil.example/v1");
        let back = restore(&edited, ADDRESSES);
        let keys: Vec<&str> = back.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["providers.openai.base_url", "providers.openai.api_key"]
        );
        assert!(
            back.errors[0].message.contains("the address changed"),
            "{:?}",
            back.errors
        );
        for secret in ["pa55word", "q-value-1", "sk-live-abc"] {
            assert!(!back.text.contains(secret), "{secret} in\n{}", back.text);
        }
    }

    #[test]
    fn a_kept_secret_does_not_follow_a_changed_address() {
        let file = "[providers.openai]\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key = \"sk-live-abc\"\n";
        let edited = mask(file).replace("https://api.openai.com/v1", "https://evil.example/v1");
        let back = restore(&edited, file);
        assert_eq!(back.errors.len(), 1, "{:?}", back.errors);
        assert_eq!(back.errors[0].key, "providers.openai.api_key");
        assert!(
            back.errors[0]
                .message
                .contains("(providers.openai.base_url)"),
            "{}",
            back.errors[0].message
        );
        assert!(!back.text.contains("sk-live-abc"), "{}", back.text);
        // With the secret written out again, the new address is fine.
        let retyped = edited.replace("\"••••\"", "\"sk-new\"");
        assert!(restore(&retyped, file).errors.is_empty());
        // An address added next to a kept token is a change too.
        let file = "[channels.telegram.accounts.main]\ntoken = \"123:tg-value\"\n";
        let edited = format!("{}api_url = \"https://evil.example\"\n", mask(file));
        let back = restore(&edited, file);
        assert_eq!(back.errors.len(), 1, "{:?}", back.errors);
        assert_eq!(back.errors[0].key, "channels.telegram.accounts.main.token");
        assert!(!back.text.contains("123:tg-value"), "{}", back.text);
    }

    #[test]
    fn paths_follow_tables_arrays_and_inline_tables() {
        let s = scan(FILE);
        let paths: Vec<&str> = s.assignments.iter().map(|a| a.path.as_str()).collect();
        for p in [
            "gateway.auth.token",
            "providers.openai.api_key",
            "channels.slack.accounts.work.bot_token",
            "channels.slack.accounts.work",
            "bindings[0].agent",
            "bindings[1].agent",
            "bindings[1].peer.password",
        ] {
            assert!(paths.contains(&p), "{p} not in {paths:?}");
        }
        assert_eq!(s.line_of("gateway.auth.token"), Some((5, true)));
        assert_eq!(s.line_of("providers.openai.timeout_secs"), Some((7, false)));
        assert_eq!(s.line_of("nowhere.at.all"), None);
    }

    #[test]
    fn restore_puts_the_file_s_secrets_back() {
        let edited = mask(FILE).replace("model = \"gpt-4o\"", "model = \"gpt-4.1\"");
        let back = restore(&edited, FILE);
        assert!(back.errors.is_empty(), "{:?}", back.errors);
        assert_eq!(back.text, FILE.replace("gpt-4o", "gpt-4.1"));
    }

    #[test]
    fn a_new_masked_key_is_an_error_on_it() {
        let edited = format!("{}\n[providers.other]\napi_key = \"••••\"\n", mask(FILE));
        let errors = restore(&edited, FILE).errors;
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "providers.other.api_key");
        assert!(
            errors[0]
                .message
                .contains("enter the value, or remove the line")
        );
    }

    #[test]
    fn loose_text_is_masked() {
        assert_eq!(
            mask_loose("3 | token = \"abc", false),
            "3 | token = \"••••\""
        );
        assert_eq!(mask_loose("token: xyz rest", true), "token: \"••••\" rest");
        assert_eq!(mask_loose("token: xyz rest", false), "token: xyz rest");
        assert_eq!(mask_loose("token_env = \"X\"", true), "token_env = \"X\"");
        assert_eq!(
            mask_loose("2 | base_url = \"http://u:secret@h/p?k=v", false),
            "2 | base_url = \"http://••••@h/p?••••"
        );
    }

    #[test]
    fn value_trees_are_masked_by_key() {
        let mut v = Value::Table(FILE.parse().expect("TOML"));
        let mut found = Vec::new();
        secrets_in(&v, &mut found);
        assert!(found.contains(&"sk-live-abc".to_string()));
        mask_value(&mut v);
        assert!(!has_unmasked_secret(&v));
        let text = toml::to_string(&v).expect("serializes");
        assert!(
            !text.contains("sk-live-abc") && text.contains("OPENAI_API_KEY"),
            "{text}"
        );
    }

    #[test]
    fn value_trees_mask_sandbox_variables_and_credentials() {
        let file = format!("{ADDRESSES}[sandbox.env]\nANY = \"any-value-1\"\n");
        let mut v = Value::Table(file.parse().expect("TOML"));
        let mut found = Vec::new();
        secrets_in(&v, &mut found);
        for secret in ["any-value-1", "user:pa55word", "pa55word", "q-value-1"] {
            assert!(
                found.iter().any(|f| f == secret),
                "{secret} not in {found:?}"
            );
        }
        mask_value(&mut v);
        assert!(!has_unmasked_secret(&v));
        let text = toml::to_string(&v).expect("serializes");
        for secret in ["any-value-1", "pa55word", "q-value-1", "tg-pass"] {
            assert!(!text.contains(secret), "{secret} in\n{text}");
        }
        assert!(
            text.contains("https://••••@proxy.example.com:8443/v1?••••"),
            "{text}"
        );
    }
}
