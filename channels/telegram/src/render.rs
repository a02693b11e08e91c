//! Markdown as models write it, turned into Telegram's HTML subset: code
//! blocks and inline code, bold, italic, strikethrough, links and headings;
//! everything else escaped. The output is always well-formed, so a rejected
//! parse is a Telegram quirk, answered by sending plain text instead.

/// Escape an attribute's value for Telegram HTML (quoted with `"`).
fn escape_attribute(value: &str) -> String {
    escape(value).replace('"', "&quot;")
}

/// Escape text for Telegram HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Markdown to Telegram HTML.
pub fn to_html(markdown: &str) -> String {
    let mut out = String::new();
    let mut code: Option<String> = None;
    let mut block = String::new();
    for line in markdown.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            match code.take() {
                None => {
                    code = Some(trimmed.trim_start_matches('`').trim().to_string());
                    block.clear();
                }
                Some(lang) => {
                    push_block(&mut out, &lang, &block);
                    if line.ends_with('\n') {
                        out.push('\n');
                    }
                }
            }
            continue;
        }
        if code.is_some() {
            block.push_str(line);
            continue;
        }
        let (body, newline) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let heading = body.trim_start();
        if heading.starts_with('#') {
            let text = heading.trim_start_matches('#');
            if text.starts_with(' ') {
                out.push_str("<b>");
                out.push_str(&inline(text.trim()));
                out.push_str("</b>");
                out.push_str(newline);
                continue;
            }
        }
        out.push_str(&inline(body));
        out.push_str(newline);
    }
    if let Some(lang) = code {
        // An unclosed block (a preview mid-stream): show it as code anyway.
        push_block(&mut out, &lang, &block);
    }
    out
}

fn push_block(out: &mut String, lang: &str, body: &str) {
    let body = escape(body.strip_suffix('\n').unwrap_or(body));
    if lang.is_empty() {
        out.push_str(&format!("<pre>{body}</pre>"));
    } else {
        out.push_str(&format!(
            "<pre><code class=\"language-{}\">{body}</code></pre>",
            escape_attribute(lang)
        ));
    }
}

/// Inline markup of one line.
fn inline(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..].iter().collect();
        // `code`
        if chars[i] == '`'
            && let Some(end) = find(&chars, i + 1, "`")
        {
            let inner: String = chars[i + 1..end].iter().collect();
            out.push_str(&format!("<code>{}</code>", escape(&inner)));
            i = end + 1;
            continue;
        }
        // [text](url)
        if chars[i] == '['
            && let Some(close) = find(&chars, i + 1, "](")
            && let Some(end) = find(&chars, close + 2, ")")
        {
            let text: String = chars[i + 1..close].iter().collect();
            let url: String = chars[close + 2..end].iter().collect();
            if url.starts_with("http://") || url.starts_with("https://") || url.starts_with("tg://")
            {
                out.push_str(&format!(
                    "<a href=\"{}\">{}</a>",
                    escape_attribute(&url),
                    inline(&text)
                ));
                i = end + 1;
                continue;
            }
        }
        let mut matched = false;
        for (marker, tag) in [("**", "b"), ("__", "b"), ("~~", "s")] {
            if rest.starts_with(marker)
                && let Some(end) = find(&chars, i + 2, marker)
                && end > i + 2
            {
                let inner: String = chars[i + 2..end].iter().collect();
                out.push_str(&format!("<{tag}>{}</{tag}>", inline(&inner)));
                i = end + 2;
                matched = true;
                break;
            }
        }
        if matched {
            continue;
        }
        // *italic* or _italic_ (not inside words, so snake_case stays).
        if (chars[i] == '*' || chars[i] == '_')
            && (i == 0 || !chars[i - 1].is_alphanumeric())
            && chars.get(i + 1).is_some_and(|c| !c.is_whitespace())
            && let Some(end) = find(&chars, i + 1, &chars[i].to_string())
            && end > i + 1
            && chars.get(end + 1).is_none_or(|c| !c.is_alphanumeric())
        {
            let inner: String = chars[i + 1..end].iter().collect();
            out.push_str(&format!("<i>{}</i>", inline(&inner)));
            i = end + 1;
            continue;
        }
        out.push_str(&escape(&chars[i].to_string()));
        i += 1;
    }
    out
}

fn find(chars: &[char], from: usize, pat: &str) -> Option<usize> {
    let pat: Vec<char> = pat.chars().collect();
    (from..chars.len()).find(|&j| chars[j..].starts_with(&pat))
}

/// Telegram HTML back to the text a reader sees (for tests and logs).
pub fn visible(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// What [`to_html`] promises of its output, checked (for the property
/// tests and the `markdown_telegram` fuzz target): only Telegram's tags
/// (`b`, `i`, `s`, `a href`, `pre`, `code`, and `code class` directly in
/// `pre`), each closed in order, nothing inside `code` or `pre` but that
/// `code`, no link in a link; attribute values quoted and escaped; `<`,
/// `>` and `&` escaped everywhere else.
pub fn check(html: &str) -> Result<(), String> {
    let mut open: Vec<&str> = Vec::new();
    let mut at = 0;
    while let Some(c) = html[at..].chars().next() {
        let rest = &html[at..];
        match c {
            '<' => {
                let end = rest.find('>').ok_or("a tag is not closed")?;
                let tag = &rest[1..end];
                if tag.contains('<') {
                    return Err(format!("`<` inside the tag {tag:?}"));
                }
                if let Some(name) = tag.strip_prefix('/') {
                    if open.pop() != Some(name) {
                        return Err(format!("</{name}> closes no open <{name}>"));
                    }
                } else {
                    let (name, attributes) = tag.split_once(' ').unwrap_or((tag, ""));
                    let top = open.last().copied();
                    match (name, attributes) {
                        ("b" | "i" | "s" | "pre" | "code", "") => {}
                        ("code", a) if top == Some("pre") => check_attribute(a, "class")?,
                        ("a", a) => check_attribute(a, "href")?,
                        _ => return Err(format!("<{tag}> is not one of Telegram's tags")),
                    }
                    if top == Some("code") || (top == Some("pre") && name != "code") {
                        return Err(format!("<{name}> inside <{}>", top.unwrap_or_default()));
                    }
                    if name == "a" && open.contains(&"a") {
                        return Err("a link inside a link".into());
                    }
                    open.push(name);
                }
                at += end + 1;
            }
            '>' => return Err("an unescaped `>`".into()),
            '&' => {
                check_entity(rest)?;
                at += 1;
            }
            c => at += c.len_utf8(),
        }
    }
    match open.last() {
        Some(name) => Err(format!("<{name}> is never closed")),
        None => Ok(()),
    }
}

fn check_entity(at: &str) -> Result<(), String> {
    if ["&amp;", "&lt;", "&gt;", "&quot;"]
        .iter()
        .any(|e| at.starts_with(e))
    {
        Ok(())
    } else {
        let shown: String = at.chars().take(8).collect();
        Err(format!("an unescaped `&` at {shown:?}"))
    }
}

fn check_attribute(attribute: &str, name: &str) -> Result<(), String> {
    let value = attribute
        .strip_prefix(name)
        .and_then(|v| v.strip_prefix("=\""))
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| format!("`{attribute}` is not {name}=\"…\""))?;
    if value.contains(['"', '<', '>']) {
        return Err(format!("the {name} value {value:?} is not escaped"));
    }
    value
        .match_indices('&')
        .try_for_each(|(i, _)| check_entity(&value[i..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_telegram_html() {
        assert_eq!(
            to_html("**bold** and *it* and `x<y`"),
            "<b>bold</b> and <i>it</i> and <code>x&lt;y</code>"
        );
        assert_eq!(to_html("a_b_c stays"), "a_b_c stays");
        assert_eq!(to_html("# Title\ntext"), "<b>Title</b>\ntext");
        assert_eq!(
            to_html("see [docs](https://example.com/a?b=1&c=2)"),
            "see <a href=\"https://example.com/a?b=1&amp;c=2\">docs</a>"
        );
        assert_eq!(
            to_html("~~old~~ 2 < 3 & 4 > 1"),
            "<s>old</s> 2 &lt; 3 &amp; 4 &gt; 1"
        );
    }

    #[test]
    fn code_blocks_keep_their_language_and_are_escaped() {
        let html = to_html("Run:\n```rust\nfn main() { let v: Vec<u8> = vec![]; }\n```\nok");
        assert_eq!(
            html,
            "Run:\n<pre><code class=\"language-rust\">fn main() { let v: Vec&lt;u8&gt; = vec![]; }</code></pre>\nok"
        );
        assert_eq!(
            visible(&html),
            "Run:\nfn main() { let v: Vec<u8> = vec![]; }\nok"
        );
    }

    #[test]
    fn a_quote_in_a_code_block_language_stays_inside_the_attribute() {
        assert_eq!(
            to_html("```a\"b\nx\n```"),
            "<pre><code class=\"language-a&quot;b\">x</code></pre>"
        );
    }

    #[test]
    fn the_check_refuses_what_telegram_would() {
        assert_eq!(
            check(&to_html("**a** `b` [c](https://x.io/?a=1&b=2)")),
            Ok(())
        );
        for bad in [
            "<b>x",
            "<b><i>x</b></i>",
            "a < b",
            "a & b",
            "<u>x</u>",
            "<pre><b>x</b></pre>",
            "<code class=\"language-a\"b\">x</code>",
            "<pre><code class=\"language-a\"b\">x</code></pre>",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unbalanced_markers_stay_text() {
        assert_eq!(to_html("2 * 3 = 6 and **half"), "2 * 3 = 6 and **half");
        assert_eq!(to_html("```\nunclosed"), "<pre>unclosed</pre>");
    }
}
