//! Accounts.

/// `record_change!(tx, user_id, channel)`: inserts an account change row in `tx` and, on
/// PostgreSQL (`channel` is `Some`), queues [`ACCOUNTS_CHANGED`] on the cluster's channel,
/// sent when `tx` commits. A macro so one text serves both backends' transactions.
macro_rules! record_change {
    ($tx:ident, $user:expr, $channel:expr) => {
        sqlx::query("INSERT INTO account_changes (user_id, at) VALUES ($1, $2)")
            .bind($user)
            .bind(chrono::Utc::now().timestamp())
            .execute(&mut *$tx)
            .await?;
        if let Some(channel) = $channel {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(ACCOUNTS_CHANGED)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// Who brings an account change to the open streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliedBy {
    /// The caller, on every node, at once (the admin API, which answers how many streams it
    /// closed): nothing is recorded.
    Caller,
    /// Every running server, from the account change log (the command line, beside them).
    Servers,
}

/// The notification an account change sends on the cluster's channel (the bus decodes it
/// as its `accounts` message): every node then reads the changes.
pub const ACCOUNTS_CHANGED: &str = r#"{"k":"accounts"}"#;

use uuid::Uuid;

use super::{Db, now_rfc3339};
use crate::domain::{Emoji, Role, RoomName, User, UserRef, Username};

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// The name is taken (in any letter case).
    #[error("username is taken")]
    Taken,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    username: String,
    role: String,
    password_hash: String,
}

impl UserRow {
    fn user(&self) -> User {
        User {
            id: self.id,
            username: self.username.clone(),
            // The CHECK constraint admits only these two.
            role: Role::parse(&self.role).unwrap_or(Role::User),
        }
    }
}

impl Db {
    /// Creates an account with an already computed password hash.
    pub async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        role: Role,
    ) -> Result<User, CreateUserError> {
        let id = Uuid::new_v4();
        let res = on_backend!(self, |pool| {
            sqlx::query(
                "INSERT INTO users (id, username, password_hash, role, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(username.as_str())
            .bind(password_hash)
            .bind(role.as_str())
            .bind(now_rfc3339())
            .execute(pool)
            .await
            .map(drop)
        });
        match res {
            Ok(_) => Ok(User {
                id,
                username: username.as_str().to_owned(),
                role,
            }),
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Err(CreateUserError::Taken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The user and password hash for a login name (any letter case).
    pub async fn user_for_login(&self, username: &str) -> sqlx::Result<Option<(User, String)>> {
        if !username.is_ascii() {
            // Stored names are ASCII, and SQLite's lower() folds ASCII only. PostgreSQL's
            // lower() of the argument would fold by Unicode (the Kelvin sign to `k`), letting
            // a different name log in; no non-ASCII name matches on either backend.
            return Ok(None);
        }
        let row: Option<UserRow> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT id, username, role, password_hash FROM users \
                 WHERE lower(username) = lower($1)",
            )
            .bind(username)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|r| (r.user(), r.password_hash)))
    }

    /// A user by id; a banned account is no user (its sessions are worthless).
    pub async fn user_by_id(&self, id: Uuid) -> sqlx::Result<Option<User>> {
        if let Some(user) = self.cache.as_ref().and_then(|c| c.users.get(&id)) {
            return Ok(Some(user));
        }
        let seen = self.cache.as_ref().map(|c| c.users.generation());
        let row: Option<UserRow> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT id, username, role, password_hash FROM users WHERE id = $1 AND NOT banned",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        let user = row.map(|r| r.user());
        if let (Some(cache), Some(seen), Some(user)) = (&self.cache, seen, &user) {
            cache.users.put(id, user.clone(), seen);
        }
        Ok(user)
    }

    /// Whether the account is banned.
    pub async fn is_banned(&self, id: Uuid) -> sqlx::Result<bool> {
        // The cache holds accounts that are not banned, and a ban forgets the account when
        // it commits, before the banned user's streams are closed.
        if self
            .cache
            .as_ref()
            .is_some_and(|c| c.users.get(&id).is_some())
        {
            return Ok(false);
        }
        let (banned,): (bool,) = on_backend!(self, |pool| {
            sqlx::query_as("SELECT banned FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?
        .unwrap_or((false,));
        Ok(banned)
    }

    /// Bans or unbans an account; a ban also deletes its sessions. `None` when there is no
    /// such user. Recorded as an account change (see [`Db::account_changes`]) when the
    /// running servers are to apply it.
    pub async fn set_banned(
        &self,
        username: &str,
        banned: bool,
        by: AppliedBy,
    ) -> sqlx::Result<Option<User>> {
        let Some((user, _)) = self.user_for_login(username).await? else {
            return Ok(None);
        };
        // actix-session keeps each entry JSON-encoded: the id is stored as "\"<uuid>\"". The
        // state is JSON text on both backends, read with each one's JSON function (`json`,
        // not `jsonb`, on PostgreSQL: it parses only the field read, so a `\u0000` elsewhere
        // in some session cannot fail the ban).
        let drop_sessions = if self.is_postgres() {
            "DELETE FROM sessions WHERE (state::json ->> 'user_id') = $1"
        } else {
            "DELETE FROM sessions WHERE json_extract(state, '$.user_id') = $1"
        };
        let channel = self.notify_channel();
        on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE users SET banned = $1 WHERE id = $2")
                .bind(banned)
                .bind(user.id)
                .execute(&mut *tx)
                .await?;
            if banned {
                sqlx::query(drop_sessions)
                    .bind(format!("\"{}\"", user.id))
                    .execute(&mut *tx)
                    .await?;
            }
            if by == AppliedBy::Servers {
                record_change!(tx, user.id, channel);
            }
            tx.commit().await?;
        });
        self.forget_account(user.id);
        Ok(Some(user))
    }

    /// Sets a user's role; `None` when there is no such user. Recorded as an account change
    /// (see [`Db::account_changes`]) when the running servers are to apply it.
    pub async fn set_role(
        &self,
        username: &str,
        role: Role,
        by: AppliedBy,
    ) -> sqlx::Result<Option<User>> {
        let Some((user, _)) = self.user_for_login(username).await? else {
            return Ok(None);
        };
        let channel = self.notify_channel();
        on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                .bind(role.as_str())
                .bind(user.id)
                .execute(&mut *tx)
                .await?;
            if by == AppliedBy::Servers {
                record_change!(tx, user.id, channel);
            }
            tx.commit().await?;
        });
        self.forget_account(user.id);
        Ok(Some(User { role, ..user }))
    }

    /// The reactions `user` holds, as `(room, message id, emoji)`: at most `limit`, oldest
    /// first. The account's deletion takes them back one by one through the writer, so
    /// every message's reaction list and the `reaction` events stay in step.
    pub async fn reactions_held(
        &self,
        user: Uuid,
        limit: u32,
    ) -> sqlx::Result<Vec<(RoomName, i64, Emoji)>> {
        let rows: Vec<(Option<String>, i64, String)> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT m.room, r.message_id, r.emoji FROM reactions r \
                 JOIN messages m ON m.id = r.message_id \
                 WHERE r.user_id = $1 ORDER BY r.seq LIMIT $2",
            )
            .bind(user)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })?;
        let bad = |what: &str| sqlx::Error::Decode(format!("stored reaction: {what}").into());
        rows.into_iter()
            .map(|(room, id, emoji)| {
                let room = room.as_deref().map(RoomName::parse);
                let Some(Ok(room)) = room else {
                    return Err(bad("room"));
                };
                let emoji = Emoji::parse(&emoji).map_err(|_| bad("emoji"))?;
                Ok((room, id, emoji))
            })
            .collect()
    }

    /// Deletes the account: its sessions, and its row, which takes its tokens, memberships,
    /// joined rooms and remaining reactions with it (`ON DELETE CASCADE`) and leaves the
    /// rooms it owned without an owner (`ON DELETE SET NULL`). Its messages keep its id.
    /// False when there was no such account.
    pub async fn delete_user(&self, user: Uuid) -> sqlx::Result<bool> {
        let drop_sessions = if self.is_postgres() {
            "DELETE FROM sessions WHERE (state::json ->> 'user_id') = $1"
        } else {
            "DELETE FROM sessions WHERE json_extract(state, '$.user_id') = $1"
        };
        let deleted = on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(drop_sessions)
                .bind(format!("\"{user}\""))
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(user)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            n > 0
        });
        // Rooms it owned are cached with its name, under every viewer.
        if let Some(cache) = &self.cache {
            cache.forget_all();
        }
        Ok(deleted)
    }

    /// Forgets what the read cache holds of `user`: its row, its sessions, and the rooms as
    /// it saw them (its role decides what it may see).
    pub fn forget_account(&self, user: Uuid) {
        if let Some(cache) = &self.cache {
            cache.users.forget(&user);
            // Sessions keep the id JSON-encoded, as the ban's DELETE matches it.
            let id = format!("\"{user}\"");
            cache
                .sessions
                .forget_where(|_, (state, _)| state.get("user_id") == Some(&id));
            cache
                .rooms
                .forget_where(|(_, viewer), _| *viewer == Some(user));
        }
    }

    /// The account as it stands in the database now (never from the cache): whether it is
    /// banned, and its role. `None` when there is no such user.
    pub async fn account_standing(&self, user: Uuid) -> sqlx::Result<Option<(bool, Role)>> {
        let row: Option<(bool, String)> = on_backend!(self, |pool| {
            sqlx::query_as("SELECT banned, role FROM users WHERE id = $1")
                .bind(user)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(banned, role)| (banned, Role::parse(&role).unwrap_or(Role::User))))
    }

    /// The accounts banned, unbanned or re-roled after change `after` (by anyone: this
    /// server, another node, the command line), and the id to pass next time.
    pub async fn account_changes(&self, after: i64) -> sqlx::Result<(Vec<Uuid>, i64)> {
        let rows: Vec<(i64, Uuid)> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT id, user_id FROM account_changes WHERE id > $1 ORDER BY id LIMIT 1000",
            )
            .bind(after)
            .fetch_all(pool)
            .await
        })?;
        let next = rows.last().map_or(after, |(id, _)| *id);
        let mut users: Vec<Uuid> = rows.into_iter().map(|(_, user)| user).collect();
        users.sort_unstable();
        users.dedup();
        Ok((users, next))
    }

    /// The last account change recorded (0 when none): a server starting now has no stream
    /// that an earlier one could concern.
    pub async fn last_account_change(&self) -> sqlx::Result<i64> {
        let (id,): (Option<i64>,) = on_backend!(self, |pool| {
            sqlx::query_as("SELECT MAX(id) FROM account_changes")
                .fetch_one(pool)
                .await
        })?;
        Ok(id.unwrap_or(0))
    }

    /// Deletes account changes older than `secs` seconds; every server has long read them.
    pub async fn prune_account_changes(&self, secs: i64) -> sqlx::Result<()> {
        let before = chrono::Utc::now().timestamp() - secs;
        on_backend!(self, |pool| {
            sqlx::query("DELETE FROM account_changes WHERE at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Every account, by name.
    pub async fn list_users(&self) -> sqlx::Result<Vec<User>> {
        let rows: Vec<UserRow> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT id, username, role, password_hash FROM users ORDER BY lower(username)",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.iter().map(UserRow::user).collect())
    }

    /// Of `names` (as `domain::mentioned_names` found them in a body), the users who exist
    /// and may read `room`, in the order of `names`: anyone not banned, and in a private
    /// room only its members and admins. One indexed read.
    pub async fn mentionable(
        &self,
        room: &RoomName,
        private: bool,
        names: &[&str],
    ) -> sqlx::Result<Vec<UserRef>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Uuid, String)> = on_backend!(self, |pool, DB| {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "SELECT u.id, u.username FROM users u WHERE NOT u.banned AND lower(u.username) IN (",
            );
            let mut list = q.separated(", ");
            for name in names {
                // Names are ASCII, so this is SQL's lower() of them on both backends.
                list.push_bind(name.to_ascii_lowercase());
            }
            q.push(")");
            if private {
                q.push(
                    " AND (u.role = 'admin' OR EXISTS (SELECT 1 FROM room_members m \
                     WHERE m.user_id = u.id AND m.room = ",
                )
                .push_bind(room.as_str().to_owned())
                .push("))");
            }
            q.build_query_as().fetch_all(pool).await
        })?;
        Ok(names
            .iter()
            .filter_map(|name| {
                let (id, username) = rows.iter().find(|(_, u)| u.eq_ignore_ascii_case(name))?;
                Some(UserRef {
                    id: *id,
                    username: Some(username.as_str().into()),
                })
            })
            .collect())
    }
}
