//! `/api/admin/webhooks`: webhooks, made, listed and deleted by admins.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    db::{CreateWebhookError, WebhookRecord},
    domain::{HookFilter, WebhookUrl},
    http::auth::Admin,
    http::error::{ApiError, ErrorCode},
    http::state::AppState,
};

use super::{
    json::Json,
    replies::{NewWebhookReply, WebhookJson, WebhookReply, WebhooksReply},
};

/// Body of `POST /api/admin/webhooks`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    rooms: Option<Vec<String>>,
}

fn unknown() -> ApiError {
    ApiError::not_found(ErrorCode::UnknownWebhook, "no such webhook")
}

/// The `{id}` of the path; one that is not a UUID is no webhook.
fn webhook_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| unknown())
}

/// A webhook with its pending count, as answers show it.
async fn shown(state: &AppState, hook: &WebhookRecord) -> Result<i64, ApiError> {
    Ok(state.webhooks.pending(hook).await?)
}

/// `POST /api/admin/webhooks` → `201 {"webhook","secret"}`: the secret is shown this once.
#[utoipa::path(
    post, path = "/api/admin/webhooks", tag = "admin", security(("session" = []), ("admin_token" = [])), request_body = NewWebhook,
    responses(
        (status = 201, body = NewWebhookReply, description = "Made; delivery starts at the newest event; `secret` is shown this once"),
        (status = 403, description = "`forbidden`: logged in but not an admin"),
        (status = 409, description = "`too_many_webhooks`: `webhooks.max` exist"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    _: Admin,
    body: Json<NewWebhook>,
) -> Result<HttpResponse, ApiError> {
    let url = WebhookUrl::parse(&body.url)?;
    let filter = HookFilter::parse(&body.events, body.rooms.as_deref())?;
    let (hook, secret) = match state.webhooks.create(&url, &filter).await {
        Ok(made) => made,
        Err(CreateWebhookError::TooMany) => {
            return Err(ApiError::Conflict {
                code: ErrorCode::TooManyWebhooks,
                message: format!(
                    "at most {} webhooks may exist; delete one first",
                    state.settings.webhooks.max
                )
                .into(),
            });
        }
        Err(CreateWebhookError::Db(e)) => return Err(e.into()),
    };
    Ok(HttpResponse::Created().json(NewWebhookReply {
        webhook: WebhookJson::new(&hook, 0),
        secret: secret.expose(),
    }))
}

/// `GET /api/admin/webhooks` → `200 {"webhooks"}`.
#[utoipa::path(
    get, path = "/api/admin/webhooks", tag = "admin", security(("session" = []), ("admin_token" = [])),
    responses(
        (status = 200, body = WebhooksReply, description = "Every webhook, oldest first, with where its delivery stands"),
        (status = 403, description = "`forbidden`: logged in but not an admin"),
    )
)]
pub async fn list(state: web::Data<AppState>, _: Admin) -> Result<HttpResponse, ApiError> {
    let hooks = state.db.webhooks().await?;
    let mut pending = Vec::with_capacity(hooks.len());
    for hook in &hooks {
        pending.push(shown(&state, hook).await?);
    }
    Ok(HttpResponse::Ok().json(WebhooksReply {
        webhooks: hooks
            .iter()
            .zip(pending)
            .map(|(h, p)| WebhookJson::new(h, p))
            .collect(),
    }))
}

/// `GET /api/admin/webhooks/{id}` → `200 {"webhook"}`.
#[utoipa::path(
    get, path = "/api/admin/webhooks/{id}", tag = "admin", security(("session" = []), ("admin_token" = [])),
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, body = WebhookReply, description = "The webhook and where its delivery stands"),
        (status = 403, description = "`forbidden`: logged in but not an admin"),
        (status = 404, description = "`unknown_webhook`"),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let hook = state
        .db
        .webhook(webhook_id(&id)?)
        .await?
        .ok_or_else(unknown)?;
    let pending = shown(&state, &hook).await?;
    Ok(HttpResponse::Ok().json(WebhookReply {
        webhook: WebhookJson::new(&hook, pending),
    }))
}

/// `DELETE /api/admin/webhooks/{id}` → `204`: no more deliveries.
#[utoipa::path(
    delete, path = "/api/admin/webhooks/{id}", tag = "admin", security(("session" = []), ("admin_token" = [])),
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 204, description = "Deleted; its deliveries stop"),
        (status = 403, description = "`forbidden`: logged in but not an admin"),
        (status = 404, description = "`unknown_webhook`"),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !state.webhooks.delete(webhook_id(&id)?).await? {
        return Err(unknown());
    }
    Ok(HttpResponse::NoContent().finish())
}
