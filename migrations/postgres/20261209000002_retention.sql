-- Retention: for each room ('' for broadcasts), the highest id a retention sweep deleted
-- there. A resume from before it may have lost events to the sweep (replay.complete: false).
CREATE TABLE retention_marks (
    room     TEXT PRIMARY KEY NOT NULL,
    swept_to BIGINT NOT NULL
);
