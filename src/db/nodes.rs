//! The cluster's own rows (PostgreSQL only): which nodes are alive and where they listen,
//! the secrets every node must share, and the notifications that carry events between them.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A node as registered.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRow {
    /// The node's id (new at every start).
    pub id: Uuid,
    /// The tag leading its connection ids (48 bits).
    pub tag: i64,
    /// Where other nodes reach it.
    pub url: String,
}

/// A node found dead by [`take_dead_node`].
#[derive(Debug, Clone, Copy)]
pub struct DeadNode {
    /// Its id.
    pub id: Uuid,
}

/// The session-level advisory lock a node's listener connection holds while it lives. The
/// high bits keep roomcast's keys apart from other users of advisory locks.
pub fn liveness_lock_key(tag: i64) -> i64 {
    0x5243_0000_0000_0000 | (tag & 0x0000_FFFF_FFFF_FFFF)
}

/// Registers (or re-registers) this node, heartbeat now.
pub async fn register_node(pool: &PgPool, node: &NodeRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO nodes (id, tag, url, heartbeat_at) VALUES ($1, $2, $3, now()) \
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, heartbeat_at = now()",
    )
    .bind(node.id)
    .bind(node.tag)
    .bind(&node.url)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that this node is alive. False when its row is gone: another node declared it
/// dead.
pub async fn heartbeat(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let n = sqlx::query("UPDATE nodes SET heartbeat_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Removes this node's row at a clean shutdown.
pub async fn deregister(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM nodes WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every registered node.
pub async fn nodes(pool: &PgPool) -> sqlx::Result<Vec<NodeRow>> {
    sqlx::query_as("SELECT id, tag, url FROM nodes ORDER BY id")
        .fetch_all(pool)
        .await
}

/// Nodes other than `me` whose heartbeat is older than `secs` seconds.
pub async fn stale_nodes(pool: &PgPool, me: Uuid, secs: f64) -> sqlx::Result<Vec<(NodeRow, f64)>> {
    let rows: Vec<(Uuid, i64, String, f64)> = sqlx::query_as(
        "SELECT id, tag, url, EXTRACT(EPOCH FROM now() - heartbeat_at)::float8 \
         FROM nodes WHERE id <> $1 AND heartbeat_at < now() - make_interval(secs => $2)",
    )
    .bind(me)
    .bind(secs)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, tag, url, age)| (NodeRow { id, tag, url }, age))
        .collect())
}

/// Declares `node` dead when it is: its heartbeat is `hung_after` seconds old, or it is
/// `crashed_after` seconds old and nobody holds its liveness lock (its process, and with
/// it the database session holding the lock, is gone). Deleting the row and notifying
/// `channel` with `gone` happen in one transaction, so exactly one node wins the
/// declaration and every node hears it. `None` when the node is alive, or another node
/// declared it first.
pub async fn take_dead_node(
    pool: &PgPool,
    node: &NodeRow,
    age_secs: f64,
    crashed_after: f64,
    hung_after: f64,
    channel: &str,
    gone: &str,
) -> sqlx::Result<Option<DeadNode>> {
    let mut tx = pool.begin().await?;
    let dead = if age_secs >= hung_after {
        true
    } else if age_secs >= crashed_after {
        // Taken for this transaction only: released at its end whatever happens.
        let (free,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
            .bind(liveness_lock_key(node.tag))
            .fetch_one(&mut *tx)
            .await?;
        free
    } else {
        false
    };
    if !dead {
        return Ok(None);
    }
    let deleted = sqlx::query("DELETE FROM nodes WHERE id = $1")
        .bind(node.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Ok(None);
    }
    notify(&mut tx, channel, &[gone]).await?;
    tx.commit().await?;
    Ok(Some(DeadNode { id: node.id }))
}

/// Queues notifications on `channel`; they are delivered when `tx` commits, in order.
pub async fn notify(
    tx: &mut Transaction<'_, Postgres>,
    channel: &str,
    payloads: &[&str],
) -> sqlx::Result<()> {
    for payload in payloads {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The shared secret `name`: the first node to ask stores `candidate`, every node gets
/// what was stored first.
pub async fn shared_secret(pool: &PgPool, name: &str, candidate: &[u8]) -> sqlx::Result<Vec<u8>> {
    sqlx::query(
        "INSERT INTO cluster_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(candidate)
    .execute(pool)
    .await?;
    let (value,): (Vec<u8>,) = sqlx::query_as("SELECT value FROM cluster_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await?;
    Ok(value)
}
