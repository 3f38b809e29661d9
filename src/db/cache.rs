//! A short-lived read cache for the reads nearly every request makes — its session, its
//! user, the room in its path — on SQLite only.
//!
//! Why: on SQLite each query is a hand-off to the connection's own thread and back, two
//! context switches; a post made three of them before the writer's own. Profiled under 64
//! posters, those switches were most of the workers' CPU.
//!
//! Why it stays exact: on SQLite this process is the only server writing the file, and
//! every write to a cached row goes through a [`Db`](super::Db) method that forgets what it
//! changed after its commit. A read racing such a write cannot put the old row back: each
//! table has a generation, bumped by every forget, and a read that saw it move drops what
//! it just stored. The one writer it cannot see is the `roomcast user …` command run beside
//! a live server; its changes apply within `database.read_cache_ms`, the longest any entry
//! is trusted.
//!
//! Not on PostgreSQL: other nodes write the same rows there.

use std::{
    hash::Hash,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use dashmap::DashMap;
use uuid::Uuid;

use super::sessions::SessionState;
use crate::domain::{RoomName, User};

/// Most entries one table holds; past it the table is emptied (a burst of misses), which
/// bounds the memory a flood of distinct sessions or rooms can take.
const CAP: usize = 50_000;

/// The cached tables.
#[derive(Debug)]
pub(super) struct ReadCache {
    /// Session key hash → its state and expiry (Unix seconds), as `load` reads them.
    pub(super) sessions: Table<String, (SessionState, i64)>,
    /// User id → the account, when not banned.
    pub(super) users: Table<Uuid, User>,
    /// (room, viewer) → the room's row as that viewer sees it (see `Db::room_view`).
    pub(super) rooms: Table<(RoomName, Option<Uuid>), Option<super::rooms::RoomViewRow>>,
}

impl ReadCache {
    /// Empty tables whose entries are trusted for `fresh_for`.
    pub(super) fn new(fresh_for: Duration) -> Self {
        Self {
            sessions: Table::new(fresh_for),
            users: Table::new(fresh_for),
            rooms: Table::new(fresh_for),
        }
    }

    /// Forgets everything (after a write that bypassed the `Db` methods).
    pub(super) fn forget_all(&self) {
        self.sessions.forget_where(|_, _| true);
        self.users.forget_where(|_, _| true);
        self.rooms.forget_where(|_, _| true);
    }
}

/// One cached read: a map with a freshness bound and a generation.
#[derive(Debug)]
pub(super) struct Table<K: Eq + Hash, V> {
    map: DashMap<K, (V, Instant)>,
    fresh_for: Duration,
    /// Bumped by every forget; see [`Table::put`].
    generation: AtomicU64,
}

/// What a reader notes before its query, to hand to [`Table::put`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Generation(u64);

impl<K: Eq + Hash + Clone, V: Clone> Table<K, V> {
    fn new(fresh_for: Duration) -> Self {
        Self {
            map: DashMap::new(),
            fresh_for,
            generation: AtomicU64::new(0),
        }
    }

    /// The cached value, when it is fresh.
    pub(super) fn get(&self, key: &K) -> Option<V> {
        let entry = self.map.get(key)?;
        let (value, read_at) = &*entry;
        (read_at.elapsed() < self.fresh_for).then(|| value.clone())
    }

    /// Note this before reading the database for a miss.
    pub(super) fn generation(&self) -> Generation {
        Generation(self.generation.load(Ordering::SeqCst))
    }

    /// Stores what a read returned, unless something was forgotten since `seen` (the read
    /// may have raced that write and returned the old row).
    pub(super) fn put(&self, key: K, value: V, seen: Generation) {
        if self.map.len() >= CAP {
            self.map.clear();
        }
        self.map.insert(key.clone(), (value, Instant::now()));
        // Checked after the insert: a forget that bumped before this load sees nothing to
        // undo, so undo it here; one that bumps after it removes the entry itself.
        if self.generation.load(Ordering::SeqCst) != seen.0 {
            self.map.remove(&key);
        }
    }

    /// Forgets `key` (call after the write that changed it commits).
    pub(super) fn forget(&self, key: &K) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.map.remove(key);
    }

    /// Forgets every entry `changed` picks.
    pub(super) fn forget_where(&self, changed: impl Fn(&K, &V) -> bool) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.map.retain(|k, (v, _)| !changed(k, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table<u32, &'static str> {
        Table::new(Duration::from_secs(60))
    }

    #[test]
    fn a_stored_read_is_served_until_forgotten() {
        let t = table();
        t.put(1, "a", t.generation());
        assert_eq!(t.get(&1), Some("a"));
        t.forget(&1);
        assert_eq!(t.get(&1), None, "a forgotten entry was still served");
    }

    #[test]
    fn a_read_that_raced_a_forget_is_not_kept() {
        let t = table();
        let seen = t.generation();
        // The write commits and forgets while the read is in flight…
        t.forget(&1);
        // …and the read then returns the old row.
        t.put(1, "old", seen);
        assert_eq!(t.get(&1), None, "a read older than a write was cached");
    }

    #[test]
    fn an_entry_older_than_its_freshness_is_not_served() {
        let t: Table<u32, &str> = Table::new(Duration::from_millis(20));
        t.put(1, "a", t.generation());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(t.get(&1), None, "a stale entry was served");
    }

    #[test]
    fn forget_where_drops_only_what_it_picks() {
        let t = table();
        t.put(1, "keep", t.generation());
        t.put(2, "drop", t.generation());
        t.forget_where(|_, v| *v == "drop");
        assert_eq!((t.get(&1), t.get(&2)), (Some("keep"), None));
    }

    #[test]
    fn a_full_table_starts_over_instead_of_growing() {
        let t = table();
        for k in 0..=CAP as u32 {
            t.put(k, "x", t.generation());
        }
        assert!(
            t.map.len() <= CAP,
            "the table grew past its cap: {}",
            t.map.len()
        );
    }
}
