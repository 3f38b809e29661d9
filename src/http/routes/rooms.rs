//! Rooms: post and read messages, custom events, who is here.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{
    access::VisibleRoom,
    json::Json,
    replies::{Listed, MessageReply, MessagesReply, PresenceReply, RoomsReply},
};
use crate::{
    conversation::Conversation,
    db::Page,
    domain::{EventName, HistoryQuery, MessageBody, Role, UserRef, Visibility},
    http::auth::CurrentUser,
    http::error::{ApiError, ErrorCode},
    http::state::AppState,
};

/// Query of `GET /api/rooms`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<usize>,
}

/// Most rooms one listing returns.
const MAX_LIST: usize = 500;

/// `GET /api/rooms?limit=`: the busiest rooms with subscribers now that the caller may
/// see (the limit applies after private rooms of others are left out).
#[utoipa::path(
    get, path = "/api/rooms", tag = "rooms", security(("session" = [])), params(ListQuery),
    responses(
        (status = 200, body = RoomsReply, description = "Rooms with subscribers now, busiest first"),
        (status = 400, description = "`invalid_limit`, `invalid_query`"),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    current: CurrentUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::validation(
            ErrorCode::InvalidLimit,
            format!("limit is 1-{MAX_LIST}"),
        ));
    }
    // private room → whether the caller is a member
    let private = state.db.private_rooms(current.user.id).await?;
    let admin = current.user.role == Role::Admin;
    let rooms: Vec<Listed> = state
        .cluster
        .busiest_rooms(limit, |name| {
            admin || private.get(name).is_none_or(|member| *member)
        })
        .await
        .into_iter()
        .map(|room| Listed {
            visibility: if private.contains_key(&room.name) {
                Visibility::Private
            } else {
                Visibility::Public
            },
            room,
        })
        .collect();
    Ok(HttpResponse::Ok().json(RoomsReply { rooms }))
}

/// `GET /api/rooms/{room}/presence`: users with a connection in the room now.
#[utoipa::path(
    get, path = "/api/rooms/{room}/presence", tag = "rooms", security(("session" = [])), params(("room" = String, Path, description = "Room name", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses(
        (status = 200, body = PresenceReply, description = "Users with a connection in the room now"),
        (status = 400, description = "`invalid_room`"),
    )
)]
pub async fn presence(
    state: web::Data<AppState>,
    room: VisibleRoom,
) -> Result<HttpResponse, ApiError> {
    let users = state.cluster.presence(room.name());
    Ok(HttpResponse::Ok().json(PresenceReply {
        room: room.name(),
        users,
    }))
}

/// Body of `POST /api/rooms/{room}/messages`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    body: String,
    /// The id of the message of this room it answers.
    reply_to: Option<i64>,
}

/// `POST /api/rooms/{room}/messages`: stored durably, then sent; `201 {"message"}`.
#[utoipa::path(
    post, path = "/api/rooms/{room}/messages", tag = "rooms", security(("session" = [])), params(("room" = String, Path, description = "Room name", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    request_body = NewMessage,
    responses(
        (status = 201, body = MessageReply, description = "Stored durably, then sent"),
        (status = 404, description = "`unknown_room`; `unknown_message`: `reply_to` is not a message of this room"),
        (status = 429, description = "`rate_limited`: see `Retry-After`"),
        (status = 503, description = "`unavailable`: the message writer is not storing"),
    )
)]
pub async fn post_message(
    state: web::Data<AppState>,
    room: VisibleRoom,
    body: Json<NewMessage>,
) -> Result<HttpResponse, ApiError> {
    let Json(NewMessage { body, reply_to }) = body;
    let body = MessageBody::parse(&body, state.settings.limits.message_chars)?;
    let author = &room.caller.user;
    state.limits.post(author.id)?;
    let conversation = Conversation::new(&state.db, &state.writer);
    let stored =
        super::answered_here(conversation.post(&room.view, author, body, reply_to)).await?;
    let message = stored
        .message_json()
        .ok_or_else(|| anyhow::anyhow!("the writer stored post {} as no message", stored.id))?;
    Ok(HttpResponse::Created().json(MessageReply { message }))
}

/// `GET /api/rooms/{room}/messages?before=&after=&limit=`: ascending by id.
#[utoipa::path(
    get, path = "/api/rooms/{room}/messages", tag = "rooms", security(("session" = [])), params(("room" = String, Path, description = "Room name", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$"), HistoryQuery),
    responses(
        (status = 200, body = MessagesReply, description = "Ascending by id"),
        (status = 400, description = "`invalid_room`, `invalid_limit`, `invalid_query`"),
    )
)]
pub async fn history(
    state: web::Data<AppState>,
    room: VisibleRoom,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation(
            ErrorCode::InvalidLimit,
            "limit is 1-200",
        ));
    }
    let page = Page {
        before: query.before,
        after: query.after,
        limit,
    };
    let messages = state.db.messages_page(room.name(), page).await?;
    let messages: Vec<_> = messages.iter().filter_map(|m| m.message_json()).collect();
    Ok(HttpResponse::Ok().json(MessagesReply { messages }))
}

/// Body of `POST /api/rooms/{room}/events`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    event: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// `POST /api/rooms/{room}/events`: an ephemeral custom event; `202`, not stored.
#[utoipa::path(
    post, path = "/api/rooms/{room}/events", tag = "rooms", security(("session" = [])), params(("room" = String, Path, description = "Room name", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    request_body = NewEvent,
    responses(
        (status = 202, description = "Sent to the room's subscribers; not stored"),
        (status = 413, description = "`data_too_large` or `payload_too_large`"),
        (status = 429, description = "`rate_limited`: see `Retry-After`"),
    )
)]
pub async fn post_event(
    state: web::Data<AppState>,
    room: VisibleRoom,
    body: Json<NewEvent>,
) -> Result<HttpResponse, ApiError> {
    let name = EventName::parse_custom(&body.event)?;
    let limit = state.settings.limits.event_data_bytes;
    let size = serde_json::to_vec(&body.data)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > limit {
        return Err(ApiError::DataTooLarge { limit });
    }
    let sender = &room.caller.user;
    state.limits.post(sender.id)?;
    state
        .cluster
        .publish_custom(room.name(), &UserRef::from(sender), &name, &body.data)
        .await?;
    Ok(HttpResponse::Accepted().finish())
}
