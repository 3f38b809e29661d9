//! The PostgreSQL side of [`super::LogTx`]: sqlx statements inside one transaction per
//! batch, on a database that other nodes' writers share.

use sqlx::{Connection, PgConnection, QueryBuilder};
use uuid::Uuid;

use super::{Appended, Edit, LogTx, NewPost, apply, columns};
use crate::db::messages::excerpt_of;
use crate::domain::{Emoji, MAX_REACTION_USERS, ReplyTo, RoomName, StoredMessage, UserRef};

/// Appends `batch` in one transaction, then NOTIFYs `channel` (delivered at commit, and
/// only if it commits) when it stored any event.
pub(super) async fn append(
    conn: &mut PgConnection,
    channel: &str,
    batch: &[&NewPost],
    sent_at: &str,
) -> anyhow::Result<Vec<Appended>> {
    let mut tx = conn.begin().await?;
    let out = apply(&mut PgTx { conn: &mut tx }, batch, sent_at).await?;
    if out.iter().any(|a| a.event().is_some()) {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(channel)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(out)
}

struct PgTx<'c> {
    conn: &'c mut PgConnection,
}

impl LogTx for PgTx<'_> {
    async fn lock(&mut self, ids: &[i64]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // In id order on every node: two batches never wait for each other in a circle.
        sqlx::query("SELECT id FROM messages WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(ids)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn delete_message(&mut self, room: &RoomName, id: i64) -> anyhow::Result<bool> {
        let gone = sqlx::query("DELETE FROM messages WHERE id = $1 AND room = $2 AND kind = 0")
            .bind(id)
            .bind(room.as_str())
            .execute(&mut *self.conn)
            .await?
            .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM messages WHERE about = $1")
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        sqlx::query("DELETE FROM reactions WHERE message_id = $1")
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        Ok(true)
    }

    async fn edit_message(&mut self, e: &Edit<'_>) -> anyhow::Result<bool> {
        let n = sqlx::query(
            "UPDATE messages SET body = $1, edited_at = $2, mentions = $3, \
             words = array_to_tsvector($7) \
             WHERE id = $4 AND room = $5 AND kind = 0 AND user_id = $6",
        )
        .bind(e.body.as_bytes())
        .bind(e.edited_at)
        .bind(e.mentions.as_deref())
        .bind(e.message_id)
        .bind(e.room.as_str())
        .bind(e.author)
        .bind(&e.words)
        .execute(&mut *self.conn)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn reply_target(&mut self, room: &RoomName, id: i64) -> anyhow::Result<Option<ReplyTo>> {
        let row: Option<(Option<Uuid>, Option<String>, Vec<u8>)> = sqlx::query_as(
            "SELECT m.user_id, u.username, substring(m.body FROM 1 FOR 400) FROM messages m \
             LEFT JOIN users u ON u.id = m.user_id \
             WHERE m.id = $1 AND m.room = $2 AND m.kind = 0",
        )
        .bind(id)
        .bind(room.as_str())
        .fetch_optional(&mut *self.conn)
        .await?;
        Ok(row.map(|(user, name, start)| ReplyTo {
            id,
            user: user.map(|id| UserRef {
                id,
                username: name.map(Into::into),
            }),
            excerpt: Some(excerpt_of(start)),
        }))
    }

    async fn reactions(
        &mut self,
        room: &RoomName,
        id: i64,
    ) -> anyhow::Result<Option<Option<String>>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT reactions FROM messages WHERE id = $1 AND room = $2 AND kind = 0",
        )
        .bind(id)
        .bind(room.as_str())
        .fetch_optional(&mut *self.conn)
        .await?;
        Ok(row.map(|(json,)| json))
    }

    async fn add_holder(&mut self, id: i64, emoji: &Emoji, user: Uuid) -> anyhow::Result<bool> {
        let n = sqlx::query(
            "INSERT INTO reactions (message_id, emoji, user_id) VALUES ($1, $2, $3) \
             ON CONFLICT (message_id, emoji, user_id) DO NOTHING",
        )
        .bind(id)
        .bind(emoji.as_str())
        .bind(user)
        .execute(&mut *self.conn)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn remove_holder(&mut self, id: i64, emoji: &Emoji, user: Uuid) -> anyhow::Result<bool> {
        let n = sqlx::query(
            "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3",
        )
        .bind(id)
        .bind(emoji.as_str())
        .bind(user)
        .execute(&mut *self.conn)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn first_holders(&mut self, id: i64, emoji: &Emoji) -> anyhow::Result<Vec<UserRef>> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT r.user_id, u.username FROM reactions r JOIN users u ON u.id = r.user_id \
             WHERE r.message_id = $1 AND r.emoji = $2 ORDER BY r.seq LIMIT $3",
        )
        .bind(id)
        .bind(emoji.as_str())
        .bind(MAX_REACTION_USERS as i64)
        .fetch_all(&mut *self.conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| UserRef {
                id,
                username: Some(name.into()),
            })
            .collect())
    }

    async fn set_reactions(&mut self, id: i64, json: Option<&str>) -> anyhow::Result<()> {
        sqlx::query("UPDATE messages SET reactions = $1 WHERE id = $2")
            .bind(json)
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn insert(&mut self, events: &mut [&mut StoredMessage]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        // Ids come from the one `message_seq` row, not a sequence: the UPDATE locks that
        // row until this transaction commits, so every writer on every node sharing the
        // database commits in id order. A reader that sees `v` committed therefore sees
        // every id up to `v` that was not deleted, and a cursor can move past gaps safely
        // (`Db::tail`). A sequence would let a later id commit first and a reader skip an
        // earlier one for good.
        let n = i64::try_from(events.len())?;
        let (last,): (i64,) =
            sqlx::query_as("UPDATE message_seq SET v = v + $1 WHERE id = 1 RETURNING v")
                .bind(n)
                .fetch_one(&mut *self.conn)
                .await?;
        for (e, id) in events.iter_mut().zip(last - n + 1..) {
            e.id = id;
        }
        let rows = events
            .iter()
            .map(|e| Ok((&**e, columns(e)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut q = QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO messages (id, room, user_id, body, sent_at, kind, about, reply_to, \
             mentions, emoji, reaction_count, words) ",
        );
        q.push_values(&rows, |mut row, (e, c)| {
            row.push_bind(e.id)
                .push_bind(e.room.as_ref().map(|r| r.as_str().to_owned()))
                .push_bind(e.user.as_ref().map(|u| u.id))
                .push_bind(e.body.as_bytes().to_vec())
                .push_bind(e.sent_at.clone())
                .push_bind(c.kind)
                .push_bind(c.about)
                .push_bind(c.reply_to)
                .push_bind(c.mentions.clone())
                .push_bind(c.emoji.map(str::to_owned))
                .push_bind(c.reaction_count)
                .push("array_to_tsvector(")
                .push_bind_unseparated(c.words.clone())
                .push_unseparated(")");
        });
        q.build().execute(&mut *self.conn).await?;
        Ok(())
    }
}
