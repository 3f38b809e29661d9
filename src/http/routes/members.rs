//! Created rooms, their members and moderation: create, list mine, members, add/change,
//! remove/leave, delete a message.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{
    access::{RoomActor, VisibleRoom},
    json::Json,
    replies::{CreatedRoomReply, MemberJson, MemberReply, MembersReply},
};
use crate::{
    db::CreateRoomError,
    domain::{MemberRole, RoomName, UserRef, Visibility},
    http::auth::CurrentUser,
    http::error::{ApiError, ErrorCode},
    http::state::AppState,
    hub::MemberChange,
};

/// Body of `POST /api/rooms`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    name: String,
    visibility: Visibility,
}

fn taken() -> ApiError {
    ApiError::Conflict {
        code: ErrorCode::RoomTaken,
        message: "that room name is taken".into(),
    }
}

/// `POST /api/rooms` → `201 {"room"}`; the caller owns it.
#[utoipa::path(
    post, path = "/api/rooms", tag = "rooms", security(("session" = [])), request_body = NewRoom,
    responses(
        (status = 201, body = CreatedRoomReply, description = "Created; the caller is its owner"),
        (status = 400, description = "`invalid_room`, `invalid_request`"),
        (status = 409, description = "`room_taken`: created before, has history, or has subscribers now"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    current: CurrentUser,
    body: Json<NewRoom>,
) -> Result<HttpResponse, ApiError> {
    let name = RoomName::parse(&body.name)?;
    // A room people are in now is somebody's already, created or not.
    if state.cluster.has_room(&name) {
        return Err(taken());
    }
    let cap = state.settings.limits.rooms_created_per_user;
    if state.db.rooms_owned(current.user.id).await? >= i64::try_from(cap).unwrap_or(i64::MAX) {
        return Err(ApiError::Limited {
            code: ErrorCode::TooManyRoomsCreated,
            message: format!("a user creates at most {cap} rooms").into(),
        });
    }
    let room = match state
        .db
        .create_room(&name, body.visibility, &current.user)
        .await
    {
        Ok(room) => room,
        Err(CreateRoomError::Taken) => return Err(taken()),
        Err(CreateRoomError::Db(e)) => return Err(e.into()),
    };
    // Someone may have joined by name between the check above and the commit: a private
    // room keeps nobody but its owner.
    if body.visibility == Visibility::Private {
        for user in state.cluster.presence(&name) {
            if user.id != current.user.id {
                state.cluster.remove_member(&name, user.id, None).await;
            }
        }
    }
    Ok(HttpResponse::Created().json(CreatedRoomReply { room: &room }))
}

/// `GET /api/rooms/{room}/members`, ordered by username (none for an implicit room).
#[utoipa::path(
    get, path = "/api/rooms/{room}/members", tag = "rooms", security(("session" = [])), params(("room" = String, Path, description = "The room", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses(
        (status = 200, body = MembersReply, description = "The members, by username"),
        (status = 404, description = "`unknown_room`: a private room the caller is not a member of"),
    )
)]
pub async fn list(state: web::Data<AppState>, room: VisibleRoom) -> Result<HttpResponse, ApiError> {
    let members = match room.view.record {
        Some(_) => state.db.members(room.name()).await?,
        None => Vec::new(),
    };
    Ok(HttpResponse::Ok().json(MembersReply {
        room: room.name(),
        members,
    }))
}

/// Body of `PUT /api/rooms/{room}/members/{username}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    role: GivenRole,
}

/// The roles a member can be given; nobody is made the owner.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GivenRole {
    /// Belongs to the room.
    Member,
    /// Adds and removes members, deletes messages.
    Moderator,
}

impl From<GivenRole> for MemberRole {
    fn from(r: GivenRole) -> Self {
        match r {
            GivenRole::Member => MemberRole::Member,
            GivenRole::Moderator => MemberRole::Moderator,
        }
    }
}

async fn target(state: &AppState, username: &str) -> Result<crate::domain::User, ApiError> {
    match state.db.user_for_login(username).await? {
        Some((user, _)) => Ok(user),
        None => Err(ApiError::not_found(ErrorCode::UnknownUser, "no such user")),
    }
}

fn not_created() -> ApiError {
    ApiError::Forbidden("this room was never created, so it has no members")
}

/// `PUT /api/rooms/{room}/members/{username}` `{"role"}` → `200 {"member"}`.
#[utoipa::path(
    put, path = "/api/rooms/{room}/members/{username}", tag = "rooms", security(("session" = [])),
    params(("room" = String, Path, description = "The room", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$"), ("username" = String, Path, description = "The member", pattern = "^[A-Za-z0-9_]{3,32}$")), request_body = SetRole,
    responses(
        (status = 200, body = MemberReply, description = "The member as it is now; a changed role pushes a `member` event"),
        (status = 403, description = "`forbidden`: not allowed to give that role"),
        (status = 404, description = "`unknown_room`, `unknown_user`"),
    )
)]
pub async fn set(
    state: web::Data<AppState>,
    room: VisibleRoom,
    path: web::Path<(String, String)>,
    body: Json<SetRole>,
) -> Result<HttpResponse, ApiError> {
    if room.view.record.is_none() {
        return Err(not_created());
    }
    let user = target(&state, &path.1).await?;
    let role = MemberRole::from(body.role);
    // Judged on the role the user has now; if another change lands first, judged again
    // (so a moderator's "add" cannot undo the owner's promotion racing it).
    loop {
        let current = state.db.member_role(room.name(), user.id).await?;
        if !room.view.may_set_role(current, role) {
            return Err(ApiError::Forbidden(
                "owners and moderators add members; only the owner names moderators",
            ));
        }
        if current == Some(role) {
            break;
        }
        if state
            .db
            .set_member(room.name(), user.id, current, role)
            .await?
        {
            let change = MemberChange {
                room: room.name().clone(),
                user: UserRef::from(&user),
                role: Some(role),
                by: Some(UserRef::from(&room.caller.user)),
            };
            state.cluster.announce_member(&change, true).await;
            break;
        }
    }
    Ok(HttpResponse::Ok().json(MemberReply {
        member: MemberJson {
            id: user.id,
            username: &user.username,
            role,
        },
    }))
}

/// `DELETE /api/rooms/{room}/members/{username}` → `204`; takes effect at once.
#[utoipa::path(
    delete, path = "/api/rooms/{room}/members/{username}", tag = "rooms", security(("session" = [])),
    params(("room" = String, Path, description = "The room", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$"), ("username" = String, Path, description = "The member", pattern = "^[A-Za-z0-9_]{3,32}$")),
    responses(
        (status = 204, description = "Removed; in a private room its streams left the room and got `removed`; `member` pushed to the room"),
        (status = 403, description = "`forbidden`: not allowed to remove that member"),
        (status = 404, description = "`unknown_room`, `unknown_user`"),
        (status = 429, description = "`rate_limited`: too many removals by this user; see `Retry-After`"),
    )
)]
pub async fn remove(
    state: web::Data<AppState>,
    room: VisibleRoom,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let Some(record) = &room.view.record else {
        return Err(not_created());
    };
    if record.visibility == Visibility::Private {
        // Each such removal reaches every node of a cluster.
        state.limits.removal(room.caller.user.id)?;
    }
    let user = target(&state, &path.1).await?;
    let Some(current) = state.db.member_role(room.name(), user.id).await? else {
        return Err(ApiError::not_found(
            ErrorCode::UnknownUser,
            "that user is not a member of this room",
        ));
    };
    let itself = user.id == room.caller.user.id;
    if !room.view.may_remove(current, itself) {
        return Err(ApiError::Forbidden(
            "owners and moderators remove members; only the owner removes moderators; \
             nobody removes the owner",
        ));
    }
    state.db.remove_member(room.name(), user.id).await?;
    // Stored first, then the streams: a subscribe racing this sees the row gone either
    // before its join or in its check after the join.
    let by = UserRef::from(&room.caller.user);
    let private = record.visibility == Visibility::Private;
    if private {
        state
            .cluster
            .remove_member(room.name(), user.id, Some(&by))
            .await;
    }
    // The others' member lists follow. In a private room the removed user's streams got
    // `removed` instead; in a public one they keep the room and get `member` like the rest.
    let change = MemberChange {
        room: room.name().clone(),
        user: UserRef::from(&user),
        role: None,
        by: Some(by),
    };
    state.cluster.announce_member(&change, !private).await;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /api/rooms/{room}/messages/{id}` → `204`: the message goes, a `message_deleted`
/// event takes the next id.
#[utoipa::path(
    delete, path = "/api/rooms/{room}/messages/{id}", tag = "rooms",
    security(("session" = []), ("admin_token" = [])),
    params(("room" = String, Path, description = "The room", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$"), ("id" = String, Path, description = "The message id")),
    responses(
        (status = 204, description = "Deleted; `message_deleted` stored and sent"),
        (status = 403, description = "`forbidden`: not its author, a moderator or an admin"),
        (status = 404, description = "`unknown_room`, `unknown_message`"),
    )
)]
pub async fn delete_message(
    state: web::Data<AppState>,
    actor: RoomActor,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = path.1.parse().map_err(|_| ApiError::unknown_message())?;
    let Some(author) = state.db.message_author(&actor.view.name, id).await? else {
        return Err(ApiError::unknown_message());
    };
    let own = actor.user.as_ref().is_some_and(|u| author == Some(u.id));
    if !(own || actor.view.moderates() || actor.view.admin) {
        return Err(ApiError::Forbidden(
            "only its author, the room's owner and moderators, and admins may delete a message",
        ));
    }
    let by = actor.user.as_ref().map(UserRef::from);
    super::answered_here(state.writer.delete(actor.view.name, by, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}
