//! The stream (`GET /api/events`) and the two-step subscribe/unsubscribe.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::Deserialize;
use serde_json::json;

use crate::{
    auth::CurrentUser,
    domain::{ConnectionId, EventName, RoomName, UserRef},
    error::ApiError,
    hub::{EventFilter, HubError, MAX_ROOMS_PER_CONNECTION, Subscribed},
    startup::AppState,
};

/// Most messages per room a subscribe's `history` may ask for.
const MAX_HISTORY: u32 = 200;

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
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|id| *id >= 0);
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

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::UnknownConnection => ApiError::unknown_connection(),
            HubError::TooManyRooms => ApiError::validation("too_many_rooms", e.to_string()),
        }
    }
}

fn parse_rooms(rooms: &[String]) -> Result<Vec<RoomName>, ApiError> {
    if rooms.is_empty() {
        return Err(ApiError::validation(
            "invalid_rooms",
            "name at least one room",
        ));
    }
    if rooms.len() > MAX_ROOMS_PER_CONNECTION {
        return Err(HubError::TooManyRooms.into());
    }
    rooms.iter().map(|r| RoomName::parse(r)).collect()
}

/// Body of `POST /api/subscribe`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeBody {
    connection_id: String,
    rooms: Vec<String>,
    events: Option<Vec<String>>,
    last_event_id: Option<i64>,
    history: Option<u32>,
}

/// `POST /api/subscribe`: joins rooms, sets the event filter, replays what was missed.
pub async fn subscribe(
    state: web::Data<AppState>,
    current: CurrentUser,
    body: web::Json<SubscribeBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let id = ConnectionId::parse(&body.connection_id)?;
    let rooms = parse_rooms(&body.rooms)?;
    let filter = body
        .events
        .map(|names| {
            names
                .iter()
                .map(|n| EventName::parse(n))
                .collect::<Result<Vec<_>, _>>()
                .map(EventFilter::new)
        })
        .transpose()?;
    let history = body.history.unwrap_or(0);
    if history > MAX_HISTORY {
        return Err(ApiError::validation(
            "invalid_history",
            format!("history is 0-{MAX_HISTORY} messages per room"),
        ));
    }
    if body.last_event_id.is_some_and(|id| id < 0) {
        return Err(ApiError::validation(
            "invalid_last_event_id",
            "last_event_id is a message id (0 or more)",
        ));
    }

    let wants_replay = body.last_event_id.is_some() || history > 0;
    let mut sub = state
        .hub
        .subscribe(id, current.user.id, &rooms, filter, wants_replay)?;
    let (count, complete) = match replay(&state, id, &mut sub, body.last_event_id, history).await {
        Ok(done) => done,
        Err(e) => {
            // The rooms are joined but the replay is lost: close the stream so the client
            // reconnects and resumes from its last id, rather than carry on with a gap.
            state.hub.remove(id);
            return Err(e);
        }
    };
    Ok(HttpResponse::Ok().json(json!({
        "connection_id": id,
        "rooms": sub.rooms,
        "events": sub.filter.map(|f| f.names().cloned().collect::<Vec<_>>()),
        "replay": { "count": count, "complete": complete },
    })))
}

/// Reads what the subscribe should replay and hands it to the stream; returns
/// `(count, complete)` for the answer.
async fn replay(
    state: &AppState,
    id: ConnectionId,
    sub: &mut Subscribed,
    last_event_id: Option<i64>,
    history: u32,
) -> Result<(usize, bool), ApiError> {
    let Some(replay_tx) = sub.replay.take() else {
        return Ok((0, true));
    };
    // Replays are `message` events (and broadcasts, which always pass).
    let rooms: &[RoomName] = match &sub.filter {
        Some(f) if !f.passes_messages() => &[],
        _ => &sub.joined,
    };
    let (frames, complete) = match last_event_id.or(sub.stream_last_event_id) {
        Some(from) => {
            let r = state
                .db
                .replay_since(
                    rooms,
                    from,
                    sub.watermark,
                    &sub.broadcasts_sent,
                    state.settings.history.replay_limit,
                )
                .await?;
            // The broadcasts it carries are sent from here on (from where the limit cut).
            let covered = match (r.complete, r.frames.first()) {
                (false, Some(oldest)) => oldest.id - 1,
                _ => from,
            };
            state.hub.broadcasts_replayed(id, covered);
            (r.frames, r.complete)
        }
        None => (state.db.recent(rooms, history, sub.watermark).await?, true),
    };
    let count = frames.len();
    // The stream may have closed meanwhile; then there is nobody to replay to.
    let _ = replay_tx.send(frames);
    Ok((count, complete))
}

/// Body of `POST /api/unsubscribe`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeBody {
    connection_id: String,
    rooms: Vec<String>,
}

/// `POST /api/unsubscribe`: leaves rooms.
pub async fn unsubscribe(
    state: web::Data<AppState>,
    current: CurrentUser,
    body: web::Json<UnsubscribeBody>,
) -> Result<HttpResponse, ApiError> {
    let id = ConnectionId::parse(&body.connection_id)?;
    let rooms = parse_rooms(&body.rooms)?;
    let left = state.hub.unsubscribe(id, current.user.id, &rooms)?;
    Ok(HttpResponse::Ok().json(json!({
        "connection_id": id,
        "rooms": left.rooms,
        "events": left.filter.map(|f| f.names().cloned().collect::<Vec<_>>()),
    })))
}
