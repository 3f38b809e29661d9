//! roomcast side by side with nginx + Nchan, driven by one load tool: many real SSE streams
//! over raw HTTP/1.1, messages published with a send timestamp, every delivery checked.
//!
//! ```sh
//! cargo bench --bench sidebyside -- --side-by-side        # both servers, alternating, 3 rounds each
//! cargo bench --bench sidebyside -- --server nchan        # one server, one round
//! cargo bench --bench sidebyside -- --side-by-side --scenario storm --streams 1000
//!                                     # fan-out alone, then beside 1,000 reactions/s
//! cargo bench --bench sidebyside -- --quick               # roomcast only, tiny (CI)
//! cargo bench --bench sidebyside -- --hold 60 --streams 19000   # streams held, heartbeats counted
//! cargo bench --bench sidebyside -- --soak 10 --streams 5000    # paced traffic, PSS each minute
//! cargo bench --bench sidebyside -- --scenario restart          # 18,000 streams, SIGTERM, back
//! cargo bench --bench sidebyside -- --scenario nodes            # 100,000 streams, 6 nodes
//! ```
//!
//! Options: `--streams N` (5,000), `--messages K` (200), `--interval-ms D` (2; paced
//! publishing over `--pub-conns` keep-alive connections), `--rounds R` (3), `--one-step`
//! (roomcast streams subscribe while connecting),
//! `--scenario fanout|closed|storm|publish|restart|nodes|both|all` (`both`: fan-out and publish;
//! `closed`: the fan-out with one publisher that waits for each answer and posts
//! `--interval-ms` later; `storm`: fan-out alone and beside a storm of `--storm-rate` (1,000)
//! requests/s, see [`Storm`]), for the publish scenario `--subscribers` (10), `--posters P`
//! (64, each with one request in flight) and `--secs` (10), and for the restart scenario
//! (see [`restart`]) `--streams` (18,000), `--rooms` (100), `--rate` (100 messages/s),
//! `--before` (5 s) and `--after` (25 s), and for the many-nodes scenario (roomcast only, on
//! PostgreSQL, see [`nodes`]) `--nodes` (6), `--node-workers` (1), `--streams` (100,000),
//! `--messages` (100) `--interval-ms` (10) apart to one room, then `--rooms` (10,000; 1 for
//! none) with one post each, `--post-every-us` (1,000) apart.
//!
//! How it is built:
//! - The streams are held by child processes (this binary re-executed with `--child`), at
//!   most [`STREAMS_PER_CHILD`] each, so 19,000 streams fit under the ~20,000 open-file limit
//!   of a process; each stream binds its own source address (127.0.0.2, 127.0.0.3, …, one per
//!   [`STREAMS_PER_ADDR`]) before connecting, so no source runs out of ephemeral ports.
//! - roomcast streams subscribe with the two-step flow (the connection id from the first
//!   event, then `POST /api/subscribe`); Nchan streams subscribe by opening `/sub/bench`.
//! - Each published body carries `~p<publisher>~s<sequence>~t<send time, µs>~`. Every reader
//!   checks, per publisher, that sequences arrive 1, 2, 3, … with none missing, repeated or
//!   out of order, and for roomcast that the `id:` lines ascend (Nchan's ids are its own).
//! - Server figures come from `/proc` of every server process (nginx's master and workers):
//!   PSS from `smaps_rollup`, RSS, and utime + stime over the publish window.
//! - Medians are over rounds in which nothing was lost. A round where Nchan lost deliveries
//!   is listed apart and run again (at most `--rounds` times more); any error from roomcast
//!   fails the bench. See [`clean_rounds`].
//!
//! The parent and its children talk in lines: a child prints `READY …` once its streams are
//! subscribed, the parent answers `EXPECT <count per publisher…>` once it has published, and
//! the child prints `RESULT …` and `HIST …` when every stream has everything (or time is up).

#[path = "common/mod.rs"]
mod common;

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpSocket, TcpStream},
    sync::Mutex,
};

/// Streams one child process holds at most (the open-file limit is ~20,000 per process).
const STREAMS_PER_CHILD: usize = 9_500;
/// Streams per source address.
const STREAMS_PER_ADDR: usize = 5_000;
/// Streams opening at once in one child.
const OPENING_AT_ONCE: usize = 100;
/// The room (roomcast) or channel (Nchan) every stream listens to.
const ROOM: &str = "bench";
/// Histogram resolution and range: 10 µs buckets up to 20 s (later lands in the last one).
const HIST_US: u64 = 10;
const HIST_BUCKETS: usize = 2_000_000;
/// How long a child waits for the last deliveries after the parent's `EXPECT`, unless
/// told otherwise (`--drain-secs`).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// roomcast's `sse.queue_capacity` in the publish scenario (see [`run_publish`]).
const PUBLISH_QUEUE: usize = 16_384;
/// How a storm message to Nchan begins (roomcast's storm is `reaction` events).
const STORM_BODY: &str = "storm";

/// Wall-clock microseconds: comparable across the load tool's processes on one machine.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Roomcast,
    Nchan,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Roomcast => "roomcast",
            Kind::Nchan => "nchan",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "roomcast" => Ok(Kind::Roomcast),
            "nchan" => Ok(Kind::Nchan),
            _ => bail!("--server {s}: roomcast or nchan"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: keep-alive requests and the head of a streaming answer.

/// The end of a response head (`\r\n\r\n`) in `buf`, if it arrived.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Status code and the value of `name` (lower case) in a response head.
fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>)> {
    let text = std::str::from_utf8(head).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status line in {text:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Source ports this process takes in turn (see [`connect_from`]): below Linux's ephemeral
/// range (32,768–60,999), because a port a bound socket holds in TIME_WAIT is lost to every
/// other `connect()` on the machine, and 40,000 of them starved the bench's own
/// connections to PostgreSQL.
const SOURCE_PORTS: std::ops::Range<u32> = 1_024..32_768;

/// Opens a TCP connection from `src` to `dst`.
///
/// The source port is chosen here, in turn, with `SO_REUSEADDR`. Rounds run back to back
/// and each leaves thousands of streams in TIME_WAIT for 60 s; a `bind` to port 0 never
/// takes a port that TIME_WAIT holds, and gets only half the range, so a few rounds in a
/// row found no free port on a source address. The server's port differs in each round, so
/// the new connection's four-tuple is new anyway. A port in use is skipped.
async fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> Result<TcpStream> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = SOURCE_PORTS.end - SOURCE_PORTS.start;
    let mut last = None;
    for _ in 0..64 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Processes start apart, so children sharing an address rarely collide.
        let port = SOURCE_PORTS.start + (n + std::process::id().wrapping_mul(7919)) % span;
        let socket = TcpSocket::new_v4().context("socket")?;
        socket.set_reuseaddr(true).context("SO_REUSEADDR")?;
        let from = SocketAddr::new(src.into(), port as u16);
        let connected = match socket.bind(from) {
            Ok(()) => socket.connect(dst).await,
            Err(e) => Err(e),
        };
        match connected {
            Ok(stream) => {
                stream.set_nodelay(true).context("nodelay")?;
                return Ok(stream);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable
                ) =>
            {
                last = Some(e);
            }
            Err(e) => return Err(e).with_context(|| format!("connect {from} → {dst}")),
        }
    }
    Err(anyhow::anyhow!("{last:?}")).with_context(|| format!("no free source port on {src}"))
}

/// One keep-alive connection for plain requests (subscribes, publishes).
struct HttpConn {
    dst: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl HttpConn {
    fn new(dst: SocketAddr) -> Self {
        Self {
            dst,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends one request and reads its whole answer: status and body. A connection the
    /// server closed while idle is reopened once.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        extra_headers: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n{extra_headers}\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        for attempt in 0..2 {
            if self.stream.is_none() {
                self.stream = Some(connect_from(Ipv4Addr::LOCALHOST, self.dst).await?);
                self.buf.clear();
            }
            match self.exchange(&req).await {
                Ok(answer) => return Ok(answer),
                Err(_) if attempt == 0 && self.buf.is_empty() => {
                    // Closed while idle (keep-alive timeout): once more on a new connection.
                    self.stream = None;
                }
                Err(e) => {
                    self.stream = None;
                    return Err(e);
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    async fn exchange(&mut self, req: &[u8]) -> Result<(u16, Vec<u8>)> {
        let stream = self.stream.as_mut().context("not connected")?;
        stream.write_all(req).await.context("writing a request")?;
        let end = loop {
            if let Some(end) = head_end(&self.buf) {
                break end;
            }
            if stream.read_buf(&mut self.buf).await.context("reading")? == 0 {
                bail!("connection closed before the answer");
            }
        };
        let (status, headers) = parse_head(&self.buf[..end])?;
        self.buf.drain(..end);
        let body = if header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut decoder = Dechunk::default();
            let mut body = Vec::new();
            loop {
                decoder.feed(&self.buf, &mut body)?;
                self.buf.clear();
                if decoder.done {
                    break;
                }
                if stream.read_buf(&mut self.buf).await.context("reading")? == 0 {
                    bail!("connection closed inside a chunked body");
                }
            }
            body
        } else {
            let len: usize = header(&headers, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while self.buf.len() < len {
                if stream.read_buf(&mut self.buf).await.context("reading")? == 0 {
                    bail!("connection closed inside a body");
                }
            }
            self.buf.drain(..len).collect()
        };
        if header(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            self.stream = None;
        }
        Ok((status, body))
    }
}

/// Incremental decoder of `Transfer-Encoding: chunked` (actix streams SSE that way; Nchan
/// sends the bytes as they are).
#[derive(Default)]
struct Dechunk {
    /// Bytes left in the current chunk's data.
    left: usize,
    /// The CRLF after a chunk's data is still to be skipped (2, 1 or 0 bytes).
    crlf: usize,
    /// A partial size line.
    line: Vec<u8>,
    /// The last (zero) chunk was read.
    done: bool,
}

impl Dechunk {
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        while !input.is_empty() && !self.done {
            if self.left > 0 {
                let n = self.left.min(input.len());
                out.extend_from_slice(&input[..n]);
                self.left -= n;
                input = &input[n..];
                if self.left == 0 {
                    self.crlf = 2;
                }
            } else if self.crlf > 0 {
                let n = self.crlf.min(input.len());
                self.crlf -= n;
                input = &input[n..];
            } else {
                match input.iter().position(|&b| b == b'\n') {
                    None => {
                        self.line.extend_from_slice(input);
                        input = &[];
                    }
                    Some(p) => {
                        self.line.extend_from_slice(&input[..p]);
                        input = &input[p + 1..];
                        let text = std::str::from_utf8(&self.line).unwrap_or("");
                        let hex = text.split(';').next().unwrap_or("").trim();
                        let size = usize::from_str_radix(hex, 16)
                            .with_context(|| format!("bad chunk size line {text:?}"))?;
                        self.line.clear();
                        if size == 0 {
                            self.done = true;
                        }
                        self.left = size;
                    }
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The child: holds streams, checks every delivery.

/// What every reader of a child adds to.
struct Tally {
    /// Deliveries that came in sequence.
    in_order: AtomicU64,
    /// Deliveries out of sequence (a gap, a repeat, a reordering).
    disorder: AtomicU64,
    /// roomcast `id:` lines that did not ascend.
    id_errors: AtomicU64,
    /// Streams that ended or failed while they were still expected to deliver (and, on
    /// roomcast, could not be opened again).
    closed: AtomicU64,
    /// roomcast streams the server closed that were opened again with `Last-Event-ID`, as
    /// `EventSource` does (the server cuts a reader that falls a queue behind).
    resumed: AtomicU64,
    /// Comment frames (heartbeats) seen in all.
    pings: AtomicU64,
    /// Storm frames seen: `reaction` events (roomcast), `storm…` messages (Nchan).
    storm: AtomicU64,
    /// Streams that saw at least one heartbeat.
    streams_pinged: AtomicU64,
    first_rx: AtomicU64,
    last_rx: AtomicU64,
    max_latency: AtomicU64,
    hist: Vec<AtomicU64>,
    /// Streams back after a close (`--reconnect`), and when the last came back (µs).
    reconnected: AtomicU64,
    reconnected_last: AtomicU64,
    /// Streams that, once back, got a message sent after they came back, in order (so
    /// everything before it too), and when the last did.
    caught_up: AtomicU64,
    caught_up_last: AtomicU64,
    /// Reopen attempts that failed (refused, or answered other than 200) and were retried.
    refused: AtomicU64,
    /// Set once the child is done, so closing streams are not counted as errors.
    stopping: AtomicBool,
}

impl Tally {
    fn new() -> Self {
        Self {
            in_order: AtomicU64::new(0),
            disorder: AtomicU64::new(0),
            id_errors: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            storm: AtomicU64::new(0),
            streams_pinged: AtomicU64::new(0),
            first_rx: AtomicU64::new(u64::MAX),
            last_rx: AtomicU64::new(0),
            max_latency: AtomicU64::new(0),
            hist: (0..HIST_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            reconnected: AtomicU64::new(0),
            reconnected_last: AtomicU64::new(0),
            caught_up: AtomicU64::new(0),
            caught_up_last: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        }
    }
}

/// The number after `tag` in `data`, e.g. `~s` in `…~p0~s17~t…`.
fn marker(data: &[u8], tag: &[u8]) -> Option<u64> {
    let at = data.windows(tag.len()).position(|w| w == tag)? + tag.len();
    let digits = data[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&data[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// One stream's checking state.
struct Reader {
    kind: Kind,
    last_id: u64,
    /// Nchan's last `id:` (its own format), to resume from.
    nchan_id: Option<String>,
    /// Next expected sequence number per publisher seen: (publisher, next). A stream hears
    /// a few publishers (one per room in the many-rooms runs), so a short list is enough.
    next_seq: Vec<(u64, u64)>,
    pinged: bool,
    /// The reconnection delay the server asked for (`retry:`), ms.
    retry_ms: u64,
    /// When the stream came back after a close, until a message sent later arrives.
    back_at: Option<u64>,
}

/// The `Last-Event-ID` header line for a resume, or nothing.
fn resume_header(last_event_id: Option<&str>) -> String {
    last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"))
}

impl Reader {
    /// The id a reopened stream resumes after, as the server wrote it.
    fn resume_from(&self) -> Option<String> {
        match self.kind {
            Kind::Roomcast => Some(self.last_id.to_string()),
            Kind::Nchan => self.nchan_id.clone(),
        }
    }

    fn new(kind: Kind) -> Self {
        Self {
            kind,
            last_id: 0,
            nchan_id: None,
            next_seq: Vec::new(),
            pinged: false,
            retry_ms: 3000,
            back_at: None,
        }
    }
}

impl Reader {
    fn frame(&mut self, frame: &[u8], tally: &Tally) {
        if frame.starts_with(b": ping") || frame.starts_with(b":ping") {
            // A heartbeat (roomcast `: ping`, Nchan `:ping`); Nchan's opening `: hi` is not.
            tally.pings.fetch_add(1, Ordering::Relaxed);
            if !self.pinged {
                self.pinged = true;
                tally.streams_pinged.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let mut id = None;
        let mut data = None;
        let mut reaction = false;
        for line in frame.split(|&b| b == b'\n') {
            if let Some(v) = line.strip_prefix(b"id: ") {
                id = Some(v);
            } else if let Some(v) = line.strip_prefix(b"data: ") {
                data = Some(v);
            } else if line == b"event: reaction" {
                reaction = true;
            } else if let Some(v) = line.strip_prefix(b"retry: ") {
                let ms = std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
                self.retry_ms = ms.unwrap_or(self.retry_ms);
            }
        }
        let Some(data) = data else { return };
        if reaction || data.starts_with(STORM_BODY.as_bytes()) {
            tally.storm.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let (Some(p), Some(s), Some(t)) = (
            marker(data, b"~p"),
            marker(data, b"~s"),
            marker(data, b"~t"),
        ) else {
            return; // not one of ours (`connected`, presence)
        };
        let now = now_us();
        tally.first_rx.fetch_min(now, Ordering::Relaxed);
        tally.last_rx.fetch_max(now, Ordering::Relaxed);
        let latency = now.saturating_sub(t);
        tally.max_latency.fetch_max(latency, Ordering::Relaxed);
        let bucket = ((latency / HIST_US) as usize).min(HIST_BUCKETS - 1);
        tally.hist[bucket].fetch_add(1, Ordering::Relaxed);
        if self.kind == Kind::Nchan {
            if let Some(id) = id.and_then(|v| std::str::from_utf8(v).ok()) {
                self.nchan_id = Some(id.trim().to_owned());
            }
        } else {
            let id = id
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            match id {
                Some(id) if id > self.last_id => self.last_id = id,
                _ => {
                    tally.id_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let next = match self.next_seq.iter().position(|&(q, _)| q == p) {
            Some(at) => &mut self.next_seq[at].1,
            None => {
                self.next_seq.push((p, 1));
                &mut self.next_seq.last_mut().expect("just pushed").1
            }
        };
        if s == *next {
            *next += 1;
            tally.in_order.fetch_add(1, Ordering::Relaxed);
            if self.back_at.is_some_and(|back| t >= back) {
                self.back_at = None;
                tally.caught_up.fetch_add(1, Ordering::Relaxed);
                tally.caught_up_last.fetch_max(now, Ordering::Relaxed);
            }
        } else {
            tally.disorder.fetch_add(1, Ordering::Relaxed);
            if s > *next {
                // The skipped ones are missing; if they come later, they come out of order.
                *next = s + 1;
            }
        }
    }
}

/// Reads SSE frames from `stream` until it ends, feeding each to `reader`. `leftover` is
/// what was read past the response head (raw, before de-chunking).
async fn read_stream(
    mut stream: TcpStream,
    mut decoder: Option<Dechunk>,
    mut payload: Vec<u8>,
    mut reader: Reader,
    tally: Arc<Tally>,
    reopen: Reopen,
) {
    let mut raw = vec![0u8; 4096];
    let mut start = 0;
    loop {
        // Every whole frame in the payload.
        while let Some(end) = payload[start..].windows(2).position(|w| w == b"\n\n") {
            reader.frame(&payload[start..start + end], &tally);
            start += end + 2;
        }
        payload.drain(..start);
        start = 0;
        let ended = match stream.read(&mut raw).await {
            Ok(0) | Err(_) => true,
            Ok(n) => match &mut decoder {
                Some(d) => d.feed(&raw[..n], &mut payload).is_err() || d.done,
                None => {
                    payload.extend_from_slice(&raw[..n]);
                    false
                }
            },
        };
        if !ended {
            continue;
        }
        if tally.stopping.load(Ordering::Relaxed) {
            return;
        }
        // roomcast closed it (a slow reader, or a restart): resume after the last id seen,
        // as a browser would. What the reader checks carries on across the new connection.
        let again = match reader.kind {
            _ if reopen.args.reconnect => reconnect(&reopen, &reader, &tally).await,
            Kind::Roomcast => reopen.open(reader.resume_from()).await.ok(),
            Kind::Nchan => None,
        };
        let Some((s, d, p)) = again else {
            tally.closed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        tally.resumed.fetch_add(1, Ordering::Relaxed);
        if reopen.args.reconnect {
            let now = now_us();
            reader.back_at = Some(now);
            tally.reconnected.fetch_add(1, Ordering::Relaxed);
            tally.reconnected_last.fetch_max(now, Ordering::Relaxed);
        }
        (stream, decoder, payload) = (s, d, p);
    }
}

/// How long a reconnecting stream keeps trying.
const RECONNECT_FOR: Duration = Duration::from_secs(120);

/// Reopens a closed stream as `EventSource` does: after the server's `retry:` delay, with
/// `Last-Event-ID`, again after the same delay for as long as it fails.
async fn reconnect(reopen: &Reopen, reader: &Reader, tally: &Tally) -> Option<Opened> {
    let give_up = Instant::now() + RECONNECT_FOR;
    while Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(reader.retry_ms)).await;
        match reopen.open(reader.resume_from()).await {
            Ok(opened) => return Some(opened),
            Err(e) => {
                // The first few say why.
                if tally.refused.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("child: a reconnect failed: {e:#}");
                }
            }
        }
    }
    None
}

/// An open stream: its socket, its decoder (a chunked body's, mid-chunk perhaps) and what
/// was read past the head, decoded.
type Opened = (TcpStream, Option<Dechunk>, Vec<u8>);

/// What a reader needs to open its stream again.
struct Reopen {
    args: Arc<ChildArgs>,
    src: Ipv4Addr,
    port: u16,
    pool: Pool,
    room: String,
}

impl Reopen {
    async fn open(&self, last_event_id: Option<String>) -> Result<Opened> {
        open_stream(
            &self.args,
            self.src,
            self.port,
            &self.pool,
            &self.room,
            last_event_id,
        )
        .await
    }
}

/// Settings a child gets on its command line.
struct ChildArgs {
    kind: Kind,
    /// The server's ports: stream `i` of all goes to `ports[i % ports.len()]`, as a
    /// round-robin balancer in front of several nodes would send it.
    ports: Vec<u16>,
    cookie: String,
    streams: usize,
    first_addr: usize,
    /// roomcast: subscribe while connecting (`GET /api/events?rooms=`), not in two steps.
    one_step: bool,
    /// Rooms the streams are spread over (see [`room_of`]).
    rooms: usize,
    /// The index of this child's first stream among all the children's.
    first_stream: usize,
    /// A closed stream comes back as `EventSource` would (see [`reconnect`]).
    reconnect: bool,
    /// How long to wait for the last deliveries after `EXPECT`.
    drain: Duration,
}

/// The room (channel) of stream `i` of all: [`ROOM`] alone, or `bench0`, `bench1`, … in turn.
fn room_of(i: usize, rooms: usize) -> String {
    if rooms <= 1 {
        ROOM.to_owned()
    } else {
        format!("{ROOM}{}", i % rooms)
    }
}

/// Keep-alive connections for the subscribe calls, per server port.
type Pool = Arc<Mutex<std::collections::HashMap<u16, Vec<HttpConn>>>>;

/// Opens one stream and subscribes it (on roomcast resuming after `last_event_id`, which
/// is always in one step).
async fn open_stream(
    args: &ChildArgs,
    src: Ipv4Addr,
    port: u16,
    pool: &Pool,
    room: &str,
    last_event_id: Option<String>,
) -> Result<Opened> {
    let dst = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = connect_from(src, dst).await?;
    let one_step = args.one_step || last_event_id.is_some();
    let req = match args.kind {
        Kind::Roomcast => format!(
            "GET /api/events{} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\
             Cookie: {}\r\n{}\r\n",
            if one_step {
                format!("?rooms={room}&events=message")
            } else {
                String::new()
            },
            args.cookie,
            resume_header(last_event_id.as_deref()),
        ),
        Kind::Nchan => format!(
            "GET /sub/{room} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{}\r\n",
            resume_header(last_event_id.as_deref()),
        ),
    };
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("stream closed before its head");
        }
    };
    let (status, headers) = parse_head(&buf[..end])?;
    if status != 200 {
        bail!("stream answered {status}");
    }
    let chunked = header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let mut decoder = Dechunk::default();
    let mut payload = Vec::new();
    let mut raw = buf.split_off(end);
    if args.kind == Kind::Nchan {
        if chunked {
            decoder.feed(&raw, &mut payload)?;
        } else {
            payload = raw;
        }
        return Ok((stream, chunked.then_some(decoder), payload));
    }
    // roomcast: the first event carries the connection id; then the second step.
    loop {
        if chunked {
            decoder.feed(&raw, &mut payload)?;
        } else {
            payload.extend_from_slice(&raw);
        }
        raw.clear();
        if payload.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if stream.read_buf(&mut raw).await? == 0 {
            bail!("stream closed before its connected event");
        }
    }
    if one_step {
        return Ok((stream, chunked.then_some(decoder), payload));
    }
    let text = String::from_utf8_lossy(&payload);
    let id = common::connection_id_in(&text)
        .context("no connection id in the first event")?
        .to_owned();
    let body = serde_json::json!({ "connection_id": id, "rooms": [room], "events": ["message"] });
    let mut conn = pool
        .lock()
        .await
        .get_mut(&port)
        .and_then(Vec::pop)
        .unwrap_or_else(|| HttpConn::new(dst));
    let answer = conn
        .request(
            "POST",
            "/api/subscribe",
            &format!(
                "Cookie: {}\r\nContent-Type: application/json\r\n",
                args.cookie
            ),
            body.to_string().as_bytes(),
        )
        .await;
    pool.lock().await.entry(port).or_default().push(conn);
    let (status, answer) = answer?;
    if status != 200 {
        bail!(
            "subscribe answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok((stream, chunked.then_some(decoder), payload))
}

async fn child_main(args: ChildArgs) -> Result<()> {
    use futures_util::StreamExt;
    let tally = Arc::new(Tally::new());
    let pool: Pool = Pool::default();
    let started = Instant::now();
    let args = Arc::new(args);
    let opened: Vec<Result<usize>> = futures_util::stream::iter(0..args.streams)
        .map(|i| {
            let (args, pool, tally) = (args.clone(), pool.clone(), tally.clone());
            async move {
                let addr = args.first_addr + i / STREAMS_PER_ADDR;
                let src = Ipv4Addr::new(127, 0, (addr / 250) as u8, (2 + addr % 250) as u8);
                let room = room_of(args.first_stream + i, args.rooms);
                let port = args.ports[(args.first_stream + i) % args.ports.len()];
                let (stream, decoder, payload) =
                    open_stream(&args, src, port, &pool, &room, None).await?;
                let reader = Reader::new(args.kind);
                let reopen = Reopen {
                    args,
                    src,
                    port,
                    pool,
                    room,
                };
                tokio::spawn(read_stream(stream, decoder, payload, reader, tally, reopen));
                Ok(i)
            }
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .collect()
        .await;
    let errors: Vec<&anyhow::Error> = opened.iter().filter_map(|r| r.as_ref().err()).collect();
    if let Some(e) = errors.first() {
        eprintln!(
            "child: {} streams failed to open; first: {e:#}",
            errors.len()
        );
    }
    println!(
        "READY {:.3} {} {}",
        started.elapsed().as_secs_f64(),
        opened.len() - errors.len(),
        errors.len()
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let expect = loop {
        let Some(line) = lines.next_line().await? else {
            return Ok(()); // the parent went away
        };
        if let Some(rest) = line.strip_prefix("EXPECT") {
            let counts: Vec<u64> = rest
                .split_whitespace()
                .map(|c| c.parse().context("EXPECT count"))
                .collect::<Result<_>>()?;
            break counts;
        }
    };
    // One room: every stream expects every publisher's messages. Several: publisher `r`
    // posts to room `r` only.
    let total: u64 = opened
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|&i| match args.rooms {
            0 | 1 => expect.iter().sum(),
            rooms => expect
                .get((args.first_stream + i) % rooms)
                .copied()
                .unwrap_or(0),
        })
        .sum();
    let deadline = Instant::now() + args.drain;
    while tally.in_order.load(Ordering::Relaxed) + tally.disorder.load(Ordering::Relaxed) < total
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tally.stopping.store(true, Ordering::Relaxed);
    let t = &tally;
    let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "RESULT {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
        r(&t.in_order),
        total.saturating_sub(r(&t.in_order)),
        r(&t.disorder),
        r(&t.id_errors),
        r(&t.closed),
        errors.len(),
        r(&t.pings),
        r(&t.streams_pinged),
        r(&t.first_rx),
        r(&t.last_rx),
        r(&t.max_latency),
        r(&t.storm),
        r(&t.resumed),
        r(&t.reconnected),
        r(&t.reconnected_last),
        r(&t.caught_up),
        r(&t.caught_up_last),
        r(&t.refused),
    );
    let hist: Vec<String> = t
        .hist
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let c = c.load(Ordering::Relaxed);
            (c > 0).then(|| format!("{i}:{c}"))
        })
        .collect();
    println!("HIST {}", hist.join(" "));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The parent: servers, publishing, figures.

/// roomcast's settings in every scenario; `queue` sets `sse.queue_capacity`.
fn roomcast_env(heartbeat_secs: u64, queue: Option<usize>) -> Vec<(&'static str, String)> {
    vec![
        (
            "ROOMCAST__SSE__QUEUE_CAPACITY",
            queue.unwrap_or(1024).to_string(),
        ),
        ("ROOMCAST__SSE__HEARTBEAT_SECS", heartbeat_secs.to_string()),
        // Same as Nchan's worker_processes.
        ("ROOMCAST__SERVER__WORKERS", "2".to_owned()),
        // No line per request, as Nchan's `access_log off` (warnings still).
        (
            "RUST_LOG",
            "roomcast=info,roomcast::http::telemetry=warn,actix_server=warn".to_owned(),
        ),
    ]
}

/// A server under test, stopped when dropped.
enum Running {
    Roomcast(common::Server),
    Nchan {
        pid: u32,
        port: u16,
        prefix: tempfile::TempDir,
    },
}

impl Running {
    /// Starts a server of `kind`; `queue` sets roomcast's `sse.queue_capacity`.
    fn start(kind: Kind, heartbeat_secs: u64, queue: Option<usize>) -> Result<Self> {
        match kind {
            Kind::Roomcast => Ok(Running::Roomcast(common::Server::start(
                "127.0.0.1",
                &roomcast_env(heartbeat_secs, queue),
            ))),
            Kind::Nchan => {
                let prefix = tempfile::tempdir().context("temp dir")?;
                // A free port: bind one, note it, let it go (nginx binds it right after).
                let port = std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port();
                let pid = start_nchan(prefix.path(), port, heartbeat_secs)?;
                Ok(Running::Nchan { pid, port, prefix })
            }
        }
    }

    fn port(&self) -> u16 {
        match self {
            Running::Roomcast(s) => s.port,
            Running::Nchan { port, .. } => *port,
        }
    }

    /// Stops the server with SIGTERM and starts it again on the same port (and, for
    /// roomcast, the same database); the seconds it took to stop.
    fn restart(&mut self) -> Result<f64> {
        match self {
            Running::Roomcast(s) => Ok(s.restart()),
            Running::Nchan { pid, port, prefix } => {
                let t0 = Instant::now();
                let status = std::process::Command::new("bash")
                    .arg(script())
                    .arg("stop")
                    .env("NCHAN_PREFIX", prefix.path())
                    .status()?;
                if !status.success() {
                    bail!("benches/nchan/run.sh stop failed ({status})");
                }
                let stopped = t0.elapsed().as_secs_f64();
                *pid = start_nchan(prefix.path(), *port, 15)?;
                Ok(stopped)
            }
        }
    }

    /// Every process of the server.
    fn pids(&self) -> Vec<u32> {
        match self {
            Running::Roomcast(s) => vec![s.pid],
            Running::Nchan { pid, .. } => common::with_children(*pid),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::Nchan { prefix, .. } = self {
            let _ = std::process::Command::new("bash")
                .arg(script())
                .arg("stop")
                .env("NCHAN_PREFIX", prefix.path())
                .status();
        }
    }
}

/// Starts nginx + Nchan in `prefix` on `port`; its master's pid.
fn start_nchan(prefix: &std::path::Path, port: u16, heartbeat_secs: u64) -> Result<u32> {
    let out = std::process::Command::new("bash")
        .arg(script())
        .arg("start")
        .env("NCHAN_PREFIX", prefix)
        .env("NCHAN_PORT", port.to_string())
        .env("NCHAN_PING", heartbeat_secs.to_string())
        .stderr(Stdio::inherit())
        .output()
        .context("running benches/nchan/run.sh")?;
    if !out.status.success() {
        bail!("benches/nchan/run.sh start failed ({})", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("run.sh start prints the master pid")
}

fn script() -> String {
    format!("{}/benches/nchan/run.sh", env!("CARGO_MANIFEST_DIR"))
}

/// Registers a user on roomcast and returns its session cookie (`name=value`).
async fn register(port: u16, username: &str) -> Result<String> {
    let res = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/register"))
        .json(&serde_json::json!({ "username": username, "password": "bench-password" }))
        .send()
        .await
        .context("register")?;
    if res.status() != 201 {
        bail!("registering {username}: {}", res.status());
    }
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?;
    Ok(cookie.to_owned())
}

/// The subscribers' and the publishers' session cookies (roomcast; Nchan has no users).
async fn bench_users(kind: Kind, port: u16) -> Result<(String, String)> {
    Ok(match kind {
        Kind::Roomcast => (
            register(port, "bench_sub").await?,
            register(port, "bench_pub").await?,
        ),
        Kind::Nchan => (String::new(), String::new()),
    })
}

/// One publisher: a keep-alive connection that sends its messages one at a time.
struct Publisher {
    kind: Kind,
    index: usize,
    seq: u64,
    /// Posts that failed (each still took a sequence number, so readers expect it).
    errors: u64,
    conn: HttpConn,
    cookie: String,
    /// The room (channel) it posts to.
    room: String,
}

impl Publisher {
    /// Publisher `index` to the server on `port`, posting with `cookie` (roomcast).
    fn new(kind: Kind, index: usize, port: u16, cookie: &str) -> Self {
        Self {
            kind,
            index,
            seq: 0,
            errors: 0,
            conn: HttpConn::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
            cookie: cookie.to_owned(),
            room: ROOM.to_owned(),
        }
    }

    /// The same, posting to `room`.
    fn posting_to(self, room: String) -> Self {
        Self { room, ..self }
    }

    /// Publishes the next message; a failure is counted (the first one printed), not fatal.
    async fn publish_counted(&mut self) {
        if let Err(e) = self.publish().await {
            if self.errors == 0 {
                eprintln!("  publish: {e:#}");
            }
            self.errors += 1;
        }
    }

    /// Publishes one message to room `room` of `rooms`, as publisher `room` with sequence 1:
    /// in the many-rooms runs each room hears from one publisher once, and one connection
    /// posts to many rooms. A failure is counted, as in [`Publisher::publish_counted`].
    async fn publish_once_to(&mut self, room: usize, rooms: usize) {
        self.index = room;
        self.room = room_of(room, rooms);
        self.seq = 0;
        self.publish_counted().await;
    }

    /// Publishes the next message; errors are answers other than 2xx.
    async fn publish(&mut self) -> Result<()> {
        let text = self.next_text();
        self.send(&text).await
    }

    /// Publishes the next message, sending it again every 50 ms while the server is not
    /// there to take it (a restart), until `give_up`. Returns how many tries failed.
    ///
    /// Sending again cannot store it twice: a stopping server answers every request it
    /// read before it closes the connection, and one it did not read it never stored.
    async fn publish_until_stored(&mut self, give_up: Instant) -> Result<u64> {
        let text = self.next_text();
        let mut failed = 0;
        loop {
            match self.send(&text).await {
                Ok(()) => return Ok(failed),
                Err(e) if Instant::now() >= give_up => return Err(e),
                Err(_) => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The next message's text: its marks, padded to about 100 characters like the other
    /// benches' messages.
    fn next_text(&mut self) -> String {
        self.seq += 1;
        let text = format!("~p{}~s{}~t{}~", self.index, self.seq, now_us());
        format!("{text:x<100}")
    }

    async fn send(&mut self, text: &str) -> Result<()> {
        let room = &self.room;
        let (path, headers, body) = match self.kind {
            Kind::Roomcast => (
                format!("/api/rooms/{room}/messages"),
                format!(
                    "Cookie: {}\r\nContent-Type: application/json\r\n",
                    self.cookie
                ),
                serde_json::json!({ "body": text }).to_string(),
            ),
            Kind::Nchan => (format!("/pub/{room}"), String::new(), text.to_owned()),
        };
        let (status, answer) = self
            .conn
            .request("POST", &path, &headers, body.as_bytes())
            .await?;
        if !(200..300).contains(&status) {
            bail!(
                "publish answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        Ok(())
    }
}

/// Connections a storm is sent over, each with one request in flight: at 1,000 requests a
/// second each has 100 ms for its answer (a reaction is committed before it is answered).
const STORM_CONNS: usize = 100;
/// roomcast users reacting; connection `i` is user `i % STORM_USERS` with emoji
/// `i / STORM_USERS`, so no two connections toggle the same reaction.
const STORM_USERS: usize = 10;
/// The reactions, percent-encoded: 👍 ❤ 😂 🎉 🚀 👀 🔥 ✅ 🙏 💯.
const STORM_EMOJI: [&str; STORM_CONNS / STORM_USERS] = [
    "%F0%9F%91%8D",
    "%E2%9D%A4",
    "%F0%9F%98%82",
    "%F0%9F%8E%89",
    "%F0%9F%9A%80",
    "%F0%9F%91%80",
    "%F0%9F%94%A5",
    "%E2%9C%85",
    "%F0%9F%99%8F",
    "%F0%9F%92%AF",
];

/// Traffic beside the published messages: on roomcast, reactions to one message of the
/// room, each request adding or taking back one (so each is stored and sent as a `reaction`
/// event); on Nchan, which has no reactions, small messages of the same size to the channel.
struct Storm {
    started: Instant,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u64, u64)>>,
}

/// A storm ready to blow: its users registered, its message posted.
struct StormPlan {
    kind: Kind,
    dst: SocketAddr,
    cookies: Vec<String>,
    target: u64,
}

impl StormPlan {
    /// Does what costs the server before the storm, so that none of it is measured.
    async fn prepare(kind: Kind, port: u16) -> Result<Self> {
        let dst = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut users = Vec::new();
        for i in 0..STORM_USERS {
            users.push(match kind {
                Kind::Roomcast => register(port, &format!("bench_react{i}")).await?,
                Kind::Nchan => String::new(),
            });
        }
        let cookies: Vec<String> = (0..STORM_CONNS)
            .map(|i| users[i % STORM_USERS].clone())
            .collect();
        let target = match kind {
            Kind::Roomcast => storm_target(dst, &cookies[0]).await?,
            Kind::Nchan => 0,
        };
        Ok(Self {
            kind,
            dst,
            cookies,
            target,
        })
    }

    /// Starts `per_sec` requests a second, paced, spread over [`STORM_CONNS`] connections.
    fn start(self, per_sec: u32) -> Storm {
        let Self {
            kind,
            dst,
            cookies,
            target,
        } = self;
        let stop = Arc::new(AtomicBool::new(false));
        let every = Duration::from_secs_f64(STORM_CONNS as f64 / f64::from(per_sec.max(1)));
        let t0 = tokio::time::Instant::now();
        let tasks = cookies
            .into_iter()
            .enumerate()
            .map(|(i, cookie)| {
                let stop = stop.clone();
                let headers = format!("Cookie: {cookie}\r\n");
                tokio::spawn(async move {
                    let mut conn = HttpConn::new(dst);
                    // Offsets spread the connections' requests evenly over each period.
                    let start = t0 + every.mul_f64(i as f64 / STORM_CONNS as f64);
                    let (mut sent, mut failed) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep_until(start + every * sent as u32).await;
                        let answer = match kind {
                            Kind::Roomcast => {
                                // Added, then taken back: every request is a change.
                                let method = if sent % 2 == 0 { "PUT" } else { "DELETE" };
                                let emoji = STORM_EMOJI[i / STORM_USERS];
                                let path = format!(
                                    "/api/rooms/{ROOM}/messages/{target}/reactions/{emoji}"
                                );
                                conn.request(method, &path, &headers, b"").await
                            }
                            Kind::Nchan => {
                                // About a `reaction` event's size.
                                let body = format!("{STORM_BODY}{i}~{sent}");
                                let body = format!("{body:x<160}");
                                conn.request("POST", &format!("/pub/{ROOM}"), "", body.as_bytes())
                                    .await
                            }
                        };
                        sent += 1;
                        if !matches!(answer, Ok((200..=299, _))) {
                            failed += 1;
                        }
                    }
                    (sent, failed)
                })
            })
            .collect();
        Storm {
            started: Instant::now(),
            stop,
            tasks,
        }
    }
}

impl Storm {
    /// Stops the storm: what it did.
    async fn stop(self) -> Result<StormDone> {
        self.stop.store(true, Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        let (mut sent, mut failed) = (0, 0);
        for t in self.tasks {
            let (s, f) = t.await?;
            sent += s;
            failed += f;
        }
        Ok(StormDone { sent, failed, secs })
    }
}

/// What a [`Storm`] did.
#[derive(Default)]
struct StormDone {
    sent: u64,
    failed: u64,
    /// How long it ran.
    secs: f64,
}

/// Posts the message a roomcast storm reacts to (its body carries no markers, so readers
/// skip it) and returns its id.
async fn storm_target(dst: SocketAddr, cookie: &str) -> Result<u64> {
    let headers = format!("Cookie: {cookie}\r\nContent-Type: application/json\r\n");
    let body = serde_json::json!({ "body": "the message the storm reacts to" }).to_string();
    let (status, answer) = HttpConn::new(dst)
        .request(
            "POST",
            &format!("/api/rooms/{ROOM}/messages"),
            &headers,
            body.as_bytes(),
        )
        .await?;
    if status != 201 {
        bail!("posting the storm's message: {status}");
    }
    let answer: serde_json::Value = serde_json::from_slice(&answer)?;
    answer["message"]["id"]
        .as_u64()
        .context("the storm's message has no id")
}

/// Waits for every publisher: the messages each one numbered (what readers must see from
/// it), and the failures of all of them.
async fn join_publishers(
    tasks: Vec<tokio::task::JoinHandle<Publisher>>,
) -> Result<(Vec<u64>, u64)> {
    let mut expect = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let p = t.await?;
        expect.push(p.seq);
        errors += p.errors;
    }
    Ok((expect, errors))
}

/// A child process holding streams.
struct Child {
    proc: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Child {
    async fn line(&mut self, prefix: &str) -> Result<String> {
        loop {
            let line = self
                .lines
                .next_line()
                .await?
                .with_context(|| format!("a child exited before {prefix}"))?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.trim().to_owned());
            }
        }
    }
}

/// Waits until every child has opened its streams; how many are open in all.
async fn streams_ready(children: &mut [Child]) -> Result<usize> {
    let mut open = 0;
    for c in children {
        let ready = c.line("READY").await?;
        open += ready
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
    }
    Ok(open)
}

/// The load tool's processes: this one and the children holding the streams.
fn load_pids(children: &[Child]) -> Vec<u32> {
    children
        .iter()
        .filter_map(|c| c.proc.id())
        .chain([std::process::id()])
        .collect()
}

/// How the children's streams listen beyond the defaults: over how many rooms, and whether
/// they come back after a close as `EventSource` does.
#[derive(Clone, Copy, Default)]
struct Spread {
    rooms: usize,
    reconnect: bool,
    /// How long the children wait for the last deliveries (default [`DRAIN_TIMEOUT`]).
    drain: Option<Duration>,
}

/// Starts children holding `streams` in all.
fn spawn_children(
    kind: Kind,
    ports: &[u16],
    cookie: &str,
    streams: usize,
    spread: Spread,
) -> Result<Vec<Child>> {
    let n = streams.div_ceil(STREAMS_PER_CHILD).max(1);
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    let (mut first_addr, mut first_stream) = (0, 0);
    for i in 0..n {
        let mine = streams / n + usize::from(i < streams % n);
        let mut proc = tokio::process::Command::new(&exe)
            .args([
                "--child",
                "--server",
                kind.name(),
                "--ports",
                &ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                "--cookie",
                cookie,
                "--streams",
                &mine.to_string(),
                "--first-addr",
                &first_addr.to_string(),
                "--first-stream",
                &first_stream.to_string(),
                "--rooms",
                &spread.rooms.max(1).to_string(),
            ])
            .args(common::flag("--one-step").then_some("--one-step"))
            .args(spread.reconnect.then_some("--reconnect"))
            .args(
                spread
                    .drain
                    .map(|d| ["--drain-secs".to_owned(), d.as_secs().to_string()])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("re-running this bench as a child")?;
        first_addr += mine.div_ceil(STREAMS_PER_ADDR);
        first_stream += mine;
        let stdin = proc.stdin.take().context("child stdin")?;
        let lines = BufReader::new(proc.stdout.take().context("child stdout")?).lines();
        children.push(Child { proc, stdin, lines });
    }
    Ok(children)
}

/// What the children report, added up.
#[derive(Default, Debug)]
struct Received {
    in_order: u64,
    missing: u64,
    disorder: u64,
    id_errors: u64,
    closed: u64,
    open_errors: u64,
    pings: u64,
    streams_pinged: u64,
    storm: u64,
    resumed: u64,
    reconnected: u64,
    reconnected_last: u64,
    caught_up: u64,
    caught_up_last: u64,
    refused: u64,
    first_rx: u64,
    last_rx: u64,
    max_latency: u64,
    hist: std::collections::BTreeMap<u64, u64>,
}

impl Received {
    fn errors(&self) -> u64 {
        self.missing + self.disorder + self.id_errors + self.closed + self.open_errors
    }

    /// The latency under which `q` of the deliveries arrived, µs (bucket's upper edge).
    fn quantile(&self, q: f64) -> f64 {
        let total: u64 = self.hist.values().sum();
        let want = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (&bucket, &count) in &self.hist {
            seen += count;
            if seen >= want {
                return ((bucket + 1) * HIST_US) as f64;
            }
        }
        0.0
    }
}

/// Tells the children what was published and collects their reports.
async fn collect(children: &mut [Child], expect: &[u64]) -> Result<Received> {
    let line = format!(
        "EXPECT {}\n",
        expect
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for c in children.iter_mut() {
        c.stdin.write_all(line.as_bytes()).await?;
        c.stdin.flush().await?;
    }
    let mut all = Received {
        first_rx: u64::MAX,
        ..Received::default()
    };
    for c in children.iter_mut() {
        let result = c.line("RESULT").await?;
        let f: Vec<u64> = result
            .split_whitespace()
            .map(|v| v.parse().context("RESULT field"))
            .collect::<Result<_>>()?;
        let [
            in_order,
            missing,
            disorder,
            id_errors,
            closed,
            open_errors,
            pings,
            pinged,
            first,
            last,
            max,
            storm,
            resumed,
            reconnected,
            reconnected_last,
            caught_up,
            caught_up_last,
            refused,
        ] = f[..]
        else {
            bail!("a RESULT line with {} fields", f.len());
        };
        all.in_order += in_order;
        all.missing += missing;
        all.disorder += disorder;
        all.id_errors += id_errors;
        all.closed += closed;
        all.open_errors += open_errors;
        all.pings += pings;
        all.streams_pinged += pinged;
        all.storm += storm;
        all.resumed += resumed;
        all.reconnected += reconnected;
        all.reconnected_last = all.reconnected_last.max(reconnected_last);
        all.caught_up += caught_up;
        all.caught_up_last = all.caught_up_last.max(caught_up_last);
        all.refused += refused;
        all.first_rx = all.first_rx.min(first);
        all.last_rx = all.last_rx.max(last);
        all.max_latency = all.max_latency.max(max);
        for pair in c.line("HIST").await?.split_whitespace() {
            let (b, n) = pair.split_once(':').context("HIST pair")?;
            *all.hist.entry(b.parse()?).or_default() += n.parse::<u64>()?;
        }
    }
    for c in children.iter_mut() {
        let _ = c.proc.wait().await;
    }
    Ok(all)
}

/// The figures of one run of one scenario on one server.
#[derive(Default, Clone)]
struct Figures {
    values: Vec<(&'static str, f64)>,
    errors: u64,
}

impl Figures {
    fn put(&mut self, name: &'static str, v: f64) {
        self.values.push((name, v));
    }
}

/// How a fan-out run publishes.
struct Fanout {
    streams: usize,
    messages: usize,
    interval: Duration,
    pub_conns: usize,
    heartbeat_secs: u64,
    /// Hold the streams this long without publishing (the 19,000-streams check).
    hold: Option<Duration>,
    /// Print the server's PSS this often while publishing (the soak).
    sample_every: Option<Duration>,
    /// Storm requests per second beside the published messages (0: none); see [`Storm`].
    storm: u32,
    /// One publisher that waits for each answer and posts `interval` after it (closed
    /// loop), instead of a message leaving every `interval` whatever the answers.
    closed_loop: bool,
}

/// Starts the server, opens the streams, publishes and measures.
async fn run_fanout(kind: Kind, f: &Fanout) -> Result<Figures> {
    let server = Running::start(kind, f.heartbeat_secs, None)?;
    let port = server.port();
    let (cookie, pub_cookie) = bench_users(kind, port).await?;
    // The idle server: started, the two registrations done, nothing streamed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pids = server.pids();
    let (pss_idle, rss_idle) = (common::pss_sum(&pids), common::rss_sum(&pids));

    let perf = Perf::start(&pids, "--perf-connect").await?;
    let cpu_idle = common::cpu_secs_sum(&pids);
    let started = Instant::now();
    let mut children = spawn_children(kind, &[port], &cookie, f.streams, Spread::default())?;
    let open = streams_ready(&mut children).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    let connect_cpu = common::cpu_secs_sum(&pids) - cpu_idle;
    if let Some(perf) = perf {
        perf.stop();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pids = server.pids();
    let (pss_all, rss_all) = (common::pss_sum(&pids), common::rss_sum(&pids));
    eprintln!(
        "  {}: {open} streams open in {connect_secs:.2} s; PSS {:.1} → {:.1} MiB",
        kind.name(),
        common::mib(pss_idle),
        common::mib(pss_all)
    );

    let mut figures = Figures::default();
    let n = f.streams as f64;
    figures.put("connect time, s", connect_secs);
    figures.put(
        "server CPU per connect, µs",
        connect_cpu * 1e6 / open.max(1) as f64,
    );
    figures.put(
        "server PSS with the streams open ÷ streams, KiB",
        pss_all as f64 / n / 1024.0,
    );
    figures.put(
        "growth per stream (RSS delta), KiB",
        rss_all.saturating_sub(rss_idle) as f64 / n / 1024.0,
    );

    if let Some(hold) = f.hold {
        let cpu_before = common::cpu_secs_sum(&pids);
        tokio::time::sleep(hold).await;
        let cpu = common::cpu_secs_sum(&pids) - cpu_before;
        let got = collect(&mut children, &[]).await?;
        let pss_end = common::pss_sum(&server.pids());
        println!(
            "{}: {} streams held {} s (heartbeat every {} s): {} heartbeats, {} of {} streams \
             got at least one; stream errors {} (closed {}, failed to open {}); server PSS {:.1} \
             MiB at the start, {:.1} MiB at the end; server CPU {:.2} s",
            kind.name(),
            f.streams,
            hold.as_secs(),
            f.heartbeat_secs,
            got.pings,
            got.streams_pinged,
            f.streams,
            got.errors(),
            got.closed,
            got.open_errors,
            common::mib(pss_all),
            common::mib(pss_end),
            cpu
        );
        figures.errors = got.errors() + (f.streams as u64 - got.streams_pinged);
        return Ok(figures);
    }

    let mut publishers: Vec<Publisher> = (0..f.pub_conns)
        .map(|index| Publisher::new(kind, index, port, &pub_cookie))
        .collect();
    let sampler = f.sample_every.map(|every| {
        let pids = pids.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(every).await;
                let pss = common::pss_sum(&pids);
                println!(
                    "  soak {:>4.0} s: server PSS {:.1} MiB",
                    t0.elapsed().as_secs_f64(),
                    common::mib(pss)
                );
            }
        })
    });
    let storm_plan = match f.storm {
        0 => None,
        _ => Some(StormPlan::prepare(kind, port).await?),
    };
    let perf = Perf::start(&pids, "--perf").await?;
    let cpu_before = common::cpu_secs_sum(&pids);
    // Counted from here: the CPU the storm costs is in the figures.
    let storm = match storm_plan {
        None => None,
        Some(plan) => {
            let storm = plan.start(f.storm);
            // The messages go out into a storm already blowing.
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some(storm)
        }
    };
    let first_tx = now_us();
    let t0 = tokio::time::Instant::now();
    if f.closed_loop {
        publishers.truncate(1);
    }
    // Open loop: message i leaves at t0 + i·D on publisher i mod C; a busy publisher delays
    // it. Closed loop: one publisher, each message D after the last one's answer.
    let queues: Vec<_> = publishers
        .drain(..)
        .enumerate()
        .map(|(c, mut p)| {
            let (messages, conns, interval) = (f.messages, f.pub_conns, f.interval);
            let closed_loop = f.closed_loop;
            tokio::spawn(async move {
                if closed_loop {
                    for _ in 0..messages {
                        p.publish_counted().await;
                        tokio::time::sleep(interval).await;
                    }
                    return p;
                }
                for i in (c..messages).step_by(conns) {
                    tokio::time::sleep_until(t0 + interval * i as u32).await;
                    p.publish_counted().await;
                }
                p
            })
        })
        .collect();
    let (expect, publish_errors) = join_publishers(queues).await?;
    let storm = match storm {
        Some(storm) => Some(storm.stop().await?),
        None => None,
    };
    let got = collect(&mut children, &expect).await?;
    let cpu = common::cpu_secs_sum(&pids) - cpu_before;
    if let Some(s) = sampler {
        s.abort();
    }
    if let Some(perf) = perf {
        perf.stop();
    }
    let window = got.last_rx.saturating_sub(first_tx) as f64 / 1e6;
    let delivered = got.in_order as f64;
    figures.put("deliveries per second", delivered / window);
    let storm = storm.unwrap_or_default();
    if f.storm > 0 {
        figures.put("storm requests per second", storm.sent as f64 / storm.secs);
        figures.put(
            "storm events delivered per second",
            got.storm as f64 / storm.secs,
        );
    }
    // Every event written counts, the storm's too: it is the server's work.
    figures.put(
        "server CPU per delivery, µs",
        cpu * 1e6 / (delivered + got.storm as f64),
    );
    figures.put("publish → receive p50, ms", got.quantile(0.50) / 1e3);
    figures.put("publish → receive p90, ms", got.quantile(0.90) / 1e3);
    figures.put("publish → receive p99, ms", got.quantile(0.99) / 1e3);
    figures.put("publish → receive max, ms", got.max_latency as f64 / 1e3);
    figures.errors = got.errors() + publish_errors + storm.failed;
    figures.put("errors", figures.errors as f64);
    eprintln!(
        "  {}: {} deliveries (and {} storm events from {} requests, {} failed) in {window:.2} s, server CPU {cpu:.2} s; missing {}, out of order {}, id \
         errors {}, closed {}, failed to open {}, publish errors {publish_errors}, resumed {}",
        kind.name(),
        got.in_order,
        got.storm,
        storm.sent,
        storm.failed,
        got.missing,
        got.disorder,
        got.id_errors,
        got.closed,
        got.open_errors,
        got.resumed
    );
    drop(server);
    Ok(figures)
}

/// `--perf FILE`: samples the server's CPU (perf's software clock, call graphs) over a
/// measured window only, for the profile: the publish window; `--perf-connect FILE` the
/// fan-out's connects.
struct Perf(std::process::Child);

impl Perf {
    /// Starts `perf record` on `pids` when `--perf` names a file.
    async fn start(pids: &[u32], option: &str) -> Result<Option<Self>> {
        let path = common::arg(option, String::new());
        if path.is_empty() {
            return Ok(None);
        }
        let list = pids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let child = std::process::Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "999", "-g", "-o", &path])
            .args(["-p", &list])
            .stdout(Stdio::null())
            .spawn()
            .context("starting perf record")?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Some(Self(child)))
    }

    /// Stops sampling; perf writes its file on SIGINT.
    fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Publishing as fast as `posters` can (one request in flight each) for `secs`, with
/// `subscribers` streams checking every post.
async fn run_publish(kind: Kind, subscribers: usize, posters: usize, secs: f64) -> Result<Figures> {
    // Ten readers of one room taking 20,000+ posts a second: a reader of the load tool that
    // stalls for 40 ms on these shared cores is 1,024 frames behind, and roomcast cuts it
    // (it would resume, but a resume replays at most `history.replay_limit` events, and the
    // rest is paged by the client, which this tool does not do). nginx buffers what a slow
    // Nchan subscriber has not read without such a bound; a deeper queue is the closest
    // setting. What this scenario measures is publishing.
    let server = Running::start(kind, 15, Some(PUBLISH_QUEUE))?;
    let port = server.port();
    let (cookie, pub_cookie) = bench_users(kind, port).await?;
    let mut children = spawn_children(kind, &[port], &cookie, subscribers, Spread::default())?;
    for c in &mut children {
        c.line("READY").await?;
    }
    let pids = server.pids();
    let perf = Perf::start(&pids, "--perf").await?;
    let cpu_before = common::cpu_secs_sum(&pids);
    let load_before = common::cpu_secs_sum(&load_pids(&children));
    let started = Instant::now();
    let stop = started + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..posters)
        .map(|index| {
            let mut p = Publisher::new(kind, index, port, &pub_cookie);
            tokio::spawn(async move {
                while Instant::now() < stop {
                    p.publish_counted().await;
                }
                p
            })
        })
        .collect();
    let (expect, errors) = join_publishers(tasks).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = common::cpu_secs_sum(&pids) - cpu_before;
    let load_cpu = common::cpu_secs_sum(&load_pids(&children)) - load_before;
    if let Some(perf) = perf {
        perf.stop();
    }
    let posts: u64 = expect.iter().sum::<u64>() - errors;
    let got = collect(&mut children, &expect).await?;
    if got.errors() > 0 {
        // Where the deliveries went: a stream cut as a slow reader shows in the server's
        // count; a gap on a stream that stayed open would not.
        let cut = match kind {
            Kind::Roomcast => slow_disconnects(port)
                .await
                .map_or_else(|e| format!("unknown ({e:#})"), |n| n.to_string()),
            Kind::Nchan => "not counted".to_owned(),
        };
        eprintln!(
            "  {}: missing {}, out of order {}, id errors {}, closed {}, failed to open {}, \
             publish errors {errors}; streams the server cut as slow readers: {cut}",
            kind.name(),
            got.missing,
            got.disorder,
            got.id_errors,
            got.closed,
            got.open_errors
        );
    }
    let mut figures = Figures::default();
    figures.put("posts per second", posts as f64 / elapsed);
    figures.put("server CPU per post, µs", cpu * 1e6 / posts as f64);
    figures.put("load tool CPU per post, µs", load_cpu * 1e6 / posts as f64);
    figures.put("publish → receive p99, ms", got.quantile(0.99) / 1e3);
    figures.put(
        "streams cut as slow readers and resumed",
        got.resumed as f64,
    );
    figures.errors = got.errors() + errors;
    figures.put("errors", figures.errors as f64);
    eprintln!(
        "  {}: {posts} posts by {posters} posters in {elapsed:.2} s, {} deliveries, errors {}, \
         streams resumed {}",
        kind.name(),
        got.in_order,
        figures.errors,
        got.resumed
    );
    drop(server);
    Ok(figures)
}

/// roomcast's count of streams it closed because their reader fell behind (`/metrics`).
async fn slow_disconnects(port: u16) -> Result<u64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("roomcast_slow_disconnects_total "))
        .context("no roomcast_slow_disconnects_total in /metrics")?
        .trim()
        .parse()
        .context("roomcast_slow_disconnects_total")
}

/// Before each round: the previous round's files written out (`sync`) and a second's
/// pause, so that no round pays for the disk work or the sockets of the one before it
/// (roomcast's publish round writes some 100 MB of SQLite log).
async fn settle() {
    let _ = tokio::process::Command::new("sync").status().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v);
        // Thousands separators, for reading.
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}") // counts (errors)
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Prints one table: per figure, each server's median and min–max, and the ratio of the
/// medians (roomcast ÷ Nchan).
fn table(title: &str, runs: &[(Kind, Vec<Figures>)]) {
    println!("\n{title}");
    let kinds: Vec<Kind> = runs.iter().map(|(k, _)| *k).collect();
    let mut head = String::from("| |");
    let mut rule = String::from("|---|");
    for k in &kinds {
        head += &format!(" {} median (min–max) |", k.name());
        rule += "---:|";
    }
    if kinds.len() == 2 {
        head += " roomcast / Nchan |";
        rule += "---:|";
    }
    println!("{head}\n{rule}");
    let Some(first) = runs.iter().find_map(|(_, f)| f.first()) else {
        return;
    };
    for (i, (name, _)) in first.values.iter().enumerate() {
        let mut row = format!("| {name} |");
        let mut medians = Vec::new();
        for (_, figs) in runs {
            let v: Vec<f64> = figs
                .iter()
                .filter_map(|f| f.values.get(i))
                .map(|x| x.1)
                .collect();
            let m = median(&v);
            medians.push(m);
            if v.is_empty() {
                row += " no round counted |";
                continue;
            }
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            row += &format!(" {} ({}–{}) |", fmt(m), fmt(lo), fmt(hi));
        }
        if medians.len() == 2 {
            if medians[1] != 0.0 && !medians.iter().any(|m| m.is_nan()) {
                row += &format!(" {:.2}× |", medians[0] / medians[1]);
            } else {
                row += " – |";
            }
        }
        println!("{row}");
    }
    println!(
        "(runs: {})",
        runs.iter()
            .map(|(k, f)| format!("{} {}", k.name(), f.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Runs `rounds` rounds of each server, alternating, and returns the rounds that count and
/// the ones that do not.
///
/// A round in which Nchan lost, repeated or reordered deliveries does not count: a server
/// that stopped delivering did less work, so its rate measures nothing comparable (under
/// saturating publishing Nchan sometimes drops its subscribers and then "publishes" several
/// times faster). Such a round is listed apart and run again, at most `rounds` times in all.
/// Any error from roomcast counts, and fails the bench (`failed`).
async fn clean_rounds<F, Fut>(
    kinds: &[Kind],
    rounds: usize,
    label: &str,
    failed: &mut u64,
    mut run: F,
) -> Result<(Vec<(Kind, Vec<Figures>)>, Vec<(Kind, Vec<Figures>)>)>
where
    F: FnMut(Kind) -> Fut,
    Fut: std::future::Future<Output = Result<Figures>>,
{
    let mut runs: Vec<(Kind, Vec<Figures>)> = kinds.iter().map(|&k| (k, Vec::new())).collect();
    let mut lost: Vec<(Kind, Vec<Figures>)> = kinds.iter().map(|&k| (k, Vec::new())).collect();
    for round in 0..rounds {
        for ((k, figs), (_, lossy)) in runs.iter_mut().zip(&mut lost) {
            loop {
                eprintln!("{label}, round {}, {}", round + 1, k.name());
                settle().await;
                let f = run(*k).await?;
                if f.errors == 0 || *k == Kind::Roomcast {
                    *failed += f.errors;
                    figs.push(f);
                    break;
                }
                eprintln!(
                    "  {}: {} deliveries lost or out of order; the round does not count",
                    k.name(),
                    f.errors
                );
                lossy.push(f);
                if lossy.len() > rounds {
                    break;
                }
            }
        }
    }
    lost.retain(|(_, figs)| !figs.is_empty());
    Ok((runs, lost))
}

/// Lists the rounds that did not count (see [`clean_rounds`]), if any.
fn lost_table(lost: &[(Kind, Vec<Figures>)]) {
    for (k, figs) in lost {
        table(
            &format!(
                "{}: rounds that lost deliveries, not counted above",
                k.name()
            ),
            &[(*k, figs.clone())],
        );
    }
}

async fn parent_main() -> Result<()> {
    let quick = common::quick();
    let side_by_side = common::flag("--side-by-side");
    let kinds: Vec<Kind> = if side_by_side {
        vec![Kind::Roomcast, Kind::Nchan]
    } else {
        vec![Kind::parse(&common::arg(
            "--server",
            "roomcast".to_owned(),
        ))?]
    };
    if quick && kinds.contains(&Kind::Nchan) {
        bail!("--quick runs roomcast only (CI has no nginx)");
    }
    let rounds = common::arg("--rounds", if side_by_side { 3usize } else { 1 });
    // CI's quick run takes every scenario, so none of them rots unseen.
    let scenario = common::arg("--scenario", if quick { "all" } else { "both" }.to_owned());
    let with = |name: &str| match scenario.as_str() {
        "both" => matches!(name, "fanout" | "publish"),
        "all" => true,
        one => one == name || (one == "storm" && name == "fanout"),
    };
    const SCENARIOS: [&str; 8] = [
        "fanout", "closed", "storm", "publish", "restart", "nodes", "both", "all",
    ];
    if !SCENARIOS.contains(&scenario.as_str()) {
        bail!("--scenario {scenario}: one of {}", SCENARIOS.join(", "));
    }
    let (with_fanout, with_storm, with_publish) = (with("fanout"), with("storm"), with("publish"));
    let hold = common::arg("--hold", 0u64);
    let soak = common::arg("--soak", 0u64);
    let interval = Duration::from_millis(common::arg(
        "--interval-ms",
        if soak > 0 { 100u64 } else { 2 },
    ));
    let mut fanout = Fanout {
        streams: common::arg("--streams", if quick { 100usize } else { 5000 }),
        messages: common::arg("--messages", if quick { 20usize } else { 200 }),
        interval,
        pub_conns: common::arg("--pub-conns", 4usize),
        heartbeat_secs: common::arg("--heartbeat", if hold > 0 { 5u64 } else { 15 }),
        hold: (hold > 0).then(|| Duration::from_secs(hold)),
        sample_every: None,
        storm: 0,
        closed_loop: false,
    };
    if soak > 0 {
        fanout.messages =
            (Duration::from_secs(soak * 60).as_millis() / interval.as_millis().max(1)) as usize;
        fanout.sample_every = Some(Duration::from_secs(60));
    }
    let mut failed = 0u64;
    if hold > 0 || soak > 0 {
        for &k in &kinds {
            let f = run_fanout(k, &fanout).await?;
            failed += f.errors;
            if soak > 0 {
                table(
                    &format!(
                        "soak: {} streams, a message every {} ms for {soak} min",
                        fanout.streams,
                        interval.as_millis()
                    ),
                    &[(k, vec![f])],
                );
            }
        }
    } else {
        let title = format!(
            "fan-out: {} subscribers in one room, {} messages {} ms apart over {} publishing \
             connections, 2 workers each",
            fanout.streams,
            fanout.messages,
            interval.as_millis(),
            fanout.pub_conns
        );
        if with_fanout {
            let (runs, lost) = clean_rounds(&kinds, rounds, "fan-out", &mut failed, |k| {
                run_fanout(k, &fanout)
            })
            .await?;
            table(&title, &runs);
            lost_table(&lost);
        }
        if with("closed") {
            let closed = Fanout {
                closed_loop: true,
                ..fanout
            };
            let (runs, lost) = clean_rounds(&kinds, rounds, "closed loop", &mut failed, |k| {
                run_fanout(k, &closed)
            })
            .await?;
            table(
                &format!(
                    "fan-out, closed loop: {} subscribers in one room, {} messages from one \
                     publisher, each {} ms after the last one's answer, 2 workers each",
                    closed.streams,
                    closed.messages,
                    interval.as_millis()
                ),
                &runs,
            );
            lost_table(&lost);
        }
        if with_storm {
            let storm = Fanout {
                storm: common::arg("--storm-rate", 1000u32),
                ..fanout
            };
            let (runs, lost) =
                clean_rounds(&kinds, rounds, "fan-out in a storm", &mut failed, |k| {
                    run_fanout(k, &storm)
                })
                .await?;
            table(
                &format!(
                    "{title}, beside a storm of {} requests/s (roomcast: reactions to one \
                     message, each an event to every subscriber; Nchan: messages of the same \
                     size)",
                    storm.storm
                ),
                &runs,
            );
            lost_table(&lost);
        }
        if with_publish {
            let subscribers = common::arg("--subscribers", 10usize);
            let posters = common::arg("--posters", if quick { 8usize } else { 64 });
            let secs = common::arg("--secs", if quick { 1.0f64 } else { 10.0 });
            let (runs, lost) = clean_rounds(&kinds, rounds, "publish", &mut failed, |k| {
                run_publish(k, subscribers, posters, secs)
            })
            .await?;
            table(
                &format!(
                    "publishing: {subscribers} subscribers, {posters} posters saturating (one \
                     request in flight each) for {secs} s"
                ),
                &runs,
            );
            lost_table(&lost);
        }
        if with("restart") {
            run_restarts(&kinds, quick, rounds, &mut failed).await?;
        }
        if with("nodes") {
            run_many_nodes(quick, rounds, &mut failed).await?;
        }
    }
    if failed > 0 {
        bail!(
            "{failed} errors: a delivery was missing, repeated, out of order, or a request failed"
        );
    }
    Ok(())
}

/// The restart scenario, `rounds` times on each server, alternating. Only roomcast's errors
/// fail the bench: Nchan keeps its messages in memory, and what a restart loses of them is
/// the figure.
async fn run_restarts(kinds: &[Kind], quick: bool, rounds: usize, failed: &mut u64) -> Result<()> {
    let r = restart::Restart {
        streams: common::arg("--streams", if quick { 100usize } else { 18_000 }),
        rooms: common::arg("--rooms", if quick { 10usize } else { 100 }),
        per_sec: common::arg("--rate", if quick { 50.0 } else { 100.0 }),
        before: Duration::from_secs(common::arg("--before", if quick { 1u64 } else { 5 })),
        after: Duration::from_secs(common::arg("--after", if quick { 5u64 } else { 25 })),
    };
    let mut runs: Vec<(Kind, Vec<Figures>)> = kinds.iter().map(|&k| (k, Vec::new())).collect();
    for round in 1..=rounds {
        for (kind, figures) in &mut runs {
            eprintln!("restart, round {round}, {}:", kind.name());
            settle().await;
            let f = restart::run_restart(*kind, &r).await?;
            if *kind == Kind::Roomcast {
                *failed += f.errors;
            }
            figures.push(f);
        }
    }
    table(
        &format!(
            "restart: {} streams over {} rooms, {} messages/s, SIGTERM and start again",
            r.streams, r.rooms, r.per_sec
        ),
        &runs,
    );
    Ok(())
}

/// The many-nodes scenario (roomcast only), one room and then many, `rounds` times each.
async fn run_many_nodes(quick: bool, rounds: usize, failed: &mut u64) -> Result<()> {
    let nodes = common::arg("--nodes", if quick { 2usize } else { 6 });
    let one_room = nodes::Nodes {
        nodes,
        streams: common::arg("--streams", if quick { 100usize } else { 100_000 }),
        rooms: 1,
        messages: common::arg("--messages", if quick { 10usize } else { 100 }),
        interval: Duration::from_millis(common::arg("--interval-ms", 10u64)),
        pub_conns: common::arg("--pub-conns", nodes),
        workers: common::arg("--node-workers", 1usize),
    };
    let many_rooms = nodes::Nodes {
        rooms: common::arg("--rooms", if quick { 10usize } else { 10_000 }),
        interval: Duration::from_micros(common::arg("--post-every-us", 1000u64)),
        ..one_room
    };
    let admin = common::bench_postgres();
    // `--rooms 1` (or 0): the one-room shape alone.
    let shapes = if many_rooms.rooms > 1 {
        vec![&one_room, &many_rooms]
    } else {
        vec![&one_room]
    };
    for shape in shapes {
        let mut runs = Vec::new();
        for round in 1..=rounds {
            eprintln!("{}, round {round}:", shape.title());
            settle().await;
            let f = nodes::run_nodes(&admin, shape).await?;
            *failed += f.errors;
            runs.push(f);
        }
        table(&shape.title(), &[(Kind::Roomcast, runs)]);
    }
    Ok(())
}

#[path = "sidebyside/nodes.rs"]
mod nodes;
#[path = "sidebyside/restart.rs"]
mod restart;

fn main() {
    // reqwest builds its TLS setup with every client: it needs the rustls provider.
    roomcast::tls::install_provider();
    let result = if common::flag("--child") {
        let args = (|| -> Result<ChildArgs> {
            Ok(ChildArgs {
                kind: Kind::parse(&common::arg("--server", String::new()))?,
                ports: common::arg("--ports", String::new())
                    .split(',')
                    .map(|p| p.parse().context("--ports: port numbers, comma-separated"))
                    .collect::<Result<_>>()?,
                cookie: common::arg("--cookie", String::new()),
                streams: common::arg("--streams", 0usize),
                first_addr: common::arg("--first-addr", 0usize),
                one_step: common::flag("--one-step"),
                rooms: common::arg("--rooms", 1usize),
                first_stream: common::arg("--first-stream", 0usize),
                reconnect: common::flag("--reconnect"),
                drain: Duration::from_secs(common::arg("--drain-secs", DRAIN_TIMEOUT.as_secs())),
            })
        })();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(child_main(args?)))
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(parent_main()))
    };
    if let Err(e) = result {
        eprintln!("sidebyside: {e:#}");
        std::process::exit(1);
    }
}
