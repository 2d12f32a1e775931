//! An incremental parser for server-sent events (the `text/event-stream`
//! format OpenAI-compatible servers stream completions in). Bytes arrive in
//! arbitrary chunks: an event, a line, even a multi-byte character may be
//! split across them, so the parser buffers until a line is complete and
//! dispatches an event at each blank line.

/// Longest line accepted; a server that sends more without a newline is
/// broken (or hostile), and buffering it would grow without bound.
pub const MAX_LINE: usize = 1 << 20;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// A line the parser could not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line longer than [`MAX_LINE`].
    #[error("an event-stream line exceeded {MAX_LINE} bytes")]
    LineTooLong,
    /// A line that is not UTF-8.
    #[error("an event-stream line is not UTF-8")]
    NotUtf8,
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    has_data: bool,
    too_long: bool,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = std::str::from_utf8(line)
                .map_err(|_| SseError::NotUtf8)?
                .to_owned();
            start = end + 1;
            if let Some(e) = self.line(&line) {
                events.push(e);
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE || self.too_long {
            return Err(SseError::LineTooLong);
        }
        Ok(events)
    }

    /// Whether bytes of an unfinished line or event are pending (the stream
    /// ended mid-event if so).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty() || self.has_data
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            if !self.has_data {
                self.event = None;
                return None;
            }
            self.has_data = false;
            return Some(Event {
                event: self.event.take(),
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.iter().map(String::len).sum::<usize>() + value.len() > MAX_LINE {
                    // Counted as a line too long: an event without end.
                    self.data.clear();
                    self.too_long = true;
                    return None;
                }
                self.data.push(value.to_owned());
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields are not used here
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn events_split_anywhere_across_chunks_come_out_whole_and_in_order() {
        let stream = "data: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":\"é\"}\r\n\r\nevent: x\ndata: one\ndata: two\n\ndata: [DONE]\n\n";
        let bytes = stream.as_bytes();
        // Every split point, including inside the two-byte 'é'.
        for split in 0..bytes.len() {
            let mut p = SseParser::default();
            let mut all = p.push(&bytes[..split]).unwrap();
            all.extend(p.push(&bytes[split..]).unwrap());
            assert_eq!(
                data(&all),
                vec!["{\"a\":1}", "{\"b\":\"é\"}", "one\ntwo", "[DONE]"],
                "split at {split}"
            );
            assert_eq!(all[2].event.as_deref(), Some("x"));
            assert!(!p.has_partial());
        }
        // Byte by byte.
        let mut p = SseParser::default();
        let mut all = Vec::new();
        for b in bytes {
            all.extend(p.push(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn a_cut_off_event_is_pending_and_oversized_lines_are_refused() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: {\"a\"").unwrap().is_empty());
        assert!(p.has_partial());
        let mut p = SseParser::default();
        assert!(p.push(b"data: x\n").unwrap().is_empty());
        assert!(p.has_partial(), "data without its blank line is unfinished");
        let mut p = SseParser::default();
        assert_eq!(p.push(&vec![b'x'; MAX_LINE + 1]), Err(SseError::LineTooLong));
        let mut p = SseParser::default();
        assert_eq!(p.push(b"data: \xff\n\n"), Err(SseError::NotUtf8));
    }
}
