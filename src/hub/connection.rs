//! Open streams: registering one, closing one (or every one of a session, a user, the
//! server), and checking that a connection belongs to the caller.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    task::Waker,
};

use dashmap::{DashMap, mapref::entry::Entry};
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use uuid::Uuid;

use super::{
    ConnectionStream, Hub, HubError, fanout::Delivery, filter::EventFilter, frame, queue,
    queue::Queue,
};
use crate::domain::{ConnectionId, RoomName, UserRef};

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
    /// The `retry:` (ms) the stream writes last, once closed; 0 for none. Set before
    /// `closed`, so a stream that sees it closed sees this too.
    come_back_after: AtomicU32,
    /// Wakes the stream when the connection is removed while it waits for a replay.
    pub(super) close_waker: AtomicWaker,
    pub(super) state: Mutex<ConnState>,
}

/// What a connection holds; guarded by [`Connection::state`] (first in the lock order).
#[derive(Debug, Default)]
pub(super) struct ConnState {
    /// `Last-Event-ID` the stream was opened with; the next subscribe resumes from it.
    pub(super) resume_from: Option<i64>,
    /// Whether a subscribe has succeeded (the first one releases the broadcasts the stream
    /// held until then, merged into its replay or as they are).
    pub(super) subscribed: bool,
    /// Every broadcast above this id has been sent to the connection (live, held, or in a
    /// replay), so replays leave those out. Starts at the watermark when it registered.
    pub(super) broadcasts_covered_from: i64,
    pub(super) rooms: BTreeSet<RoomName>,
    pub(super) filter: Option<Arc<EventFilter>>,
    /// Set under this lock when the connection is removed, so a racing subscribe cannot
    /// add rooms to a connection that is already gone.
    pub(super) removed: bool,
}

impl Connection {
    /// Whether the hub has closed this connection.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Once closed: the `retry:` frame the stream writes last, the first time it is asked.
    pub(super) fn take_last_frame(&self) -> Option<bytes::Bytes> {
        match self.come_back_after.swap(0, Ordering::Relaxed) {
            0 => None,
            ms => Some(frame::retry(u64::from(ms))),
        }
    }

    /// Wakes `waker` when the hub closes this connection. One waker at a time: that of the
    /// task writing the connection's stream.
    pub fn wake_on_close(&self, waker: &Waker) {
        self.close_waker.register(waker);
    }
}

pub(super) struct ConnEntry {
    pub(super) conn: Arc<Connection>,
    pub(super) tx: queue::Sender,
}

impl Hub {
    /// Registers a new connection and returns the stream that feeds its HTTP response.
    /// Dropping the stream (client gone) removes the connection everywhere.
    ///
    /// Live broadcasts wait in the stream until its first subscribe and are then merged by
    /// id into that subscribe's replay (see [`ConnectionStream`]).
    ///
    /// Refused when the server, the user or the session holds as many streams as it may.
    pub fn connect(
        self: &Arc<Self>,
        user: UserRef,
        session_id: Uuid,
        last_event_id: Option<i64>,
    ) -> Result<ConnectionStream, HubError> {
        // Racing connects may pass this check together; the per-user and per-session caps
        // below are exact and bound the overshoot.
        if self.connections.len() >= self.settings.max_streams {
            return Err(HubError::ServerFull);
        }
        let per_user = self.settings.streams_per_user;
        if !claim(&self.streams_per_user, user.id, per_user) {
            return Err(HubError::TooManyStreams {
                per: "user",
                limit: per_user,
            });
        }
        let per_session = self.settings.streams_per_session;
        if !claim(&self.streams_per_session, session_id, per_session) {
            release(&self.streams_per_user, user.id);
            return Err(HubError::TooManyStreams {
                per: "session",
                limit: per_session,
            });
        }
        let (tx, rx) = Queue::new(
            self.settings.queue_capacity,
            self.settings.replay_bytes.saturating_mul(2),
        );
        let id = self
            .link
            .get()
            .map_or_else(ConnectionId::new, |l| ConnectionId::tagged(l.tag));
        let conn = {
            // Under the gate: every broadcast above this id is sent to this connection live,
            // none at or below it is.
            let gate = self.publish_gate.lock();
            let conn = Arc::new(Connection {
                id,
                user,
                session_id,
                closed: AtomicBool::new(false),
                come_back_after: AtomicU32::new(0),
                close_waker: AtomicWaker::new(),
                state: Mutex::new(ConnState {
                    resume_from: last_event_id,
                    broadcasts_covered_from: *gate,
                    ..ConnState::default()
                }),
            });
            self.connections.insert(
                id,
                ConnEntry {
                    conn: conn.clone(),
                    tx,
                },
            );
            conn
        };
        // Checked after the insert so a stream opened while `close_all` runs is either
        // closed by it or sees the flag here.
        if self.closing.load(Ordering::Acquire) {
            self.remove(id);
        }
        Ok(ConnectionStream::new(
            self.clone(),
            conn,
            rx,
            &self.settings,
        ))
    }

    /// Closes a connection: it leaves every room and its stream ends. Idempotent.
    pub fn remove(&self, id: ConnectionId) {
        self.remove_with(id, 0);
    }

    /// [`Hub::remove`], with a last `retry:` of `retry_ms` (unless 0) written before the
    /// stream ends.
    fn remove_with(&self, id: ConnectionId, retry_ms: u32) {
        let Some((_, entry)) = self.connections.remove(&id) else {
            return;
        };
        let conn = entry.conn;
        release(&self.streams_per_user, conn.user.id);
        release(&self.streams_per_session, conn.session_id);
        conn.come_back_after.store(retry_ms, Ordering::Relaxed);
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
        // Ends the stream (it may be waiting for frames) and refuses the rooms' last pushes.
        entry.tx.close();
        self.settle(out);
    }

    /// Closes every stream of `session_id` (logout). Returns how many.
    pub fn close_session(&self, session_id: Uuid) -> usize {
        self.close_where(|c| c.session_id == session_id)
    }

    /// Closes every stream of a user (admin disconnect). Returns how many.
    pub fn close_user(&self, user_id: Uuid) -> usize {
        self.close_where(|c| c.user.id == user_id)
    }

    /// The rooms `user`'s streams hold now, each once.
    pub fn rooms_of_user(&self, user_id: Uuid) -> Vec<RoomName> {
        let conns: Vec<Arc<Connection>> = self
            .connections
            .iter()
            .filter(|e| e.conn.user.id == user_id)
            .map(|e| e.conn.clone())
            .collect();
        let mut rooms = BTreeSet::new();
        // Each state lock alone, no shard held (the lock order).
        for conn in conns {
            rooms.extend(conn.state.lock().rooms.iter().cloned());
        }
        rooms.into_iter().collect()
    }

    /// Closes every stream, now and from now on (shutdown), spread as
    /// [`Hub::close_streams`] says. Returns how many.
    pub fn close_all(&self) -> usize {
        self.closing.store(true, Ordering::Release);
        self.close_streams()
    }

    /// Closes every stream open now, but keeps taking new ones (a cluster node that was
    /// declared dead: its clients reconnect and resume). Returns how many.
    ///
    /// Every stream's last frame is a `retry:` that spreads the clients' return over
    /// `streams ÷ reconnect_rate` seconds after the usual delay (see [`reconnect_delays`]):
    /// without it they would all come back in the same instant, the storm that overflows
    /// the listen queue and piles up replays.
    pub fn close_streams(&self) -> usize {
        let ids: Vec<ConnectionId> = self.connections.iter().map(|e| *e.key()).collect();
        let delays = reconnect_delays(ids.len(), self.settings.reconnect_rate);
        for (i, id) in ids.iter().enumerate() {
            self.remove_with(*id, delays.as_ref().map_or(0, |d| d(i)));
        }
        ids.len()
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

    /// Whether stream `id` is open here and belongs to `owner`.
    pub fn is_owned_by(&self, id: ConnectionId, owner: Uuid) -> bool {
        self.owned(id, owner).is_ok()
    }

    /// The connection `id` with its queue, when it belongs to `owner`.
    pub(super) fn owned(
        &self,
        id: ConnectionId,
        owner: Uuid,
    ) -> Result<(Arc<Connection>, queue::Sender), HubError> {
        match self.connections.get(&id) {
            Some(e) if e.conn.user.id == owner => Ok((e.conn.clone(), e.tx.clone())),
            _ => Err(HubError::UnknownConnection),
        }
    }
}

/// The most a closed stream's return is put off beyond the usual delay, ms.
const MAX_RECONNECT_SPREAD_MS: u64 = 60_000;

/// The `retry:` of the `i`-th of `streams` closed at once: the usual delay plus an even
/// share of `streams ÷ rate` seconds (at most [`MAX_RECONNECT_SPREAD_MS`]), so they come
/// back at `rate` a second. `None` when nothing is to be spread.
fn reconnect_delays(streams: usize, rate: u32) -> Option<impl Fn(usize) -> u32> {
    if streams == 0 || rate == 0 {
        return None;
    }
    let n = streams as u64;
    let spread = (n * 1000 / u64::from(rate)).min(MAX_RECONNECT_SPREAD_MS);
    // At most 63,000 ms: fits.
    Some(move |i: usize| (frame::RETRY_MS + spread * i as u64 / n) as u32)
}

/// Counts one more for `key` unless it already has `cap`; false when refused.
pub(super) fn claim(counts: &DashMap<Uuid, usize>, key: Uuid, cap: usize) -> bool {
    let mut n = counts.entry(key).or_insert(0);
    if *n >= cap {
        // A refused first claim leaves no zero entry behind.
        let empty = *n == 0;
        drop(n);
        if empty {
            counts.remove_if(&key, |_, v| *v == 0);
        }
        return false;
    }
    *n += 1;
    true
}

/// Counts one less for `key`, forgetting it at zero.
pub(super) fn release(counts: &DashMap<Uuid, usize>, key: Uuid) {
    if let Entry::Occupied(mut e) = counts.entry(key) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_streams_come_back_evenly_at_the_configured_rate() {
        let delay = reconnect_delays(18_000, 5000).expect("spread");
        assert_eq!(delay(0), 3000, "the first comes back after the usual delay");
        assert_eq!(delay(9_000), 3000 + 1800, "halfway through 3.6 s of spread");
        assert_eq!(delay(17_999), 3000 + 3599, "the last just before 3.6 s");
        let per_second = (0..18_000).filter(|&i| delay(i) < 4000).count();
        assert_eq!(per_second, 5000, "5,000 in the first second of the spread");
    }

    #[test]
    fn the_spread_is_bounded_and_can_be_off() {
        let delay = reconnect_delays(1_000_000, 1).expect("spread");
        assert!(u64::from(delay(999_999)) <= 3000 + MAX_RECONNECT_SPREAD_MS);
        assert!(reconnect_delays(10, 0).is_none(), "rate 0: not spread");
        assert!(reconnect_delays(0, 5000).is_none(), "nothing closed");
    }
}
