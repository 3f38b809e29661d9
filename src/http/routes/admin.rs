//! Admin: broadcast, stats, disconnect a user.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::{
    db::AppliedBy,
    domain::{MessageBody, UserRef},
    http::auth::Admin,
    http::error::{ApiError, ErrorCode},
    http::state::AppState,
};

use super::{
    json::Json,
    replies::{BroadcastReply, ClosedReply, StatsReply},
};

/// Body of `POST /api/admin/broadcast`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBroadcast {
    body: String,
}

/// `POST /api/admin/broadcast`: stored, then sent to every open connection.
#[utoipa::path(
    post, path = "/api/admin/broadcast", tag = "admin", security(("session" = []), ("admin_token" = [])), request_body = NewBroadcast,
    responses(
        (status = 201, body = BroadcastReply, description = "Stored, then sent to every open connection"),
        (status = 403, description = "`forbidden`: logged in but not an admin"),
        (status = 503, description = "`unavailable`: the message writer is not storing"),
    )
)]
pub async fn broadcast(
    state: web::Data<AppState>,
    admin: Admin,
    body: Json<NewBroadcast>,
) -> Result<HttpResponse, ApiError> {
    let body = MessageBody::parse(&body.body, state.settings.limits.message_chars)?;
    let author = admin.user.as_ref().map(UserRef::from);
    let stored = super::answered_here(state.writer.post(None, author, body)).await?;
    Ok(HttpResponse::Created().json(BroadcastReply {
        broadcast: stored.broadcast_json(),
    }))
}

/// `GET /api/admin/stats`: live figures.
#[utoipa::path(
    get, path = "/api/admin/stats", tag = "admin", security(("session" = []), ("admin_token" = [])),
    responses(
        (status = 200, body = StatsReply, description = "Live figures"),
        (status = 403, description = "`forbidden`: logged in but not an admin"),
    )
)]
pub async fn stats(state: web::Data<AppState>, _: Admin) -> Result<HttpResponse, ApiError> {
    let hub = state.cluster.stats().await;
    let stored = state.db.count_messages().await?;
    Ok(HttpResponse::Ok().json(StatsReply {
        connections: hub.connections,
        users_online: hub.users_online,
        rooms: hub.rooms,
        subscriptions: hub.subscriptions,
        messages_stored: stored,
        events_delivered: hub.events_delivered,
        slow_disconnects: hub.slow_disconnects,
    }))
}

/// `POST /api/admin/users/{username}/ban` → `{"closed": n}`: its streams close, its
/// sessions end, its logins get `403 account_banned`.
#[utoipa::path(
    post, path = "/api/admin/users/{username}/ban", tag = "admin", security(("session" = []), ("admin_token" = [])),
    params(("username" = String, Path, description = "Whom to ban", pattern = "^[A-Za-z0-9_]{3,32}$")),
    responses(
        (status = 200, body = ClosedReply, description = "Banned; streams closed"),
        (status = 403, description = "`forbidden`: logged in but not an admin"),
        (status = 404, description = "`unknown_user`"),
    )
)]
pub async fn ban(
    state: web::Data<AppState>,
    _: Admin,
    username: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some(user) = state
        .db
        .set_banned(&username, true, AppliedBy::Caller)
        .await?
    else {
        return Err(ApiError::not_found(ErrorCode::UnknownUser, "no such user"));
    };
    let closed = state.cluster.close_user(user.id).await;
    Ok(HttpResponse::Ok().json(ClosedReply { closed }))
}

/// `DELETE /api/admin/users/{username}/ban` → `204`: may log in again.
#[utoipa::path(
    delete, path = "/api/admin/users/{username}/ban", tag = "admin", security(("session" = []), ("admin_token" = [])),
    params(("username" = String, Path, description = "Whom to unban", pattern = "^[A-Za-z0-9_]{3,32}$")),
    responses(
        (status = 204, description = "May log in again"),
        (status = 403, description = "`forbidden`: logged in but not an admin"),
        (status = 404, description = "`unknown_user`"),
    )
)]
pub async fn unban(
    state: web::Data<AppState>,
    _: Admin,
    username: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match state
        .db
        .set_banned(&username, false, AppliedBy::Caller)
        .await?
    {
        Some(_) => Ok(HttpResponse::NoContent().finish()),
        None => Err(ApiError::not_found(ErrorCode::UnknownUser, "no such user")),
    }
}

/// `DELETE /api/admin/users/{username}` → `204`: the account goes, as with `DELETE
/// /api/me` but without its password.
#[utoipa::path(
    delete, path = "/api/admin/users/{username}", tag = "admin", security(("session" = []), ("admin_token" = [])),
    params(("username" = String, Path, description = "Whose account to delete", pattern = "^[A-Za-z0-9_]{3,32}$")),
    responses(
        (status = 204, description = "Deleted; its streams closed, its messages kept with `username: null`"),
        (status = 403, description = "`forbidden`: logged in but not an admin"),
        (status = 404, description = "`unknown_user`"),
        (status = 503, description = "`unavailable`: the message writer is not storing"),
    )
)]
pub async fn delete_user(
    state: web::Data<AppState>,
    _: Admin,
    username: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let unknown = || ApiError::not_found(ErrorCode::UnknownUser, "no such user");
    let Some((user, _)) = state.db.user_for_login(&username).await? else {
        return Err(unknown());
    };
    match super::accounts::delete_account(&state, &user).await? {
        true => Ok(HttpResponse::NoContent().finish()),
        false => Err(unknown()),
    }
}

/// `POST /api/admin/users/{username}/disconnect` → `{"closed": n}`.
#[utoipa::path(
    post, path = "/api/admin/users/{username}/disconnect", tag = "admin", security(("session" = []), ("admin_token" = [])),
    params(("username" = String, Path, description = "Whose streams to close", pattern = "^[A-Za-z0-9_]{3,32}$")),
    responses(
        (status = 200, body = ClosedReply, description = "Streams closed"),
        (status = 403, description = "`forbidden`: logged in but not an admin"),
        (status = 404, description = "`unknown_user`"),
    )
)]
pub async fn disconnect(
    state: web::Data<AppState>,
    _: Admin,
    username: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some((user, _)) = state.db.user_for_login(&username).await? else {
        return Err(ApiError::not_found(ErrorCode::UnknownUser, "no such user"));
    };
    let closed = state.cluster.close_user(user.id).await;
    Ok(HttpResponse::Ok().json(ClosedReply { closed }))
}
