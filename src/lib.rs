//! roomcast: a multi-room chat service streaming to browsers over Server-Sent Events.
//!
//! Layers, each using only those below it:
//!
//! 1. [`domain`] — validated names and ids, users, stored events and the contract's JSON
//!    shapes. Knows no HTTP, SQL or SSE.
//! 2. [`db`] (SQLite or PostgreSQL: accounts, sessions, the message log, the cluster's
//!    node rows) and [`hub`] (connections, rooms, fan-out, the resume protocol; SSE bytes
//!    are made only in [`hub::frame`]). Neither knows the other.
//! 3. [`writer`] (group commit: a post, deletion, edit or reaction is on disk before anyone
//!    gets it), [`conversation`] (what a post, edit or reaction reads before it goes to the
//!    writer: the author, the users a body mentions), [`broker`] (committed events to the
//!    hub; replays from the log to the hub through [`hub::History`]), and [`cluster`]
//!    (several nodes on one PostgreSQL database: a tailer per node, the `LISTEN`/`NOTIFY`
//!    bus, relays to the node holding a stream).
//! 4. HTTP: [`state`], [`auth`], [`error`], [`ratelimit`], `routes` (thin handlers: parse,
//!    call one thing, map errors), [`telemetry`], `web_security`, and [`stream_writer`]
//!    (an SSE stream's socket once actix has sent the response head).
//! 5. [`startup`] wires it all from [`config::Settings`]; `main.rs` is just the CLI.
//!
//! How a message travels: `POST /api/rooms/{room}/messages` → [`writer::Writer::post`] →
//! one transaction for everything queued → [`broker::Broker::publish`] in id order →
//! [`hub::Hub::publish`] encodes it once and queues the same bytes to every subscriber →
//! each connection's [`hub::ConnectionStream`] is written to its socket by a
//! [`stream_writer::StreamWriter`]. On a
//! cluster the broker only wakes the node's tailer, which reads the log in id order and
//! feeds the hub; every other node's tailer does the same on the commit's notification.

pub mod broker;
pub mod cluster;
pub mod config;
pub mod conversation;
pub mod db;
pub mod domain;
pub mod http;
pub mod hub;
pub mod password;
pub mod startup;
pub mod wake;
pub mod writer;

pub use http::state::AppState;
pub use startup::Application;
