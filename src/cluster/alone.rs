//! A node alone (SQLite): everything that would span nodes is just this node's hub.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::{sync::Notify, task::JoinHandle};

use crate::{
    broker::{Broker, LocalBroker},
    domain::{RoomName, UserRef},
    hub::{Hub, HubStats, RoomInfo},
};

/// The service when this node is all of it.
pub struct Alone {
    pub(super) hub: Arc<Hub>,
    /// Wakes the account watcher (alone, only its timer does).
    pub(super) accounts: Arc<Notify>,
    /// The account watcher.
    pub(super) tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Alone {
    pub(super) fn new(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            accounts: Arc::new(Notify::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(LocalBroker::new(self.hub.clone()))
    }

    pub(super) fn presence(&self, room: &RoomName) -> Vec<UserRef> {
        self.hub.presence(room)
    }

    pub(super) fn has_room(&self, room: &RoomName) -> bool {
        self.hub.has_room(room)
    }

    pub(super) fn busiest_rooms(
        &self,
        limit: usize,
        keep: impl Fn(&RoomName) -> bool,
    ) -> Vec<RoomInfo> {
        self.hub.busiest_rooms(limit, keep)
    }

    pub(super) fn stats(&self) -> HubStats {
        self.hub.stats()
    }
}
