//! Properties of the chunker (`chunk::split_capped`) on answers as models
//! write them: every split keeps the promises `chunk::check` states
//! (within the limit and the line cap, code fences balanced in every
//! piece, nothing lost or reordered); without code fences the pieces are
//! exactly the text's words, in order; and a text whose blocks are closed
//! comes back with every piece balanced and every line outside the fences
//! whole in content.

use proptest::prelude::*;
use switchboard_channel::chunk::{self, Measure};

/// Bits of an answer: words, sentences, line and paragraph breaks, long
/// words, emoji (two UTF-16 units), a ``` in the middle of a line.
fn prose() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zé]{1,12}".prop_map(|w| format!("{w} ")),
        2 => Just("A sentence ends here. ".to_string()),
        2 => Just("\n".to_string()),
        1 => Just("\n\n".to_string()),
        1 => "[a-z]{30,90}",
        1 => Just("😀 ".to_string()),
        1 => Just("\t".to_string()),
    ]
}

/// A fence line: ``` or ~~~, with or without a language.
fn fence() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["```", "```rust", "```python", "~~~", "  ```sh"])
        .prop_map(|f| format!("\n{f}\n"))
}

/// An answer without code blocks.
fn plain_answer() -> impl Strategy<Value = String> {
    prop::collection::vec(prose(), 0..150).prop_map(|v| v.concat())
}

/// An answer with code blocks, each closed.
fn answer() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        3 => prose(),
        1 => (fence(), prop::collection::vec(prose(), 0..40)).prop_map(|(f, body)| {
            format!("{f}{}\n```\n", body.concat())
        }),
        1 => Just("see x ```inline``` here ".to_string()),
    ];
    prop::collection::vec(part, 0..60).prop_map(|v| v.concat())
}

/// Any text: fences anywhere, unclosed blocks, CR LF, odd whitespace.
fn any_text() -> impl Strategy<Value = String> {
    let bit = prop_oneof![
        3 => prose(),
        1 => fence(),
        1 => prop::sample::select(vec!["```", " ```x ", "~~~", "\r\n", "\u{3000}", "``````", "`"]).prop_map(str::to_string),
        1 => "\\PC{0,20}",
    ];
    prop::collection::vec(bit, 0..80).prop_map(|v| v.concat())
}

fn measure() -> impl Strategy<Value = Measure> {
    prop::sample::select(vec![chunk::chars as Measure, chunk::utf16 as Measure])
}

fn max_lines() -> impl Strategy<Value = usize> {
    prop_oneof![Just(usize::MAX), 3..30usize]
}

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

fn non_space(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_split_keeps_its_promises(
        text in any_text(),
        limit in 16..300usize,
        len in measure(),
        lines in max_lines(),
    ) {
        let pieces = chunk::split_capped(&text, limit, len, lines);
        let checked = chunk::check(&text, limit, len, lines, &pieces);
        prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
    }

    #[test]
    fn without_code_the_pieces_are_the_words_in_order(
        text in plain_answer(),
        limit in 16..300usize,
        len in measure(),
        lines in max_lines(),
    ) {
        let pieces = chunk::split_capped(&text, limit, len, lines);
        prop_assert_eq!(non_space(&pieces.concat()), non_space(&text));
        for p in &pieces {
            prop_assert!(len(p) <= limit && p.lines().count() <= lines.max(3), "{:?}", p);
        }
    }

    #[test]
    fn closed_blocks_stay_balanced_and_lines_keep_their_content(
        text in answer(),
        limit in 16..300usize,
        len in measure(),
        lines in max_lines(),
    ) {
        let pieces = chunk::split_capped(&text, limit, len, lines);
        for p in &pieces {
            let fences = p.lines().filter(|l| is_fence(l)).count();
            prop_assert!(fences % 2 == 0, "unbalanced piece {:?}", p);
        }
        let content = |t: &str| -> String {
            t.lines().filter(|l| !is_fence(l)).map(non_space).collect()
        };
        prop_assert_eq!(content(&pieces.join("\n")), content(&text));
    }
}
