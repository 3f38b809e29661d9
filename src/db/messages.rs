//! The message log: room messages and broadcasts, one id sequence. Reads for history pages
//! and replays here; appends go through [`MessageLog`], the writer's own connection.

use std::ops::RangeInclusive;

use super::{Backend, Db, now_rfc3339};
use crate::domain::{MessageBody, RoomName, StoredMessage, UserRef};
use anyhow::Context;
use sqlx::{
    Connection, Database, Encode, PgConnection, QueryBuilder, Type, postgres::PgConnectOptions,
};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    room: Option<String>,
    user_id: Option<Uuid>,
    username: Option<String>,
    /// UTF-8: TEXT in SQLite, BYTEA in PostgreSQL (whose TEXT cannot hold the NUL a body
    /// may contain); both decode as bytes.
    body: Vec<u8>,
    sent_at: String,
    deletes: Option<i64>,
}

impl TryFrom<Row> for StoredMessage {
    type Error = sqlx::Error;

    /// A room that does not parse is corruption, not a broadcast: refuse the row (and a
    /// body that is not UTF-8).
    fn try_from(r: Row) -> Result<Self, sqlx::Error> {
        let body = String::from_utf8(r.body).map_err(|e| {
            sqlx::Error::Decode(format!("message {}: stored body: {e}", r.id).into())
        })?;
        let room = match r.room.as_deref() {
            Some(name) => Some(RoomName::parse(name).map_err(|e| {
                sqlx::Error::Decode(format!("message {}: stored room {name:?}: {e}", r.id).into())
            })?),
            None => None,
        };
        Ok(StoredMessage {
            id: r.id,
            room,
            user: r.user_id.map(|id| UserRef {
                id,
                username: r.username.unwrap_or_default().into(),
            }),
            body,
            sent_at: r.sent_at,
            deletes: r.deletes,
        })
    }
}

fn decode(rows: Vec<Row>) -> sqlx::Result<Vec<StoredMessage>> {
    rows.into_iter().map(StoredMessage::try_from).collect()
}

const SELECT: &str = "SELECT m.id, m.room, m.user_id, u.username, m.body, m.sent_at, m.deletes \
                      FROM messages m LEFT JOIN users u ON u.id = m.user_id ";

/// The log's head: the highest id assigned (see [`Db::tail`]). On SQLite, with its single
/// writer, the highest id stored serves.
const HEAD_SQLITE: &str = "SELECT COALESCE(MAX(id), 0) FROM messages";
const HEAD_POSTGRES: &str = "SELECT v FROM message_seq WHERE id = 1";

/// The rows of the log after `$1` up to `$2`, ascending, at most `$3` (see [`Db::tail`]).
const TAIL: &str = "SELECT m.id, m.room, m.user_id, u.username, m.body, m.sent_at, m.deletes \
                    FROM messages m LEFT JOIN users u ON u.id = m.user_id \
                    WHERE m.id > $1 AND m.id <= $2 ORDER BY m.id ASC LIMIT $3";

/// A history page, newest first unless `after` is set (then oldest first).
fn page_query<DB>(prefix: &str, room: &RoomName, page: Page) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let mut q = QueryBuilder::<DB>::new(format!("{prefix}{SELECT}"));
    // Deletion events are not messages; history shows what is left.
    q.push("WHERE m.room = ")
        .push_bind(room.as_str().to_owned())
        .push(" AND m.deletes IS NULL");
    if let Some(before) = page.before {
        q.push(" AND m.id < ").push_bind(before);
    }
    if let Some(after) = page.after {
        q.push(" AND m.id > ").push_bind(after);
    }
    q.push(if page.after.is_some() {
        " ORDER BY m.id ASC"
    } else {
        " ORDER BY m.id DESC"
    });
    q.push(" LIMIT ").push_bind(i64::from(page.limit));
    q
}

/// Events of `rooms` plus broadcasts (but those in `sent`) in `(after, upto]`, newest
/// first, at most `limit`.
fn replay_query<DB>(
    prefix: &str,
    rooms: &[RoomName],
    after: i64,
    upto: i64,
    sent: &RangeInclusive<i64>,
    limit: u32,
) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let mut q = QueryBuilder::<DB>::new(format!("{prefix}{SELECT}"));
    q.push("WHERE m.id > ")
        .push_bind(after)
        .push(" AND m.id <= ")
        .push_bind(upto)
        .push(" AND ((m.room IS NULL AND m.id NOT BETWEEN ")
        .push_bind(*sent.start())
        .push(" AND ")
        .push_bind(*sent.end())
        .push(") OR m.room IN (");
    if rooms.is_empty() {
        // `IN ()` is SQLite only; `IN (NULL)` matches nothing on both.
        q.push("NULL");
    }
    let mut list = q.separated(", ");
    for r in rooms {
        list.push_bind(r.as_str().to_owned());
    }
    q.push(")) ORDER BY m.id DESC LIMIT ")
        .push_bind(i64::from(limit));
    q
}

/// Bounds of a history page.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Only ids below this.
    pub before: Option<i64>,
    /// Only ids above this (the page then starts right after it).
    pub after: Option<i64>,
    /// Most messages returned.
    pub limit: u32,
}

impl Db {
    /// One page of a room's history, ascending by id. With `after`, the page starts right
    /// after it; otherwise it is the newest messages below `before` (or the newest of all).
    pub async fn messages_page(
        &self,
        room: &RoomName,
        page: Page,
    ) -> sqlx::Result<Vec<StoredMessage>> {
        let ascending = page.after.is_some();
        let rows = on_backend!(self, |pool, DB| {
            let mut q = page_query::<DB>("", room, page);
            q.build_query_as::<Row>().fetch_all(pool).await
        })?;
        let mut rows = decode(rows)?;
        if !ascending {
            rows.reverse();
        }
        Ok(rows)
    }

    /// What a resuming connection missed in `rooms`, plus the broadcasts but those it was
    /// already `sent`: ids in `(after, upto]`, the newest `limit` of them, newest first
    /// (a replay reads page after page of these, older each time).
    pub async fn replay_since(
        &self,
        rooms: &[RoomName],
        after: i64,
        upto: i64,
        sent: &RangeInclusive<i64>,
        limit: u32,
    ) -> sqlx::Result<Vec<StoredMessage>> {
        let rows: Vec<Row> = on_backend!(self, |pool, DB| {
            let mut q = replay_query::<DB>("", rooms, after, upto, sent, limit);
            q.build_query_as().fetch_all(pool).await
        })?;
        decode(rows)
    }

    /// Highest id stored (0 when empty).
    pub async fn last_message_id(&self) -> sqlx::Result<i64> {
        let (id,): (Option<i64>,) = on_backend!(self, |pool| {
            sqlx::query_as("SELECT MAX(id) FROM messages")
                .fetch_one(pool)
                .await
        })?;
        Ok(id.unwrap_or(0))
    }

    /// How many messages and broadcasts are stored.
    pub async fn count_messages(&self) -> sqlx::Result<i64> {
        let (n,): (i64,) = on_backend!(self, |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM messages")
                .fetch_one(pool)
                .await
        })?;
        Ok(n)
    }

    /// The id of the last event committed to the log (0 when there is none): every id up to
    /// it is settled, as [`Db::tail`] explains.
    pub async fn log_head(&self) -> sqlx::Result<i64> {
        let head = match &self.backend {
            Backend::Sqlite { .. } => HEAD_SQLITE,
            Backend::Postgres { .. } => HEAD_POSTGRES,
        };
        let (v,): (i64,) = on_backend!(self, |pool| sqlx::query_as(head).fetch_one(pool).await?);
        Ok(v)
    }

    /// The log in id order from just after `after`: at most `limit` events, and the cursor
    /// to pass next time. Events are read in one snapshot with the highest id assigned so far
    /// (`v`): the cursor is `v` when fewer than `limit` came back (everything up to `v` was
    /// read), else the last event's id. Never below `after`.
    ///
    /// On PostgreSQL a gap below `v` is a deleted message, never one still to commit: the
    /// writers commit in id order (see [`MessageLog::append`]), so passing it is safe. On
    /// SQLite the single writer makes `MAX(id)` serve as `v`.
    pub async fn tail(&self, after: i64, limit: u32) -> sqlx::Result<(Vec<StoredMessage>, i64)> {
        if limit == 0 {
            return Ok((Vec::new(), after));
        }
        // Both reads in one snapshot, so rows committed after `v` was read stay unseen. A
        // SQLite transaction reads one snapshot from its first statement on anyway.
        let (begin, head) = match &self.backend {
            Backend::Sqlite { .. } => ("BEGIN", HEAD_SQLITE),
            Backend::Postgres { .. } => (
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                HEAD_POSTGRES,
            ),
        };
        let (v, rows): (i64, Vec<Row>) = on_backend!(self, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            let (v,): (i64,) = sqlx::query_as(head).fetch_one(&mut *tx).await?;
            let rows = sqlx::query_as(TAIL)
                .bind(after)
                .bind(v)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            (v, rows)
        });
        let cursor = match rows.last() {
            Some(last) if rows.len() >= limit as usize => last.id,
            _ => v,
        };
        Ok((decode(rows)?, cursor.max(after)))
    }
}

/// An event waiting to be appended.
#[derive(Debug, Clone)]
pub enum NewPost {
    /// A room message, or a broadcast (`room` empty).
    Message {
        /// The room, or `None` for a broadcast.
        room: Option<RoomName>,
        /// The author; `None` for a broadcast sent with the API token.
        user: Option<UserRef>,
        /// The text.
        body: MessageBody,
    },
    /// The deletion of message `message_id` of `room`: its row goes, a `message_deleted`
    /// event takes the next id.
    Deletion {
        /// The message's room.
        room: RoomName,
        /// Who deleted it; `None` for the API token.
        by: Option<UserRef>,
        /// The message removed.
        message_id: i64,
    },
}

/// The event `post` stores, its id left 0: a message, or the `message_deleted` event of a
/// deletion.
fn event_of(post: &NewPost, sent_at: &str) -> StoredMessage {
    match post {
        NewPost::Message { room, user, body } => StoredMessage {
            id: 0,
            room: room.clone(),
            user: user.clone(),
            body: body.as_str().to_owned(),
            sent_at: sent_at.to_owned(),
            deletes: None,
        },
        NewPost::Deletion {
            room,
            by,
            message_id,
        } => StoredMessage {
            id: 0,
            room: Some(room.clone()),
            user: by.clone(),
            body: String::new(),
            sent_at: sent_at.to_owned(),
            deletes: Some(*message_id),
        },
    }
}

/// Removes message `$1` of room `$2` (not a deletion event itself).
const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE id = $1 AND room = $2 AND deletes IS NULL";

/// The writer's health probe: one small committed write.
const PROBE: &str = "UPDATE writer_health SET probed_at = $1 WHERE id = 1";

/// Appends `batch` to SQLite in one transaction (one fsync): each deletion removes its
/// message first (a deletion whose message is gone stores nothing), then each event is
/// inserted and takes the next id. Yields the stored events with their batch index.
fn append_sqlite(
    conn: &mut rusqlite::Connection,
    batch: &[&NewPost],
    sent_at: &str,
) -> rusqlite::Result<Vec<(usize, StoredMessage)>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut events = Vec::with_capacity(batch.len());
    {
        let mut delete = tx.prepare_cached(DELETE_MESSAGE)?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO messages (room, user_id, body, sent_at, deletes) \
             VALUES ($1, $2, $3, $4, $5)",
        )?;
        for (i, post) in batch.iter().enumerate() {
            if let NewPost::Deletion {
                room, message_id, ..
            } = post
                && delete.execute(rusqlite::params![message_id, room.as_str()])? == 0
            {
                continue;
            }
            let mut event = event_of(post, sent_at);
            // A user id is the 16-byte BLOB sqlx writes and reads for a `Uuid`.
            insert.execute(rusqlite::params![
                event.room.as_ref().map(RoomName::as_str),
                event.user.as_ref().map(|u| u.id.as_bytes().as_slice()),
                event.body,
                event.sent_at,
                event.deletes,
            ])?;
            event.id = tx.last_insert_rowid();
            events.push((i, event));
        }
    }
    tx.commit()?;
    Ok(events)
}

/// PostgreSQL's half of an append, inside the caller's transaction: removes the message of
/// every deletion and yields the events to store with their batch index (ids left 0).
async fn pg_deletions_then_events(
    tx: &mut PgConnection,
    batch: &[&NewPost],
    sent_at: &str,
) -> sqlx::Result<Vec<(usize, StoredMessage)>> {
    let mut events = Vec::with_capacity(batch.len());
    for (i, post) in batch.iter().enumerate() {
        if let NewPost::Deletion {
            room, message_id, ..
        } = post
        {
            let gone = sqlx::query(DELETE_MESSAGE)
                .bind(message_id)
                .bind(room.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone == 0 {
                continue;
            }
        }
        events.push((i, event_of(post, sent_at)));
    }
    Ok(events)
}

/// The writer's own connection to the message log: appends batches, one transaction each.
pub struct MessageLog {
    pub(super) conn: LogConn,
}

pub(super) enum LogConn {
    /// rusqlite, not sqlx: the writer runs on a thread of its own, so a synchronous
    /// connection saves a batch two hand-offs to sqlx's connection thread and back.
    Sqlite(rusqlite::Connection),
    Postgres {
        conn: PgConnection,
        /// To reconnect after the server dropped the connection. Boxed: it is large, and
        /// only read then.
        options: Box<PgConnectOptions>,
        /// NOTIFYed after each commit that stored events.
        channel: String,
    },
}

impl MessageLog {
    /// Appends the batch in one transaction (one fsync): deletions first remove their
    /// message, then every event is inserted. Answers each post in the batch's order: the
    /// stored event, or `None` for a deletion whose message was already gone (nothing
    /// stored for it). On SQLite the commit blocks the calling thread: the writer's own.
    pub async fn append(
        &mut self,
        batch: &[&NewPost],
    ) -> anyhow::Result<Vec<Option<StoredMessage>>> {
        let sent_at = now_rfc3339();
        let events = match &mut self.conn {
            LogConn::Sqlite(conn) => append_sqlite(conn, batch, &sent_at)?,
            LogConn::Postgres { conn, channel, .. } => {
                let mut tx = conn.begin().await?;
                let mut events = pg_deletions_then_events(&mut tx, batch, &sent_at).await?;
                if !events.is_empty() {
                    // Ids come from the one `message_seq` row, not a sequence: the UPDATE
                    // locks that row until this transaction commits, so every writer on
                    // every node sharing the database commits in id order. A reader that
                    // sees `v` committed therefore sees every id up to `v` that was not
                    // deleted, and a cursor can move past gaps safely (`Db::tail`). A
                    // sequence would let a later id commit first and a reader skip an
                    // earlier one for good.
                    let n = i64::try_from(events.len())?;
                    let (last,): (i64,) = sqlx::query_as(
                        "UPDATE message_seq SET v = v + $1 WHERE id = 1 RETURNING v",
                    )
                    .bind(n)
                    .fetch_one(&mut *tx)
                    .await?;
                    for ((_, e), id) in events.iter_mut().zip(last - n + 1..) {
                        e.id = id;
                    }
                    let mut q = QueryBuilder::<sqlx::Postgres>::new(
                        "INSERT INTO messages (id, room, user_id, body, sent_at, deletes) ",
                    );
                    q.push_values(&events, |mut row, (_, e)| {
                        row.push_bind(e.id)
                            .push_bind(e.room.as_ref().map(|r| r.as_str().to_owned()))
                            .push_bind(e.user.as_ref().map(|u| u.id))
                            .push_bind(e.body.as_bytes().to_vec())
                            .push_bind(e.sent_at.clone())
                            .push_bind(e.deletes);
                    });
                    q.build().execute(&mut *tx).await?;
                    // Delivered at commit, and only if it commits.
                    sqlx::query("SELECT pg_notify($1, '')")
                        .bind(channel.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                events
            }
        };
        let mut out: Vec<Option<StoredMessage>> = vec![None; batch.len()];
        for (i, e) in events {
            out[i] = Some(e);
        }
        Ok(out)
    }

    /// One small committed write, to learn whether the log takes writes again. On
    /// PostgreSQL a connection the server dropped is opened anew first.
    pub async fn probe(&mut self) -> anyhow::Result<()> {
        match &mut self.conn {
            LogConn::Sqlite(conn) => {
                conn.execute(PROBE, [now_rfc3339()])?;
            }
            LogConn::Postgres { conn, options, .. } => {
                if conn.ping().await.is_err() {
                    *conn = PgConnection::connect_with(options)
                        .await
                        .context("reopening the writer's database connection")?;
                }
                let mut tx = conn.begin().await?;
                sqlx::query(PROBE)
                    .bind(now_rfc3339())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(self) {
        match self.conn {
            LogConn::Sqlite(conn) => {
                let _ = conn.close();
            }
            LogConn::Postgres { conn, .. } => {
                let _ = conn.close().await;
            }
        }
    }
}

impl Db {
    /// Opens the message writer's own connection to the message log (one per process).
    pub async fn message_log(&self) -> anyhow::Result<MessageLog> {
        self.open_message_log()
            .await
            .context("opening the writer's database connection")
    }

    async fn open_message_log(&self) -> anyhow::Result<MessageLog> {
        let conn = match &self.backend {
            Backend::Sqlite {
                options,
                synchronous,
                ..
            } => LogConn::Sqlite(super::sqlite::open_writer(
                options.get_filename(),
                *synchronous,
            )?),
            Backend::Postgres {
                options, channel, ..
            } => LogConn::Postgres {
                conn: PgConnection::connect_with(options).await?,
                options: Box::new(options.clone()),
                channel: channel.clone(),
            },
        };
        Ok(MessageLog { conn })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;
    use sqlx::Sqlite;

    async fn plan(db: &Db, mut q: QueryBuilder<Sqlite>) -> String {
        let pool = db.sqlite_pool().expect("a SQLite database");
        let rows: Vec<(i64, i64, i64, String)> = q.build_query_as().fetch_all(pool).await.unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    /// A row whose room does not parse is corruption: decoding it fails rather than turning
    /// a room message into a broadcast for everyone.
    #[test]
    fn a_stored_row_with_a_bad_room_is_an_error_not_a_broadcast() {
        let row = |room: Option<&str>| Row {
            id: 7,
            room: room.map(str::to_owned),
            user_id: None,
            username: None,
            body: b"x".to_vec(),
            sent_at: String::new(),
            deletes: None,
        };
        let bad = StoredMessage::try_from(row(Some("Not A Room")));
        assert!(bad.is_err(), "a corrupt room was read as {bad:?}");
        let broadcast = StoredMessage::try_from(row(None)).expect("a broadcast row");
        assert!(broadcast.is_broadcast());
    }

    /// History pages and replays must read through `messages_room_id`, never scan the log.
    /// (SQLite's plan; PostgreSQL chooses by table statistics, so a plan there proves little.)
    #[tokio::test]
    async fn history_and_replay_read_through_the_index() {
        let t = testing::sqlite().await;
        let db = &t.db;
        let room = RoomName::parse("r").unwrap();
        let rooms = [room.clone(), RoomName::parse("s").unwrap()];
        for page in [
            Page {
                before: None,
                after: None,
                limit: 50,
            },
            Page {
                before: Some(9),
                after: None,
                limit: 50,
            },
            Page {
                before: None,
                after: Some(9),
                limit: 50,
            },
        ] {
            let p = plan(db, page_query("EXPLAIN QUERY PLAN ", &room, page)).await;
            assert!(
                p.contains("USING INDEX messages_room_id")
                    || p.contains("USING COVERING INDEX messages_room_id"),
                "{page:?}: {p}"
            );
            assert!(!p.contains("SCAN m"), "{page:?} scans: {p}");
        }
        let p = plan(
            db,
            replay_query("EXPLAIN QUERY PLAN ", &rooms, 5, 100, &(7..=9), 1000),
        )
        .await;
        assert!(
            p.contains("messages_room_id") && !p.contains("SCAN m"),
            "replay: {p}"
        );
    }

    fn post(room: &str, body: &str) -> NewPost {
        NewPost::Message {
            room: Some(RoomName::parse(room).expect("room")),
            user: None,
            body: MessageBody::parse(body, 100).expect("body"),
        }
    }

    async fn append(log: &mut MessageLog, posts: &[NewPost]) -> Vec<Option<StoredMessage>> {
        let batch: Vec<&NewPost> = posts.iter().collect();
        log.append(&batch).await.expect("appended")
    }

    /// Ids follow the batch order, batches follow each other, and a deletion removes its
    /// message and takes the next id; a deletion of a message already gone stores nothing.
    #[tokio::test]
    async fn appends_number_events_in_batch_order_on_both_backends() {
        for t in testing::all().await {
            let mut log = t.db.message_log().await.expect("log");
            let first = append(&mut log, &[post("r", "a"), post("s", "b")]).await;
            let ids: Vec<i64> = first.iter().flatten().map(|m| m.id).collect();
            assert_eq!(ids, [1, 2], "{}", t.backend);
            let room = RoomName::parse("r").expect("room");
            let delete = |message_id| NewPost::Deletion {
                room: room.clone(),
                by: None,
                message_id,
            };
            let second = append(&mut log, &[delete(1), post("r", "c"), delete(1)]).await;
            let deletion = second[0].as_ref().expect("the deletion is stored");
            assert_eq!(
                (deletion.id, deletion.deletes),
                (3, Some(1)),
                "{}",
                t.backend
            );
            assert_eq!(second[1].as_ref().map(|m| m.id), Some(4), "{}", t.backend);
            assert!(second[2].is_none(), "{}: deleted twice", t.backend);
            assert_eq!(t.db.last_message_id().await.expect("max"), 4);
            assert_eq!(
                t.db.count_messages().await.expect("count"),
                3,
                "{}",
                t.backend
            );
            log.probe().await.expect("probe");
            log.close().await;
        }
    }

    /// `tail` pages through the log in id order and moves its cursor past deleted ids.
    #[tokio::test]
    async fn tail_pages_in_id_order_and_skips_deleted_ids() {
        for t in testing::all().await {
            let (none, cursor) = t.db.tail(0, 10).await.expect("empty tail");
            assert!(none.is_empty(), "{}", t.backend);
            assert_eq!(cursor, 0, "{}", t.backend);
            let mut log = t.db.message_log().await.expect("log");
            let posts: Vec<NewPost> = (0..5).map(|i| post("r", &format!("m{i}"))).collect();
            append(&mut log, &posts).await;
            let room = RoomName::parse("r").expect("room");
            // Deletes 2 (its event is 6).
            append(
                &mut log,
                &[NewPost::Deletion {
                    room,
                    by: None,
                    message_id: 2,
                }],
            )
            .await;
            let (page, cursor) = t.db.tail(0, 3).await.expect("tail");
            let ids: Vec<i64> = page.iter().map(|m| m.id).collect();
            assert_eq!(ids, [1, 3, 4], "{}", t.backend);
            assert_eq!(cursor, 4, "{}: a full page ends at its last id", t.backend);
            let (page, cursor) = t.db.tail(cursor, 3).await.expect("tail");
            let ids: Vec<i64> = page.iter().map(|m| m.id).collect();
            assert_eq!(ids, [5, 6], "{}", t.backend);
            assert_eq!(page[1].deletes, Some(2), "{}", t.backend);
            assert_eq!(cursor, 6, "{}", t.backend);
            let (page, cursor) = t.db.tail(cursor, 3).await.expect("tail");
            assert!(page.is_empty(), "{}", t.backend);
            assert_eq!(cursor, 6, "{}", t.backend);
            log.close().await;
        }
    }

    /// Two writers appending at once (two nodes on one database): a reader following the
    /// log with `tail` while they write must end up with every id, none skipped. With ids
    /// from a sequence, a later id could commit first and the reader's cursor pass an
    /// earlier one for good.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tail_during_concurrent_appends_skips_nothing() {
        const BATCHES: usize = 40;
        for t in testing::all().await {
            let writers = (0..2).map(|w| {
                let db = t.db.clone();
                tokio::spawn(async move {
                    let mut log = db.message_log().await.expect("log");
                    for b in 0..BATCHES {
                        let posts = [post("r", &format!("{w}-{b}-a")), post("s", "b")];
                        append(&mut log, &posts).await;
                    }
                    log.close().await;
                })
            });
            let writers = futures_util::future::join_all(writers);
            let reader = async {
                let (mut seen, mut cursor) = (Vec::new(), 0);
                while seen.len() < 2 * 2 * BATCHES {
                    let (page, next) = t.db.tail(cursor, 7).await.expect("tail");
                    seen.extend(page.iter().map(|m| m.id));
                    cursor = next;
                    tokio::task::yield_now().await;
                }
                seen
            };
            let (done, seen) = tokio::join!(writers, reader);
            for w in done {
                w.expect("writer task");
            }
            let all: Vec<i64> = (1..=i64::try_from(4 * BATCHES).expect("small")).collect();
            assert_eq!(
                seen, all,
                "{}: the reader missed or reordered ids",
                t.backend
            );
        }
    }

    /// On PostgreSQL each append that stored events NOTIFYs the schema's channel, and the
    /// connect options carry the schema, so a listener of its own hears it.
    #[tokio::test]
    async fn an_append_notifies_the_schemas_channel() {
        let Some(t) = testing::postgres().await else {
            return;
        };
        let channel = t.db.notify_channel().expect("a channel").to_owned();
        let pool = sqlx::PgPool::connect_with(t.db.pg_connect_options().expect("options").clone())
            .await
            .expect("own pool");
        let (schema,): (String,) = sqlx::query_as("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .expect("schema");
        assert_eq!(channel, format!("roomcast_{schema}"));
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
            .await
            .expect("listener");
        listener.listen(&channel).await.expect("LISTEN");
        let mut log = t.db.message_log().await.expect("log");
        append(&mut log, &[post("r", "hello")]).await;
        let note = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
            .await
            .expect("a notification within 5 s")
            .expect("notification");
        assert_eq!(note.channel(), channel);
        // A deletion of nothing stores nothing, and says nothing.
        append(
            &mut log,
            &[NewPost::Deletion {
                room: RoomName::parse("r").expect("room"),
                by: None,
                message_id: 99,
            }],
        )
        .await;
        let quiet =
            tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv()).await;
        assert!(quiet.is_err(), "notified for an empty commit: {quiet:?}");
        log.close().await;
    }
}
