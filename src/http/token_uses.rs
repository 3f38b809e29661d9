//! How often a personal access token's `last_used_at` is written: at most once per
//! `tokens.last_used_every_secs`, however many requests the token makes. Kept apart from
//! [`crate::http::auth`] because the shared state holds it and the extractors read the state.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use uuid::Uuid;

/// When each token's use was last written, so a script making many requests writes its
/// `last_used_at` once per interval, not once per request.
pub struct TokenUses {
    every: Duration,
    written: DashMap<Uuid, Instant>,
}

/// Past this many tokens remembered, the ones not used within the interval are forgotten.
const REMEMBERED: usize = 10_000;

impl TokenUses {
    /// Writes at most once per `every` per token.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            written: DashMap::new(),
        }
    }

    /// Whether token `id`'s use is to be written now (then it counts as written).
    pub fn due(&self, id: Uuid) -> bool {
        let now = Instant::now();
        if self.written.len() > REMEMBERED {
            self.written
                .retain(|_, at| now.duration_since(*at) < self.every);
        }
        let mut at = self.written.entry(id).or_insert(now - self.every);
        if now.duration_since(*at) < self.every {
            return false;
        }
        *at = now;
        true
    }

    /// Forgets a deleted token.
    pub fn forget(&self, id: Uuid) {
        self.written.remove(&id);
    }
}
