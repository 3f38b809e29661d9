//! Several nodes on one PostgreSQL database, behaving as one service behind a plain
//! round-robin balancer. With SQLite a node is alone and [`Cluster`] hands everything
//! straight to its hub.
//!
//! * Stored events: the writer assigns ids from one counter row and `NOTIFY`s as a wake-up;
//!   every node's [`tailer`] reads the log in id order and feeds its own hub, so every
//!   node delivers every event, in the same order, exactly once.
//! * Presence, custom events and a dead node's departure cross nodes on the [`bus`]
//!   (`LISTEN`/`NOTIFY`). Each node keeps the same cluster-wide [`presence`] view.
//! * A stream lives on one node, and its connection id says which (its leading bytes are
//!   the node's tag). A subscribe or unsubscribe for a stream held elsewhere is relayed to
//!   that node ([`Op`], `POST /internal/cluster` with the nodes' bearer token); bans,
//!   logouts, member removals and stats are asked of every node.
//! * Each [`node`] heartbeats a row and holds an advisory lock on its listener's
//!   connection. A node whose lock is free (its process died) is declared dead once its
//!   heartbeat is `crashed_after_secs` old, one still holding it once it is
//!   `hung_after_secs` old; its presence leaves everywhere, and its clients reconnect
//!   through the balancer with `Last-Event-ID`.

mod accounts;
mod alone;
mod bus;
mod client;
mod head;
mod member;
mod node;
mod presence;
mod tailer;
mod wire;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use uuid::Uuid;

pub use alone::Alone;
pub use client::Answer;
pub use member::{Member, Peer};
pub use node::RelayError;
pub use wire::{Closed, NodeStats, Op};

use crate::{
    broker::Broker,
    config::ClusterSettings,
    db::Db,
    domain::{ConnectionId, EventName, RoomName, UserRef},
    hub::{Hub, HubStats, MemberChange, ReadMarker, RoomInfo},
};

/// Where a stream is held.
pub enum Holder {
    /// On this node.
    Here,
    /// On another live node, which a request about it is relayed to.
    Elsewhere(Peer),
    /// Nowhere this node knows (a dead node's, or made up).
    Nowhere,
}

/// The service as one: this node alone, or this node of a cluster. Handlers ask it, not
/// the hub, for anything that spans nodes.
pub enum Cluster {
    /// A node alone (SQLite).
    Alone(Alone),
    /// A node of a cluster on one PostgreSQL database.
    Member(Member),
}

impl Cluster {
    /// A node alone (SQLite).
    pub fn alone(hub: Arc<Hub>) -> Self {
        Self::Alone(Alone::new(hub))
    }

    /// Joins (or founds) the cluster on `db`'s PostgreSQL database, starting the tailer
    /// from `cursor` (the last id the hub knows of). `url` is where the others reach this
    /// node.
    pub async fn join(
        db: &Db,
        hub: Arc<Hub>,
        settings: &ClusterSettings,
        url: String,
        cursor: i64,
    ) -> anyhow::Result<Self> {
        Ok(Self::Member(
            Member::join(db, hub, settings, url, cursor).await?,
        ))
    }

    fn hub(&self) -> &Arc<Hub> {
        match self {
            Self::Alone(a) => &a.hub,
            Self::Member(m) => &m.hub,
        }
    }

    /// Starts applying account changes made outside this server (the command line, other
    /// nodes) to its open streams: read every `every`, and at once when the bus says so.
    pub async fn watch_accounts(&self, db: &Db, every: Duration) -> anyhow::Result<()> {
        let cursor = db
            .last_account_change()
            .await
            .context("reading the account change log")?;
        let (wake, tasks) = match self {
            Self::Alone(a) => (&a.accounts, &a.tasks),
            Self::Member(m) => (m.accounts(), &m.tasks),
        };
        let task = tokio::spawn(accounts::watch(
            db.clone(),
            self.hub().clone(),
            wake.clone(),
            every,
            cursor,
        ));
        tasks.lock().push(task);
        Ok(())
    }

    /// Where the writer hands committed events.
    pub fn broker(&self) -> Arc<dyn Broker> {
        match self {
            Self::Alone(a) => a.broker(),
            Self::Member(m) => m.broker(),
        }
    }

    /// Whether `presented` is the nodes' bearer token (never, alone).
    pub fn token_matches(&self, presented: &str) -> bool {
        match self {
            Self::Alone(_) => false,
            Self::Member(m) => m.token_matches(presented),
        }
    }

    /// Which node holds stream `id`.
    pub async fn holder(&self, id: ConnectionId) -> Holder {
        if self.hub().holds(id) {
            return Holder::Here;
        }
        let peer = match self {
            Self::Alone(_) => None,
            Self::Member(m) => m.peer_holding(id).await,
        };
        peer.map_or(Holder::Nowhere, Holder::Elsewhere)
    }

    /// Users with a connection in `room` on any node, sorted by name. A user whose last
    /// connection here left is not listed, even while that leave is held back for
    /// coalescing and the others still count it.
    pub fn presence(&self, room: &RoomName) -> Vec<UserRef> {
        match self {
            Self::Alone(a) => a.presence(room),
            Self::Member(m) => m.presence(room),
        }
    }

    /// Whether `room` has subscribers on any node.
    pub fn has_room(&self, room: &RoomName) -> bool {
        match self {
            Self::Alone(a) => a.has_room(room),
            Self::Member(m) => m.has_room(room),
        }
    }

    /// The `limit` busiest rooms of the whole service that `keep` lets through.
    pub async fn busiest_rooms(
        &self,
        limit: usize,
        keep: impl Fn(&RoomName) -> bool,
    ) -> Vec<RoomInfo> {
        match self {
            Self::Alone(a) => a.busiest_rooms(limit, keep),
            Self::Member(m) => m.busiest_rooms(limit, keep).await,
        }
    }

    /// This node's figures and users.
    pub fn node_stats(&self) -> NodeStats {
        let hub = self.hub();
        NodeStats {
            stats: hub.stats(),
            users: hub.users_online(),
            rooms: hub.rooms().into_iter().map(|r| r.name).collect(),
        }
    }

    /// Live figures of the whole service (counters summed; users and rooms counted once).
    pub async fn stats(&self) -> HubStats {
        match self {
            Self::Alone(a) => a.stats(),
            Self::Member(m) => m.stats(self.node_stats()).await,
        }
    }

    /// Closes every stream of `user` on every node; how many.
    pub async fn close_user(&self, user: Uuid) -> usize {
        let here = self.hub().close_user(user);
        here + self.closed_elsewhere(&Op::CloseUser { user }).await
    }

    /// Closes every stream of login `session` on every node; how many.
    pub async fn close_session(&self, session: Uuid) -> usize {
        let here = self.hub().close_session(session);
        here + self.closed_elsewhere(&Op::CloseSession { session }).await
    }

    /// Takes `user`'s streams out of private `room` on every node; how many.
    pub async fn remove_member(&self, room: &RoomName, user: Uuid, by: Option<&UserRef>) -> usize {
        let here = self.hub().remove_member(room, user, by);
        let op = Op::RemoveMember {
            room: room.clone(),
            user,
            by: by.cloned(),
        };
        here + self.closed_elsewhere(&op).await
    }

    /// Sends a `member` event for `change` to the streams of every node (see
    /// [`Hub::announce_member`]); how many streams it reached.
    pub async fn announce_member(&self, change: &MemberChange, to_user: bool) -> usize {
        let here = self.hub().announce_member(change, to_user);
        let op = Op::Member {
            change: change.clone(),
            to_user,
        };
        here + self.closed_elsewhere(&op).await
    }

    /// Sends a `read` event for `marker` to every stream of `user` on every node; how many
    /// streams it reached.
    pub async fn announce_read(&self, user: Uuid, marker: &ReadMarker) -> usize {
        let here = self.hub().announce_read(user, marker);
        let op = Op::Read {
            user,
            marker: marker.clone(),
        };
        here + self.closed_elsewhere(&op).await
    }

    async fn closed_elsewhere(&self, op: &Op) -> usize {
        match self {
            Self::Alone(_) => 0,
            Self::Member(m) => m.closed_elsewhere(op).await,
        }
    }

    /// Waits (bounded) until this node has published every event committed before the
    /// call, so a replay that starts next includes writes made on other nodes. Alone there
    /// is nothing to wait for.
    pub async fn catch_up(&self) {
        if let Self::Member(m) = self {
            m.catch_up().await;
        }
    }

    /// Sends a custom event to `room`'s subscribers on every node: here at once, to the
    /// others on the bus.
    pub async fn publish_custom(
        &self,
        room: &RoomName,
        user: &UserRef,
        event: &EventName,
        data: &serde_json::Value,
    ) -> sqlx::Result<()> {
        self.hub().publish_custom(room, user, event, data);
        match self {
            Self::Alone(_) => Ok(()),
            Self::Member(m) => m.publish_custom(room, user, event, data).await,
        }
    }

    /// Leaves the cluster cleanly (nothing to do alone).
    pub async fn leave(&self) {
        // First stop listening: a member must not take its own goodbye for a verdict.
        self.stop_tasks();
        if let Self::Member(m) = self {
            m.leave().await;
        }
    }

    /// Stops this node's cluster tasks (and with them its listener's connection, so the
    /// others see it die).
    pub fn stop_tasks(&self) {
        let tasks = match self {
            Self::Alone(a) => &a.tasks,
            Self::Member(m) => &m.tasks,
        };
        for task in tasks.lock().drain(..) {
            task.abort();
        }
    }
}

/// The session cookie key every node of a cluster shares: the first node to start stores
/// its `candidate`, every node gets that one.
pub async fn shared_cookie_key(db: &Db, candidate: &[u8]) -> anyhow::Result<Vec<u8>> {
    let pool = db
        .pg_pool()
        .context("a shared key needs a PostgreSQL database")?;
    Ok(crate::db::nodes::shared_secret(pool, "session_key", candidate).await?)
}
