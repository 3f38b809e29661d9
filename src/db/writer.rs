//! The single message writer: group commit, then publish in id order.
//!
//! Posts queue here. The writer takes everything queued (up to [`MAX_BATCH`]), inserts it in
//! one transaction — one fsync for the lot — and only after the commit publishes each event
//! in id order and answers each poster. So a `201` means "on disk", a failed insert is never
//! sent, and ids reach subscribers in the order they were assigned.

use std::sync::Arc;

use anyhow::Context;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::{Db, StoredMessage, now_rfc3339};
use crate::{
    broker::Broker,
    domain::{MessageBody, RoomName, UserRef},
};

/// Most posts committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// Posts waiting for the writer beyond this make posters wait (backpressure).
const QUEUE: usize = 4096;

struct Job {
    room: Option<RoomName>,
    user: Option<UserRef>,
    body: MessageBody,
    reply: oneshot::Sender<anyhow::Result<StoredMessage>>,
}

/// Handle for submitting posts; cheap to clone. The writer task ends (after committing
/// everything queued) once every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the writer's own connection and starts the task.
    pub async fn start(db: &Db, broker: Arc<dyn Broker>) -> anyhow::Result<(Self, JoinHandle<()>)> {
        let conn = SqliteConnection::connect_with(&db.options)
            .await
            .context("opening the writer's database connection")?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(conn, rx, broker));
        Ok((Self { tx }, task))
    }

    /// Whether the writer task is still taking posts (readiness).
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Stores a room message (`room` set) or a broadcast, durably, then publishes it.
    /// Returns once it is committed and handed to the broker.
    pub async fn post(
        &self,
        room: Option<RoomName>,
        user: Option<UserRef>,
        body: MessageBody,
    ) -> anyhow::Result<StoredMessage> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job {
                room,
                user,
                body,
                reply,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the message writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the message writer stopped before answering"))?
    }
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, broker: Arc<dyn Broker>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit(&mut conn, &batch).await {
            Ok(stored) => {
                metrics::counter!("roomcast_messages_stored_total").increment(stored.len() as u64);
                metrics::counter!("roomcast_writer_commits_total").increment(1);
                for (job, msg) in batch.drain(..).zip(stored) {
                    broker.publish(&msg);
                    let _ = job.reply.send(Ok(msg));
                }
            }
            Err(e) => {
                tracing::error!(error = ?e, posts = batch.len(), "message batch failed; nothing sent");
                for job in batch.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(anyhow::anyhow!("storing the message failed")));
                }
            }
        }
    }
    let _ = conn.close().await;
}

/// Inserts the batch with one multi-row statement in one transaction (one fsync).
async fn commit(conn: &mut SqliteConnection, batch: &[Job]) -> anyhow::Result<Vec<StoredMessage>> {
    let sent_at = now_rfc3339();
    let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO messages (room, user_id, body, sent_at) ");
    q.push_values(batch, |mut row, job| {
        row.push_bind(job.room.as_ref().map(|r| r.as_str().to_owned()))
            .push_bind(job.user.as_ref().map(|u| u.id))
            .push_bind(job.body.as_str().to_owned())
            .push_bind(sent_at.clone());
    });
    q.push(" RETURNING id");
    let mut tx = conn.begin().await?;
    let mut ids: Vec<i64> = q.build_query_scalar().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    anyhow::ensure!(
        ids.len() == batch.len(),
        "insert returned {} ids for {} rows",
        ids.len(),
        batch.len()
    );
    // Rows are inserted in VALUES order by the only writer, so ascending ids match it;
    // sorting makes that independent of the order RETURNING happens to use.
    ids.sort_unstable();
    Ok(batch
        .iter()
        .zip(ids)
        .map(|(job, id)| StoredMessage {
            id,
            room: job.room.clone(),
            user: job.user.clone(),
            body: job.body.as_str().to_owned(),
            sent_at: sent_at.clone(),
        })
        .collect())
}
