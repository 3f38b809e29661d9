//! The stream (`GET /api/events`) and the two-step subscribe/unsubscribe.

use actix_web::{HttpRequest, HttpResponse, http::header, web};

use super::json::Json;
use crate::{
    auth::CurrentUser,
    domain::{SubscribeBody, UnsubscribeBody, UserRef, parse_last_event_id},
    error::ApiError,
    hub::{SubscribeRequest, UnsubscribeRequest},
    state::AppState,
};

/// `GET /api/events`: opens the stream; its first event carries the connection id.
pub async fn open(
    state: web::Data<AppState>,
    current: CurrentUser,
    req: HttpRequest,
) -> HttpResponse {
    // A malformed Last-Event-ID is ignored, as a browser's would only ever be one we sent.
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_last_event_id);
    let stream = state.hub.connect(
        UserRef::from(&current.user),
        current.session_id,
        last_event_id,
    );
    tracing::debug!(connection = %stream.connection().id, "stream opened");
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}

/// `POST /api/subscribe`: joins rooms, sets the event filter, replays what was missed.
pub async fn subscribe(
    state: web::Data<AppState>,
    current: CurrentUser,
    body: Json<SubscribeBody>,
) -> Result<HttpResponse, ApiError> {
    let request = SubscribeRequest::try_from(body.into_inner())?;
    let subscription = state
        .hub
        .subscribe(current.user.id, request, &state.db)
        .await?;
    Ok(HttpResponse::Ok().json(subscription))
}

/// `POST /api/unsubscribe`: leaves rooms.
pub async fn unsubscribe(
    state: web::Data<AppState>,
    current: CurrentUser,
    body: Json<UnsubscribeBody>,
) -> Result<HttpResponse, ApiError> {
    let request = UnsubscribeRequest::try_from(body.into_inner())?;
    let left = state.hub.unsubscribe(current.user.id, request)?;
    Ok(HttpResponse::Ok().json(left))
}
