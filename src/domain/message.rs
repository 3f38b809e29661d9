//! Stored events (room messages, broadcasts and the changes to messages share one id
//! sequence) and the contract's JSON shapes of them.

use std::sync::LazyLock;

use serde::Serialize;
use uuid::Uuid;

use super::{Emoji, ReactionAction, Reactions, RoomName, UserRef};

/// How many characters of the replied-to body a reply shows.
pub const EXCERPT_CHARS: usize = 100;

/// A stored event: a room message (`room` set), a broadcast (`room` empty), or a change to
/// a room message (deleted, edited, reacted to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Position in the one id sequence.
    pub id: i64,
    /// The room, or `None` for a broadcast.
    pub room: Option<RoomName>,
    /// The author, or who made the change; `None` when the admin token did it.
    pub user: Option<UserRef>,
    /// The text of a message or broadcast, the new text of an edit; empty otherwise.
    pub body: String,
    /// RFC 3339 UTC, when it was stored (for an edit: its `edited_at`).
    pub sent_at: String,
    /// What happened.
    pub kind: EventKind,
}

/// What a stored event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A room message (with its state when read) or a broadcast (state empty).
    Message(MessageState),
    /// `message_deleted`: the message is gone.
    Deleted {
        /// The message removed.
        message_id: i64,
    },
    /// `message_edited`: the message's body is now this event's `body`.
    Edited {
        /// The message edited.
        message_id: i64,
        /// Who the new body mentions.
        mentions: Vec<UserRef>,
    },
    /// `reaction`: the event's `user` added or removed `emoji`.
    Reaction {
        /// The message reacted to.
        message_id: i64,
        /// The reaction.
        emoji: Emoji,
        /// Added or removed.
        action: ReactionAction,
        /// How many hold it after the change.
        count: i64,
    },
}

impl Default for EventKind {
    fn default() -> Self {
        Self::Message(MessageState::default())
    }
}

/// What a message carries besides its text: as posted when sent live, as it is now when
/// read back (history, replay).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageState {
    /// The time of the last edit, if any.
    pub edited_at: Option<String>,
    /// The message it answers.
    pub reply_to: Option<ReplyTo>,
    /// The users its body mentions, each once, in order of first appearance.
    pub mentions: Vec<UserRef>,
    /// Its reactions.
    pub reactions: Reactions,
}

/// The message a reply answers: its id, and while it exists its author and the start of its
/// body as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplyTo {
    /// The replied-to message's id (kept after it is deleted).
    pub id: i64,
    /// Its author; `null` once it is deleted.
    pub user: Option<UserRef>,
    /// Its first 100 characters now; `null` once it is deleted.
    pub excerpt: Option<String>,
}

/// The first [`EXCERPT_CHARS`] characters of `body`.
pub fn excerpt(body: &str) -> String {
    match body.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => body[..end].to_owned(),
        None => body.to_owned(),
    }
}

/// The contract's `Message` object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageJson<'a> {
    id: i64,
    room: &'a RoomName,
    user: &'a UserRef,
    body: &'a str,
    sent_at: &'a str,
    /// The time of the last edit; `null` until then.
    edited_at: Option<&'a str>,
    /// The message this one answers.
    reply_to: Option<&'a ReplyTo>,
    /// Users the body mentions, in order of first appearance.
    mentions: &'a [UserRef],
    /// Emoji with their count and first users, in the order each was last added.
    #[schema(value_type = Vec<super::Reaction>)]
    reactions: &'a Reactions,
}

/// The contract's `message_deleted` data.
#[derive(Debug, Serialize)]
pub struct DeletedJson<'a> {
    id: i64,
    room: &'a RoomName,
    message_id: i64,
    by: Option<&'a UserRef>,
}

/// The contract's `message_edited` data.
#[derive(Debug, Serialize)]
pub struct EditedJson<'a> {
    id: i64,
    room: &'a RoomName,
    message_id: i64,
    body: &'a str,
    edited_at: &'a str,
    mentions: &'a [UserRef],
    by: &'a UserRef,
}

/// The contract's `reaction` data.
#[derive(Debug, Serialize)]
pub struct ReactionJson<'a> {
    id: i64,
    room: &'a RoomName,
    message_id: i64,
    emoji: &'a Emoji,
    user: &'a UserRef,
    action: ReactionAction,
    count: i64,
}

/// The contract's broadcast object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BroadcastJson<'a> {
    id: i64,
    body: &'a str,
    sent_at: &'a str,
}

/// An event's `data`, whichever event it is.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EventData<'a> {
    /// `message`.
    Message(MessageJson<'a>),
    /// `broadcast`.
    Broadcast(BroadcastJson<'a>),
    /// `message_deleted`.
    Deleted(DeletedJson<'a>),
    /// `message_edited`.
    Edited(EditedJson<'a>),
    /// `reaction`.
    Reaction(ReactionJson<'a>),
}

/// A deleted or token-sent author still needs a shape in `Message.user`.
static NOBODY: LazyLock<UserRef> = LazyLock::new(|| UserRef {
    id: Uuid::nil(),
    username: None,
});

impl StoredMessage {
    /// Whether this is a broadcast (sent to every connection) rather than a room event.
    pub fn is_broadcast(&self) -> bool {
        self.room.is_none()
    }

    /// The message a change event is about; `None` for a message or broadcast.
    pub fn about(&self) -> Option<i64> {
        match &self.kind {
            EventKind::Message(_) => None,
            EventKind::Deleted { message_id }
            | EventKind::Edited { message_id, .. }
            | EventKind::Reaction { message_id, .. } => Some(*message_id),
        }
    }

    /// The SSE event name it is sent as.
    pub fn event_name(&self) -> &'static str {
        match (&self.kind, &self.room) {
            (EventKind::Message(_), Some(_)) => "message",
            (EventKind::Message(_), None) => "broadcast",
            (EventKind::Deleted { .. }, _) => "message_deleted",
            (EventKind::Edited { .. }, _) => "message_edited",
            (EventKind::Reaction { .. }, _) => "reaction",
        }
    }

    /// Its `data`, in the contract's shape for its event name.
    pub fn data(&self) -> EventData<'_> {
        let (Some(room), kind) = (&self.room, &self.kind) else {
            return EventData::Broadcast(self.broadcast_json());
        };
        let by = self.user.as_ref().unwrap_or(&NOBODY);
        match kind {
            EventKind::Message(state) => EventData::Message(self.message_of(room, state)),
            EventKind::Deleted { message_id } => EventData::Deleted(DeletedJson {
                id: self.id,
                room,
                message_id: *message_id,
                by: self.user.as_ref(),
            }),
            EventKind::Edited {
                message_id,
                mentions,
            } => EventData::Edited(EditedJson {
                id: self.id,
                room,
                message_id: *message_id,
                body: &self.body,
                edited_at: &self.sent_at,
                mentions,
                by,
            }),
            EventKind::Reaction {
                message_id,
                emoji,
                action,
                count,
            } => EventData::Reaction(ReactionJson {
                id: self.id,
                room,
                message_id: *message_id,
                emoji,
                user: by,
                action: *action,
                count: *count,
            }),
        }
    }

    /// As the contract's `Message`; `None` for a broadcast or a change event.
    pub fn message_json(&self) -> Option<MessageJson<'_>> {
        match &self.kind {
            EventKind::Message(state) => Some(self.message_of(self.room.as_ref()?, state)),
            _ => None,
        }
    }

    fn message_of<'a>(&'a self, room: &'a RoomName, state: &'a MessageState) -> MessageJson<'a> {
        MessageJson {
            id: self.id,
            room,
            user: self.user.as_ref().unwrap_or(&NOBODY),
            body: &self.body,
            sent_at: &self.sent_at,
            edited_at: state.edited_at.as_deref(),
            reply_to: state.reply_to.as_ref(),
            mentions: &state.mentions,
            reactions: &state.reactions,
        }
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

/// The names `body` mentions, in order of first appearance, each once (letter case
/// ignored). `@name` mentions when the `@` starts the body or follows a character that is
/// not an ASCII letter, digit or `_`, and `name` is the longest run of those after it (so
/// `@bob's` names `bob`, `@bobby` does not). Runs that cannot be a username (not 3..=32
/// long) are left out.
pub fn mentioned_names(body: &str) -> Vec<&str> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = body.as_bytes();
    let mut names: Vec<&str> = Vec::new();
    for (at, _) in body.match_indices('@') {
        if at > 0 && word(bytes[at - 1]) {
            continue;
        }
        let start = at + 1;
        let len = bytes[start..].iter().take_while(|&&b| word(b)).count();
        // ASCII bytes only, so `start..start + len` is on char boundaries.
        let name = &body[start..start + len];
        if (3..=32).contains(&len) && !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_follow_the_rule() {
        assert_eq!(mentioned_names("@bob's idea"), ["bob"]);
        assert_eq!(mentioned_names("hi @bobby"), ["bobby"]);
        assert_eq!(mentioned_names("mail me at me@bob.com"), Vec::<&str>::new());
        assert_eq!(mentioned_names("_@bob x@bob 9@bob"), Vec::<&str>::new());
        assert_eq!(
            mentioned_names("@Bob, @carol and @BOB (@dave)"),
            ["Bob", "carol", "dave"]
        );
        assert_eq!(mentioned_names("é@bob @@ann"), ["bob", "ann"]);
        assert_eq!(mentioned_names("@al @"), Vec::<&str>::new(), "too short");
        let long = format!("@{}", "a".repeat(33));
        assert!(
            mentioned_names(&long).is_empty(),
            "too long to be a username"
        );
    }

    #[test]
    fn excerpts_are_the_first_hundred_characters() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(150);
        assert_eq!(excerpt(&long).chars().count(), 100);
        assert_eq!(excerpt(&"x".repeat(100)), "x".repeat(100));
    }
}
