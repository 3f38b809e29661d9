//! Stored events (room messages and broadcasts share one id sequence) and the contract's
//! JSON shapes of them.

use std::sync::LazyLock;

use serde::Serialize;
use uuid::Uuid;

use super::{RoomName, UserRef};

/// A stored event: a room message (`room` set), a broadcast (`room` empty), or the deletion
/// of a room message (`deletes` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Position in the one id sequence.
    pub id: i64,
    /// The room, or `None` for a broadcast.
    pub room: Option<RoomName>,
    /// Author (who deleted, for a deletion); `None` when the API token did it.
    pub user: Option<UserRef>,
    /// Trimmed text (empty for a deletion).
    pub body: String,
    /// RFC 3339 UTC.
    pub sent_at: String,
    /// For a `message_deleted` event: the id of the message it removed.
    pub deletes: Option<i64>,
}

/// The contract's `Message` object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageJson<'a> {
    id: i64,
    room: &'a RoomName,
    user: &'a UserRef,
    body: &'a str,
    sent_at: &'a str,
}

/// The contract's `message_deleted` data.
#[derive(Debug, Serialize)]
pub struct DeletedJson<'a> {
    id: i64,
    room: &'a RoomName,
    message_id: i64,
    by: Option<&'a UserRef>,
}

/// The contract's broadcast object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BroadcastJson<'a> {
    id: i64,
    body: &'a str,
    sent_at: &'a str,
}

/// A deleted or token-sent author still needs a shape in `Message.user`.
static NOBODY: LazyLock<UserRef> = LazyLock::new(|| UserRef {
    id: Uuid::nil(),
    username: "".into(),
});

impl StoredMessage {
    /// Whether this is a broadcast (sent to every connection) rather than a room message.
    pub fn is_broadcast(&self) -> bool {
        self.room.is_none()
    }

    /// As the contract's `message_deleted` data; `None` unless this is a deletion.
    pub fn deleted_json(&self) -> Option<DeletedJson<'_>> {
        Some(DeletedJson {
            id: self.id,
            room: self.room.as_ref()?,
            message_id: self.deletes?,
            by: self.user.as_ref(),
        })
    }

    /// As the contract's `Message`; `None` for a broadcast or a deletion.
    pub fn message_json(&self) -> Option<MessageJson<'_>> {
        if self.deletes.is_some() {
            return None;
        }
        Some(MessageJson {
            id: self.id,
            room: self.room.as_ref()?,
            user: self.user.as_ref().unwrap_or(&NOBODY),
            body: &self.body,
            sent_at: &self.sent_at,
        })
    }

    /// As the contract's broadcast object.
    pub fn broadcast_json(&self) -> BroadcastJson<'_> {
        BroadcastJson {
            id: self.id,
            body: &self.body,
            sent_at: &self.sent_at,
        }
    }
}
