//! Rooms: post and read messages, custom events, who is here.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::json::Json;
use crate::{
    auth::CurrentUser,
    db::Page,
    domain::{EventName, HistoryQuery, MessageBody, RoomName, UserRef},
    error::{ApiError, ErrorCode},
    state::AppState,
};

/// `GET /api/rooms`: rooms with subscribers now.
pub async fn list(state: web::Data<AppState>, _: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "rooms": state.hub.rooms() }))
}

/// `GET /api/rooms/{room}/presence`: users with a connection in the room now.
pub async fn presence(
    state: web::Data<AppState>,
    _: CurrentUser,
    room: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&room)?;
    let users = state.hub.presence(&room);
    Ok(HttpResponse::Ok().json(json!({ "room": room, "users": users })))
}

/// Body of `POST /api/rooms/{room}/messages`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    body: String,
}

/// `POST /api/rooms/{room}/messages`: stored durably, then sent; `201 {"message"}`.
pub async fn post_message(
    state: web::Data<AppState>,
    current: CurrentUser,
    room: web::Path<String>,
    body: Json<NewMessage>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&room)?;
    let body = MessageBody::parse(&body.body, state.settings.limits.message_chars)?;
    state.limits.post(current.user.id)?;
    let stored = state
        .writer
        .post(Some(room), Some(UserRef::from(&current.user)), body)
        .await?;
    Ok(HttpResponse::Created().json(json!({ "message": stored.message_json() })))
}

/// `GET /api/rooms/{room}/messages?before=&after=&limit=`: ascending by id.
pub async fn history(
    state: web::Data<AppState>,
    _: CurrentUser,
    room: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&room)?;
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
    let messages = state.db.messages_page(&room, page).await?;
    let messages: Vec<_> = messages.iter().filter_map(|m| m.message_json()).collect();
    Ok(HttpResponse::Ok().json(json!({ "messages": messages })))
}

/// Body of `POST /api/rooms/{room}/events`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    event: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// `POST /api/rooms/{room}/events`: an ephemeral custom event; `202`, not stored.
pub async fn post_event(
    state: web::Data<AppState>,
    current: CurrentUser,
    room: web::Path<String>,
    body: Json<NewEvent>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&room)?;
    let name = EventName::parse_custom(&body.event)?;
    let limit = state.settings.limits.event_data_bytes;
    let size = serde_json::to_vec(&body.data)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > limit {
        return Err(ApiError::DataTooLarge { limit });
    }
    state.limits.post(current.user.id)?;
    state
        .hub
        .publish_custom(&room, &UserRef::from(&current.user), &name, &body.data);
    Ok(HttpResponse::Accepted().finish())
}
