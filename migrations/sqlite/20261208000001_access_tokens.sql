-- Personal access tokens: a script acts as its user with `Authorization: Bearer rc_…`. Only
-- the SHA-256 of the secret is kept (lowercase hex), so a copy of the database gives nobody
-- a working token. A token means nothing without its user: deleting the account deletes it.
CREATE TABLE access_tokens (
    id           BLOB PRIMARY KEY NOT NULL,           -- uuid
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,                       -- hex SHA-256 of the whole secret
    created_at   TEXT NOT NULL,                       -- RFC 3339 UTC
    last_used_at TEXT                                 -- RFC 3339 UTC, at most a minute stale
);
-- A request names its token by the secret only: looked up by its hash.
CREATE UNIQUE INDEX access_tokens_secret_hash ON access_tokens (secret_hash);
-- A user's list, newest first, and its count for the cap.
CREATE INDEX access_tokens_user ON access_tokens (user_id, created_at);
