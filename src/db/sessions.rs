//! Server-side sessions for actix-session, in the same database: they survive restarts, and
//! deleting the row (logout) revokes the cookie for good.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use uuid::Uuid;

use super::Db;

/// `SessionStore` over the `sessions` table.
#[derive(Clone)]
pub struct SqlSessionStore {
    db: Db,
}

impl SqlSessionStore {
    /// A store over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

type State = HashMap<String, String>;

fn expires_at(ttl: &Duration) -> i64 {
    chrono::Utc::now().timestamp() + ttl.whole_seconds()
}

/// 64 hex characters from two v4 UUIDs: 244 bits from the OS random source.
fn new_key() -> SessionKey {
    let key = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    SessionKey::try_from(key).expect("64 characters is a valid session key")
}

impl SessionStore for SqlSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT state FROM sessions WHERE session_key = ? AND expires_at > ?")
                .bind(key.as_ref())
                .bind(chrono::Utc::now().timestamp())
                .fetch_optional(self.db.pool())
                .await
                .map_err(|e| LoadError::Other(e.into()))?;
        row.map(|(state,)| serde_json::from_str(&state))
            .transpose()
            .map_err(|e| LoadError::Deserialization(e.into()))
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let json = serde_json::to_string(&state).map_err(|e| SaveError::Serialization(e.into()))?;
        let key = new_key();
        sqlx::query("INSERT INTO sessions (session_key, state, expires_at) VALUES (?, ?, ?)")
            .bind(key.as_ref())
            .bind(json)
            .bind(expires_at(ttl))
            .execute(self.db.pool())
            .await
            .map_err(|e| SaveError::Other(e.into()))?;
        Ok(key)
    }

    async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let json =
            serde_json::to_string(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let done =
            sqlx::query("UPDATE sessions SET state = ?, expires_at = ? WHERE session_key = ?")
                .bind(&json)
                .bind(expires_at(ttl))
                .bind(key.as_ref())
                .execute(self.db.pool())
                .await
                .map_err(|e| UpdateError::Other(e.into()))?;
        if done.rows_affected() == 1 {
            return Ok(key);
        }
        // The row expired or was purged meanwhile: start a fresh session instead.
        self.save(state, ttl).await.map_err(|e| match e {
            SaveError::Serialization(e) => UpdateError::Serialization(e),
            SaveError::Other(e) => UpdateError::Other(e),
        })
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        sqlx::query("UPDATE sessions SET expires_at = ? WHERE session_key = ?")
            .bind(expires_at(ttl))
            .bind(key.as_ref())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE session_key = ?")
            .bind(key.as_ref())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}

impl Db {
    /// Deletes expired sessions; returns how many.
    pub async fn purge_expired_sessions(&self) -> sqlx::Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(chrono::Utc::now().timestamp())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
