//! The ephemeral `read` event: a user moved its read marker in a room, and every tab and
//! device of that user updates its badges.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Hub,
    fanout::Delivery,
    frame,
    queue::{self, Outbound},
};
use crate::domain::{ConnectionId, RoomName};

/// What a `read` event says: the marker of `room` is now at `last_read_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMarker {
    /// The room.
    pub room: RoomName,
    /// Messages up to this id are read.
    pub last_read_id: i64,
}

impl Hub {
    /// Sends one `read` event for `marker` to every connection of `user` on this node,
    /// whatever its filter and rooms (like `removed`). Returns how many it reached.
    pub fn announce_read(&self, user: Uuid, marker: &ReadMarker) -> usize {
        let users: Vec<(ConnectionId, queue::Sender)> = self
            .connections
            .iter()
            .filter(|e| e.conn.user.id == user)
            .map(|e| (*e.key(), e.tx.clone()))
            .collect();
        if users.is_empty() {
            return 0;
        }
        let frame = std::sync::Arc::new(frame::encode("read", None, marker));
        let mut out = Delivery::default();
        for (id, tx) in &users {
            out.push(*id, tx, Outbound::Frame(frame.clone()));
        }
        self.settle(out);
        users.len()
    }
}
