//! Reading Server-Sent Events off the wire: a frame parser, a reader over a streaming
//! `reqwest` response that tells a clean end of stream from a broken one, and a raw-socket
//! stream that never reads (a client too slow for the server).

#![allow(dead_code)]

use std::{net::SocketAddr, pin::Pin, time::Duration};

use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::WAIT;

/// One SSE event (or comment) as read off the wire.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// `id:` field.
    pub id: Option<String>,
    /// `event:` field (`message` when absent, as in browsers); empty for a comment.
    pub event: String,
    /// `data:` lines joined by `\n`.
    pub data: String,
    /// `retry:` field.
    pub retry: Option<String>,
    /// The comment text for `: ping` style frames.
    pub comment: Option<String>,
    /// The frame exactly as received, blank line included.
    pub raw: String,
}

impl Event {
    /// `data` as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("data {:?}: {e}", self.data))
    }

    /// The `id:` as a number.
    pub fn id_num(&self) -> i64 {
        self.id
            .as_deref()
            .unwrap_or_else(|| panic!("event has no id: {self:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("non-numeric id in {self:?}: {e}"))
    }
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The server finished the response (the last chunk of a chunked body): it meant to.
    Clean,
    /// The connection broke mid-response (a dead process, a reset): the error as read.
    Broken(String),
}

/// Anything that names a connection for `POST /api/subscribe` and `/api/unsubscribe`.
pub trait Conn {
    /// The id from the stream's `connected` event.
    fn connection_id(&self) -> &str;
}

/// A bare connection id, e.g. a made-up one or that of a closed stream.
impl Conn for str {
    fn connection_id(&self) -> &str {
        self
    }
}

/// Reads SSE frames from a streaming response.
pub struct Sse {
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
    /// From the `connected` event.
    pub connection_id: String,
    /// Raw text received so far (for framing assertions).
    pub raw: String,
    /// Set once the stream has ended.
    pub end: Option<End>,
}

impl Conn for Sse {
    fn connection_id(&self) -> &str {
        &self.connection_id
    }
}

impl Sse {
    /// Wraps a `200 text/event-stream` response; reads nothing yet.
    pub fn new(res: reqwest::Response) -> Self {
        Self {
            stream: Box::pin(res.bytes_stream()),
            buf: String::new(),
            connection_id: String::new(),
            raw: String::new(),
            end: None,
        }
    }

    /// Reads one chunk within `deadline`; false at the end of the stream or on timeout.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> bool {
        if self.end.is_some() {
            return false;
        }
        match tokio::time::timeout_at(deadline, self.stream.next()).await {
            Ok(Some(Ok(chunk))) => {
                let text = std::str::from_utf8(&chunk).expect("utf-8 stream");
                self.raw.push_str(text);
                self.buf.push_str(text);
                true
            }
            Ok(Some(Err(e))) => {
                self.end = Some(End::Broken(format!("{e:?}")));
                false
            }
            Ok(None) => {
                self.end = Some(End::Clean);
                false
            }
            Err(_) => false,
        }
    }

    /// The next frame (event or comment), waiting at most [`WAIT`]; `None` at end of stream
    /// or on timeout.
    pub async fn next(&mut self) -> Option<Event> {
        self.next_within(WAIT).await
    }

    /// The next frame, waiting at most `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                return Some(parse_frame(&frame));
            }
            if !self.fill(deadline).await {
                return None;
            }
        }
    }

    /// The next non-comment event, skipping `: ping`s.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            let e = self.next().await?;
            if e.comment.is_none() {
                return Some(e);
            }
        }
    }

    /// Skips events until one named `name` arrives; panics after [`WAIT`].
    pub async fn expect(&mut self, name: &str) -> Event {
        loop {
            match self.next_event().await {
                Some(e) if e.event == name => return e,
                Some(_) => continue,
                None => panic!("no `{name}` event arrived (end: {:?})", self.end),
            }
        }
    }

    /// The next non-comment event, which must be named `name`.
    pub async fn expect_next(&mut self, name: &str) -> Event {
        match self.next_event().await {
            Some(e) if e.event == name => e,
            Some(e) => panic!("expected `{name}` next, got {e:?}"),
            None => panic!(
                "expected `{name}` next, got nothing (end: {:?}, else timed out)",
                self.end
            ),
        }
    }

    /// Asserts nothing but pings arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_within(left).await {
                Some(e) if e.comment.is_some() => continue,
                Some(e) => panic!("expected nothing, got {e:?}"),
                None => return,
            }
        }
    }

    /// Reads everything left until the stream ends; how it ended, or `None` if it was
    /// still open after `wait`.
    pub async fn end_within(&mut self, wait: Duration) -> Option<End> {
        let deadline = tokio::time::Instant::now() + wait;
        while self.fill(deadline).await {}
        self.end.clone()
    }

    /// True when the server ended the stream (cleanly or not) within `wait`.
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        self.end_within(wait).await.is_some()
    }
}

/// Parses one frame (its lines and the blank line after them).
pub fn parse_frame(frame: &str) -> Event {
    let mut e = Event {
        raw: frame.to_owned(),
        ..Event::default()
    };
    let mut data = Vec::new();
    for line in frame.trim_end_matches('\n').split('\n') {
        if let Some(c) = line.strip_prefix(':') {
            e.comment = Some(c.trim().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => e.id = Some(value.to_owned()),
            "event" => e.event = value.to_owned(),
            "data" => data.push(value.to_owned()),
            "retry" => e.retry = Some(value.to_owned()),
            other => panic!("unknown SSE field {other:?} in {frame:?}"),
        }
    }
    if e.comment.is_none() && e.event.is_empty() {
        e.event = "message".to_owned();
    }
    e.data = data.join("\n");
    e
}

/// Every complete frame in `text`; a partial frame at the end is left out.
pub fn complete_frames(text: &str) -> Vec<Event> {
    let mut frames = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.find("\n\n") {
        frames.push(parse_frame(&rest[..end + 2]));
        rest = &rest[end + 2..];
    }
    frames
}

/// `GET /api/events` on a raw socket with a tiny receive buffer: it reads the `connected`
/// frame and then nothing until told to, so the server's queue for it fills up.
pub struct StalledStream {
    socket: tokio::net::TcpStream,
    /// Every byte received so far: the response head, then the chunked body.
    received: Vec<u8>,
    /// From the `connected` event.
    pub connection_id: String,
}

impl Conn for StalledStream {
    fn connection_id(&self) -> &str {
        &self.connection_id
    }
}

impl StalledStream {
    /// Opens the stream at `base` (`http://127.0.0.1:PORT`) with the session `cookie` and
    /// reads up to the connection id.
    pub async fn open(base: &str, cookie: &str) -> Self {
        let addr: SocketAddr = base
            .trim_start_matches("http://")
            .parse()
            .expect("base is http://IP:PORT");
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .set_recv_buffer_size(2048)
            .expect("a small receive buffer");
        let mut socket = socket.connect(addr).await.expect("connect");
        let req = format!(
            "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
        );
        socket.write_all(req.as_bytes()).await.expect("send GET");
        let mut stalled = Self {
            socket,
            received: Vec::new(),
            connection_id: String::new(),
        };
        let key = "\"connection_id\":\"";
        loop {
            let n = stalled.read_some(WAIT).await;
            assert!(n > 0, "stream closed before `connected`");
            let text = String::from_utf8_lossy(&stalled.received);
            assert!(text.starts_with("HTTP/1.1 200"), "stream answer: {text}");
            if let Some(at) = text.find(key)
                && text.len() >= at + key.len() + 36
            {
                stalled.connection_id = text[at + key.len()..at + key.len() + 36].to_owned();
                return stalled;
            }
        }
    }

    /// Closes the client's sending side (`SHUT_WR`), keeping its reading side open.
    pub async fn half_close(&mut self) {
        self.socket.shutdown().await.expect("SHUT_WR");
    }

    /// Reads what is there within `wait`; 0 at end of stream (panics on timeout).
    async fn read_some(&mut self, wait: Duration) -> usize {
        let mut buf = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(wait, self.socket.read(&mut buf))
            .await
            .expect("the stalled stream read in time")
            .unwrap_or(0);
        self.received.extend_from_slice(&buf[..n]);
        n
    }

    /// Reads until the server ends the response (its last chunk, or EOF) and returns the
    /// body as text, de-chunked. Panics if it has not ended after `wait`.
    pub async fn read_to_end(&mut self, wait: Duration) -> String {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.received.ends_with(b"\r\n0\r\n\r\n") {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "the stalled stream never ended");
            if self.read_some(left).await == 0 {
                break;
            }
        }
        dechunk(&self.received)
    }
}

/// The body of an HTTP/1.1 chunked response (head included in `raw`), as text; stops at
/// the last chunk or where the bytes run out.
fn dechunk(raw: &[u8]) -> String {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head")
        + 4;
    let mut rest = &raw[head_end..];
    let mut body = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_line = std::str::from_utf8(&rest[..line_end]).expect("ascii chunk size");
        let size = usize::from_str_radix(size_line.trim(), 16)
            .unwrap_or_else(|e| panic!("chunk size {size_line:?}: {e}"));
        let start = line_end + 2;
        if size == 0 || rest.len() < start + size {
            break;
        }
        body.extend_from_slice(&rest[start..start + size]);
        rest = rest.get(start + size + 2..).unwrap_or_default();
    }
    String::from_utf8(body).expect("utf-8 stream")
}
