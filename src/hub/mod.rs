//! The routing core: open connections, rooms and presence. No HTTP in here.
//!
//! * `connections`: connection id → owner, session, sender of its bounded queue.
//! * `rooms`: a `DashMap` of room → subscribers and per-user presence counts. A room exists
//!   exactly while it has a subscriber: joins create it through the map's entry API and the
//!   last leave removes it under the same shard lock, so a join can never land in a room that
//!   is being dropped.
//! * Fan-out: an event is encoded once ([`frame`]) and the same `Bytes` is pushed with
//!   `try_send` into each subscriber's queue. A full queue disconnects that subscriber only.
//! * Ordering: persisted events (ids) are fanned out under `publish_gate`, which also records
//!   the last id fanned out. Joins take the same gate, so a join knows exactly which ids it
//!   will get live (those above the watermark) and which its replay must read from the
//!   database (those at or below it): no gap, no duplicate. Broadcasts reaching a stream
//!   before its first subscribe wait in the stream and are merged by id into that
//!   subscribe's replay, so a resuming client sees one ascending id sequence.

pub mod frame;
mod stream;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use dashmap::{DashMap, mapref::entry::Entry};
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

pub use stream::ConnectionStream;

use crate::domain::{ConnectionId, EventName, RoomName, UserRef};

/// Most rooms one connection may hold.
pub const MAX_ROOMS_PER_CONNECTION: usize = 100;

/// What goes through a connection's queue.
pub(crate) enum Outbound {
    /// A ready-to-write frame (shared bytes).
    Frame(Bytes),
    /// A broadcast frame and its id (held and merged by id until the first replay).
    Broadcast(i64, Bytes),
    /// The first subscribe, with nothing to replay: write the held broadcasts now.
    Release,
    /// Marks where a subscribe's replay belongs in this connection's event order. The
    /// stream waits for the frames before writing anything queued after the marker.
    Replay(oneshot::Receiver<Vec<ReplayFrame>>),
}

/// One persisted event read back from the database for a replay.
#[derive(Debug)]
pub struct ReplayFrame {
    /// Its message id.
    pub id: i64,
    /// Broadcasts go to every connection, so a replayed one may already have been sent.
    pub is_broadcast: bool,
    /// The encoded SSE frame.
    pub bytes: Bytes,
}

/// Which named events a connection wants; `connected` and `broadcast` always pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    names: BTreeSet<EventName>,
    message: bool,
    presence: bool,
}

impl EventFilter {
    /// A filter that passes exactly these names.
    pub fn new(names: impl IntoIterator<Item = EventName>) -> Self {
        let names: BTreeSet<EventName> = names.into_iter().collect();
        let has = |n: &str| names.iter().any(|e| e.as_str() == n);
        Self {
            message: has("message"),
            presence: has("presence"),
            names,
        }
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &EventName> {
        self.names.iter()
    }

    /// Whether `message` events pass (replays consist of them, plus broadcasts).
    pub fn passes_messages(&self) -> bool {
        self.message
    }

    fn accepts(&self, kind: Kind<'_>) -> bool {
        match kind {
            Kind::Message => self.message,
            Kind::Presence => self.presence,
            Kind::Custom(name) => self.names.iter().any(|n| n.as_str() == name),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind<'a> {
    Message,
    Presence,
    Custom(&'a str),
}

/// One open event stream.
#[derive(Debug)]
pub struct Connection {
    /// Unguessable id, returned in the `connected` event.
    pub id: ConnectionId,
    /// The user whose session opened it.
    pub user: UserRef,
    /// The login session it belongs to (logout closes exactly these).
    pub session_id: Uuid,
    closed: AtomicBool,
    /// Wakes the stream when the connection is removed while it waits for a replay.
    close_waker: AtomicWaker,
    state: Mutex<ConnState>,
}

#[derive(Debug, Default)]
struct ConnState {
    /// `Last-Event-ID` the stream was opened with; the next subscribe resumes from it.
    resume_from: Option<i64>,
    /// Whether a subscribe has succeeded (the first one releases the broadcasts the stream
    /// held until then, merged into its replay or as they are).
    subscribed: bool,
    /// Every broadcast above this id has been sent to the connection (live, held, or in a
    /// replay), so replays leave those out. Starts at the watermark when it registered.
    broadcasts_covered_from: i64,
    rooms: BTreeSet<RoomName>,
    filter: Option<Arc<EventFilter>>,
    /// Set under this lock when the connection is removed, so a racing subscribe cannot
    /// add rooms to a connection that is already gone.
    removed: bool,
}

impl Connection {
    /// Whether the hub has closed this connection.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

struct ConnEntry {
    conn: Arc<Connection>,
    tx: mpsc::Sender<Outbound>,
}

struct Subscriber {
    tx: mpsc::Sender<Outbound>,
    filter: Option<Arc<EventFilter>>,
}

#[derive(Default)]
struct Room {
    subscribers: HashMap<ConnectionId, Subscriber>,
    /// user → (the user as shown, connections of that user in this room)
    presence: HashMap<Uuid, (UserRef, u32)>,
}

impl Room {
    /// Queues `frame` to every subscriber whose filter passes `kind`.
    fn deliver(&self, kind: Kind<'_>, frame: &Bytes, out: &mut Delivery) {
        for (id, sub) in &self.subscribers {
            if sub.filter.as_ref().is_none_or(|f| f.accepts(kind)) {
                out.push(*id, &sub.tx, Outbound::Frame(frame.clone()));
            }
        }
    }

    fn deliver_presence(
        &self,
        room: &RoomName,
        user: &UserRef,
        action: &'static str,
        out: &mut Delivery,
    ) {
        let frame = frame::encode("presence", None, &PresenceData { room, user, action });
        self.deliver(Kind::Presence, &frame, out);
    }
}

/// What one fan-out did: frames queued, and subscribers whose queue was full (cut once
/// every lock is released).
#[derive(Default)]
struct Delivery {
    delivered: u64,
    slow: Vec<ConnectionId>,
}

impl Delivery {
    fn push(&mut self, id: ConnectionId, tx: &mpsc::Sender<Outbound>, item: Outbound) {
        match tx.try_send(item) {
            Ok(()) => self.delivered += 1,
            Err(mpsc::error::TrySendError::Full(_)) => self.slow.push(id),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Live counters (the rest of the stats are computed from the maps).
#[derive(Debug, Default)]
struct Counters {
    /// Frames handed to subscriber queues.
    events_delivered: AtomicU64,
    /// Connections cut because their queue was full.
    slow_disconnects: AtomicU64,
}

/// A snapshot of the hub for `/api/admin/stats` and `/metrics`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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

/// A room as listed by `GET /api/rooms`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RoomInfo {
    /// Room name.
    pub name: RoomName,
    /// Connections subscribed.
    pub subscribers: usize,
    /// Distinct users subscribed.
    pub users: usize,
}

/// Why the hub refused a request.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// No such connection, or not the caller's.
    #[error("no such connection")]
    UnknownConnection,
    /// The connection would hold more than [`MAX_ROOMS_PER_CONNECTION`] rooms.
    #[error("a connection holds at most {MAX_ROOMS_PER_CONNECTION} rooms")]
    TooManyRooms,
}

/// What a subscribe did.
#[derive(Debug)]
pub struct Subscribed {
    /// Every room the connection holds now, sorted.
    pub rooms: Vec<RoomName>,
    /// Its event filter now (`None`: all events).
    pub filter: Option<Arc<EventFilter>>,
    /// Rooms this call joined (replay covers only these).
    pub joined: Vec<RoomName>,
    /// Ids at or below this were fanned out before the join; the replay reads them.
    pub watermark: i64,
    /// Where the replay frames go, when one was asked for (or the stream resumes) and
    /// rooms were joined. Always answer it: the stream waits for it, and ends if it is
    /// dropped.
    pub replay: Option<oneshot::Sender<Vec<ReplayFrame>>>,
    /// The `Last-Event-ID` the stream was opened with, when this is its first subscribe.
    pub stream_last_event_id: Option<i64>,
    /// Broadcast ids the connection has been (or is about to be) sent; a replay leaves
    /// them out.
    pub broadcasts_sent: std::ops::RangeInclusive<i64>,
}

/// What an unsubscribe left.
#[derive(Debug)]
pub struct Unsubscribed {
    /// Rooms still held, sorted.
    pub rooms: Vec<RoomName>,
    /// Event filter (`None`: all).
    pub filter: Option<Arc<EventFilter>>,
}

/// The routing core. Cheap to share (`Arc<Hub>`); every method is thread-safe.
pub struct Hub {
    connections: DashMap<ConnectionId, ConnEntry>,
    rooms: DashMap<RoomName, Room>,
    publish_gate: Mutex<i64>,
    queue_capacity: usize,
    heartbeat: std::time::Duration,
    counters: Counters,
    /// Set by [`Hub::close_all`]: the server is stopping, new streams end at once.
    closing: AtomicBool,
}

#[derive(Serialize)]
struct PresenceData<'a> {
    room: &'a RoomName,
    user: &'a UserRef,
    action: &'static str,
}

#[derive(Serialize)]
struct CustomData<'a, T> {
    room: &'a RoomName,
    user: &'a UserRef,
    data: &'a T,
}

impl Hub {
    /// A hub whose connections queue at most `queue_capacity` frames and ping after
    /// `heartbeat` of silence.
    pub fn new(queue_capacity: usize, heartbeat: std::time::Duration) -> Self {
        Self {
            connections: DashMap::new(),
            rooms: DashMap::new(),
            publish_gate: Mutex::new(0),
            queue_capacity,
            heartbeat,
            counters: Counters::default(),
            closing: AtomicBool::new(false),
        }
    }

    /// Registers a new connection and returns the stream that feeds its HTTP response.
    /// Dropping the stream (client gone) removes the connection everywhere.
    ///
    /// Live broadcasts wait in the stream until its first subscribe and are then merged by
    /// id into that subscribe's replay (see [`ConnectionStream`]).
    pub fn connect(
        self: &Arc<Self>,
        user: UserRef,
        session_id: Uuid,
        last_event_id: Option<i64>,
    ) -> ConnectionStream {
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let id = ConnectionId::new();
        let conn = {
            // Under the gate: every broadcast above this id is sent to this connection live,
            // none at or below it is.
            let gate = self.publish_gate.lock();
            let conn = Arc::new(Connection {
                id,
                user,
                session_id,
                closed: AtomicBool::new(false),
                close_waker: AtomicWaker::new(),
                state: Mutex::new(ConnState {
                    resume_from: last_event_id,
                    broadcasts_covered_from: *gate,
                    ..ConnState::default()
                }),
            });
            let tx_entry = ConnEntry {
                conn: conn.clone(),
                tx,
            };
            self.connections.insert(id, tx_entry);
            conn
        };
        // Checked after the insert so a stream opened while `close_all` runs is either
        // closed by it or sees the flag here.
        if self.closing.load(Ordering::Acquire) {
            self.remove(id);
        }
        ConnectionStream::new(self.clone(), conn, rx, self.heartbeat, self.queue_capacity)
    }

    /// Subscribes a connection of `owner` to `rooms` with `filter` (replacing the previous
    /// filter). With `want_replay`, or on the first subscribe of a stream opened with a
    /// `Last-Event-ID` ([`Subscribed::stream_last_event_id`]), the stream is told to wait
    /// for replay frames before any live event of the joined rooms; send them through
    /// [`Subscribed::replay`].
    pub fn subscribe(
        &self,
        id: ConnectionId,
        owner: Uuid,
        rooms: &[RoomName],
        filter: Option<EventFilter>,
        want_replay: bool,
    ) -> Result<Subscribed, HubError> {
        let (conn, tx) = self.owned(id, owner)?;
        let filter = filter.map(Arc::new);
        let mut out = Delivery::default();
        let mut state = conn.state.lock();
        if state.removed {
            return Err(HubError::UnknownConnection);
        }
        let stream_last_event_id = state.resume_from;
        let joined: Vec<RoomName> = rooms
            .iter()
            .filter(|r| !state.rooms.contains(*r))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if state.rooms.len() + joined.len() > MAX_ROOMS_PER_CONNECTION {
            return Err(HubError::TooManyRooms);
        }
        // Consumed only by a subscribe that succeeds.
        state.resume_from = None;
        let want_replay = want_replay || stream_last_event_id.is_some();
        let first = !std::mem::replace(&mut state.subscribed, true);
        if state.filter != filter {
            for room in &state.rooms {
                if let Some(mut r) = self.rooms.get_mut(room)
                    && let Some(sub) = r.subscribers.get_mut(&id)
                {
                    sub.filter = filter.clone();
                }
            }
            state.filter = filter.clone();
        }
        let mut replay = None;
        let watermark;
        {
            let gate = self.publish_gate.lock();
            let marker = if want_replay && !joined.is_empty() {
                let (rtx, rrx) = oneshot::channel();
                replay = Some(rtx);
                Some(Outbound::Replay(rrx))
            } else if first {
                Some(Outbound::Release)
            } else {
                None
            };
            if let Some(marker) = marker
                && let Err(e) = tx.try_send(marker)
            {
                drop(gate);
                drop(state);
                if matches!(e, mpsc::error::TrySendError::Full(_)) {
                    self.disconnect_slow(id);
                }
                return Err(HubError::UnknownConnection);
            }
            for room in &joined {
                let mut r = self.rooms.entry(room.clone()).or_default();
                r.subscribers.insert(
                    id,
                    Subscriber {
                        tx: tx.clone(),
                        filter: filter.clone(),
                    },
                );
                let count = &mut r
                    .presence
                    .entry(conn.user.id)
                    .or_insert_with(|| (conn.user.clone(), 0))
                    .1;
                *count += 1;
                if *count == 1 {
                    // Sent under the room's lock, so a racing leave of the same user cannot
                    // overtake it.
                    r.deliver_presence(room, &conn.user, "join", &mut out);
                }
                state.rooms.insert(room.clone());
            }
            watermark = *gate;
        }
        let sent = Subscribed {
            rooms: state.rooms.iter().cloned().collect(),
            filter,
            joined,
            watermark,
            replay,
            stream_last_event_id,
            broadcasts_sent: state.broadcasts_covered_from + 1..=watermark,
        };
        drop(state);
        self.settle(out);
        Ok(sent)
    }

    /// Removes a connection of `owner` from `rooms` (rooms it does not hold are ignored).
    pub fn unsubscribe(
        &self,
        id: ConnectionId,
        owner: Uuid,
        rooms: &[RoomName],
    ) -> Result<Unsubscribed, HubError> {
        let (conn, _) = self.owned(id, owner)?;
        let mut out = Delivery::default();
        let mut state = conn.state.lock();
        if state.removed {
            return Err(HubError::UnknownConnection);
        }
        for room in rooms {
            if state.rooms.remove(room) {
                self.leave_room(room, id, &conn.user, &mut out);
            }
        }
        let left = Unsubscribed {
            rooms: state.rooms.iter().cloned().collect(),
            filter: state.filter.clone(),
        };
        drop(state);
        self.settle(out);
        Ok(left)
    }

    /// Takes `id` out of `room`, sends `leave` when it was the user's last connection
    /// there, and drops the room when it empties — all under the room's lock.
    fn leave_room(&self, room: &RoomName, id: ConnectionId, user: &UserRef, out: &mut Delivery) {
        let Entry::Occupied(mut e) = self.rooms.entry(room.clone()) else {
            return;
        };
        let r = e.get_mut();
        if r.subscribers.remove(&id).is_none() {
            return;
        }
        if let Some((_, count)) = r.presence.get_mut(&user.id) {
            *count -= 1;
            if *count == 0 {
                r.presence.remove(&user.id);
                r.deliver_presence(room, user, "leave", out);
            }
        }
        if r.subscribers.is_empty() {
            e.remove();
        }
    }

    /// Closes a connection: it leaves every room and its stream ends. Idempotent.
    pub fn remove(&self, id: ConnectionId) {
        let Some((_, entry)) = self.connections.remove(&id) else {
            return;
        };
        let conn = entry.conn;
        conn.closed.store(true, Ordering::Release);
        conn.close_waker.wake();
        let rooms = {
            let mut state = conn.state.lock();
            state.removed = true;
            std::mem::take(&mut state.rooms)
        };
        let mut out = Delivery::default();
        for room in rooms {
            self.leave_room(&room, id, &conn.user, &mut out);
        }
        // `entry.tx` and every room's sender clone are gone now, which wakes the stream.
        drop(entry.tx);
        self.settle(out);
    }

    fn disconnect_slow(&self, id: ConnectionId) {
        if self.connections.contains_key(&id) {
            self.counters
                .slow_disconnects
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(connection = %id, "queue full: disconnecting a slow client");
            self.remove(id);
        }
    }

    /// Closes every stream of `session_id` (logout). Returns how many.
    pub fn close_session(&self, session_id: Uuid) -> usize {
        self.close_where(|c| c.session_id == session_id)
    }

    /// Closes every stream of a user (admin disconnect). Returns how many.
    pub fn close_user(&self, user_id: Uuid) -> usize {
        self.close_where(|c| c.user.id == user_id)
    }

    /// Closes every stream, now and from now on (shutdown). Returns how many.
    pub fn close_all(&self) -> usize {
        self.closing.store(true, Ordering::Release);
        self.close_where(|_| true)
    }

    fn close_where(&self, pred: impl Fn(&Connection) -> bool) -> usize {
        let ids: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|e| pred(&e.conn))
            .map(|e| *e.key())
            .collect();
        for id in &ids {
            self.remove(*id);
        }
        ids.len()
    }

    fn owned(
        &self,
        id: ConnectionId,
        owner: Uuid,
    ) -> Result<(Arc<Connection>, mpsc::Sender<Outbound>), HubError> {
        match self.connections.get(&id) {
            Some(e) if e.conn.user.id == owner => Ok((e.conn.clone(), e.tx.clone())),
            _ => Err(HubError::UnknownConnection),
        }
    }

    /// Fans out a stored room message, already encoded with its id.
    pub fn publish_message(&self, id: i64, room: &RoomName, frame: &Bytes) {
        let mut out = Delivery::default();
        {
            let mut last = self.publish_gate.lock();
            if let Some(r) = self.rooms.get(room) {
                r.deliver(Kind::Message, frame, &mut out);
            }
            *last = id;
        }
        // Outside the gate: disconnecting takes connection locks, which `subscribe` takes
        // before the gate.
        self.settle(out);
    }

    /// Sends a stored broadcast to every open connection.
    pub fn publish_broadcast(&self, id: i64, frame: &Bytes) {
        let mut out = Delivery::default();
        {
            let mut last = self.publish_gate.lock();
            for e in self.connections.iter() {
                out.push(*e.key(), &e.tx, Outbound::Broadcast(id, frame.clone()));
            }
            *last = id;
        }
        self.settle(out);
    }

    /// Sends an ephemeral custom event to the room's subscribers that asked for `name`.
    pub fn publish_custom(
        &self,
        room: &RoomName,
        user: &UserRef,
        name: &EventName,
        data: &impl Serialize,
    ) {
        let frame = frame::encode(name.as_str(), None, &CustomData { room, user, data });
        let mut out = Delivery::default();
        if let Some(r) = self.rooms.get(room) {
            r.deliver(Kind::Custom(name.as_str()), &frame, &mut out);
        }
        self.settle(out);
    }

    /// Counts what was delivered and cuts the subscribers whose queue was full. Called with
    /// no lock held.
    fn settle(&self, out: Delivery) {
        self.counters
            .events_delivered
            .fetch_add(out.delivered, Ordering::Relaxed);
        for id in out.slow {
            self.disconnect_slow(id);
        }
    }

    /// Records that a replay sent every broadcast above `from` (up to its watermark), so a
    /// later replay on the same connection leaves them out.
    pub fn broadcasts_replayed(&self, id: ConnectionId, from: i64) {
        let conn = self.connections.get(&id).map(|e| e.conn.clone());
        if let Some(conn) = conn {
            let mut state = conn.state.lock();
            state.broadcasts_covered_from = state.broadcasts_covered_from.min(from);
        }
    }

    /// Raises the watermark to the last id already stored, at start-up (nothing above it
    /// can be in flight yet).
    pub fn set_watermark(&self, id: i64) {
        let mut last = self.publish_gate.lock();
        *last = (*last).max(id);
    }

    /// Rooms that have subscribers now, sorted by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let mut out: Vec<RoomInfo> = self
            .rooms
            .iter()
            .map(|r| RoomInfo {
                name: r.key().clone(),
                subscribers: r.subscribers.len(),
                users: r.presence.len(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Users with a connection in `room` now, sorted by name.
    pub fn presence(&self, room: &RoomName) -> Vec<UserRef> {
        let mut users: Vec<UserRef> = self
            .rooms
            .get(room)
            .map(|r| r.presence.values().map(|(u, _)| u.clone()).collect())
            .unwrap_or_default();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        users
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

    /// Checks the invariants (tests): no empty room is mapped, presence counts equal the
    /// connections present, and rooms and connections agree.
    pub fn check_invariants(&self) -> Result<(), String> {
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
mod tests;
