//! HTTP handlers, thin: parse the request into validated types, call the domain, map errors.

mod access;
mod accounts;
mod admin;
mod conversation;
mod events;
mod health;
mod internal;
mod json;
mod members;
mod openapi;
mod pages;
mod readstate;
mod relay;
mod replies;
mod rooms;
mod tokens;
mod webhooks;

use std::time::Duration;

use actix_web::web;

use crate::{
    http::error::{ApiError, ErrorCode},
    wake::WakeGroup,
};

/// Awaits a call to the message writer with its answer woken through this worker's
/// [`WakeGroup`]: the writer answers a whole batch from its own thread, and the answers
/// bound for one worker then cost one cross-thread wake-up, not one each.
async fn answered_here<F: Future>(call: F) -> F::Output {
    WakeGroup::this_thread(Duration::ZERO).run(call).await
}

/// Registers every route. Unknown paths answer `404 not_found`, known paths with the wrong
/// method `405 method_not_allowed`, both in the contract's JSON shape.
///
/// Resources (not bare routes) throughout, so another method answers 405 with `Allow`, not
/// 404. Within `/api`, actix tries the dynamic patterns in the order registered, each a
/// regular-expression match: the order of the groups below keeps the busiest early.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(health::healthz))
        .service(web::resource("/readyz").get(health::readyz))
        .service(web::resource("/metrics").get(health::metrics))
        .service(web::resource("/internal/cluster").post(internal::call))
        .service(
            web::scope("/api")
                .service(web::resource("/openapi.json").get(openapi::document))
                .configure(account_routes)
                .configure(stream_routes)
                .configure(room_routes)
                .configure(admin_routes),
        )
        .configure(pages::configure)
        .default_service(web::to(not_found));
}

/// Register, log in and out; the caller's own account, room list and access tokens.
fn account_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/register").post(accounts::register))
        .service(web::resource("/login").post(accounts::login))
        .service(web::resource("/logout").post(accounts::logout))
        .service(
            web::resource("/me")
                .get(accounts::me)
                .delete(accounts::delete_me),
        )
        .service(web::resource("/me/rooms").get(readstate::list))
        .service(
            web::resource("/me/rooms/{room}")
                .put(readstate::follow)
                .delete(readstate::unfollow),
        )
        .service(
            web::resource("/me/tokens")
                .get(tokens::list)
                .post(tokens::create),
        )
        .service(web::resource("/me/tokens/{id}").delete(tokens::revoke));
}

/// The stream and what it is subscribed to.
fn stream_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/events").get(events::open))
        .service(web::resource("/subscribe").post(events::subscribe))
        .service(web::resource("/unsubscribe").post(events::unsubscribe));
}

/// Rooms, their messages, members and events; search.
fn room_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/rooms")
            .get(rooms::list)
            .post(members::create),
    )
    // The busiest route first.
    .service(
        web::resource("/rooms/{room}/messages")
            .get(rooms::history)
            .post(rooms::post_message),
    )
    .service(web::resource("/rooms/{room}/read").put(readstate::read))
    .service(web::resource("/search").get(readstate::search))
    .service(web::resource("/rooms/{room}/members").get(members::list))
    .service(
        web::resource("/rooms/{room}/members/{username}")
            .put(members::set)
            .delete(members::remove),
    )
    .service(
        web::resource("/rooms/{room}/messages/{id}")
            .delete(members::delete_message)
            .patch(conversation::edit),
    )
    .service(
        web::resource("/rooms/{room}/messages/{id}/reactions/{emoji}")
            .put(conversation::react)
            .delete(conversation::unreact),
    )
    .service(web::resource("/rooms/{room}/events").post(rooms::post_event))
    .service(web::resource("/rooms/{room}/presence").get(rooms::presence));
}

/// What admins do: broadcast, stats, webhooks, bans, disconnects, deleting accounts.
fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/broadcast").post(admin::broadcast))
        .service(web::resource("/admin/stats").get(admin::stats))
        .service(
            web::resource("/admin/webhooks")
                .get(webhooks::list)
                .post(webhooks::create),
        )
        .service(
            web::resource("/admin/webhooks/{id}")
                .get(webhooks::get)
                .delete(webhooks::delete),
        )
        .service(
            web::resource("/admin/users/{username}/ban")
                .post(admin::ban)
                .delete(admin::unban),
        )
        .service(web::resource("/admin/users/{username}/disconnect").post(admin::disconnect))
        .service(web::resource("/admin/users/{username}").delete(admin::delete_user));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(ErrorCode::NotFound, "no such route"))
}
