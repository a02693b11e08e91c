//! A hook's message, filled from the JSON that was posted.
//!
//! `{{field}}`, `{{a.b.c}}` and `{{items.0}}` quote a value of the body
//! (spaces inside the braces are allowed): a string as it is, any other
//! value as compact JSON. A path that leads nowhere renders as nothing and
//! is reported. Text outside the braces is kept as written, and so is a
//! `{{` without its `}}` or with no path inside. The result is cut at
//! [`MAX_RENDERED_BYTES`].
//!
//! The quoted values are the poster's words: the turn must treat the
//! message as coming from outside, like any inbound message.

use serde_json::Value;

/// The most bytes a rendered message has (8 KiB).
pub const MAX_RENDERED_BYTES: usize = 8 * 1024;

/// The most missing paths reported.
const MAX_REPORTED: usize = 16;

/// A rendered template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The message.
    pub text: String,
    /// Paths the body did not have, each once, in template order (at most
    /// 16).
    pub missing: Vec<String>,
    /// Whether the message was cut at the cap.
    pub truncated: bool,
}

impl Rendered {
    /// Append `s` within `cap` bytes, cutting at a character boundary;
    /// false once the cap is reached.
    fn push(&mut self, s: &str, cap: usize) -> bool {
        if self.truncated {
            return false;
        }
        let room = cap.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
            return true;
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&s[..end]);
        self.truncated = true;
        false
    }

    fn note_missing(&mut self, path: &str) {
        if self.missing.len() < MAX_REPORTED && !self.missing.iter().any(|m| m == path) {
            self.missing.push(path.to_string());
        }
    }
}

/// Fill `template` from `body`, at most [`MAX_RENDERED_BYTES`].
pub fn render(template: &str, body: &Value) -> Rendered {
    render_capped(template, body, MAX_RENDERED_BYTES)
}

/// Fill `template` from `body`, at most `cap` bytes.
pub fn render_capped(template: &str, body: &Value, cap: usize) -> Rendered {
    let mut out = Rendered::default();
    for piece in (Pieces { rest: template }) {
        let more = match piece {
            Piece::Text(t) | Piece::NotAField(t) | Piece::Unclosed(t) => out.push(t, cap),
            Piece::Field(path) => match lookup(body, path) {
                Some(Value::String(s)) => out.push(s, cap),
                Some(v) => out.push(&v.to_string(), cap),
                None => {
                    out.note_missing(path);
                    true
                }
            },
        };
        if !more {
            break;
        }
    }
    out
}

/// The value at a dotted path: object keys, and array positions from 0.
pub fn lookup<'a>(body: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(body, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// What is wrong with a template, for the config check: a `{{` that is not
/// closed, or braces with no path inside.
pub fn template_problem(template: &str) -> Option<String> {
    const HELP: &str = "quote a field of the posted JSON as {{name}}, {{a.b}} or {{items.0}}";
    (Pieces { rest: template }).find_map(|piece| match piece {
        Piece::Unclosed(t) => {
            let shown: String = t.chars().take(30).collect();
            Some(format!(
                "`{shown}` opens {{{{ and does not close it: {HELP}"
            ))
        }
        Piece::NotAField(t) => Some(format!(
            "`{t}` is not a field path: names and array positions joined by dots, no spaces; {HELP}"
        )),
        Piece::Text(_) | Piece::Field(_) => None,
    })
}

/// A part of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    /// Text kept as written.
    Text(&'a str),
    /// The path inside `{{ }}`, trimmed.
    Field(&'a str),
    /// `{{ … }}` with no path inside, kept as written.
    NotAField(&'a str),
    /// A `{{` with no `}}` after it, through the end, kept as written.
    Unclosed(&'a str),
}

/// The pieces of a template, in order.
struct Pieces<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        match rest.find("{{") {
            None => {
                self.rest = "";
                Some(Piece::Text(rest))
            }
            Some(0) => {
                let Some(close) = rest[2..].find("}}") else {
                    self.rest = "";
                    return Some(Piece::Unclosed(rest));
                };
                let whole = &rest[..close + 4];
                let path = rest[2..close + 2].trim();
                self.rest = &rest[close + 4..];
                Some(if is_path(path) {
                    Piece::Field(path)
                } else {
                    Piece::NotAField(whole)
                })
            }
            Some(open) => {
                self.rest = &rest[open..];
                Some(Piece::Text(&rest[..open]))
            }
        }
    }
}

/// Names or positions joined by dots, none empty, no spaces or braces.
fn is_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('.').all(|segment| {
            !segment.is_empty()
                && !segment
                    .chars()
                    .any(|c| c.is_whitespace() || c == '{' || c == '}')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> Value {
        json!({
            "action": "opened",
            "issue": { "title": "Crash on start", "number": 42, "labels": ["bug", "p1"] },
            "sender": { "login": "alice", "site_admin": false },
            "commits": [ { "id": "abc", "message": "fix it" } ],
            "empty": null
        })
    }

    #[test]
    fn fields_are_quoted_by_path() {
        let r = render(
            "{{sender.login}} {{ action }} #{{issue.number}}: {{issue.title}} [{{issue.labels.0}}] ({{commits.0.message}})",
            &body(),
        );
        assert_eq!(r.text, "alice opened #42: Crash on start [bug] (fix it)");
        assert!(r.missing.is_empty() && !r.truncated, "{r:?}");
    }

    #[test]
    fn strings_go_in_as_they_are_and_other_values_as_compact_json() {
        let r = render(
            "{{issue.labels}} {{sender.site_admin}} {{empty}} {{commits.0}}",
            &body(),
        );
        assert_eq!(
            r.text,
            r#"["bug","p1"] false null {"id":"abc","message":"fix it"}"#
        );
        let r = render("say {{action}}", &json!({ "action": "\"quoted\" {{x}}" }));
        assert_eq!(r.text, "say \"quoted\" {{x}}", "a value is not a template");
    }

    #[test]
    fn missing_fields_render_as_nothing_and_are_reported_once() {
        let r = render(
            "a{{nope}}b{{issue.title.x}}c{{issue.labels.7}}d{{nope}}e{{commits.first}}",
            &body(),
        );
        assert_eq!(r.text, "abcde");
        assert_eq!(
            r.missing,
            ["nope", "issue.title.x", "issue.labels.7", "commits.first"]
        );
        let r = render("{{x}}", &json!("not an object"));
        assert_eq!((r.text.as_str(), r.missing.len()), ("", 1));
    }

    #[test]
    fn braces_that_are_not_fields_are_kept() {
        let r = render("{{}} and {{ a b }} and {{a..b}} and {{ open", &body());
        assert_eq!(r.text, "{{}} and {{ a b }} and {{a..b}} and {{ open");
        assert!(r.missing.is_empty());
        assert_eq!(render("} { }} {", &body()).text, "} { }} {");
    }

    #[test]
    fn the_output_is_capped_at_a_character_boundary() {
        let long = "é".repeat(10_000);
        let r = render("{{t}}", &json!({ "t": long }));
        assert!(r.truncated);
        assert!(r.text.len() <= MAX_RENDERED_BYTES);
        assert!(r.text.len() > MAX_RENDERED_BYTES - 2);
        let r = render_capped("ab{{t}}cd", &json!({ "t": "ééé" }), 5);
        assert_eq!((r.text.as_str(), r.truncated), ("abé", true));
        let r = render_capped("abc{{t}}", &json!({ "t": "x" }), 4);
        assert_eq!((r.text.as_str(), r.truncated), ("abcx", false));
    }

    #[test]
    fn template_problems_name_the_bad_part() {
        assert_eq!(template_problem("New issue: {{issue.title}}"), None);
        assert_eq!(template_problem("no fields at all"), None);
        let p = template_problem("Hi {{name").unwrap();
        assert!(p.contains("`{{name` opens {{ and does not close it"), "{p}");
        let p = template_problem("Hi {{ first name }}").unwrap();
        assert!(p.contains("`{{ first name }}` is not a field path"), "{p}");
    }
}
