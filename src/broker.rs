//! Where the two lower layers meet: committed events go from the writer to the hubs that
//! route them ([`Broker`]), and replays come from the message log to the hub ([`History`]
//! for [`Db`]). One trait each, so a cross-node broker can replace the in-process one
//! without touching the writer or the hub.

use std::{ops::RangeInclusive, sync::Arc};

use crate::{
    db::{Db, Page},
    domain::{RoomName, StoredMessage},
    hub::{History, Hub},
};

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
        self.hub.publish(event);
    }
}

/// A broker that hands events on to another and then notifies `also` (idle webhook
/// deliveries look at the log at once instead of at their next poll).
pub struct Waking {
    inner: Arc<dyn Broker>,
    also: Arc<tokio::sync::Notify>,
}

impl Waking {
    /// Publishes through `inner`, then wakes whoever waits on `also`.
    pub fn new(inner: Arc<dyn Broker>, also: Arc<tokio::sync::Notify>) -> Self {
        Self { inner, also }
    }
}

impl Broker for Waking {
    fn publish(&self, event: &StoredMessage) {
        self.inner.publish(event);
        self.also.notify_waiters();
    }
}

impl History for Db {
    async fn since(
        &self,
        rooms: &[RoomName],
        after: i64,
        up_to: i64,
        skip_broadcasts: RangeInclusive<i64>,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredMessage>> {
        Ok(self
            .replay_since(rooms, after, up_to, &skip_broadcasts, limit)
            .await?)
    }

    async fn swept_after(&self, rooms: &[RoomName], after: i64) -> anyhow::Result<bool> {
        Ok(Db::swept_after(self, rooms, after).await?)
    }

    async fn recent(
        &self,
        room: &RoomName,
        up_to: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredMessage>> {
        let page = Page {
            before: Some(up_to.saturating_add(1)),
            after: None,
            limit,
        };
        let mut newest_first = self.messages_page(room, page).await?;
        newest_first.reverse();
        Ok(newest_first)
    }
}
