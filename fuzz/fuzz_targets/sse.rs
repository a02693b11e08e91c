//! The event-stream parser, `switchboard_agents::SseParser`, on any body
//! fed in any pieces: it never fails below its 4 MiB line limit, yields
//! the same events whether the body comes at once, in two pieces (split
//! where the first byte says) or byte by byte, and agrees with a plain
//! reading of the format written here (lines end at CR LF, CR or LF; a
//! blank line ends an event; `data:` lines, one space after the colon
//! dropped, are joined with LF; `:` lines are comments).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_agents::provider::SseParser;

/// The events of `body` and the unterminated one `finish` gives.
fn read(body: &[u8]) -> (Vec<String>, Option<String>) {
    let mut events = Vec::new();
    let mut data: Vec<String> = Vec::new();
    let mut line_of = |line: &[u8], events: &mut Vec<String>| {
        if line.is_empty() {
            if !data.is_empty() {
                events.push(data.join("\n"));
                data.clear();
            }
            return;
        }
        let text = String::from_utf8_lossy(line);
        if text.starts_with(':') {
            return;
        }
        let (field, value) = text.split_once(':').unwrap_or((&*text, ""));
        if field == "data" {
            data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
        }
    };
    let mut line = Vec::new();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\r' | b'\n' => {
                if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                line_of(&std::mem::take(&mut line), &mut events);
            }
            b => line.push(b),
        }
        i += 1;
    }
    // The body's end ends the last line and the last event.
    let mut last = Vec::new();
    line_of(&line, &mut last);
    line_of(b"", &mut last);
    (events, last.pop())
}

fn feed(pieces: &[&[u8]]) -> (Vec<String>, Option<String>) {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for piece in pieces {
        events.extend(parser.feed(piece).expect("no line is over 4 MiB"));
    }
    (events, parser.finish())
}

fuzz_target!(|data: &[u8]| {
    let Some((&at, body)) = data.split_first() else {
        return;
    };
    let whole = feed(&[body]);
    let (head, tail) = body.split_at(usize::from(at).min(body.len()));
    assert_eq!(feed(&[head, tail]), whole, "split at {}", head.len());
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(feed(&bytes), whole, "fed byte by byte");
    assert_eq!(read(body), whole, "not what the format says");
    for event in whole.0.iter().chain(&whole.1) {
        assert!(!event.contains('\r'), "a CR in {event:?}");
    }
});
