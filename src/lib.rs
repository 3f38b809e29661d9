//! roomcast: a multi-room chat service streaming to browsers over Server-Sent Events.
//!
//! Layers, each using only those below it (the folders of `src/` follow them):
//!
//! 1. [`domain`] — validated names and ids, users, stored events and their JSON shapes.
//!    Knows no HTTP, SQL or SSE.
//! 2. [`db`] (SQLite or PostgreSQL: accounts, sessions, the message log with its search
//!    index, room lists and read markers, retention sweeps, the cluster's node rows; [`db`]'s
//!    `sqlite` module sets up every SQLite connection) and [`hub`]
//!    (connections, rooms, fan-out, the resume protocol; SSE bytes are made only in
//!    [`hub::frame`]). Neither knows the other.
//! 3. [`writer`] (group commit: a post, deletion, edit or reaction is on disk before anyone
//!    gets it), [`conversation`] (what a post, edit or reaction reads before it goes to the
//!    writer: the author, the users a body mentions), [`broker`] (committed events to the
//!    hub; replays from the log through [`hub::History`]) and
//!    [`cluster`] (the service as one: [`cluster::Alone`] for a lone node,
//!    [`cluster::Member`] for a node of several on one PostgreSQL database, with a tailer,
//!    the `LISTEN`/`NOTIFY` bus and relays to the node holding a stream; what nodes say to
//!    each other is in one file, `cluster/wire.rs`).
//! 4. [`http`] — everything that knows actix-web: state, errors, auth, rate limits, the
//!    thin handlers and their typed replies, telemetry, and the stream writer that owns an
//!    SSE stream's socket once the response head is sent.
//! 5. [`startup`] wires it all from [`config::Settings`]; `main.rs` is just the CLI.
//!
//! Beside the writer, [`webhooks`] reads the stored log after each webhook's cursor and
//! posts the events it takes, signed; one node of a cluster delivers each webhook.
//!
//! Plumbing any layer may use, which uses none of them: [`config`], [`wake`] (wake-ups
//! batched per worker thread), [`password`] (the bounded argon2id pool) and [`tls`] (the
//! rustls provider for outgoing HTTPS).
//!
//! How a message travels: `POST /api/rooms/{room}/messages` → [`writer::Writer::post`] →
//! one transaction for everything queued → [`broker::Broker::publish`] in id order →
//! [`hub::Hub::publish`] encodes it once and queues the same bytes to every subscriber →
//! each connection's [`hub::ConnectionStream`] is written to its socket by a
//! [`http::stream_writer::StreamWriter`]. On a cluster the broker only wakes the node's
//! tailer, which reads the log in id order and feeds the hub; every other node's tailer
//! does the same on the commit's notification.

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
pub mod tls;
pub mod wake;
pub mod webhooks;
pub mod writer;

pub use http::state::AppState;
pub use startup::Application;
