//! Reading a `text/event-stream` answer (server-sent events) as it arrives.

use crate::ClientError;

/// One server-sent event: its `event:` name (`message` when none), `id:` and `data:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Events from a streaming response, one at a time.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    url: String,
    parser: Parser,
}

impl EventStream {
    pub(crate) fn new(response: reqwest::Response, url: String) -> Self {
        EventStream { response, url, parser: Parser::default() }
    }

    /// The next event, or `None` when the server closed the stream. Cancel-safe: a call
    /// dropped while waiting loses nothing.
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            if let Some(event) = self.parser.next_event() {
                return Ok(Some(event));
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.parser.push(&bytes),
                Ok(None) => return Ok(None),
                Err(source) => return Err(ClientError::Unreachable { url: self.url.clone(), source }),
            }
        }
    }
}

/// The event-stream format: lines ending in LF, CRLF or CR; an empty line ends an event;
/// `:` starts a comment (keep-alives).
#[derive(Debug, Default)]
struct Parser {
    buffer: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
}

impl Parser {
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    fn next_event(&mut self) -> Option<Event> {
        loop {
            let end = self.buffer.iter().position(|b| *b == b'\n' || *b == b'\r')?;
            // A CR at the very end may be the first half of a CRLF still on its way.
            if self.buffer[end] == b'\r' && end + 1 == self.buffer.len() {
                return None;
            }
            let skip = if self.buffer[end] == b'\r' && self.buffer.get(end + 1) == Some(&b'\n') { 2 } else { 1 };
            let line: Vec<u8> = self.buffer.drain(..end + skip).take(end).collect();
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    let event = self.event.take().unwrap_or_else(|| "message".into());
                    return Some(Event { event, id: self.id.clone(), data });
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = Some(value.to_string()),
                "id" => self.id = Some(value.to_string()),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_chunk_boundaries() {
        let mut p = Parser::default();
        let stream = b": keep-alive\n\nevent: line\nid: 1\ndata: {\"seq\":1}\n\nevent: line\r\nid: 2\r\ndata: a\r\ndata: b\r\n\r\nevent: end\ndata: {}\n\n";
        let mut events = Vec::new();
        // Fed one byte at a time: no event may depend on where a chunk ends.
        for b in stream.iter() {
            p.push(&[*b]);
            while let Some(e) = p.next_event() {
                events.push(e);
            }
        }
        assert_eq!(
            events,
            vec![
                Event { event: "line".into(), id: Some("1".into()), data: "{\"seq\":1}".into() },
                Event { event: "line".into(), id: Some("2".into()), data: "a\nb".into() },
                Event { event: "end".into(), id: Some("2".into()), data: "{}".into() },
            ]
        );
    }
}
