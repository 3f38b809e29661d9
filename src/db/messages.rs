//! The message log as read: history pages, replays and the tailer's reads, each message with
//! its state at the time it is read (body, edit time, reply, mentions, reactions). Appends
//! go through [`super::MessageLog`], the writer's own connection.

use std::{ops::RangeInclusive, sync::LazyLock};

use super::{Backend, Db};
use crate::domain::{
    Emoji, EventKind, MessageState, ReactionAction, Reactions, ReplyTo, RoomName, StoredMessage,
    UserRef, excerpt,
};
use sqlx::{Database, Encode, QueryBuilder, Type};
use uuid::Uuid;

/// The `kind` column: what a row of the log is.
pub(super) mod kind {
    /// A room message, or a broadcast (no room).
    pub const MESSAGE: i32 = 0;
    /// `message_deleted`.
    pub const DELETED: i32 = 1;
    /// `message_edited`.
    pub const EDITED: i32 = 2;
    /// `reaction`, `action: "add"`.
    pub const REACTION_ADDED: i32 = 3;
    /// `reaction`, `action: "remove"`.
    pub const REACTION_REMOVED: i32 = 4;
}

#[derive(sqlx::FromRow)]
pub(super) struct Row {
    id: i64,
    room: Option<String>,
    user_id: Option<Uuid>,
    username: Option<String>,
    /// UTF-8: TEXT in SQLite, BYTEA in PostgreSQL (whose TEXT cannot hold the NUL a body
    /// may contain); both decode as bytes.
    body: Vec<u8>,
    sent_at: String,
    kind: i32,
    about: Option<i64>,
    edited_at: Option<String>,
    mentions: Option<String>,
    reactions: Option<String>,
    emoji: Option<String>,
    reaction_count: Option<i64>,
    reply_to: Option<i64>,
    reply_user_id: Option<Uuid>,
    reply_username: Option<String>,
    /// The replied-to body's first characters (SQLite) or bytes (PostgreSQL); `None` once
    /// that message is deleted.
    reply_excerpt: Option<Vec<u8>>,
}

impl TryFrom<Row> for StoredMessage {
    type Error = sqlx::Error;

    /// A room that does not parse is corruption, not a broadcast: refuse the row (and a
    /// body that is not UTF-8, or state that does not parse).
    fn try_from(mut r: Row) -> Result<Self, sqlx::Error> {
        let id = r.id;
        let bad = |what: String| sqlx::Error::Decode(format!("message {id}: stored {what}").into());
        let kind = kind_of(&mut r).map_err(bad)?;
        let body = String::from_utf8(r.body).map_err(|e| bad(format!("body: {e}")))?;
        let room = match r.room.as_deref() {
            Some(name) => {
                Some(RoomName::parse(name).map_err(|e| bad(format!("room {name:?}: {e}")))?)
            }
            None => None,
        };
        Ok(StoredMessage {
            id,
            room,
            user: r.user_id.map(|id| UserRef {
                id,
                username: r.username.map(Into::into),
            }),
            body,
            sent_at: r.sent_at,
            kind,
        })
    }
}

/// The kind of event a row holds, with what that kind carries.
fn kind_of(r: &mut Row) -> Result<EventKind, String> {
    let about = r.about.ok_or("change event without `about`");
    let action = match r.kind {
        kind::MESSAGE => return Ok(EventKind::Message(state_of(r)?)),
        kind::DELETED => return Ok(EventKind::Deleted { message_id: about? }),
        kind::EDITED => {
            return Ok(EventKind::Edited {
                message_id: about?,
                mentions: users_of(r.mentions.as_deref())?,
            });
        }
        kind::REACTION_ADDED => ReactionAction::Add,
        kind::REACTION_REMOVED => ReactionAction::Remove,
        other => return Err(format!("kind {other}")),
    };
    let emoji = r.emoji.as_deref().ok_or("reaction without emoji")?;
    Ok(EventKind::Reaction {
        message_id: about?,
        emoji: Emoji::parse(emoji).map_err(|e| format!("emoji {emoji:?}: {e}"))?,
        action,
        count: r.reaction_count.ok_or("reaction without count")?,
    })
}

/// A message's state as its row holds it now.
fn state_of(r: &mut Row) -> Result<MessageState, String> {
    let reactions = match r.reactions.take() {
        Some(json) => Reactions::from_json(json).map_err(|e| format!("reactions: {e}"))?,
        None => Reactions::none(),
    };
    let reply_to = r.reply_to.map(|id| {
        // The excerpt is there exactly while the replied-to message is.
        let excerpt = r.reply_excerpt.take().map(excerpt_of);
        ReplyTo {
            id,
            user: excerpt.as_ref().and(r.reply_user_id).map(|id| UserRef {
                id,
                username: r.reply_username.take().map(Into::into),
            }),
            excerpt,
        }
    });
    Ok(MessageState {
        edited_at: r.edited_at.take(),
        reply_to,
        mentions: users_of(r.mentions.as_deref())?,
        reactions,
    })
}

/// A stored JSON list of users (`NULL`: none).
pub(super) fn users_of(json: Option<&str>) -> Result<Vec<UserRef>, String> {
    match json {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("mentions: {e}")),
        None => Ok(Vec::new()),
    }
}

/// The excerpt from the start of a body as read (PostgreSQL cuts bytes, maybe inside a
/// character: what is left of it is dropped).
pub(super) fn excerpt_of(bytes: Vec<u8>) -> String {
    let text = String::from_utf8(bytes).unwrap_or_else(|e| {
        let valid = e.utf8_error().valid_up_to();
        let mut bytes = e.into_bytes();
        bytes.truncate(valid);
        String::from_utf8(bytes).unwrap_or_default()
    });
    excerpt(&text)
}

pub(super) fn decode(rows: Vec<Row>) -> sqlx::Result<Vec<StoredMessage>> {
    rows.into_iter().map(StoredMessage::try_from).collect()
}

/// Every read of the log selects this: the row, its author's name and, for a reply, the
/// replied-to message as it is now. `$excerpt` cuts its body: 100 characters on SQLite
/// (`substr` counts characters of TEXT), 400 bytes on PostgreSQL (of BYTEA; 100 characters
/// take at most that).
macro_rules! select_with_excerpt {
    ($excerpt:literal) => {
        concat!(
            "SELECT m.id, m.room, m.user_id, u.username, m.body, m.sent_at, m.kind, m.about, \
             m.edited_at, m.mentions, m.reactions, m.emoji, m.reaction_count, m.reply_to, \
             r.user_id AS reply_user_id, ru.username AS reply_username, ",
            $excerpt,
            " AS reply_excerpt FROM messages m LEFT JOIN users u ON u.id = m.user_id \
             LEFT JOIN messages r ON r.id = m.reply_to \
             LEFT JOIN users ru ON ru.id = r.user_id "
        )
    };
}

pub(super) const SELECT_SQLITE: &str = select_with_excerpt!("substr(r.body, 1, 100)");
pub(super) const SELECT_POSTGRES: &str = select_with_excerpt!("substring(r.body FROM 1 FOR 400)");

/// [`SELECT_SQLITE`] or [`SELECT_POSTGRES`], for the query builder's database.
fn select<DB: Database>() -> &'static str {
    if DB::NAME == sqlx::Postgres::NAME {
        SELECT_POSTGRES
    } else {
        SELECT_SQLITE
    }
}

/// The log's head: the highest id assigned (see [`Db::tail`]). On SQLite, with its single
/// writer, the highest id stored serves.
const HEAD_SQLITE: &str = "SELECT COALESCE(MAX(id), 0) FROM messages";
const HEAD_POSTGRES: &str = "SELECT v FROM message_seq WHERE id = 1";

/// The rows of the log after `$1` up to `$2`, ascending, at most `$3` (see [`Db::tail`]).
const TAIL: &str = "WHERE m.id > $1 AND m.id <= $2 ORDER BY m.id ASC LIMIT $3";
static TAIL_SQLITE: LazyLock<String> = LazyLock::new(|| format!("{SELECT_SQLITE}{TAIL}"));
static TAIL_POSTGRES: LazyLock<String> = LazyLock::new(|| format!("{SELECT_POSTGRES}{TAIL}"));

/// Message `$1` of room `$2`, if it is there.
const ONE: &str = "WHERE m.id = $1 AND m.room = $2 AND m.kind = 0";
static ONE_SQLITE: LazyLock<String> = LazyLock::new(|| format!("{SELECT_SQLITE}{ONE}"));
static ONE_POSTGRES: LazyLock<String> = LazyLock::new(|| format!("{SELECT_POSTGRES}{ONE}"));

/// A history page, newest first unless `after` is set (then oldest first).
fn page_query<DB>(prefix: &str, room: &RoomName, page: Page) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let mut q = QueryBuilder::<DB>::new(format!("{prefix}{}", select::<DB>()));
    // Messages only, through their own index (`kind = 0` written out, as the partial index
    // says it): a room's change events, however many, are not even read.
    q.push("WHERE m.room = ")
        .push_bind(room.as_str().to_owned())
        .push(" AND m.kind = 0");
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
    let mut q = QueryBuilder::<DB>::new(format!("{prefix}{}", select::<DB>()));
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

    /// Message `id` of `room` as it is now; `None` when there is no such message (or it
    /// was deleted).
    pub async fn message(&self, room: &RoomName, id: i64) -> sqlx::Result<Option<StoredMessage>> {
        let one = match &self.backend {
            Backend::Sqlite { .. } => ONE_SQLITE.as_str(),
            Backend::Postgres { .. } => ONE_POSTGRES.as_str(),
        };
        let row: Option<Row> = on_backend!(self, |pool| {
            sqlx::query_as(one)
                .bind(id)
                .bind(room.as_str())
                .fetch_optional(pool)
                .await
        })?;
        row.map(StoredMessage::try_from).transpose()
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
        let tail = match &self.backend {
            Backend::Sqlite { .. } => TAIL_SQLITE.as_str(),
            Backend::Postgres { .. } => TAIL_POSTGRES.as_str(),
        };
        let (v, rows): (i64, Vec<Row>) = on_backend!(self, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            let (v,): (i64,) = sqlx::query_as(head).fetch_one(&mut *tx).await?;
            let rows = sqlx::query_as(tail)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{MessageLog, NewPost, testing};
    use crate::domain::MessageBody;
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
            kind: kind::MESSAGE,
            about: None,
            edited_at: None,
            mentions: None,
            reactions: None,
            emoji: None,
            reaction_count: None,
            reply_to: None,
            reply_user_id: None,
            reply_username: None,
            reply_excerpt: None,
        };
        let bad = StoredMessage::try_from(row(Some("Not A Room")));
        assert!(bad.is_err(), "a corrupt room was read as {bad:?}");
        let broadcast = StoredMessage::try_from(row(None)).expect("a broadcast row");
        assert!(broadcast.is_broadcast());
    }

    /// History pages must read through `messages_room_posts` (messages only, whatever the
    /// change events between them) and replays through `messages_room_id`, never scan the
    /// log. (SQLite's plan; PostgreSQL chooses by table statistics, so a plan there proves
    /// little.)
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
                p.contains("USING INDEX messages_room_posts")
                    || p.contains("USING COVERING INDEX messages_room_posts"),
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
            reply_to: None,
            mentions: Vec::new(),
        }
    }

    async fn append(log: &mut MessageLog, posts: &[NewPost]) -> Vec<Option<StoredMessage>> {
        let batch: Vec<&NewPost> = posts.iter().collect();
        let done = log.append(&batch).await.expect("appended");
        done.iter().map(|a| a.event().cloned()).collect()
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
                (deletion.id, deletion.about()),
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
            assert_eq!(page[1].event_name(), "message_deleted", "{}", t.backend);
            assert_eq!(page[1].about(), Some(2), "{}", t.backend);
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
