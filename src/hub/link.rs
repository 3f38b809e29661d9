//! The hub's seam to other nodes, set only when several nodes share one database.
//!
//! Alone, a hub announces `presence` itself: a user's first connection in a room is a
//! `join`, its last a `leave`. In a cluster those are only this node's part of the answer:
//! the hub tells its [`PresenceSink`] of every change, under the room's lock (so in the
//! order they happened), and announces only what the sink says changed for everyone.

use super::Hub;
use crate::domain::{ConnectionId, NODE_TAG_BYTES, RoomName, UserRef};

/// Whether a user came into a room or left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceAction {
    /// The user's first connection entered the room.
    Join,
    /// The user's last connection left the room.
    Leave,
}

impl PresenceAction {
    /// The `action` of the `presence` event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Leave => "leave",
        }
    }
}

/// Where a clustered hub reports this node's presence changes.
pub trait PresenceSink: Send + Sync + 'static {
    /// This node's first connection of `user` entered `room` (`Join`) or its last left
    /// (`Leave`). Called under the room's lock, so it must not block or call back into the
    /// hub. Answers whether the change is one for everyone (the user's first or last
    /// connection in the room on any node): the hub then announces it to this node's
    /// subscribers at once.
    fn changed(&self, room: &RoomName, user: &UserRef, action: PresenceAction) -> bool;
}

/// What a clustered hub needs: its node's tag for connection ids, and where presence
/// changes go.
pub struct NodeLink {
    /// Leading bytes of every connection id this node hands out.
    pub tag: [u8; NODE_TAG_BYTES],
    /// Told of this node's presence changes.
    pub presence: Box<dyn PresenceSink>,
}

impl Hub {
    /// Makes this hub one node of a cluster. Called once, before any stream opens; a second
    /// call is refused.
    pub fn link(&self, link: NodeLink) -> anyhow::Result<()> {
        self.link
            .set(link)
            .map_err(|_| anyhow::anyhow!("the hub is linked to a cluster already"))
    }

    /// Whether stream `id` was opened on this node (always, when not clustered).
    pub fn holds(&self, id: ConnectionId) -> bool {
        self.link.get().is_none_or(|l| id.node_tag() == l.tag)
    }

    /// Whether a presence change on this node is one everybody sees.
    pub(super) fn presence_changed(
        &self,
        room: &RoomName,
        user: &UserRef,
        action: PresenceAction,
    ) -> bool {
        self.link
            .get()
            .is_none_or(|l| l.presence.changed(room, user, action))
    }
}
