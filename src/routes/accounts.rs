//! `/api/register`, `/api/login`, `/api/logout`, `/api/me`.

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::{
    auth::{self, CurrentUser},
    error::ApiError,
    state::AppState,
};

use super::json::Json;

/// Body of register and login.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

/// `POST /api/register` → `201 {"user"}` and a logged-in session.
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    body: Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { username, password } = body.into_inner();
    let user = auth::register(&state, &req, &username, password).await?;
    auth::start_session(&session, &user)?;
    Ok(HttpResponse::Created().json(json!({ "user": user })))
}

/// `POST /api/login` → `200 {"user"}`; `401 invalid_credentials`; `429` while the per-IP
/// limit or the username's backoff holds; `503` when password hashing is saturated.
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    body: Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { username, password } = body.into_inner();
    let user = auth::login(&state, &req, &username, password).await?;
    auth::start_session(&session, &user)?;
    Ok(HttpResponse::Ok().json(json!({ "user": user })))
}

/// `POST /api/logout` → `204`; the session is deleted and its streams closed.
pub async fn logout(
    state: web::Data<AppState>,
    _user: CurrentUser,
    session: Session,
) -> HttpResponse {
    if let Some(sid) = auth::end_session(&session) {
        state.hub.close_session(sid);
    }
    HttpResponse::NoContent().finish()
}

/// `GET /api/me` → `200 {"user"}`.
pub async fn me(current: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "user": current.user }))
}
