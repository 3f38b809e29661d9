-- A user's room list and its read markers: one row per room in the list (created, added
-- to as a member, or followed). Keyed by user, removed with the account.
CREATE TABLE read_markers (
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room         TEXT NOT NULL,
    last_read_id INTEGER NOT NULL,                -- messages up to this id are read
    PRIMARY KEY (user_id, room)
);

-- Unread counts read this index alone (the author is in it), never the rows.
CREATE INDEX messages_room_unread ON messages (room, id, user_id) WHERE kind = 0;

-- The messages that mention someone, per room: a mention count reads only these.
CREATE INDEX messages_room_mentions ON messages (room, id) WHERE kind = 0 AND mentions IS NOT NULL;

-- Every room a user is a member of is in its list, marker at the room's newest message.
INSERT INTO read_markers (user_id, room, last_read_id)
SELECT mb.user_id, mb.room,
       COALESCE((SELECT MAX(m.id) FROM messages m WHERE m.room = mb.room AND m.kind = 0), 0)
FROM room_members mb
WHERE true
ON CONFLICT (user_id, room) DO NOTHING;

-- The rooms a browser kept joined (`/api/me/joined`, retired) become follows, but private
-- rooms the user is no member of.
INSERT INTO read_markers (user_id, room, last_read_id)
SELECT j.user_id, e.value,
       COALESCE((SELECT MAX(m.id) FROM messages m WHERE m.room = e.value AND m.kind = 0), 0)
FROM joined_rooms j, json_each(j.rooms) e
WHERE NOT EXISTS (SELECT 1 FROM rooms r WHERE r.name = e.value AND r.visibility = 'private')
ON CONFLICT (user_id, room) DO NOTHING;

-- Full-text search: the words of each room message's current body (lower-cased runs of
-- Unicode letters and digits, split by the server, so both backends agree), kept by the
-- writer in the transaction that stores the body. `rowid` is the message id.
CREATE VIRTUAL TABLE message_words USING fts5 (
    words, content = '', contentless_delete = 1, tokenize = 'ascii'
);

-- Present until the server has indexed the messages stored before this migration.
CREATE TABLE search_backfill (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);
INSERT INTO search_backfill (id) VALUES (1);
