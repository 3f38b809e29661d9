-- Webhooks: each is a cursor over the message log. `delivered_id` is the last id whose
-- event it has (delivered, or not one it takes); delivery resumes after it, so a restart
-- sends an event at most once more and never skips one.
CREATE TABLE webhooks (
    id           BLOB PRIMARY KEY NOT NULL,           -- uuid
    url          TEXT NOT NULL,
    events       TEXT NOT NULL,                       -- JSON array of event names
    rooms        TEXT,                                -- JSON array of room names; NULL: all
    -- The signing secret itself: signing needs it (a hash would not do). Shown once.
    secret       TEXT NOT NULL,
    created_at   TEXT NOT NULL,                       -- RFC 3339 UTC
    delivered_id INTEGER NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0,          -- failed tries since the last success
    last_error   TEXT,
    -- On PostgreSQL, the node delivering it and until when (see db/webhooks.rs); a SQLite
    -- database has one server, which delivers them all.
    lease_holder BLOB,
    lease_until  INTEGER
);
