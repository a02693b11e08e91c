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

/// Where a link's URL stands while emphasis is converted, so `__init__`
/// or `*` in a URL stay as they are.
const URL: char = '\u{2}';

fn emphasis(text: &str) -> String {
    let (text, urls) = links(text);
    // Bold first, marked with a placeholder so single `*` italics do not
    // take its stars.
    const B: &str = "\u{1}";
    let text = pairs(&text, "**", B);
    let text = pairs(&text, "__", B);
    let text = single_star_italics(&text);
    let text = pairs(&text, "~~", "~");
    let text = text.replace(B, "*");
    let mut urls = urls.into_iter();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            URL => out.push_str(&urls.next().unwrap_or_default()),
            c => out.push(c),
        }
    }
    out
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

/// `[text](url)` → `<url|text>`; everything else escaped. The URLs come
/// back apart, each [`URL`] in the text standing for the next; the
/// placeholders' own characters in the text become U+FFFD.
fn links(text: &str) -> (String, Vec<String>) {
    let plain = |s: &str| escape(s).replace([URL, '\u{1}'], "\u{fffd}");
    let mut out = String::new();
    let mut urls = Vec::new();
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
        out.push_str(&plain(&rest[..open]));
        if url.starts_with("http://") || url.starts_with("https://") || url.starts_with("mailto:") {
            // Escaped like any text: a `>` in it would end the link early
            // and let the rest form a mention such as `<!channel>`.
            urls.push(escape(&url.replace('|', "%7C")).replace([URL, '\u{1}'], "\u{fffd}"));
            out.push_str(&format!("<{URL}|{}>", plain(label)));
        } else {
            out.push_str(&plain(&rest[open..=end]));
        }
        rest = &rest[end + 1..];
    }
    out.push_str(&plain(rest));
    (out, urls)
}

/// What [`to_mrkdwn`] promises of its output, checked (for the property
/// tests and the `markdown_slack` fuzz target): `&` only in `&amp;`,
/// `&lt;` and `&gt;`, and `<` and `>` only around a link to an `http`,
/// `https` or `mailto` URL with a label, so no text can become a mention.
pub fn check(mrkdwn: &str) -> Result<(), String> {
    let entity = |at: &str| ["&amp;", "&lt;", "&gt;"].iter().any(|e| at.starts_with(e));
    let mut at = 0;
    while let Some(c) = mrkdwn[at..].chars().next() {
        let rest = &mrkdwn[at..];
        match c {
            '<' => {
                let end = rest.find('>').ok_or("a `<` without its `>`")?;
                let inner = &rest[1..end];
                let link = inner.split_once('|').is_some_and(|(url, _)| {
                    ["http://", "https://", "mailto:"]
                        .iter()
                        .any(|s| url.starts_with(s))
                });
                if !link || inner.contains('<') {
                    return Err(format!("<{inner}> is not a link"));
                }
                if let Some((i, _)) = inner
                    .match_indices('&')
                    .find(|(i, _)| !entity(&inner[*i..]))
                {
                    return Err(format!("an unescaped `&` in the link <{inner}> at {i}"));
                }
                at += end + 1;
            }
            '>' => return Err("an unescaped `>`".into()),
            '&' if !entity(rest) => {
                let shown: String = rest.chars().take(8).collect();
                return Err(format!("an unescaped `&` at {shown:?}"));
            }
            c => at += c.len_utf8(),
        }
    }
    Ok(())
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

    #[test]
    fn a_link_cannot_smuggle_a_mention_in_its_url() {
        assert_eq!(
            to_mrkdwn("[x](https://a.io/<!channel>)"),
            "<https://a.io/&lt;!channel&gt;|x>"
        );
    }

    #[test]
    fn the_check_refuses_what_could_ping_a_channel() {
        assert_eq!(
            check(&to_mrkdwn("[a](https://x.io/?a=1&b=2) & <b>")),
            Ok(())
        );
        for bad in [
            "<!channel>",
            "a > b",
            "a & b",
            "<https://x.io>",
            "<https://x<y|z>",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emphasis_leaves_urls_alone() {
        assert_eq!(
            to_mrkdwn(
                "**see** [init](https://docs.python.org/3/x.html#object.__init__) and *this*"
            ),
            "*see* <https://docs.python.org/3/x.html#object.__init__|init> and _this_"
        );
        assert_eq!(
            to_mrkdwn("[a](https://x.io/*y*) ~~z~~"),
            "<https://x.io/*y*|a> ~z~"
        );
    }
}
