//! A connection's frame queue: bounded, filled by fan-outs and subscribes on any thread,
//! emptied by the connection's stream a whole batch per lock.
//!
//! It is not a tokio `mpsc` channel, for memory: a channel allocates its shared state and,
//! from the first frame on, a block of slots that stays for the connection's life. Here a connection holds one small allocation, plus two ring
//! buffers that are swapped, not reallocated, between the producers' side and the stream's
//! (and freed when a burst made them large). A stream takes everything queued in one lock,
//! where the channel cost atomics per frame.

use std::{
    collections::VecDeque,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// An encoded frame on its way to several connections: allocated once per fan-out, and
/// one pointer in each queue slot. (With the `Bytes` itself in the slot, `Outbound` was
/// 48 bytes.)
pub(super) type SharedFrame = Arc<Bytes>;

/// A broadcast frame and its id, shared like [`SharedFrame`].
pub(super) type SharedBroadcast = Arc<(i64, Bytes)>;

// Every connection's queue holds a ring buffer of these.
const _: () = assert!(std::mem::size_of::<Outbound>() <= 16);

/// What goes through a connection's queue.
pub(super) enum Outbound {
    /// A ready-to-write frame.
    Frame(SharedFrame),
    /// A broadcast frame and its id (held and merged by id until the first replay).
    Broadcast(SharedBroadcast),
    /// The first subscribe, with nothing to replay: write the held broadcasts now.
    Release,
    /// Marks where a subscribe's replay belongs in this connection's event order. The
    /// stream waits for the frames before writing anything queued after the marker.
    Replay(oneshot::Receiver<ReplayBatch>),
}

/// A replay's frames, with the room they take in the queue until the stream writes them.
pub(super) struct ReplayBatch {
    /// Ascending by id.
    pub(super) frames: Vec<ReplayFrame>,
    /// Released when the batch is dropped (written, or the stream gone).
    pub(super) room: ReplayRoom,
}

/// One persisted event read back for a replay, encoded.
#[derive(Debug, Clone)]
pub(super) struct ReplayFrame {
    /// Its message id.
    pub(super) id: i64,
    /// The encoded SSE frame.
    pub(super) bytes: Bytes,
}

/// Slots a drained buffer may keep for the next batch; a bigger one is freed.
const KEEP_SLOTS: usize = 16;

/// The shared side of a queue; senders hold it in an `Arc`.
pub(super) struct Queue {
    /// A leaf lock: held for a push or a swap, never while taking another lock or waking.
    state: Mutex<State>,
    capacity: usize,
    /// Most bytes of replays reserved and not yet written.
    replay_bytes: usize,
}

struct State {
    items: VecDeque<Outbound>,
    /// The stream's waker while it waits for frames; taken by the push that wakes it.
    waker: Option<Waker>,
    closed: bool,
    /// Frames and bytes held for replays being read or waiting to be written. A replay
    /// fits only in what queued frames and other replays leave of the capacity; live frames
    /// are checked against the capacity alone, so a queue holds at most twice it.
    reserved: Reserved,
}

/// Room held in a queue for replays.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reserved {
    /// Frames.
    pub(super) frames: usize,
    /// Bytes of frames.
    pub(super) bytes: usize,
}

/// Why a push failed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PushError {
    /// `capacity` frames wait already (besides the batch the stream has taken and is
    /// writing): the reader is too slow.
    Full,
    /// The connection is gone.
    Closed,
    /// A replay does not fit in what is left of the queue (other replays hold it).
    NoRoom,
}

/// A replay's room in its queue: held from the subscribe's join until the stream writes
/// the frames (or drops them), shrunk to what the replay turned out to be.
pub(super) struct ReplayRoom {
    queue: Sender,
    held: Reserved,
}

impl ReplayRoom {
    /// Keeps only `to` of the room held (the replay is read, and no larger).
    pub(super) fn shrink_to(&mut self, to: Reserved) {
        let to = Reserved {
            frames: to.frames.min(self.held.frames),
            bytes: to.bytes.min(self.held.bytes),
        };
        self.queue.release(Reserved {
            frames: self.held.frames - to.frames,
            bytes: self.held.bytes - to.bytes,
        });
        self.held = to;
    }
}

impl Drop for ReplayRoom {
    fn drop(&mut self) {
        self.queue.release(self.held);
    }
}

/// What a sender holds.
pub(super) type Sender = Arc<Queue>;

impl Queue {
    /// A queue of at most `capacity` waiting frames (of which replays hold at most
    /// `replay_bytes` bytes), and its reading end.
    pub(super) fn new(capacity: usize, replay_bytes: usize) -> (Sender, Receiver) {
        let queue = Arc::new(Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                waker: None,
                closed: false,
                reserved: Reserved::default(),
            }),
            capacity,
            replay_bytes,
        });
        let receiver = Receiver {
            queue: Arc::clone(&queue),
            batch: VecDeque::new(),
        };
        (queue, receiver)
    }

    /// Queues `item` and wakes the stream if it was waiting.
    pub(super) fn try_send(&self, item: Outbound) -> Result<(), PushError> {
        let waker = {
            let mut state = self.state.lock();
            if state.closed {
                return Err(PushError::Closed);
            }
            // Live frames are not held back by replays' room: a reader is cut only when
            // it falls `capacity` frames behind the live stream.
            if state.items.len() >= self.capacity {
                return Err(PushError::Full);
            }
            state.items.push_back(item);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Queues a replay's `marker` and holds `room` for its frames, when both fit besides
    /// what is queued and held already. `Full` when the marker itself does not (the reader
    /// is too slow), `NoRoom` when only the replay does not.
    pub(super) fn try_send_replay(
        self: &Arc<Self>,
        marker: Outbound,
        room: Reserved,
    ) -> Result<ReplayRoom, PushError> {
        let waker = {
            let mut state = self.state.lock();
            if state.closed {
                return Err(PushError::Closed);
            }
            if state.items.len() >= self.capacity {
                return Err(PushError::Full);
            }
            let taken = state.items.len() + state.reserved.frames;
            if taken + 1 + room.frames > self.capacity
                || state.reserved.bytes + room.bytes > self.replay_bytes
            {
                return Err(PushError::NoRoom);
            }
            state.items.push_back(marker);
            state.reserved.frames += room.frames;
            state.reserved.bytes += room.bytes;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(ReplayRoom {
            queue: Arc::clone(self),
            held: room,
        })
    }

    fn release(&self, room: Reserved) {
        let mut state = self.state.lock();
        state.reserved.frames -= room.frames;
        state.reserved.bytes -= room.bytes;
    }

    /// Ends the queue: pushes fail from now on, and the stream reads its end.
    pub(super) fn close(&self) {
        let (items, waker) = {
            let mut state = self.state.lock();
            state.closed = true;
            (std::mem::take(&mut state.items), state.waker.take())
        };
        // Frames (and replay markers) are dropped outside the lock.
        drop(items);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The stream's end of a [`Queue`].
pub(super) struct Receiver {
    queue: Arc<Queue>,
    /// The batch taken from the queue, read in order before taking the next.
    batch: VecDeque<Outbound>,
}

impl Receiver {
    /// The next frame: from the batch in hand, else everything queued is taken as the next
    /// batch. `None` once the queue is closed.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        if let Some(item) = self.batch.pop_front() {
            return Poll::Ready(Some(item));
        }
        if self.batch.capacity() > KEEP_SLOTS {
            self.batch = VecDeque::new();
        }
        let mut state = self.queue.state.lock();
        // The empty buffer goes to the producers' side: no allocation for the next batch.
        std::mem::swap(&mut state.items, &mut self.batch);
        if let Some(item) = self.batch.pop_front() {
            return Poll::Ready(Some(item));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        let replaced = match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => None,
            _ => state.waker.replace(cx.waker().clone()),
        };
        drop(state);
        // A waker's drop may run arbitrary code: not under the leaf lock.
        drop(replaced);
        Poll::Pending
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.queue.close();
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        task::Wake,
    };

    use bytes::Bytes;

    use super::*;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn frame(text: &'static str) -> Outbound {
        Outbound::Frame(Arc::new(Bytes::from_static(text.as_bytes())))
    }

    fn text(item: Poll<Option<Outbound>>) -> String {
        match item {
            Poll::Ready(Some(Outbound::Frame(f))) => String::from_utf8_lossy(&f).into_owned(),
            Poll::Ready(Some(_)) => "(marker)".into(),
            Poll::Ready(None) => "(end)".into(),
            Poll::Pending => "(pending)".into(),
        }
    }

    #[test]
    fn frames_come_out_in_the_order_they_went_in_across_batches() {
        let (tx, mut rx) = Queue::new(8, 1 << 20);
        let waker = Arc::new(CountingWaker::default());
        let waker = Waker::from(waker);
        let mut cx = Context::from_waker(&waker);
        tx.try_send(frame("a")).expect("room for a");
        tx.try_send(frame("b")).expect("room for b");
        assert_eq!(text(rx.poll_recv(&mut cx)), "a", "first of the first batch");
        tx.try_send(frame("c")).expect("room for c");
        assert_eq!(
            text(rx.poll_recv(&mut cx)),
            "b",
            "the batch in hand goes first"
        );
        assert_eq!(text(rx.poll_recv(&mut cx)), "c", "then the next batch");
        assert_eq!(text(rx.poll_recv(&mut cx)), "(pending)", "nothing left");
    }

    #[test]
    fn a_waiting_stream_is_woken_once_by_the_next_push() {
        let (tx, mut rx) = Queue::new(8, 1 << 20);
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(rx.poll_recv(&mut cx).is_pending(), "empty at first");
        tx.try_send(frame("a")).expect("room");
        tx.try_send(frame("b")).expect("room");
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "one wake for the batch"
        );
    }

    #[test]
    fn past_the_capacity_a_push_is_refused_as_full() {
        let (tx, _rx) = Queue::new(2, 1 << 20);
        tx.try_send(frame("a")).expect("room");
        tx.try_send(frame("b")).expect("room");
        assert_eq!(
            tx.try_send(frame("c")),
            Err(PushError::Full),
            "third of two"
        );
    }

    fn marker() -> Outbound {
        let (_, rx) = oneshot::channel();
        Outbound::Replay(rx)
    }

    fn room(frames: usize, bytes: usize) -> Reserved {
        Reserved { frames, bytes }
    }

    #[test]
    fn a_replay_takes_its_room_until_it_is_shrunk_or_dropped() {
        let (tx, _rx) = Queue::new(8, 1000);
        let mut first = tx
            .try_send_replay(marker(), room(6, 600))
            .expect("a marker and 6 frames fit in 8");
        assert_eq!(
            tx.try_send_replay(marker(), room(1, 100)).err(),
            Some(PushError::NoRoom),
            "1 + 6 held + 1 + 1 > 8"
        );
        tx.try_send(frame("live"))
            .expect("live frames are not held back by a replay's room");
        first.shrink_to(room(2, 200));
        let second = tx
            .try_send_replay(marker(), room(2, 700))
            .expect("room again once the first replay shrank");
        assert_eq!(
            tx.try_send_replay(marker(), room(0, 200)).err(),
            Some(PushError::NoRoom),
            "200 + 700 held, and 200 more is past 1000 bytes"
        );
        drop(second);
        drop(first);
        assert_eq!(
            tx.state.lock().reserved,
            Reserved::default(),
            "all released"
        );
    }

    #[test]
    fn a_closed_queue_refuses_pushes_and_ends_its_stream() {
        let (tx, mut rx) = Queue::new(8, 1 << 20);
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        let mut cx = Context::from_waker(&waker);
        tx.try_send(frame("a")).expect("room");
        tx.close();
        assert_eq!(
            tx.try_send(frame("b")),
            Err(PushError::Closed),
            "push after close"
        );
        assert_eq!(text(rx.poll_recv(&mut cx)), "(end)", "the stream ends");
    }

    #[test]
    fn dropping_the_stream_closes_the_queue() {
        let (tx, rx) = Queue::new(8, 1 << 20);
        drop(rx);
        assert_eq!(
            tx.try_send(frame("a")),
            Err(PushError::Closed),
            "nobody reads"
        );
    }

    #[test]
    fn a_large_drained_batch_buffer_is_freed() {
        let (tx, mut rx) = Queue::new(1000, 1 << 20);
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..100 {
            tx.try_send(frame("x")).expect("room");
        }
        while rx.poll_recv(&mut cx).is_ready() {}
        assert!(
            rx.batch.capacity() <= KEEP_SLOTS,
            "the stream keeps {} slots after a burst",
            rx.batch.capacity()
        );
        assert!(
            tx.state.lock().items.capacity() <= KEEP_SLOTS,
            "the producers' side keeps {} slots after a burst",
            tx.state.lock().items.capacity()
        );
    }
}
