//! Every JSON answer a handler sends, as a type: the handler serializes it and the OpenAPI
//! document describes it from the same definition, so the two cannot drift apart. Errors
//! have their own shape ([`crate::http::error`]).

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    db::{Member, MyRoom, TokenRecord, WebhookRecord},
    domain::{
        BroadcastJson, HookEvent, MemberRole, MessageJson, Reaction, RoomName, RoomRecord, User,
        UserRef, Visibility,
    },
    hub::RoomInfo,
};

/// A room as listed: the hub's figures and its visibility.
#[derive(Serialize, ToSchema)]
pub struct Listed {
    /// Name and subscriber figures.
    #[serde(flatten)]
    pub room: RoomInfo,
    /// Public or private.
    pub visibility: Visibility,
}

/// `{"user": User}`.
#[derive(Serialize, ToSchema)]
pub struct UserReply<'a> {
    /// The logged-in user.
    pub user: &'a User,
}

/// `{"message": Message}`, serialized straight from the stored message.
#[derive(Serialize, ToSchema)]
pub struct MessageReply<'a> {
    /// The message as stored.
    pub message: MessageJson<'a>,
}

/// `{"messages": [Message]}`, ascending by id.
#[derive(Serialize, ToSchema)]
pub struct MessagesReply<'a> {
    /// The page.
    pub messages: Vec<MessageJson<'a>>,
}

/// `{"message_id", "reactions": [{"emoji","count","users"}]}`: a message's reactions after
/// a reaction request.
#[derive(Serialize, ToSchema)]
pub struct ReactionsReply<'a> {
    /// The message.
    pub message_id: i64,
    /// Its reactions now, in the order each was last added.
    pub reactions: &'a [Reaction],
}

/// `{"rooms": [{"name","subscribers","users","visibility"}]}`, busiest first.
#[derive(Serialize, ToSchema)]
pub struct RoomsReply {
    /// The rooms the caller may see.
    pub rooms: Vec<Listed>,
}

/// `{"room", "users"}`: users with a connection in the room now.
#[derive(Serialize, ToSchema)]
pub struct PresenceReply<'a> {
    /// The room.
    pub room: &'a RoomName,
    /// Who is in it.
    pub users: Vec<UserRef>,
}

/// `{"broadcast": {"id","body","sent_at"}}`.
#[derive(Serialize, ToSchema)]
pub struct BroadcastReply<'a> {
    /// The broadcast as stored.
    pub broadcast: BroadcastJson<'a>,
}

/// Live figures of `GET /api/admin/stats`, over every node.
#[derive(Serialize, ToSchema)]
pub struct StatsReply {
    /// Open streams.
    pub connections: usize,
    /// Distinct users with a stream.
    pub users_online: usize,
    /// Rooms with a subscriber.
    pub rooms: usize,
    /// (connection, room) pairs.
    pub subscriptions: usize,
    /// Messages in the log.
    pub messages_stored: i64,
    /// Frames queued to streams since start.
    pub events_delivered: u64,
    /// Streams dropped for not reading.
    pub slow_disconnects: u64,
}

/// `{"closed": n}`: streams closed.
#[derive(Serialize, ToSchema)]
pub struct ClosedReply {
    /// How many, over every node.
    pub closed: usize,
}

/// `{"room": RoomInfo}`: a created room.
#[derive(Serialize, ToSchema)]
pub struct CreatedRoomReply<'a> {
    /// Name, visibility, owner.
    pub room: &'a RoomRecord,
}

/// `{"rooms": [MyRoom]}`: the caller's room list, ordered by name.
#[derive(Serialize, ToSchema)]
pub struct MyRoomsReply {
    /// The rooms the caller created, was added to or follows, with their read state.
    pub rooms: Vec<MyRoom>,
}

/// `{"room": MyRoom}`: one room of the caller's list.
#[derive(Serialize, ToSchema)]
pub struct MyRoomReply {
    /// The room with its read state.
    pub room: MyRoom,
}

/// One search result: the message as it is now and where its matched words are.
#[derive(Serialize, ToSchema)]
pub struct SearchHit<'a> {
    /// The message.
    pub message: MessageJson<'a>,
    /// `[start, end)` code-point offsets in `message.body` of every matched word, ascending.
    pub matches: Vec<[usize; 2]>,
}

/// `{"results": [{"message","matches"}]}`, newest first.
#[derive(Serialize, ToSchema)]
pub struct SearchReply<'a> {
    /// The matching messages.
    pub results: Vec<SearchHit<'a>>,
}

/// `{"room", "members": [{"id","username","role"}]}`, ordered by username.
#[derive(Serialize, ToSchema)]
pub struct MembersReply<'a> {
    /// The room.
    pub room: &'a RoomName,
    /// Its members.
    pub members: Vec<Member>,
}

/// `{"member": {"id","username","role"}}`: a member as it is now.
#[derive(Serialize, ToSchema)]
pub struct MemberReply<'a> {
    /// The member.
    pub member: MemberJson<'a>,
}

/// One member of a room.
#[derive(Serialize, ToSchema)]
pub struct MemberJson<'a> {
    /// The user's id.
    pub id: Uuid,
    /// The user's name.
    pub username: &'a str,
    /// Its role in the room.
    pub role: MemberRole,
}

/// The contract's `Token`: never its secret.
#[derive(Serialize, ToSchema)]
pub struct TokenJson<'a> {
    /// Its id.
    pub id: Uuid,
    /// What its owner called it.
    pub name: &'a str,
    /// When it was made.
    pub created_at: &'a str,
    /// When it was last used (at most a minute stale); `null` when never.
    pub last_used_at: Option<&'a str>,
}

impl<'a> From<&'a TokenRecord> for TokenJson<'a> {
    fn from(t: &'a TokenRecord) -> Self {
        Self {
            id: t.id,
            name: &t.name,
            created_at: &t.created_at,
            last_used_at: t.last_used_at.as_deref(),
        }
    }
}

/// `{"token": Token, "secret": "rc_…"}`: the one time the secret is shown.
#[derive(Serialize, ToSchema)]
pub struct NewTokenReply<'a> {
    /// The token.
    pub token: TokenJson<'a>,
    /// Its secret, for `Authorization: Bearer`.
    pub secret: &'a str,
}

/// `{"tokens": [Token]}`, newest first.
#[derive(Serialize, ToSchema)]
pub struct TokensReply<'a> {
    /// The caller's tokens.
    pub tokens: Vec<TokenJson<'a>>,
}

/// The contract's `Webhook`: never its secret.
#[derive(Serialize, ToSchema)]
pub struct WebhookJson<'a> {
    /// Its id.
    pub id: Uuid,
    /// Where events are posted.
    pub url: &'a str,
    /// The events it takes.
    #[schema(value_type = Vec<String>)]
    pub events: &'a [HookEvent],
    /// The rooms it is about; `null` for every room.
    #[schema(value_type = Option<Vec<String>>)]
    pub rooms: Option<&'a [RoomName]>,
    /// When it was made.
    pub created_at: &'a str,
    /// Every event up to this id has been delivered (or is not one it takes).
    pub delivered_id: i64,
    /// Stored events it takes that it has not had yet.
    pub pending: i64,
    /// Failed tries since the last success.
    pub failures: i64,
    /// What the last failure was; `null` after a success.
    pub last_error: Option<&'a str>,
}

impl<'a> WebhookJson<'a> {
    /// `hook` with `pending` events not yet delivered.
    pub fn new(hook: &'a WebhookRecord, pending: i64) -> Self {
        Self {
            id: hook.id,
            url: &hook.url,
            events: hook.filter.events(),
            rooms: hook.filter.rooms(),
            created_at: &hook.created_at,
            delivered_id: hook.delivered_id,
            pending,
            failures: hook.failures,
            last_error: hook.last_error.as_deref(),
        }
    }
}

/// `{"webhook": Webhook, "secret": "whsec_…"}`: the one time the secret is shown.
#[derive(Serialize, ToSchema)]
pub struct NewWebhookReply<'a> {
    /// The webhook.
    pub webhook: WebhookJson<'a>,
    /// Its signing secret.
    pub secret: &'a str,
}

/// `{"webhook": Webhook}`.
#[derive(Serialize, ToSchema)]
pub struct WebhookReply<'a> {
    /// The webhook.
    pub webhook: WebhookJson<'a>,
}

/// `{"webhooks": [Webhook]}`.
#[derive(Serialize, ToSchema)]
pub struct WebhooksReply<'a> {
    /// Every webhook, oldest first.
    pub webhooks: Vec<WebhookJson<'a>>,
}
