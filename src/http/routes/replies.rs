//! The shapes of answers that handlers build, named so the OpenAPI document can describe
//! them. Kept apart from the handlers and the document, so neither imports the other.

// The documentation-only shapes are never built: only their schema derive reads them.
#![allow(dead_code)]

use utoipa::ToSchema;

use crate::{
    domain::{BroadcastJson, MessageJson, RoomName, User, UserRef, Visibility},
    hub::RoomInfo,
};

/// A room as listed: the hub's figures and its visibility.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Listed {
    #[serde(flatten)]
    pub room: RoomInfo,
    pub visibility: Visibility,
}

/// `{"user": User}`.
#[derive(ToSchema)]
pub struct UserReply {
    user: User,
}

/// `{"message": Message}`: serialized straight from the stored message (the post route is
/// the hottest there is).
#[derive(serde::Serialize, ToSchema)]
pub struct MessageReply<'a> {
    pub message: MessageJson<'a>,
}

/// `{"messages": [Message]}`, ascending by id.
#[derive(ToSchema)]
pub struct MessagesReply {
    messages: Vec<MessageJson<'static>>,
}

/// `{"rooms": [{"name","subscribers","users","visibility"}]}`, busiest first.
#[derive(ToSchema)]
pub struct RoomsReply {
    rooms: Vec<Listed>,
}

/// `{"room", "users"}`: users with a connection in the room now.
#[derive(ToSchema)]
pub struct PresenceReply {
    room: RoomName,
    users: Vec<UserRef>,
}

/// `{"broadcast": {"id","body","sent_at"}}`.
#[derive(ToSchema)]
pub struct BroadcastReply {
    broadcast: BroadcastJson<'static>,
}

/// Live figures of `GET /api/admin/stats`.
#[derive(ToSchema)]
pub struct StatsReply {
    connections: u64,
    users_online: u64,
    rooms: u64,
    subscriptions: u64,
    messages_stored: u64,
    events_delivered: u64,
    slow_disconnects: u64,
}

/// `{"closed": n}`: streams closed.
#[derive(ToSchema)]
pub struct ClosedReply {
    closed: u64,
}
