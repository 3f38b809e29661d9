//! The message log: room messages and broadcasts, one id sequence. Reads for history pages
//! and replays here; appends go through [`MessageLog`], the writer's own connection.

use std::ops::RangeInclusive;

use super::{Db, now_rfc3339};
use crate::domain::{MessageBody, RoomName, StoredMessage, UserRef};
use anyhow::Context;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    room: Option<String>,
    user_id: Option<Uuid>,
    username: Option<String>,
    body: String,
    sent_at: String,
    deletes: Option<i64>,
}

impl TryFrom<Row> for StoredMessage {
    type Error = sqlx::Error;

    /// A room that does not parse is corruption, not a broadcast: refuse the row.
    fn try_from(r: Row) -> Result<Self, sqlx::Error> {
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
            body: r.body,
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

/// A history page, newest first unless `after` is set (then oldest first).
fn page_query(prefix: &str, room: &RoomName, page: Page) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::<Sqlite>::new(format!("{prefix}{SELECT}"));
    // Deletion events are not messages; history shows what is left.
    q.push("WHERE m.room = ")
        .push_bind(room.as_str())
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
/// first, one more than `limit` so the caller can tell whether the limit cut anything.
fn replay_query(
    prefix: &str,
    rooms: &[RoomName],
    after: i64,
    upto: i64,
    sent: &RangeInclusive<i64>,
    limit: u32,
) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::<Sqlite>::new(format!("{prefix}{SELECT}"));
    q.push("WHERE m.id > ")
        .push_bind(after)
        .push(" AND m.id <= ")
        .push_bind(upto)
        .push(" AND ((m.room IS NULL AND m.id NOT BETWEEN ")
        .push_bind(*sent.start())
        .push(" AND ")
        .push_bind(*sent.end())
        .push(") OR m.room IN (");
    let mut list = q.separated(", ");
    for r in rooms {
        list.push_bind(r.as_str());
    }
    q.push(")) ORDER BY m.id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
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
        let mut q = page_query("", room, page);
        let mut rows = decode(q.build_query_as::<Row>().fetch_all(self.pool()).await?)?;
        if !ascending {
            rows.reverse();
        }
        Ok(rows)
    }

    /// Everything a resuming connection missed in `rooms`, plus the broadcasts but those
    /// it was already `sent`: ids in `(after, upto]`, ascending, the newest `limit` of
    /// them, and whether that was all.
    pub async fn replay_since(
        &self,
        rooms: &[RoomName],
        after: i64,
        upto: i64,
        sent: &RangeInclusive<i64>,
        limit: u32,
    ) -> sqlx::Result<(Vec<StoredMessage>, bool)> {
        let mut q = replay_query("", rooms, after, upto, sent, limit);
        let mut rows: Vec<Row> = q.build_query_as().fetch_all(self.pool()).await?;
        let complete = rows.len() <= limit as usize;
        rows.truncate(limit as usize);
        rows.reverse();
        Ok((decode(rows)?, complete))
    }

    /// The last `n` messages (ids up to `upto`) of each room, ascending by id. One indexed
    /// `LIMIT n` read per room: a single windowed query would rank every row of a big room.
    pub async fn recent(
        &self,
        rooms: &[RoomName],
        n: u32,
        upto: i64,
    ) -> sqlx::Result<Vec<StoredMessage>> {
        let mut all = Vec::new();
        for room in rooms {
            let page = Page {
                before: Some(upto + 1),
                after: None,
                limit: n,
            };
            all.extend(self.messages_page(room, page).await?);
        }
        all.sort_by_key(|m| m.id);
        Ok(all)
    }

    /// Highest id stored (0 when empty).
    pub async fn last_message_id(&self) -> sqlx::Result<i64> {
        let (id,): (Option<i64>,) = sqlx::query_as("SELECT MAX(id) FROM messages")
            .fetch_one(self.pool())
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// How many messages and broadcasts are stored.
    pub async fn count_messages(&self) -> sqlx::Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages")
            .fetch_one(self.pool())
            .await?;
        Ok(n)
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

/// The writer's own connection to the message log: appends batches, one transaction each.
pub struct MessageLog {
    conn: SqliteConnection,
}

impl MessageLog {
    /// Appends the batch in one transaction (one fsync): deletions first remove their
    /// message, then every event is inserted with one multi-row statement. Answers each
    /// post in the batch's order: the stored event, or `None` for a deletion whose message
    /// was already gone (nothing stored for it).
    pub async fn append(
        &mut self,
        batch: &[&NewPost],
    ) -> anyhow::Result<Vec<Option<StoredMessage>>> {
        let sent_at = now_rfc3339();
        let mut tx = self.conn.begin().await?;
        let mut events: Vec<(usize, StoredMessage)> = Vec::with_capacity(batch.len());
        for (i, post) in batch.iter().enumerate() {
            let event = match post {
                NewPost::Message { room, user, body } => StoredMessage {
                    id: 0,
                    room: room.clone(),
                    user: user.clone(),
                    body: body.as_str().to_owned(),
                    sent_at: sent_at.clone(),
                    deletes: None,
                },
                NewPost::Deletion {
                    room,
                    by,
                    message_id,
                } => {
                    let gone = sqlx::query(
                        "DELETE FROM messages WHERE id = ? AND room = ? AND deletes IS NULL",
                    )
                    .bind(message_id)
                    .bind(room.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if gone == 0 {
                        continue;
                    }
                    StoredMessage {
                        id: 0,
                        room: Some(room.clone()),
                        user: by.clone(),
                        body: String::new(),
                        sent_at: sent_at.clone(),
                        deletes: Some(*message_id),
                    }
                }
            };
            events.push((i, event));
        }
        if !events.is_empty() {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO messages (room, user_id, body, sent_at, deletes) ",
            );
            q.push_values(&events, |mut row, (_, e)| {
                row.push_bind(e.room.as_ref().map(|r| r.as_str().to_owned()))
                    .push_bind(e.user.as_ref().map(|u| u.id))
                    .push_bind(e.body.clone())
                    .push_bind(e.sent_at.clone())
                    .push_bind(e.deletes);
            });
            q.push(" RETURNING id");
            let mut ids: Vec<i64> = q.build_query_scalar().fetch_all(&mut *tx).await?;
            anyhow::ensure!(
                ids.len() == events.len(),
                "insert returned {} ids for {} rows",
                ids.len(),
                events.len()
            );
            // Rows are inserted in VALUES order by the only writer, so ascending ids match
            // it; sorting makes that independent of the order RETURNING happens to use.
            ids.sort_unstable();
            for ((_, e), id) in events.iter_mut().zip(ids) {
                e.id = id;
            }
        }
        tx.commit().await?;
        let mut out: Vec<Option<StoredMessage>> = vec![None; batch.len()];
        for (i, e) in events {
            out[i] = Some(e);
        }
        Ok(out)
    }

    /// One small committed write, to learn whether the log takes writes again.
    pub async fn probe(&mut self) -> anyhow::Result<()> {
        let mut tx = self.conn.begin().await?;
        sqlx::query("UPDATE writer_health SET probed_at = ? WHERE id = 1")
            .bind(now_rfc3339())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

impl Db {
    /// Opens the single writer's own connection to the message log.
    pub async fn message_log(&self) -> anyhow::Result<MessageLog> {
        let conn = SqliteConnection::connect_with(&self.options)
            .await
            .context("opening the writer's database connection")?;
        Ok(MessageLog { conn })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    async fn plan(db: &Db, mut q: QueryBuilder<Sqlite>) -> String {
        let rows: Vec<(i64, i64, i64, String)> =
            q.build_query_as().fetch_all(db.pool()).await.unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    /// History pages and replays must read through `messages_room_id`, never scan the log.
    #[tokio::test]
    async fn history_and_replay_read_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings::defaults().database;
        s.url = format!("sqlite://{}/plan.db?mode=rwc", dir.path().display());
        let db = Db::connect(&s).await.unwrap();
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
            let p = plan(&db, page_query("EXPLAIN QUERY PLAN ", &room, page)).await;
            assert!(
                p.contains("USING INDEX messages_room_id")
                    || p.contains("USING COVERING INDEX messages_room_id"),
                "{page:?}: {p}"
            );
            assert!(!p.contains("SCAN m"), "{page:?} scans: {p}");
        }
        let p = plan(
            &db,
            replay_query("EXPLAIN QUERY PLAN ", &rooms, 5, 100, &(7..=9), 1000),
        )
        .await;
        assert!(
            p.contains("messages_room_id") && !p.contains("SCAN m"),
            "replay: {p}"
        );
    }
}
