//! Reading server-sent events (the `text/event-stream` format) from the
//! bytes as they arrive: `event:` and `data:` lines, a blank line ending
//! each event, comments (`:` lines, the keep-alives) ignored. Pure.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `event:` name (`message` when it has none).
    pub name: String,
    /// Its `data:` lines, joined with `\n`.
    pub data: String,
}

/// An event (or one line) grew past [`MAX_EVENT`]: the stream is not one
/// the tray can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// The most an event may hold, in bytes.
pub const MAX_EVENT: usize = 4 * 1024 * 1024;

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    name: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, TooLong> {
        let mut events = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                if self.line.len() + self.data.len() > MAX_EVENT {
                    return Err(TooLong);
                }
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = std::mem::take(&mut self.line);
            if let Some(event) = self.line_done(&String::from_utf8_lossy(&line)) {
                events.push(event);
            }
        }
        Ok(events)
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let name = std::mem::take(&mut self.name);
            let data = std::mem::take(&mut self.data);
            if !std::mem::take(&mut self.has_data) {
                return None;
            }
            let name = if name.is_empty() {
                "message".into()
            } else {
                name
            };
            return Some(SseEvent { name, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_are_read_whole_and_comments_are_skipped() {
        let stream = b": keep-alive\n\nevent: status\ndata: {\"a\":1}\n\n:\n\r\nevent:status\r\ndata:x\r\ndata: y\r\n\r\ndata: plain\n\n";
        for split in 1..stream.len() {
            let mut p = SseParser::new();
            let mut got = p.push(&stream[..split]).unwrap();
            got.extend(p.push(&stream[split..]).unwrap());
            assert_eq!(
                got,
                [
                    SseEvent {
                        name: "status".into(),
                        data: "{\"a\":1}".into()
                    },
                    SseEvent {
                        name: "status".into(),
                        data: "x\ny".into()
                    },
                    SseEvent {
                        name: "message".into(),
                        data: "plain".into()
                    },
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn an_event_without_data_or_its_blank_line_is_not_dispatched() {
        let mut p = SseParser::new();
        assert!(p.push(b"event: status\n\n").unwrap().is_empty());
        assert!(p.push(b"data: half").unwrap().is_empty());
        assert!(p.push(b"\nid: 7\nretry: 10\n").unwrap().is_empty());
        assert_eq!(p.push(b"\n").unwrap()[0].data, "half");
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut p = SseParser::new();
        let chunk = vec![b'x'; 1024 * 1024];
        let mut result = Ok(Vec::new());
        for _ in 0..5 {
            result = p.push(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(TooLong));
    }
}
