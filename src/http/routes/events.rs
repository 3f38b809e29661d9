//! The stream (`GET /api/events`) and the two-step subscribe/unsubscribe.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::header, web};

use super::{access, json::Json, relay};
use crate::{
    cluster::Op,
    domain::{StreamQuery, SubscribeBody, UnsubscribeBody, User, UserRef, parse_last_event_id},
    http::auth::CurrentUser,
    http::error::ApiError,
    http::state::AppState,
    http::stream_writer,
    hub::{SubscribeRequest, UnsubscribeRequest},
    wake::WakeGroup,
};

/// `GET /api/events`: opens the stream; its first event carries the connection id. With
/// `rooms=` it also subscribes it (the one-step form), refusing the whole request if the
/// subscribe fails.
#[utoipa::path(
    get, path = "/api/events", tag = "stream", security(("session" = [])),
    params(
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume point for the next subscribe"),
        ("rooms" = Option<String>, Query, description = "One step: subscribe these rooms (comma-separated) as the stream opens"),
        ("events" = Option<String>, Query, description = "One step: event names (comma-separated); omitted means all"),
        ("history" = Option<u32>, Query, description = "One step: the last N messages of each room (0..=200)"),
        ("last_event_id" = Option<i64>, Query, description = "One step: resume after this id (wins over the header)"),
    ),
    responses(
        (status = 200, body = String, content_type = "text/event-stream",
        description = "Never ends. First `event: connected` with `{\"connection_id\",\"heartbeat_secs\"}` (and \
                       `subscribed` in the one-step form), then `message`, `presence`, custom, `broadcast` \
                       events and `: ping` heartbeats"),
        (status = 400, description = "One step: the subscribe's parameters, as `POST /api/subscribe` answers them \
                       (`invalid_rooms` also for `events`, `history` or `last_event_id` without `rooms`)"),
        (status = 404, description = "One step: `unknown_room`, a private room the caller may not see"),
        (status = 429, description = "`too_many_streams`: the user or session holds its most streams; \
                       one step: `rate_limited`, as for subscribes"),
        (status = 503, description = "`unavailable`: the server holds its most streams"),
    )
)]
pub async fn open(
    state: web::Data<AppState>,
    current: CurrentUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let one_step = StreamQuery::parse(req.query_string())?;
    if one_step.is_some() {
        state.limits.subscribe(current.user.id)?;
    }
    // A malformed Last-Event-ID is ignored, as a browser's would only ever be one we sent.
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_last_event_id);
    let mut stream = state.hub.connect(
        UserRef::from(&current.user),
        current.session_id,
        last_event_id,
    )?;
    // A ban (or the token's deletion) committed while this stream was being opened closed
    // the streams before this one existed; dropping it here closes it too.
    if !current.still_allowed(&state).await? {
        return Err(ApiError::Unauthorized);
    }
    if let Some(query) = one_step {
        // Parsed as a body would be: the same rules, the same errors. Dropping the stream on
        // an error closes the connection it made.
        let body = query.into_body(stream.connection().id.to_string());
        let request = SubscribeRequest::try_from(body)?;
        state.cluster.catch_up().await;
        let subscription = access::subscribe(&state, &current.user, request).await?;
        stream.subscribed(&subscription);
    }
    tracing::debug!(connection = %stream.connection().id, "stream opened");
    let write_delay = Duration::from_millis(state.settings.sse.write_delay_ms);
    let stream = stream.wake_through(WakeGroup::this_thread(write_delay));
    let (body, handoff) = stream_writer::body_and_handoff(stream, &state.writers);
    let mut res = HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body);
    res.extensions_mut().insert(handoff);
    Ok(res)
}

/// `POST /api/subscribe`: joins rooms, sets the event filter, replays what was missed.
#[utoipa::path(
    post, path = "/api/subscribe", tag = "stream", security(("session" = [])), request_body = SubscribeBody,
    responses(
        (status = 200, body = crate::hub::Subscription, description = "Rooms held now, the filter, what was replayed"),
        (status = 404, description = "`unknown_connection`: no such stream, or not the caller's"),
        (status = 429, description = "`rate_limited`: too many subscribes and unsubscribes by this user; \
                       `replay_backlog`: the replay would not fit beside the stream's unwritten replays \
                       (nothing joined); see `Retry-After`"),
        (status = 503, description = "`unavailable`: the history could not be read"),
    )
)]
pub async fn subscribe(
    state: web::Data<AppState>,
    current: CurrentUser,
    body: Json<SubscribeBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = SubscribeRequest::try_from(body.clone())?;
    state.limits.subscribe(current.user.id)?;
    let id = request.connection();
    let user = current.user;
    let relay = || Op::Subscribe {
        user: user.clone(),
        body,
    };
    let here = subscribe_here(&state, &user, request);
    relay::at_holder(&state, id, relay, here).await
}

/// The subscribe, on the node that holds the stream (asked by a client or relayed).
pub(super) async fn subscribe_here(
    state: &AppState,
    user: &User,
    request: SubscribeRequest,
) -> Result<HttpResponse, ApiError> {
    // In a cluster, the replay must hold what was committed on other nodes before this.
    state.cluster.catch_up().await;
    let subscription = access::subscribe(state, user, request).await?;
    Ok(HttpResponse::Ok().json(subscription))
}

/// `POST /api/unsubscribe`: leaves rooms.
#[utoipa::path(
    post, path = "/api/unsubscribe", tag = "stream", security(("session" = [])), request_body = UnsubscribeBody,
    responses(
        (status = 200, body = crate::hub::Unsubscription, description = "Rooms still held and the filter"),
        (status = 404, description = "`unknown_connection`: no such stream, or not the caller's"),
        (status = 429, description = "`rate_limited`: too many subscribes and unsubscribes by this user; see `Retry-After`"),
    )
)]
pub async fn unsubscribe(
    state: web::Data<AppState>,
    current: CurrentUser,
    body: Json<UnsubscribeBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = UnsubscribeRequest::try_from(body.clone())?;
    state.limits.subscribe(current.user.id)?;
    let id = request.connection();
    let user = current.user;
    let relay = || Op::Unsubscribe {
        user: user.clone(),
        body,
    };
    let here = async { unsubscribe_here(&state, &user, request) };
    relay::at_holder(&state, id, relay, here).await
}

/// The unsubscribe, on the node that holds the stream (asked by a client or relayed).
pub(super) fn unsubscribe_here(
    state: &AppState,
    user: &User,
    request: UnsubscribeRequest,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.hub.unsubscribe(user.id, request)?))
}
