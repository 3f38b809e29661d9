-- Private rooms, members and moderation.

-- Created rooms. An implicit room (joined by name, never created) has no row here.
CREATE TABLE rooms (
    name       TEXT PRIMARY KEY NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    owner_id   BLOB NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL                          -- RFC 3339 UTC
);

-- Who belongs to a created room, and as what. The owner is a member with role 'owner'.
CREATE TABLE room_members (
    room     TEXT NOT NULL REFERENCES rooms (name),
    user_id  BLOB NOT NULL REFERENCES users (id),
    role     TEXT NOT NULL CHECK (role IN ('owner', 'moderator', 'member')),
    added_at TEXT NOT NULL,
    PRIMARY KEY (room, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id);

-- A banned account cannot log in; its sessions are deleted when it is banned.
ALTER TABLE users ADD COLUMN banned INTEGER NOT NULL DEFAULT 0;

-- A `message_deleted` event is a row of the same log (same id sequence) whose `deletes` names
-- the message it removed (that message's row is gone). NULL for messages and broadcasts.
ALTER TABLE messages ADD COLUMN deletes INTEGER;

-- The rooms a user's browser has joined, so a new device starts where the last one was.
CREATE TABLE joined_rooms (
    user_id BLOB PRIMARY KEY NOT NULL REFERENCES users (id),
    rooms   TEXT NOT NULL                              -- JSON array of room names
);
