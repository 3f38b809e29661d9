-- Webhooks: each is a cursor over the message log. `delivered_id` is the last id whose
-- event it has (delivered, or not one it takes); delivery resumes after it, so a restart
-- sends an event at most once more and never skips one.
CREATE TABLE webhooks (
    id           UUID PRIMARY KEY,
    url          TEXT NOT NULL,
    events       TEXT NOT NULL,                       -- JSON array of event names
    rooms        TEXT,                                -- JSON array of room names; NULL: all
    -- The signing secret itself: signing needs it (a hash would not do). Shown once.
    secret       TEXT NOT NULL,
    created_at   TEXT NOT NULL,                       -- RFC 3339 UTC
    delivered_id BIGINT NOT NULL,
    failures     BIGINT NOT NULL DEFAULT 0,           -- failed tries since the last success
    last_error   TEXT,
    -- The node delivering it, until when (the database's clock): exactly one node of a
    -- cluster delivers a webhook; another takes over once the lease runs out unrenewed.
    lease_holder UUID,
    lease_until  TIMESTAMPTZ
);
