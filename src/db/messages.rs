//! The message log: room messages and broadcasts, one id sequence.

use std::ops::RangeInclusive;

use bytes::Bytes;
use serde::Serialize;
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use super::Db;
use crate::{
    domain::{RoomName, UserRef},
    hub::{ReplayFrame, frame},
};

/// A stored room message (`room` set) or broadcast (`room` empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Position in the one id sequence.
    pub id: i64,
    /// The room, or `None` for a broadcast.
    pub room: Option<RoomName>,
    /// Author; `None` for a broadcast sent with the API token.
    pub user: Option<UserRef>,
    /// Trimmed text.
    pub body: String,
    /// RFC 3339 UTC.
    pub sent_at: String,
}

/// The contract's `Message` object.
#[derive(Serialize)]
pub struct MessageJson<'a> {
    id: i64,
    room: &'a RoomName,
    user: &'a UserRef,
    body: &'a str,
    sent_at: &'a str,
}

/// The contract's broadcast object.
#[derive(Serialize)]
pub struct BroadcastJson<'a> {
    id: i64,
    body: &'a str,
    sent_at: &'a str,
}

/// A deleted or token-sent author still needs a shape in `Message.user`.
static NOBODY: std::sync::LazyLock<UserRef> = std::sync::LazyLock::new(|| UserRef {
    id: Uuid::nil(),
    username: "".into(),
});

impl StoredMessage {
    /// As the contract's `Message`; `None` for a broadcast.
    pub fn message_json(&self) -> Option<MessageJson<'_>> {
        Some(MessageJson {
            id: self.id,
            room: self.room.as_ref()?,
            user: self.user.as_ref().unwrap_or(&NOBODY),
            body: &self.body,
            sent_at: &self.sent_at,
        })
    }

    /// As the contract's broadcast object.
    pub fn broadcast_json(&self) -> BroadcastJson<'_> {
        BroadcastJson {
            id: self.id,
            body: &self.body,
            sent_at: &self.sent_at,
        }
    }

    /// The SSE frame: `message` for a room message, `broadcast` otherwise, with `id:`.
    pub fn frame(&self) -> Bytes {
        match self.message_json() {
            Some(m) => frame::encode("message", Some(self.id), &m),
            None => frame::encode("broadcast", Some(self.id), &self.broadcast_json()),
        }
    }

    fn replay_frame(&self) -> ReplayFrame {
        ReplayFrame {
            id: self.id,
            is_broadcast: self.room.is_none(),
            bytes: self.frame(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    room: Option<String>,
    user_id: Option<Uuid>,
    username: Option<String>,
    body: String,
    sent_at: String,
}

impl From<Row> for StoredMessage {
    fn from(r: Row) -> Self {
        StoredMessage {
            id: r.id,
            // Only validated names are ever stored.
            room: r.room.as_deref().and_then(|s| RoomName::parse(s).ok()),
            user: r.user_id.map(|id| UserRef {
                id,
                username: r.username.unwrap_or_default().into(),
            }),
            body: r.body,
            sent_at: r.sent_at,
        }
    }
}

const SELECT: &str = "SELECT m.id, m.room, m.user_id, u.username, m.body, m.sent_at \
                      FROM messages m LEFT JOIN users u ON u.id = m.user_id ";

/// A history page, newest first unless `after` is set (then oldest first).
fn page_query(prefix: &str, room: &RoomName, page: Page) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::<Sqlite>::new(format!("{prefix}{SELECT}"));
    q.push("WHERE m.room = ").push_bind(room.as_str());
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

/// What a resume read back.
pub struct Replay {
    /// Encoded frames, ascending by id.
    pub frames: Vec<ReplayFrame>,
    /// False when `limit` cut older events.
    pub complete: bool,
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
        let mut rows: Vec<StoredMessage> = q
            .build_query_as::<Row>()
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
        if !ascending {
            rows.reverse();
        }
        Ok(rows)
    }

    /// Everything a resuming connection missed in `rooms`, plus the broadcasts it was not
    /// `sent` live: ids in `(after, upto]`, ascending, the newest `limit` of them.
    pub async fn replay_since(
        &self,
        rooms: &[RoomName],
        after: i64,
        upto: i64,
        sent: &RangeInclusive<i64>,
        limit: u32,
    ) -> sqlx::Result<Replay> {
        let mut q = replay_query("", rooms, after, upto, sent, limit);
        let mut rows: Vec<Row> = q.build_query_as().fetch_all(self.pool()).await?;
        let complete = rows.len() <= limit as usize;
        rows.truncate(limit as usize);
        Ok(Replay {
            frames: rows
                .into_iter()
                .rev()
                .map(|r| StoredMessage::from(r).replay_frame())
                .collect(),
            complete,
        })
    }

    /// The last `n` messages (ids up to `upto`) of each room, ascending by id. One indexed
    /// `LIMIT n` read per room: a single windowed query would rank every row of a big room.
    pub async fn recent(
        &self,
        rooms: &[RoomName],
        n: u32,
        upto: i64,
    ) -> sqlx::Result<Vec<ReplayFrame>> {
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
        Ok(all.iter().map(StoredMessage::replay_frame).collect())
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
