-- An account can be deleted: its messages stay (user_id keeps its id, no longer a reference
-- to a row), rooms it owned keep going without an owner, and the rows that only mean
-- something with the account (memberships, reactions, joined rooms) go with it.
-- SQLite cannot change a column's constraints in place, so each table is rebuilt (in an
-- order where no row ever points at a dropped table: room_members_new refers to rooms_new,
-- and renaming rooms_new to rooms carries that reference along).

CREATE TABLE messages_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    room           TEXT,                              -- NULL for a broadcast
    user_id        BLOB,                              -- the author's id, kept after its account goes
    body           TEXT NOT NULL,
    sent_at        TEXT NOT NULL,                     -- RFC 3339 UTC
    about          INTEGER,
    kind           INTEGER NOT NULL DEFAULT 0,
    edited_at      TEXT,
    reply_to       INTEGER,
    mentions       TEXT,
    reactions      TEXT,
    emoji          TEXT,
    reaction_count INTEGER
);
INSERT INTO messages_new (id, room, user_id, body, sent_at, about, kind, edited_at, reply_to,
                          mentions, reactions, emoji, reaction_count)
    SELECT id, room, user_id, body, sent_at, about, kind, edited_at, reply_to,
           mentions, reactions, emoji, reaction_count FROM messages;
-- Ids never go back, even past messages deleted at the end of the log.
CREATE TEMP TABLE kept_seq AS SELECT seq FROM sqlite_sequence WHERE name = 'messages';
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
DELETE FROM sqlite_sequence WHERE name = 'messages';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'messages', max(coalesce((SELECT max(seq) FROM kept_seq), 0),
                           coalesce((SELECT max(id) FROM messages), 0));
DROP TABLE kept_seq;
CREATE INDEX messages_room_id ON messages (room, id);
CREATE INDEX messages_room_posts ON messages (room, id) WHERE kind = 0;
CREATE INDEX messages_about ON messages (about) WHERE about IS NOT NULL;

CREATE TABLE rooms_new (
    name       TEXT PRIMARY KEY NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    owner_id   BLOB REFERENCES users (id) ON DELETE SET NULL,  -- NULL: its owner was deleted
    created_at TEXT NOT NULL                          -- RFC 3339 UTC
);
INSERT INTO rooms_new SELECT name, visibility, owner_id, created_at FROM rooms;

CREATE TABLE room_members_new (
    room     TEXT NOT NULL REFERENCES rooms_new (name),
    user_id  BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role     TEXT NOT NULL CHECK (role IN ('owner', 'moderator', 'member')),
    added_at TEXT NOT NULL,
    PRIMARY KEY (room, user_id)
);
INSERT INTO room_members_new SELECT room, user_id, role, added_at FROM room_members;
DROP TABLE room_members;
DROP TABLE rooms;
ALTER TABLE rooms_new RENAME TO rooms;
ALTER TABLE room_members_new RENAME TO room_members;
CREATE INDEX room_members_user ON room_members (user_id);

CREATE TABLE reactions_new (
    seq        INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    emoji      TEXT NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    UNIQUE (message_id, emoji, user_id)
);
INSERT INTO reactions_new SELECT seq, message_id, emoji, user_id FROM reactions;
DROP TABLE reactions;
ALTER TABLE reactions_new RENAME TO reactions;
CREATE INDEX reactions_order ON reactions (message_id, emoji, seq);
-- The account deletion takes back its reactions first, found by user.
CREATE INDEX reactions_user ON reactions (user_id);

CREATE TABLE joined_rooms_new (
    user_id BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rooms   TEXT NOT NULL                              -- JSON array of room names
);
INSERT INTO joined_rooms_new SELECT user_id, rooms FROM joined_rooms;
DROP TABLE joined_rooms;
ALTER TABLE joined_rooms_new RENAME TO joined_rooms;
