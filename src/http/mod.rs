//! The HTTP layer: everything that knows actix-web. Handlers parse a request into the
//! domain's validated types, call one thing below, and map its error to the contract's shape.
//!
//! * [`state`] — what every handler can reach.
//! * [`error`] — [`error::ApiError`] and the closed list of error codes.
//! * [`auth`] — register, login, sessions, access tokens, the `CurrentUser` / `Admin`
//!   extractors; [`token_uses`] — how often a token's use is recorded.
//! * `routes` — the handlers, and the OpenAPI document built from their typed replies.
//! * [`ratelimit`], `web_security`, [`transport`] — rate limits, browser-facing safety,
//!   socket timeouts and caps.
//! * [`telemetry`] — logs and metrics.
//! * [`stream_writer`] — an SSE stream's socket once actix has sent the response head.

pub mod auth;
pub mod error;
pub mod ratelimit;
pub(crate) mod routes;
pub mod state;
pub mod stream_writer;
pub mod telemetry;
pub mod token_uses;
pub mod transport;
pub(crate) mod web_security;
