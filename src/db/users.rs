//! Accounts.

use uuid::Uuid;

use super::{Db, now_rfc3339};
use crate::domain::{Role, RoomName, User, UserRef, Username};

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
    /// such user.
    pub async fn set_banned(&self, username: &str, banned: bool) -> sqlx::Result<Option<User>> {
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
            tx.commit().await?;
        });
        if let Some(cache) = &self.cache {
            cache.users.forget(&user.id);
            // The sessions the DELETE above matched, by the same JSON-encoded id.
            let id = format!("\"{}\"", user.id);
            cache
                .sessions
                .forget_where(|_, (state, _)| state.get("user_id") == Some(&id));
        }
        Ok(Some(user))
    }

    /// Sets a user's role; `None` when there is no such user.
    pub async fn set_role(&self, username: &str, role: Role) -> sqlx::Result<Option<User>> {
        if !username.is_ascii() {
            // As in `user_for_login`: no non-ASCII name matches.
            return Ok(None);
        }
        on_backend!(self, |pool| {
            sqlx::query("UPDATE users SET role = $1 WHERE lower(username) = lower($2)")
                .bind(role.as_str())
                .bind(username)
                .execute(pool)
                .await
                .map(drop)
        })?;
        if let Some(cache) = &self.cache {
            // Role changes are rare: forgetting every user is simpler than finding one.
            cache.users.forget_where(|_, _| true);
        }
        Ok(self.user_for_login(username).await?.map(|(u, _)| u))
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
                    username: username.as_str().into(),
                })
            })
            .collect())
    }
}
