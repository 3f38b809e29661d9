//! Batched wake-ups: a fan-out wakes each worker thread once, not each stream it fills.
//!
//! Fan-outs run on whichever thread committed the event; the streams they fill live on the
//! HTTP worker threads. Waking a stream's task from another thread costs a cross-thread
//! wake-up each time (an eventfd write, the worker leaving `epoll_wait`), and the woken
//! stream often runs before the fan-out has queued the next frame, so it writes one frame
//! per syscall. Instead a stream opened on a worker hands its queue a [`GroupWaker`]: when
//! the queue fills, it parks the stream's real waker in its thread's [`WakeGroup`], and only
//! the first park since the group last ran wakes the group's task. That task runs on the
//! stream's own thread and wakes every parked stream there (a local run-queue push, no
//! syscall); by then each stream's queue holds everything the fan-out queued, which it
//! writes in one syscall.
//!
//! `sse.write_delay_ms` makes the group's task wait that long after its first wake-up
//! before waking the streams, so a stream collects that window's frames into one write.
//!
//! The writer's answers to posters go the same way: a poster waits through its worker's
//! group ([`WakeGroup::run`]), and the writer answers a whole batch under [`hold_wakes`],
//! so each worker thread is woken once for all its posters in the batch, not once per
//! answer.

use std::{
    cell::RefCell,
    future::{Future, poll_fn},
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
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
    /// next use starts a new group.
    running: AtomicBool,
    /// How long the group's task waits after a wake-up before waking the parked tasks.
    delay: Duration,
}

thread_local! {
    /// This thread's groups, one per delay: streams wait `sse.write_delay_ms`, answers none.
    static THIS_THREAD: RefCell<Vec<Arc<WakeGroup>>> = const { RefCell::new(Vec::new()) };
    /// Whether this thread holds its wake-ups ([`hold_wakes`]), and the groups it held.
    static HELD: RefCell<(bool, Vec<Arc<WakeGroup>>)> = const { RefCell::new((false, Vec::new())) };
}

/// Runs `f` with the group wake-ups it causes on this thread held until it returns; then
/// wakes each group it filled once.
pub fn hold_wakes<R>(f: impl FnOnce() -> R) -> R {
    /// Wakes the held groups when `f` returns or unwinds, so no parked task is forgotten.
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            let mut groups = HELD.with(|held| {
                let mut held = held.borrow_mut();
                held.0 = false;
                std::mem::take(&mut held.1)
            });
            for group in groups.drain(..) {
                group.task.wake();
            }
            // Handed back empty, so a steady writer allocates nothing here.
            HELD.with(|held| held.borrow_mut().1 = groups);
        }
    }
    let nested = HELD.with(|held| std::mem::replace(&mut held.borrow_mut().0, true));
    if nested {
        return f();
    }
    let _release = Release;
    f()
}

impl WakeGroup {
    /// This thread's group for `delay`, spawning its task on first use. Call it on a thread
    /// that runs a tokio `LocalSet` (every actix worker does).
    pub fn this_thread(delay: Duration) -> Arc<Self> {
        THIS_THREAD.with(|cell| {
            let mut groups = cell.borrow_mut();
            groups.retain(|group| group.running.load(Ordering::Acquire));
            if let Some(group) = groups.iter().find(|group| group.delay == delay) {
                return group.clone();
            }
            let group = Arc::new(Self {
                delay,
                ..Self::default()
            });
            group.running.store(true, Ordering::Release);
            tokio::task::spawn_local(group.clone().wake_parked());
            groups.push(group.clone());
            group
        })
    }

    /// Runs `future` on this thread with its wake-ups routed through the group: a wake from
    /// another thread parks the task here, so many of them cost one cross-thread wake-up.
    pub async fn run<F: Future>(self: Arc<Self>, future: F) -> F::Output {
        let (waker, handle) = GroupWaker::new(self);
        let mut future = pin!(future);
        poll_fn(|cx| {
            waker.register(cx.waker());
            future.as_mut().poll(&mut Context::from_waker(&handle))
        })
        .await
    }

    /// Queues `waker` for the group's task; wakes that task unless it is already due to run
    /// (or this thread holds its wake-ups, which wakes it later).
    fn park(self: &Arc<Self>, waker: Waker) {
        self.parked.lock().push(waker);
        if !self.notified.swap(true, Ordering::AcqRel) {
            let held = HELD.with(|held| {
                let mut held = held.borrow_mut();
                if held.0 {
                    held.1.push(self.clone());
                }
                held.0
            });
            if !held {
                self.task.wake();
            }
        }
    }

    /// The group's task: on each wake-up (after `delay`), wakes every parked task.
    async fn wake_parked(self: Arc<Self>) {
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
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
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

/// The waker a stream gives its queue (and [`WakeGroup::run`] its future): it parks the
/// task's real waker in the group instead of waking it from the waking thread.
pub(super) struct GroupWaker {
    group: Arc<WakeGroup>,
    /// The task's waker (a stream's, or a poster's), registered on every poll; taken by the
    /// first wake-up, so a task is parked at most once until it runs again.
    task: AtomicWaker,
}

impl GroupWaker {
    /// A waker for a task that runs on `group`'s thread, and its handle for registering
    /// the task.
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

impl Wake for GroupWaker {
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
        let wakers: Vec<(Arc<GroupWaker>, Waker)> = recorders
            .iter()
            .map(|r| {
                let (sw, waker) = GroupWaker::new(group.clone());
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
    async fn a_future_run_through_the_group_is_woken_from_another_thread() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let (senders, answers): (Vec<_>, Vec<_>) = (0..50)
                    .map(|_| tokio::sync::oneshot::channel::<usize>())
                    .unzip();
                let group = WakeGroup::this_thread(Duration::ZERO);
                let waiting: Vec<_> = answers
                    .into_iter()
                    .map(|answer| tokio::task::spawn_local(group.clone().run(answer)))
                    .collect();
                tokio::task::yield_now().await;
                thread::spawn(move || {
                    hold_wakes(|| {
                        for (i, tx) in senders.into_iter().enumerate() {
                            tx.send(i).expect("the waiting task is alive");
                        }
                    })
                })
                .join()
                .expect("answering thread");
                for (i, task) in waiting.into_iter().enumerate() {
                    let got = tokio::time::timeout(Duration::from_secs(5), task)
                        .await
                        .expect("an answer sent from another thread never woke its task")
                        .expect("task");
                    assert_eq!(got, Ok(i), "answer {i}");
                }
            })
            .await;
    }

    #[tokio::test]
    async fn held_wake_ups_reach_the_streams_only_when_the_hold_ends() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let group = WakeGroup::this_thread(Duration::ZERO);
                // Let the group's task start (and wait) first: a task that first runs after a
                // park finds the group already notified, held or not.
                tokio::task::yield_now().await;
                let recorder = Arc::new(Recorder::default());
                let (stream_waker, queue_waker) = GroupWaker::new(group);
                stream_waker.register(&Waker::from(recorder.clone()));
                let (in_hold, seen_in_hold) = (recorder.clone(), Arc::new(AtomicUsize::new(99)));
                let seen = seen_in_hold.clone();
                let holder = thread::spawn(move || {
                    hold_wakes(|| {
                        queue_waker.wake_by_ref();
                        thread::sleep(Duration::from_millis(50));
                        seen.store(in_hold.wakes.load(Ordering::SeqCst), Ordering::SeqCst);
                    })
                });
                let deadline = Instant::now() + Duration::from_secs(5);
                while recorder.wakes.load(Ordering::SeqCst) == 0 {
                    assert!(
                        Instant::now() < deadline,
                        "the held wake-up was never released"
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                holder.join().expect("holding thread");
                assert_eq!(
                    seen_in_hold.load(Ordering::SeqCst),
                    0,
                    "a stream was woken while its waker's thread held wake-ups"
                );
            })
            .await;
    }

    #[tokio::test]
    async fn each_delay_has_its_own_group_on_a_thread() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let streams = WakeGroup::this_thread(Duration::from_millis(5));
                let answers = WakeGroup::this_thread(Duration::ZERO);
                assert!(!Arc::ptr_eq(&streams, &answers), "answers would wait 5 ms");
                assert!(
                    Arc::ptr_eq(&answers, &WakeGroup::this_thread(Duration::ZERO)),
                    "a second group for the same delay"
                );
            })
            .await;
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
