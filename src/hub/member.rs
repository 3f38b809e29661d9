//! The ephemeral `member` event: a member of a created room was added, given another role,
//! or removed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{
    Hub,
    fanout::Delivery,
    filter::Kind,
    frame,
    queue::{self, Outbound},
};
use crate::domain::{ConnectionId, MemberRole, RoomName, UserRef};

/// What a `member` event says: `user` now has `role` in `room` (`None`: removed), by `by`
/// (`None`: the admin bearer token).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberChange {
    /// The room.
    pub room: RoomName,
    /// Whose membership changed.
    pub user: UserRef,
    /// The role now, or `None` when removed.
    pub role: Option<MemberRole>,
    /// Who changed it.
    pub by: Option<UserRef>,
}

impl Hub {
    /// Sends one `member` event for `change` to every connection holding its room whose
    /// filter passes `member`, and, when `to_user`, to every connection of the changed user
    /// whatever its filter (an add or a role change: its room list follows without a
    /// reload). When not `to_user`, the changed user's connections get nothing (a removal
    /// from a private room: they got `removed`). Returns how many connections it reached.
    pub fn announce_member(&self, change: &MemberChange, to_user: bool) -> usize {
        // Collected with one map's lock at a time, like `remove_member`.
        let holders: Vec<(ConnectionId, queue::Sender)> = match self.rooms.get(&change.room) {
            Some(r) => r
                .subscribers
                .iter()
                .filter(|(_, sub)| {
                    sub.filter
                        .as_ref()
                        .is_none_or(|f| f.accepts(Kind::Custom("member")))
                })
                .map(|(id, sub)| (*id, sub.tx.clone()))
                .collect(),
            None => Vec::new(),
        };
        let users: HashMap<ConnectionId, queue::Sender> = self
            .connections
            .iter()
            .filter(|e| e.conn.user.id == change.user.id)
            .map(|e| (*e.key(), e.tx.clone()))
            .collect();
        let frame = std::sync::Arc::new(frame::encode("member", None, change));
        let mut out = Delivery::default();
        let mut reached = 0;
        for (id, tx) in holders.iter().filter(|(id, _)| !users.contains_key(id)) {
            out.push(*id, tx, Outbound::Frame(frame.clone()));
            reached += 1;
        }
        if to_user {
            for (id, tx) in &users {
                out.push(*id, tx, Outbound::Frame(frame.clone()));
                reached += 1;
            }
        }
        self.settle(out);
        reached
    }
}
