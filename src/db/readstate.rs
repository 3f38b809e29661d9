//! A user's room list and read markers (`read_markers`: one row per room in the list), the
//! unread and mention counts read from the log, and full-text search over current bodies.
//!
//! A row exists while the room is in the list: it is written when the user creates the
//! room, is added to it or follows it, and deleted when it unfollows (unless a member) or is
//! removed as a member. Its `last_read_id` only moves forward.

use std::sync::LazyLock;

use sqlx::Database;

use uuid::Uuid;

use super::{Backend, Db, messages};
use crate::domain::{MemberRole, RoomName, SearchQuery, StoredMessage, Visibility, index_words};

/// Counts are exact up to this and report it beyond.
pub const MAX_COUNT: i64 = 1000;

/// A room of the caller's list with its read state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MyRoom {
    /// The room.
    pub name: RoomName,
    /// Public or private (an implicit room is public).
    pub visibility: Visibility,
    /// The caller's membership role; `null` for a room it only follows.
    pub role: Option<MemberRole>,
    /// Messages up to this id are read.
    pub last_read_id: i64,
    /// The room's newest message that still exists (0: none).
    pub last_message_id: i64,
    /// Messages above the marker, not the caller's, that still exist (at most 1,000).
    pub unread: i64,
    /// Those of them that mention the caller (at most 1,000).
    pub mentions: i64,
}

/// A row of the list as read: name, visibility, role, marker, newest, unread, mentions.
type ListRow = (String, Option<String>, Option<String>, i64, i64, i64, i64);

/// The list's rows for user `$1` (`$2` the `LIKE` pattern of its id in a message's
/// mentions), optionally narrowed to one room by the caller. The unread count reads at most
/// [`MAX_COUNT`] + 1 rows through the `(room, id) WHERE kind = 0` index, the mention count
/// only messages that mention someone (their own partial index). A private room
/// the user is no member of any more is left out (its row goes with the membership).
const LIST: &str = "SELECT k.room, r.visibility, mb.role, k.last_read_id, \
     COALESCE((SELECT MAX(m.id) FROM messages m WHERE m.room = k.room AND m.kind = 0), 0), \
     (SELECT COUNT(*) FROM (SELECT 1 FROM messages m WHERE m.room = k.room AND m.kind = 0 \
        AND m.id > k.last_read_id AND (m.user_id IS NULL OR m.user_id <> $1) \
        LIMIT 1001) AS u), \
     (SELECT COUNT(*) FROM (SELECT 1 FROM messages m WHERE m.room = k.room AND m.kind = 0 \
        AND m.mentions IS NOT NULL AND m.id > k.last_read_id \
        AND (m.user_id IS NULL OR m.user_id <> $1) AND m.mentions LIKE $2 LIMIT 1001) AS n) \
     FROM read_markers k LEFT JOIN rooms r ON r.name = k.room \
     LEFT JOIN room_members mb ON mb.room = k.room AND mb.user_id = $1 \
     WHERE k.user_id = $1 AND (r.visibility IS NULL OR r.visibility = 'public' \
        OR mb.role IS NOT NULL) ";

static LIST_ALL: LazyLock<String> = LazyLock::new(|| format!("{LIST}ORDER BY k.room"));
static LIST_ONE: LazyLock<String> = LazyLock::new(|| format!("{LIST}AND k.room = $3"));

/// Enters room `$2` in user `$1`'s list with its marker at the room's newest message;
/// nothing when it is there already.
pub(super) const ENTER: &str = "INSERT INTO read_markers (user_id, room, last_read_id) \
     SELECT $1, $2, COALESCE(MAX(id), 0) FROM messages WHERE room = $2 AND kind = 0 \
     ON CONFLICT (user_id, room) DO NOTHING";

fn stored<T>(what: &str, parsed: Option<T>) -> sqlx::Result<T> {
    parsed.ok_or_else(|| sqlx::Error::Decode(format!("stored {what} does not parse").into()))
}

fn my_room(row: ListRow) -> sqlx::Result<MyRoom> {
    let (name, visibility, role, last_read_id, last_message_id, unread, mentions) = row;
    Ok(MyRoom {
        name: stored("room", RoomName::parse(&name).ok())?,
        visibility: match visibility {
            Some(v) => stored("visibility", Visibility::parse(&v))?,
            None => Visibility::Public,
        },
        role: match role {
            Some(r) => Some(stored("member role", MemberRole::parse(&r))?),
            None => None,
        },
        last_read_id,
        last_message_id,
        unread: unread.min(MAX_COUNT),
        mentions: mentions.min(MAX_COUNT),
    })
}

/// How a user's id appears in a stored mentions list, as a `LIKE` pattern (ids are
/// hyphenated hex: nothing in them is a wildcard).
fn mention_pattern(user: Uuid) -> String {
    format!("%\"{}\"%", user.hyphenated())
}

/// What a marker move did.
#[derive(Debug, Clone)]
pub struct MarkerMove {
    /// The room as the list shows it now.
    pub room: MyRoom,
    /// Whether the marker moved (or the room entered the list).
    pub moved: bool,
}

impl Db {
    /// `user`'s room list, ordered by name.
    pub async fn room_list(&self, user: Uuid) -> sqlx::Result<Vec<MyRoom>> {
        let rows: Vec<ListRow> = on_backend!(self, |pool| {
            sqlx::query_as(LIST_ALL.as_str())
                .bind(user)
                .bind(mention_pattern(user))
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(my_room).collect()
    }

    /// `room` as `user`'s list shows it; `None` when it is not in the list.
    pub async fn room_entry(&self, user: Uuid, room: &RoomName) -> sqlx::Result<Option<MyRoom>> {
        let row: Option<ListRow> = on_backend!(self, |pool| {
            sqlx::query_as(LIST_ONE.as_str())
                .bind(user)
                .bind(mention_pattern(user))
                .bind(room.as_str())
                .fetch_optional(pool)
                .await
        })?;
        row.map(my_room).transpose()
    }

    /// Puts `room` in `user`'s list (marker at its newest message) unless it is there; the
    /// caller checked that `user` may read it.
    pub async fn follow(&self, user: Uuid, room: &RoomName) -> sqlx::Result<()> {
        on_backend!(self, |pool| {
            sqlx::query(ENTER)
                .bind(user)
                .bind(room.as_str())
                .execute(pool)
                .await
                .map(drop)
        })
    }

    /// How many rooms `user`'s list holds, and whether `room` is one of them.
    pub async fn list_size(&self, user: Uuid, room: &RoomName) -> sqlx::Result<(i64, bool)> {
        let (size, here): (i64, i64) = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN room = $2 THEN 1 ELSE 0 END), 0) \
                 FROM read_markers WHERE user_id = $1",
            )
            .bind(user)
            .bind(room.as_str())
            .fetch_one(pool)
            .await
        })?;
        Ok((size, here > 0))
    }

    /// Takes `room` out of `user`'s list, unless it is a member there (then it stays).
    pub async fn unfollow(&self, user: Uuid, room: &RoomName) -> sqlx::Result<()> {
        on_backend!(self, |pool| {
            sqlx::query(
                "DELETE FROM read_markers WHERE user_id = $1 AND room = $2 AND NOT EXISTS \
                 (SELECT 1 FROM room_members mb WHERE mb.room = $2 AND mb.user_id = $1)",
            )
            .bind(user)
            .bind(room.as_str())
            .execute(pool)
            .await
            .map(drop)
        })
    }

    /// Moves `user`'s marker in `room` forward to `to` (an id above the room's newest
    /// message counts as the newest); a room not in the list enters it there.
    pub async fn mark_read(
        &self,
        user: Uuid,
        room: &RoomName,
        to: i64,
    ) -> sqlx::Result<MarkerMove> {
        let moved = on_backend!(self, |pool| {
            sqlx::query(
                "INSERT INTO read_markers (user_id, room, last_read_id) \
                 SELECT $1, $2, CASE WHEN $3 < COALESCE(MAX(id), 0) THEN $3 ELSE COALESCE(MAX(id), 0) END \
                 FROM messages \
                 WHERE room = $2 AND kind = 0 \
                 ON CONFLICT (user_id, room) DO UPDATE SET last_read_id = excluded.last_read_id \
                 WHERE read_markers.last_read_id < excluded.last_read_id",
            )
            .bind(user)
            .bind(room.as_str())
            .bind(to)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        let room = self
            .room_entry(user, room)
            .await?
            .ok_or_else(|| sqlx::Error::RowNotFound)?;
        Ok(MarkerMove {
            room,
            moved: moved > 0,
        })
    }

    /// Messages matching `query` that `user` may read now (public rooms and the private
    /// ones it is a member of; or `room` only, which the caller checked), newest first,
    /// below `before`, at most `limit`.
    pub async fn search(
        &self,
        user: Uuid,
        query: &SearchQuery,
        room: Option<&RoomName>,
        before: Option<i64>,
        limit: u32,
    ) -> sqlx::Result<Vec<StoredMessage>> {
        // The filters every backend applies to `m`, the candidate message.
        fn filters<DB>(q: &mut sqlx::QueryBuilder<DB>, user: Uuid, room: Option<&RoomName>)
        where
            DB: Database,
            for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
            for<'t> Uuid: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        {
            q.push(" AND m.kind = 0 AND m.room IS NOT NULL");
            match room {
                Some(room) => {
                    q.push(" AND m.room = ").push_bind(room.as_str().to_owned());
                }
                None => {
                    q.push(
                        " AND NOT EXISTS (SELECT 1 FROM rooms pr WHERE pr.name = m.room \
                         AND pr.visibility = 'private' AND NOT EXISTS (SELECT 1 FROM \
                         room_members pm WHERE pm.room = pr.name AND pm.user_id = ",
                    )
                    .push_bind(user)
                    .push("))");
                }
            }
        }
        let rows: Vec<messages::Row> = match &self.backend {
            Backend::Sqlite { pool, .. } => {
                // FTS5 walks its matches newest first and stops at the limit; the rows are
                // read after, by id.
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "SELECT message_words.rowid FROM message_words \
                     JOIN messages m ON m.id = message_words.rowid \
                     WHERE message_words MATCH ",
                );
                q.push_bind(query.fts5());
                filters(&mut q, user, room);
                if let Some(before) = before {
                    q.push(" AND message_words.rowid < ").push_bind(before);
                }
                q.push(" ORDER BY message_words.rowid DESC LIMIT ")
                    .push_bind(i64::from(limit));
                let ids: Vec<(i64,)> = q.build_query_as().fetch_all(pool).await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(messages::SELECT_SQLITE);
                q.push("WHERE m.id IN (");
                let mut list = q.separated(", ");
                for (id,) in ids {
                    list.push_bind(id);
                }
                q.push(") ORDER BY m.id DESC");
                q.build_query_as().fetch_all(pool).await?
            }
            Backend::Postgres { pool, .. } => {
                let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(messages::SELECT_POSTGRES);
                q.push("WHERE m.words @@ CAST(")
                    .push_bind(query.tsquery())
                    .push(" AS tsquery)");
                filters(&mut q, user, room);
                if let Some(before) = before {
                    q.push(" AND m.id < ").push_bind(before);
                }
                q.push(" ORDER BY m.id DESC LIMIT ")
                    .push_bind(i64::from(limit));
                q.build_query_as().fetch_all(pool).await?
            }
        };
        messages::decode(rows)
    }

    /// Indexes for search the messages stored before the index existed (or written
    /// straight into the database, as the bench does), once: while `search_backfill` has
    /// its row. Taking the row out first makes one node of a cluster do it; the others wait
    /// on that row and find it gone.
    pub async fn backfill_search(&self) -> sqlx::Result<()> {
        const PAGE: i64 = 2000;
        on_backend!(self, |pool, DB| {
            let mut tx = pool.begin().await?;
            let pending = sqlx::query("DELETE FROM search_backfill WHERE id = 1")
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if pending == 0 {
                return tx.commit().await;
            }
            let mut after = 0_i64;
            loop {
                let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT id, body FROM messages WHERE id > $1 AND kind = 0 \
                     AND room IS NOT NULL ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(PAGE)
                .fetch_all(&mut *tx)
                .await?;
                let Some(last) = rows.last() else { break };
                after = last.0;
                let mut ids = Vec::with_capacity(rows.len());
                let mut words = Vec::with_capacity(rows.len());
                for (id, body) in rows {
                    ids.push(id);
                    // Words hold no ASCII space: the joined list splits back exactly.
                    words.push(index_words(&String::from_utf8_lossy(&body)).join(" "));
                }
                if DB::NAME == sqlx::Postgres::NAME {
                    let mut q = sqlx::QueryBuilder::<DB>::new(
                        "UPDATE messages m SET words = array_to_tsvector(\
                         array_remove(string_to_array(v.w, ' '), '')) FROM (VALUES ",
                    );
                    let mut list = q.separated(", ");
                    for (id, w) in ids.iter().zip(&words) {
                        list.push("(")
                            .push_bind_unseparated(*id)
                            .push_unseparated(", ")
                            .push_bind_unseparated(w.clone())
                            .push_unseparated(")");
                    }
                    q.push(") AS v (id, w) WHERE m.id = v.id");
                    q.build().execute(&mut *tx).await?;
                } else {
                    for (id, w) in ids.iter().zip(&words) {
                        sqlx::query(
                            "INSERT OR REPLACE INTO message_words (rowid, words) VALUES ($1, $2)",
                        )
                        .bind(*id)
                        .bind(w.clone())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            tx.commit().await
        })
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{PgPool, SqlitePool};

    use super::*;
    use crate::config::Settings;
    use crate::db::{MIGRATOR, PG_MIGRATOR, testing::PG_ENV};

    /// The last migration before the room list.
    const BEFORE: i64 = 20261208000002;

    /// Writes, on a database migrated up to [`BEFORE`]: users `u` (kept `joined` rooms
    /// `lobby`, `secret`, `open`) and `o` (owner of the private room `secret`), and message
    /// 5 of `lobby`.
    const SEED: [&str; 6] = [
        "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, 'u', 'x', '')",
        "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, 'o', 'x', '')",
        "INSERT INTO rooms (name, visibility, owner_id, created_at) VALUES ('secret', 'private', $1, '')",
        "INSERT INTO room_members (room, user_id, role, added_at) VALUES ('secret', $1, 'owner', '')",
        "INSERT INTO joined_rooms (user_id, rooms) VALUES ($1, '[\"lobby\",\"secret\",\"open\"]')",
        "INSERT INTO messages (id, room, user_id, body, sent_at, kind) VALUES (5, 'lobby', $1, $2, '', 0)",
    ];

    async fn check(url: &str, u: Uuid, o: Uuid, backend: &str) {
        let mut s = Settings::defaults().database;
        s.url = url.to_owned();
        let db = Db::connect(&s).await.expect("migrated the rest");
        let names = |rooms: Vec<MyRoom>| -> Vec<(String, i64)> {
            rooms
                .into_iter()
                .map(|r| (r.name.as_str().to_owned(), r.last_read_id))
                .collect()
        };
        assert_eq!(
            names(db.room_list(u).await.expect("u's list")),
            [("lobby".to_owned(), 5), ("open".to_owned(), 0)],
            "{backend}: the kept rooms became follows, but the private room of another"
        );
        assert_eq!(
            names(db.room_list(o).await.expect("o's list")),
            [("secret".to_owned(), 0)],
            "{backend}: a member's room is listed"
        );
        let q = SearchQuery::parse("stored befo").expect("query");
        let found = db.search(u, &q, None, None, 10).await.expect("search");
        let ids: Vec<i64> = found.iter().map(|m| m.id).collect();
        assert_eq!(
            ids,
            [5],
            "{backend}: a message stored before the index is found"
        );
        db.close().await;
    }

    #[tokio::test]
    async fn the_migration_turns_kept_rooms_into_follows_and_indexes_old_messages() {
        let (u, o) = (Uuid::new_v4(), Uuid::new_v4());
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let pool = SqlitePool::connect(&url).await.expect("sqlite");
        MIGRATOR
            .run_to(BEFORE, &pool)
            .await
            .expect("older migrations");
        for (sql, id) in SEED.iter().zip([u, o, o, o, u, o]) {
            let q = sqlx::query(*sql).bind(id);
            let q = if sql.contains("$2") {
                q.bind("Stored before the index".as_bytes())
            } else {
                q
            };
            q.execute(&pool).await.expect("seed");
        }
        pool.close().await;
        check(&url, u, o, "sqlite").await;

        let Ok(base) = std::env::var(PG_ENV) else {
            return;
        };
        let url = Db::create_test_schema(&base).await.expect("schema");
        let pool = PgPool::connect(&url).await.expect("postgres");
        PG_MIGRATOR
            .run_to(BEFORE, &pool)
            .await
            .expect("older migrations");
        for (sql, id) in SEED.iter().zip([u, o, o, o, u, o]) {
            let q = sqlx::query(*sql).bind(id);
            let q = if sql.contains("$2") {
                q.bind("Stored before the index".as_bytes())
            } else {
                q
            };
            q.execute(&pool).await.expect("seed");
        }
        pool.close().await;
        check(&url, u, o, "postgres").await;
    }
}
