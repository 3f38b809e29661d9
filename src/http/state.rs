//! What every handler can reach: the parts [`crate::startup`] builds, shared by all workers.

use std::sync::Arc;

use crate::{
    cluster::Cluster, config::Settings, db::Db, http::ratelimit::Limits,
    http::stream_writer::LiveWriters, http::token_uses::TokenUses, hub::Hub,
    password::PasswordPool, webhooks::Webhooks, writer::Writer,
};

/// The application's shared state, registered once as `web::Data<AppState>`.
pub struct AppState {
    /// Settings as loaded.
    pub settings: Arc<Settings>,
    /// Accounts, sessions and the message log.
    pub db: Db,
    /// This node's connections and rooms.
    pub hub: Arc<Hub>,
    /// The service as one (this node alone, or of a cluster): whatever spans nodes.
    pub cluster: Arc<Cluster>,
    /// The group-committing message writer.
    pub writer: Writer,
    /// Rate limiters.
    pub limits: Arc<Limits>,
    /// The bounded password hashing pool.
    pub passwords: PasswordPool,
    /// This node's webhook deliveries.
    pub webhooks: Arc<Webhooks>,
    /// When each access token's use was last recorded.
    pub token_uses: Arc<TokenUses>,
    /// The SSE stream writers running (shutdown waits for them).
    pub writers: LiveWriters,
}
