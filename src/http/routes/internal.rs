//! `POST /internal/cluster`: what one node of a cluster asks of another (see
//! [`crate::cluster`]). Only the nodes' bearer token gets in; nodes alone answer 404.
//! Requests relayed here were checked by the node that received them (the session, the
//! body's shape); this node checks again what only it can: that it holds the stream, and
//! the caller's access to the rooms.

use actix_web::{HttpRequest, HttpResponse, http::header, web};

use super::events;
use crate::{
    cluster::{Closed, Op},
    http::error::{ApiError, ErrorCode},
    http::state::AppState,
    hub::{SubscribeRequest, UnsubscribeRequest},
};

/// Answers another node's [`Op`].
pub async fn call(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|t| state.cluster.token_matches(t)) {
        return Err(ApiError::not_found(ErrorCode::NotFound, "no such route"));
    }
    let op: Op = serde_json::from_slice(&body).map_err(|e| {
        ApiError::validation(ErrorCode::InvalidJson, format!("not a cluster call: {e}"))
    })?;
    let answer = match op {
        Op::Subscribe { user, body } => {
            events::subscribe_here(&state, &user, SubscribeRequest::try_from(body)?).await?
        }
        Op::Unsubscribe { user, body } => {
            events::unsubscribe_here(&state, &user, UnsubscribeRequest::try_from(body)?)?
        }
        Op::CloseUser { user } => closed(state.hub.close_user(user)),
        Op::CloseSession { session } => closed(state.hub.close_session(session)),
        Op::RemoveMember { room, user, by } => {
            closed(state.hub.remove_member(&room, user, by.as_ref()))
        }
        Op::Member { change, to_user } => closed(state.hub.announce_member(&change, to_user)),
        Op::Read { user, marker } => closed(state.hub.announce_read(user, &marker)),
        Op::Stats => HttpResponse::Ok().json(state.cluster.node_stats()),
        Op::Rooms => HttpResponse::Ok().json(state.hub.rooms()),
        Op::Presence => HttpResponse::Ok().json(state.hub.local_presence()),
    };
    Ok(answer)
}

fn closed(n: usize) -> HttpResponse {
    HttpResponse::Ok().json(Closed { closed: n })
}
