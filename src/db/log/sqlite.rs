//! The SQLite side of [`super::LogTx`]: rusqlite statements on the writer's connection,
//! inside one `BEGIN IMMEDIATE` transaction per batch. Nothing here awaits: each step runs
//! to its end on the writer's thread.

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{Appended, Edit, LogTx, NewPost, apply, columns};
use crate::domain::{
    Emoji, MAX_REACTION_USERS, ReplyTo, RoomName, StoredMessage, UserRef, excerpt,
};

/// Appends `batch` in one transaction: all of it, or (on any error) none of it.
pub(super) async fn append(
    conn: &mut Connection,
    batch: &[&NewPost],
    sent_at: &str,
) -> anyhow::Result<Vec<Appended>> {
    // By hand rather than `rusqlite::Transaction`, which borrows the connection shared and
    // so could not be held across `apply`'s (never pending) awaits on a `Send` task.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = match apply(&mut SqliteTx { conn }, batch, sent_at).await {
        Ok(out) => conn
            .execute_batch("COMMIT")
            .map(|()| out)
            .map_err(Into::into),
        Err(e) => Err(e),
    };
    if done.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    done
}

struct SqliteTx<'c> {
    conn: &'c mut Connection,
}

/// A user id is the 16-byte BLOB sqlx writes and reads for a `Uuid`.
fn blob(id: &Uuid) -> &[u8] {
    id.as_bytes().as_slice()
}

fn uuid(bytes: Vec<u8>) -> rusqlite::Result<Uuid> {
    Uuid::from_slice(&bytes).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Adds message `id`'s words to the search index (space-separated: the `ascii` tokenizer
/// splits on ASCII separators only, and a word holds none).
fn index(conn: &Connection, id: i64, words: &[String]) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO message_words (rowid, words) VALUES ($1, $2)")?
        .execute(params![id, words.join(" ")])?;
    Ok(())
}

impl LogTx for SqliteTx<'_> {
    async fn lock(&mut self, _ids: &[i64]) -> anyhow::Result<()> {
        // `BEGIN IMMEDIATE` holds the database's one write lock already.
        Ok(())
    }

    async fn delete_message(&mut self, room: &RoomName, id: i64) -> anyhow::Result<bool> {
        let gone = self
            .conn
            .prepare_cached("DELETE FROM messages WHERE id = $1 AND room = $2 AND kind = 0")?
            .execute(params![id, room.as_str()])?;
        if gone == 0 {
            return Ok(false);
        }
        self.conn
            .prepare_cached("DELETE FROM messages WHERE about = $1")?
            .execute([id])?;
        self.conn
            .prepare_cached("DELETE FROM reactions WHERE message_id = $1")?
            .execute([id])?;
        self.conn
            .prepare_cached("DELETE FROM message_words WHERE rowid = $1")?
            .execute([id])?;
        Ok(true)
    }

    async fn edit_message(&mut self, e: &Edit<'_>) -> anyhow::Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE messages SET body = $1, edited_at = $2, mentions = $3 \
                 WHERE id = $4 AND room = $5 AND kind = 0 AND user_id = $6",
            )?
            .execute(params![
                e.body,
                e.edited_at,
                e.mentions,
                e.message_id,
                e.room.as_str(),
                blob(&e.author)
            ])?;
        if n == 1 {
            // The index holds the current body only.
            self.conn
                .prepare_cached("DELETE FROM message_words WHERE rowid = $1")?
                .execute([e.message_id])?;
            index(self.conn, e.message_id, &e.words)?;
        }
        Ok(n == 1)
    }

    async fn reply_target(&mut self, room: &RoomName, id: i64) -> anyhow::Result<Option<ReplyTo>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT m.user_id, u.username, substr(m.body, 1, 100) FROM messages m \
                 LEFT JOIN users u ON u.id = m.user_id \
                 WHERE m.id = $1 AND m.room = $2 AND m.kind = 0",
            )?
            .query_row(params![id, room.as_str()], |r| {
                let user: Option<Vec<u8>> = r.get(0)?;
                let name: Option<String> = r.get(1)?;
                let start: String = r.get(2)?;
                let user = match user {
                    Some(bytes) => Some(UserRef {
                        id: uuid(bytes)?,
                        username: name.map(Into::into),
                    }),
                    None => None,
                };
                Ok((user, start))
            })
            .optional()?;
        Ok(row.map(|(user, start)| ReplyTo {
            id,
            user,
            excerpt: Some(excerpt(&start)),
        }))
    }

    async fn reactions(
        &mut self,
        room: &RoomName,
        id: i64,
    ) -> anyhow::Result<Option<Option<String>>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT reactions FROM messages WHERE id = $1 AND room = $2 AND kind = 0",
            )?
            .query_row(params![id, room.as_str()], |r| r.get(0))
            .optional()?)
    }

    async fn add_holder(&mut self, id: i64, emoji: &Emoji, user: Uuid) -> anyhow::Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO reactions (message_id, emoji, user_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (message_id, emoji, user_id) DO NOTHING",
            )?
            .execute(params![id, emoji.as_str(), blob(&user)])?;
        Ok(n == 1)
    }

    async fn remove_holder(&mut self, id: i64, emoji: &Emoji, user: Uuid) -> anyhow::Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3",
            )?
            .execute(params![id, emoji.as_str(), blob(&user)])?;
        Ok(n == 1)
    }

    async fn first_holders(&mut self, id: i64, emoji: &Emoji) -> anyhow::Result<Vec<UserRef>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.user_id, u.username FROM reactions r JOIN users u ON u.id = r.user_id \
             WHERE r.message_id = $1 AND r.emoji = $2 ORDER BY r.seq LIMIT $3",
        )?;
        let rows = stmt.query_map(
            params![id, emoji.as_str(), MAX_REACTION_USERS as i64],
            |r| {
                Ok(UserRef {
                    id: uuid(r.get(0)?)?,
                    username: Some(r.get::<_, String>(1)?.into()),
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    async fn set_reactions(&mut self, id: i64, json: Option<&str>) -> anyhow::Result<()> {
        self.conn
            .prepare_cached("UPDATE messages SET reactions = $1 WHERE id = $2")?
            .execute(params![json, id])?;
        Ok(())
    }

    async fn insert(&mut self, events: &mut [&mut StoredMessage]) -> anyhow::Result<()> {
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO messages (room, user_id, body, sent_at, kind, about, reply_to, \
             mentions, emoji, reaction_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )?;
        for event in events.iter_mut() {
            let c = columns(event)?;
            insert.execute(params![
                event.room.as_ref().map(RoomName::as_str),
                event.user.as_ref().map(|u| blob(&u.id)),
                event.body,
                event.sent_at,
                c.kind,
                c.about,
                c.reply_to,
                c.mentions,
                c.emoji,
                c.reaction_count,
            ])?;
            let words = c.words;
            event.id = self.conn.last_insert_rowid();
            if let Some(words) = words {
                index(self.conn, event.id, &words)?;
            }
        }
        Ok(())
    }
}
