//! How every SQLite connection of the process is set up: the sqlx pool's (reads, accounts,
//! sessions) and the writer's own rusqlite connection (the message log) get the same
//! pragmas from the one list here, so the two drivers cannot disagree.

use std::{path::Path, time::Duration};

use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions};

use crate::config::SqliteSync;

/// How long a connection waits for another's write lock before `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The pragmas every connection runs when it opens, in order.
///
/// * `journal_mode = WAL`: readers never wait for the writer, and a commit appends to the
///   log instead of rewriting pages (the file keeps the mode; setting it again is cheap).
/// * `synchronous`: `FULL` fsyncs every commit, so a `201` survives a power cut; `NORMAL`
///   only at checkpoints (config `database.sqlite_synchronous`).
/// * `foreign_keys = ON`: SQLite enforces the schema's references only when asked.
pub fn pragmas(synchronous: SqliteSync) -> [(&'static str, &'static str); 3] {
    [
        ("journal_mode", "WAL"),
        (
            "synchronous",
            match synchronous {
                SqliteSync::Full => "FULL",
                SqliteSync::Normal => "NORMAL",
            },
        ),
        ("foreign_keys", "ON"),
    ]
}

/// The pool's connection options for `url`, with [`pragmas`] and [`BUSY_TIMEOUT`].
pub fn pool_options(
    url: &str,
    synchronous: SqliteSync,
) -> Result<SqliteConnectOptions, sqlx::Error> {
    let mut options: SqliteConnectOptions = url.parse()?;
    // Takes effect only on a file that has no tables yet (a new database): there SQLite
    // then tracks free pages so that a retention sweep can hand them back to the file
    // system (`PRAGMA incremental_vacuum`). An older file keeps its mode, since switching
    // needs a whole-file VACUUM; its free pages are reused by new rows instead.
    options = options
        .create_if_missing(true)
        .busy_timeout(BUSY_TIMEOUT)
        .auto_vacuum(SqliteAutoVacuum::Incremental);
    for (key, value) in pragmas(synchronous) {
        options = options.pragma(key, value);
    }
    Ok(options)
}

/// How often the writer tries again for the write lock another connection holds.
const WRITER_RETRY: Duration = Duration::from_millis(1);

/// The writer's busy handler: try again every [`WRITER_RETRY`], up to [`BUSY_TIMEOUT`].
/// SQLite's own (`busy_timeout`) backs off to 100 ms between tries, so a writer waiting
/// behind a run of short transactions (a retention sweep's batches) could sleep through
/// every gap between them; retrying each millisecond it takes the lock at the first gap.
fn writer_busy(tries: i32) -> bool {
    let waited = WRITER_RETRY * u32::try_from(tries).unwrap_or(u32::MAX);
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(WRITER_RETRY);
    true
}

/// Opens the writer's connection to the database file the pool created, set up as the
/// pool's connections are (but for how it waits for the write lock: [`writer_busy`]).
pub fn open_writer(path: &Path, synchronous: SqliteSync) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_handler(Some(writer_busy))?;
    for (key, value) in pragmas(synchronous) {
        conn.pragma_update(None, key, value)?;
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;
    use crate::db::{Backend, log::LogConn, testing};

    /// What `PRAGMA {key}` answers, as text, for each of the pragmas set above.
    fn expected(synchronous: SqliteSync) -> Vec<(&'static str, String)> {
        pragmas(synchronous)
            .into_iter()
            .map(|(key, value)| {
                // SQLite answers some pragmas as numbers: synchronous FULL = 2, NORMAL = 1.
                let answer = match (key, value) {
                    ("journal_mode", v) => v.to_ascii_lowercase(),
                    ("synchronous", "FULL") => "2".into(),
                    ("synchronous", "NORMAL") => "1".into(),
                    ("foreign_keys", "ON") => "1".into(),
                    (_, v) => v.into(),
                };
                (key, answer)
            })
            .chain([("busy_timeout", BUSY_TIMEOUT.as_millis().to_string())])
            .collect()
    }

    #[tokio::test]
    async fn the_pool_and_the_writer_connections_read_back_the_same_pragmas() {
        let t = testing::sqlite().await;
        let Backend::Sqlite {
            pool, synchronous, ..
        } = &t.db.backend
        else {
            panic!("a SQLite test database");
        };
        let want = expected(*synchronous);
        for (key, answer) in &want {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {key}")))
                .fetch_one(pool)
                .await
                .expect("pragma on the pool");
            let got: String = row
                .try_get::<String, _>(0)
                .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
                .expect("a pragma value");
            assert_eq!(&got, answer, "the pool's connection: PRAGMA {key}");
        }
        let log = t.db.message_log().await.expect("the writer's connection");
        let LogConn::Sqlite(conn) = &log.conn else {
            panic!("a SQLite writer connection");
        };
        // The writer waits for the lock with its own handler, not `busy_timeout`.
        for (key, answer) in want.iter().filter(|(key, _)| *key != "busy_timeout") {
            let got: String = conn
                .query_row(&format!("PRAGMA {key}"), [], |row| {
                    row.get::<_, String>(0)
                        .or_else(|_| row.get::<_, i64>(0).map(|n| n.to_string()))
                })
                .expect("pragma on the writer's connection");
            assert_eq!(&got, answer, "the writer's connection: PRAGMA {key}");
        }
    }
}
