//! Resumes that read the same rooms from the same id, waiting at once, share one read.
//!
//! Why: after a restart every subscriber of a room comes back from the same last id, and
//! while they wait for a turn to read ([`Hub`](super::Hub)'s `replays`) each would read the
//! same rows again. Here the first of them (the leader) reads for all who joined before its
//! turn came: up to the highest of their watermarks, every broadcast included. Each then
//! keeps what it alone would have read, ids up to its own watermark and none of the
//! broadcasts it already has, which is exact whenever the shared read was not cut by the
//! replay bounds. When it was (or the leader went away), a member reads alone.

use std::{collections::HashMap, ops::RangeInclusive, sync::Arc};

use parking_lot::Mutex;
use tokio::sync::watch;

use super::queue::ReplayFrame;
use crate::domain::RoomName;

/// What one shared read found, newest first.
#[derive(Debug)]
pub(super) struct SharedRead {
    pub(super) frames: Vec<ReplayFrame>,
    /// Ids of the broadcasts among `frames`, ascending.
    pub(super) broadcasts: Vec<i64>,
    /// The replay bounds left something out.
    pub(super) cut: bool,
    /// A retention sweep removed events after the resume point.
    pub(super) swept: bool,
}

impl SharedRead {
    /// What a member with `watermark` and the broadcasts `sent` reads of it, newest first.
    pub(super) fn for_member(
        &self,
        watermark: i64,
        sent: &RangeInclusive<i64>,
    ) -> Vec<ReplayFrame> {
        self.frames
            .iter()
            .filter(|f| f.id <= watermark)
            .filter(|f| !(sent.contains(&f.id) && self.broadcasts.binary_search(&f.id).is_ok()))
            .cloned()
            .collect()
    }
}

/// The outcome handed to the members: `None` until read; `Err` when the read failed.
type Outcome = Option<Result<Arc<SharedRead>, String>>;

/// The rooms (as subscribed, in order) and the id a resume reads after.
type Key = (Vec<RoomName>, i64);

/// One read being gathered or made.
struct Batch {
    /// The highest watermark of its members, and how many joined the leader, while it
    /// takes more; `None` once its read began.
    up_to: Mutex<Option<(i64, usize)>>,
    done: watch::Receiver<Outcome>,
}

/// The reads being gathered, by what they read.
#[derive(Default)]
pub(super) struct ResumeReads {
    open: Mutex<HashMap<Key, Arc<Batch>>>,
}

/// A resume's part in a shared read.
pub(super) enum Part<'a> {
    /// It reads for every member; see [`Leader`].
    Leader(Leader<'a>),
    /// Another reads for it: wait on this.
    Member(watch::Receiver<Outcome>),
}

/// The member that makes the read. Dropped before it [`Leader::finish`]es (its request
/// gone), the others read alone.
pub(super) struct Leader<'a> {
    reads: &'a ResumeReads,
    key: Key,
    batch: Arc<Batch>,
    tx: watch::Sender<Outcome>,
}

impl ResumeReads {
    /// Joins the read of `rooms` after `after` being gathered, or starts one.
    pub(super) fn join(&self, rooms: &[RoomName], after: i64, watermark: i64) -> Part<'_> {
        let key = (rooms.to_vec(), after);
        let mut open = self.open.lock();
        if let Some(batch) = open.get(&key) {
            // The batch's lock under the map's: a leaf, taken under no other.
            let mut up_to = batch.up_to.lock();
            if let Some((w, members)) = up_to.as_mut() {
                *w = (*w).max(watermark);
                *members += 1;
                return Part::Member(batch.done.clone());
            }
        }
        let (tx, rx) = watch::channel(None);
        let batch = Arc::new(Batch {
            up_to: Mutex::new(Some((watermark, 0))),
            done: rx,
        });
        open.insert(key.clone(), batch.clone());
        Part::Leader(Leader {
            reads: self,
            key,
            batch,
            tx,
        })
    }

    /// Forgets `batch` if it is still the one gathering for `key`.
    fn close(&self, key: &Key, batch: &Arc<Batch>) {
        let mut open = self.open.lock();
        if open.get(key).is_some_and(|b| Arc::ptr_eq(b, batch)) {
            open.remove(key);
        }
    }
}

impl Leader<'_> {
    /// Takes no more members; the id to read up to (their highest watermark), or `None`
    /// when nobody joined (the leader reads alone, as it would have).
    pub(super) fn start(&self) -> Option<i64> {
        self.reads.close(&self.key, &self.batch);
        let gathered = self.batch.up_to.lock().take();
        gathered.and_then(|(up_to, members)| (members > 0).then_some(up_to))
    }

    /// Hands the outcome to every member.
    pub(super) fn finish(self, outcome: Result<Arc<SharedRead>, String>) {
        // Nobody waiting is no error.
        let _ = self.tx.send(Some(outcome));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // Gone before its read began: later resumes must not join a read nobody makes.
        self.reads.close(&self.key, &self.batch);
    }
}

/// Waits for the leader's outcome; `None` when it went away without one.
pub(super) async fn outcome(
    mut rx: watch::Receiver<Outcome>,
) -> Option<Result<Arc<SharedRead>, String>> {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frame(id: i64) -> ReplayFrame {
        ReplayFrame {
            id,
            bytes: Bytes::from(format!("id: {id}\n\n")),
        }
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn a_member_keeps_its_watermark_and_leaves_out_the_broadcasts_it_has() {
        let read = SharedRead {
            frames: [6, 5, 4, 3, 2].map(frame).to_vec(),
            broadcasts: vec![3, 5],
            cut: false,
            swept: false,
        };
        let ids = |v: Vec<ReplayFrame>| v.iter().map(|f| f.id).collect::<Vec<_>>();
        assert_eq!(
            ids(read.for_member(5, &(3..=4))),
            [5, 4, 2],
            "broadcast 3 it has, 6 is live"
        );
        assert_eq!(
            ids(read.for_member(6, &RangeInclusive::new(1, 0))),
            [6, 5, 4, 3, 2],
            "it has no broadcast"
        );
    }

    #[tokio::test]
    async fn members_of_a_leader_gone_before_its_read_read_alone_and_later_ones_lead() {
        let reads = ResumeReads::default();
        let rooms = [room("r")];
        let Part::Leader(leader) = reads.join(&rooms, 7, 10) else {
            panic!("the first resume leads");
        };
        let Part::Member(rx) = reads.join(&rooms, 7, 12) else {
            panic!("the second joins while the first has not begun");
        };
        assert!(
            matches!(reads.join(&rooms, 8, 12), Part::Leader(_)),
            "another id, another read"
        );
        drop(leader);
        assert!(
            outcome(rx).await.is_none(),
            "no outcome: the member reads alone"
        );
        assert!(
            matches!(reads.join(&rooms, 7, 12), Part::Leader(_)),
            "nobody joins a read nobody makes"
        );
    }

    #[test]
    fn a_read_that_began_takes_no_member_and_a_lone_leader_reads_alone() {
        let reads = ResumeReads::default();
        let rooms = [room("r")];
        let Part::Leader(alone) = reads.join(&rooms, 7, 10) else {
            panic!("the first resume leads");
        };
        assert_eq!(alone.start(), None, "nobody joined: it reads alone");
        let Part::Leader(leader) = reads.join(&rooms, 7, 10) else {
            panic!("a read that began takes no member");
        };
        let _member = reads.join(&rooms, 7, 15);
        assert_eq!(leader.start(), Some(15), "up to the highest watermark");
    }
}
