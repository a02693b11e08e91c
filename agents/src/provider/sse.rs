//! An incremental parser for `text/event-stream` bodies.
//!
//! Bytes arrive in arbitrary pieces (a line, a UTF-8 character or a `\r\n`
//! may be split across them); the parser buffers until an event is complete
//! and yields the event's `data` field.

/// Collects bytes and yields the `data` of each complete event.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    data: Vec<String>,
    saw_cr: bool,
}

/// Events larger than this are a protocol error, not a reason to grow.
const MAX_PENDING: usize = 4 << 20;

impl SseParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next piece of the body; returns the data of every event it
    /// completed, in order. Errors when one line grows past 4 MiB.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<Vec<String>, String> {
        let mut events = Vec::new();
        while let Some(&first) = bytes.first() {
            if self.saw_cr {
                self.saw_cr = false;
                if first == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') else {
                if self.pending.len() + bytes.len() > MAX_PENDING {
                    return Err("an event-stream line is longer than 4 MiB".into());
                }
                self.pending.extend_from_slice(bytes);
                break;
            };
            if self.pending.len() + end > MAX_PENDING {
                return Err("an event-stream line is longer than 4 MiB".into());
            }
            self.saw_cr = bytes[end] == b'\r';
            if self.pending.is_empty() {
                self.line(&bytes[..end], &mut events);
            } else {
                // The line began in an earlier piece; its buffer is kept
                // for the next one.
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(&bytes[..end]);
                self.line(&line, &mut events);
                line.clear();
                self.pending = line;
            }
            bytes = &bytes[end + 1..];
        }
        Ok(events)
    }

    /// The data of an event left unterminated when the body ended.
    pub fn finish(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.pending);
        let mut events = Vec::new();
        if !line.is_empty() {
            self.line(&line, &mut events);
        }
        self.line(b"", &mut events);
        events.pop()
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<String>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                events.push(self.data.join("\n"));
                self.data.clear();
            }
            return;
        }
        let text = String::from_utf8_lossy(line);
        if text.starts_with(':') {
            return; // a comment, used as keep-alive
        }
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        if field == "data" {
            self.data.push(value.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let body =
            "data: {\"a\":\"é\"}\r\n\r\n: keep-alive\n\ndata: one\ndata: two\n\ndata:[DONE]\n\n";
        let bytes = body.as_bytes();
        for split in 0..bytes.len() {
            let mut p = SseParser::new();
            let mut got = p.feed(&bytes[..split]).unwrap();
            got.extend(p.feed(&bytes[split..]).unwrap());
            assert_eq!(
                got,
                ["{\"a\":\"é\"}", "one\ntwo", "[DONE]"],
                "split at {split}"
            );
        }
    }

    #[test]
    fn unterminated_last_event_is_kept() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: tail").unwrap().is_empty());
        assert_eq!(p.finish().as_deref(), Some("tail"));
    }
}
