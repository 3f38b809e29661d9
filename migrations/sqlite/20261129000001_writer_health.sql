-- One row the writer rewrites to find out whether the message log takes writes again after
-- a failed commit (disk full, read-only file), so readiness recovers by itself.
CREATE TABLE writer_health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at TEXT NOT NULL
);
INSERT INTO writer_health (id, probed_at) VALUES (1, '');
