//! Secrets in config text, found by key name: masked as `"••••"` before the
//! text goes to the browser, and put back from the file on disk when the
//! edited text comes back. The text is scanned, not re-serialized, so
//! comments and layout are kept; the scan knows TOML's tables, arrays of
//! tables, dotted and quoted keys, inline tables, arrays and the four kinds
//! of strings, and gives every value its dotted path
//! (`providers.openai.api_key`, `bindings[0].agent`).

use std::collections::HashMap;
use std::ops::Range;

use toml::Value;

use crate::config::ConfigError;

/// What a secret is shown as.
pub(super) const MASK: &str = "••••";
/// A masked value as the text has it.
const MASKED: &str = "\"••••\"";

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

/// What a scan of a config text found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Every `key = value`, also inside inline tables and arrays.
    pub assignments: Vec<Assignment>,
    /// Table headers: path and line.
    pub tables: Vec<(String, usize)>,
    /// Comments, from their `#` to the end of their line.
    pub comments: Vec<Range<usize>>,
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
                .or_else(|| {
                    self.tables
                        .iter()
                        .find(|(p, _)| p == path)
                        .map(|(_, l)| *l)
                })
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
        self.out.comments.push(start..self.i);
    }

    fn run(&mut self) {
        let mut table = String::new();
        while self.i < self.b.len() {
            match self.b[self.i] {
                b' ' | b'\t' | b'\r' | b'\n' => self.i += 1,
                b'#' => self.comment(),
                b'[' => {
                    table = self.header();
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

/// In free text (a comment, a line of an error message): the value after
/// each `<secret key> =` (and `:` when `colon`) replaced by `"••••"`.
pub(super) fn mask_loose(text: &str, colon: bool) -> String {
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
        if !is_secret_key(&text[start..i]) {
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
        if value_end > value_start && !is_empty_string(raw) && !is_masked(raw) {
            out.push_str(&text[last..value_start]);
            out.push_str(MASKED);
            last = value_end;
        }
        i = value_end.max(i);
    }
    out.push_str(&text[last..]);
    out
}

/// `text` with the value of every secret key replaced by `"••••"` (empty
/// values are left, they tell nothing), also where a comment has one.
pub(super) fn mask(text: &str) -> String {
    let found = scan(text);
    let mut edits = Vec::new();
    for a in &found.assignments {
        let raw = &text[a.value.clone()];
        if is_secret_key(&a.key) && !is_empty_string(raw) && !is_masked(raw) {
            edits.push((a.value.clone(), MASKED.to_string()));
        }
    }
    for c in &found.comments {
        let masked = mask_loose(&text[c.clone()], true);
        if masked != text[c.clone()] {
            edits.push((c.clone(), masked));
        }
    }
    apply(text, edits)
}

/// The edited `posted` text with each secret that is still `"••••"` put
/// back from `current` (the file on disk) by its path, and each comment
/// that was masked put back as it was. A masked secret whose path the file
/// does not have is an error on that key.
pub(super) fn restore(posted: &str, current: &str) -> Result<String, Vec<ConfigError>> {
    let now = scan(current);
    let originals: HashMap<&str, &str> = now
        .assignments
        .iter()
        .filter(|a| is_secret_key(&a.key))
        .map(|a| (a.path.as_str(), &current[a.value.clone()]))
        .collect();
    let mut comments: HashMap<String, &str> = HashMap::new();
    for c in &now.comments {
        let original = &current[c.clone()];
        let masked = mask_loose(original, true);
        if masked != original {
            comments.entry(masked).or_insert(original);
        }
    }
    let edited = scan(posted);
    let mut edits = Vec::new();
    let mut errors = Vec::new();
    for a in &edited.assignments {
        if !is_secret_key(&a.key) || !is_masked(&posted[a.value.clone()]) {
            continue;
        }
        match originals.get(a.path.as_str()) {
            Some(raw) => edits.push((a.value.clone(), (*raw).to_string())),
            None => errors.push(ConfigError::new(
                a.path.clone(),
                format!(
                    "is shown as {MASK}, but the file on disk has no value here to keep: enter the value, or remove the line"
                ),
            )),
        }
    }
    for c in &edited.comments {
        if let Some(original) = comments.get(&posted[c.clone()]) {
            edits.push((c.clone(), (*original).to_string()));
        }
    }
    if errors.is_empty() {
        Ok(apply(posted, edits))
    } else {
        Err(errors)
    }
}

/// The secret values `text` holds: each secret key's value as written and
/// without its quotes.
pub(super) fn secret_values(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for a in scan(text).assignments {
        if !is_secret_key(&a.key) {
            continue;
        }
        let raw = &text[a.value];
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
    }
    out
}

/// Mask every secret in a value tree (a serialized config) by key name.
pub(super) fn mask_value(value: &mut Value) {
    match value {
        Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let empty = matches!(v, Value::String(s) if s.is_empty());
                if is_secret_key(k) && !v.is_table() && !empty {
                    *v = Value::String(MASK.into());
                } else {
                    mask_value(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_value),
        _ => {}
    }
}

/// The secret strings in a value tree.
pub(super) fn secrets_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Table(t) => {
            for (k, v) in t {
                match v {
                    Value::String(s) if is_secret_key(k) && !s.is_empty() => out.push(s.clone()),
                    _ => secrets_in(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| secrets_in(v, out)),
        _ => {}
    }
}

/// Whether a value tree holds a secret that is not masked: the check that
/// [`mask`] missed nothing.
pub(super) fn has_unmasked_secret(value: &Value) -> bool {
    match value {
        Value::Table(t) => t.iter().any(|(k, v)| match v {
            Value::Table(_) => has_unmasked_secret(v),
            Value::String(s) if is_secret_key(k) => !(s.is_empty() || s == MASK),
            _ if is_secret_key(k) => true,
            _ => has_unmasked_secret(v),
        }),
        Value::Array(a) => a.iter().any(has_unmasked_secret),
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

    #[test]
    fn secrets_are_masked_and_the_rest_is_kept() {
        let m = mask(FILE);
        for secret in [
            "s3cret-control-token",
            "sk-live-abc",
            "sk-old-key",
            "123:multi",
            "xoxb-inline",
            "abcd1234",
            "p4ss",
        ] {
            assert!(!m.contains(secret), "{secret} in\n{m}");
        }
        assert!(m.contains("# Switchboard\n"), "{m}");
        assert!(m.contains("bind = \"127.0.0.1:7788\"   # loopback"), "{m}");
        assert!(m.contains("token = \"••••\""), "{m}");
        assert!(m.contains("api_key_env = \"OPENAI_API_KEY\""), "{m}");
        assert!(m.contains("max_tokens = 512"), "{m}");
        assert!(m.contains("webhook_secret = \"\""), "{m}");
        assert!(m.contains("channels = [\"C1\"]"), "{m}");
        let parsed: Value = Value::Table(m.parse().expect("still TOML"));
        assert!(!has_unmasked_secret(&parsed));
        let original: Value = Value::Table(FILE.parse().expect("TOML"));
        assert!(has_unmasked_secret(&original));
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
        let back = restore(&edited, FILE).expect("restored");
        assert_eq!(back, FILE.replace("gpt-4o", "gpt-4.1"));
    }

    #[test]
    fn a_new_masked_key_is_an_error_on_it() {
        let edited = format!("{}\n[providers.other]\napi_key = \"••••\"\n", mask(FILE));
        let errors = restore(&edited, FILE).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "providers.other.api_key");
        assert!(errors[0].message.contains("enter the value, or remove the line"));
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
        assert!(!text.contains("sk-live-abc") && text.contains("OPENAI_API_KEY"), "{text}");
    }
}
