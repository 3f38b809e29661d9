//! What every handler can reach: the parts [`crate::startup`] builds, shared by all workers.

use std::sync::Arc;

use crate::{
    auth::password::PasswordPool, config::Settings, db::Db, hub::Hub, ratelimit::Limits,
    writer::Writer,
};

/// The application's shared state, registered once as `web::Data<AppState>`.
pub struct AppState {
    /// Settings as loaded.
    pub settings: Arc<Settings>,
    /// Accounts, sessions and the message log.
    pub db: Db,
    /// Connections and rooms.
    pub hub: Arc<Hub>,
    /// The group-committing message writer.
    pub writer: Writer,
    /// Rate limiters.
    pub limits: Arc<Limits>,
    /// The bounded password hashing pool.
    pub passwords: PasswordPool,
}
