//! Properties of the Telegram renderer (`render::to_html`): for any text,
//! markup-heavy or not, the HTML is what Telegram accepts
//! (`render::check`) and its visible text is no longer than the source;
//! text without markup reads back unchanged.

use proptest::prelude::*;
use switchboard_telegram::render::{check, to_html, visible};

/// Text made of markup and the characters HTML reserves.
fn markup() -> impl Strategy<Value = String> {
    let bit = prop::sample::select(vec![
        "*",
        "**",
        "_",
        "__",
        "~~",
        "`",
        "```",
        "```rust\n",
        "\n```\n",
        "[",
        "](",
        ")",
        "https://x.io/?a=1&b=2",
        "tg://user",
        "# ",
        "\n",
        " ",
        "<",
        ">",
        "&",
        "\"",
        "word",
        "é",
        "😀",
        "\t",
        "\r\n",
    ]);
    prop::collection::vec(bit, 0..60).prop_map(|v| v.concat())
}

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_markup_renders_as_html_telegram_accepts(text in markup()) {
        let html = to_html(&text);
        prop_assert_eq!(check(&html), Ok(()), "{:?}", html);
        prop_assert!(utf16(&visible(&html)) <= utf16(&text), "{:?}", html);
    }

    #[test]
    fn any_text_renders_as_html_telegram_accepts(text in any::<String>()) {
        let html = to_html(&text);
        prop_assert_eq!(check(&html), Ok(()), "{:?}", html);
    }

    #[test]
    fn text_without_markup_reads_back_unchanged(text in "[^*_~`\\[\\]#]{0,80}") {
        prop_assert_eq!(visible(&to_html(&text)), text);
    }
}
