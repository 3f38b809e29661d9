//! Holding up on the open internet: bounded password hashing, login throttling per
//! username and client address under a per-username ceiling, trusted proxies, the cross-site check's idea of "us", idle sessions whose streams
//! close when they expire, and refusing a zero rate at start-up.

use std::{
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::future::join_all;
use serde_json::json;

use crate::{
    helpers::{Client, TestApp, assert_error, single_node_only, spawn_app_with},
    process::Server,
};

/// `Retry-After` as whole seconds; panics when missing.
fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .expect("ASCII Retry-After")
        .parse()
        .expect("Retry-After in whole seconds")
}

/// A login from a fresh client (no cookies), optionally with extra headers.
async fn login_as(
    app_base: &str,
    username: impl AsRef<str>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{app_base}/api/login"))
        .json(&json!({ "username": username.as_ref(), "password": "wrong-password" }));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("POST /api/login")
}

#[tokio::test]
async fn logins_past_the_hashing_queue_are_503_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.password.hash_threads = Some(1);
        s.password.hash_queue = 1;
    })
    .await;
    let attempts = (0..12).map(|i| login_as(&app.base, format!("nobody{i}"), &[]));
    let answers = join_all(attempts).await;
    let mut busy = 0;
    for res in answers {
        match res.status().as_u16() {
            401 => {}
            503 => {
                busy += 1;
                assert!(retry_after(&res) >= 1, "Retry-After on 503");
                assert_error(res, 503, "unavailable").await;
            }
            other => panic!("a login in a storm answered {other}, not 401 or 503"),
        }
    }
    assert!(
        busy > 0,
        "12 logins at once with 1 thread and 1 queue slot: some must be refused"
    );
}

#[tokio::test]
async fn after_failed_logins_a_username_waits_even_with_the_right_password() {
    if single_node_only("login backoff is per node") {
        return;
    }
    let app = spawn_app_with(|s| {
        s.rate_limit.login_free_failures = 2;
        s.rate_limit.login_backoff_secs = 30;
        s.rate_limit.login_backoff_max_secs = 60;
    })
    .await;
    let alice = app.user("alice").await;
    let _bob = app.user("bob").await;
    let c = app.client();
    for _ in 0..2 {
        assert_eq!(c.login("alice", "wrong-password").await.status(), 401);
    }
    let res = c.login("ALICE", "password123").await;
    let wait = retry_after(&res);
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    assert_error(res, 429, "rate_limited").await;
    assert_eq!(
        c.login("bob", "password123").await.status(),
        200,
        "another username is not throttled"
    );
    drop(alice);
}

/// A client without cookies whose connections leave from `local` (every 127.x.y.z address
/// is loopback, so 127.0.0.2 reaches a server on 127.0.0.1 as another client address).
fn client_from(base: &str, local: &str) -> Client {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .local_address(Some(local.parse().expect("an IP")))
        .build()
        .expect("http client");
    Client {
        http,
        base: base.to_owned(),
        jar,
    }
}

#[tokio::test]
async fn an_attacker_failing_from_one_address_cannot_lock_the_owner_out_from_another() {
    if single_node_only("login backoff is per node, and the balancer hides client addresses") {
        return;
    }
    let app = spawn_app_with(|s| {
        s.rate_limit.login_free_failures = 3;
        s.rate_limit.login_backoff_secs = 30;
    })
    .await;
    app.user("alice").await;
    // The attacker, on 127.0.0.1, uses up its free failures: from there even the right
    // password now waits.
    let attacker = app.client();
    for _ in 0..3 {
        assert_eq!(
            attacker.login("alice", "wrong-password").await.status(),
            401
        );
    }
    let res = attacker.login("alice", "password123").await;
    assert_error(res, 429, "rate_limited").await;
    // The owner logs in from 127.0.0.2 while the attacker keeps trying.
    let owner = client_from(&app.base, "127.0.0.2");
    let attacks = async {
        let mut refused = 0;
        for _ in 0..10 {
            if attacker.login("alice", "wrong-password").await.status() == 429 {
                refused += 1;
            }
        }
        refused
    };
    let started = std::time::Instant::now();
    let (res, refused) = tokio::join!(owner.login("alice", "password123"), attacks);
    let took = started.elapsed();
    assert_eq!(res.status(), 200, "the owner's login from another address");
    assert_eq!(refused, 10, "the attacker's address stays throttled");
    assert!(
        took < Duration::from_secs(5),
        "the owner's login took {took:?}"
    );
    assert_eq!(
        owner.me().await["username"],
        "alice",
        "the owner is logged in"
    );
}

#[tokio::test]
async fn past_its_ceiling_a_username_is_slowed_but_the_right_password_gets_in() {
    if single_node_only("login backoff is per node") {
        return;
    }
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1".parse().expect("a CIDR")];
        s.rate_limit.login_free_failures = 2;
        s.rate_limit.login_backoff_secs = 30;
        s.rate_limit.login_name_failures = 6;
        s.rate_limit.login_name_delay_ms = 1000;
    })
    .await;
    app.user("alice").await;
    // A guesser spread over three addresses: two failures each, the name's ceiling.
    for n in 1..=3 {
        let from = format!("203.0.113.{n}");
        for _ in 0..2 {
            let res = login_as(&app.base, "alice", &[("x-forwarded-for", &from)]).await;
            assert_eq!(res.status(), 401, "a guess from {from}");
        }
        let res = login_as(&app.base, "alice", &[("x-forwarded-for", &from)]).await;
        assert_error(res, 429, "rate_limited").await;
    }
    // The owner, from an address that has not been failing: slowed, never refused.
    let owner = app.client();
    let started = std::time::Instant::now();
    let res = owner
        .http
        .post(format!("{}/api/login", app.base))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({ "username": "alice", "password": "password123" }))
        .send()
        .await
        .expect("POST /api/login");
    let took = started.elapsed();
    assert_eq!(res.status(), 200, "the right password from a clean address");
    assert!(
        took >= Duration::from_millis(950),
        "a login for a name under attack waits login_name_delay_ms; it took {took:?}"
    );
    // Another name is not slowed.
    app.user("bob").await;
    let started = std::time::Instant::now();
    assert_eq!(app.client().login("bob", "password123").await.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "bob's login was slowed: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn each_further_failure_for_a_username_waits_longer() {
    if single_node_only("login backoff is per node") {
        return;
    }
    let app = spawn_app_with(|s| {
        s.rate_limit.login_free_failures = 1;
        s.rate_limit.login_backoff_secs = 1;
    })
    .await;
    let c = app.client();
    assert_eq!(c.login("carol", "wrong-password").await.status(), 401);
    let first = c.login("carol", "wrong-password").await;
    assert_eq!(first.status(), 429, "the second attempt at once waits");
    assert_eq!(retry_after(&first), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        c.login("carol", "wrong-password").await.status(),
        401,
        "allowed after the first wait"
    );
    let second = c.login("carol", "wrong-password").await;
    assert_eq!(second.status(), 429);
    assert_eq!(
        retry_after(&second),
        2,
        "the second wait is twice the first"
    );
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_change_the_client() {
    if single_node_only("each node enforces its own rate limits") {
        return;
    }
    let app = spawn_app_with(|s| s.rate_limit.auth_per_min = 2).await;
    for (i, client) in ["198.51.100.1", "198.51.100.2"].iter().enumerate() {
        let res = login_as(
            &app.base,
            &format!("dave{i}"),
            &[("x-forwarded-for", client)],
        )
        .await;
        assert_eq!(res.status(), 401, "within the per-IP limit");
    }
    let res = login_as(&app.base, "dave9", &[("x-forwarded-for", "198.51.100.3")]).await;
    assert_error(res, 429, "rate_limited").await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    if single_node_only("each node enforces its own rate limits") {
        return;
    }
    let app = spawn_app_with(|s| {
        s.rate_limit.auth_per_min = 2;
        s.server.trusted_proxies = vec!["127.0.0.1".parse().expect("a CIDR")];
    })
    .await;
    for client in ["198.51.100.1", "198.51.100.2"] {
        for i in 0..2 {
            let hops = format!("203.0.113.77, {client}");
            let res = login_as(
                &app.base,
                &format!("erin{i}"),
                &[("x-forwarded-for", &hops)],
            )
            .await;
            assert_eq!(
                res.status(),
                401,
                "{client} attempt {i} is within its own limit"
            );
        }
    }
    let res = login_as(&app.base, "erin9", &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_error(res, 429, "rate_limited").await;
}

/// `POST /api/login` with the given headers; the status.
async fn post_with(app: &TestApp, headers: &[(&str, &str)]) -> u16 {
    login_as(&app.base, "frank", headers)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn forwarding_headers_cannot_make_a_foreign_origin_ours() {
    let app = spawn_app_with(|_| {}).await;
    let forged = [
        ("origin", "http://evil.example"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "host=evil.example;proto=http"),
    ];
    assert_eq!(post_with(&app, &forged).await, 403);
    let ours = app.base.as_str();
    assert_eq!(
        post_with(&app, &[("origin", ours)]).await,
        401,
        "our own origin passes the check"
    );
}

#[tokio::test]
async fn with_a_public_origin_only_that_exact_origin_passes() {
    let app = spawn_app_with(|s| {
        s.server.public_origin = Some("https://chat.example".to_owned());
    })
    .await;
    assert_eq!(
        post_with(&app, &[("origin", "https://chat.example")]).await,
        401,
        "the public origin passes"
    );
    assert_eq!(
        post_with(&app, &[("origin", "http://chat.example")]).await,
        403,
        "the same host over another scheme is refused"
    );
    assert_eq!(
        post_with(&app, &[("origin", app.base.as_str())]).await,
        403,
        "the Host header no longer decides once a public origin is set"
    );
}

/// Whether an answer sends the session cookie again with a `Max-Age` (renewed).
fn renews_cookie(res: &reqwest::Response) -> bool {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.starts_with("roomcast_session=") && v.contains("Max-Age="))
}

#[tokio::test]
async fn using_a_session_renews_its_cookie() {
    let app = spawn_app_with(|_| {}).await;
    let c = app.user("gina").await;
    let res = c.get("/api/me").await;
    assert_eq!(res.status(), 200);
    assert!(
        renews_cookie(&res),
        "an idle timeout needs the cookie's Max-Age pushed ahead on use"
    );
}

#[tokio::test]
async fn a_session_is_renewed_at_most_once_per_touch_interval() {
    let app = spawn_app_with(|s| s.session.touch_interval_secs = 3600).await;
    let c = app.user("hana").await;
    assert!(
        renews_cookie(&c.get("/api/me").await),
        "the first use renews"
    );
    let again = c.get("/api/me").await;
    assert_eq!(again.status(), 200);
    assert!(
        !renews_cookie(&again),
        "a use within the touch interval sends no cookie (and writes nothing)"
    );
}

#[tokio::test]
async fn when_a_session_expires_its_streams_close() {
    let app = spawn_app_with(|s| s.session.purge_interval_secs = 1).await;
    let c = app.user("hank").await;
    let mut sse = c.events().await;
    app.db
        .execute_for_tests("UPDATE sessions SET expires_at = 0")
        .await
        .expect("expire every session");
    assert!(
        sse.ends_within(Duration::from_secs(5)).await,
        "the expired session's stream stayed open"
    );
    assert_eq!(
        c.get("/api/me").await.status(),
        401,
        "and the session is gone"
    );
}

#[test]
fn a_zero_rate_stops_start_up_naming_its_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .current_dir(dir.path())
        .env("ROOMCAST__SERVER__PORT", "0")
        .env("ROOMCAST__SERVER__DATA_DIR", dir.path())
        .env(
            "ROOMCAST__DATABASE__URL",
            format!("sqlite://{}/rc.db?mode=rwc", dir.path().display()),
        )
        .env("ROOMCAST__RATE_LIMIT__MESSAGES_PER_SEC", "0")
        .stdin(Stdio::null())
        .output()
        .expect("running roomcast");
    assert!(!out.status.success(), "started with a zero rate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rate_limit.messages_per_sec"),
        "the error must name the key; stderr: {stderr}"
    );
}

/// (resident set, threads) of a process, from /proc.
fn rss_and_threads(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:") * 1024, field("Threads:"))
}

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn a_login_storm_leaves_memory_bounded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        dir.path(),
        &[
            ("ROOMCAST__PASSWORD__HASH_THREADS", "2"),
            ("ROOMCAST__SERVER__WORKERS", "2"),
        ],
    );
    let pid = server.child.id();
    let c = server.client();
    assert_eq!(c.register("ivan", "password123").await.status(), 201);
    let (before, threads_before) = rss_and_threads(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let peak_threads = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak, peak_threads) = (stop.clone(), peak.clone(), peak_threads.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (rss, threads) = rss_and_threads(pid);
                peak.fetch_max(rss, Ordering::Relaxed);
                peak_threads.fetch_max(threads, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // The storm: 48 failed logins at once, three times over.
    let mut refused = 0;
    for wave in 0..3 {
        let logins = (0..48).map(|i| login_as(&server.base, format!("storm{wave}x{i}"), &[]));
        for res in join_all(logins).await {
            match res.status().as_u16() {
                401 => {}
                503 => refused += 1,
                other => panic!("a storm login answered {other}"),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, threads_after) = rss_and_threads(pid);
    let (peak, peak_threads) = (
        peak.load(Ordering::Relaxed),
        peak_threads.load(Ordering::Relaxed),
    );
    eprintln!(
        "login storm: RSS before {} MiB, peak {} MiB, after {} MiB; threads {threads_before} → \
         peak {peak_threads} → {threads_after}; {refused} of 144 answered 503",
        before / MIB,
        peak / MIB,
        after / MIB,
    );
    assert!(
        peak < 200 * MIB,
        "peak RSS {} MiB during the storm",
        peak / MIB
    );
    // The second hashing thread's blocks (19 MiB) may be new; little else should stay.
    assert!(
        after < before + 40 * MIB,
        "RSS went from {} MiB to {} MiB and stayed",
        before / MIB,
        after / MIB
    );
}
