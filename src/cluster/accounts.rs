//! Bans, unbans and role changes made outside this server — by the `roomcast user …`
//! command, or on another node — reach its open streams. Every such change is a row of the
//! account change log ([`Db::account_changes`]), written in the change's own transaction;
//! each server reads the rows after the last one it has seen, on a wake-up (PostgreSQL: the
//! transaction's notification on the cluster's channel) or at the latest every
//! `database.account_poll_ms`. For each account named it reads the account afresh:
//!
//! * banned: its streams on this node close (its sessions were deleted with the ban);
//! * no longer an admin: its streams leave every private room it is not a member of, with a
//!   `removed` event, as a removed member's do;
//!
//! and the read cache forgets the account, so its next request sees the change too.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::{db::Db, domain::Role, hub::Hub};

/// Account changes older than this are deleted (every live server read them long before).
const KEEP_CHANGES_SECS: i64 = 600;

/// How many polls between two prunes of old changes.
const PRUNE_EVERY_POLLS: u32 = 120;

/// Applies account changes to `hub` as they are recorded, from `cursor` on, until the task
/// is stopped. Woken by `wake`, and every `every` regardless.
pub(super) async fn watch(db: Db, hub: Arc<Hub>, wake: Arc<Notify>, every: Duration, cursor: i64) {
    let mut cursor = cursor;
    let mut polls = 0u32;
    loop {
        // Registered before the read, so a change committed meanwhile wakes the next one.
        let woken = wake.notified();
        match db.account_changes(cursor).await {
            Ok((users, next)) => {
                cursor = next;
                for user in users {
                    if let Err(e) = apply(&db, &hub, user).await {
                        tracing::warn!(error = %e, %user, "applying an account change failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading account changes failed"),
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(PRUNE_EVERY_POLLS)
            && let Err(e) = db.prune_account_changes(KEEP_CHANGES_SECS).await
        {
            tracing::warn!(error = %e, "deleting old account changes failed");
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = woken => {}
        }
    }
}

/// Brings this node's streams of `user` in line with its account as it stands now.
async fn apply(db: &Db, hub: &Hub, user: Uuid) -> sqlx::Result<()> {
    db.forget_account(user);
    match db.account_standing(user).await? {
        Some((true, _)) | None => {
            let closed = hub.close_user(user);
            if closed > 0 {
                tracing::info!(%user, closed, "closed the streams of a banned account");
            }
        }
        Some((false, Role::User)) => {
            let held = hub.rooms_of_user(user);
            for room in db.hidden_rooms(user, &held).await? {
                let left = hub.remove_member(&room, user, None);
                tracing::info!(%user, %room, left, "took a former admin out of a private room");
            }
        }
        Some((false, Role::Admin)) => {}
    }
    Ok(())
}
