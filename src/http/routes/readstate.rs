//! The room list with unread and mention counts, read markers, and search.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{
    access::VisibleRoom,
    json::Json,
    replies::{MyRoomReply, MyRoomsReply, SearchHit, SearchReply},
};
use crate::{
    domain::{RoomName, RoomView, SearchParams, SearchQuery, Visibility},
    http::auth::CurrentUser,
    http::error::{ApiError, ErrorCode},
    http::state::AppState,
    hub::ReadMarker,
};

/// Most results one search returns.
const MAX_RESULTS: u32 = 50;

/// A private room enters the list of its members only: an admin sees every room, but
/// lists only those it belongs to.
async fn listable(state: &AppState, room: &VisibleRoom) -> Result<(), ApiError> {
    let private = room
        .view
        .record
        .as_ref()
        .is_some_and(|r| r.visibility == Visibility::Private);
    if private
        && state
            .db
            .member_role(room.name(), room.caller.user.id)
            .await?
            .is_none()
    {
        return Err(ApiError::unknown_room());
    }
    Ok(())
}

/// A room enters the caller's list (by a follow or a first marker) only while the list
/// holds fewer than `limits.rooms_listed_per_user`: nobody can grow a list, and the cost of
/// every read of it, without bound. `400 too_many_rooms` past it.
async fn fits_in_list(state: &AppState, room: &VisibleRoom) -> Result<(), ApiError> {
    let max = state.settings.limits.rooms_listed_per_user;
    let (size, listed) = state.db.list_size(room.caller.user.id, room.name()).await?;
    if !listed && size >= i64::from(max) {
        return Err(ApiError::validation(
            ErrorCode::TooManyRooms,
            format!("a room list holds at most {max} rooms; unfollow one first"),
        ));
    }
    Ok(())
}

/// The room as the caller's list shows it, once it is there.
async fn entry(state: &AppState, room: &VisibleRoom) -> Result<HttpResponse, ApiError> {
    let entry = state
        .db
        .room_entry(room.caller.user.id, room.name())
        .await?
        .ok_or_else(ApiError::unknown_room)?;
    Ok(HttpResponse::Ok().json(MyRoomReply { room: entry }))
}

/// `GET /api/me/rooms`: the caller's room list with read state, ordered by name.
#[utoipa::path(
    get, path = "/api/me/rooms", tag = "read state", security(("session" = [])),
    responses((status = 200, body = MyRoomsReply, description = "The rooms the caller created, was added to or follows, by name"))
)]
pub async fn list(
    state: web::Data<AppState>,
    current: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let rooms = state.db.room_list(current.user.id).await?;
    Ok(HttpResponse::Ok().json(MyRoomsReply { rooms }))
}

/// `PUT /api/me/rooms/{room}` → `200 {"room"}`: follows the room (its marker starts at its
/// newest message); following again changes nothing.
#[utoipa::path(
    put, path = "/api/me/rooms/{room}", tag = "read state", security(("session" = [])),
    params(("room" = String, Path, description = "The room", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses(
        (status = 200, body = MyRoomReply, description = "The room as the list shows it"),
        (status = 400, description = "`invalid_room`; `too_many_rooms`: the room list is full (`limits.rooms_listed_per_user`)"),
        (status = 404, description = "`unknown_room`: a private room the caller is not a member of"),
    )
)]
pub async fn follow(
    state: web::Data<AppState>,
    room: VisibleRoom,
) -> Result<HttpResponse, ApiError> {
    listable(&state, &room).await?;
    fits_in_list(&state, &room).await?;
    state.db.follow(room.caller.user.id, room.name()).await?;
    entry(&state, &room).await
}

/// `DELETE /api/me/rooms/{room}` → `204`: stops following (a member's room stays listed).
#[utoipa::path(
    delete, path = "/api/me/rooms/{room}", tag = "read state", security(("session" = [])),
    params(("room" = String, Path, description = "The room", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses(
        (status = 204, description = "Not followed now (also when it was not)"),
        (status = 400, description = "`invalid_room`"),
    )
)]
pub async fn unfollow(
    state: web::Data<AppState>,
    current: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&path)?;
    state.db.unfollow(current.user.id, &room).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Body of `PUT /api/rooms/{room}/read`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadBody {
    /// Messages up to this id are read (0 or more).
    #[schema(minimum = 0)]
    last_read_id: i64,
}

/// `PUT /api/rooms/{room}/read` `{"last_read_id"}` → `200 {"room"}`: moves the marker
/// forward only; a move sends `read` to every stream of the caller.
#[utoipa::path(
    put, path = "/api/rooms/{room}/read", tag = "read state", security(("session" = [])),
    params(("room" = String, Path, description = "The room", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    request_body = ReadBody,
    responses(
        (status = 200, body = MyRoomReply, description = "The room as the list shows it now"),
        (status = 400, description = "`invalid_request`: `last_read_id` missing or below 0; `too_many_rooms`: a room not listed yet, and the room list is full"),
        (status = 404, description = "`unknown_room`: a private room the caller is not a member of"),
    )
)]
pub async fn read(
    state: web::Data<AppState>,
    room: VisibleRoom,
    body: Json<ReadBody>,
) -> Result<HttpResponse, ApiError> {
    if body.last_read_id < 0 {
        return Err(ApiError::validation(
            ErrorCode::InvalidRequest,
            "last_read_id is a message id (0 or more)",
        ));
    }
    listable(&state, &room).await?;
    fits_in_list(&state, &room).await?;
    let user = room.caller.user.id;
    let done = state
        .db
        .mark_read(user, room.name(), body.last_read_id)
        .await?;
    if done.moved {
        let marker = ReadMarker {
            room: room.name().clone(),
            last_read_id: done.room.last_read_id,
        };
        state.cluster.announce_read(user, &marker).await;
    }
    Ok(HttpResponse::Ok().json(MyRoomReply { room: done.room }))
}

/// `GET /api/search?q=&room=&before=&limit=` → `200 {"results"}`: the messages the caller
/// may read holding every word of `q` (the last one as a prefix too), newest first.
#[utoipa::path(
    get, path = "/api/search", tag = "read state", security(("session" = [])), params(SearchParams),
    responses(
        (status = 200, body = SearchReply, description = "Newest first, with the matched words' offsets"),
        (status = 400, description = "`invalid_query`, `invalid_limit`, `invalid_room`"),
        (status = 404, description = "`unknown_room`: a private room the caller is not a member of"),
    )
)]
pub async fn search(
    state: web::Data<AppState>,
    current: CurrentUser,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse, ApiError> {
    let query = SearchQuery::parse(params.q.as_deref().unwrap_or_default())?;
    let limit = params.limit.unwrap_or(20);
    if !(1..=MAX_RESULTS).contains(&limit) {
        return Err(ApiError::validation(
            ErrorCode::InvalidLimit,
            format!("limit is 1-{MAX_RESULTS}"),
        ));
    }
    let room = match &params.room {
        Some(name) => {
            let name = RoomName::parse(name)?;
            let view: RoomView = state.db.room_view(&name, Some(&current.user)).await?;
            if !view.visible() {
                return Err(ApiError::unknown_room());
            }
            Some(name)
        }
        None => None,
    };
    let found = state
        .db
        .search(current.user.id, &query, room.as_ref(), params.before, limit)
        .await?;
    let results = found
        .iter()
        .filter_map(|m| {
            let message = m.message_json()?;
            Some(SearchHit {
                message,
                matches: query.matches(&m.body),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(SearchReply { results }))
}
