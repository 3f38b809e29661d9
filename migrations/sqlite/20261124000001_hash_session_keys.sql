-- Sessions are looked up by the SHA-256 of their key (lowercase hex), never by the key itself:
-- someone who reads the database (a backup, a leaked copy) cannot use what they find as a
-- cookie. Keys stored in plain text cannot be kept safely, so those sessions are dropped:
-- everyone logs in again once.
DROP TABLE sessions;

CREATE TABLE sessions (
    key_hash   TEXT PRIMARY KEY NOT NULL,             -- hex SHA-256 of the cookie's session key
    state      TEXT NOT NULL,                         -- JSON object of the session's entries
    expires_at INTEGER NOT NULL                       -- unix seconds; pushed ahead on use (idle)
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
