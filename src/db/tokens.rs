//! Personal access tokens: stored as the SHA-256 of their secret, found by it.

use uuid::Uuid;

use super::{Db, now_rfc3339};
use crate::domain::{Role, TokenName, User};

/// A token as its owner sees it (never the secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRecord {
    /// Its id.
    pub id: Uuid,
    /// What its owner called it.
    pub name: String,
    /// When it was made (RFC 3339 UTC).
    pub created_at: String,
    /// When it was last used, at most a minute stale; `None` when never.
    pub last_used_at: Option<String>,
}

/// The token a secret's hash names, with its user.
#[derive(Debug, Clone)]
pub struct TokenOwner {
    /// The token's id.
    pub token_id: Uuid,
    /// The stored hash (the caller compares it in constant time).
    pub secret_hash: String,
    /// Its user.
    pub user: User,
    /// Whether that user is banned.
    pub banned: bool,
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateTokenError {
    /// The user holds as many as it may.
    #[error("too many tokens")]
    TooMany,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct OwnerRow {
    token_id: Uuid,
    secret_hash: String,
    user_id: Uuid,
    username: String,
    role: String,
    banned: bool,
}

impl Db {
    /// Stores a new token of `user` whose secret hashes to `secret_hash`, unless the user
    /// holds `max` already. The user's row is locked first, so two at once count right.
    pub async fn create_token(
        &self,
        user: Uuid,
        name: &TokenName,
        secret_hash: &str,
        max: usize,
    ) -> Result<TokenRecord, CreateTokenError> {
        let lock = if self.is_postgres() {
            "SELECT 1 FROM users WHERE id = $1 FOR UPDATE"
        } else {
            // A write takes SQLite's one write lock for the rest of the transaction.
            "UPDATE users SET banned = banned WHERE id = $1"
        };
        let record = TokenRecord {
            id: Uuid::new_v4(),
            name: name.as_str().to_owned(),
            created_at: now_rfc3339(),
            last_used_at: None,
        };
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let stored = on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(user).execute(&mut *tx).await?;
            let (held,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM access_tokens WHERE user_id = $1")
                    .bind(user)
                    .fetch_one(&mut *tx)
                    .await?;
            if held >= max {
                return Err(CreateTokenError::TooMany);
            }
            sqlx::query(
                "INSERT INTO access_tokens (id, user_id, name, secret_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(record.id)
            .bind(user)
            .bind(&record.name)
            .bind(secret_hash)
            .bind(&record.created_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        });
        stored?;
        Ok(record)
    }

    /// `user`'s tokens, newest first.
    pub async fn tokens_of(&self, user: Uuid) -> sqlx::Result<Vec<TokenRecord>> {
        on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, created_at, last_used_at FROM access_tokens \
                 WHERE user_id = $1 ORDER BY created_at DESC, id",
            )
            .bind(user)
            .fetch_all(pool)
            .await
        })
    }

    /// Deletes `user`'s token `id`; false when it has no such token.
    pub async fn delete_token(&self, user: Uuid, id: Uuid) -> sqlx::Result<bool> {
        let done = on_backend!(self, |pool| {
            sqlx::query("DELETE FROM access_tokens WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user)
                .execute(pool)
                .await
                .map(|d| d.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// The token whose secret hashes to `secret_hash`, with its user.
    pub async fn token_owner(&self, secret_hash: &str) -> sqlx::Result<Option<TokenOwner>> {
        let row: Option<OwnerRow> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT t.id AS token_id, t.secret_hash, u.id AS user_id, u.username, u.role, \
                 u.banned FROM access_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.secret_hash = $1",
            )
            .bind(secret_hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|r| TokenOwner {
            token_id: r.token_id,
            secret_hash: r.secret_hash,
            user: User {
                id: r.user_id,
                username: r.username,
                // The CHECK constraint admits only these two.
                role: Role::parse(&r.role).unwrap_or(Role::User),
            },
            banned: r.banned,
        }))
    }

    /// Whether token `id` still exists.
    pub async fn token_exists(&self, id: Uuid) -> sqlx::Result<bool> {
        let (n,): (i64,) = on_backend!(self, |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM access_tokens WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
        })?;
        Ok(n > 0)
    }

    /// Records that token `id` was used now.
    pub async fn touch_token(&self, id: Uuid) -> sqlx::Result<()> {
        on_backend!(self, |pool| {
            sqlx::query("UPDATE access_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now_rfc3339())
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;
    use crate::domain::Username;

    /// A token means nothing without its user: deleting the user deletes its tokens.
    #[tokio::test]
    async fn deleting_a_user_deletes_its_tokens() {
        for t in testing::all().await {
            let name = Username::parse("alice").expect("name");
            let user =
                t.db.create_user(&name, "x", Role::User)
                    .await
                    .expect("user");
            let token = TokenName::parse("bot").expect("name");
            t.db.create_token(user.id, &token, "abc", 20)
                .await
                .expect("token");
            t.db.execute_for_tests("DELETE FROM users")
                .await
                .expect("delete");
            assert!(
                t.db.token_owner("abc").await.expect("read").is_none(),
                "{}",
                t.backend
            );
            let left =
                t.db.execute_for_tests("DELETE FROM access_tokens")
                    .await
                    .expect("count");
            assert_eq!(left, 0, "{}: tokens outlived their user", t.backend);
        }
    }
}
