//! Markdown (what models write) → Slack mrkdwn
//! (<https://api.slack.com/reference/surfaces/formatting>): `*bold*`,
//! `_italic_`, `~strike~`, `<url|text>` links, headings as bold lines,
//! bullets as `•`, code spans and blocks kept (a block's language hint
//! dropped: Slack would show it as code). `&`, `<` and `>` are escaped
//! everywhere, as Slack asks, so model text can never form a mention such
//! as `<!channel>`.

/// Escape the three characters Slack reserves.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Convert a whole answer.
pub fn to_mrkdwn(markdown: &str) -> String {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in markdown.split('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_code = !in_code;
            out.push("```".to_string());
            continue;
        }
        if in_code {
            out.push(escape(line));
            continue;
        }
        out.push(convert_line(line));
    }
    out.join("\n")
}

fn convert_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    let hashes = trimmed.chars().take_while(|&c| c == '#').count();
    if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
        let title = trimmed[hashes..].trim();
        return format!("*{}*", inline(title.trim_matches('*')));
    }
    for bullet in ["- ", "* ", "+ "] {
        if let Some(rest) = trimmed.strip_prefix(bullet) {
            return format!("{indent}• {}", inline(rest));
        }
    }
    format!("{indent}{}", inline(trimmed))
}

/// Inline spans: code kept as is (escaped), emphasis and links converted.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        out.push_str(&emphasis(&rest[..start]));
        let after = &rest[start + 1..];
        match after.find('`') {
            Some(end) => {
                out.push('`');
                out.push_str(&escape(&after[..end]));
                out.push('`');
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&emphasis(&rest[start..]));
                rest = "";
            }
        }
    }
    out.push_str(&emphasis(rest));
    out
}

/// Replace `open…close` pairs with `to…to`, only where a pair is complete.
fn pairs(text: &str, open: &str, to: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(a) = rest.find(open) {
        let inner_start = a + open.len();
        match rest[inner_start..].find(open) {
            Some(len) if len > 0 => {
                out.push_str(&rest[..a]);
                out.push_str(to);
                out.push_str(&rest[inner_start..inner_start + len]);
                out.push_str(to);
                rest = &rest[inner_start + len + open.len()..];
            }
            _ => {
                out.push_str(&rest[..inner_start]);
                rest = &rest[inner_start..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn emphasis(text: &str) -> String {
    let text = links(text);
    // Bold first, marked with a placeholder so single `*` italics do not
    // take its stars.
    const B: &str = "\u{1}";
    let text = pairs(&text, "**", B);
    let text = pairs(&text, "__", B);
    let text = single_star_italics(&text);
    let text = pairs(&text, "~~", "~");
    text.replace(B, "*")
}

/// `*x*` (not part of a word boundary like `2*3*4`) → `_x_`.
fn single_star_italics(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(a) = rest.find('*') {
        let after = &rest[a + 1..];
        let opens = after.chars().next().is_some_and(|c| !c.is_whitespace())
            && rest[..a]
                .chars()
                .last()
                .is_none_or(|c| !c.is_alphanumeric());
        match after.find('*') {
            Some(len) if opens && len > 0 => {
                out.push_str(&rest[..a]);
                out.push('_');
                out.push_str(&after[..len]);
                out.push('_');
                rest = &after[len + 1..];
            }
            _ => {
                out.push_str(&rest[..=a]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `[text](url)` → `<url|text>`; everything else escaped.
fn links(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|i| open + i) else {
            break;
        };
        let Some(end) = rest[close + 2..].find(')').map(|i| close + 2 + i) else {
            break;
        };
        let label = &rest[open + 1..close];
        let url = &rest[close + 2..end];
        out.push_str(&escape(&rest[..open]));
        if url.starts_with("http://") || url.starts_with("https://") || url.starts_with("mailto:") {
            out.push_str(&format!("<{}|{}>", url.replace('|', "%7C"), escape(label)));
        } else {
            out.push_str(&escape(&rest[open..=end]));
        }
        rest = &rest[end + 1..];
    }
    out.push_str(&escape(rest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emphasis_links_and_headings_become_mrkdwn() {
        assert_eq!(
            to_mrkdwn("**bold** and *it* and ~~gone~~"),
            "*bold* and _it_ and ~gone~"
        );
        assert_eq!(
            to_mrkdwn("see [the docs](https://example.com/a?b=1)"),
            "see <https://example.com/a?b=1|the docs>"
        );
        assert_eq!(to_mrkdwn("## Plan"), "*Plan*");
        assert_eq!(to_mrkdwn("- one\n- two"), "• one\n• two");
        assert_eq!(to_mrkdwn("2*3*4 stays"), "2*3*4 stays");
    }

    #[test]
    fn code_is_kept_and_everything_escaped() {
        assert_eq!(
            to_mrkdwn("```rust\nif a < b && c > d {}\n```"),
            "```\nif a &lt; b &amp;&amp; c &gt; d {}\n```"
        );
        assert_eq!(to_mrkdwn("use `**x**` here"), "use `**x**` here");
        assert_eq!(
            to_mrkdwn("hi <!channel> & all"),
            "hi &lt;!channel&gt; &amp; all"
        );
    }
}
