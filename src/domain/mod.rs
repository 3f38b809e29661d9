//! The vocabulary of roomcast, with no framework in it: validated names and ids
//! ([`names`]), users ([`user`]), stored events and the contract's JSON shapes of them
//! ([`message`]), reactions ([`reaction`]), and the request bodies that other layers parse
//! into their own types ([`requests`]). Nothing here knows HTTP, SQL or SSE.

mod message;
mod names;
mod origin;
mod reaction;
mod requests;
mod room;
mod search;
mod token;
mod user;
mod webhook;

pub use message::{
    BroadcastJson, DeletedJson, EXCERPT_CHARS, EditedJson, EventData, EventKind, MessageJson,
    MessageState, ReactionJson, ReplyTo, StoredMessage, excerpt, mentioned_names,
};
pub use names::{
    ConnectionId, EventName, MessageBody, NODE_TAG_BYTES, Password, RESERVED_EVENTS, RoomName,
    Username, parse_last_event_id,
};
pub use origin::Origin;
pub use reaction::{Emoji, MAX_REACTION_USERS, MAX_REACTIONS, Reaction, ReactionAction, Reactions};
pub use requests::{HistoryQuery, SearchParams, StreamQuery, SubscribeBody, UnsubscribeBody};
pub use room::{MemberRole, RoomRecord, RoomView, Visibility};
pub use search::{MAX_QUERY_CHARS, SearchQuery, index_words};
pub use token::{
    MAX_TOKEN_NAME_CHARS, Secret, TOKEN_PREFIX, TokenName, WEBHOOK_SECRET_PREFIX, hash_secret, hex,
    looks_like_token,
};
pub use user::{Role, User, UserRef};
pub use webhook::{HookEvent, HookFilter, MAX_WEBHOOK_URL, WebhookUrl};

/// Most rooms one connection may hold (and name in one request).
pub const MAX_ROOMS_PER_CONNECTION: usize = 100;

/// Most messages per room a subscribe's `history` may ask for.
pub const MAX_HISTORY: u32 = 200;

/// Why outside input is not a valid value. Each variant is one rule of the contract; the
/// HTTP layer maps it to a status and a machine code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a room name.
    #[error("room names are 1-64 chars of a-z 0-9 _ - and start with a letter or digit")]
    Room,
    /// Not a username.
    #[error("usernames are 3-32 chars of A-Z a-z 0-9 _")]
    Username,
    /// A password of the wrong length.
    #[error("passwords are 8-128 characters")]
    Password,
    /// Not an event name.
    #[error("event names are 1-32 chars of a-z 0-9 _ . - and start with a letter")]
    EventName,
    /// A built-in event name used as a custom event.
    #[error("`{}` is reserved; custom events need another name", .0.as_str())]
    ReservedEvent(EventName),
    /// A message body empty or too long after trimming.
    #[error("message bodies are 1-{max_chars} characters after trimming")]
    MessageBody {
        /// The configured cap.
        max_chars: usize,
    },
    /// Not a connection id (so certainly not one of the caller's).
    #[error("no such connection")]
    ConnectionId,
    /// An empty room list.
    #[error("name at least one room")]
    NoRooms,
    /// More rooms than a connection may hold.
    #[error("a connection holds at most {MAX_ROOMS_PER_CONNECTION} rooms")]
    TooManyRooms,
    /// A `history` count out of range.
    #[error("history is 0-{MAX_HISTORY} messages per room")]
    History,
    /// A negative `last_event_id`.
    #[error("last_event_id is a message id (0 or more)")]
    LastEventId,
    /// Not a reaction.
    #[error(
        "a reaction is 1-8 characters, none ASCII, whitespace or control, at least one an \
         emoji or a regional indicator"
    )]
    Reaction,
    /// Not a token name.
    #[error("token names are 1-64 characters")]
    TokenName,
    /// Not a webhook URL.
    #[error("a webhook URL is http:// or https:// with a host, at most 2,048 characters")]
    WebhookUrl,
    /// A webhook's events are not a non-empty list of known names.
    #[error(
        "events is a non-empty list of message, message_edited, message_deleted, reaction, broadcast"
    )]
    WebhookEvents,
    /// A search query that is not 1-200 characters holding a word.
    #[error("q is 1-{MAX_QUERY_CHARS} characters holding at least one word (letters or digits)")]
    SearchQuery,
    /// A webhook's rooms are not null or 1-100 room names.
    #[error("rooms is null (every room) or 1-100 room names")]
    WebhookRooms,
}
