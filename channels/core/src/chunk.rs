//! Splitting a long answer into messages a platform accepts: at paragraph,
//! then line, then sentence, then word boundaries, never inside a code
//! block — a block longer than a message is closed at the cut and opened
//! again, with its language, in the next message.
//!
//! What a reader of the pieces can count on (the property tests in
//! `tests/chunk_props.rs` and the `chunker` fuzz target check it): every
//! piece is within the limit and the line cap; every piece but the last
//! has its fences balanced, and so has the last when the text's are; and
//! the text's non-whitespace characters all come back, in order, with
//! only the fences that close and reopen a block at a cut added. Trailing
//! whitespace, blank lines at the start of a piece and the spaces at a cut
//! are dropped.

/// The length of `text` in a platform's units.
pub type Measure = fn(&str) -> usize;

/// Length in Unicode scalar values (Discord, Slack).
pub fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Length in UTF-16 code units (Telegram counts these).
pub fn utf16(text: &str) -> usize {
    text.encode_utf16().count()
}

const CLOSE: &str = "\n```";

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// The fence line open after `text`, given the one open before it, in
/// the form a later piece opens the block again with (see [`reopened`]).
fn fence_after(text: &str, mut open: Option<String>, limit: usize, len: Measure) -> Option<String> {
    for line in text.lines() {
        if is_fence(line) {
            open = match open {
                None => Some(reopened(line.trim(), limit, len)),
                Some(_) => None,
            };
        }
    }
    open
}

/// How a piece opens a block carried over from the one before: with its
/// fence line, language and all, or with the bare fence when that line
/// is longer than a quarter of a message (it would leave too little room).
fn reopened(fence: &str, limit: usize, len: Measure) -> String {
    if len(fence).saturating_mul(4) <= limit {
        fence.to_string()
    } else {
        // `is_fence` holds: the line starts with three ASCII fence characters.
        fence[..3].to_string()
    }
}

/// Split `text` into pieces of at most `limit` units (by `len`).
pub fn split(text: &str, limit: usize, len: Measure) -> Vec<String> {
    split_capped(text, limit, len, usize::MAX)
}

/// The number of lines in `text` (a last line without `\n` counts).
fn line_count(text: &str) -> usize {
    text.lines().count()
}

/// Split `text` into pieces of at most `limit` units (by `len`) and at most
/// `max_lines` lines (at least 3, so a code line fits between its fences).
pub fn split_capped(text: &str, limit: usize, len: Measure, max_lines: usize) -> Vec<String> {
    let limit = limit.max(16);
    let max_lines = max_lines.max(3);
    let text = text.trim_end();
    if len(text) <= limit && line_count(text) <= max_lines {
        return if text.is_empty() {
            Vec::new()
        } else {
            vec![text.to_string()]
        };
    }
    let mut out: Vec<String> = Vec::new();
    // The current piece (it always starts outside code: a block carried
    // over is opened again by its first line) and the fence open at its end.
    let mut cur = String::new();
    let mut fence: Option<String> = None;
    // Whether `cur` starts with a block carried over (opened again here).
    let mut reopened = false;
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    lines.reverse();
    while let Some(line) = lines.pop() {
        let after = fence_after(&line, fence.clone(), limit, len);
        let reserve = if after.is_some() { len(CLOSE) } else { 0 };
        let lines_after = line_count(&cur) + 1 + usize::from(after.is_some());
        if len(&cur) + len(&line) + reserve <= limit && lines_after <= max_lines {
            cur.push_str(&line);
            fence = after;
            continue;
        }
        if !cur.is_empty() && cur.trim().is_empty() {
            // Blank lines at the start of a piece: drop them, try again.
            cur.clear();
            reopened = false;
            lines.push(line);
            continue;
        }
        let only_reopened = fence.as_ref().is_some_and(|f| cur == format!("{f}\n"));
        if cur.is_empty() || only_reopened {
            // One line longer than a message: cut it at a sentence or word,
            // with room for closing a block open after the cut.
            let closes = fence.is_some() || is_fence(&line);
            let room = limit
                .saturating_sub(len(&cur))
                .saturating_sub(if closes { len(CLOSE) } else { 0 })
                .max(1);
            let (head, tail) = cut_line(&line, room, len);
            cur.push_str(head);
            if !tail.is_empty() {
                lines.push(tail.to_string());
            }
            // A fence line cut in two opens or closes its block in the head.
            fence = fence_after(head, fence, limit, len);
            emit(&mut out, &mut cur, &fence, true);
            if let Some(f) = &fence {
                cur = format!("{f}\n");
            }
            reopened = fence.is_some();
            continue;
        }
        // Prefer the last paragraph break outside code in the second half.
        let (keep, carry) = paragraph_cut(&cur, limit, len);
        let open = fence_after(keep, None, limit, len);
        let mut piece = keep.to_string();
        emit(&mut out, &mut piece, &open, true);
        let carried = carry.to_string();
        cur = match &open {
            Some(f) => format!("{f}\n"),
            None => String::new(),
        };
        cur.push_str(&carried);
        reopened = open.is_some();
        fence = fence_after(&cur, None, limit, len);
        lines.push(line);
    }
    emit(&mut out, &mut cur, &fence, reopened);
    out
}

/// Close `cur` (and its open block) into `out`. A piece that is only a
/// block's fence is left out when `carried` (the block is opened again in
/// the next piece, or the fence is one opened again here).
fn emit(out: &mut Vec<String>, cur: &mut String, fence: &Option<String>, carried: bool) {
    let mut piece = cur.trim_end().to_string();
    if fence.is_some() {
        piece.push_str(CLOSE);
    }
    let only_fence = carried
        && fence
            .as_ref()
            .is_some_and(|f| piece == format!("{f}{CLOSE}"));
    if !piece.trim().is_empty() && !only_fence {
        out.push(piece);
    }
    cur.clear();
}

/// Where to end a full piece: after its last blank line outside code, when
/// that keeps at least half of it; else at its end.
fn paragraph_cut(cur: &str, limit: usize, len: Measure) -> (&str, &str) {
    let mut open: Option<String> = None;
    let mut best = None;
    let mut at = 0;
    for line in cur.split_inclusive('\n') {
        at += line.len();
        if is_fence(line) {
            open = match open {
                None => Some(line.trim().to_string()),
                Some(_) => None,
            };
        } else if open.is_none() && line.trim().is_empty() && len(&cur[..at]) * 2 >= limit {
            best = Some(at);
        }
    }
    match best {
        Some(at) if at < cur.len() => cur.split_at(at),
        _ => (cur, ""),
    }
}

/// Cut one line to fit `room`: after a sentence end, else at a space, else
/// at a character.
fn cut_line(line: &str, room: usize, len: Measure) -> (&str, &str) {
    let mut fit = 0;
    for (i, c) in line.char_indices() {
        if len(&line[..i + c.len_utf8()]) > room {
            break;
        }
        fit = i + c.len_utf8();
    }
    if fit == 0 {
        let first = line.chars().next().map_or(0, char::len_utf8);
        return line.split_at(first);
    }
    let head = &line[..fit];
    let sentence = head
        .rmatch_indices([' ', '\n'])
        .map(|(i, _)| i)
        .find(|&i| i > 0 && matches!(head.as_bytes()[i - 1], b'.' | b'!' | b'?'));
    let space = head.rfind(' ');
    let at = match (sentence, space) {
        (Some(s), _) if s * 2 >= fit => s + 1,
        (_, Some(s)) if s * 2 >= fit => s + 1,
        _ => fit,
    };
    // A fence line is cut before its marker or after all of it, so the
    // block opens (or closes) in one piece.
    let indent = line.len() - line.trim_start().len();
    let mut at = if is_fence(line) && indent > 0 && at > indent && at < indent + 3 {
        indent
    } else {
        at
    };
    // Any other line is not cut just before a ``` in it: the rest would
    // start with it and open a block that is not there. The cut moves back
    // to the start of a word before (or into one), else into the ```.
    while !is_fence(line) && is_fence(&line[at..]) {
        let marker = line.len() - line[at..].trim_start().len();
        let kept = line[..at].trim_end();
        let back = kept
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or_else(|| kept.char_indices().last().map_or(0, |(i, _)| i));
        if back > 0 {
            at = back;
            continue;
        }
        if len(&line[..marker + 1]) <= room {
            at = marker + 1;
        }
        break;
    }
    line.split_at(at)
}

/// What [`split_capped`] promises of `pieces`, the split of `text`,
/// checked (for the property tests and the `chunker` fuzz target): every
/// piece within `limit` and `max_lines` and not blank; when there are
/// several, each with its fences balanced; and the text's non-whitespace
/// characters all among the pieces', in order, the pieces adding no more
/// than a closing fence each and a reopened one per cut.
pub fn check(
    text: &str,
    limit: usize,
    len: Measure,
    max_lines: usize,
    pieces: &[String],
) -> Result<(), String> {
    let (limit, max_lines) = (limit.max(16), max_lines.max(3));
    for (i, p) in pieces.iter().enumerate() {
        if len(p) > limit {
            return Err(format!("piece {i} is {} long, over {limit}: {p:?}", len(p)));
        }
        if line_count(p) > max_lines {
            return Err(format!(
                "piece {i} has {} lines, over {max_lines}: {p:?}",
                line_count(p)
            ));
        }
        if p.trim().is_empty() {
            return Err(format!("piece {i} is blank"));
        }
        if pieces.len() > 1 && p.lines().filter(|l| is_fence(l)).count() % 2 != 0 {
            return Err(format!("piece {i} leaves a code block open: {p:?}"));
        }
    }
    let mut wanted = text.chars().filter(|c| !c.is_whitespace()).peekable();
    let mut added = 0;
    for c in pieces
        .iter()
        .flat_map(|p| p.chars())
        .filter(|c| !c.is_whitespace())
    {
        if wanted.peek() == Some(&c) {
            wanted.next();
        } else {
            added += 1;
        }
    }
    if let Some(c) = wanted.next() {
        let rest: String = std::iter::once(c).chain(wanted.take(20)).collect();
        return Err(format!(
            "the text from {rest:?} on is missing from the pieces"
        ));
    }
    let longest = text
        .lines()
        .map(|l| l.trim().chars().count())
        .max()
        .unwrap_or(0);
    // At most a closing fence per piece and a reopened one per cut.
    if added > pieces.len() * 3 + pieces.len().saturating_sub(1) * longest {
        return Err(format!(
            "the pieces add {added} characters the text does not have"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balanced(piece: &str) -> bool {
        piece.lines().filter(|l| is_fence(l)).count() % 2 == 0
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split("hello", 100, chars), vec!["hello"]);
        assert!(split("  \n", 100, chars).is_empty());
    }

    #[test]
    fn paragraphs_are_preferred_cut_points() {
        let text = format!(
            "{}\n\n{}\n\n{}",
            "a".repeat(40),
            "b".repeat(40),
            "c".repeat(40)
        );
        let parts = split(&text, 90, chars);
        assert_eq!(
            parts,
            vec![
                format!("{}\n\n{}", "a".repeat(40), "b".repeat(40)),
                "c".repeat(40)
            ]
        );
    }

    #[test]
    fn a_code_block_that_fits_is_never_cut() {
        let code = format!("```rust\n{}\n```", "let x = 1;\n".repeat(5).trim_end());
        let text = format!("{}\n\n{code}\n\nafter", "intro words ".repeat(8).trim_end());
        let parts = split(&text, 120, chars);
        assert!(parts.iter().any(|p| p.contains(&code)), "{parts:#?}");
        assert!(
            parts.iter().all(|p| balanced(p) && chars(p) <= 120),
            "{parts:#?}"
        );
    }

    #[test]
    fn a_long_code_block_is_closed_and_reopened_with_its_language() {
        let body: String = (0..60).map(|i| format!("line {i}\n")).collect();
        let text = format!("Here:\n```python\n{body}```\nDone.");
        let parts = split(&text, 100, chars);
        assert!(parts.len() > 3);
        for p in &parts {
            assert!(chars(p) <= 100, "{p}");
            assert!(balanced(p), "{p}");
        }
        assert!(parts[1].starts_with("```python\n"), "{:?}", parts[1]);
        let joined: String = parts.join("\n");
        for i in 0..60 {
            assert!(
                joined.contains(&format!("line {i}\n"))
                    || joined.contains(&format!("line {i}\n```"))
            );
        }
        assert!(parts.last().unwrap().ends_with("Done."));
    }

    #[test]
    fn long_lines_break_after_sentences_then_words() {
        let text = "First sentence here. Second sentence is a bit longer than that. Third.";
        let parts = split(text, 40, chars);
        assert_eq!(parts[0], "First sentence here.");
        let words = "word ".repeat(30);
        for p in split(&words, 32, chars) {
            assert!(chars(&p) <= 32);
            assert!(
                !p.starts_with(' ') && p.split(' ').all(|w| w.is_empty() || w == "word"),
                "{p:?}"
            );
        }
    }

    #[test]
    fn a_line_cap_splits_tall_answers_and_keeps_blocks_balanced() {
        let body: String = (0..30).map(|i| format!("l{i}\n")).collect();
        let text = format!("Intro\n```sh\n{body}```\nOutro");
        let parts = split_capped(&text, 2000, chars, 10);
        assert!(parts.len() >= 4, "{parts:#?}");
        for p in &parts {
            assert!(p.lines().count() <= 10, "{p}");
            assert!(balanced(p), "{p}");
        }
        let joined = parts.join("\n");
        for i in 0..30 {
            assert!(joined.contains(&format!("l{i}\n")), "l{i} lost");
        }
        assert!(parts.last().unwrap().ends_with("Outro"));
        // Without the cap it is one message.
        assert_eq!(split(&text, 2000, chars).len(), 1);
    }

    #[test]
    fn a_block_with_a_long_fence_line_is_reopened_within_the_limit() {
        let text = format!(
            "```{}\n{}\n```",
            "x".repeat(12),
            "code ".repeat(20).trim_end()
        );
        let parts = split(&text, 20, chars);
        for p in &parts {
            assert!(chars(p) <= 20 && balanced(p), "{parts:#?}");
        }
        assert!(parts[1].starts_with("```\n"), "{parts:#?}");
    }

    #[test]
    fn a_fence_line_longer_than_a_message_still_opens_its_block() {
        let text = format!("```{}\nlet x = 1;\n```\nafter", "x".repeat(30));
        let parts = split(&text, 16, chars);
        for p in &parts {
            assert!(chars(p) <= 16 && balanced(p), "{parts:#?}");
        }
        assert!(parts.last().unwrap().ends_with("```\nafter"), "{parts:#?}");
    }

    #[test]
    fn blank_lines_at_the_start_of_a_piece_count_against_no_limit() {
        let text = format!("{}{}", "\n".repeat(16), "a".repeat(40));
        let parts = split(&text, 16, chars);
        assert!(parts.iter().all(|p| chars(p) <= 16), "{parts:#?}");
        assert_eq!(parts.concat(), "a".repeat(40));
        assert_eq!(split_capped("\n\n\nabc", 100, chars, 3), vec!["abc"]);
    }

    #[test]
    fn a_line_cap_after_blank_lines_keeps_the_block_whole() {
        let parts = split_capped("intro\n\n\n\n\n```\ncode\n```", 40, chars, 3);
        for p in &parts {
            assert!(balanced(p) && p.lines().count() <= 3, "{parts:#?}");
        }
        assert_eq!(parts, vec!["intro", "```\ncode\n```"]);
    }

    #[test]
    fn an_unclosed_empty_block_at_the_end_is_kept() {
        let text = format!("{}\n```py", "a".repeat(28));
        let parts = split(&text, 30, chars);
        assert_eq!(parts, vec!["a".repeat(28), "```py\n```".into()]);
    }

    #[test]
    fn a_long_line_is_not_cut_just_before_a_fence_in_it() {
        let parts = split("aaaaaaaaaaaa ```x and more words here", 16, chars);
        assert_eq!(parts, vec!["aaaaaaaaaaa", "a ```x and more", "words here"]);
        let parts = split("x ```inline foo ```inline", 16, chars);
        assert!(parts.iter().all(|p| !is_fence(p)), "{parts:#?}");
    }

    #[test]
    fn telegram_counts_utf16_units() {
        let text = "😀".repeat(30);
        for p in split(&text, 20, utf16) {
            assert!(utf16(&p) <= 20);
        }
        assert_eq!(split(&text, 20, utf16).concat(), text);
    }

    #[test]
    fn nothing_is_lost() {
        let text: String = (0..200).map(|i| format!("Sentence number {i}. ")).collect();
        let parts = split(&text, 100, chars);
        let words: Vec<&str> = text.split_whitespace().collect();
        let got: Vec<String> = parts
            .iter()
            .flat_map(|p| p.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect();
        assert_eq!(got, words);
    }
}
