//! The bus between nodes: PostgreSQL `LISTEN`/`NOTIFY` on one channel per cluster.
//!
//! Stored events never travel on it: the writer's transaction sends an empty notification
//! as a wake-up, and each node's tailer reads the log itself ([`super::tailer`]). What does
//! travel is what is never stored: presence changes, custom events, and a node declared
//! dead. A notification sent while a listener is reconnecting is lost, so after every
//! reconnect the node reads the log and every node's presence again.

use std::sync::Arc;

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use super::{node::Node, wire::BusMessage};
use crate::{
    db::nodes,
    domain::{RoomName, UserRef},
    hub::{PresenceAction, PresenceSink},
};

/// Takes the hub's presence changes: applies them to this node's view at once (so this
/// node answers for itself without waiting for the bus) and queues them for the others.
pub struct ClusterPresence {
    pub(super) node: Arc<Node>,
    pub(super) outbox: mpsc::UnboundedSender<BusMessage>,
}

impl PresenceSink for ClusterPresence {
    fn changed(&self, room: &RoomName, user: &UserRef, action: PresenceAction) -> bool {
        let message = BusMessage::Presence {
            node: self.node.id,
            room: room.clone(),
            user: user.clone(),
            action,
        };
        // Queued in the order the hub reports them (under each room's lock) and encoded by
        // the sender, not here; the receiver lives as long as the node.
        let _ = self.outbox.send(message);
        self.node.view.apply(self.node.id, room, user, action)
    }
}

/// Sends queued presence changes, as many per transaction as are waiting. Changes that
/// cannot be sent after a few tries are dropped; once the database answers again, the
/// others are told to read this node's presence afresh (`Resync`).
pub(super) async fn send_presence(
    node: Arc<Node>,
    mut outbox: mpsc::UnboundedReceiver<BusMessage>,
) {
    let mut batch = Vec::with_capacity(256);
    while outbox.recv_many(&mut batch, 256).await > 0 {
        let encoded: Vec<String> = batch.drain(..).map(|m| m.encode()).collect();
        let payloads: Vec<&str> = encoded.iter().map(String::as_str).collect();
        let mut tries = 0;
        loop {
            match node.notify(&payloads).await {
                Ok(()) => break,
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %e, "sending presence changes failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * tries)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, changes = payloads.len(), "presence changes lost");
                    let resync = BusMessage::Resync { node: node.id }.encode();
                    while let Err(e) = node.notify(&[&resync]).await {
                        tracing::warn!(error = %e, "asking the others to resync failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    break;
                }
            }
        }
    }
}

/// Opens the node's listener: holds the liveness lock on its connection (released by the
/// database the moment the process or the connection dies) and listens on the channel.
pub(super) async fn open_listener(node: &Node) -> anyhow::Result<PgListener> {
    let mut listener = PgListener::connect_with(&node.pool).await?;
    take_liveness_lock(node, &mut listener).await?;
    listener.listen(&node.channel).await?;
    Ok(listener)
}

async fn take_liveness_lock(node: &Node, listener: &mut PgListener) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(nodes::liveness_lock_key(node.tag_number()))
        .execute(&mut *listener)
        .await?;
    Ok(())
}

/// Receives notifications until the node stops.
pub(super) async fn listen(node: Arc<Node>, mut listener: PgListener) {
    loop {
        let lost = match listener.try_recv().await {
            Ok(Some(n)) => {
                handle(&node, n.payload()).await;
                false
            }
            Ok(None) => {
                tracing::warn!("cluster listener lost its connection; reconnecting");
                true
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cluster listener failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                true
            }
        };
        if lost {
            // The listener reconnects (and listens again) on its next use; the liveness
            // lock went with the old connection, and whatever was sent meanwhile is lost.
            // Taking the lock again on a connection that still holds it only nests it.
            loop {
                match take_liveness_lock(&node, &mut listener).await {
                    Ok(()) => break,
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "retaking the liveness lock failed");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
            }
            node.wake_tailer();
            node.request_resync();
            node.accounts.notify_one();
        }
    }
}

async fn handle(node: &Node, payload: &str) {
    if payload.is_empty() {
        node.wake_tailer();
        return;
    }
    let message: BusMessage = match serde_json::from_str(payload) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a malformed cluster notification");
            return;
        }
    };
    match message {
        // Applied when it happened (ClusterPresence).
        BusMessage::Presence { node: from, .. } if from == node.id => {}
        BusMessage::Presence {
            node: from,
            room,
            user,
            action,
        } => {
            if node.view.apply(from, &room, &user, action) {
                node.hub.announce_presence(&room, &user, action);
            }
        }
        BusMessage::Custom { node: from, .. } if from == node.id => {}
        BusMessage::Custom {
            room,
            user,
            event,
            data,
            ..
        } => node.hub.publish_custom(&room, &user, &event, &data),
        BusMessage::Resync { node: from } if from == node.id => {}
        BusMessage::Resync { .. } => node.request_resync(),
        BusMessage::Joined { node: joined } if joined == node.id => {}
        BusMessage::Joined { .. } => {
            if let Err(e) = node.refresh_peers().await {
                tracing::warn!(error = %e, "reading the node list failed");
            }
        }
        BusMessage::Accounts => node.accounts.notify_one(),
        BusMessage::Gone { node: gone } => {
            if gone == node.id {
                tracing::error!("this node was declared dead by another; closing its streams");
                node.hub.close_streams();
            }
            for (room, user, action) in node.view.remove_node(gone) {
                node.hub.announce_presence(&room, &user, action);
            }
            node.forget(gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line sends this notification without the cluster's types.
    #[test]
    fn the_account_change_notification_is_the_accounts_message() {
        assert_eq!(BusMessage::Accounts.encode(), crate::db::ACCOUNTS_CHANGED);
        let decoded: BusMessage =
            serde_json::from_str(crate::db::ACCOUNTS_CHANGED).expect("decodes");
        assert!(matches!(decoded, BusMessage::Accounts));
    }
}
