-- Bans, unbans and role changes, one row each, so every running node notices those made by
-- another process (the `roomcast user …` command) and applies them to its open streams. The
-- change's transaction also notifies the cluster's channel; the nodes read the rows after
-- the last id they have seen (and every few hundred milliseconds anyway, in case a
-- notification was lost). Rows older than a few minutes are deleted.
CREATE TABLE account_changes (
    id      BIGSERIAL PRIMARY KEY,
    user_id UUID NOT NULL,
    at      BIGINT NOT NULL                             -- Unix seconds
);
