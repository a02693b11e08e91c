//! Properties of the Slack renderer (`render::to_mrkdwn`): for any text,
//! markup-heavy or not, the mrkdwn is safe (`render::check`: nothing can
//! become a mention, `&` `<` `>` escaped) and has the source's code
//! fences, one for one; text without markup comes back only escaped.

use proptest::prelude::*;
use switchboard_slack::render::{check, escape, to_mrkdwn};

/// Text made of markup, links and the characters Slack reserves.
fn markup() -> impl Strategy<Value = String> {
    let bit = prop::sample::select(vec![
        "*",
        "**",
        "_",
        "__",
        "~",
        "~~",
        "`",
        "```",
        "```rust\n",
        "\n```\n",
        "~~~",
        "[",
        "](",
        ")",
        "https://x.io/",
        "mailto:a@b.c",
        "|",
        "# ",
        "- ",
        "* ",
        "\n",
        " ",
        "<",
        ">",
        "&",
        "&amp;",
        "<!channel>",
        "<@U1>",
        "word",
        "é",
        "😀",
        "\u{1}",
        "\u{2}",
    ]);
    prop::collection::vec(bit, 0..60).prop_map(|v| v.concat())
}

fn fences(text: &str) -> usize {
    text.split('\n')
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("```") || t.starts_with("~~~")
        })
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_markup_renders_as_safe_mrkdwn(text in markup()) {
        let mrkdwn = to_mrkdwn(&text);
        prop_assert_eq!(check(&mrkdwn), Ok(()), "{:?}", mrkdwn);
        prop_assert_eq!(fences(&mrkdwn), fences(&text), "{:?}", mrkdwn);
    }

    #[test]
    fn any_text_renders_as_safe_mrkdwn(text in any::<String>()) {
        prop_assert_eq!(check(&to_mrkdwn(&text)), Ok(()));
    }

    #[test]
    fn text_without_markup_comes_back_escaped(text in "[^*_~`\\[\\]#+\\-\u{1}\u{2}]{0,80}") {
        prop_assert_eq!(to_mrkdwn(&text), escape(&text));
    }
}
