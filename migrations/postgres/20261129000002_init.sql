-- The whole schema of migrations/sqlite/ in one step, in PostgreSQL types. PostgreSQL is a new
-- backend with no databases to upgrade, so it starts at the SQLite schema's latest version;
-- later changes get a file in both directories.
--
-- Types follow what the Rust code decodes, since sqlx-postgres checks them strictly: uuid →
-- UUID, i64 → BIGINT, bool → BOOLEAN. Timestamps stay RFC 3339 TEXT as the code writes them.
-- Names that are compared and sorted (usernames, room names) use the "C" collation: byte
-- order and ASCII-only lower(), exactly as SQLite compares them, whatever the database's locale.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL,
    password_hash TEXT NOT NULL,                      -- argon2id PHC string
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    TEXT NOT NULL,                      -- RFC 3339 UTC
    -- A banned account cannot log in; its sessions are deleted when it is banned.
    banned        BOOLEAN NOT NULL DEFAULT FALSE
);
-- Usernames are unique without regard to case.
CREATE UNIQUE INDEX users_username_ci ON users (lower(username));

CREATE TABLE sessions (
    key_hash   TEXT PRIMARY KEY,                      -- hex SHA-256 of the cookie's session key
    state      TEXT NOT NULL,                         -- JSON object of the session's entries
    expires_at BIGINT NOT NULL                        -- unix seconds; pushed ahead on use (idle)
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Room messages, broadcasts and `message_deleted` events share one id sequence. Ids are not a
-- column default: the writer takes them from `message_seq` inside its transaction (below).
CREATE TABLE messages (
    id      BIGINT PRIMARY KEY,
    room    TEXT COLLATE "C",                         -- NULL for a broadcast
    user_id UUID REFERENCES users (id),               -- NULL for a broadcast sent with the API token
    body    TEXT NOT NULL,
    sent_at TEXT NOT NULL,                            -- RFC 3339 UTC
    deletes BIGINT                                    -- the message a deletion event removed
);
-- History pages, replay per room, and (room IS NULL) broadcasts all read this index.
CREATE INDEX messages_room_id ON messages (room, id);

-- The last message id handed out. Every append locks this one row until it commits, so
-- transactions commit in id order, on every node writing this database: a reader that sees
-- `v` sees every row up to `v` that was not deleted (a sequence would let a later id commit
-- first, and a reader skip the earlier one for good).
CREATE TABLE message_seq (
    id INT PRIMARY KEY CHECK (id = 1),
    v  BIGINT NOT NULL
);
INSERT INTO message_seq (id, v) VALUES (1, 0);

-- One row the writer rewrites to find out whether the message log takes writes again after
-- a failed commit, so readiness recovers by itself.
CREATE TABLE writer_health (
    id        INT PRIMARY KEY CHECK (id = 1),
    probed_at TEXT NOT NULL
);
INSERT INTO writer_health (id, probed_at) VALUES (1, '');

-- Created rooms. An implicit room (joined by name, never created) has no row here.
CREATE TABLE rooms (
    name       TEXT COLLATE "C" PRIMARY KEY,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    owner_id   UUID NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL                          -- RFC 3339 UTC
);

-- Who belongs to a created room, and as what. The owner is a member with role 'owner'.
CREATE TABLE room_members (
    room     TEXT COLLATE "C" NOT NULL REFERENCES rooms (name),
    user_id  UUID NOT NULL REFERENCES users (id),
    role     TEXT NOT NULL CHECK (role IN ('owner', 'moderator', 'member')),
    added_at TEXT NOT NULL,
    PRIMARY KEY (room, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id);

-- The rooms a user's browser has joined, so a new device starts where the last one was.
CREATE TABLE joined_rooms (
    user_id UUID PRIMARY KEY REFERENCES users (id),
    rooms   TEXT NOT NULL                             -- JSON array of room names
);
