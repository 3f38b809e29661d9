//! This node as a member of a cluster on one PostgreSQL database: whatever spans nodes asks
//! the others (over the bus, or by calling them) as well as this node's hub.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use parking_lot::Mutex;
use tokio::{
    sync::{Notify, mpsc},
    task::JoinHandle,
};
use uuid::Uuid;

use super::{
    bus,
    bus::ClusterPresence,
    client::Answer,
    head::HeadReads,
    node::{self, Node, RelayError},
    tailer,
    wire::{BusMessage, Closed, NodeStats, Op},
};
use crate::{
    broker::Broker,
    config::ClusterSettings,
    db::{Db, nodes},
    domain::{ConnectionId, EventName, RoomName, UserRef},
    hub::{Hub, HubStats, NodeLink, RoomInfo, keep_busiest},
};

/// Longest a subscribe waits for this node's tailer to catch up ([`Member::catch_up`]).
/// Past it the subscribe goes on: what it missed from its replay still comes live.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// Another live node, as a request may be relayed to it.
pub struct Peer {
    node: Arc<Node>,
    row: nodes::NodeRow,
}

impl Peer {
    /// Calls `op` on this peer: its status and body, to answer with as they are.
    pub async fn relay(&self, op: &Op) -> Result<Answer, RelayError> {
        self.node.call(&self.row, op).await
    }
}

/// This node of a cluster, with the tasks that keep it one.
pub struct Member {
    pub(super) hub: Arc<Hub>,
    node: Arc<Node>,
    /// The other nodes' room lists, reused for `cluster.fanout_cache_ms`.
    peer_rooms: PeerCache<Vec<RoomInfo>>,
    /// The log's head as the subscribes waiting at once read it ([`Member::catch_up`]).
    head_reads: HeadReads,
    pub(super) tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Member {
    /// Joins (or founds) the cluster on `db`'s PostgreSQL database: registers this node,
    /// listens on the bus, reads the other nodes' presence, and starts the tailer from
    /// `cursor` (the last id the hub knows of). `url` is where the others reach this node.
    pub(super) async fn join(
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
        let token = cluster_token(&pool, settings).await?;
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
        let tasks = start(&node, &hub, settings, cursor).await?;
        Ok(Self {
            hub,
            node,
            peer_rooms: PeerCache::new(Duration::from_millis(settings.fanout_cache_ms)),
            head_reads: HeadReads::default(),
            tasks: Mutex::new(tasks),
        })
    }

    /// Wakes the account watcher (the bus does, when any node or the command line changed
    /// an account).
    pub(super) fn accounts(&self) -> &Arc<Notify> {
        &self.node.accounts
    }

    pub(super) fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(tailer::WakeTailer(self.node.clone()))
    }

    pub(super) fn token_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.node.token.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The live node whose tag stream `id` carries, if any.
    pub(super) async fn peer_holding(&self, id: ConnectionId) -> Option<Peer> {
        let row = self.node.peer_with_tag(id.node_tag()).await?;
        Some(Peer {
            node: self.node.clone(),
            row,
        })
    }

    /// A user whose last connection here left is not listed, even while that leave is held
    /// back for coalescing and the others still count it.
    pub(super) fn presence(&self, room: &RoomName) -> Vec<UserRef> {
        // The view's lock is released before the hub is asked (the lock order).
        self.node
            .view
            .users(room)
            .into_iter()
            .filter(|(user, nodes)| {
                nodes.iter().any(|n| *n != self.node.id) || self.hub.is_present(room, user.id)
            })
            .map(|(user, _)| user)
            .collect()
    }

    pub(super) fn has_room(&self, room: &RoomName) -> bool {
        self.node.view.has_room(room)
    }

    pub(super) async fn busiest_rooms(
        &self,
        limit: usize,
        keep: impl Fn(&RoomName) -> bool,
    ) -> Vec<RoomInfo> {
        let mut merged: HashMap<RoomName, usize> = HashMap::new();
        let peers = self.peer_rooms.get(&self.node, &Op::Rooms).await;
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
                users: self.node.view.user_count(&name),
                name,
                subscribers,
            })
            .collect();
        keep_busiest(&mut rooms, limit);
        rooms
    }

    pub(super) async fn stats(&self, here: NodeStats) -> HubStats {
        // Asked anew each time: live figures, for admins only.
        let mut all = vec![here];
        all.extend(self.node.scatter::<NodeStats>(&Op::Stats).await);
        let mut users = HashSet::new();
        let mut rooms = HashSet::new();
        let mut total = HubStats::default();
        for n in all {
            total.connections += n.stats.connections;
            total.subscriptions += n.stats.subscriptions;
            total.events_delivered += n.stats.events_delivered;
            total.slow_disconnects += n.stats.slow_disconnects;
            users.extend(n.users);
            rooms.extend(n.rooms);
        }
        total.users_online = users.len();
        total.rooms = rooms.len();
        total
    }

    /// How many streams the other nodes closed for `op`.
    pub(super) async fn closed_elsewhere(&self, op: &Op) -> usize {
        self.node
            .scatter::<Closed>(op)
            .await
            .iter()
            .map(|c| c.closed)
            .sum()
    }

    /// Waits until this node has published every event committed before the call, so a
    /// replay that starts next includes them all: a client that deleted or posted on one
    /// node and then resumes on another finds its own writes in the replay. Each node
    /// learns of another's commits from its tailer, a few milliseconds late. Bounded by
    /// [`CATCH_UP_WAIT`].
    pub(super) async fn catch_up(&self) {
        let node = &self.node;
        let head = match self.head_reads.read(|| node.db.log_head()).await {
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

    /// Sends a custom event (delivered here already) to the other nodes on the bus.
    pub(super) async fn publish_custom(
        &self,
        room: &RoomName,
        user: &UserRef,
        event: &EventName,
        data: &serde_json::Value,
    ) -> sqlx::Result<()> {
        let message = BusMessage::Custom {
            node: self.node.id,
            room: room.clone(),
            user: user.clone(),
            event: event.clone(),
            data: data.clone(),
        }
        .encode();
        self.node.notify(&[&message]).await
    }

    /// Leaves the cluster cleanly: this node's row goes and the others hear at once that
    /// its streams are gone (rather than after the crash bound).
    /// (Its tasks are stopped first, by [`super::Cluster::leave`].)
    pub(super) async fn leave(&self) {
        let node = &self.node;
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
}

/// The nodes' bearer token: `cluster.token`, or else one generated once into the database.
async fn cluster_token(pool: &sqlx::PgPool, settings: &ClusterSettings) -> anyhow::Result<String> {
    if let Some(t) = &settings.token {
        return Ok(t.expose().to_owned());
    }
    let candidate = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let stored = nodes::shared_secret(pool, "cluster_token", candidate.as_bytes())
        .await
        .context("reading the cluster token")?;
    String::from_utf8(stored).context("the stored cluster token is not text")
}

/// Links the hub to the bus and starts the node's tasks: the listener, presence out, the
/// tailer, membership and resync; then announces this node.
async fn start(
    node: &Arc<Node>,
    hub: &Hub,
    settings: &ClusterSettings,
    cursor: i64,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let listener = bus::open_listener(node)
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
        tokio::spawn(announce_settled_leaves(node.clone())),
    ];
    // Whoever is present elsewhere already; and the others learn of this node at once.
    node.request_resync();
    node.notify(&[&BusMessage::Joined { node: node.id }.encode()])
        .await
        .context("announcing this node to the cluster")?;
    Ok(tasks)
}

/// Announces the cluster-wide leaves the presence view held, as they fall due (see
/// [`super::presence`]).
async fn announce_settled_leaves(node: Arc<Node>) {
    loop {
        // Registered before the look, so a leave held meanwhile is not missed.
        let held = node.view.leave_held();
        let (due, next) = node.view.settled_leaves(tokio::time::Instant::now());
        for (room, user, action) in due {
            node.hub.announce_presence(&room, &user, action);
        }
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = held => {}
                }
            }
            None => held.await,
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
