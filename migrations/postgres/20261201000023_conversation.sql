-- Edits, reactions, replies and mentions.
--
-- Every change to a message is an event of the log, in the one id sequence: `kind` says
-- which (0 a message or broadcast, 1 message_deleted, 2 message_edited, 3 a reaction added,
-- 4 a reaction removed) and `about` names the message it changed (the old `deletes`).
ALTER TABLE messages RENAME COLUMN deletes TO about;
ALTER TABLE messages ADD COLUMN kind INT NOT NULL DEFAULT 0;
UPDATE messages SET kind = 1 WHERE about IS NOT NULL;

-- A message's state, kept current by the writer: the time of its last edit, the message it
-- replies to, who its body mentions (JSON [{"id","username"}], NULL for none) and its
-- reactions as answers list them (JSON [{"emoji","count","users"}], NULL for none), so a
-- history page reads one row per message, however many reactions it has.
-- An edit event keeps its body in `body` and its mentions in `mentions`; a reaction event
-- its emoji and the count after it.
ALTER TABLE messages ADD COLUMN edited_at TEXT;
ALTER TABLE messages ADD COLUMN reply_to BIGINT;
ALTER TABLE messages ADD COLUMN mentions TEXT;
ALTER TABLE messages ADD COLUMN reactions TEXT;
ALTER TABLE messages ADD COLUMN emoji TEXT;
ALTER TABLE messages ADD COLUMN reaction_count BIGINT;

-- History pages read messages only, skipping the change events between them however many
-- there are.
CREATE INDEX messages_room_posts ON messages (room, id) WHERE kind = 0;
-- Deleting a message deletes the events about it.
CREATE INDEX messages_about ON messages (about) WHERE about IS NOT NULL;

-- Who holds which reaction; `seq` orders them by when they were added (the writers hold the
-- message's row lock while they change its reactions, so for one message that is commit
-- order too).
CREATE TABLE reactions (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id BIGINT NOT NULL,
    emoji      TEXT NOT NULL,
    user_id    UUID NOT NULL REFERENCES users (id),
    UNIQUE (message_id, emoji, user_id)
);
CREATE INDEX reactions_order ON reactions (message_id, emoji, seq);
