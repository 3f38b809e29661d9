//! Persistence: the SQLite pool, migrations, and the queries for users, sessions and messages.
//! Message inserts go through [`MessageLog`], the connection of the single group-committing
//! writer (`crate::writer`). Rows come back as domain types; nothing here makes SSE bytes.

mod messages;
pub mod nodes;
mod rooms;
mod sessions;
mod users;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use messages::{MessageLog, NewPost, Page};
pub use rooms::{CreateRoomError, Member, MyRoom};
pub use sessions::SqlSessionStore;
pub use users::CreateUserError;

use crate::config::{DatabaseSettings, SqliteSync};

/// The migrations under `migrations/`, compiled in.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
    options: SqliteConnectOptions,
}

impl Db {
    /// Opens (creating when missing) the database and applies pending migrations.
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(&settings.url)
            .with_context(|| format!("configuration: `database.url` {:?}", settings.url))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match settings.sqlite_synchronous {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the database directory {}", dir.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening database {}", options.get_filename().display()))?;
        let db = Self { pool, options };
        db.migrate().await?;
        Ok(db)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("applying database migrations")
    }

    /// The read/write pool (accounts, sessions, reads).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Answers when the database does (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for checked-out connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Now, as the contract's RFC 3339 UTC text (millisecond precision).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
