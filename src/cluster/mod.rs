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
mod bus;
mod client;
mod node;
mod presence;
mod tailer;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{Notify, mpsc},
    task::JoinHandle,
};
use uuid::Uuid;

pub use client::Answer;
pub use node::RelayError;

use crate::{
    broker::{Broker, LocalBroker},
    config::ClusterSettings,
    db::{Db, nodes},
    domain::{ConnectionId, EventName, RoomName, SubscribeBody, UnsubscribeBody, User, UserRef},
    hub::{Hub, HubStats, NodeLink, RoomInfo, keep_busiest},
};
use bus::{BusMessage, ClusterPresence};
use node::Node;

/// Longest a subscribe waits for this node's tailer to catch up ([`Cluster::catch_up`]).
/// Past it the subscribe goes on: what it missed from its replay still comes live.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// What one node asks of another (`POST /internal/cluster`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `POST /api/subscribe` for a stream the callee holds, on behalf of `user` (whose
    /// session the caller checked).
    Subscribe {
        /// The caller's user.
        user: User,
        /// The request as received.
        body: SubscribeBody,
    },
    /// `POST /api/unsubscribe` for a stream the callee holds.
    Unsubscribe {
        /// The caller's user.
        user: User,
        /// The request as received.
        body: UnsubscribeBody,
    },
    /// Close a user's streams → [`Closed`].
    CloseUser {
        /// Whose.
        user: Uuid,
    },
    /// Close a login session's streams → [`Closed`].
    CloseSession {
        /// Which.
        session: Uuid,
    },
    /// Take a user's streams out of a private room → [`Closed`].
    RemoveMember {
        /// The room.
        room: RoomName,
        /// Whom.
        user: Uuid,
        /// Who removed them.
        by: Option<UserRef>,
    },
    /// The callee's live figures → [`NodeStats`].
    Stats,
    /// The callee's rooms with subscribers → `[RoomInfo]`.
    Rooms,
    /// Who is where on the callee → `[[room, user]]`.
    Presence,
}

/// How many streams a node closed.
#[derive(Debug, Serialize, Deserialize)]
pub struct Closed {
    /// Streams closed.
    pub closed: usize,
}

/// One node's figures, and its users and rooms (one online on two nodes counts once).
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeStats {
    /// The hub's figures.
    pub stats: HubStats,
    /// Users with a stream open there.
    pub users: Vec<Uuid>,
    /// Rooms with a subscriber there.
    pub rooms: Vec<RoomName>,
}

/// Where a stream is held.
pub enum Holder {
    /// On this node.
    Here,
    /// On another live node.
    Elsewhere(nodes::NodeRow),
    /// Nowhere this node knows (a dead node's, or made up).
    Nowhere,
}

/// The service as one: this node alone, or this node of a cluster. Handlers ask it, not
/// the hub, for anything that spans nodes.
pub struct Cluster {
    hub: Arc<Hub>,
    node: Option<Arc<Node>>,
    /// The other nodes' room lists, reused for `cluster.fanout_cache_ms`.
    peer_rooms: PeerCache<Vec<RoomInfo>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Wakes the account watcher (on a cluster, the bus does).
    accounts: Arc<Notify>,
}

impl Cluster {
    /// A node alone (SQLite).
    pub fn alone(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            node: None,
            peer_rooms: PeerCache::new(Duration::ZERO),
            tasks: Mutex::new(Vec::new()),
            accounts: Arc::new(Notify::new()),
        }
    }

    /// Joins (or founds) the cluster on `db`'s PostgreSQL database: registers this node,
    /// listens on the bus, reads the other nodes' presence, and starts the tailer from
    /// `cursor` (the last id the hub knows of). `url` is where the others reach this node.
    pub async fn join(
        db: &Db,
        hub: Arc<Hub>,
        settings: &ClusterSettings,
        url: String,
        cursor: i64,
    ) -> anyhow::Result<Self> {
        let pool = db
            .pg_pool()
            .context("a cluster needs a PostgreSQL database")?
            .clone();
        let channel = db
            .notify_channel()
            .context("a cluster needs a PostgreSQL database")?
            .to_owned();
        let token = match &settings.token {
            Some(t) => t.expose().to_owned(),
            None => {
                let candidate = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
                let stored = nodes::shared_secret(&pool, "cluster_token", candidate.as_bytes())
                    .await
                    .context("reading the cluster token")?;
                String::from_utf8(stored).context("the stored cluster token is not text")?
            }
        };
        let node = Arc::new(
            Node::register(
                db.clone(),
                pool,
                channel,
                hub.clone(),
                url,
                token,
                settings.clone(),
            )
            .await?,
        );
        let listener = bus::open_listener(&node)
            .await
            .context("listening on the cluster bus")?;
        let (outbox, presence_out) = mpsc::unbounded_channel();
        hub.link(NodeLink {
            tag: node.tag,
            presence: Box::new(ClusterPresence {
                node: node.clone(),
                outbox,
            }),
        })?;
        tracing::info!(node = %node.id, url = %node.url, "joined the cluster");
        let every = Duration::from_millis(settings.tail_every_ms);
        let tasks = vec![
            tokio::spawn(bus::listen(node.clone(), listener)),
            tokio::spawn(bus::send_presence(node.clone(), presence_out)),
            tokio::spawn(tailer::tail(node.clone(), cursor, every)),
            tokio::spawn(node::membership(node.clone())),
            tokio::spawn(node::resync(node.clone())),
        ];
        // Whoever is present elsewhere already; and the others learn of this node at once.
        node.request_resync();
        node.notify(&[&BusMessage::Joined { node: node.id }.encode()])
            .await
            .context("announcing this node to the cluster")?;
        let cached_for = Duration::from_millis(settings.fanout_cache_ms);
        Ok(Self {
            hub,
            peer_rooms: PeerCache::new(cached_for),
            accounts: node.accounts.clone(),
            node: Some(node),
            tasks: Mutex::new(tasks),
        })
    }

    /// Starts applying account changes made outside this server (the command line, other
    /// nodes) to its open streams: read every `every`, and at once when the bus says so.
    pub async fn watch_accounts(&self, db: &Db, every: Duration) -> anyhow::Result<()> {
        let cursor = db
            .last_account_change()
            .await
            .context("reading the account change log")?;
        let task = tokio::spawn(accounts::watch(
            db.clone(),
            self.hub.clone(),
            self.accounts.clone(),
            every,
            cursor,
        ));
        self.tasks.lock().push(task);
        Ok(())
    }

    /// Where the writer hands committed events.
    pub fn broker(&self) -> Arc<dyn Broker> {
        match &self.node {
            Some(node) => Arc::new(tailer::WakeTailer(node.clone())),
            None => Arc::new(LocalBroker::new(self.hub.clone())),
        }
    }

    /// Whether `presented` is the nodes' bearer token (never, alone).
    pub fn token_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.node
            .as_ref()
            .is_some_and(|n| bool::from(n.token.as_bytes().ct_eq(presented.as_bytes())))
    }

    /// Which node holds stream `id`.
    pub async fn holder(&self, id: ConnectionId) -> Holder {
        match &self.node {
            _ if self.hub.holds(id) => Holder::Here,
            None => Holder::Nowhere,
            Some(node) => match node.peer_with_tag(id.node_tag()).await {
                Some(peer) => Holder::Elsewhere(peer),
                None => Holder::Nowhere,
            },
        }
    }

    /// Calls `op` on `peer`: what it answered, to answer with as it is.
    pub async fn relay(&self, peer: &nodes::NodeRow, op: &Op) -> Result<Answer, RelayError> {
        match &self.node {
            Some(node) => node.call(peer, op).await,
            None => unreachable!("a node alone has no peers to relay to"),
        }
    }

    /// Users with a connection in `room` on any node, sorted by name. A user whose last
    /// connection here left is not listed, even while that leave is held back for
    /// coalescing and the others still count it.
    pub fn presence(&self, room: &RoomName) -> Vec<UserRef> {
        match &self.node {
            // The view's lock is released before the hub is asked (the lock order).
            Some(node) => node
                .view
                .users(room)
                .into_iter()
                .filter(|(user, nodes)| {
                    nodes.iter().any(|n| *n != node.id) || self.hub.is_present(room, user.id)
                })
                .map(|(user, _)| user)
                .collect(),
            None => self.hub.presence(room),
        }
    }

    /// Whether `room` has subscribers on any node.
    pub fn has_room(&self, room: &RoomName) -> bool {
        match &self.node {
            Some(node) => node.view.has_room(room),
            None => self.hub.has_room(room),
        }
    }

    /// The `limit` busiest rooms of the whole cluster that `keep` lets through.
    pub async fn busiest_rooms(
        &self,
        limit: usize,
        keep: impl Fn(&RoomName) -> bool,
    ) -> Vec<RoomInfo> {
        let Some(node) = &self.node else {
            return self.hub.busiest_rooms(limit, keep);
        };
        let mut merged: HashMap<RoomName, usize> = HashMap::new();
        let peers = self.peer_rooms.get(node, &Op::Rooms).await;
        for room in self
            .hub
            .rooms()
            .into_iter()
            .chain(peers.iter().flatten().cloned())
        {
            *merged.entry(room.name).or_default() += room.subscribers;
        }
        let mut rooms: Vec<RoomInfo> = merged
            .into_iter()
            .filter(|(name, _)| keep(name))
            .map(|(name, subscribers)| RoomInfo {
                users: node.view.user_count(&name),
                name,
                subscribers,
            })
            .collect();
        keep_busiest(&mut rooms, limit);
        rooms
    }

    /// This node's figures and users.
    pub fn node_stats(&self) -> NodeStats {
        NodeStats {
            stats: self.hub.stats(),
            users: self.hub.users_online(),
            rooms: self.hub.rooms().into_iter().map(|r| r.name).collect(),
        }
    }

    /// Live figures of the whole cluster (counters summed; users and rooms counted once).
    pub async fn stats(&self) -> HubStats {
        let Some(node) = &self.node else {
            return self.hub.stats();
        };
        // Asked anew each time: live figures, for admins only.
        let here = self.node_stats();
        let peers = node.scatter::<NodeStats>(&Op::Stats).await;
        let mut users = HashSet::new();
        let mut rooms = HashSet::new();
        let mut total = HubStats::default();
        for n in std::iter::once(&here).chain(peers.iter()) {
            total.connections += n.stats.connections;
            total.subscriptions += n.stats.subscriptions;
            total.events_delivered += n.stats.events_delivered;
            total.slow_disconnects += n.stats.slow_disconnects;
            users.extend(n.users.iter().copied());
            rooms.extend(n.rooms.iter().cloned());
        }
        total.users_online = users.len();
        total.rooms = rooms.len();
        total
    }

    /// Closes every stream of `user` on every node; how many.
    pub async fn close_user(&self, user: Uuid) -> usize {
        self.everywhere(self.hub.close_user(user), &Op::CloseUser { user })
            .await
    }

    /// Closes every stream of login `session` on every node; how many.
    pub async fn close_session(&self, session: Uuid) -> usize {
        self.everywhere(
            self.hub.close_session(session),
            &Op::CloseSession { session },
        )
        .await
    }

    /// Takes `user`'s streams out of private `room` on every node; how many.
    pub async fn remove_member(&self, room: &RoomName, user: Uuid, by: Option<&UserRef>) -> usize {
        let here = self.hub.remove_member(room, user, by);
        let op = Op::RemoveMember {
            room: room.clone(),
            user,
            by: by.cloned(),
        };
        self.everywhere(here, &op).await
    }

    async fn everywhere(&self, here: usize, op: &Op) -> usize {
        match &self.node {
            Some(node) => {
                here + node
                    .scatter::<Closed>(op)
                    .await
                    .iter()
                    .map(|c| c.closed)
                    .sum::<usize>()
            }
            None => here,
        }
    }

    /// Waits until this node has published every event committed before the call, so a
    /// replay that starts next includes them all: a client that deleted or posted on one
    /// node and then resumes on another finds its own writes in the replay. Each node
    /// learns of another's commits from its tailer, a few milliseconds late. Bounded by
    /// [`CATCH_UP_WAIT`]; alone (SQLite) there is nothing to wait for.
    pub async fn catch_up(&self) {
        let Some(node) = &self.node else { return };
        let head = match node.db.log_head().await {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!(error = %e, "reading the log's head failed; not catching up");
                return;
            }
        };
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        loop {
            let tailed = node.tailed.notified();
            let mut tailed = std::pin::pin!(tailed);
            // Registered before the check, so a catch-up between the two is not missed.
            tailed.as_mut().enable();
            if self.hub.watermark() >= head {
                return;
            }
            node.wake_tailer();
            if tokio::time::timeout_at(deadline, tailed).await.is_err() {
                tracing::debug!(head, "the tailer did not catch up in time");
                return;
            }
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
        self.hub.publish_custom(room, user, event, data);
        if let Some(node) = &self.node {
            let message = BusMessage::Custom {
                node: node.id,
                room: room.clone(),
                user: user.clone(),
                event: event.clone(),
                data: data.clone(),
            }
            .encode();
            node.notify(&[&message]).await?;
        }
        Ok(())
    }

    /// Leaves the cluster cleanly: this node's row goes and the others hear at once that
    /// its streams are gone (rather than after the crash bound).
    pub async fn leave(&self) {
        let Some(node) = &self.node else {
            self.stop_tasks();
            return;
        };
        // First stop listening: this node must not take its own goodbye for a verdict.
        self.stop_tasks();
        let gone = BusMessage::Gone { node: node.id }.encode();
        let left = async {
            let mut tx = node.pool.begin().await?;
            nodes::deregister(&mut tx, node.id).await?;
            nodes::notify(&mut tx, &node.channel, &[&gone]).await?;
            tx.commit().await
        };
        if let Err(e) = left.await {
            tracing::warn!(error = %e, "leaving the cluster cleanly failed; the others will notice");
        }
    }

    /// Stops this node's cluster tasks (and with them its listener's connection, so the
    /// others see it die).
    pub fn stop_tasks(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

/// The other nodes' answers to one [`Op`], reused for a while: however many requests ask, a
/// node asks the others at most once per `fresh_for` (one asks; those arriving meanwhile
/// wait for its answer).
struct PeerCache<T> {
    fresh_for: Duration,
    slot: tokio::sync::Mutex<Option<(tokio::time::Instant, Arc<Vec<T>>)>>,
}

impl<T: serde::de::DeserializeOwned> PeerCache<T> {
    fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// The answers of the other nodes to `op`, asked anew when the last are stale.
    async fn get(&self, node: &Node, op: &Op) -> Arc<Vec<T>> {
        let mut slot = self.slot.lock().await;
        if let Some((at, answers)) = &*slot
            && at.elapsed() < self.fresh_for
        {
            return answers.clone();
        }
        let answers = Arc::new(node.scatter::<T>(op).await);
        *slot = Some((tokio::time::Instant::now(), answers.clone()));
        answers
    }
}

/// The session cookie key every node of a cluster shares: the first node to start stores
/// its `candidate`, every node gets that one.
pub async fn shared_cookie_key(db: &Db, candidate: &[u8]) -> anyhow::Result<Vec<u8>> {
    let pool = db
        .pg_pool()
        .context("a shared key needs a PostgreSQL database")?;
    Ok(nodes::shared_secret(pool, "session_key", candidate).await?)
}
