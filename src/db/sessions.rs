//! Server-side sessions for actix-session, in the same database: they survive restarts, and
//! deleting the row (logout) revokes the cookie for good.
//!
//! Rows are keyed by the SHA-256 of the session key; the key itself exists only in the
//! cookie. Sessions expire when idle: `auth::touch` changes a session in use once per
//! `session.touch_interval_secs`, and that `update` pushes the row's expiry
//! `session.ttl_hours` ahead; so a busy session does not write the database on every request.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Db;

/// A session's entries, as actix-session keeps them (values are JSON).
pub type SessionState = HashMap<String, String>;

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

impl SqlSessionStore {
    /// Forgets a cached session (after the write that changed it).
    fn forget(&self, hash: &String) {
        if let Some(cache) = &self.db.cache {
            cache.sessions.forget(hash);
        }
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn expires_at(ttl: &Duration) -> i64 {
    now() + ttl.whole_seconds()
}

/// 64 hex characters from two v4 UUIDs: 244 bits from a cryptographic generator seeded by
/// the OS (uuid's `fast-rng`: rand's thread-local ChaCha).
fn new_key() -> SessionKey {
    let key = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    SessionKey::try_from(key).expect("64 characters is a valid session key")
}

/// What the table stores instead of the key: its SHA-256 in lowercase hex. The key has 244
/// random bits, so a fast unsalted hash is enough; nothing can be guessed from it.
fn key_hash(key: &SessionKey) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Every request hashes its session key: a table, not `write!` per byte (which cost
    // more than the SHA-256 itself).
    Sha256::digest(key.as_ref().as_bytes())
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

impl SessionStore for SqlSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let hash = key_hash(key);
        let cache = self.db.cache.as_ref();
        let cached = cache.and_then(|c| c.sessions.get(&hash));
        let state = match cached {
            Some((state, expires)) if expires > now() => state,
            Some(_) => return Ok(None),
            None => {
                let seen = cache.map(|c| c.sessions.generation());
                let row: Option<(String, i64)> = on_backend!(self.db, |pool| {
                    sqlx::query_as(
                        "SELECT state, expires_at FROM sessions \
                         WHERE key_hash = $1 AND expires_at > $2",
                    )
                    .bind(&hash)
                    .bind(now())
                    .fetch_optional(pool)
                    .await
                })
                .map_err(|e| LoadError::Other(e.into()))?;
                let Some((state, expires)) = row else {
                    return Ok(None);
                };
                let state: SessionState = serde_json::from_str(&state)
                    .map_err(|e| LoadError::Deserialization(e.into()))?;
                if let (Some(cache), Some(seen)) = (cache, seen) {
                    cache.sessions.put(hash, (state.clone(), expires), seen);
                }
                state
            }
        };
        Ok(Some(state))
    }

    async fn save(&self, state: SessionState, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let json = serde_json::to_string(&state).map_err(|e| SaveError::Serialization(e.into()))?;
        let key = new_key();
        on_backend!(self.db, |pool| {
            sqlx::query("INSERT INTO sessions (key_hash, state, expires_at) VALUES ($1, $2, $3)")
                .bind(key_hash(&key))
                .bind(json)
                .bind(expires_at(ttl))
                .execute(pool)
                .await
                .map(drop)
        })
        .map_err(|e| SaveError::Other(e.into()))?;
        Ok(key)
    }

    async fn update(
        &self,
        key: SessionKey,
        state: SessionState,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let hash = key_hash(&key);
        let json =
            serde_json::to_string(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let done = on_backend!(self.db, |pool| {
            sqlx::query("UPDATE sessions SET state = $1, expires_at = $2 WHERE key_hash = $3")
                .bind(&json)
                .bind(expires_at(ttl))
                .bind(&hash)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(|e| UpdateError::Other(e.into()))?;
        self.forget(&hash);
        if done == 1 {
            return Ok(key);
        }
        // The row expired or was purged meanwhile: start a fresh session instead.
        self.save(state, ttl).await.map_err(|e| match e {
            SaveError::Serialization(e) => UpdateError::Serialization(e),
            SaveError::Other(e) => UpdateError::Other(e),
        })
    }

    /// Pushes the expiry ahead. Not called by our middleware set-up: its TTL is extended on
    /// state changes only (`auth::touch`), which go through `update`.
    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        let hash = key_hash(key);
        on_backend!(self.db, |pool| {
            sqlx::query("UPDATE sessions SET expires_at = $1 WHERE key_hash = $2")
                .bind(expires_at(ttl))
                .bind(&hash)
                .execute(pool)
                .await
                .map(drop)
        })?;
        self.forget(&hash);
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        let hash = key_hash(key);
        on_backend!(self.db, |pool| {
            sqlx::query("DELETE FROM sessions WHERE key_hash = $1")
                .bind(&hash)
                .execute(pool)
                .await
                .map(drop)
        })?;
        self.forget(&hash);
        Ok(())
    }
}

impl Db {
    /// Deletes expired sessions; returns their states (to close their streams).
    pub async fn purge_expired_sessions(&self) -> sqlx::Result<Vec<SessionState>> {
        let rows: Vec<(String,)> = on_backend!(self, |pool| {
            sqlx::query_as("DELETE FROM sessions WHERE expires_at <= $1 RETURNING state")
                .bind(now())
                .fetch_all(pool)
                .await
        })?;
        Ok(rows
            .iter()
            // A state we cannot read has no login id to close streams for; it is gone anyway.
            .filter_map(|(state,)| serde_json::from_str(state).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    const TTL: Duration = Duration::hours(1);

    /// A store on each backend under test (see `db::testing`).
    async fn stores() -> Vec<(SqlSessionStore, testing::TestDb)> {
        testing::all()
            .await
            .into_iter()
            .map(|t| (SqlSessionStore::new(t.db.clone()), t))
            .collect()
    }

    fn state() -> SessionState {
        HashMap::from([("sid".to_owned(), format!("\"{}\"", Uuid::new_v4()))])
    }

    async fn stored_expiry(store: &SqlSessionStore, key: &SessionKey) -> i64 {
        let (e,): (i64,) = on_backend!(store.db, |pool| {
            sqlx::query_as("SELECT expires_at FROM sessions WHERE key_hash = $1")
                .bind(key_hash(key))
                .fetch_one(pool)
                .await
        })
        .expect("the session row");
        e
    }

    async fn set_expiry(store: &SqlSessionStore, key: &SessionKey, at: i64) {
        on_backend!(store.db, |pool| {
            sqlx::query("UPDATE sessions SET expires_at = $1 WHERE key_hash = $2")
                .bind(at)
                .bind(key_hash(key))
                .execute(pool)
                .await
                .map(drop)
        })
        .expect("set expiry");
    }

    #[test]
    fn the_key_hash_is_the_lowercase_hex_sha256_of_the_key() {
        let key = SessionKey::try_from("a".repeat(64)).expect("a valid key");
        assert_eq!(
            key_hash(&key),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"
        );
    }

    #[tokio::test]
    async fn the_table_holds_a_hash_of_the_key_not_the_key() {
        for (store, _db) in stores().await {
            let key = store.save(state(), &TTL).await.expect("saved");
            let rows: Vec<(String,)> = on_backend!(store.db, |pool| {
                sqlx::query_as("SELECT key_hash FROM sessions")
                    .fetch_all(pool)
                    .await
            })
            .expect("rows");
            assert_eq!(rows.len(), 1);
            assert_ne!(rows[0].0, key.as_ref(), "the raw key must not be stored");
            assert_eq!(
                rows[0].0,
                key_hash(&key),
                "the SHA-256 of the key is stored"
            );
            assert!(
                store.load(&key).await.expect("loaded").is_some(),
                "the cookie's key still finds its session"
            );
        }
    }

    #[tokio::test]
    async fn an_update_pushes_the_expiry_ahead() {
        for (store, _db) in stores().await {
            let key = store.save(state(), &TTL).await.expect("saved");
            // Last pushed two minutes ago.
            let old = now() + TTL.whole_seconds() - 120;
            set_expiry(&store, &key, old).await;
            let loaded = store.load(&key).await.expect("loaded").expect("live");
            let kept = store.update(key, loaded, &TTL).await.expect("updated");
            let new = stored_expiry(&store, &kept).await;
            assert!(
                new >= old + 119,
                "expiry {old} was not pushed ahead (now {new})"
            );
        }
    }

    #[tokio::test]
    async fn an_expired_session_does_not_load() {
        for (store, _db) in stores().await {
            let key = store.save(state(), &TTL).await.expect("saved");
            set_expiry(&store, &key, now() - 1).await;
            assert!(store.load(&key).await.expect("loaded").is_none());
        }
    }

    #[tokio::test]
    async fn purging_returns_the_expired_states_only() {
        for (store, _db) in stores().await {
            let expired_state = state();
            let expired = store
                .save(expired_state.clone(), &TTL)
                .await
                .expect("saved");
            let live = store.save(state(), &TTL).await.expect("saved");
            set_expiry(&store, &expired, now() - 1).await;
            let purged = store.db.purge_expired_sessions().await.expect("purged");
            assert_eq!(purged, vec![expired_state]);
            assert!(
                store.load(&live).await.expect("loaded").is_some(),
                "live session kept"
            );
        }
    }
}
