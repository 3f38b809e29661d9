//! Fan-out: one encoded frame, the same `Bytes` queued to every subscriber with `try_send`.
//! A full queue cuts that subscriber only, and only after every lock is released.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use super::{
    Hub,
    filter::Kind,
    frame,
    queue::{self, Outbound, PushError},
};
use crate::domain::{ConnectionId, EventName, RoomName, StoredMessage, UserRef};
use bytes::Bytes;
use serde::Serialize;

/// What one fan-out did: frames queued, and subscribers whose queue was full (cut once
/// every lock is released, by [`Hub::settle`]).
#[derive(Default)]
pub(super) struct Delivery {
    delivered: u64,
    slow: Vec<ConnectionId>,
}

impl Delivery {
    pub(super) fn push(&mut self, id: ConnectionId, tx: &queue::Sender, item: Outbound) {
        match tx.try_send(item) {
            Ok(()) => self.delivered += 1,
            Err(PushError::Full) => self.slow.push(id),
            // `NoRoom` is a replay's answer only.
            Err(PushError::Closed | PushError::NoRoom) => {}
        }
    }
}

/// Live counters (the rest of the stats are computed from the maps).
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Frames handed to subscriber queues.
    pub(super) events_delivered: AtomicU64,
    /// Connections cut because their queue was full.
    pub(super) slow_disconnects: AtomicU64,
}

#[derive(Serialize)]
struct CustomData<'a, T> {
    room: &'a RoomName,
    user: &'a UserRef,
    data: &'a T,
}

impl Hub {
    /// Fans out a committed event: a room message to the room's subscribers, a broadcast to
    /// every connection. Encoded once here; every subscriber gets the same bytes. Callers
    /// hand events over in id order.
    pub fn publish(&self, event: &StoredMessage) {
        let bytes = frame::stored(event);
        match &event.room {
            Some(room) => self.publish_message(event.id, room, &bytes),
            None => self.publish_broadcast(event.id, &bytes),
        }
    }

    /// Fans out a stored room message, already encoded with its id.
    pub(super) fn publish_message(&self, id: i64, room: &RoomName, frame: &Bytes) {
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
    pub(super) fn publish_broadcast(&self, id: i64, frame: &Bytes) {
        let mut out = Delivery::default();
        {
            let mut last = self.publish_gate.lock();
            let shared = Arc::new((id, frame.clone()));
            for e in self.connections.iter() {
                out.push(*e.key(), &e.tx, Outbound::Broadcast(shared.clone()));
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
    pub(super) fn settle(&self, out: Delivery) {
        self.counters
            .events_delivered
            .fetch_add(out.delivered, Ordering::Relaxed);
        for id in out.slow {
            self.disconnect_slow(id);
        }
    }

    pub(super) fn disconnect_slow(&self, id: ConnectionId) {
        if self.connections.contains_key(&id) {
            self.counters
                .slow_disconnects
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(connection = %id, "queue full: disconnecting a slow client");
            self.remove(id);
        }
    }
}
