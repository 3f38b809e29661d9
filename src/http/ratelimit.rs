//! Rate limits: per user for messages and custom events, subscribes, and member removals
//! (governor, GCRA), per client IP for logins and registrations, and for logins a growing backoff per
//! (username, client address) under a per-username ceiling that slows logins but never
//! refuses them ([`LoginBackoff`]). A refused request changes nothing and gets `429` with
//! `Retry-After` in whole seconds.

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
    subscribes: DefaultKeyedRateLimiter<Uuid>,
    removals: DefaultKeyedRateLimiter<Uuid>,
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
            subscribes: RateLimiter::keyed(
                Quota::per_second(nonzero(
                    s.subscribes_per_sec,
                    "rate_limit.subscribes_per_sec",
                )?)
                .allow_burst(nonzero(s.subscribes_burst, "rate_limit.subscribes_burst")?),
            ),
            removals: RateLimiter::keyed(
                Quota::per_second(nonzero(s.removals_per_sec, "rate_limit.removals_per_sec")?)
                    .allow_burst(nonzero(s.removals_burst, "rate_limit.removals_burst")?),
            ),
            auth: RateLimiter::keyed(Quota::per_minute(nonzero(
                s.auth_per_min,
                "rate_limit.auth_per_min",
            )?)),
            logins: LoginBackoff {
                free: s.login_free_failures,
                first: Duration::from_secs(s.login_backoff_secs),
                max: Duration::from_secs(s.login_backoff_max_secs),
                ceiling: s.login_name_failures,
                slow: Duration::from_millis(s.login_name_delay_ms),
                pairs: DashMap::new(),
                names: DashMap::new(),
            },
        })
    }

    /// One message or custom event by `user`.
    pub fn post(&self, user: Uuid) -> Result<(), ApiError> {
        check(&self.posts, &user)
    }

    /// One subscribe or unsubscribe by `user`.
    pub fn subscribe(&self, user: Uuid) -> Result<(), ApiError> {
        check(&self.subscribes, &user)
    }

    /// One removal of a member from a private room by `user` (it reaches every node).
    pub fn removal(&self, user: Uuid) -> Result<(), ApiError> {
        check(&self.removals, &user)
    }

    /// One login or registration attempt from `ip`.
    pub fn auth(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(&self.auth, &ip)
    }

    /// One login attempt for `username` (compared without regard to case) from `client`.
    /// Counted as a failure from the start, so that concurrent attempts cannot all slip
    /// through before the first one fails; [`Limits::login_succeeded`] clears it. `Ok` with
    /// a delay when the name is past its ceiling: the attempt is judged after that wait.
    pub fn login_attempt(&self, username: &str, client: IpAddr) -> Result<Duration, ApiError> {
        self.logins
            .attempt(&username.to_lowercase(), client, Instant::now())
    }

    /// The login for `username` from `client` succeeded: that address's backoff is over.
    pub fn login_succeeded(&self, username: &str, client: IpAddr) {
        self.logins.succeeded(&username.to_lowercase(), client);
    }

    /// The login attempt for `username` from `client` was never judged (e.g. the server was
    /// too busy to hash): it does not count.
    pub fn login_not_judged(&self, username: &str, client: IpAddr) {
        self.logins.not_judged(&username.to_lowercase(), client);
    }

    /// Forgets keys that are back to a full allowance (called periodically).
    pub fn shrink(&self) {
        self.posts.retain_recent();
        self.subscribes.retain_recent();
        self.removals.retain_recent();
        self.auth.retain_recent();
        self.logins.shrink(Instant::now());
    }
}

/// Login throttling that a stranger cannot turn into a lockout (OWASP's "account lockout"
/// denial of service):
///
/// * Per (username, client address), a backoff: `free` failures in a row pass, then each
///   attempt waits `first`, doubling up to `max`. Guessing from one address is slow, and
///   only that address waits: the owner logging in from another is not held back.
/// * Per username, failures from every address are counted; past `ceiling` (a guesser
///   spread over many addresses) the name is under attack: an address that has failed for
///   it gets no free attempts any more, and one that has not is never refused, only made to
///   wait `slow` before its attempt is judged.
///
/// A success clears its address's backoff; a name or pair is forgotten once quiet for `max`.
struct LoginBackoff {
    /// Failures in a row from one address that pass without waiting.
    free: u32,
    /// The first wait; it doubles with every further attempt.
    first: Duration,
    /// The longest wait, and the quiet time after which an entry is forgotten.
    max: Duration,
    /// Failures of one name, over every address, past which the name is under attack.
    ceiling: u32,
    /// How long an attempt for a name under attack waits before it is judged.
    slow: Duration,
    pairs: DashMap<(String, IpAddr), Attempts>,
    names: DashMap<String, Failures>,
}

struct Attempts {
    /// Attempts since the last success (or since the pair was forgotten).
    attempts: u32,
    last: Instant,
    /// No attempt before this.
    not_before: Instant,
}

struct Failures {
    /// Failed (or not yet judged) attempts for the name, from every address.
    count: u32,
    last: Instant,
}

impl LoginBackoff {
    fn attempt(&self, name: &str, client: IpAddr, now: Instant) -> Result<Duration, ApiError> {
        let attacked = self
            .names
            .get(name)
            .is_some_and(|f| f.count >= self.ceiling);
        let key = (name.to_owned(), client);
        let mut pair = self.pairs.entry(key).or_insert(Attempts {
            attempts: 0,
            last: now,
            not_before: now,
        });
        if now < pair.not_before {
            return Err(rate_limited(pair.not_before - now));
        }
        // An address failing for a name under attack has used up its free attempts.
        let failing = pair.attempts > 0;
        let free = if attacked { 0 } else { self.free };
        pair.attempts = pair.attempts.saturating_add(1);
        pair.last = now;
        if let Some(beyond) = pair.attempts.checked_sub(free.max(1)) {
            pair.not_before = now + self.wait(beyond);
        }
        drop(pair);
        let mut failures = self.names.entry(name.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        });
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        Ok(if attacked && !failing {
            self.slow
        } else {
            Duration::ZERO
        })
    }

    fn succeeded(&self, name: &str, client: IpAddr) {
        self.pairs.remove(&(name.to_owned(), client));
        self.uncount(name);
    }

    fn not_judged(&self, name: &str, client: IpAddr) {
        if let Some(mut pair) = self.pairs.get_mut(&(name.to_owned(), client)) {
            pair.attempts = pair.attempts.saturating_sub(1);
        }
        self.uncount(name);
    }

    /// Takes back the failure [`LoginBackoff::attempt`] counted in advance.
    fn uncount(&self, name: &str) {
        if let Some(mut failures) = self.names.get_mut(name) {
            failures.count = failures.count.saturating_sub(1);
        }
    }

    /// The wait after the `beyond`-th attempt past the free ones (0 for the last free one).
    fn wait(&self, beyond: u32) -> Duration {
        // Past 2^20 the doubling is far beyond any sane maximum; stop before it overflows.
        self.first.saturating_mul(1 << beyond.min(20)).min(self.max)
    }

    fn shrink(&self, now: Instant) {
        self.pairs
            .retain(|_, a| now.saturating_duration_since(a.last) < self.max);
        self.names
            .retain(|_, f| now.saturating_duration_since(f.last) < self.max);
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
            subscribes_per_sec: 1,
            subscribes_burst: 2,
            removals_per_sec: 1,
            removals_burst: 1,
            auth_per_min: 2,
            login_free_failures: 2,
            login_backoff_secs: 4,
            login_backoff_max_secs: 60,
            login_name_failures: 6,
            login_name_delay_ms: 500,
        }
    }

    fn retry_after<T: std::fmt::Debug>(r: Result<T, ApiError>) -> u64 {
        match r {
            Err(ApiError::RateLimited { retry_after_secs }) => retry_after_secs,
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));

    /// The `n`-th of many attacking addresses.
    fn attacker(n: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, n))
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
        for _ in 0..2 {
            limits.subscribe(user).expect("within the subscribe burst");
        }
        assert_eq!(retry_after(limits.subscribe(user)), 1, "subscribes");
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
        let ip = attacker(1);
        let t0 = Instant::now();
        b.attempt("alice", ip, t0).expect("first free attempt");
        b.attempt("alice", ip, t0).expect("second free attempt");
        let first = retry_after(b.attempt("alice", ip, t0));
        assert_eq!(first, 4, "after the free attempts: login_backoff_secs");
        let t1 = t0 + Duration::from_secs(4);
        b.attempt("alice", ip, t1)
            .expect("allowed once the wait is over");
        let second = retry_after(b.attempt("alice", ip, t1));
        assert_eq!(second, 8, "the wait doubles");
        let t2 = t1 + Duration::from_secs(8);
        b.attempt("alice", ip, t2)
            .expect("allowed once the longer wait is over");
        assert_eq!(retry_after(b.attempt("alice", ip, t2)), 16);
        b.attempt("bob", ip, t2)
            .expect("other names are not throttled");
        assert_eq!(
            b.attempt("alice", HOME, t2).expect("another address"),
            Duration::ZERO,
            "the owner's address is not held back by another's failures"
        );
    }

    #[test]
    fn the_backoff_stops_at_its_maximum() {
        let limits = Limits::new(&settings()).expect("valid settings");
        let b = &limits.logins;
        let mut now = Instant::now();
        for _ in 0..40 {
            now += b.max;
            b.attempt("alice", HOME, now)
                .expect("allowed after the longest wait");
        }
        assert_eq!(retry_after(b.attempt("alice", HOME, now)), 60);
    }

    #[test]
    fn a_success_resets_the_backoff_for_any_letter_case() {
        let limits = Limits::new(&settings()).expect("valid settings");
        for _ in 0..2 {
            limits.login_attempt("Alice", HOME).expect("free attempts");
        }
        limits
            .login_attempt("alice", HOME)
            .expect_err("throttled now");
        limits.login_succeeded("ALICE", HOME);
        limits
            .login_attempt("alice", HOME)
            .expect("a success clears the count");
    }

    #[test]
    fn past_its_ceiling_a_name_is_slowed_for_clean_addresses_and_closed_to_failing_ones() {
        let limits = Limits::new(&settings()).expect("valid settings");
        let b = &limits.logins;
        let t0 = Instant::now();
        // Six failures from three addresses: the ceiling.
        for n in 1..=3 {
            for _ in 0..2 {
                assert_eq!(
                    b.attempt("alice", attacker(n), t0).expect("free attempts"),
                    Duration::ZERO,
                    "below the ceiling nobody waits"
                );
            }
        }
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(
            b.attempt("alice", HOME, t1).expect("never refused"),
            Duration::from_millis(500),
            "a clean address waits login_name_delay_ms"
        );
        limits.login_succeeded("alice", HOME);
        assert!(
            b.attempt("alice", attacker(1), t1).is_ok(),
            "its own backoff has run out"
        );
        assert!(
            retry_after(b.attempt("alice", attacker(1), t1)) > 0,
            "a failing address has no free attempts left while the name is under attack"
        );
        assert_eq!(
            b.attempt("alice", attacker(9), t1)
                .expect("a new address is never refused"),
            Duration::from_millis(500),
        );
        assert_eq!(
            b.attempt("bob", attacker(1), t1).expect("other names"),
            Duration::ZERO
        );
    }

    #[test]
    fn a_quiet_name_is_forgotten() {
        let limits = Limits::new(&settings()).expect("valid settings");
        let b = &limits.logins;
        let t0 = Instant::now();
        b.attempt("alice", HOME, t0).expect("first attempt");
        b.shrink(t0 + b.max);
        assert!(
            b.pairs.is_empty() && b.names.is_empty(),
            "quiet names are dropped"
        );
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
