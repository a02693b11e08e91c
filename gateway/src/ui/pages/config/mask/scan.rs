//! The scan of a config text: every `key = value` with its dotted path
//! (tables, arrays of tables, dotted and quoted keys, inline tables,
//! arrays and the four kinds of strings) and every comment, so secrets can
//! be masked in place and comments and layout kept.

use super::*;

/// One `key = value` of a config text.
#[derive(Debug, Clone)]
pub(in crate::ui::pages::config) struct Assignment {
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
    pub(in crate::ui::pages::config) fn table(&self) -> &str {
        self.path
            .strip_suffix(self.key.as_str())
            .map_or("", |p| p.strip_suffix('.').unwrap_or(p))
    }
}

/// One comment of a config text.
#[derive(Debug, Clone)]
pub(in crate::ui::pages::config) struct Comment {
    /// From its `#` to the end of its line.
    pub range: Range<usize>,
    /// The path of the table it is in (the last header above it).
    pub table: String,
}

/// What a scan of a config text found.
#[derive(Debug, Default)]
pub(in crate::ui::pages::config) struct Scan {
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
    pub(in crate::ui::pages::config) fn line_of(&self, key: &str) -> Option<(usize, bool)> {
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
pub(in crate::ui::pages::config) fn scan(text: &str) -> Scan {
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

pub(in crate::ui::pages::config) fn is_bare(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

pub(in crate::ui::pages::config) fn join(path: &str, key: &str) -> String {
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
