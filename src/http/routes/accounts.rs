//! `/api/register`, `/api/login`, `/api/logout`, `/api/me` (and deleting it).

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::{
    conversation::Conversation,
    domain::User,
    http::auth::{self, CurrentUser},
    http::error::ApiError,
    http::state::AppState,
};

use super::{json::Json, replies::UserReply};

/// Body of register and login.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

/// `POST /api/register` → `201 {"user"}` and a logged-in session.
#[utoipa::path(
    post, path = "/api/register", tag = "accounts", request_body = Credentials,
    responses(
        (status = 201, body = UserReply, description = "Registered and logged in; sets the session cookie"),
        (status = 409, description = "`username_taken`"),
        (status = 429, description = "`rate_limited`: too many attempts from this address; see `Retry-After`"),
        (status = 503, description = "`unavailable`: password hashing is saturated; see `Retry-After`"),
    )
)]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    body: Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { username, password } = body.into_inner();
    let user = auth::register(&state, &req, &username, password).await?;
    auth::start_session(&session, &user)?;
    Ok(HttpResponse::Created().json(UserReply { user: &user }))
}

/// `POST /api/login` → `200 {"user"}`; `401 invalid_credentials`; `429` while the per-IP
/// limit or the username's backoff holds; `503` when password hashing is saturated.
#[utoipa::path(
    post, path = "/api/login", tag = "accounts", request_body = Credentials,
    responses(
        (status = 200, body = UserReply, description = "Logged in; sets the session cookie"),
        (status = 401, description = "`invalid_credentials`, the same for an unknown user and a wrong password"),
        (status = 429, description = "`rate_limited`: too many attempts from this address or for this username; see `Retry-After`"),
        (status = 503, description = "`unavailable`: password hashing is saturated; see `Retry-After`"),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    body: Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { username, password } = body.into_inner();
    let user = auth::login(&state, &req, &username, password).await?;
    auth::start_session(&session, &user)?;
    Ok(HttpResponse::Ok().json(UserReply { user: &user }))
}

/// `POST /api/logout` → `204`; the session is deleted and its streams closed.
#[utoipa::path(
    post, path = "/api/logout", tag = "accounts", security(("session" = [])),
    responses((status = 204, description = "Session purged; its streams closed"))
)]
pub async fn logout(
    state: web::Data<AppState>,
    _user: CurrentUser,
    session: Session,
) -> HttpResponse {
    if let Some(sid) = auth::end_session(&session) {
        state.cluster.close_session(sid).await;
    }
    HttpResponse::NoContent().finish()
}

/// `GET /api/me` → `200 {"user"}`.
#[utoipa::path(
    get, path = "/api/me", tag = "accounts", security(("session" = [])),
    responses((status = 200, body = UserReply, description = "The logged-in user"))
)]
pub async fn me(current: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(UserReply {
        user: &current.user,
    })
}

/// Body of `DELETE /api/me`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    password: String,
}

/// `DELETE /api/me` `{"password"}` → `204`: the account goes (see [`delete_account`]);
/// `401 invalid_credentials` for a wrong password.
#[utoipa::path(
    delete, path = "/api/me", tag = "accounts", security(("session" = [])), request_body = DeleteAccount,
    responses(
        (status = 204, description = "Deleted: sessions, tokens, memberships and reactions gone, streams closed; messages stay with `username: null`"),
        (status = 401, description = "`invalid_credentials`: not the account's password (or not logged in: `unauthorized`)"),
        (status = 429, description = "`rate_limited`: too many attempts from this address; see `Retry-After`"),
        (status = 503, description = "`unavailable`: password hashing is saturated, or the message writer is not storing"),
    )
)]
pub async fn delete_me(
    state: web::Data<AppState>,
    req: HttpRequest,
    current: CurrentUser,
    session: Session,
    body: Json<DeleteAccount>,
) -> Result<HttpResponse, ApiError> {
    let DeleteAccount { password } = body.into_inner();
    auth::confirm_password(&state, &req, &current.user, password).await?;
    delete_account(&state, &current.user).await?;
    session.purge();
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes `user`'s account (its reactions taken back, then its row and all that hangs on
/// it) and closes its streams on every node; false when there was no such account.
pub(super) async fn delete_account(state: &AppState, user: &User) -> Result<bool, ApiError> {
    let deleted = Conversation::new(&state.db, &state.writer)
        .delete_account(user)
        .await?;
    state.cluster.close_user(user.id).await;
    Ok(deleted)
}
