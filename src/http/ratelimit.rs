//! Rate limits: per user for messages and custom events (governor, GCRA), per client IP for
//! logins and registrations, and per username for logins with a growing backoff. A refused
//! request changes nothing and gets `429` with `Retry-After` in whole seconds.

use std::{
    net::IpAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use actix_web::HttpRequest;
use dashmap::DashMap;
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use uuid::Uuid;

use crate::{
    config::{Cidr, RateLimitSettings},
    http::error::ApiError,
};

/// The limiters, shared by all workers.
pub struct Limits {
    posts: DefaultKeyedRateLimiter<Uuid>,
    auth: DefaultKeyedRateLimiter<IpAddr>,
    logins: LoginBackoff,
}

/// A quota of `n`; zero is refused (naming `key`) rather than quietly raised to one.
fn nonzero(n: u32, key: &str) -> anyhow::Result<NonZeroU32> {
    NonZeroU32::new(n).ok_or_else(|| anyhow::anyhow!("configuration: `{key}` must be at least 1"))
}

impl Limits {
    /// Limiters with the configured quotas; a zero quota is an error naming its key.
    pub fn new(s: &RateLimitSettings) -> anyhow::Result<Self> {
        Ok(Self {
            posts: RateLimiter::keyed(
                Quota::per_second(nonzero(s.messages_per_sec, "rate_limit.messages_per_sec")?)
                    .allow_burst(nonzero(s.messages_burst, "rate_limit.messages_burst")?),
            ),
            auth: RateLimiter::keyed(Quota::per_minute(nonzero(
                s.auth_per_min,
                "rate_limit.auth_per_min",
            )?)),
            logins: LoginBackoff {
                free: s.login_free_failures,
                first: Duration::from_secs(s.login_backoff_secs),
                max: Duration::from_secs(s.login_backoff_max_secs),
                names: DashMap::new(),
            },
        })
    }

    /// One message or custom event by `user`.
    pub fn post(&self, user: Uuid) -> Result<(), ApiError> {
        check(&self.posts, &user)
    }

    /// One login or registration attempt from `ip`.
    pub fn auth(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(&self.auth, &ip)
    }

    /// One login attempt for `username` (compared without regard to case). Counted as a
    /// failure from the start, so that concurrent attempts cannot all slip through before
    /// the first one fails; [`Limits::login_succeeded`] clears it.
    pub fn login_attempt(&self, username: &str) -> Result<(), ApiError> {
        self.logins
            .attempt(&username.to_lowercase(), Instant::now())
    }

    /// The login for `username` succeeded: its backoff is over.
    pub fn login_succeeded(&self, username: &str) {
        self.logins.names.remove(&username.to_lowercase());
    }

    /// The login attempt for `username` was never judged (e.g. the server was too busy to
    /// hash): it does not count.
    pub fn login_not_judged(&self, username: &str) {
        if let Some(mut entry) = self.logins.names.get_mut(&username.to_lowercase()) {
            entry.attempts = entry.attempts.saturating_sub(1);
        }
    }

    /// Forgets keys that are back to a full allowance (called periodically).
    pub fn shrink(&self) {
        self.posts.retain_recent();
        self.auth.retain_recent();
        self.logins.shrink(Instant::now());
    }
}

/// Per-username backoff for logins.
struct LoginBackoff {
    /// Attempts in a row that pass without waiting.
    free: u32,
    /// The first wait; it doubles with every further attempt.
    first: Duration,
    /// The longest wait, and the quiet time after which a name is forgotten.
    max: Duration,
    names: DashMap<String, Attempts>,
}

struct Attempts {
    /// Attempts since the last success (or since the name was forgotten).
    attempts: u32,
    last: Instant,
    /// No attempt before this.
    not_before: Instant,
}

impl LoginBackoff {
    fn attempt(&self, name: &str, now: Instant) -> Result<(), ApiError> {
        let mut entry = self.names.entry(name.to_owned()).or_insert(Attempts {
            attempts: 0,
            last: now,
            not_before: now,
        });
        if now < entry.not_before {
            return Err(rate_limited(entry.not_before - now));
        }
        entry.attempts = entry.attempts.saturating_add(1);
        entry.last = now;
        if let Some(beyond) = entry.attempts.checked_sub(self.free) {
            entry.not_before = now + self.wait(beyond);
        }
        Ok(())
    }

    /// The wait after the `beyond`-th attempt past the free ones (0 for the last free one).
    fn wait(&self, beyond: u32) -> Duration {
        // Past 2^20 the doubling is far beyond any sane maximum; stop before it overflows.
        self.first.saturating_mul(1 << beyond.min(20)).min(self.max)
    }

    fn shrink(&self, now: Instant) {
        self.names
            .retain(|_, a| now.saturating_duration_since(a.last) < self.max);
    }
}

fn rate_limited(wait: Duration) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), ApiError> {
    limiter
        .check_key(key)
        .map_err(|not_until| rate_limited(not_until.wait_time_from(DefaultClock::default().now())))
}

/// The client address for the per-IP limits: the peer, unless the peer is one of the
/// `trusted` proxies; then the rightmost `X-Forwarded-For` hop that is not itself trusted
/// (hops further left were written by the client and prove nothing). `None` without a peer
/// address (not over TCP).
pub fn client_ip(req: &HttpRequest, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    // Several X-Forwarded-For headers are one list, in order.
    let hops: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A hop we cannot read ends the chain: the last address we could read stands.
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn settings() -> RateLimitSettings {
        RateLimitSettings {
            messages_per_sec: 1,
            messages_burst: 3,
            auth_per_min: 2,
            login_free_failures: 2,
            login_backoff_secs: 4,
            login_backoff_max_secs: 60,
        }
    }

    fn retry_after(r: Result<(), ApiError>) -> u64 {
        match r {
            Err(ApiError::RateLimited { retry_after_secs }) => retry_after_secs,
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }

    #[test]
    fn the_burst_passes_then_the_next_waits_whole_seconds() {
        let limits = Limits::new(&settings()).expect("valid settings");
        let user = Uuid::new_v4();
        for _ in 0..3 {
            limits.post(user).expect("within the burst");
        }
        assert_eq!(retry_after(limits.post(user)), 1);
        limits
            .post(Uuid::new_v4())
            .expect("other users are not limited");
        let ip: IpAddr = [127, 0, 0, 1].into();
        limits.auth(ip).expect("first of two per minute");
        limits.auth(ip).expect("second of two per minute");
        let wait = retry_after(limits.auth(ip));
        assert!((1..=30).contains(&wait), "retry after {wait} s");
    }

    #[test]
    fn a_zero_quota_is_refused_naming_its_key() {
        let s = RateLimitSettings {
            auth_per_min: 0,
            ..settings()
        };
        let e = Limits::new(&s).err().expect("a zero quota is an error");
        assert!(e.to_string().contains("rate_limit.auth_per_min"), "{e}");
    }

    #[test]
    fn repeated_login_failures_wait_longer_each_time() {
        let limits = Limits::new(&settings()).expect("valid settings");
        let b = &limits.logins;
        let t0 = Instant::now();
        b.attempt("alice", t0).expect("first free attempt");
        b.attempt("alice", t0).expect("second free attempt");
        let first = retry_after(b.attempt("alice", t0));
        assert_eq!(first, 4, "after the free attempts: login_backoff_secs");
        let t1 = t0 + Duration::from_secs(4);
        b.attempt("alice", t1)
            .expect("allowed once the wait is over");
        let second = retry_after(b.attempt("alice", t1));
        assert_eq!(second, 8, "the wait doubles");
        let t2 = t1 + Duration::from_secs(8);
        b.attempt("alice", t2)
            .expect("allowed once the longer wait is over");
        assert_eq!(retry_after(b.attempt("alice", t2)), 16);
        b.attempt("bob", t2).expect("other names are not throttled");
    }

    #[test]
    fn the_backoff_stops_at_its_maximum() {
        let limits = Limits::new(&settings()).expect("valid settings");
        let b = &limits.logins;
        let mut now = Instant::now();
        for _ in 0..40 {
            now += b.max;
            b.attempt("alice", now)
                .expect("allowed after the longest wait");
        }
        assert_eq!(retry_after(b.attempt("alice", now)), 60);
    }

    #[test]
    fn a_success_resets_the_backoff_for_any_letter_case() {
        let limits = Limits::new(&settings()).expect("valid settings");
        for _ in 0..2 {
            limits.login_attempt("Alice").expect("free attempts");
        }
        limits.login_attempt("alice").expect_err("throttled now");
        limits.login_succeeded("ALICE");
        limits
            .login_attempt("alice")
            .expect("a success clears the count");
    }

    #[test]
    fn a_quiet_name_is_forgotten() {
        let limits = Limits::new(&settings()).expect("valid settings");
        let b = &limits.logins;
        let t0 = Instant::now();
        b.attempt("alice", t0).expect("first attempt");
        b.shrink(t0 + b.max);
        assert!(b.names.is_empty(), "quiet names are dropped");
    }

    fn request(peer: &str, xff: &[&str]) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr(peer.parse().expect("a socket address"));
        for v in xff {
            req = req.append_header(("x-forwarded-for", *v));
        }
        req.to_http_request()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().expect("a CIDR")).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("an IP"))
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let req = request("203.0.113.9:5000", &["198.51.100.1"]);
        assert_eq!(client_ip(&req, &[]), ip("203.0.113.9"));
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_another_address() {
        let req = request("203.0.113.9:5000", &["198.51.100.1"]);
        assert_eq!(client_ip(&req, &cidrs(&["10.0.0.0/8"])), ip("203.0.113.9"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        // The client forged the first hop; our proxies appended the real ones.
        let req = request("10.0.0.2:5000", &["1.1.1.1, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(client_ip(&req, &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_the_client() {
        let req = request("10.0.0.2:5000", &[]);
        assert_eq!(client_ip(&req, &cidrs(&["10.0.0.0/8"])), ip("10.0.0.2"));
    }

    #[test]
    fn an_unreadable_hop_ends_the_chain() {
        let req = request("10.0.0.2:5000", &["198.51.100.7, garbage, 10.0.0.3"]);
        assert_eq!(client_ip(&req, &cidrs(&["10.0.0.0/8"])), ip("10.0.0.3"));
    }
}
