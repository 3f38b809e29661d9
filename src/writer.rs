//! The single message writer: group commit, then publish in id order.
//!
//! Posts, deletions, edits and reactions queue here. The writer takes everything queued (up
//! to [`MAX_BATCH`]), appends it to the [`MessageLog`] in one transaction — one fsync for the
//! lot — and only after the commit publishes each event in id order and answers each poster.
//! So a `201` means "on disk", a failed insert is never sent, and ids reach subscribers in
//! the order they were assigned.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use crate::{
    broker::Broker,
    db::{Appended, Db, MessageLog, NewPost},
    domain::{MessageBody, RoomName, StoredMessage, UserRef},
    wake::hold_wakes,
};

/// Most posts committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// Posts waiting for the writer beyond this make posters wait (backpressure).
const QUEUE: usize = 4096;

/// After a failed commit, how often the idle writer checks whether the log takes writes
/// again (so readiness recovers without waiting for a post).
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a post was not stored. Nothing was sent either way.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The writer task has ended (shutdown, or it crashed).
    #[error("the message writer has stopped")]
    Stopped,
    /// The database refused the batch (disk full, read-only, locked…). The cause is in the
    /// writer's log line.
    #[error("storing the message failed; try again")]
    Failed,
    /// The message the change names is not there (deleted meanwhile, never was, or for an
    /// edit not the editor's).
    #[error("no such message")]
    Gone,
    /// A new reaction for a message that holds as many distinct ones as it may.
    #[error(
        "a message holds at most {} distinct reactions",
        crate::domain::MAX_REACTIONS
    )]
    TooManyReactions,
}

struct Job {
    post: NewPost,
    reply: oneshot::Sender<Result<Appended, WriteError>>,
}

/// Handle for submitting posts; cheap to clone. The writer task ends (after committing
/// everything queued) once every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    /// False after a failed commit, true again after a successful one (readiness).
    healthy: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer on a thread of its own and opens its connection there. The handle
    /// ends when the writer does (abort it to stop the writer at once).
    ///
    /// Why a thread: on SQLite each batch is committed synchronously right where the writer
    /// runs, so a batch costs one wake in (the first post) and, for its answers, one wake
    /// per worker thread out (see [`hold_wakes`]). As a task on the shared runtime it went
    /// through the runtime's scheduler and sqlx's connection thread and back, four hand-offs
    /// that cost more CPU than the inserts.
    pub async fn start(db: &Db, broker: Arc<dyn Broker>) -> anyhow::Result<(Self, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let healthy = Arc::new(AtomicBool::new(true));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (opened_tx, opened) = oneshot::channel();
        let (ended_tx, ended) = oneshot::channel::<()>();
        let db = db.clone();
        let task = runtime.spawn({
            let healthy = healthy.clone();
            async move {
                // Dropped when this task ends or is aborted, which ends the thread.
                let _ended = ended_tx;
                // Opened on this runtime: a PostgreSQL connection's socket belongs to the
                // runtime that polls it.
                match db.message_log().await {
                    Ok(log) => {
                        let _ = opened_tx.send(Ok(()));
                        run(log, rx, broker, healthy).await;
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                }
            }
        });
        std::thread::Builder::new()
            .name("roomcast-writer".to_owned())
            .spawn(move || {
                let _ = runtime.block_on(ended);
            })?;
        opened.await.map_err(|_| {
            anyhow::anyhow!("the message writer stopped while opening its connection")
        })??;
        Ok((Self { tx, healthy }, task))
    }

    /// Whether the writer task is still taking posts and its last commit succeeded
    /// (readiness).
    pub fn is_ready(&self) -> bool {
        !self.tx.is_closed() && self.healthy.load(Ordering::Acquire)
    }

    /// Stores a room message (`room` set) or a broadcast, durably, then publishes it.
    /// Returns once it is committed and handed to the broker.
    pub async fn post(
        &self,
        room: Option<RoomName>,
        user: Option<UserRef>,
        body: MessageBody,
    ) -> Result<StoredMessage, WriteError> {
        self.store(NewPost::Message {
            room,
            user,
            body,
            reply_to: None,
            mentions: Vec::new(),
        })
        .await
    }

    /// Deletes message `message_id` of `room`, durably, and publishes the `message_deleted`
    /// event that takes the next id. [`WriteError::Gone`] when it was already deleted.
    pub async fn delete(
        &self,
        room: RoomName,
        by: Option<UserRef>,
        message_id: i64,
    ) -> Result<StoredMessage, WriteError> {
        self.store(NewPost::Deletion {
            room,
            by,
            message_id,
        })
        .await
    }

    /// Stores a change that stores one event (a message or broadcast, a deletion, an edit),
    /// then publishes it; the event.
    pub async fn store(&self, post: NewPost) -> Result<StoredMessage, WriteError> {
        match self.submit(post).await? {
            Appended::Stored(event) => Ok(event),
            other => {
                tracing::error!(answer = ?other, "the writer answered a change with no event");
                Err(WriteError::Failed)
            }
        }
    }

    /// Queues any change and waits until it is committed and its event (if any) handed to
    /// the broker. A change that names a message that is not there is
    /// [`WriteError::Gone`]; a reaction past the cap [`WriteError::TooManyReactions`].
    pub async fn submit(&self, post: NewPost) -> Result<Appended, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { post, reply })
            .await
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }
}

async fn run(
    mut log: MessageLog,
    mut rx: mpsc::Receiver<Job>,
    broker: Arc<dyn Broker>,
    healthy: Arc<AtomicBool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = if healthy.load(Ordering::Acquire) {
            rx.recv_many(&mut batch, MAX_BATCH).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                () = tokio::time::sleep(PROBE_EVERY) => {
                    if log.probe().await.is_ok() {
                        tracing::info!("the message log takes writes again");
                        healthy.store(true, Ordering::Release);
                    }
                    continue;
                }
            }
        };
        if received == 0 {
            break;
        }
        let posts: Vec<&NewPost> = batch.iter().map(|j: &Job| &j.post).collect();
        match log.append(&posts).await {
            Ok(stored) => {
                healthy.store(true, Ordering::Release);
                let n = stored.iter().filter_map(Appended::event).count();
                metrics::counter!("roomcast_messages_stored_total").increment(n as u64);
                metrics::counter!("roomcast_writer_commits_total").increment(1);
                for event in stored.iter().filter_map(Appended::event) {
                    broker.publish(event);
                }
                // The answers are held, so a worker thread is woken once for all its
                // posters in the batch. The fan-out is not: held, its workers would idle
                // until the last stream was filled, costing more CPU per delivery than the
                // saved wake-ups.
                hold_wakes(|| {
                    for (job, done) in batch.drain(..).zip(stored) {
                        let _ = job.reply.send(match done {
                            Appended::Gone => Err(WriteError::Gone),
                            Appended::TooManyReactions => Err(WriteError::TooManyReactions),
                            done => Ok(done),
                        });
                    }
                });
            }
            Err(e) => {
                healthy.store(false, Ordering::Release);
                tracing::error!(error = ?e, posts = batch.len(), "message batch failed; nothing sent");
                hold_wakes(|| {
                    for job in batch.drain(..) {
                        let _ = job.reply.send(Err(WriteError::Failed));
                    }
                });
            }
        }
    }
    log.close().await;
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::db::testing;

    /// A broker that, at the moment it is handed an event, looks for that event in the
    /// database through a pool connection (not the writer's): what it finds is what any
    /// reader could. It reads on the test's runtime, from a thread of its own, while the
    /// writer waits.
    struct Witness {
        db: Db,
        test_runtime: tokio::runtime::Handle,
        seen: Mutex<Vec<(i64, bool)>>,
    }

    impl Witness {
        fn new(db: &Db) -> Arc<Self> {
            Arc::new(Self {
                db: db.clone(),
                test_runtime: tokio::runtime::Handle::current(),
                seen: Mutex::new(Vec::new()),
            })
        }
    }

    impl Broker for Witness {
        fn publish(&self, event: &StoredMessage) {
            let room = event.room.clone().expect("a room message");
            let found = std::thread::scope(|s| {
                s.spawn(|| {
                    self.test_runtime.block_on(async {
                        self.db
                            .message_author(&room, event.id)
                            .await
                            .expect("read")
                            .is_some()
                    })
                })
                .join()
                .expect("the witness's read")
            });
            self.seen.lock().expect("lock").push((event.id, found));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_event_is_committed_before_it_is_published() {
        for t in testing::all().await {
            let witness = Witness::new(&t.db);
            let (writer, task) = Writer::start(&t.db, witness.clone()).await.expect("writer");
            let room = RoomName::parse("r").expect("room");
            let posts = (0..40).map(|i| {
                let writer = writer.clone();
                let room = room.clone();
                tokio::spawn(async move {
                    let body = MessageBody::parse(&format!("m{i}"), 100).expect("body");
                    writer.post(Some(room), None, body).await
                })
            });
            for p in futures_util::future::join_all(posts).await {
                p.expect("joined").expect("stored");
            }
            drop(writer);
            task.await.expect("writer ends");
            let seen = witness.seen.lock().expect("lock").clone();
            assert_eq!(seen.len(), 40, "{}: every post was published", t.backend);
            let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
            assert_eq!(ids, (1..=40).collect::<Vec<_>>(), "{}: id order", t.backend);
            for (id, found) in seen {
                assert!(
                    found,
                    "{}: message {id} was published before a reader could see it stored",
                    t.backend
                );
            }
        }
    }

    #[tokio::test]
    async fn a_stopped_writer_refuses_posts_as_stopped() {
        let t = testing::sqlite().await;
        let witness = Witness::new(&t.db);
        let (writer, task) = Writer::start(&t.db, witness).await.expect("writer");
        task.abort();
        let _ = task.await;
        let body = MessageBody::parse("late", 100).expect("body");
        let err = writer.post(None, None, body).await.expect_err("stopped");
        assert!(matches!(err, WriteError::Stopped), "{err:?}");
        assert!(!writer.is_ready(), "a stopped writer is not ready");
    }
}
