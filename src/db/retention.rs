//! Retention: the sweep that deletes what `history.retain_days` and
//! `history.retain_per_room` no longer keep, in small batches, and the marks that tell a
//! resume whether a sweep took events it would have replayed.
//!
//! Each batch is its own short transaction on the pool, not the writer's connection: on
//! SQLite a post waits behind one batch at most (the database's one write lock), on
//! PostgreSQL only a post that touches a message being swept waits. The sweep deletes a
//! message's row first, so a writer changing that message either finished before (its
//! change event and reactions are then found and deleted) or finds the message gone.

use anyhow::Context;
use chrono::{Duration, SecondsFormat, Utc};

use super::{Db, messages::kind};
use crate::domain::RoomName;

/// What to keep, from `[history]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days every event is kept (0: forever).
    pub retain_days: u32,
    /// Newest messages kept per room (0: no cap).
    pub retain_per_room: u32,
    /// Most messages one transaction deletes.
    pub batch: u32,
}

impl Retention {
    /// Whether it deletes anything ever.
    pub fn is_active(&self) -> bool {
        self.retain_days > 0 || self.retain_per_room > 0
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Rows of the log deleted (messages, broadcasts and events).
    pub events: u64,
    /// Transactions it took.
    pub batches: u64,
}

/// The PostgreSQL advisory lock a sweeping node holds, `(SWEEP_LOCK, hashtext(<the
/// schema's channel>))`: one node of a cluster sweeps at a time, deployments in other
/// schemas of the database keep their own, and a node that dies lets go with its
/// connection. ("rcsw" in ASCII.)
const SWEEP_LOCK: i32 = 0x7263_7377;

/// Pages one `incremental_vacuum` step gives back to the file system: each step is a short
/// write of its own, like a sweep batch.
const VACUUM_STEP_PAGES: u32 = 1000;

/// Between two batches: a gap in which a waiting writer takes the write lock (SQLite), so
/// a post waits behind one batch at most.
async fn pause() {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
}

impl Db {
    /// Deletes, batch by batch, every event older than `retain_days` and every room's
    /// messages past the newest `retain_per_room`, with their reactions and change events.
    /// `None` when another node of the cluster is sweeping. On SQLite the freed pages are
    /// then given back to the file system when the file allows it (`auto_vacuum =
    /// incremental`, the setting of files this version creates).
    pub async fn sweep(&self, policy: Retention) -> anyhow::Result<Option<Swept>> {
        let mut swept = Swept::default();
        if !policy.is_active() {
            return Ok(Some(swept));
        }
        let lock = match self.pg_pool() {
            Some(pool) => {
                let mut conn = pool.acquire().await?;
                // Closed, not pooled, when dropped: that lets go of the lock however the
                // sweep ends (finished, failed, or cancelled by a shutdown).
                conn.close_on_drop();
                let (got,): (bool,) =
                    sqlx::query_as("SELECT pg_try_advisory_lock($1, hashtext($2))")
                        .bind(SWEEP_LOCK)
                        .bind(self.notify_channel())
                        .fetch_one(&mut *conn)
                        .await?;
                if !got {
                    return Ok(None);
                }
                Some(conn)
            }
            None => None,
        };
        let done = self.sweep_batches(policy, &mut swept).await;
        drop(lock);
        done?;
        if swept.events > 0 {
            self.give_back_free_pages().await?;
        }
        Ok(Some(swept))
    }

    async fn sweep_batches(&self, policy: Retention, swept: &mut Swept) -> anyhow::Result<()> {
        let batch = i64::from(policy.batch.max(1));
        if policy.retain_days > 0 {
            let cutoff = (Utc::now() - Duration::days(i64::from(policy.retain_days)))
                .to_rfc3339_opts(SecondsFormat::Millis, true);
            // Ids grow with time, so the oldest events are the lowest ids: each batch reads
            // the head of the log by its primary key and stops at the first one to keep.
            loop {
                let head: Vec<(i64, String)> = on_backend!(self, |pool| {
                    sqlx::query_as("SELECT id, sent_at FROM messages ORDER BY id LIMIT $1")
                        .bind(batch)
                        .fetch_all(pool)
                        .await
                })?;
                let old: Vec<i64> = head
                    .iter()
                    .take_while(|(_, at)| at.as_str() < cutoff.as_str())
                    .map(|(id, _)| *id)
                    .collect();
                if old.is_empty() {
                    break;
                }
                swept.events += self.delete_events(&old).await?;
                swept.batches += 1;
                if old.len() < head.len() || head.len() < policy.batch as usize {
                    break;
                }
                pause().await;
            }
        }
        if policy.retain_per_room > 0 {
            let keep = i64::from(policy.retain_per_room);
            let rooms: Vec<(String,)> = on_backend!(self, |pool| {
                sqlx::query_as(
                    "SELECT room FROM messages WHERE kind = 0 AND room IS NOT NULL \
                     GROUP BY room HAVING COUNT(*) > $1",
                )
                .bind(keep)
                .fetch_all(pool)
                .await
            })?;
            for (room,) in rooms {
                // The newest message past the cap: it and everything older go.
                let cut: Option<(i64,)> = on_backend!(self, |pool| {
                    sqlx::query_as(
                        "SELECT id FROM messages WHERE room = $1 AND kind = 0 \
                         ORDER BY id DESC LIMIT 1 OFFSET $2",
                    )
                    .bind(&room)
                    .bind(keep)
                    .fetch_optional(pool)
                    .await
                })?;
                let Some((cut,)) = cut else { continue };
                loop {
                    let ids: Vec<(i64,)> = on_backend!(self, |pool| {
                        sqlx::query_as(
                            "SELECT id FROM messages WHERE room = $1 AND kind = 0 AND id <= $2 \
                             ORDER BY id LIMIT $3",
                        )
                        .bind(&room)
                        .bind(cut)
                        .bind(batch)
                        .fetch_all(pool)
                        .await
                    })?;
                    if ids.is_empty() {
                        break;
                    }
                    let ids: Vec<i64> = ids.into_iter().map(|(id,)| id).collect();
                    swept.events += self.delete_events(&ids).await?;
                    swept.batches += 1;
                    pause().await;
                }
            }
        }
        Ok(())
    }

    /// One batch, one transaction: the events `ids`, and for those that are messages (or
    /// broadcasts) their change events (not `message_deleted`, which is about a message
    /// already gone) and reactions; each room's mark raised to the highest id deleted there.
    /// The rows deleted.
    async fn delete_events(&self, ids: &[i64]) -> anyhow::Result<u64> {
        let mut gone: Vec<(i64, Option<String>, i32)> = Vec::new();
        on_backend!(self, |pool, DB| {
            let mut tx = pool.begin().await?;
            let mut q = sqlx::QueryBuilder::<DB>::new("DELETE FROM messages WHERE id IN (");
            push_ids(&mut q, ids);
            q.push(" RETURNING id, room, kind");
            gone.extend(
                q.build_query_as::<(i64, Option<String>, i32)>()
                    .fetch_all(&mut *tx)
                    .await?,
            );
            let posts: Vec<i64> = gone
                .iter()
                .filter(|(_, _, k)| *k == kind::MESSAGE)
                .map(|(id, _, _)| *id)
                .collect();
            if !posts.is_empty() {
                let mut q = sqlx::QueryBuilder::<DB>::new("DELETE FROM messages WHERE kind <> ");
                q.push_bind(kind::DELETED).push(" AND about IN (");
                push_ids(&mut q, &posts);
                q.push(" RETURNING id, room, kind");
                gone.extend(
                    q.build_query_as::<(i64, Option<String>, i32)>()
                        .fetch_all(&mut *tx)
                        .await?,
                );
                let mut q =
                    sqlx::QueryBuilder::<DB>::new("DELETE FROM reactions WHERE message_id IN (");
                push_ids(&mut q, &posts);
                q.build().execute(&mut *tx).await?;
                // SQLite's search index is a table of its own (PostgreSQL's is a column of
                // the row, gone with it).
                if self.sqlite_pool().is_some() {
                    let mut q =
                        sqlx::QueryBuilder::<DB>::new("DELETE FROM message_words WHERE rowid IN (");
                    push_ids(&mut q, &posts);
                    q.build().execute(&mut *tx).await?;
                }
            }
            let mut marks: Vec<(String, i64)> = Vec::new();
            for (id, room, _) in &gone {
                let room = room.clone().unwrap_or_default();
                match marks.iter_mut().find(|(r, _)| *r == room) {
                    Some((_, top)) => *top = (*top).max(*id),
                    None => marks.push((room, *id)),
                }
            }
            for (room, top) in &marks {
                sqlx::query(
                    "INSERT INTO retention_marks (room, swept_to) VALUES ($1, $2) \
                     ON CONFLICT (room) DO UPDATE SET swept_to = CASE \
                     WHEN excluded.swept_to > retention_marks.swept_to \
                     THEN excluded.swept_to ELSE retention_marks.swept_to END",
                )
                .bind(room)
                .bind(*top)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(gone.len() as u64)
    }

    /// On SQLite, hands the file's free pages back to the file system, a step at a time,
    /// when the file keeps track of them (`auto_vacuum = incremental`); without that they
    /// stay in the file's free list, where new rows reuse them first.
    async fn give_back_free_pages(&self) -> anyhow::Result<()> {
        let Some(pool) = self.sqlite_pool() else {
            return Ok(());
        };
        let (mode,): (i64,) = sqlx::query_as("PRAGMA auto_vacuum")
            .fetch_one(pool)
            .await
            .context("reading auto_vacuum")?;
        if mode != 2 {
            return Ok(());
        }
        loop {
            let (free,): (i64,) = sqlx::query_as("PRAGMA freelist_count")
                .fetch_one(pool)
                .await?;
            if free == 0 {
                return Ok(());
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"
            )))
            .execute(pool)
            .await?;
            pause().await;
        }
    }

    /// Whether a retention sweep deleted events of `rooms` (or broadcasts) with ids above
    /// `after`: a resume from `after` then cannot be complete.
    pub async fn swept_after(&self, rooms: &[RoomName], after: i64) -> sqlx::Result<bool> {
        let found: Option<(i64,)> = on_backend!(self, |pool, DB| {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "SELECT swept_to FROM retention_marks WHERE swept_to > ",
            );
            q.push_bind(after).push(" AND room IN ('' ");
            for room in rooms {
                q.push(", ").push_bind(room.as_str().to_owned());
            }
            q.push(") LIMIT 1");
            q.build_query_as().fetch_optional(pool).await
        })?;
        Ok(found.is_some())
    }
}

/// Ends an `IN (` list: binds `ids`, comma-separated, and closes the parenthesis.
fn push_ids<DB>(q: &mut sqlx::QueryBuilder<DB>, ids: &[i64])
where
    DB: sqlx::Database,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{NewPost, testing};
    use crate::domain::MessageBody;

    fn post(room: &str, body: &str) -> NewPost {
        NewPost::Message {
            room: Some(RoomName::parse(room).expect("room")),
            user: None,
            body: MessageBody::parse(body, 10_000).expect("body"),
            reply_to: None,
            mentions: Vec::new(),
        }
    }

    /// Appends `n` posts of `room`, `per_batch` to a transaction.
    async fn fill(db: &Db, room: &str, n: usize, body: &str) {
        let mut log = db.message_log().await.expect("log");
        let posts: Vec<NewPost> = (0..n).map(|_| post(room, body)).collect();
        for chunk in posts.chunks(200) {
            let batch: Vec<&NewPost> = chunk.iter().collect();
            log.append(&batch).await.expect("appended");
        }
        log.close().await;
    }

    const CAP_3: Retention = Retention {
        retain_days: 0,
        retain_per_room: 3,
        batch: 2,
    };

    #[tokio::test]
    async fn a_sweep_deletes_in_batches_and_marks_the_room() {
        for t in testing::all().await {
            fill(&t.db, "r", 8, "x").await;
            let swept = t.db.sweep(CAP_3).await.expect("sweep").expect("not locked");
            assert_eq!(
                swept,
                Swept {
                    events: 5,
                    batches: 3
                },
                "{}",
                t.backend
            );
            assert_eq!(
                t.db.count_messages().await.expect("count"),
                3,
                "{}",
                t.backend
            );
            let r = RoomName::parse("r").expect("room");
            assert!(
                t.db.swept_after(std::slice::from_ref(&r), 4)
                    .await
                    .expect("mark"),
                "{}",
                t.backend
            );
            assert!(
                !t.db.swept_after(&[r], 5).await.expect("mark"),
                "{}",
                t.backend
            );
            let again = t.db.sweep(CAP_3).await.expect("sweep").expect("not locked");
            assert_eq!(again.events, 0, "{}: nothing more to sweep", t.backend);
        }
    }

    #[tokio::test]
    async fn a_sweep_takes_its_messages_out_of_the_search_index() {
        let t = testing::sqlite().await;
        fill(&t.db, "r", 8, "needle").await;
        let indexed = || async {
            let pool = t.db.sqlite_pool().expect("sqlite");
            let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM message_words")
                .fetch_one(pool)
                .await
                .expect("count");
            n
        };
        assert_eq!(indexed().await, 8, "every post is indexed");
        t.db.sweep(CAP_3).await.expect("sweep").expect("not locked");
        assert_eq!(indexed().await, 3, "the swept posts left the index");
    }

    #[tokio::test]
    async fn on_postgresql_one_node_sweeps_at_a_time() {
        let Some(t) = testing::postgres().await else {
            return;
        };
        fill(&t.db, "r", 5, "x").await;
        let pool = t.db.pg_pool().expect("a PostgreSQL pool");
        let mut other = pool.acquire().await.expect("a connection");
        sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
            .bind(SWEEP_LOCK)
            .bind(t.db.notify_channel())
            .execute(&mut *other)
            .await
            .expect("another node's lock");
        assert_eq!(
            t.db.sweep(CAP_3).await.expect("sweep"),
            None,
            "another node sweeps"
        );
        assert_eq!(t.db.count_messages().await.expect("count"), 5);
        sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
            .bind(SWEEP_LOCK)
            .bind(t.db.notify_channel())
            .execute(&mut *other)
            .await
            .expect("unlock");
        let swept = t.db.sweep(CAP_3).await.expect("sweep").expect("its turn");
        assert_eq!(swept.events, 2);
    }

    #[tokio::test]
    async fn a_new_sqlite_file_gives_swept_pages_back() {
        let t = testing::sqlite().await;
        let pool = t.db.sqlite_pool().expect("SQLite").clone();
        let (mode,): (i64,) = sqlx::query_as("PRAGMA auto_vacuum")
            .fetch_one(&pool)
            .await
            .expect("auto_vacuum");
        assert_eq!(
            mode, 2,
            "a new file is created with auto_vacuum = incremental"
        );
        fill(&t.db, "r", 2000, &"y".repeat(500)).await;
        let pages = |pool: sqlx::SqlitePool| async move {
            let (n,): (i64,) = sqlx::query_as("PRAGMA page_count")
                .fetch_one(&pool)
                .await
                .expect("page_count");
            n
        };
        let full = pages(pool.clone()).await;
        let policy = Retention {
            retain_per_room: 10,
            batch: 500,
            ..CAP_3
        };
        t.db.sweep(policy).await.expect("sweep").expect("swept");
        let (free,): (i64,) = sqlx::query_as("PRAGMA freelist_count")
            .fetch_one(&pool)
            .await
            .expect("freelist_count");
        assert_eq!(free, 0, "the free pages are given back");
        let after = pages(pool).await;
        assert!(
            after * 4 < full,
            "the file shrinks: {full} pages, then {after}"
        );
    }
}
