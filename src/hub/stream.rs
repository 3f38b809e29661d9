//! The body of one SSE response: the `connected` frame, then the connection's queue, with
//! replays spliced in where their marker sits and `: ping` after a silence.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::{
    sync::{mpsc, oneshot},
    time::{Instant, Sleep},
};

use super::{Connection, Hub, Outbound, ReplayFrame, frame};

/// Streams one connection's frames. Dropping it (the client went away, or the server closed
/// the connection) removes the connection from the hub.
pub struct ConnectionStream {
    hub: Arc<Hub>,
    conn: Arc<Connection>,
    rx: mpsc::Receiver<Outbound>,
    first: Option<Bytes>,
    replay: Option<oneshot::Receiver<Vec<ReplayFrame>>>,
    /// Opened with `Last-Event-ID` and not yet replayed: live broadcasts are dropped, as
    /// the coming replay carries them in order.
    resuming: bool,
    heartbeat: Duration,
    /// Fires at `last_write + heartbeat`; re-armed lazily rather than on every write.
    ping_at: Pin<Box<Sleep>>,
    last_write: Instant,
}

impl ConnectionStream {
    pub(super) fn new(
        hub: Arc<Hub>,
        conn: Arc<Connection>,
        rx: mpsc::Receiver<Outbound>,
        heartbeat: Duration,
        resuming: bool,
    ) -> Self {
        let first = frame::connected(&conn.id, heartbeat.as_secs());
        let now = Instant::now();
        Self {
            hub,
            conn,
            rx,
            first: Some(first),
            replay: None,
            resuming,
            heartbeat,
            ping_at: Box::pin(tokio::time::sleep_until(now + heartbeat)),
            last_write: now,
        }
    }

    /// The connection this stream serves.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    fn wrote(&mut self, bytes: Bytes) -> Poll<Option<Result<Bytes, Infallible>>> {
        self.last_write = Instant::now();
        Poll::Ready(Some(Ok(bytes)))
    }

    /// All replayed frames as one write.
    fn splice_replay(frames: Vec<ReplayFrame>) -> Option<Bytes> {
        let mut buf = BytesMut::with_capacity(frames.iter().map(|f| f.bytes.len()).sum());
        for f in frames {
            buf.extend_from_slice(&f.bytes);
        }
        (!buf.is_empty()).then(|| buf.freeze())
    }

    fn poll_ping(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Infallible>>> {
        loop {
            if self.ping_at.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last_write + self.heartbeat;
            if Instant::now() >= due {
                let next = Instant::now() + self.heartbeat;
                self.ping_at.as_mut().reset(next);
                return self.wrote(frame::PING);
            }
            self.ping_at.as_mut().reset(due);
        }
    }
}

impl Stream for ConnectionStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(first) = this.first.take() {
            return this.wrote(first);
        }
        loop {
            if this.conn.is_closed() {
                return Poll::Ready(None);
            }
            if let Some(replay) = this.replay.as_mut() {
                match Pin::new(replay).poll(cx) {
                    Poll::Pending => return this.poll_ping(cx),
                    Poll::Ready(result) => {
                        this.replay = None;
                        this.resuming = false;
                        // A dropped sender means the subscribe call failed; it closes the
                        // connection, so the client resumes afresh.
                        if let Some(bytes) = result.ok().and_then(Self::splice_replay) {
                            return this.wrote(bytes);
                        }
                        continue;
                    }
                }
            }
            return match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Outbound::Frame(bytes))) => this.wrote(bytes),
                Poll::Ready(Some(Outbound::Broadcast(_))) if this.resuming => continue,
                Poll::Ready(Some(Outbound::Broadcast(bytes))) => this.wrote(bytes),
                Poll::Ready(Some(Outbound::Replay(rx))) => {
                    this.replay = Some(rx);
                    continue;
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => this.poll_ping(cx),
            };
        }
    }
}

impl Drop for ConnectionStream {
    fn drop(&mut self) {
        self.hub.remove(self.conn.id);
    }
}
