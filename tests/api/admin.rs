//! Admin and operations: access rules, broadcast, stats, disconnect, metrics, rate limits,
//! the CLI, graceful shutdown.

use std::{collections::BTreeMap, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{
        ADMIN_TOKEN, Client, TestApp, assert_error, single_node_only, spawn_app, spawn_app_with,
        spawn_app_with_admin,
    },
    process::{Server, cli},
    sse::End,
};

/// A request to `path` with an arbitrary bearer `token`.
fn bearer(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token)
}

/// Registers `name` and makes it an admin directly in the app's database.
async fn admin_user(app: &TestApp, name: &str) -> Client {
    let c = app.user(name).await;
    app.db
        .set_role(
            name,
            roomcast::domain::Role::Admin,
            roomcast::db::AppliedBy::Servers,
        )
        .await
        .expect("making the user an admin");
    c
}

#[tokio::test]
async fn admin_routes_are_401_without_credentials_and_403_for_users() {
    let app = spawn_app_with_admin().await;
    let anon = app.client();
    assert_error(anon.get("/api/admin/stats").await, 401, "unauthorized").await;
    let user = app.user("plain").await;
    assert_error(user.get("/api/admin/stats").await, 403, "forbidden").await;
    let res = user
        .post("/api/admin/broadcast", json!({ "body": "hi" }))
        .await;
    assert_error(res, 403, "forbidden").await;
    let wrong = bearer(
        &app,
        Method::GET,
        "/api/admin/stats",
        "not-the-token-at-all",
    )
    .send()
    .await
    .unwrap();
    assert_error(wrong, 401, "unauthorized").await;
}

#[tokio::test]
async fn the_bearer_token_and_an_admin_session_both_grant_access() {
    let app = spawn_app_with_admin().await;
    let ok = app
        .admin(Method::GET, "/api/admin/stats")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "bearer token");
    let admin = admin_user(&app, "boss").await;
    assert_eq!(
        admin.get("/api/admin/stats").await.status(),
        200,
        "admin session"
    );
}

#[tokio::test]
async fn bearer_access_is_off_without_a_configured_token() {
    let app = spawn_app().await;
    let res = app
        .admin(Method::GET, "/api/admin/stats")
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_broadcast_is_stored_and_reaches_every_open_connection() {
    let app = spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut unsubscribed = alice.events().await;
    let mut filtered = bob.events().await;
    bob.subscribe_with(&filtered, json!({ "rooms": ["r"], "events": ["typing"] }))
        .await;
    let before = bob.say("r", "before").await["id"].as_i64().unwrap();

    let res = app
        .admin(Method::POST, "/api/admin/broadcast")
        .json(&json!({ "body": "  maintenance at noon  " }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let b = &body["broadcast"];
    assert_eq!(b.as_object().unwrap().len(), 3, "id, body, sent_at: {b}");
    assert_eq!(b["body"], "maintenance at noon");
    assert!(
        b["id"].as_i64().unwrap() > before,
        "broadcasts share the message id sequence"
    );

    for sse in [&mut unsubscribed, &mut filtered] {
        let e = sse.expect("broadcast").await;
        assert_eq!(e.id_num(), b["id"].as_i64().unwrap());
        assert_eq!(
            e.json(),
            *b,
            "broadcast event data equals the stored broadcast"
        );
    }
}

#[tokio::test]
async fn an_empty_broadcast_is_400() {
    let app = spawn_app_with_admin().await;
    let res = app
        .admin(Method::POST, "/api/admin/broadcast")
        .json(&json!({ "body": "   " }))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_body").await;
}

#[tokio::test]
async fn stats_count_live() {
    let app = spawn_app_with_admin().await;
    let s = app.stats().await;
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 7, "exactly the contract's fields: {keys:?}");
    assert_eq!(s["connections"], 0);

    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut a1 = alice.events().await;
    let a2 = alice.events().await;
    let b1 = bob.events().await;
    alice.subscribe(&a1, &["x", "y"]).await;
    alice.subscribe(&a2, &["x"]).await;
    bob.subscribe(&b1, &["x"]).await;
    bob.say("x", "hello").await;
    a1.expect("message").await;
    let s = app.stats().await;
    assert_eq!(s["connections"], 3, "{s}");
    assert_eq!(s["users_online"], 2, "{s}");
    assert_eq!(s["rooms"], 2, "{s}");
    assert_eq!(s["subscriptions"], 4, "{s}");
    assert_eq!(s["messages_stored"], 1, "{s}");
    assert!(s["events_delivered"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["slow_disconnects"], 0, "{s}");
}

#[tokio::test]
async fn disconnect_closes_every_stream_of_that_user_only() {
    let app = spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut a1 = alice.events().await;
    let mut a2 = alice.events().await;
    let mut b = bob.events().await;
    let res = app
        .admin(Method::POST, "/api/admin/users/ALICE/disconnect")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({ "closed": 2 }));
    assert!(
        a1.ends_within(Duration::from_secs(3)).await,
        "alice's first stream still open"
    );
    assert!(
        a2.ends_within(Duration::from_secs(3)).await,
        "alice's second stream still open"
    );
    assert!(
        !b.ends_within(Duration::from_millis(300)).await,
        "bob's stream was closed too"
    );
    let res = app
        .admin(Method::POST, "/api/admin/users/nobody/disconnect")
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "unknown_user").await;
}

#[tokio::test]
async fn readyz_answers_while_the_database_does() {
    let app = spawn_app().await;
    let res = app.client().get("/readyz").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn readyz_is_503_once_the_database_stops_answering() {
    if single_node_only("readiness is each node's own; a balancer picks either node") {
        return;
    }
    let app = spawn_app().await;
    assert_eq!(
        app.client().get("/readyz").await.status(),
        200,
        "not ready before the database went away"
    );
    app.db.close().await;
    assert_error(app.client().get("/readyz").await, 503, "unavailable").await;
}

/// One sample of a Prometheus text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses every sample line (`name{k="v",…} value`) of a Prometheus text exposition.
fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no value in metrics line {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|e| panic!("value in {line:?}: {e}"));
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                    let labels = body
                        .split("\",")
                        .map(|pair| {
                            let (k, v) = pair
                                .split_once("=\"")
                                .unwrap_or_else(|| panic!("label {pair:?} in {line:?}"));
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
            };
            Sample {
                name: name.to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

/// The value of the series `name` with exactly `labels`, if exposed.
fn series(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// `GET /metrics` at `base`, checked for its content type and parsed.
async fn scrape(c: &Client) -> Vec<Sample> {
    let res = c.get("/metrics").await;
    assert_eq!(res.status(), 200, "GET /metrics");
    let ct = res.headers()["content-type"]
        .to_str()
        .expect("ascii content type")
        .to_owned();
    assert!(ct.starts_with("text/plain"), "metrics content type {ct}");
    parse_exposition(&res.text().await.expect("metrics text"))
}

/// The request counter and latency histogram move by exactly the requests made. The
/// recorder is shared by every app in this test process, so this compares before and
/// after on a series no other test touches: `PATCH /api/me` (405).
#[tokio::test]
async fn metrics_count_requests_by_method_route_and_status() {
    let app = spawn_app().await;
    let c = app.client();
    let counter = |s: &[Sample]| {
        series(
            s,
            "roomcast_http_requests_total",
            &[("method", "PATCH"), ("route", "/api/me"), ("status", "405")],
        )
        .unwrap_or(0.0)
    };
    let timed = |s: &[Sample]| {
        series(
            s,
            "roomcast_http_request_duration_seconds_count",
            &[("method", "PATCH"), ("route", "/api/me")],
        )
        .unwrap_or(0.0)
    };
    let before = scrape(&c).await;
    for _ in 0..3 {
        let res = c
            .http
            .patch(format!("{}/api/me", app.base))
            .send()
            .await
            .expect("PATCH /api/me");
        assert_error(res, 405, "method_not_allowed").await;
    }
    let after = scrape(&c).await;
    assert_eq!(
        counter(&after) - counter(&before),
        3.0,
        "roomcast_http_requests_total for PATCH /api/me 405"
    );
    assert_eq!(
        timed(&after) - timed(&before),
        3.0,
        "roomcast_http_request_duration_seconds_count for PATCH /api/me"
    );
}

/// The hub's gauges and counters in `/metrics` equal the live figures. Run in a process of
/// its own: its recorder sees no other test's app.
#[tokio::test]
async fn metrics_report_the_hubs_figures_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &[("ROOMCAST__ADMIN__API_TOKEN", ADMIN_TOKEN)]);
    let alice = server.client();
    assert_eq!(alice.register("alice", "password123").await.status(), 201);
    let mut sse = alice.events().await;
    alice.subscribe(&sse, &["m"]).await;
    alice.say("m", "counted").await;
    sse.expect("message").await;
    assert_error(server.client().get("/api/me").await, 401, "unauthorized").await;

    let stats: Value = reqwest::Client::new()
        .get(format!("{}/api/admin/stats", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("GET /api/admin/stats")
        .json()
        .await
        .expect("stats answer");
    let samples = scrape(&server.client()).await;
    let value =
        |name: &str| series(&samples, name, &[]).unwrap_or_else(|| panic!("metrics lack {name}"));
    // One stream of one user, in one room, after one stored message.
    for (name, expected) in [
        ("roomcast_connections", 1.0),
        ("roomcast_users_online", 1.0),
        ("roomcast_rooms", 1.0),
        ("roomcast_subscriptions", 1.0),
        ("roomcast_messages_stored_total", 1.0),
        ("roomcast_slow_disconnects_total", 0.0),
    ] {
        assert_eq!(value(name), expected, "{name}");
    }
    let delivered = stats["events_delivered"]
        .as_f64()
        .unwrap_or_else(|| panic!("events_delivered in {stats}"));
    assert!(
        delivered >= 2.0,
        "own join and the message delivered: {stats}"
    );
    assert_eq!(
        value("roomcast_events_delivered_total"),
        delivered,
        "events delivered, as /api/admin/stats counts them"
    );
    assert_eq!(
        series(
            &samples,
            "roomcast_http_requests_total",
            &[("method", "GET"), ("route", "/api/me"), ("status", "401")],
        ),
        Some(1.0),
        "the one anonymous GET /api/me"
    );
}

#[tokio::test]
async fn posting_past_the_rate_limit_is_429_and_stores_nothing() {
    if single_node_only("each node enforces its own rate limits") {
        return;
    }
    let app = spawn_app_with(|s| {
        s.rate_limit.messages_per_sec = 1;
        s.rate_limit.messages_burst = 2;
    })
    .await;
    let alice = app.user("alice").await;
    alice.say("r", "one").await;
    alice.say("r", "two").await;
    let res = alice
        .post("/api/rooms/r/messages", json!({ "body": "three" }))
        .await;
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_error(res, 429, "rate_limited").await;
    assert_eq!(retry.as_deref(), Some("1"), "Retry-After in whole seconds");
    // Custom events sharing the allowance and per-user allowances: rooms.rs.
    let page: Value = alice
        .get("/api/rooms/r/messages")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["messages"].as_array().unwrap().len(),
        2,
        "the limited post was stored"
    );
}

#[tokio::test]
async fn logins_past_the_per_ip_limit_are_429() {
    if single_node_only("each node enforces its own rate limits") {
        return;
    }
    let app = spawn_app_with(|s| s.rate_limit.auth_per_min = 3).await;
    let c = app.client();
    assert_eq!(c.register("alice", "password123").await.status(), 201);
    assert_eq!(c.login("alice", "password123").await.status(), 200);
    assert_error(
        c.login("alice", "wrong-password").await,
        401,
        "invalid_credentials",
    )
    .await;
    let res = c.login("alice", "password123").await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_error(res, 429, "rate_limited").await;
}

#[test]
fn the_cli_creates_the_first_admin_and_manages_roles() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(
        dir.path(),
        &["user", "create", "root_admin", "--admin"],
        "s3cret-password\n",
    );
    assert!(
        out.status.success(),
        "create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = cli(
        dir.path(),
        &["user", "create", "ROOT_ADMIN"],
        "s3cret-password\n",
    );
    assert!(!again.status.success(), "a taken name must fail");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("taken"),
        "says why"
    );
    let short = cli(dir.path(), &["user", "create", "someone"], "short\n");
    assert!(!short.status.success(), "a short password must fail");

    let out = cli(
        dir.path(),
        &["user", "create", "helper"],
        "another-password\n",
    );
    assert!(out.status.success());
    let out = cli(dir.path(), &["user", "set-role", "helper", "admin"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = cli(dir.path(), &["user", "set-role", "ghost", "admin"], "");
    assert!(!missing.status.success(), "an unknown user must fail");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ghost"));
    let list = String::from_utf8(cli(dir.path(), &["user", "list"], "").stdout).unwrap();
    assert!(list.contains("root_admin\tadmin"), "{list}");
    assert!(list.contains("helper\tadmin"), "{list}");
}

#[tokio::test]
async fn the_cli_admin_can_log_in_and_broadcast() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(
        dir.path(),
        &["user", "create", "first", "--admin"],
        "first-password\n",
    );
    assert!(out.status.success());
    let server = Server::start(dir.path(), &[]);
    let c = server.client();
    let res = c.login("first", "first-password").await;
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["user"]["role"], "admin");
    let res = c
        .post("/api/admin/broadcast", json!({ "body": "hello all" }))
        .await;
    assert_eq!(res.status(), 201);
}

/// SIGTERM: the stream ends with complete frames and then the response's last chunk (which
/// only a live server writes: a dead one breaks the stream instead), acknowledged posts are
/// on disk, and the process exits 0 within the shutdown timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_streams_cleanly_and_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(
        dir.path(),
        &[("ROOMCAST__SERVER__SHUTDOWN_TIMEOUT_SECS", "5")],
    );
    let c = server.client();
    assert_eq!(c.register("alice", "password123").await.status(), 201);
    let mut sse = c.events().await;
    c.subscribe(&sse, &["r"]).await;
    let acked = c.say_id("r", "just before the signal").await;
    sse.expect("message").await;

    let signalled = server.send_sigterm();
    let end = sse.end_within(Duration::from_secs(5)).await;
    assert_eq!(
        end,
        Some(End::Clean),
        "the stream did not end cleanly after SIGTERM; received {:?}",
        sse.raw
    );
    assert!(
        sse.raw.ends_with("\n\n"),
        "a broken frame at the end: {:?}",
        sse.raw
    );
    let status = server
        .exited_within(Duration::from_secs(6))
        .await
        .expect("the process exits after SIGTERM");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    drop(server);

    let server = Server::start(dir.path(), &[]);
    let c = server.client();
    assert_eq!(c.login("alice", "password123").await.status(), 200);
    let page: Value = c
        .get("/api/rooms/r/messages")
        .await
        .json()
        .await
        .expect("history answer");
    assert_eq!(page["messages"][0]["id"], acked, "the acknowledged post");
}

/// The other side of the SIGTERM test: a stream whose server dies is read as broken, not as
/// a clean end.
#[tokio::test]
async fn a_killed_servers_stream_reads_as_broken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &[]);
    let c = server.client();
    assert_eq!(c.register("alice", "password123").await.status(), 201);
    let mut sse = c.events().await;
    server.kill_9();
    let end = sse.end_within(Duration::from_secs(5)).await;
    assert!(
        matches!(end, Some(End::Broken(_))),
        "a killed server's stream ended as {end:?}"
    );
}

#[test]
fn a_bad_config_value_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .current_dir(dir.path())
        .env("ROOMCAST__SERVER__DATA_DIR", dir.path())
        .env("ROOMCAST__SERVER__PORT", "not-a-port")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a bad port");
    assert!(
        stderr.contains("server.port"),
        "the message names the key: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "a panic instead of a message: {stderr}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .current_dir(dir.path())
        .env("ROOMCAST__SSE__QUEUE_CAPACITY", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("sse.queue_capacity"), "{stderr}");
}

#[tokio::test]
async fn the_cli_bans_and_unbans_an_account() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(
        dir.path(),
        &["user", "create", "mallory"],
        "mallory-password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(dir.path(), &[]);
    let c = server.client();
    assert_eq!(c.login("mallory", "mallory-password").await.status(), 200);

    let out = cli(dir.path(), &["user", "ban", "mallory"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_error(c.get("/api/me").await, 401, "unauthorized").await;
    let res = c.login("mallory", "mallory-password").await;
    assert_error(res, 403, "account_banned").await;

    let out = cli(dir.path(), &["user", "unban", "mallory"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        c.login("mallory", "mallory-password").await.status(),
        200,
        "an unbanned account logs in again"
    );
    let ghost = cli(dir.path(), &["user", "ban", "ghost"], "");
    assert!(!ghost.status.success(), "banning nobody must fail");
}
