-- Bans, unbans and role changes, one row each, so a running server notices those made by
-- another process (the `roomcast user …` command) and applies them to its open streams. The
-- server reads the rows after the last id it has seen; rows older than a few minutes are
-- deleted.
CREATE TABLE account_changes (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BLOB NOT NULL,
    at      INTEGER NOT NULL                            -- Unix seconds
);
