//! Databases for unit tests: a SQLite file always, and a fresh PostgreSQL schema as well when
//! `ROOMCAST_TEST_POSTGRES` names a database (as CI sets it), so each test runs on both.

use tempfile::TempDir;

use super::Db;
use crate::config::Settings;

/// The environment variable naming the PostgreSQL database tests may create schemas in.
pub(crate) const PG_ENV: &str = "ROOMCAST_TEST_POSTGRES";

/// A database for one test, with what must live as long as it.
pub(crate) struct TestDb {
    /// The handle.
    pub db: Db,
    /// `sqlite` or `postgres`, for failure messages.
    pub backend: &'static str,
    /// The SQLite file's directory (none on PostgreSQL).
    _dir: Option<TempDir>,
}

/// A fresh SQLite database in a temp dir.
pub(crate) async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut s = Settings::defaults().database;
    s.url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    TestDb {
        db: Db::connect(&s).await.expect("SQLite database"),
        backend: "sqlite",
        _dir: Some(dir),
    }
}

/// A fresh schema of the `ROOMCAST_TEST_POSTGRES` database, when that is set.
pub(crate) async fn postgres() -> Option<TestDb> {
    let base = std::env::var(PG_ENV).ok()?;
    let mut s = Settings::defaults().database;
    s.url = Db::create_test_schema(&base)
        .await
        .expect("a schema in ROOMCAST_TEST_POSTGRES");
    s.max_connections = 4;
    Some(TestDb {
        db: Db::connect(&s).await.expect("PostgreSQL database"),
        backend: "postgres",
        _dir: None,
    })
}

/// SQLite, then PostgreSQL when available.
pub(crate) async fn all() -> Vec<TestDb> {
    let mut dbs = vec![sqlite().await];
    dbs.extend(postgres().await);
    dbs
}
