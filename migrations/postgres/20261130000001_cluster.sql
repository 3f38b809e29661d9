-- Several nodes on one database.

-- The nodes alive now. A node inserts its row at start, refreshes heartbeat_at every
-- cluster.heartbeat_ms, and deletes it at a clean stop; a node that dies is deleted by the
-- first other node to notice (see db/nodes.rs). Times are the database's clock, so the nodes'
-- own clocks never have to agree.
CREATE TABLE nodes (
    id           UUID PRIMARY KEY NOT NULL,
    tag          BIGINT NOT NULL UNIQUE,            -- leads the node's connection ids (48 bits)
    url          TEXT NOT NULL,                     -- where the other nodes reach it
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Secrets every node must share (the session cookie key, the nodes' bearer token) when the
-- configuration does not give them: the first node to start stores them.
CREATE TABLE cluster_secrets (
    name  TEXT PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL
);
