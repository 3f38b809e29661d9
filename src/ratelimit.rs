//! Rate limits (governor, GCRA): per user for messages and custom events, per client IP for
//! logins and registrations. A refused request changes nothing and gets `429` with
//! `Retry-After` in whole seconds.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use uuid::Uuid;

use crate::{config::RateLimitSettings, error::ApiError};

/// The limiters, shared by all workers.
pub struct Limits {
    posts: DefaultKeyedRateLimiter<Uuid>,
    auth: DefaultKeyedRateLimiter<IpAddr>,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Limits {
    /// Limiters with the configured quotas.
    pub fn new(s: &RateLimitSettings) -> Self {
        Self {
            posts: RateLimiter::keyed(
                Quota::per_second(nonzero(s.messages_per_sec))
                    .allow_burst(nonzero(s.messages_burst)),
            ),
            auth: RateLimiter::keyed(Quota::per_minute(nonzero(s.auth_per_min))),
        }
    }

    /// One message or custom event by `user`.
    pub fn post(&self, user: Uuid) -> Result<(), ApiError> {
        check(&self.posts, &user)
    }

    /// One login or registration attempt from `ip`.
    pub fn auth(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(&self.auth, &ip)
    }

    /// Forgets keys that are back to a full allowance (called periodically).
    pub fn shrink(&self) {
        self.posts.retain_recent();
        self.auth.retain_recent();
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), ApiError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait: Duration = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited {
            retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_passes_then_the_next_waits_whole_seconds() {
        let limits = Limits::new(&RateLimitSettings {
            messages_per_sec: 1,
            messages_burst: 3,
            auth_per_min: 2,
        });
        let user = Uuid::new_v4();
        for _ in 0..3 {
            limits.post(user).unwrap();
        }
        match limits.post(user) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        limits
            .post(Uuid::new_v4())
            .expect("other users are not limited");
        let ip: IpAddr = [127, 0, 0, 1].into();
        limits.auth(ip).unwrap();
        limits.auth(ip).unwrap();
        match limits.auth(ip) {
            Err(ApiError::RateLimited { retry_after_secs }) => {
                assert!((1..=30).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }
}
