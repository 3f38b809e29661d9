//! One tailer per node: reads the message log in id order and hands every event to the
//! local hub. Every node, the one that stored an event included, delivers it this way, so
//! all nodes deliver the same events in the same order.
//!
//! It reads `(cursor, v]` where `v` is the log's id counter, both in one snapshot
//! ([`crate::db::Db::tail`]). Ids are taken from that counter row inside each writer's
//! transaction, whose lock is held to the commit, so every id up to `v` is committed: a
//! gap below `v` is a deleted message, never one still in flight. Nothing can be skipped.

use std::{sync::Arc, time::Duration};

use super::node::Node;
use crate::{broker::Broker, domain::StoredMessage};

/// Most events read per query; a longer backlog takes several.
const PAGE: u32 = 1000;

/// Runs until the node stops: reads on every wake-up, and every `every` anyway.
pub(super) async fn tail(node: Arc<Node>, mut cursor: i64, every: Duration) {
    loop {
        tokio::select! {
            () = node.wake.notified() => {}
            () = tokio::time::sleep(every) => {}
        }
        loop {
            match node.db.tail(cursor, PAGE).await {
                Ok((events, next)) => {
                    for event in &events {
                        debug_assert!(event.id > cursor, "the tail went backwards");
                        node.hub.publish(event);
                    }
                    // Deleted ids up to `next` are settled too: no replay needs them.
                    node.hub.set_watermark(next);
                    cursor = next;
                    if events.len() < PAGE as usize {
                        node.tailed.notify_waiters();
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, cursor, "reading the message log failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}

/// The writer's broker on a cluster node: a committed event wakes this node's tailer (the
/// commit's notification wakes the others).
pub struct WakeTailer(pub(super) Arc<Node>);

impl Broker for WakeTailer {
    fn publish(&self, _event: &StoredMessage) {
        self.0.wake_tailer();
    }
}
