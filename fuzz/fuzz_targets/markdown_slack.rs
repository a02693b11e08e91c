//! Markdown to Slack mrkdwn (`switchboard_slack::render::to_mrkdwn`) on
//! any text: the output is always safe mrkdwn (`render::check`: nothing
//! can become a mention, `&` `<` `>` escaped), every code fence of the
//! source is one of the output (so a piece's blocks stay balanced), and
//! text without markup comes back only escaped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_slack::render::{check, escape, to_mrkdwn};

/// The characters that can start markup (`-` and `+` start bullets).
const MARKUP: &[char] = &[
    '*', '_', '~', '`', '[', ']', '#', '-', '+', '\u{1}', '\u{2}',
];

fn fences(text: &str) -> usize {
    text.split('\n')
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("```") || t.starts_with("~~~")
        })
        .count()
}

fuzz_target!(|data: &[u8]| {
    let Ok(markdown) = std::str::from_utf8(data) else {
        return;
    };
    let mrkdwn = to_mrkdwn(markdown);
    if let Err(why) = check(&mrkdwn) {
        panic!("{why}\nmarkdown: {markdown:?}\nmrkdwn: {mrkdwn:?}");
    }
    assert_eq!(
        fences(&mrkdwn),
        fences(markdown),
        "fences lost or made: {mrkdwn:?}"
    );
    if !markdown.contains(MARKUP) {
        assert_eq!(mrkdwn, escape(markdown), "plain text changed");
    }
});
