//! Coalesced presence: a user's `leave` waits [`HubSettings::presence_coalesce`] before it
//! is announced, and a `join` of the same user in the same room within that time cancels
//! it: neither is sent. A reload, or a client that unsubscribes and subscribes again, is no
//! news to the room, and a join/leave flood sends nothing.
//!
//! The pending leaves live beside the rooms, not in them: a room leaves the map with its
//! last subscriber, and its last subscriber's leave may still be pending. Both the join
//! that cancels a leave and the flush that announces it run under the room's shard lock
//! (taken through the map's entry API even for a room that is gone), so exactly one of
//! them wins. The `departing` lock is a leaf, taken under a room shard or alone.
//!
//! [`HubSettings::presence_coalesce`]: super::HubSettings::presence_coalesce

use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Hub, PresenceAction, fanout::Delivery};
use crate::domain::{RoomName, UserRef};

/// A leave waiting to be announced.
pub(super) struct Departure {
    pub(super) user: UserRef,
    due: Instant,
}

impl Hub {
    /// Holds back the leave of `user`'s last connection in `room` (called under the room's
    /// lock); false when leaves are announced at once.
    pub(super) fn defer_leave(&self, room: &RoomName, user: &UserRef) -> bool {
        let window = self.settings.presence_coalesce;
        if window.is_zero() {
            return false;
        }
        let departure = Departure {
            user: user.clone(),
            due: Instant::now() + window,
        };
        self.departing
            .lock()
            .insert((room.clone(), user.id), departure);
        self.departures.notify_one();
        true
    }

    /// Drops a pending leave of `user` in `room` (called under the room's lock, by a join);
    /// true when there was one.
    pub(super) fn cancel_leave(&self, room: &RoomName, user: Uuid) -> bool {
        !self.settings.presence_coalesce.is_zero()
            && self
                .departing
                .lock()
                .remove(&(room.clone(), user))
                .is_some()
    }

    /// Announces the pending leaves that are due at `now`; when the next one is due.
    pub fn flush_departures(&self, now: Instant) -> Option<Instant> {
        let due: Vec<(RoomName, Uuid)> = self
            .departing
            .lock()
            .iter()
            .filter(|(_, d)| d.due <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for (room, user) in due {
            let mut out = Delivery::default();
            // The room's shard lock, whether or not the room still exists: a join racing
            // this flush either cancelled the leave before it or comes after the announce.
            let entry = self.rooms.entry(room.clone());
            let taken = {
                let mut departing = self.departing.lock();
                match departing.get(&(room.clone(), user)) {
                    Some(d) if d.due <= now => departing.remove(&(room.clone(), user)),
                    _ => None,
                }
            };
            if let Some(d) = taken
                && self.presence_changed(&room, &d.user, PresenceAction::Leave)
                && let Entry::Occupied(r) = &entry
            {
                r.get()
                    .deliver_presence(&room, &d.user, PresenceAction::Leave, &mut out);
            }
            drop(entry);
            self.settle(out);
        }
        self.departing.lock().values().map(|d| d.due).min()
    }

    /// Announces pending leaves as they fall due, for as long as the hub lives. Spawned
    /// once by the server when [`HubSettings::presence_coalesce`] is not zero.
    ///
    /// [`HubSettings::presence_coalesce`]: super::HubSettings::presence_coalesce
    pub async fn announce_departures(self: Arc<Self>) {
        loop {
            // Registered before the flush, so a leave deferred meanwhile is not missed.
            let deferred = self.departures.notified();
            match self.flush_departures(Instant::now()) {
                Some(next) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(next) => {}
                        () = deferred => {}
                    }
                }
                None => deferred.await,
            }
        }
    }
}
