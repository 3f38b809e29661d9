//! One room: its subscribers and who is present. A room exists exactly while it has a
//! subscriber (see [`Hub::leave_room`]).

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Hub, PresenceAction,
    fanout::Delivery,
    filter::{EventFilter, Kind},
    frame,
    queue::{self, Outbound},
};
use crate::domain::{ConnectionId, RoomName, UserRef};

pub(super) struct Subscriber {
    pub(super) tx: queue::Sender,
    pub(super) filter: Option<Arc<EventFilter>>,
}

#[derive(Default)]
pub(super) struct Room {
    pub(super) subscribers: HashMap<ConnectionId, Subscriber>,
    /// user → (the user as shown, connections of that user in this room)
    pub(super) presence: HashMap<Uuid, (UserRef, u32)>,
}

/// A room as listed by `GET /api/rooms`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RoomInfo {
    /// Room name.
    pub name: RoomName,
    /// Connections subscribed.
    pub subscribers: usize,
    /// Distinct users subscribed.
    pub users: usize,
}

/// Keeps the `limit` busiest of `rooms`, busiest first: most subscribers, then by name.
pub fn keep_busiest(rooms: &mut Vec<RoomInfo>, limit: usize) {
    rooms.sort_by(|a, b| {
        b.subscribers
            .cmp(&a.subscribers)
            .then_with(|| a.name.cmp(&b.name))
    });
    rooms.truncate(limit);
}

#[derive(Serialize)]
struct PresenceData<'a> {
    room: &'a RoomName,
    user: &'a UserRef,
    action: &'static str,
}

impl Room {
    /// Queues `frame` to every subscriber whose filter passes `kind`.
    pub(super) fn deliver(&self, kind: Kind<'_>, frame: &Bytes, out: &mut Delivery) {
        let shared = Arc::new(frame.clone());
        for (id, sub) in &self.subscribers {
            if sub.filter.as_ref().is_none_or(|f| f.accepts(kind)) {
                out.push(*id, &sub.tx, Outbound::Frame(shared.clone()));
            }
        }
    }

    /// Adds a subscriber; the user's first connection here announces a `join` (and the
    /// answer is true). On a node of a cluster, the `join` is announced only when it is
    /// the user's first connection here on any node ([`Hub::presence_changed`]).
    pub(super) fn join(
        &mut self,
        room: &RoomName,
        id: ConnectionId,
        user: &UserRef,
        sub: Subscriber,
        hub: &Hub,
        out: &mut Delivery,
    ) -> bool {
        self.subscribers.insert(id, sub);
        let count = &mut self
            .presence
            .entry(user.id)
            .or_insert_with(|| (user.clone(), 0))
            .1;
        *count += 1;
        let first = *count == 1;
        // A leave not announced yet and this join cancel out: neither is sent. Otherwise
        // sent under the room's lock, so a racing leave of the same user cannot overtake it.
        if first
            && !hub.cancel_leave(room, user.id)
            && hub.presence_changed(room, user, PresenceAction::Join)
        {
            self.deliver_presence(room, user, PresenceAction::Join, out);
        }
        first
    }

    /// Whether `user` has a connection here.
    pub(super) fn has_user(&self, user: Uuid) -> bool {
        self.presence.contains_key(&user)
    }

    pub(super) fn deliver_presence(
        &self,
        room: &RoomName,
        user: &UserRef,
        action: PresenceAction,
        out: &mut Delivery,
    ) {
        let action = action.as_str();
        let frame = frame::encode("presence", None, &PresenceData { room, user, action });
        self.deliver(Kind::Presence, &frame, out);
    }
}

impl Hub {
    /// Takes `id` out of `room`, sends `leave` when it was the user's last connection
    /// there, and drops the room when it empties — all under the room's lock.
    pub(super) fn leave_room(
        &self,
        room: &RoomName,
        id: ConnectionId,
        user: &UserRef,
        out: &mut Delivery,
    ) {
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
                if !self.defer_leave(room, user)
                    && self.presence_changed(room, user, PresenceAction::Leave)
                {
                    r.deliver_presence(room, user, PresenceAction::Leave, out);
                }
                super::connection::release(&self.rooms_per_user, user.id);
            }
        }
        if r.subscribers.is_empty() {
            e.remove();
        }
    }

    /// Takes every connection of `user` out of `room` at once (a member removed from a
    /// private room): others see `presence` `leave`, and each such connection gets one
    /// `removed` event whatever its filter. Returns how many connections left.
    pub fn remove_member(&self, room: &RoomName, user: Uuid, by: Option<&UserRef>) -> usize {
        // Collected first: cutting a connection takes its state lock, which comes before
        // the room's shard in the lock order.
        let ids: Vec<ConnectionId> = match self.rooms.get(room) {
            Some(r) if r.has_user(user) => r.subscribers.keys().copied().collect(),
            _ => return 0,
        };
        let frame = Arc::new(frame::removed(room, by));
        let mut out = Delivery::default();
        let mut left = 0;
        for id in ids {
            let Some((conn, tx)) = self
                .connections
                .get(&id)
                .filter(|e| e.conn.user.id == user)
                .map(|e| (e.conn.clone(), e.tx.clone()))
            else {
                continue;
            };
            let mut state = conn.state.lock();
            if state.removed || !state.rooms.remove(room) {
                continue;
            }
            self.leave_room(room, id, &conn.user, &mut out);
            drop(state);
            out.push(id, &tx, Outbound::Frame(frame.clone()));
            left += 1;
        }
        self.settle(out);
        left
    }

    /// The `limit` busiest rooms now that `keep` lets through: most subscribers first, then
    /// by name.
    pub fn busiest_rooms(&self, limit: usize, keep: impl Fn(&RoomName) -> bool) -> Vec<RoomInfo> {
        let mut all: Vec<RoomInfo> = self
            .rooms
            .iter()
            .filter(|r| keep(r.key()))
            .map(|r| RoomInfo {
                name: r.key().clone(),
                subscribers: r.subscribers.len(),
                users: r.presence.len(),
            })
            .collect();
        keep_busiest(&mut all, limit);
        all
    }

    /// Whether `room` has subscribers now.
    pub fn has_room(&self, room: &RoomName) -> bool {
        self.rooms.contains_key(room)
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
}

impl Hub {
    /// Sends a `presence` event to this node's subscribers of `room` (a cluster decided it).
    pub fn announce_presence(&self, room: &RoomName, user: &UserRef, action: PresenceAction) {
        let mut out = Delivery::default();
        if let Some(r) = self.rooms.get(room) {
            r.deliver_presence(room, user, action, &mut out);
        }
        self.settle(out);
    }

    /// Every (room, user) present on this node now, as the other nodes of a cluster know
    /// it: with the users whose leave is not announced yet.
    pub fn local_presence(&self) -> Vec<(RoomName, UserRef)> {
        let mut all: Vec<(RoomName, UserRef)> = self
            .rooms
            .iter()
            .flat_map(|r| {
                let room = r.key().clone();
                r.presence
                    .values()
                    .map(move |(u, _)| (room.clone(), u.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        all.extend(
            self.departing
                .lock()
                .iter()
                .map(|((room, _), d)| (room.clone(), d.user.clone())),
        );
        all
    }

    /// Whether `user` has a connection in `room` on this node now.
    pub fn is_present(&self, room: &RoomName, user: Uuid) -> bool {
        self.rooms.get(room).is_some_and(|r| r.has_user(user))
    }

    /// The users with an open stream on this node.
    pub fn users_online(&self) -> Vec<Uuid> {
        let users: std::collections::HashSet<Uuid> =
            self.connections.iter().map(|e| e.conn.user.id).collect();
        users.into_iter().collect()
    }
}
