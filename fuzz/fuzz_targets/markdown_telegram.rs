//! Markdown to Telegram HTML (`switchboard_telegram::render::to_html`) on
//! any text: the output is always HTML Telegram accepts
//! (`render::check`), its visible text is never longer than the source
//! (so a piece within Telegram's limit stays within it rendered), and
//! text without markup reads back as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_telegram::render::{check, to_html, visible};

/// The characters that can start markup.
const MARKUP: &[char] = &['*', '_', '~', '`', '[', ']', '#'];

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

fuzz_target!(|data: &[u8]| {
    let Ok(markdown) = std::str::from_utf8(data) else {
        return;
    };
    let html = to_html(markdown);
    if let Err(why) = check(&html) {
        panic!("{why}\nmarkdown: {markdown:?}\nhtml: {html:?}");
    }
    let shown = visible(&html);
    assert!(
        utf16(&shown) <= utf16(markdown),
        "rendered longer: {shown:?}"
    );
    if !markdown.contains(MARKUP) {
        assert_eq!(shown, markdown, "plain text changed");
    }
});
