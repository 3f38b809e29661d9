//! Integration tests: the real server on a random port with its own temporary database,
//! driven over HTTP and SSE. One binary (one link step) with a module per area.

mod helpers;
mod process;
mod proxy;
mod receiver;
mod sse;

mod accounts;
mod admin;
mod backup;
mod bodies;
mod cluster;
mod conversation;
mod errors;
mod faults;
mod leaving;
mod lifecycle;
mod limits;
mod moderation;
mod one_step;
mod pages;
mod private;
mod readstate;
mod replay;
mod resume;
mod retention;
mod rooms;
mod search;
mod security;
mod stream;
mod subscribe;
mod tokens;
mod transport;
mod webhooks;
