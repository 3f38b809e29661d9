//! The writer of an SSE stream once actix has sent the response head.
//!
//! actix-http serves a connection with an HTTP/1 dispatcher: a task holding read and write
//! buffers, three timers, the request and the service's state, and it copies every body
//! chunk into its write buffer. An SSE stream reads one request and then only writes, for
//! hours, so all of that is dead weight kept per stream. Our patch to actix-http
//! (`vendor/actix-http`, `Handoff`) lets a response take the socket once its head is
//! flushed; the dispatcher then ends. What stays per stream is a [`StreamWriter`] task: the
//! socket and the hub's [`ConnectionStream`].
//!
//! Each time the stream is woken, everything queued for it goes out in one vectored write,
//! framed as one HTTP chunk, without copying the frames (they are the hub's shared bytes).
//! The writer also watches the socket's read side, so a client that goes away is noticed at
//! once rather than at the next heartbeat. A client has nothing more to send on this
//! connection: anything it sends ends the stream.
//!
//! Writers are no longer actix connections, so actix's graceful stop does not wait for them:
//! [`LiveWriters`] counts them, and shutdown waits for every one to write its last chunk.
//!
//! When the response is not served by the HTTP/1 dispatcher (HTTP/2, a `HEAD`, actix's test
//! harness), the hand-off is never called and the same stream is sent as an ordinary body.

use std::{
    cell::RefCell,
    convert::Infallible,
    future::Future,
    io::{self, IoSlice, Write as _},
    pin::Pin,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use actix_http::{HandedOff, Handoff, HandoffIo};
use bytes::Bytes;
use futures_util::Stream;
use tokio::{io::ReadBuf, sync::Notify};

use crate::hub::ConnectionStream;

/// Most frames written in one syscall; more queued go out in the next one.
const MAX_BATCH: usize = 64;

/// Stop adding frames to a batch past this many bytes.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// The slices of one write: the response head (the first write only), the chunk's head, the
/// frames, its tail, the terminating chunk.
const SLICES: usize = MAX_BATCH + 4;

/// The terminating chunk of a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The stream writers alive; cheap to clone.
#[derive(Clone, Default)]
pub struct LiveWriters(Arc<Live>);

#[derive(Default)]
struct Live {
    count: AtomicUsize,
    none_left: Notify,
}

/// Held by a running writer.
struct LiveGuard(Arc<Live>);

impl LiveWriters {
    fn enter(&self) -> LiveGuard {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        LiveGuard(Arc::clone(&self.0))
    }

    /// Writers running now.
    pub fn count(&self) -> usize {
        self.0.count.load(Ordering::Acquire)
    }

    /// Returns once no writer is running.
    pub async fn all_ended(&self) {
        loop {
            // Created before the check, so a last writer ending in between still wakes it.
            let none_left = self.0.none_left.notified();
            if self.count() == 0 {
                return;
            }
            none_left.await;
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

/// The body and the hand-off of one SSE response: whichever runs first gets the stream
/// (the hand-off when actix-http's HTTP/1 dispatcher serves the response, else the body).
pub fn body_and_handoff(stream: ConnectionStream, live: &LiveWriters) -> (FallbackBody, Handoff) {
    let slot = Rc::new(RefCell::new(Some(stream)));
    let body = FallbackBody {
        slot: Rc::clone(&slot),
        stream: None,
    };
    let live = live.clone();
    let handoff = Handoff::new(move |handed| {
        if let Some(stream) = slot.borrow_mut().take() {
            actix_web::rt::spawn(StreamWriter::new(handed, stream, live.enter()));
        }
    });
    (body, handoff)
}

/// The response body, used only when the socket is not handed off.
pub struct FallbackBody {
    slot: Rc<RefCell<Option<ConnectionStream>>>,
    stream: Option<ConnectionStream>,
}

impl Stream for FallbackBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.stream.is_none() {
            this.stream = this.slot.borrow_mut().take();
        }
        match this.stream.as_mut() {
            Some(stream) => Pin::new(stream).poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}

/// One SSE connection after the hand-off: its socket and its frames. Runs until the client
/// goes away, a write fails, or the hub ends the stream.
pub struct StreamWriter {
    io: Box<dyn HandoffIo>,
    stream: ConnectionStream,
    /// Whether the head said `Transfer-Encoding: chunked` (else the body runs to the close).
    chunked: bool,
    /// The response head, which actix encoded and left to the first write: with the first
    /// frames (the `connected` event) it costs the client one segment and one wake-up.
    head: Option<Bytes>,
    /// What the socket has not taken yet of the last batch (only when its buffer filled).
    unsent: Option<Box<Unsent>>,
    /// The stream ended; the last batch (with the terminating chunk) is written or unsent.
    ended: bool,
    _live: LiveGuard,
}

/// The unwritten rest of a batch.
struct Unsent {
    parts: Vec<Bytes>,
    /// Bytes of `parts[0]` already written.
    offset: usize,
}

impl StreamWriter {
    fn new(handed: HandedOff, stream: ConnectionStream, live: LiveGuard) -> Self {
        Self {
            io: handed.io,
            stream,
            chunked: handed.chunked,
            head: Some(handed.unwritten.freeze()).filter(|head| !head.is_empty()),
            unsent: None,
            ended: false,
            _live: live,
        }
    }

    /// Whether the client closed its side, reset, or sent anything at all (it has nothing
    /// to say on this connection, and is not read further).
    fn peer_gone(&mut self, cx: &mut Context<'_>) -> bool {
        let mut scratch = [0u8; 64];
        let mut buf = ReadBuf::new(&mut scratch);
        !Pin::new(&mut *self.io).poll_read(cx, &mut buf).is_pending()
    }

    /// Writes what is left of the last batch. `Ready(Ok)` once all of it is out.
    fn poll_unsent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(unsent) = self.unsent.as_mut() {
            let mut slices = [IoSlice::new(&[]); SLICES];
            let count = unsent.parts.len().min(slices.len());
            for (slot, part) in slices.iter_mut().zip(&unsent.parts) {
                *slot = IoSlice::new(part);
            }
            slices[0] = IoSlice::new(&unsent.parts[0][unsent.offset..]);
            let written = std::task::ready!(
                Pin::new(&mut *self.io).poll_write_vectored(cx, &slices[..count])
            )?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            unsent.advance(written);
            if unsent.parts.is_empty() {
                self.unsent = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes every frame queued now (up to a batch) and writes them as one chunk, after the
    /// response head the first time and followed by the terminating chunk when the stream
    /// ended. `false` when there was nothing to write.
    fn write_batch(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let mut frames: [Bytes; MAX_BATCH] = [const { Bytes::new() }; MAX_BATCH];
        let mut count = 0;
        let mut len = 0;
        while count < MAX_BATCH && len < MAX_BATCH_BYTES {
            match Pin::new(&mut self.stream).poll_next(cx) {
                Poll::Ready(Some(Ok(frame))) if frame.is_empty() => {}
                Poll::Ready(Some(Ok(frame))) => {
                    len += frame.len();
                    frames[count] = frame;
                    count += 1;
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        let framed = self.chunked && count > 0;
        let mut head = [0u8; 20];
        let head_len = if framed {
            let mut cursor = io::Cursor::new(&mut head[..]);
            write!(cursor, "{len:X}\r\n")?;
            usize::try_from(cursor.position()).unwrap_or(0)
        } else {
            0
        };
        let tail: &'static [u8] = if framed { b"\r\n" } else { b"" };
        // The client learns the response is complete, then the close.
        let last: &'static [u8] = if self.ended && self.chunked {
            LAST_CHUNK
        } else {
            b""
        };
        let response_head = self.head.take().unwrap_or_default();
        let total = response_head.len() + head_len + len + tail.len() + last.len();
        if total == 0 {
            return Ok(false);
        }
        let mut slices = [IoSlice::new(&[]); SLICES];
        slices[0] = IoSlice::new(&response_head);
        slices[1] = IoSlice::new(&head[..head_len]);
        for (slot, frame) in slices[2..].iter_mut().zip(&frames[..count]) {
            *slot = IoSlice::new(frame);
        }
        slices[count + 2] = IoSlice::new(tail);
        slices[count + 3] = IoSlice::new(last);
        let written = match Pin::new(&mut *self.io).poll_write_vectored(cx, &slices[..count + 4]) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => 0,
        };
        if written < total {
            // The socket's buffer is full: keep the rest, in order, for when it drains.
            let mut parts = Vec::with_capacity(count + 4);
            parts.push(response_head);
            parts.push(Bytes::copy_from_slice(&head[..head_len]));
            parts.extend(frames.into_iter().take(count));
            parts.push(Bytes::from_static(tail));
            parts.push(Bytes::from_static(last));
            let mut unsent = Unsent { parts, offset: 0 };
            unsent.advance(written);
            self.unsent = Some(Box::new(unsent));
        }
        Ok(true)
    }
}

impl Unsent {
    /// Drops `n` written bytes from the front. A part is gone once all of it is written,
    /// so an empty part (a zero-length head or tail) goes with the bytes before it.
    fn advance(&mut self, n: usize) {
        let mut n = n + self.offset;
        let done = self
            .parts
            .iter()
            .take_while(|part| {
                let whole = n >= part.len();
                if whole {
                    n -= part.len();
                }
                whole
            })
            .count();
        self.parts.drain(..done);
        self.offset = n;
    }
}

impl Future for StreamWriter {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.peer_gone(cx) {
            return Poll::Ready(());
        }
        loop {
            match this.poll_unsent(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                // The socket takes nothing. Once the hub has let the connection go (cut for
                // being slow, logout, shutdown), its socket must not outlive it.
                Poll::Pending => {
                    let conn = this.stream.connection();
                    conn.wake_on_close(cx.waker());
                    return if conn.is_closed() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    };
                }
            }
            if this.ended {
                return Poll::Ready(());
            }
            match this.write_batch(cx) {
                Ok(true) => {}
                Ok(false) if this.ended => return Poll::Ready(()),
                Ok(false) => return Poll::Pending,
                Err(_) => return Poll::Ready(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use tokio::io::AsyncReadExt;
    use uuid::Uuid;

    use super::*;
    use crate::{
        domain::UserRef,
        hub::{Hub, HubSettings},
    };

    fn hub() -> Arc<Hub> {
        Arc::new(Hub::new(HubSettings {
            queue_capacity: 8,
            heartbeat: Duration::from_secs(3600),
            replay_limit: 100,
            replay_bytes: 1 << 20,
            streams_per_user: 10,
            streams_per_session: 10,
            max_streams: 10,
            rooms_per_user: 10,
            presence_coalesce: Duration::ZERO,
            reconnect_rate: 0,
            replays_at_once: 4,
        }))
    }

    /// A writer for a new stream of `hub` over an in-memory socket of `capacity` bytes, and
    /// the client's end.
    fn writer(
        hub: &Arc<Hub>,
        chunked: bool,
        capacity: usize,
    ) -> (StreamWriter, tokio::io::DuplexStream) {
        let (server, client) = tokio::io::duplex(capacity);
        (writer_over(hub, chunked, Box::new(server), b""), client)
    }

    /// A writer for a new stream of `hub` over `io`, with `head` left unwritten by actix.
    fn writer_over(
        hub: &Arc<Hub>,
        chunked: bool,
        io: Box<dyn HandoffIo>,
        head: &[u8],
    ) -> StreamWriter {
        let user = UserRef {
            id: Uuid::new_v4(),
            username: Some(Arc::from("alice")),
        };
        let stream = hub.connect(user, Uuid::new_v4(), None).expect("a stream");
        let handed = HandedOff {
            io,
            chunked,
            read_buf: Default::default(),
            unwritten: head.into(),
        };
        StreamWriter::new(handed, stream, LiveWriters::default().enter())
    }

    /// A socket that counts the writes it takes.
    struct CountingIo {
        inner: tokio::io::DuplexStream,
        writes: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl tokio::io::AsyncRead for CountingIo {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl tokio::io::AsyncWrite for CountingIo {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Runs the writer until the hub closes its stream, reading as a client does.
    async fn run_and_close(
        hub: &Arc<Hub>,
        writer: StreamWriter,
        mut client: tokio::io::DuplexStream,
    ) -> String {
        let reader = async {
            // Everything written so far (the `connected` frame) is read before the close:
            // a writer the client does not keep up with is let go without its last chunk.
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while !got.ends_with(b"\n\n\r\n") && !got.ends_with(b"\n\n") {
                let n = client.read(&mut buf).await.expect("read");
                assert!(n > 0, "ended before the first frame: {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            hub.close_all();
            client.read_to_end(&mut got).await.expect("read");
            got
        };
        let ((), got) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(writer, reader)
        })
        .await
        .expect("the writer ended and closed the socket");
        String::from_utf8(got).expect("utf-8")
    }

    /// The chunk sizes and bodies of `raw`, then what follows the last chunk.
    fn dechunk(raw: &str) -> (Vec<String>, String) {
        let mut chunks = Vec::new();
        let mut rest = raw;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size, 16).expect("hex chunk size");
            if size == 0 {
                return (chunks, after.to_owned());
            }
            chunks.push(after[..size].to_owned());
            assert_eq!(
                &after[size..size + 2],
                "\r\n",
                "a chunk ends with CRLF: {raw:?}"
            );
            rest = &after[size + 2..];
        }
        panic!("no last chunk in {raw:?}");
    }

    #[tokio::test]
    async fn a_chunked_stream_frames_each_write_and_ends_with_the_last_chunk() {
        let hub = hub();
        let (writer, client) = writer(&hub, true, 4096);
        let got = run_and_close(&hub, writer, client).await;
        let (chunks, after) = dechunk(&got);
        assert_eq!(chunks.len(), 1, "one write so far: {got:?}");
        assert!(
            chunks[0].contains("event: connected"),
            "first chunk: {got:?}"
        );
        assert_eq!(after, "\r\n", "nothing after the last chunk: {got:?}");
    }

    #[tokio::test]
    async fn the_response_head_and_the_first_frame_leave_in_one_write() {
        let hub = hub();
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        let (server, client) = tokio::io::duplex(4096);
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let io = CountingIo {
            inner: server,
            writes: writes.clone(),
        };
        let writer = writer_over(&hub, true, Box::new(io), head);
        let got = run_and_close(&hub, writer, client).await;
        let body = got
            .strip_prefix(std::str::from_utf8(head).expect("ascii"))
            .unwrap_or_else(|| panic!("the head comes first: {got:?}"));
        let (chunks, _) = dechunk(body);
        assert!(
            chunks[0].contains("event: connected"),
            "the first chunk follows the head: {got:?}"
        );
        // The head with the `connected` frame, then the last chunk at the close.
        assert_eq!(
            writes.load(Ordering::SeqCst),
            2,
            "the head and the first frame should share one write"
        );
    }

    #[tokio::test]
    async fn a_socket_that_takes_a_few_bytes_at_a_time_gets_everything_in_order() {
        let hub = hub();
        let (roomy, roomy_client) = writer(&hub, true, 4096);
        let expected = run_and_close(&hub, roomy, roomy_client).await;
        // Seven bytes at a time: every part of the batch is written in pieces. (A hub of
        // its own: `close_all` closes streams opened after it too.)
        let hub = self::hub();
        let (tight, tight_client) = writer(&hub, true, 7);
        let got = run_and_close(&hub, tight, tight_client).await;
        let (chunks, _) = dechunk(&got);
        let (expected_chunks, _) = dechunk(&expected);
        assert_eq!(chunks.len(), 1, "still one chunk: {got:?}");
        assert_eq!(
            chunks[0].len(),
            expected_chunks[0].len(),
            "the same frame through a tight socket: {got:?} vs {expected:?}"
        );
        assert!(
            chunks[0].contains("event: connected"),
            "first chunk: {got:?}"
        );
    }

    #[tokio::test]
    async fn a_client_that_goes_away_ends_the_writer_and_its_stream() {
        let hub = hub();
        let (writer, client) = writer(&hub, true, 4096);
        let client_leaves = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(hub.stats().connections, 1, "the stream is open");
            drop(client);
        };
        tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(writer, client_leaves)
        })
        .await
        .expect("the writer noticed the close");
        assert_eq!(hub.stats().connections, 0, "the hub forgot the stream");
    }

    #[tokio::test]
    async fn a_writer_stuck_on_a_full_socket_lets_it_go_when_the_hub_closes_the_stream() {
        let hub = hub();
        // Smaller than the `connected` frame, and never read: the writer is stuck at once.
        let (writer, _client) = writer(&hub, true, 16);
        let close = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            hub.close_all();
        };
        tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(writer, close)
        })
        .await
        .expect("the writer ended instead of holding the socket of a closed stream");
    }

    #[tokio::test]
    async fn a_client_that_sends_anything_ends_the_writer() {
        let hub = hub();
        let (writer, mut client) = writer(&hub, true, 4096);
        let talk = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n\r\n")
                .await
                .expect("write");
            client
        };
        let ((), _client) =
            tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(writer, talk) })
                .await
                .expect("the writer ended when the client spoke");
        assert_eq!(hub.stats().connections, 0, "the hub forgot the stream");
    }

    #[tokio::test]
    async fn live_writers_are_counted_until_they_end() {
        let live = LiveWriters::default();
        let guard = live.enter();
        assert_eq!(live.count(), 1, "one writer running");
        let ended = live.all_ended();
        drop(guard);
        tokio::time::timeout(Duration::from_secs(1), ended)
            .await
            .expect("all_ended returns once the last writer ends");
        assert_eq!(live.count(), 0, "none left");
    }

    #[tokio::test]
    async fn an_unchunked_stream_writes_bare_frames_until_the_close() {
        let hub = hub();
        let (writer, client) = writer(&hub, false, 4096);
        let got = run_and_close(&hub, writer, client).await;
        assert!(got.starts_with("retry:"), "bare frames: {got:?}");
        assert!(!got.contains('\r'), "no chunk framing: {got:?}");
    }

    fn unsent(parts: &[&'static [u8]]) -> Unsent {
        Unsent {
            parts: parts.iter().map(|p| Bytes::from_static(p)).collect(),
            offset: 0,
        }
    }

    fn rest(u: &Unsent) -> Vec<u8> {
        let mut out = u
            .parts
            .first()
            .map_or(Vec::new(), |p| p[u.offset..].to_vec());
        for p in u.parts.iter().skip(1) {
            out.extend_from_slice(p);
        }
        out
    }

    #[test]
    fn advancing_within_the_first_part_keeps_an_offset() {
        let mut u = unsent(&[b"5\r\n", b"hello", b"\r\n"]);
        u.advance(1);
        assert_eq!(
            rest(&u),
            b"\r\nhello\r\n",
            "one byte of the chunk head written"
        );
        u.advance(1);
        assert_eq!(
            rest(&u),
            b"\nhello\r\n",
            "two bytes of the chunk head written"
        );
    }

    #[test]
    fn advancing_across_parts_drops_the_written_ones() {
        let mut u = unsent(&[b"5\r\n", b"hello", b"\r\n"]);
        u.advance(5);
        assert_eq!(
            rest(&u),
            b"llo\r\n",
            "the head and two bytes of the frame written"
        );
        u.advance(3);
        assert_eq!(rest(&u), b"\r\n", "the whole frame written");
        u.advance(2);
        assert!(u.parts.is_empty(), "everything written: {:?}", rest(&u));
    }

    #[test]
    fn empty_parts_do_not_hold_the_batch_open() {
        let mut u = unsent(&[b"", b"abc", b""]);
        u.advance(3);
        assert!(u.parts.is_empty(), "only empty parts left: {:?}", u.parts);
    }
}
