//! Subscribing, in the shape of Mercure's `AddSubscriber` → replay up to the snapshot →
//! ready: the locked join records the watermark, the replay reads stored events up to it,
//! and live events above it wait behind the replay in the connection's queue.
//!
//! Broadcasts go to every connection whether or not it has subscribed, so the hub also
//! tracks which broadcasts each connection already has ([`ConnState`]'s
//! `broadcasts_covered_from`): a replay leaves those out, and records the ones it sends.

use std::{collections::BTreeSet, ops::RangeInclusive, sync::Arc};

use serde::Serialize;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{
    Hub, HubError,
    connection::{ConnState, Connection},
    fanout::Delivery,
    filter::EventFilter,
    history::{History, ReplayBounds, merge_newest, read_newest},
    queue::{self, Outbound, PushError, ReplayBatch, ReplayFrame, ReplayRoom, Reserved},
    resume,
    room::Subscriber,
};
use crate::domain::{
    ConnectionId, EventName, MAX_HISTORY, MAX_ROOMS_PER_CONNECTION, ParseError, RoomName,
    SubscribeBody, UnsubscribeBody,
};

/// What a subscribe asks to have replayed before live events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// Nothing (unless the stream was opened with a `Last-Event-ID`).
    Nothing,
    /// The last N messages of each joined room.
    Recent(u32),
    /// Every event of the joined rooms, and every broadcast, after this id.
    After(i64),
}

/// A validated `POST /api/subscribe`.
#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    connection: ConnectionId,
    rooms: Vec<RoomName>,
    filter: Option<EventFilter>,
    replay: ReplayFrom,
}

impl SubscribeRequest {
    /// Joins `rooms` (1..=100) on `connection`, all events, nothing replayed.
    pub fn new(connection: ConnectionId, rooms: Vec<RoomName>) -> Result<Self, ParseError> {
        check_room_count(rooms.len())?;
        Ok(Self {
            connection,
            rooms,
            filter: None,
            replay: ReplayFrom::Nothing,
        })
    }

    /// Only these events (replacing the connection's filter); `None` means all.
    pub fn with_filter(mut self, filter: Option<EventFilter>) -> Self {
        self.filter = filter;
        self
    }

    /// What to replay before live events.
    pub fn with_replay(mut self, replay: ReplayFrom) -> Self {
        self.replay = replay;
        self
    }

    /// The connection it subscribes.
    pub fn connection(&self) -> ConnectionId {
        self.connection
    }

    /// The rooms it names.
    pub fn rooms(&self) -> &[RoomName] {
        &self.rooms
    }

    /// What this request asks to replay.
    pub fn replay(&self) -> ReplayFrom {
        self.replay
    }
}

/// Parses room names, 1..=100 of them.
pub fn parse_rooms(rooms: &[String]) -> Result<Vec<RoomName>, ParseError> {
    check_room_count(rooms.len())?;
    rooms.iter().map(|r| RoomName::parse(r)).collect()
}

/// A request names 1..=100 rooms.
fn check_room_count(n: usize) -> Result<(), ParseError> {
    match n {
        0 => Err(ParseError::NoRooms),
        n if n > MAX_ROOMS_PER_CONNECTION => Err(ParseError::TooManyRooms),
        _ => Ok(()),
    }
}

impl TryFrom<SubscribeBody> for SubscribeRequest {
    type Error = ParseError;

    fn try_from(body: SubscribeBody) -> Result<Self, ParseError> {
        let connection = ConnectionId::parse(&body.connection_id)?;
        let rooms = parse_rooms(&body.rooms)?;
        let filter = body
            .events
            .map(|names| {
                names
                    .iter()
                    .map(|n| EventName::parse(n))
                    .collect::<Result<Vec<_>, _>>()
                    .map(EventFilter::new)
            })
            .transpose()?;
        let history = body.history.unwrap_or(0);
        if history > MAX_HISTORY {
            return Err(ParseError::History);
        }
        let replay = match body.last_event_id {
            Some(id) if id < 0 => return Err(ParseError::LastEventId),
            Some(id) => ReplayFrom::After(id),
            None if history > 0 => ReplayFrom::Recent(history),
            None => ReplayFrom::Nothing,
        };
        Ok(Self {
            connection,
            rooms,
            filter,
            replay,
        })
    }
}

/// A validated `POST /api/unsubscribe`.
#[derive(Debug, Clone)]
pub struct UnsubscribeRequest {
    connection: ConnectionId,
    rooms: Vec<RoomName>,
}

impl UnsubscribeRequest {
    /// Leaves `rooms` (1..=100) on `connection`.
    pub fn new(connection: ConnectionId, rooms: Vec<RoomName>) -> Self {
        Self { connection, rooms }
    }

    /// The stream.
    pub fn connection(&self) -> ConnectionId {
        self.connection
    }
}

impl TryFrom<UnsubscribeBody> for UnsubscribeRequest {
    type Error = ParseError;

    fn try_from(body: UnsubscribeBody) -> Result<Self, ParseError> {
        Ok(Self {
            connection: ConnectionId::parse(&body.connection_id)?,
            rooms: parse_rooms(&body.rooms)?,
        })
    }
}

/// What a subscribe replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplayOutcome {
    /// Events replayed.
    pub count: usize,
    /// False only when the replay's bounds (events or bytes) left older events out.
    pub complete: bool,
}

/// The answer to a subscribe (the contract's JSON shape).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Subscription {
    /// The connection.
    pub connection_id: ConnectionId,
    /// Every room it holds now, sorted.
    pub rooms: Vec<RoomName>,
    /// Its event filter now (`None`: all events).
    pub events: Option<Vec<EventName>>,
    /// What this subscribe replayed.
    pub replay: ReplayOutcome,
}

/// The answer to an unsubscribe (the contract's JSON shape).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Unsubscription {
    /// The connection.
    pub connection_id: ConnectionId,
    /// Rooms still held, sorted.
    pub rooms: Vec<RoomName>,
    /// Its event filter (`None`: all events).
    pub events: Option<Vec<EventName>>,
}

fn filter_names(filter: Option<&Arc<EventFilter>>) -> Option<Vec<EventName>> {
    filter.map(|f| f.names().cloned().collect())
}

/// A replay the join promised the stream: where to read from, up to where, the channel
/// the stream waits on, and the room it holds in the connection's queue.
pub(super) struct PendingReplay {
    pub(super) tx: oneshot::Sender<ReplayBatch>,
    from: ReplayFrom,
    watermark: i64,
    /// Broadcasts the connection has (or is about to get live); the replay skips them.
    broadcasts_sent: RangeInclusive<i64>,
    pub(super) room: ReplayRoom,
}

impl PendingReplay {
    /// Hands the frames to the stream, holding only the room they take.
    pub(super) fn send(self, frames: Vec<ReplayFrame>) {
        let mut room = self.room;
        room.shrink_to(Reserved {
            frames: frames.len(),
            bytes: frames.iter().map(|f| f.bytes.len()).sum(),
        });
        // The stream may have closed meanwhile; then there is nobody to replay to.
        let _ = self.tx.send(ReplayBatch { frames, room });
    }
}

/// What the locked part of a subscribe did.
pub(super) struct Joined {
    conn: Arc<Connection>,
    /// Rooms this call joined (not those the connection held already).
    joined: Vec<RoomName>,
    /// Rooms whose messages the replay reads: those this call joined, or none when the
    /// filter leaves `message` out (broadcasts are replayed either way).
    replay_rooms: Vec<RoomName>,
    pub(super) answer: Subscription,
    pub(super) replay: Option<PendingReplay>,
}

impl Hub {
    /// Subscribes a connection of `owner`: joins the rooms, sets the filter, replays from
    /// `history` up to the join's watermark, then lets live events through. When the
    /// replay cannot be read the connection is closed (its client reconnects and resumes
    /// from its last id rather than carry on with a gap) and the error returned.
    pub async fn subscribe(
        &self,
        owner: Uuid,
        request: SubscribeRequest,
        history: &impl History,
    ) -> Result<Subscription, HubError> {
        self.subscribe_checked(owner, request, history, async { Ok(Vec::new()) })
            .await
    }

    /// [`Hub::subscribe`], with `revoked` run between the join and the replay: when it names
    /// any room (access lost while the join ran), every room this call joined is left again
    /// before anything is replayed, and the subscribe fails with [`HubError::Revoked`].
    pub async fn subscribe_checked(
        &self,
        owner: Uuid,
        request: SubscribeRequest,
        history: &impl History,
        revoked: impl Future<Output = anyhow::Result<Vec<RoomName>>>,
    ) -> Result<Subscription, HubError> {
        let Joined {
            conn,
            joined,
            replay_rooms,
            mut answer,
            replay,
        } = self.join(owner, request)?;
        let revoked = match revoked.await {
            Ok(rooms) => rooms,
            Err(e) => {
                self.remove(conn.id);
                return Err(HubError::History(e));
            }
        };
        if !revoked.is_empty() {
            // Nothing of this subscribe stays: an empty replay, then every room it joined
            // is left.
            if let Some(pending) = replay {
                pending.send(Vec::new());
            }
            self.unsubscribe(owner, UnsubscribeRequest::new(conn.id, joined))?;
            return Err(HubError::Revoked);
        }
        let Some(pending) = replay else {
            return Ok(answer);
        };
        match self.read_replay(&replay_rooms, &pending, history).await {
            Ok((frames, complete)) => {
                answer.replay = ReplayOutcome {
                    count: frames.len(),
                    complete,
                };
                pending.send(frames);
                Ok(answer)
            }
            Err(e) => {
                self.remove(conn.id);
                Err(HubError::History(e))
            }
        }
    }

    /// The bounds of one subscribe's replay: the configured ones, and never more frames
    /// than the connection's queue holds besides the replay's marker.
    fn replay_bounds(&self) -> ReplayBounds {
        ReplayBounds {
            events: (self.settings.replay_limit as usize)
                .min(self.settings.queue_capacity.saturating_sub(1)),
            bytes: self.settings.replay_bytes,
        }
    }

    /// Reads the replay, up to the join's watermark, within [`Hub::replay_bounds`]:
    /// ascending frames, and whether that was all.
    async fn read_replay(
        &self,
        rooms: &[RoomName],
        pending: &PendingReplay,
        history: &impl History,
    ) -> anyhow::Result<(Vec<ReplayFrame>, bool)> {
        let bounds = self.replay_bounds();
        let (mut frames, complete) = match pending.from {
            ReplayFrom::After(after) => self.read_after(rooms, after, pending, history).await?,
            ReplayFrom::Recent(n) => {
                // Held while reading; the semaphore is never closed, so an error cannot
                // happen (and would only mean reading without a turn).
                let _turn = self.replays.acquire().await;
                // Each room's last `n`, then the newest of them all within the bounds. Once
                // those are full, a room is read only down to the oldest they hold.
                let mut kept: Vec<ReplayFrame> = Vec::new();
                let mut cut = false;
                for room in rooms {
                    let floor = if cut {
                        kept.last().map_or(0, |f| f.id)
                    } else {
                        0
                    };
                    let cap = Some(n as usize);
                    let read =
                        read_newest(pending.watermark, floor, cap, bounds, |up_to, limit| {
                            history.recent(room, up_to, limit)
                        })
                        .await?;
                    cut |= read.cut;
                    cut |= merge_newest(&mut kept, read.frames, bounds);
                }
                (kept, !cut)
            }
            ReplayFrom::Nothing => (Vec::new(), true),
        };
        frames.reverse();
        Ok((frames, complete))
    }

    /// A resume's replay, newest first, and whether it is complete: through a read shared
    /// with the resumes of the same rooms from the same id waiting at the same time
    /// ([`resume`]), or alone when that read was cut or its leader went away.
    async fn read_after(
        &self,
        rooms: &[RoomName],
        after: i64,
        pending: &PendingReplay,
        history: &impl History,
    ) -> anyhow::Result<(Vec<ReplayFrame>, bool)> {
        let shared = match self.resume_reads.join(rooms, after, pending.watermark) {
            resume::Part::Leader(leader) => {
                let _turn = self.replays.acquire().await;
                let Some(up_to) = leader.start() else {
                    return self.read_alone(rooms, after, pending, history).await;
                };
                let read = self.read_shared(rooms, after, up_to, history).await;
                let outcome = read.map(Arc::new).map_err(|e| format!("{e:#}"));
                leader.finish(outcome.clone());
                Some(outcome)
            }
            resume::Part::Member(rx) => resume::outcome(rx).await,
        };
        match shared {
            Some(Ok(read)) if !read.cut => Ok((
                read.for_member(pending.watermark, &pending.broadcasts_sent),
                !read.swept,
            )),
            Some(Err(e)) => Err(anyhow::anyhow!(e)),
            // Cut by the bounds (a member may need older events than it kept), or its
            // leader gone: alone.
            _ => {
                let _turn = self.replays.acquire().await;
                self.read_alone(rooms, after, pending, history).await
            }
        }
    }

    /// A resume's replay read for it alone (its turn taken), newest first, and whether it is
    /// complete.
    async fn read_alone(
        &self,
        rooms: &[RoomName],
        after: i64,
        pending: &PendingReplay,
        history: &impl History,
    ) -> anyhow::Result<(Vec<ReplayFrame>, bool)> {
        let skip = &pending.broadcasts_sent;
        let read = read_newest(
            pending.watermark,
            0,
            None,
            self.replay_bounds(),
            |up_to, limit| history.since(rooms, after, up_to, skip.clone(), limit),
        )
        .await?;
        let swept = history.swept_after(rooms, after).await?;
        Ok((read.frames, !read.cut && !swept))
    }

    /// The read a leader makes for its members: every event of `rooms` and every broadcast
    /// in `(after, up_to]`, within the bounds, noting which are broadcasts.
    async fn read_shared(
        &self,
        rooms: &[RoomName],
        after: i64,
        up_to: i64,
        history: &impl History,
    ) -> anyhow::Result<resume::SharedRead> {
        // Leaves out no broadcast: each member drops those it has.
        let no_skip = RangeInclusive::new(1, 0);
        let broadcasts = parking_lot::Mutex::new(Vec::new());
        let read = read_newest(up_to, 0, None, self.replay_bounds(), |up_to, limit| {
            let (broadcasts, skip) = (&broadcasts, no_skip.clone());
            async move {
                let page = history.since(rooms, after, up_to, skip, limit).await?;
                let ids = page.iter().filter(|e| e.room.is_none()).map(|e| e.id);
                broadcasts.lock().extend(ids);
                Ok(page)
            }
        })
        .await?;
        let swept = history.swept_after(rooms, after).await?;
        let mut broadcasts = broadcasts.into_inner();
        broadcasts.sort_unstable();
        Ok(resume::SharedRead {
            frames: read.frames,
            broadcasts,
            cut: read.cut,
            swept,
        })
    }

    /// The room a replay from `from` to `watermark` may need in the queue: at most its
    /// bounds, and no more events than the ids it may read (or `n` per room).
    fn replay_room(&self, from: ReplayFrom, rooms: usize, watermark: i64) -> Reserved {
        let bounds = self.replay_bounds();
        let ids = |after: i64| usize::try_from(watermark.saturating_sub(after)).unwrap_or(0);
        let frames = match from {
            ReplayFrom::After(after) => ids(after),
            ReplayFrom::Recent(n) => (n as usize).saturating_mul(rooms).min(ids(0)),
            ReplayFrom::Nothing => 0,
        };
        let frames = frames.min(bounds.events);
        Reserved {
            frames,
            bytes: if frames == 0 { 0 } else { bounds.bytes },
        }
    }

    /// The locked part: joins the rooms under the publish gate and, when a replay is due,
    /// queues its marker at exactly that point of the connection's event order.
    pub(super) fn join(&self, owner: Uuid, request: SubscribeRequest) -> Result<Joined, HubError> {
        let id = request.connection;
        let (conn, tx) = self.owned(id, owner)?;
        let filter = request.filter.map(Arc::new);
        let mut out = Delivery::default();
        let mut state = conn.state.lock();
        if state.removed {
            return Err(HubError::UnknownConnection);
        }
        let joined = self.rooms_to_join(owner, &state, &request.rooms)?;
        // The stream's Last-Event-ID is consumed only by a subscribe that succeeds.
        let from = match (request.replay, state.resume_from) {
            (ReplayFrom::After(id), _) => ReplayFrom::After(id),
            (_, Some(stream_id)) => ReplayFrom::After(stream_id),
            (asked, None) => asked,
        };
        let pending = {
            let gate = self.publish_gate.lock();
            let watermark = *gate;
            let pending = match self.queue_replay_marker(&tx, &state, from, joined.len(), watermark)
            {
                Ok(pending) => pending,
                Err(e) => {
                    // Cutting a slow reader takes the locks held here: let them go first.
                    drop(gate);
                    drop(state);
                    return Err(self.refused_push(id, e));
                }
            };
            // Nothing was refused: from here on the subscribe takes effect.
            self.take_effect(&mut state, from, pending.as_ref());
            // Under the gate, which comes before the room shards the filter is set in.
            self.set_filter(id, &mut state, filter.clone());
            self.enter_rooms(&conn, &mut state, &joined, (&tx, &filter), &mut out);
            pending
        };
        let answer = Subscription {
            connection_id: id,
            rooms: state.rooms.iter().cloned().collect(),
            events: filter_names(filter.as_ref()),
            replay: ReplayOutcome {
                count: 0,
                complete: true,
            },
        };
        let passes_messages = filter.as_ref().is_none_or(|f| f.passes_messages());
        drop(state);
        self.settle(out);
        Ok(Joined {
            conn,
            replay_rooms: if passes_messages {
                joined.clone()
            } else {
                Vec::new()
            },
            joined,
            answer,
            replay: pending,
        })
    }

    /// The rooms of `asked` the connection does not hold yet, sorted and once each, within
    /// the connection's and the user's room caps.
    fn rooms_to_join(
        &self,
        owner: Uuid,
        state: &ConnState,
        asked: &[RoomName],
    ) -> Result<Vec<RoomName>, HubError> {
        let joined: Vec<RoomName> = asked
            .iter()
            .filter(|r| !state.rooms.contains(*r))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if state.rooms.len() + joined.len() > MAX_ROOMS_PER_CONNECTION {
            return Err(HubError::TooManyRooms);
        }
        // Rooms new to the user (not just to this connection) count against its cap. Checked
        // under this connection's lock only: the user's other connections racing it may
        // overshoot by what they join at the same moment (bounded by the stream cap).
        let new_to_user = joined
            .iter()
            .filter(|r| !self.rooms.get(*r).is_some_and(|room| room.has_user(owner)))
            .count();
        let held = self.rooms_per_user.get(&owner).map_or(0, |n| *n);
        let cap = self.settings.rooms_per_user;
        if new_to_user > 0 && held + new_to_user > cap {
            return Err(HubError::TooManyRoomsForUser(cap));
        }
        Ok(joined)
    }

    /// Under the publish gate: queues the replay's marker (taking its room in the queue)
    /// when one is due, or the release of held broadcasts on a first subscribe. Nothing is
    /// changed when the queue refuses.
    fn queue_replay_marker(
        &self,
        tx: &queue::Sender,
        state: &ConnState,
        from: ReplayFrom,
        joining: usize,
        watermark: i64,
    ) -> Result<Option<PendingReplay>, PushError> {
        if from == ReplayFrom::Nothing || joining == 0 {
            if !state.subscribed {
                tx.try_send(Outbound::Release)?;
            }
            return Ok(None);
        }
        let (rtx, rrx) = oneshot::channel();
        let room = self.replay_room(from, joining, watermark);
        let room = tx.try_send_replay(Outbound::Replay(rrx), room)?;
        Ok(Some(PendingReplay {
            tx: rtx,
            from,
            watermark,
            broadcasts_sent: state.broadcasts_covered_from + 1..=watermark,
            room,
        }))
    }

    /// Records in the connection's state that a subscribe succeeded.
    fn take_effect(
        &self,
        state: &mut ConnState,
        from: ReplayFrom,
        pending: Option<&PendingReplay>,
    ) {
        state.resume_from = None;
        state.subscribed = true;
        // A replay carries every broadcast after `from`: record it now, under the lock, so a
        // subscribe racing this one does not replay them again. (A replay cut by its bounds
        // says `complete: false`; the broadcasts it skipped are not offered again.)
        if pending.is_some()
            && let ReplayFrom::After(after) = from
        {
            state.broadcasts_covered_from = state.broadcasts_covered_from.min(after);
        }
    }

    /// Adds the connection to each room of `joined` (under the publish gate), counting the
    /// rooms new to its user.
    fn enter_rooms(
        &self,
        conn: &Connection,
        state: &mut ConnState,
        joined: &[RoomName],
        (tx, filter): (&queue::Sender, &Option<Arc<EventFilter>>),
        out: &mut Delivery,
    ) {
        for room in joined {
            let sub = Subscriber {
                tx: tx.clone(),
                filter: filter.clone(),
            };
            let first_here = self
                .rooms
                .entry(room.clone())
                .or_default()
                .join(room, conn.id, &conn.user, sub, self, out);
            if first_here {
                *self.rooms_per_user.entry(conn.user.id).or_insert(0) += 1;
            }
            state.rooms.insert(room.clone());
        }
    }

    /// The answer to a marker the queue refused: a full queue cuts the reader as too slow
    /// (its id is then unknown); a replay that does not fit is refused on its own.
    fn refused_push(&self, id: ConnectionId, e: PushError) -> HubError {
        match e {
            PushError::NoRoom => HubError::ReplayBacklog,
            PushError::Full => {
                self.disconnect_slow(id);
                HubError::UnknownConnection
            }
            PushError::Closed => HubError::UnknownConnection,
        }
    }

    /// Replaces the connection's filter in its state and in every room it holds.
    fn set_filter(
        &self,
        id: ConnectionId,
        state: &mut ConnState,
        filter: Option<Arc<EventFilter>>,
    ) {
        if state.filter == filter {
            return;
        }
        for room in &state.rooms {
            if let Some(mut r) = self.rooms.get_mut(room)
                && let Some(sub) = r.subscribers.get_mut(&id)
            {
                sub.filter = filter.clone();
            }
        }
        state.filter = filter;
    }

    /// Removes a connection of `owner` from rooms (rooms it does not hold are ignored).
    pub fn unsubscribe(
        &self,
        owner: Uuid,
        request: UnsubscribeRequest,
    ) -> Result<Unsubscription, HubError> {
        let id = request.connection;
        let (conn, _) = self.owned(id, owner)?;
        let mut out = Delivery::default();
        let mut state = conn.state.lock();
        if state.removed {
            return Err(HubError::UnknownConnection);
        }
        for room in &request.rooms {
            if state.rooms.remove(room) {
                self.leave_room(room, id, &conn.user, &mut out);
            }
        }
        let left = Unsubscription {
            connection_id: id,
            rooms: state.rooms.iter().cloned().collect(),
            events: filter_names(state.filter.as_ref()),
        };
        drop(state);
        self.settle(out);
        Ok(left)
    }
}
