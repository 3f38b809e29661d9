//! Where replays come from, and how much of it one subscribe takes. The hub asks; the
//! message log (or a test's fake) answers, newest first, a page at a time, so a replay
//! stops reading once it is past its bounds instead of holding everything it might want.

use std::{future::Future, ops::RangeInclusive};

use super::{frame, queue::ReplayFrame};
use crate::domain::{RoomName, StoredMessage};

/// The stored event log, as the hub reads it for replays. Every read is bounded above by
/// `up_to`, the watermark the join took under the publish gate: events above it reach the
/// connection live, so a replay that stops there has no gap and no duplicate.
pub trait History: Sync {
    /// The events of `rooms` and the broadcasts (but those in `skip_broadcasts`, which the
    /// connection already has) with ids in `(after, up_to]`: the newest `limit` of them,
    /// newest first.
    fn since(
        &self,
        rooms: &[RoomName],
        after: i64,
        up_to: i64,
        skip_broadcasts: RangeInclusive<i64>,
        limit: u32,
    ) -> impl Future<Output = anyhow::Result<Vec<StoredMessage>>> + Send;

    /// Whether events of `rooms` or broadcasts with ids above `after` were deleted by
    /// retention, so that a resume from `after` cannot be complete. A log that never
    /// deletes any says no.
    fn swept_after(
        &self,
        rooms: &[RoomName],
        after: i64,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send {
        let _ = (rooms, after);
        async { Ok(false) }
    }

    /// The messages of `room` (deletion events left out) with ids up to `up_to`: the newest
    /// `limit` of them, newest first.
    fn recent(
        &self,
        room: &RoomName,
        up_to: i64,
        limit: u32,
    ) -> impl Future<Output = anyhow::Result<Vec<StoredMessage>>> + Send;
}

/// The most one subscribe replays, over all its rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayBounds {
    /// Events.
    pub events: usize,
    /// Bytes of encoded frames.
    pub bytes: usize,
}

/// Rows asked of the log in a replay's first read: most resumes miss a few events.
const FIRST_PAGE: usize = 32;
/// Most rows asked in one read: each later read doubles, up to this, so a long replay takes
/// few reads and one read holds little memory.
const MAX_PAGE: usize = 512;

/// Frames read for a replay, newest first, and whether the bounds left older ones out.
pub(super) struct Read {
    pub(super) frames: Vec<ReplayFrame>,
    pub(super) cut: bool,
}

/// Reads newest first through `page(up_to, limit)` (each call the next older page, ids up
/// to `up_to`, newest first) until `cap` events (`None`: all there are), an id at or below
/// `floor` (older than what a replay already holds in full), or a bound is reached. `cut`
/// when the bounds or the floor, not `cap` or the log's end, stopped it.
pub(super) async fn read_newest<F, Fut>(
    up_to: i64,
    floor: i64,
    cap: Option<usize>,
    bounds: ReplayBounds,
    mut page: F,
) -> anyhow::Result<Read>
where
    F: FnMut(i64, u32) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<StoredMessage>>>,
{
    let limit = cap.map_or(bounds.events, |c| c.min(bounds.events));
    // Whether one more event than `limit` would be one the bounds left out.
    let probe = cap.is_none_or(|c| c > limit);
    let mut frames = Vec::new();
    let mut bytes = 0;
    let mut up_to = up_to;
    let mut size = FIRST_PAGE;
    loop {
        let want = size.min(limit - frames.len() + usize::from(probe));
        if want == 0 {
            return Ok(Read { frames, cut: false });
        }
        let events = page(up_to, u32::try_from(want).unwrap_or(u32::MAX)).await?;
        let got = events.len();
        let oldest = events.last().map(|e| e.id);
        for e in &events {
            if e.id <= floor {
                return Ok(Read { frames, cut: true });
            }
            let encoded = frame::stored(e);
            if frames.len() == limit || bytes + encoded.len() > bounds.bytes {
                return Ok(Read { frames, cut: true });
            }
            bytes += encoded.len();
            frames.push(ReplayFrame {
                id: e.id,
                bytes: encoded,
            });
        }
        match oldest {
            Some(id) if got == want => up_to = id - 1,
            _ => return Ok(Read { frames, cut: false }),
        }
        size = (size * 2).min(MAX_PAGE);
    }
}

/// Merges `more` (newest first) into `kept` (newest first) and keeps the newest that fit
/// in `bounds`; true when something was left out (then `kept` is full: nothing older than
/// its oldest can join it).
pub(super) fn merge_newest(
    kept: &mut Vec<ReplayFrame>,
    more: Vec<ReplayFrame>,
    bounds: ReplayBounds,
) -> bool {
    kept.extend(more);
    kept.sort_unstable_by_key(|f| std::cmp::Reverse(f.id));
    let mut bytes = 0;
    let fit = kept
        .iter()
        .take(bounds.events)
        .take_while(|f| {
            bytes += f.bytes.len();
            bytes <= bounds.bytes
        })
        .count();
    let cut = fit < kept.len();
    kept.truncate(fit);
    cut
}
