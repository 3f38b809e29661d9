//! Where stored events go after the commit. One trait, so a cross-node broker (every node's
//! hub gets every event) can replace the in-process one without touching the writer or hub.

use std::sync::Arc;

use crate::{db::StoredMessage, hub::Hub};

/// Delivers committed events to the hubs that route them.
pub trait Broker: Send + Sync + 'static {
    /// Called by the writer for each committed event, in id order.
    fn publish(&self, event: &StoredMessage);
}

/// The single-node broker: hands events straight to this process's hub.
pub struct LocalBroker {
    hub: Arc<Hub>,
}

impl LocalBroker {
    /// A broker feeding `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl Broker for LocalBroker {
    fn publish(&self, event: &StoredMessage) {
        // Encoded once here; the hub shares these bytes with every subscriber.
        let frame = event.frame();
        match &event.room {
            Some(room) => self.hub.publish_message(event.id, room, &frame),
            None => self.hub.publish_broadcast(event.id, &frame),
        }
    }
}
