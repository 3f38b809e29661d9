//! Batched wake-ups: a fan-out wakes each worker thread once, not each stream it fills.
//!
//! Fan-outs run on whichever thread committed the event; the streams they fill live on the
//! HTTP worker threads. Waking a stream's task from another thread costs a cross-thread
//! wake-up each time (an eventfd write, the worker leaving `epoll_wait`), and the woken
//! stream often runs before the fan-out has queued the next frame, so it writes one frame
//! per syscall. Instead a stream opened on a worker hands its queue a [`StreamWaker`]: when
//! the queue fills, it parks the stream's real waker in its thread's [`WakeGroup`], and only
//! the first park since the group last ran wakes the group's task. That task runs on the
//! stream's own thread and wakes every parked stream there (a local run-queue push, no
//! syscall); by then each stream's queue holds everything the fan-out queued, which it
//! writes in one syscall.
//!
//! `sse.write_delay_ms` makes the group's task wait that long after its first wake-up
//! before waking the streams, so a stream collects that window's frames into one write.

use std::{
    cell::RefCell,
    future::poll_fn,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Poll, Wake, Waker},
    time::Duration,
};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

/// The streams of one worker thread whose queues have frames for them, and the task that
/// wakes them on that thread.
#[derive(Default)]
pub struct WakeGroup {
    /// Real wakers of streams with frames queued, waiting for the group's task. A plain
    /// lock: fan-outs push under it and the group's task only swaps the list out, so it is
    /// held for a push at a time and the list never allocates once grown. (The tokio
    /// cross-thread wake it replaces takes a lock per wake too, plus a syscall.)
    parked: Mutex<Vec<Waker>>,
    /// Whether the group's task has been woken since it last ran (one wake per batch).
    notified: AtomicBool,
    /// The group's task.
    task: AtomicWaker,
    /// Cleared when the group's task is dropped (its `LocalSet` ended), so the thread's
    /// next stream starts a new group.
    running: AtomicBool,
}

thread_local! {
    static THIS_THREAD: RefCell<Option<Arc<WakeGroup>>> = const { RefCell::new(None) };
}

impl WakeGroup {
    /// The group of this thread, spawning its task on first use. Call it on a thread that
    /// runs a tokio `LocalSet` (every actix worker does); `delay` is `sse.write_delay_ms`,
    /// taken from the first call on the thread.
    pub fn this_thread(delay: Duration) -> Arc<Self> {
        THIS_THREAD.with(|cell| {
            let mut cell = cell.borrow_mut();
            match &*cell {
                Some(group) if group.running.load(Ordering::Acquire) => group.clone(),
                _ => {
                    let group = Arc::new(Self::default());
                    group.running.store(true, Ordering::Release);
                    tokio::task::spawn_local(group.clone().run(delay));
                    *cell = Some(group.clone());
                    group
                }
            }
        })
    }

    /// Queues `waker` for the group's task; wakes that task unless it is already due to run.
    fn park(&self, waker: Waker) {
        self.parked.lock().push(waker);
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.task.wake();
        }
    }

    /// The group's task: on each wake-up (after `delay`), wakes every parked stream.
    async fn run(self: Arc<Self>, delay: Duration) {
        let _running = Running(self.clone());
        // Swapped with the parked list each round, so neither allocates once grown.
        let mut batch: Vec<Waker> = Vec::new();
        loop {
            poll_fn(|cx| {
                self.task.register(cx.waker());
                if self.notified.load(Ordering::Acquire) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // Cleared before taking the list: a park after this line wakes the task again,
            // a park before it is in the list taken below.
            self.notified.store(false, Ordering::Release);
            std::mem::swap(&mut batch, &mut *self.parked.lock());
            for waker in batch.drain(..) {
                waker.wake();
            }
        }
    }
}

/// Marks the group's task gone when dropped.
struct Running(Arc<WakeGroup>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// The waker a stream gives its queue: it parks the stream's real waker in the group
/// instead of waking it from the fan-out's thread.
pub(super) struct StreamWaker {
    group: Arc<WakeGroup>,
    /// The stream task's waker, registered on every poll; taken by the first wake-up, so a
    /// stream is parked at most once until it runs again.
    task: AtomicWaker,
}

impl StreamWaker {
    /// A waker for a stream whose task runs on `group`'s thread, and its handle for
    /// registering the stream's task.
    pub(super) fn new(group: Arc<WakeGroup>) -> (Arc<Self>, Waker) {
        let this = Arc::new(Self {
            group,
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(this.clone());
        (this, waker)
    }

    /// Records the task to wake (call on every poll, before polling the queue).
    pub(super) fn register(&self, waker: &Waker) {
        self.task.register(waker);
    }
}

impl Wake for StreamWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(waker) = self.task.take() {
            self.group.park(waker);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::AtomicUsize,
        thread::{self, ThreadId},
        time::Instant,
    };

    use super::*;

    /// A task waker that records how often, and on which thread, it was woken.
    #[derive(Default)]
    struct Recorder {
        wakes: AtomicUsize,
        threads: Mutex<Vec<ThreadId>>,
    }

    impl Wake for Recorder {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            self.threads.lock().push(thread::current().id());
        }
    }

    /// Streams registered on a `LocalSet`, woken `rounds` times from another thread; returns
    /// each stream's recorder and the `LocalSet`'s thread.
    async fn wake_from_afar(
        delay: Duration,
        streams: usize,
        rounds: usize,
    ) -> (Vec<Arc<Recorder>>, ThreadId, Duration) {
        let group = WakeGroup::this_thread(delay);
        let recorders: Vec<Arc<Recorder>> = (0..streams).map(|_| Arc::default()).collect();
        let wakers: Vec<(Arc<StreamWaker>, Waker)> = recorders
            .iter()
            .map(|r| {
                let (sw, waker) = StreamWaker::new(group.clone());
                sw.register(&Waker::from(r.clone()));
                (sw, waker)
            })
            .collect();
        let started = Instant::now();
        for _ in 0..rounds {
            let queue_wakers: Vec<Waker> = wakers.iter().map(|(_, w)| w.clone()).collect();
            thread::spawn(move || queue_wakers.iter().for_each(Waker::wake_by_ref))
                .join()
                .expect("waking thread");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while recorders
            .iter()
            .any(|r| r.wakes.load(Ordering::SeqCst) == 0)
        {
            assert!(Instant::now() < deadline, "a parked stream was never woken");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (recorders, thread::current().id(), started.elapsed())
    }

    #[tokio::test]
    async fn a_wake_from_another_thread_reaches_every_stream_on_its_own_thread() {
        let local = tokio::task::LocalSet::new();
        let (recorders, home, _) = local
            .run_until(wake_from_afar(Duration::ZERO, 100, 1))
            .await;
        for r in &recorders {
            assert_eq!(
                *r.threads.lock(),
                vec![home],
                "woken off its thread, or twice"
            );
        }
    }

    #[tokio::test]
    async fn a_stream_woken_twice_before_it_runs_is_parked_once() {
        let local = tokio::task::LocalSet::new();
        let (recorders, _, _) = local.run_until(wake_from_afar(Duration::ZERO, 3, 2)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        for r in &recorders {
            assert_eq!(
                r.wakes.load(Ordering::SeqCst),
                1,
                "a stream that had not re-registered was woken again"
            );
        }
    }

    #[tokio::test]
    async fn the_write_delay_holds_wake_ups_for_its_window() {
        let local = tokio::task::LocalSet::new();
        let delay = Duration::from_millis(30);
        let (_, _, took) = local.run_until(wake_from_afar(delay, 2, 1)).await;
        assert!(
            took >= delay,
            "streams woken after {took:?}, inside the {delay:?} window"
        );
    }
}
