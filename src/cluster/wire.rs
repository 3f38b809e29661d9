//! What nodes say to each other: the calls one node makes to another
//! (`POST /internal/cluster`) and their answers, and the notifications on the bus.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    domain::{EventName, RoomName, SubscribeBody, UnsubscribeBody, User, UserRef},
    hub::{HubStats, MemberChange, PresenceAction, ReadMarker},
};

/// What one node asks of another (`POST /internal/cluster`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `POST /api/subscribe` for a stream the callee holds, on behalf of `user` (whose
    /// session the caller checked).
    Subscribe {
        /// The caller's user.
        user: User,
        /// The request as received.
        body: SubscribeBody,
    },
    /// `POST /api/unsubscribe` for a stream the callee holds.
    Unsubscribe {
        /// The caller's user.
        user: User,
        /// The request as received.
        body: UnsubscribeBody,
    },
    /// Close a user's streams → [`Closed`].
    CloseUser {
        /// Whose.
        user: Uuid,
    },
    /// Close a login session's streams → [`Closed`].
    CloseSession {
        /// Which.
        session: Uuid,
    },
    /// Take a user's streams out of a private room → [`Closed`].
    RemoveMember {
        /// The room.
        room: RoomName,
        /// Whom.
        user: Uuid,
        /// Who removed them.
        by: Option<UserRef>,
    },
    /// Send a `member` event to the callee's streams (`Hub::announce_member`) →
    /// [`Closed`], counting the streams it reached.
    Member {
        /// What changed.
        change: MemberChange,
        /// Whether every stream of the changed user gets it too.
        to_user: bool,
    },
    /// Send a `read` event to the callee's streams of `user` (`Hub::announce_read`) →
    /// [`Closed`], counting the streams it reached.
    Read {
        /// Whose marker moved.
        user: Uuid,
        /// Where it is now.
        marker: ReadMarker,
    },
    /// The callee's live figures → [`NodeStats`].
    Stats,
    /// The callee's rooms with subscribers → `[RoomInfo]`.
    Rooms,
    /// Who is where on the callee → `[[room, user]]`.
    Presence,
}

/// How many streams a node closed.
#[derive(Debug, Serialize, Deserialize)]
pub struct Closed {
    /// Streams closed.
    pub closed: usize,
}

/// One node's figures, and its users and rooms (one online on two nodes counts once).
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeStats {
    /// The hub's figures.
    pub stats: HubStats,
    /// Users with a stream open there.
    pub users: Vec<Uuid>,
    /// Rooms with a subscriber there.
    pub rooms: Vec<RoomName>,
}

/// What one notification carries (an empty payload is the writer's wake-up).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum BusMessage {
    /// A node's presence in a room changed.
    Presence {
        /// The node.
        node: Uuid,
        /// The room.
        room: RoomName,
        /// Who.
        user: UserRef,
        /// Came or went.
        action: PresenceAction,
    },
    /// A custom event for a room's subscribers on every node.
    Custom {
        /// The node it was posted to (which delivered it already).
        node: Uuid,
        /// The room.
        room: RoomName,
        /// The sender.
        user: UserRef,
        /// The event name.
        event: EventName,
        /// Its data.
        data: serde_json::Value,
    },
    /// A node joined: the others read the node list again (to relay and scatter to it).
    Joined {
        /// The node.
        node: Uuid,
    },
    /// A node lost some of its presence changes: the others read its presence again.
    Resync {
        /// The node.
        node: Uuid,
    },
    /// A node was declared dead: its streams are gone, and with them its presence.
    Gone {
        /// The node.
        node: Uuid,
    },
    /// An account was banned, unbanned or re-roled (by any node, or the command line, in
    /// the change's transaction: [`crate::db::ACCOUNTS_CHANGED`]); every node reads the
    /// account change log.
    Accounts,
}

impl BusMessage {
    /// The notification payload.
    pub fn encode(&self) -> String {
        // Every field serializes infallibly (strings, ids, a JSON value).
        serde_json::to_string(self).unwrap_or_default()
    }
}
