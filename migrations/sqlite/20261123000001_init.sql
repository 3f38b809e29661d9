-- Accounts, server-side sessions and the message log.
-- Kept to types and constructs that PostgreSQL shares (uuid stored via sqlx's Uuid, an index on
-- lower(username), one integer id sequence), so the PostgreSQL schema can mirror it 1:1.

CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,          -- uuid
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,                      -- argon2id PHC string
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    TEXT NOT NULL                       -- RFC 3339 UTC
);
-- Usernames are unique without regard to case.
CREATE UNIQUE INDEX users_username_ci ON users (lower(username));

CREATE TABLE sessions (
    session_key TEXT PRIMARY KEY NOT NULL,
    state       TEXT NOT NULL,                        -- JSON object of the session's entries
    expires_at  INTEGER NOT NULL                      -- unix seconds
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Room messages and broadcasts share one id sequence: AUTOINCREMENT never reuses an id, so
-- ids only grow and Last-Event-ID resume is exact.
CREATE TABLE messages (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    room    TEXT,                                     -- NULL for a broadcast
    user_id BLOB REFERENCES users (id),               -- NULL for a broadcast sent with the API token
    body    TEXT NOT NULL,
    sent_at TEXT NOT NULL                             -- RFC 3339 UTC
);
-- History pages, replay per room, and (room IS NULL) broadcasts all read this index.
CREATE INDEX messages_room_id ON messages (room, id);
