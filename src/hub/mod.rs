//! The routing core: open connections, rooms and presence, fan-out and the resume protocol.
//! No HTTP and no SQL in here: events come in as [`StoredMessage`]s, replays are read
//! through the [`History`] trait, and what leaves is SSE bytes ([`frame`]) in each
//! connection's [`ConnectionStream`].
//!
//! * [`connection`]: connection id → owner, session, sender of its bounded queue.
//! * [`queue`]: a connection's bounded frame queue, emptied a whole batch per lock.
//! * [`room`]: a `DashMap` of room → subscribers and per-user presence counts. A room exists
//!   exactly while it has a subscriber: joins create it through the map's entry API and the
//!   last leave removes it under the same shard lock, so a join can never land in a room
//!   that is being dropped.
//! * [`filter`]: which named events a connection wants.
//! * [`fanout`]: an event is encoded once and the same `Bytes` is pushed with `try_send`
//!   into each subscriber's queue. A full queue disconnects that subscriber only.
//! * [`wake`]: a fan-out wakes each worker thread once; that thread wakes its streams.
//! * [`departing`]: a leave waits a moment; a join of the same user in the same room
//!   cancels it, and neither is sent.
//! * [`subscribe`]: the join, then the replay up to the join's watermark, then live.
//!   Persisted events are fanned out under `publish_gate`, which also records the last id
//!   fanned out. Joins take the same gate, so a join knows exactly which ids it will get
//!   live (above the watermark) and which its replay must read (at or below it): no gap,
//!   no duplicate. Broadcasts reaching a stream before its first subscribe wait in the
//!   stream and are merged by id into that subscribe's replay ([`stream`]).
//! * [`resume`]: resumes of the same rooms from the same id waiting at once share one read,
//!   each keeping what it alone would have read.
//!
//! **Lock order.** Three kinds of lock, always taken in this order and never the reverse:
//! a connection's state mutex (`Connection::state`), then the publish gate
//! (`Hub::publish_gate`), then a shard of the `rooms` or `connections` map. A subscribe
//! holds its connection's state, takes the gate for the join and a room shard per room; a
//! publish holds the gate and takes room (or connection) shards; a removal takes the state
//! briefly, then room shards without it. Cutting a slow subscriber takes its state, so it
//! never happens under the gate or a shard: fan-outs collect the cuts in a `Delivery` and
//! settle them once every lock is released.
//!
//! On a node of a cluster, a presence change also takes the cluster's presence view lock
//! ([`PresenceSink`]), under a room shard; whoever holds that lock takes no hub lock.
//!
//! The shared resume reads' map lock ([`resume`]) is taken under no hub lock, and takes only
//! the lock of one read being gathered, a leaf.
//!
//! A connection's queue lock is a leaf: taken under any of the locks above for a push, it
//! takes none and wakes nothing while held. The wake after it may park a stream's waker in
//! its thread's [`WakeGroup`], whose list lock is a leaf too.

mod connection;
mod departing;
mod fanout;
mod filter;
pub mod frame;
mod history;
mod link;
mod member;
mod queue;
mod read;
mod resume;
mod room;
mod stream;
mod subscribe;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use connection::Connection;
pub use filter::EventFilter;
pub use history::{History, ReplayBounds};
pub use link::{NodeLink, PresenceAction, PresenceSink};
pub use member::MemberChange;
pub use read::ReadMarker;
pub use room::{RoomInfo, keep_busiest};
pub use stream::ConnectionStream;
pub use subscribe::{
    ReplayFrom, ReplayOutcome, SubscribeRequest, Subscription, UnsubscribeRequest, Unsubscription,
    parse_rooms,
};

use crate::domain::{ConnectionId, MAX_ROOMS_PER_CONNECTION, RoomName};
use connection::ConnEntry;
use fanout::Counters;
use room::Room;

/// How the hub treats every connection.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Frames queued per connection before it is cut as too slow.
    pub queue_capacity: usize,
    /// Silence before a `: ping`.
    pub heartbeat: Duration,
    /// Most events one subscribe replays.
    pub replay_limit: u32,
    /// Most bytes of frames one subscribe replays; a connection's unwritten replays hold
    /// at most twice this.
    pub replay_bytes: usize,
    /// Open streams one user may hold.
    pub streams_per_user: usize,
    /// Open streams one login session may hold.
    pub streams_per_session: usize,
    /// Open streams the hub holds at most.
    pub max_streams: usize,
    /// Distinct rooms one user may be subscribed to, over all its streams.
    pub rooms_per_user: usize,
    /// How long a `leave` waits to be cancelled by a `join` of the same user in the same
    /// room (then neither is sent); zero announces leaves at once.
    pub presence_coalesce: Duration,
    /// Reconnects per second the streams closed all at once (a shutdown, a cluster node
    /// declared dead) are spread over; 0: not spread. See [`Hub::close_all`].
    pub reconnect_rate: u32,
    /// Replays read from the history at once; more subscribes wait their turn.
    pub replays_at_once: usize,
}

/// A snapshot of the hub for `/api/admin/stats` and `/metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HubStats {
    /// Open streams.
    pub connections: usize,
    /// Distinct users with at least one open stream.
    pub users_online: usize,
    /// Rooms with at least one subscriber.
    pub rooms: usize,
    /// (connection, room) pairs.
    pub subscriptions: usize,
    /// Frames handed to subscriber queues since start.
    pub events_delivered: u64,
    /// Connections cut for being too slow since start.
    pub slow_disconnects: u64,
}

/// Why the hub refused a request.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// No such connection, or not the caller's.
    #[error("no such connection")]
    UnknownConnection,
    /// The connection would hold more than [`MAX_ROOMS_PER_CONNECTION`] rooms.
    #[error("a connection holds at most {MAX_ROOMS_PER_CONNECTION} rooms")]
    TooManyRooms,
    /// The replay could not be read; the connection was closed.
    #[error("reading the replay failed")]
    History(#[source] anyhow::Error),
    /// The user (or its session) holds as many streams as it may.
    #[error("too many open streams: at most {limit} per {per}")]
    TooManyStreams {
        /// `user` or `session`.
        per: &'static str,
        /// The cap.
        limit: usize,
    },
    /// The server holds as many streams as it may.
    #[error("the server holds as many streams as it may; try again later")]
    ServerFull,
    /// The caller lost access to a room while subscribing; nothing of it was replayed.
    #[error("no such room")]
    Revoked,
    /// The user would be in more distinct rooms than it may.
    #[error("a user holds at most {0} rooms over all its streams")]
    TooManyRoomsForUser(usize),
    /// The replay does not fit in what is left of the connection's queue (an earlier
    /// replay is still unwritten); nothing was joined.
    #[error("this stream's earlier replay is not written yet; subscribe again in a moment")]
    ReplayBacklog,
}

/// The routing core. Cheap to share (`Arc<Hub>`); every method is thread-safe.
pub struct Hub {
    connections: DashMap<ConnectionId, ConnEntry>,
    rooms: DashMap<RoomName, Room>,
    /// Open streams per user and per session, for their caps.
    streams_per_user: DashMap<Uuid, usize>,
    streams_per_session: DashMap<Uuid, usize>,
    /// Distinct rooms each user is present in, for its cap.
    rooms_per_user: DashMap<Uuid, usize>,
    /// The last persisted id fanned out (the watermark); see the lock order above.
    publish_gate: Mutex<i64>,
    settings: HubSettings,
    counters: Counters,
    /// Set by [`Hub::close_all`]: the server is stopping, new streams end at once.
    closing: AtomicBool,
    /// Set when this node is one of several ([`Hub::link`]).
    link: OnceLock<NodeLink>,
    /// Leaves not announced yet, by (room, user) ([`departing`]); a leaf lock.
    departing: Mutex<HashMap<(RoomName, Uuid), departing::Departure>>,
    /// Wakes [`Hub::announce_departures`] when a leave is deferred.
    departures: tokio::sync::Notify,
    /// Turns to read a replay ([`HubSettings::replays_at_once`]). Why: a restart's
    /// reconnect storm would otherwise take every pooled database connection and leave
    /// posts and logins waiting behind thousands of replays; a subscribe waiting here waits,
    /// it does not time out as a wait for the pool would.
    replays: tokio::sync::Semaphore,
    /// Resumes of the same rooms from the same id share a read ([`resume`]).
    resume_reads: resume::ResumeReads,
}

impl Hub {
    /// An empty hub.
    pub fn new(settings: HubSettings) -> Self {
        let replays_at_once = settings.replays_at_once.max(1);
        Self {
            connections: DashMap::new(),
            rooms: DashMap::new(),
            streams_per_user: DashMap::new(),
            streams_per_session: DashMap::new(),
            rooms_per_user: DashMap::new(),
            publish_gate: Mutex::new(0),
            settings,
            counters: Counters::default(),
            closing: AtomicBool::new(false),
            link: OnceLock::new(),
            departing: Mutex::new(HashMap::new()),
            departures: tokio::sync::Notify::new(),
            replays: tokio::sync::Semaphore::new(replays_at_once),
            resume_reads: resume::ResumeReads::default(),
        }
    }

    /// Raises the watermark to the last id already stored, at start-up (nothing above it
    /// can be in flight yet).
    pub fn set_watermark(&self, id: i64) {
        let mut last = self.publish_gate.lock();
        *last = (*last).max(id);
    }

    /// The watermark: a replay starting now reads the log up to it.
    pub fn watermark(&self) -> i64 {
        *self.publish_gate.lock()
    }

    /// Live figures.
    pub fn stats(&self) -> HubStats {
        let users: HashSet<Uuid> = self.connections.iter().map(|e| e.conn.user.id).collect();
        HubStats {
            connections: self.connections.len(),
            users_online: users.len(),
            rooms: self.rooms.len(),
            subscriptions: self.rooms.iter().map(|r| r.subscribers.len()).sum(),
            events_delivered: self.counters.events_delivered.load(Ordering::Relaxed),
            slow_disconnects: self.counters.slow_disconnects.load(Ordering::Relaxed),
        }
    }

    /// Checks the invariants: no empty room is mapped, presence counts equal the
    /// connections present, rooms and connections agree, and the per-user and per-session
    /// counts match what is open.
    #[cfg(test)]
    fn check_invariants(&self) -> Result<(), String> {
        let mut users: HashMap<Uuid, usize> = HashMap::new();
        let mut sessions: HashMap<Uuid, usize> = HashMap::new();
        for e in self.connections.iter() {
            *users.entry(e.conn.user.id).or_default() += 1;
            *sessions.entry(e.conn.session_id).or_default() += 1;
        }
        let counted = |m: &DashMap<Uuid, usize>| -> HashMap<Uuid, usize> {
            m.iter().map(|e| (*e.key(), *e.value())).collect()
        };
        if counted(&self.streams_per_user) != users {
            return Err(format!(
                "streams per user {:?} != {users:?}",
                counted(&self.streams_per_user)
            ));
        }
        if counted(&self.streams_per_session) != sessions {
            return Err("streams per session disagree with the connections".into());
        }
        let mut present: HashMap<Uuid, usize> = HashMap::new();
        for r in self.rooms.iter() {
            for u in r.presence.keys() {
                *present.entry(*u).or_default() += 1;
            }
        }
        if counted(&self.rooms_per_user) != present {
            return Err(format!(
                "rooms per user {:?} != {present:?}",
                counted(&self.rooms_per_user)
            ));
        }
        for r in self.rooms.iter() {
            if r.subscribers.is_empty() {
                return Err(format!("room {} is empty but mapped", r.key()));
            }
            let mut per_user: HashMap<Uuid, u32> = HashMap::new();
            for id in r.subscribers.keys() {
                let Some(e) = self.connections.get(id) else {
                    return Err(format!("room {} holds closed connection {id}", r.key()));
                };
                *per_user.entry(e.conn.user.id).or_default() += 1;
            }
            let counted: HashMap<Uuid, u32> =
                r.presence.iter().map(|(u, (_, n))| (*u, *n)).collect();
            if per_user != counted {
                return Err(format!(
                    "room {}: presence {counted:?} != {per_user:?}",
                    r.key()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
