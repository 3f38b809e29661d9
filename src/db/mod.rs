//! Persistence: the database pool (SQLite or PostgreSQL), migrations, and the queries for
//! users, sessions and messages. Every change to the message log goes through [`MessageLog`],
//! the connection of the single group-committing writer (`crate::writer`). Rows come back as domain types;
//! nothing here makes SSE bytes.
//!
//! Both backends run the same SQL text: `$1, $2…` placeholders (SQLite takes them too) and
//! [`on_backend!`] to compile one body per backend. Only where the SQL really differs are
//! there two texts.

/// `on_backend!(db, |pool, DB| body)` runs `body` with `pool` bound to the backend's pool and
/// `DB` naming its `sqlx::Database`, compiled once per backend, so a query (or a
/// `QueryBuilder::<DB>`) is written once for both. `on_backend!(db, |pool| body)` when `DB`
/// is not needed. Not a closure (the body may `.await` and `?`); written like one so that
/// rustfmt formats the body.
macro_rules! on_backend {
    ($db:expr, |$pool:ident, $DB:ident| $body:expr) => {
        match &$db.backend {
            $crate::db::Backend::Sqlite { pool: $pool, .. } => {
                #[allow(dead_code)]
                type $DB = sqlx::Sqlite;
                $body
            }
            $crate::db::Backend::Postgres { pool: $pool, .. } => {
                #[allow(dead_code)]
                type $DB = sqlx::Postgres;
                $body
            }
        }
    };
    ($db:expr, |$pool:ident| $body:expr) => {
        on_backend!($db, |$pool, _DB| $body)
    };
}

mod cache;
mod log;
mod messages;
pub mod nodes;
mod readstate;
mod retention;
mod rooms;
mod sessions;
mod sqlite;
mod tokens;
mod users;
mod webhooks;

use std::{fmt::Write, str::FromStr, sync::Arc, time::Duration};

use anyhow::Context;
use sha2::{Digest, Sha256};
use sqlx::{
    PgPool, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
};

pub use log::{Appended, MessageLog, NewPost};
pub use messages::Page;
pub use readstate::{MAX_COUNT, MarkerMove, MyRoom};
pub use retention::{Retention, Swept};
pub use rooms::{CreateRoomError, Member};
pub use sessions::SqlSessionStore;
pub use tokens::{CreateTokenError, TokenOwner, TokenRecord};
pub use users::{ACCOUNTS_CHANGED, AppliedBy, CreateUserError};
pub use webhooks::{CreateWebhookError, WebhookRecord};

use crate::config::{DatabaseSettings, SqliteSync};

/// The SQLite migrations under `migrations/sqlite/`, compiled in.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The PostgreSQL migrations under `migrations/postgres/`, compiled in: the same schema in
/// PostgreSQL types, plus the `message_seq` counter the writers take ids from.
pub static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Longest channel name PostgreSQL keeps (NAMEDATALEN - 1); longer ones are truncated, so
/// two schemas could end up sharing one.
const MAX_CHANNEL: usize = 63;

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    backend: Backend,
    /// The session, user and room reads, cached on SQLite ([`cache`]).
    cache: Option<Arc<cache::ReadCache>>,
}

/// The database behind a [`Db`], chosen by the URL's scheme.
#[derive(Clone)]
enum Backend {
    /// One file, one writer process.
    Sqlite {
        pool: SqlitePool,
        options: SqliteConnectOptions,
        /// For the writer's own connection, which is not sqlx's (see [`MessageLog`]).
        synchronous: SqliteSync,
    },
    /// A server that several nodes may write; everything lives in the connection's
    /// `search_path` schema.
    Postgres {
        pool: PgPool,
        options: PgConnectOptions,
        /// What the writer NOTIFYs on after each append (see [`Db::notify_channel`]).
        channel: String,
    },
}

/// Says where, never with what: PostgreSQL's connect options hold the password.
impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sqlite { options, .. } => f
                .debug_struct("Sqlite")
                .field("file", &options.get_filename())
                .finish_non_exhaustive(),
            Backend::Postgres {
                options, channel, ..
            } => f
                .debug_struct("Postgres")
                .field("host", &options.get_host())
                .field("port", &options.get_port())
                .field("database", &options.get_database())
                .field("channel", channel)
                .finish_non_exhaustive(),
        }
    }
}

impl Db {
    /// Opens the database named by `database.url` (`sqlite:` or `postgres:`; a SQLite file is
    /// created when missing) and applies pending migrations.
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let db = Self::open(settings).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Opens the database named by `database.url` as it is, migrating nothing: for tools
    /// run beside a server (a backup), which must not change the schema under it.
    pub async fn open(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let url = settings.url.as_str();
        let db = if url.starts_with("sqlite:") {
            Self::connect_sqlite(settings).await?
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Self::connect_postgres(settings).await?
        } else {
            anyhow::bail!("configuration: `database.url` must start with sqlite:// or postgres://");
        };
        Ok(db)
    }

    /// Writes a consistent copy of the SQLite database to the new file `path` with
    /// `VACUUM INTO`, while servers keep writing: the copy is the database as of the read
    /// transaction it runs in, so it holds every event committed (every `201` answered)
    /// before it began, and it is compacted (no free pages). The file is synced before this
    /// returns. `Ok(false)` on PostgreSQL, which `pg_dump` backs up.
    pub async fn backup_to(&self, path: &std::path::Path) -> anyhow::Result<bool> {
        let Some(pool) = self.sqlite_pool() else {
            return Ok(false);
        };
        anyhow::ensure!(
            !path.exists(),
            "{} exists already; a backup is written to a new file",
            path.display()
        );
        let target = path
            .to_str()
            .with_context(|| format!("{} is not a UTF-8 path", path.display()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(pool)
            .await
            .with_context(|| format!("writing the backup to {}", path.display()))?;
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing the backup {}", path.display()))?;
        Ok(true)
    }

    async fn connect_sqlite(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let options = sqlite::pool_options(&settings.url, settings.sqlite_synchronous)
            .with_context(|| format!("configuration: `database.url` {:?}", settings.url))?;
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
        let fresh_for = Duration::from_millis(settings.read_cache_ms);
        Ok(Self {
            backend: Backend::Sqlite {
                pool,
                options,
                synchronous: settings.sqlite_synchronous,
            },
            cache: (!fresh_for.is_zero()).then(|| Arc::new(cache::ReadCache::new(fresh_for))),
        })
    }

    async fn connect_postgres(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        // The URL is not repeated in errors: it may carry a password.
        let options = PgConnectOptions::from_str(&settings.url)
            .context("configuration: `database.url` is not a valid postgres:// URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .with_context(|| {
                format!(
                    "opening PostgreSQL database {:?} on {}:{}",
                    options.get_database().unwrap_or_default(),
                    options.get_host(),
                    options.get_port()
                )
            })?;
        // Tables are created and found in the first schema of the search_path: that schema
        // is this deployment's namespace, so it names the notification channel too.
        let (schema,): (Option<String>,) = sqlx::query_as("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .context("reading the PostgreSQL schema")?;
        let schema = schema.context(
            "PostgreSQL: no schema of the search_path exists (create it, or fix `options`)",
        )?;
        Ok(Self {
            backend: Backend::Postgres {
                pool,
                options,
                channel: notify_channel(&schema),
            },
            cache: None,
        })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Sqlite { pool, .. } => MIGRATOR.run(pool).await,
            Backend::Postgres { pool, .. } => PG_MIGRATOR.run(pool).await,
        }
        .context("applying database migrations")?;
        self.backfill_search()
            .await
            .context("indexing stored messages for search")
    }

    /// Whether this is a PostgreSQL database (several nodes may share it).
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// The PostgreSQL pool, on PostgreSQL.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.backend {
            Backend::Postgres { pool, .. } => Some(pool),
            Backend::Sqlite { .. } => None,
        }
    }

    /// How this handle connects to PostgreSQL (same server, database and `search_path`), for
    /// a connection of one's own such as a `LISTEN`er.
    pub fn pg_connect_options(&self) -> Option<&PgConnectOptions> {
        match &self.backend {
            Backend::Postgres { options, .. } => Some(options),
            Backend::Sqlite { .. } => None,
        }
    }

    /// The SQLite pool, on SQLite (for SQLite-only checks such as `PRAGMA`s).
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.backend {
            Backend::Sqlite { pool, .. } => Some(pool),
            Backend::Postgres { .. } => None,
        }
    }

    /// On PostgreSQL, the channel the message writer NOTIFYs (empty payload) after each
    /// commit that stored events: `roomcast_<schema>`, so clusters sharing a database in
    /// different schemas do not wake each other.
    pub fn notify_channel(&self) -> Option<&str> {
        match &self.backend {
            Backend::Postgres { channel, .. } => Some(channel),
            Backend::Sqlite { .. } => None,
        }
    }

    /// Answers when the database does (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        on_backend!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Closes the pool, waiting for checked-out connections.
    pub async fn close(&self) {
        on_backend!(self, |pool| pool.close().await);
    }

    /// Creates a fresh, empty schema `t_<random>` in the PostgreSQL database at `base_url`
    /// and returns `base_url` with that schema as its `search_path`: tests (and test
    /// clusters) share one database without seeing each other's rows.
    #[doc(hidden)]
    pub async fn create_test_schema(base_url: &str) -> anyhow::Result<String> {
        use sqlx::Connection;
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(base_url)
            .await
            .context("connecting to the test PostgreSQL database")?;
        // The name is ours (hex), so formatting it into the statement is safe.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .context("creating a test schema")?;
        conn.close().await?;
        let sep = if base_url.contains('?') { '&' } else { '?' };
        Ok(format!(
            "{base_url}{sep}options=-c%20search_path%3D{schema}"
        ))
    }

    /// Runs one statement as is, on either backend; the rows it affected. For tests that
    /// break or age the database under a running app (dropping a table, expiring sessions).
    /// It writes behind the read cache's back, so the cache is emptied after it.
    #[doc(hidden)]
    pub async fn execute_for_tests(&self, sql: &'static str) -> sqlx::Result<u64> {
        let done = on_backend!(self, |pool| {
            sqlx::query(sql)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        });
        if let Some(cache) = &self.cache {
            cache.forget_all();
        }
        done
    }
}

/// `roomcast_<schema>` as a channel name: schema names are identifiers but may be quoted
/// ones (any case, any character), so anything but `[a-z0-9_]` becomes `_`; when that
/// changed the name or it is too long, a hash of the schema keeps distinct schemas apart.
fn notify_channel(schema: &str) -> String {
    let clean: String = schema
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' => c,
            _ => '_',
        })
        .collect();
    let channel = format!("roomcast_{clean}");
    if clean == schema && channel.len() <= MAX_CHANNEL {
        return channel;
    }
    let hash = Sha256::digest(schema.as_bytes()).iter().take(4).fold(
        String::with_capacity(8),
        |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        },
    );
    // The cleaned channel is ASCII, so any byte length is a char boundary.
    let keep = channel.len().min(MAX_CHANNEL - hash.len() - 1);
    format!("{}_{hash}", &channel[..keep])
}

/// Now, as the contract's RFC 3339 UTC text (millisecond precision).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::notify_channel;

    #[tokio::test]
    async fn a_postgres_handle_does_not_debug_print_its_password() {
        let options: sqlx::postgres::PgConnectOptions = "postgres://chat:hunter2-secret@db/chat"
            .parse()
            .expect("a URL");
        let pool = sqlx::PgPool::connect_lazy_with(options.clone());
        let db = super::Db {
            backend: super::Backend::Postgres {
                pool,
                options,
                channel: notify_channel("public"),
            },
            cache: None,
        };
        let shown = format!("{db:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("roomcast_public"), "{shown}");
    }

    #[test]
    fn a_plain_schema_names_its_channel_as_is() {
        assert_eq!(notify_channel("t_abc123"), "roomcast_t_abc123");
        assert_eq!(notify_channel("public"), "roomcast_public");
    }

    #[test]
    fn odd_or_long_schemas_get_distinct_short_channels() {
        let a = notify_channel("Prod");
        let b = notify_channel("prod");
        let c = notify_channel("PROD");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("roomcast_"), "{a}");
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
            "{a}"
        );
        let long = "x".repeat(63);
        let l = notify_channel(&long);
        assert!(l.len() <= 63, "{l} is {} bytes", l.len());
        assert_ne!(l, notify_channel(&"x".repeat(62)));
        let uni = notify_channel(&"é".repeat(40));
        assert!(uni.len() <= 63 && uni.is_ascii(), "{uni}");
    }
}
