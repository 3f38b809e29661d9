//! `/api/me/tokens`: personal access tokens, made and revoked with a session only.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::{
    domain::TokenName,
    http::auth::{self, SessionUser},
    http::error::ApiError,
    http::state::AppState,
};

use super::{
    json::Json,
    replies::{NewTokenReply, TokenJson, TokensReply},
};

/// Body of `POST /api/me/tokens`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
}

/// `POST /api/me/tokens` → `201 {"token","secret"}`: the secret is shown this once.
#[utoipa::path(
    post, path = "/api/me/tokens", tag = "tokens", security(("session" = [])), request_body = NewToken,
    responses(
        (status = 201, body = NewTokenReply, description = "Made; `secret` is shown this once"),
        (status = 409, description = "`too_many_tokens`: the user holds as many as it may"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    SessionUser(current): SessionUser,
    body: Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let name = TokenName::parse(&body.name)?;
    let (token, secret) = auth::create_token(&state, current.user.id, &name).await?;
    Ok(HttpResponse::Created().json(NewTokenReply {
        token: TokenJson::from(&token),
        secret: secret.expose(),
    }))
}

/// `GET /api/me/tokens` → `200 {"tokens"}`, newest first, never a secret.
#[utoipa::path(
    get, path = "/api/me/tokens", tag = "tokens", security(("session" = [])),
    responses((status = 200, body = TokensReply, description = "The caller's tokens, newest first"))
)]
pub async fn list(
    state: web::Data<AppState>,
    SessionUser(current): SessionUser,
) -> Result<HttpResponse, ApiError> {
    let tokens = state.db.tokens_of(current.user.id).await?;
    Ok(HttpResponse::Ok().json(TokensReply {
        tokens: tokens.iter().map(TokenJson::from).collect(),
    }))
}

/// `DELETE /api/me/tokens/{id}` → `204`: the token stops working and its streams close.
#[utoipa::path(
    delete, path = "/api/me/tokens/{id}", tag = "tokens", security(("session" = [])),
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked; the streams it opened are closed"),
        (status = 404, description = "`unknown_token`: not one of the caller's tokens"),
    )
)]
pub async fn revoke(
    state: web::Data<AppState>,
    SessionUser(current): SessionUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth::revoke_token(&state, current.user.id, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
