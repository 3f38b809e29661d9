//! The body of one SSE response: the `connected` frame, then the connection's queue, with
//! replays spliced in where their marker sits and `: ping` after a silence.
//!
//! Broadcasts that arrive before the stream's first subscribe are held back and merged by
//! id into that subscribe's replay, so a resuming client sees one ascending sequence (a
//! broadcast is never written ahead of older room messages it is about to be replayed). A
//! first subscribe with nothing to replay, or [`HOLD_GRACE`] without one, releases them as
//! they are.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::{
    sync::oneshot,
    time::{Instant, Sleep},
};

use super::{
    Connection, Hub, HubSettings, frame,
    queue::{self, Outbound, ReplayBatch, ReplayFrame},
};
use crate::wake::{GroupWaker, WakeGroup};

/// How long a new stream holds broadcasts while waiting for its first subscribe. Browsers
/// subscribe right after `connected`, well within it.
pub const HOLD_GRACE: Duration = Duration::from_secs(1);

/// Streams one connection's frames. Dropping it (the client went away, or the server closed
/// the connection) removes the connection from the hub.
pub struct ConnectionStream {
    hub: Arc<Hub>,
    conn: Arc<Connection>,
    rx: queue::Receiver,
    first: Option<Bytes>,
    replay: Option<oneshot::Receiver<ReplayBatch>>,
    /// Broadcasts held until the first subscribe's replay (`None` once released).
    held: Option<Vec<(i64, Bytes)>>,
    /// Most broadcasts held; past it the client is as slow as one with a full queue.
    hold_cap: usize,
    /// When held broadcasts are written anyway, if no subscribe came.
    release_at: Instant,
    heartbeat: Duration,
    /// Fires at `last_write + heartbeat`; re-armed lazily rather than on every write.
    ping_at: Pin<Box<Sleep>>,
    last_write: Instant,
    /// A frame went out since `last_write` was stamped. Stamped when the stream next waits:
    /// one clock read per batch, not one per frame on the fan-out's path.
    unstamped_write: bool,
    /// What the queue wakes when frames arrive: the task itself, or (with
    /// [`ConnectionStream::wake_through`]) a [`GroupWaker`] that batches through its thread.
    queue_waker: Option<(Arc<GroupWaker>, Waker)>,
}

type Item = Poll<Option<Result<Bytes, Infallible>>>;

impl ConnectionStream {
    pub(super) fn new(
        hub: Arc<Hub>,
        conn: Arc<Connection>,
        rx: queue::Receiver,
        settings: &HubSettings,
    ) -> Self {
        let heartbeat = settings.heartbeat;
        // A stream holds at most as many broadcasts as it may queue.
        let hold_cap = settings.queue_capacity;
        let first = frame::connected(&conn.id, heartbeat.as_secs(), None);
        let now = Instant::now();
        Self {
            hub,
            conn,
            rx,
            first: Some(first),
            replay: None,
            held: Some(Vec::new()),
            hold_cap,
            release_at: now + HOLD_GRACE,
            heartbeat,
            ping_at: Box::pin(tokio::time::sleep_until(now + heartbeat.min(HOLD_GRACE))),
            last_write: now,
            unstamped_write: false,
            queue_waker: None,
        }
    }

    /// Routes the queue's wake-ups through `group` (the [`WakeGroup`] of the thread that
    /// will poll this stream): one cross-thread wake-up per fan-out instead of one per
    /// stream.
    pub fn wake_through(mut self, group: Arc<WakeGroup>) -> Self {
        self.queue_waker = Some(GroupWaker::new(group));
        self
    }

    fn poll_queue(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        match &self.queue_waker {
            Some((stream_waker, waker)) => {
                stream_waker.register(cx.waker());
                self.rx.poll_recv(&mut Context::from_waker(waker))
            }
            None => self.rx.poll_recv(cx),
        }
    }

    /// Says in the `connected` frame what the subscribe made as the stream opened did (the
    /// one-step form). Its replay is already queued, so it follows `connected` at once.
    pub fn subscribed(&mut self, subscription: &super::Subscription) {
        if self.first.is_some() {
            self.first = Some(frame::connected(
                &self.conn.id,
                self.heartbeat.as_secs(),
                Some(subscription),
            ));
        }
    }

    /// The connection this stream serves.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    fn wrote(&mut self, bytes: Bytes) -> Item {
        self.unstamped_write = true;
        Poll::Ready(Some(Ok(bytes)))
    }

    /// The replay merged by id with the held broadcasts (ids are unique; a held broadcast
    /// the replay also carries is written once), as one write.
    fn splice(&mut self, mut frames: Vec<ReplayFrame>) -> Option<Bytes> {
        if let Some(held) = self.held.take() {
            frames.extend(
                held.into_iter()
                    .map(|(id, bytes)| ReplayFrame { id, bytes }),
            );
            frames.sort_by_key(|f| f.id);
            frames.dedup_by_key(|f| f.id);
        }
        let mut buf = BytesMut::with_capacity(frames.iter().map(|f| f.bytes.len()).sum());
        for f in frames {
            buf.extend_from_slice(&f.bytes);
        }
        (!buf.is_empty()).then(|| buf.freeze())
    }

    /// The held broadcasts, as they are (already in id order), as one write.
    fn release(&mut self) -> Option<Bytes> {
        let held = self.held.take()?;
        let mut buf = BytesMut::with_capacity(held.iter().map(|(_, b)| b.len()).sum());
        for (_, bytes) in held {
            buf.extend_from_slice(&bytes);
        }
        (!buf.is_empty()).then(|| buf.freeze())
    }

    /// Timers: held broadcasts are released [`HOLD_GRACE`] after connecting if no subscribe
    /// took them; a `: ping` is written after `heartbeat` of silence.
    fn poll_ping(&mut self, cx: &mut Context<'_>) -> Item {
        // Called whenever the stream waits, so the batch just written is stamped here.
        if std::mem::take(&mut self.unstamped_write) {
            self.last_write = Instant::now();
        }
        loop {
            if self.ping_at.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let may_release = self.replay.is_none() && self.held.is_some();
            if may_release
                && now >= self.release_at
                && let Some(bytes) = self.release()
            {
                return self.wrote(bytes);
            }
            let due = self.last_write + self.heartbeat;
            if now >= due {
                self.ping_at.as_mut().reset(now + self.heartbeat);
                return self.wrote(frame::PING);
            }
            let next = if self.replay.is_none() && self.held.is_some() {
                due.min(self.release_at)
            } else {
                due
            };
            self.ping_at.as_mut().reset(next);
        }
    }
}

impl Stream for ConnectionStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Item {
        let this = &mut *self;
        if let Some(first) = this.first.take() {
            return this.wrote(first);
        }
        loop {
            if this.conn.is_closed() {
                // What was queued is dropped (the client resumes it by id); a last `retry:`
                // still goes out.
                return match this.conn.take_last_frame() {
                    Some(bytes) => this.wrote(bytes),
                    None => Poll::Ready(None),
                };
            }
            if let Some(replay) = this.replay.as_mut() {
                // Not reading the queue meanwhile, so let `Hub::remove` wake us instead.
                this.conn.close_waker.register(cx.waker());
                match Pin::new(replay).poll(cx) {
                    Poll::Pending => return this.poll_ping(cx),
                    Poll::Ready(Ok(batch)) => {
                        this.replay = None;
                        // Its room in the queue is free once the frames are handed on.
                        let ReplayBatch { frames, room } = batch;
                        let spliced = this.splice(frames);
                        drop(room);
                        if let Some(bytes) = spliced {
                            return this.wrote(bytes);
                        }
                        continue;
                    }
                    // The subscribe request died before its replay was read (client gone,
                    // database error): end the stream, so the client reconnects and resumes
                    // from its last id instead of carrying on with a gap.
                    Poll::Ready(Err(_)) => return Poll::Ready(None),
                }
            }
            return match this.poll_queue(cx) {
                Poll::Ready(Some(Outbound::Frame(frame))) => this.wrote(Bytes::clone(&frame)),
                Poll::Ready(Some(Outbound::Broadcast(shared))) => match this.held.as_mut() {
                    Some(held) if held.len() >= this.hold_cap => {
                        // As slow as a reader whose queue is full: cut it the same way.
                        this.hub.disconnect_slow(this.conn.id);
                        Poll::Ready(None)
                    }
                    Some(held) => {
                        held.push((shared.0, shared.1.clone()));
                        continue;
                    }
                    None => this.wrote(shared.1.clone()),
                },
                Poll::Ready(Some(Outbound::Release)) => match this.release() {
                    Some(bytes) => this.wrote(bytes),
                    None => continue,
                },
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
