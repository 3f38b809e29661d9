//! Where replays come from. The hub asks; the message log (or a test's fake) answers.

use std::{future::Future, ops::RangeInclusive};

use crate::domain::{RoomName, StoredMessage};

/// Stored events read back for a resume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayPage {
    /// Ascending by id.
    pub events: Vec<StoredMessage>,
    /// False when the limit cut older events.
    pub complete: bool,
}

/// The stored event log, as the hub reads it for replays. Every read is bounded above by
/// `up_to`, the watermark the join took under the publish gate: events above it reach the
/// connection live, so a replay that stops there has no gap and no duplicate.
pub trait History: Sync {
    /// The events of `rooms` and the broadcasts (but those in `skip_broadcasts`, which the
    /// connection already has) with ids in `(after, up_to]`: the newest `limit` of them,
    /// ascending.
    fn since(
        &self,
        rooms: &[RoomName],
        after: i64,
        up_to: i64,
        skip_broadcasts: RangeInclusive<i64>,
        limit: u32,
    ) -> impl Future<Output = anyhow::Result<ReplayPage>> + Send;

    /// The last `n` messages (ids up to `up_to`) of each room, ascending by id.
    fn recent(
        &self,
        rooms: &[RoomName],
        n: u32,
        up_to: i64,
    ) -> impl Future<Output = anyhow::Result<Vec<StoredMessage>>> + Send;
}
