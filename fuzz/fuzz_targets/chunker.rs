//! The chunker, `switchboard_channel::chunk::split_capped`, on any text at
//! the limits and measures the platforms use (Telegram's UTF-16 units,
//! Discord's and Slack's characters, Discord's line cap) and at small ones
//! that make every rule fire: `chunk::check` must hold (each piece within
//! the limit and the line cap, fences balanced in each, nothing lost or
//! reordered), and splitting is a function of its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_channel::chunk::{self, Measure};

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the limit, the measure and the line cap.
    let [a, b, rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let limit = match a % 8 {
        0 => 4096,
        1 => 2000,
        2 => 40_000,
        n => usize::from(a / 8) + 16 * usize::from(n - 2),
    };
    let measure: Measure = if b % 2 == 0 {
        chunk::chars
    } else {
        chunk::utf16
    };
    let max_lines = match b / 2 % 4 {
        0 => usize::MAX,
        1 => 3,
        2 => 20,
        _ => usize::from(b / 8),
    };
    let pieces = chunk::split_capped(text, limit, measure, max_lines);
    if let Err(why) = chunk::check(text, limit, measure, max_lines, &pieces) {
        panic!("{why}\nlimit {limit}, max_lines {max_lines}\ntext: {text:?}\npieces: {pieces:#?}");
    }
    assert_eq!(pieces, chunk::split_capped(text, limit, measure, max_lines));
});
