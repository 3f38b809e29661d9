//! roomcast: a multi-room chat service streaming to browsers over Server-Sent Events.
//!
//! How a message travels, and where each step lives:
//!
//! 1. `routes` — thin handlers parse the request into validated types ([`domain`]) and turn
//!    failures into the contract's JSON ([`error`]). Who is asking comes from [`auth`].
//! 2. [`db::writer`] — every post joins a queue; one task commits queued posts in a single
//!    transaction (group commit), then hands each to the [`broker`] in id order.
//! 3. [`broker`] — local now; a cross-node broker would deliver to every node's hub.
//! 4. [`hub`] — connections and rooms. An event is encoded once into an SSE frame and the
//!    same bytes are queued to every subscriber; each connection's [`hub::ConnectionStream`]
//!    is the body of its `GET /api/events` response.
//!
//! [`Application::build`] wires it all from [`config::Settings`]; `main.rs` is just the CLI.

pub mod auth;
pub mod broker;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod hub;
pub mod ratelimit;
mod routes;
pub mod startup;
pub mod telemetry;
pub mod transport;
mod web_security;

pub use startup::{AppState, Application};
