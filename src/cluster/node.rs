//! This node as the others see it: its row, its peers, the calls it makes to them, and
//! the membership chores (heartbeat, declaring dead nodes, reading everyone's presence).

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context;
use parking_lot::RwLock;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{
    client::{Answer, NodeClient},
    presence::PresenceView,
    wire::{BusMessage, Op},
};
use crate::{
    config::ClusterSettings,
    db::{
        Db,
        nodes::{self, NodeRow},
    },
    domain::{NODE_TAG_BYTES, RoomName, UserRef},
    hub::Hub,
};

/// Least time between two reads of the node list for requests naming an unknown node.
const LOOKUP_EVERY: Duration = Duration::from_millis(250);

/// A call to another node that did not get an answer.
#[derive(Debug, thiserror::Error)]
#[error("node {node} did not answer: {source:#}")]
pub struct RelayError {
    node: Uuid,
    #[source]
    source: anyhow::Error,
}

/// Everything a clustered node's tasks share.
pub(super) struct Node {
    pub(super) id: Uuid,
    pub(super) tag: [u8; NODE_TAG_BYTES],
    pub(super) url: String,
    pub(super) db: Db,
    pub(super) pool: PgPool,
    /// The bus channel (one per database schema, so clusters sharing a database don't mix).
    pub(super) channel: String,
    pub(super) hub: Arc<Hub>,
    pub(super) view: PresenceView,
    /// Wakes the tailer.
    pub(super) wake: Notify,
    /// Signalled by the tailer each time it has read the log up to its head.
    pub(super) tailed: Notify,
    /// Wakes the account watcher ([`super::accounts`]): an account changed somewhere.
    pub(super) accounts: Arc<Notify>,
    /// Asks for every node's presence to be read again.
    resync: Notify,
    /// The other live nodes, by id (refreshed every heartbeat, and when a node joins).
    peers: RwLock<HashMap<Uuid, NodeRow>>,
    /// When a request for an unknown node's stream last read the node list: made-up ids
    /// must not buy a database read each.
    looked_up: parking_lot::Mutex<Option<std::time::Instant>>,
    client: NodeClient,
    pub(super) token: String,
    pub(super) settings: ClusterSettings,
}

impl Node {
    /// Registers a new node row with a fresh tag.
    pub(super) async fn register(
        db: Db,
        pool: PgPool,
        channel: String,
        hub: Arc<Hub>,
        url: String,
        token: String,
        settings: ClusterSettings,
    ) -> anyhow::Result<Self> {
        let id = Uuid::new_v4();
        // A tag taken by a live node (one chance in 2^48 per node) is simply drawn again.
        let mut attempt = 0;
        let tag = loop {
            let bytes = *Uuid::new_v4().as_bytes();
            let mut tag = [0; NODE_TAG_BYTES];
            tag.copy_from_slice(&bytes[..NODE_TAG_BYTES]);
            let row = NodeRow {
                id,
                tag: tag_number(tag),
                url: url.clone(),
            };
            match nodes::register_node(&pool, &row).await {
                Ok(()) => break tag,
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    tracing::warn!(error = %e, "registering the node failed; trying again");
                }
                Err(e) => return Err(e).context("registering this node in the cluster"),
            }
        };
        let client = NodeClient::new(Duration::from_millis(settings.relay_timeout_ms))?;
        Ok(Self {
            id,
            tag,
            url,
            db,
            pool,
            channel,
            hub,
            view: PresenceView::new(Duration::from_millis(settings.presence_settle_ms)),
            wake: Notify::new(),
            tailed: Notify::new(),
            accounts: Arc::new(Notify::new()),
            resync: Notify::new(),
            peers: RwLock::new(HashMap::new()),
            looked_up: parking_lot::Mutex::new(None),
            client,
            token,
            settings,
        })
    }

    /// The tag as stored (and as the liveness lock's key).
    pub(super) fn tag_number(&self) -> i64 {
        tag_number(self.tag)
    }

    pub(super) fn wake_tailer(&self) {
        self.wake.notify_one();
    }

    pub(super) fn request_resync(&self) {
        self.resync.notify_one();
    }

    /// Sends notifications on the bus, in order, in one transaction.
    pub(super) async fn notify(&self, payloads: &[&str]) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        // Nothing here is stored: waiting for the WAL flush would only add latency.
        sqlx::query("SET LOCAL synchronous_commit TO OFF")
            .execute(&mut *tx)
            .await?;
        nodes::notify(&mut tx, &self.channel, payloads).await?;
        tx.commit().await
    }

    /// Drops a node from the peers (declared dead).
    pub(super) fn forget(&self, id: Uuid) {
        self.peers.write().remove(&id);
    }

    /// The other live nodes.
    pub(super) fn peers(&self) -> Vec<NodeRow> {
        self.peers.read().values().cloned().collect()
    }

    /// The live node whose connection ids start with `tag`, reading the node list again
    /// when it is not known (a node that started a moment ago), at most every
    /// [`LOOKUP_EVERY`].
    pub(super) async fn peer_with_tag(&self, tag: [u8; NODE_TAG_BYTES]) -> Option<NodeRow> {
        let wanted = tag_number(tag);
        let find =
            |peers: &HashMap<Uuid, NodeRow>| peers.values().find(|p| p.tag == wanted).cloned();
        if let Some(p) = find(&self.peers.read()) {
            return Some(p);
        }
        {
            let mut last = self.looked_up.lock();
            if last.is_some_and(|at| at.elapsed() < LOOKUP_EVERY) {
                return None;
            }
            *last = Some(std::time::Instant::now());
        }
        if let Err(e) = self.refresh_peers().await {
            tracing::warn!(error = %e, "reading the node list failed");
        }
        find(&self.peers.read())
    }

    /// Reads the node list again.
    pub(super) async fn refresh_peers(&self) -> sqlx::Result<()> {
        let rows = nodes::nodes(&self.pool).await?;
        let peers = rows
            .into_iter()
            .filter(|r| r.id != self.id)
            .map(|r| (r.id, r))
            .collect();
        *self.peers.write() = peers;
        Ok(())
    }

    /// Calls `op` on `peer` (over a pooled connection): what it answered.
    pub(super) async fn call(&self, peer: &NodeRow, op: &Op) -> Result<Answer, RelayError> {
        let fail = |source| RelayError {
            node: peer.id,
            source,
        };
        let body = serde_json::to_vec(op).map_err(|e| fail(e.into()))?;
        self.client
            .post(format!("{}/internal/cluster", peer.url), &self.token, body)
            .await
            .map_err(fail)
    }

    /// Calls `op` on every other live node at once; the answers that came, parsed.
    pub(super) async fn scatter<T: serde::de::DeserializeOwned>(&self, op: &Op) -> Vec<T> {
        let peers = self.peers();
        let calls = peers.iter().map(|p| async move {
            let answer = self.call(p, op).await;
            (p.id, answer)
        });
        let mut out = Vec::with_capacity(peers.len());
        for (peer, answer) in futures_util::future::join_all(calls).await {
            match answer {
                Ok(Answer {
                    status: 200, body, ..
                }) => match serde_json::from_slice(&body) {
                    Ok(v) => out.push(v),
                    Err(e) => tracing::warn!(%peer, error = %e, "a node's answer did not parse"),
                },
                Ok(Answer { status, .. }) => {
                    tracing::warn!(%peer, status, "a node refused a cluster call")
                }
                Err(e) => tracing::warn!(error = %e, "a node did not answer a cluster call"),
            }
        }
        out
    }

    /// Reads every live node's presence and corrects the view where it differs.
    async fn resync_presence(&self) {
        if let Err(e) = self.refresh_peers().await {
            tracing::warn!(error = %e, "reading the node list failed");
            return;
        }
        let peers = self.peers();
        let mut changes = Vec::new();
        for peer in &peers {
            match self.call(peer, &Op::Presence).await {
                Ok(Answer {
                    status: 200, body, ..
                }) => match serde_json::from_slice::<Vec<(RoomName, UserRef)>>(&body) {
                    Ok(present) => changes.extend(self.view.reset_node(peer.id, &present)),
                    Err(e) => {
                        tracing::warn!(peer = %peer.id, error = %e, "bad presence answer")
                    }
                },
                Ok(Answer { status, .. }) => {
                    tracing::warn!(peer = %peer.id, status, "presence refused")
                }
                Err(e) => tracing::warn!(error = %e, "presence not read"),
            }
        }
        // A node in the view that is no longer registered is gone.
        for known in self.view.nodes() {
            if known != self.id && !peers.iter().any(|p| p.id == known) {
                changes.extend(self.view.remove_node(known));
            }
        }
        for (room, user, action) in changes {
            self.hub.announce_presence(&room, &user, action);
        }
    }
}

/// The tag as a number (48 bits).
fn tag_number(tag: [u8; NODE_TAG_BYTES]) -> i64 {
    tag.iter().fold(0i64, |n, b| (n << 8) | i64::from(*b))
}

/// Reads every node's presence again whenever asked (after the listener reconnected).
pub(super) async fn resync(node: Arc<Node>) {
    loop {
        node.resync.notified().await;
        node.resync_presence().await;
    }
}

/// Every heartbeat: records that this node is alive, reads the node list, and declares
/// dead the nodes that are.
pub(super) async fn membership(node: Arc<Node>) {
    let every = Duration::from_millis(node.settings.heartbeat_ms);
    let crashed = node.settings.crashed_after_secs as f64;
    let hung = node.settings.hung_after_secs as f64;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match nodes::heartbeat(&node.pool, node.id).await {
            Ok(true) => {}
            Ok(false) => rejoin(&node).await,
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                continue;
            }
        }
        if let Err(e) = node.refresh_peers().await {
            tracing::warn!(error = %e, "reading the node list failed");
        }
        let stale = match nodes::stale_nodes(&node.pool, node.id, crashed).await {
            Ok(stale) => stale,
            Err(e) => {
                tracing::warn!(error = %e, "looking for dead nodes failed");
                continue;
            }
        };
        for (peer, age) in stale {
            let gone = BusMessage::Gone { node: peer.id }.encode();
            match nodes::take_dead_node(&node.pool, &peer, age, crashed, hung, &node.channel, &gone)
                .await
            {
                Ok(Some(dead)) => tracing::warn!(
                    node = %dead.id, url = %peer.url, heartbeat_age_secs = age,
                    "declared a node dead; its presence is removed"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "declaring a node dead failed"),
            }
        }
    }
}

/// This node's row is gone: another node declared it dead (it stalled past the bound) and
/// told everyone its streams were gone. Make that true, then register again.
async fn rejoin(node: &Node) {
    tracing::error!("this node was declared dead; closing its streams and registering again");
    node.hub.close_streams();
    let row = NodeRow {
        id: node.id,
        tag: node.tag_number(),
        url: node.url.clone(),
    };
    if let Err(e) = nodes::register_node(&node.pool, &row).await {
        tracing::warn!(error = %e, "registering again failed");
    }
    node.request_resync();
}
