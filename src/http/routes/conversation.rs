//! Editing a message and reacting to one. (Replies and mentions come with a post, in
//! `rooms::post_message`.)

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{
    access::VisibleRoom,
    answered_here,
    json::Json,
    replies::{MessageReply, ReactionsReply},
};
use crate::{
    conversation::Conversation,
    domain::{Emoji, MessageBody, ReactionAction},
    http::error::ApiError,
    http::state::AppState,
};

/// The `{id}` of a path: anything but a whole number names no message.
fn message_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::unknown_message())
}

/// Body of `PATCH /api/rooms/{room}/messages/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditedMessage {
    body: String,
}

/// `PATCH /api/rooms/{room}/messages/{id}` `{"body"}` → `200 {"message"}`: its author
/// replaces the body; `message_edited` is stored and sent.
#[utoipa::path(
    patch, path = "/api/rooms/{room}/messages/{id}", tag = "rooms", security(("session" = [])),
    params(("room" = String, Path, description = "The room", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$"), ("id" = String, Path, description = "The message id")),
    request_body = EditedMessage,
    responses(
        (status = 200, body = MessageReply, description = "The message as it is now; `message_edited` stored and sent"),
        (status = 403, description = "`forbidden`: only its author may edit a message"),
        (status = 404, description = "`unknown_room`, `unknown_message`"),
        (status = 429, description = "`rate_limited`: see `Retry-After`"),
        (status = 503, description = "`unavailable`: the message writer is not storing"),
    )
)]
pub async fn edit(
    state: web::Data<AppState>,
    room: VisibleRoom,
    path: web::Path<(String, String)>,
    body: Json<EditedMessage>,
) -> Result<HttpResponse, ApiError> {
    let id = message_id(&path.1)?;
    let body = MessageBody::parse(&body.body, state.settings.limits.message_chars)?;
    let editor = &room.caller.user;
    state.limits.post(editor.id)?;
    let conversation = Conversation::new(&state.db, &state.writer);
    let edited = answered_here(conversation.edit(&room.view, editor, id, body)).await?;
    let message = edited
        .message_json()
        .ok_or_else(|| anyhow::anyhow!("message {id} read back as no message"))?;
    Ok(HttpResponse::Ok().json(MessageReply { message }))
}

/// `PUT /api/rooms/{room}/messages/{id}/reactions/{emoji}` → `200 {"message_id","reactions"}`:
/// adds the caller's reaction (nothing changes, and nothing is sent, when it has it).
#[utoipa::path(
    put, path = "/api/rooms/{room}/messages/{id}/reactions/{emoji}", tag = "rooms", security(("session" = [])),
    params(("room" = String, Path, description = "The room", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$"), ("id" = String, Path, description = "The message id"), ("emoji" = String, Path, description = "The reaction, percent-encoded")),
    responses(
        (status = 200, body = ReactionsReply, description = "The message's reactions now; `reaction` stored and sent if anything changed"),
        (status = 400, description = "`invalid_reaction`"),
        (status = 404, description = "`unknown_room`, `unknown_message`"),
        (status = 409, description = "`too_many_reactions`: the message holds 20 distinct ones"),
        (status = 429, description = "`rate_limited`: see `Retry-After`"),
        (status = 503, description = "`unavailable`: the message writer is not storing"),
    )
)]
pub async fn react(
    state: web::Data<AppState>,
    room: VisibleRoom,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    reaction(state, room, path, ReactionAction::Add).await
}

/// `DELETE /api/rooms/{room}/messages/{id}/reactions/{emoji}` →
/// `200 {"message_id","reactions"}`: takes the caller's reaction back (nothing changes, and
/// nothing is sent, when it has none).
#[utoipa::path(
    delete, path = "/api/rooms/{room}/messages/{id}/reactions/{emoji}", tag = "rooms", security(("session" = [])),
    params(("room" = String, Path, description = "The room", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$"), ("id" = String, Path, description = "The message id"), ("emoji" = String, Path, description = "The reaction, percent-encoded")),
    responses(
        (status = 200, body = ReactionsReply, description = "The message's reactions now; `reaction` stored and sent if anything changed"),
        (status = 400, description = "`invalid_reaction`"),
        (status = 404, description = "`unknown_room`, `unknown_message`"),
        (status = 429, description = "`rate_limited`: see `Retry-After`"),
        (status = 503, description = "`unavailable`: the message writer is not storing"),
    )
)]
pub async fn unreact(
    state: web::Data<AppState>,
    room: VisibleRoom,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    reaction(state, room, path, ReactionAction::Remove).await
}

async fn reaction(
    state: web::Data<AppState>,
    room: VisibleRoom,
    path: web::Path<(String, String, String)>,
    action: ReactionAction,
) -> Result<HttpResponse, ApiError> {
    let user = &room.caller.user;
    // Every reaction request counts, even one that turns out to change nothing.
    state.limits.post(user.id)?;
    let id = message_id(&path.1)?;
    let emoji = Emoji::parse(&path.2)?;
    let conversation = Conversation::new(&state.db, &state.writer);
    let reactions = answered_here(conversation.react(&room.view, user, id, emoji, action)).await?;
    Ok(HttpResponse::Ok().json(ReactionsReply {
        message_id: id,
        reactions: &reactions,
    }))
}
