//! Webhooks: admin routes, signed deliveries of the stored log in id order, at least once
//! through failures, restarts and (on a cluster) node deaths, to a receiver in this process.

use std::{collections::HashSet, time::Duration};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use roomcast::config::Settings;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    helpers::{ADMIN_TOKEN, Client, TestApp, WAIT, assert_error, cluster_size, spawn_app_with},
    process::Server,
    receiver::{Answer, Receiver},
};

/// How long a test waits for deliveries that should come (retries included).
const DELIVERED_WITHIN: Duration = Duration::from_secs(20);

/// Test timings: retries after 100 ms doubling to 1 s, leases of 3 s, polls of 200 ms.
fn fast(s: &mut Settings) {
    s.admin.api_token = Some(ADMIN_TOKEN.into());
    s.webhooks.backoff_first_ms = 100;
    s.webhooks.backoff_max_secs = 1;
    s.webhooks.lease_secs = 3;
    s.webhooks.poll_ms = 200;
}

async fn app() -> TestApp {
    spawn_app_with(fast).await
}

/// `POST /api/admin/webhooks` with `body`, the raw response.
async fn try_create(app: &TestApp, body: Value) -> reqwest::Response {
    app.admin(Method::POST, "/api/admin/webhooks")
        .json(&body)
        .send()
        .await
        .expect("POST /api/admin/webhooks")
}

/// Makes a webhook to `url` that must succeed: `(webhook, secret)`.
async fn create(
    app: &TestApp,
    url: &str,
    events: &[&str],
    rooms: Option<&[&str]>,
) -> (Value, String) {
    let res = try_create(app, json!({ "url": url, "events": events, "rooms": rooms })).await;
    assert_eq!(res.status(), 201, "making a webhook");
    let body: Value = res.json().await.expect("webhook answer");
    (
        body["webhook"].clone(),
        body["secret"].as_str().expect("secret").to_owned(),
    )
}

async fn get(app: &TestApp, id: &str) -> Value {
    let res = app
        .admin(Method::GET, &format!("/api/admin/webhooks/{id}"))
        .send()
        .await
        .expect("GET webhook");
    assert_eq!(res.status(), 200, "GET /api/admin/webhooks/{id}");
    res.json::<Value>().await.expect("webhook")["webhook"].clone()
}

/// Whether `signature` (`t=…,v1=…`) signs `body` with `secret`: computed here with the
/// HMAC crate, not the server's code.
fn signed(secret: &str, signature: &str, body: &[u8]) -> bool {
    let parts: Vec<(&str, &str)> = signature
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect();
    let field = |k: &str| parts.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let (Some(t), Some(v1)) = (field("t"), field("v1")) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let fresh = t
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 300);
    want == v1 && fresh
}

#[tokio::test]
async fn admins_make_list_show_and_delete_webhooks_and_see_the_secret_once() {
    let app = app().await;
    let rx = Receiver::start().await;
    let (hook, secret) = create(&app, &rx.url, &["message", "broadcast"], Some(&["general"])).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    for field in [
        "id",
        "url",
        "events",
        "rooms",
        "created_at",
        "delivered_id",
        "pending",
        "failures",
        "last_error",
    ] {
        assert!(hook.get(field).is_some(), "Webhook has `{field}`: {hook}");
    }
    assert_eq!(hook["rooms"], json!(["general"]));
    assert_eq!(hook["pending"], 0);
    let id = hook["id"].as_str().expect("id");
    let listed = app
        .admin(Method::GET, "/api/admin/webhooks")
        .send()
        .await
        .expect("GET list");
    let text = listed.text().await.expect("body");
    assert!(text.contains(id), "listed: {text}");
    assert!(!text.contains(&secret), "a listing never shows the secret");
    assert!(
        !serde_json::to_string(&get(&app, id).await)
            .expect("json")
            .contains(&secret)
    );
    let gone = app
        .admin(Method::DELETE, &format!("/api/admin/webhooks/{id}"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(gone.status(), 204);
    let again = app
        .admin(Method::GET, &format!("/api/admin/webhooks/{id}"))
        .send()
        .await
        .expect("GET");
    assert_error(again, 404, "unknown_webhook").await;
}

#[tokio::test]
async fn webhook_routes_are_for_admins_only() {
    let app = app().await;
    let user = app.user("plain").await;
    let res = user
        .post(
            "/api/admin/webhooks",
            json!({ "url": "http://127.0.0.1:1/", "events": ["message"] }),
        )
        .await;
    assert_error(res, 403, "forbidden").await;
    assert_error(
        app.client().get("/api/admin/webhooks").await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn a_webhook_is_refused_a_bad_url_event_or_room_list() {
    let app = app().await;
    let long = format!("http://example.com/{}", "a".repeat(2048));
    for url in ["ftp://example.com/", "not a url", long.as_str()] {
        let res = try_create(&app, json!({ "url": url, "events": ["message"] })).await;
        assert_error(res, 400, "invalid_url").await;
    }
    for events in [json!([]), json!(["presence"]), json!(["Message"])] {
        let res = try_create(
            &app,
            json!({ "url": "http://127.0.0.1:1/", "events": events }),
        )
        .await;
        assert_error(res, 400, "invalid_event").await;
    }
    let many: Vec<String> = (0..101).map(|i| format!("r{i}")).collect();
    for rooms in [json!([]), json!(["Not A Room"]), json!(many)] {
        let res = try_create(
            &app,
            json!({ "url": "http://127.0.0.1:1/", "events": ["message"], "rooms": rooms }),
        )
        .await;
        assert_error(res, 400, "invalid_rooms").await;
    }
}

#[tokio::test]
async fn deliveries_are_signed_and_carry_what_the_stream_carried() {
    let app = app().await;
    let rx = Receiver::start().await;
    let (_, secret) = create(&app, &rx.url, &["message"], None).await;
    let alice = app.user("alice").await;
    let mut sse = alice.listen(&["general"], Some(&["message"])).await;
    let sent = alice.say("general", "hello hooks").await;
    let live = sse.expect("message").await;
    let got = rx.wait_accepted(1, DELIVERED_WITHIN).await;
    assert_eq!(got.len(), 1, "one delivery");
    let d = &got[0];
    assert!(
        signed(&secret, &d.signature, &d.body),
        "the signature verifies: {}",
        d.signature
    );
    assert!(
        !signed("whsec_other", &d.signature, &d.body),
        "a wrong secret does not"
    );
    assert_eq!(d.content_type, "application/json");
    assert_eq!(
        d.event_id,
        sent["id"].as_i64(),
        "Roomcast-Event-Id is the event id"
    );
    let body = d.json();
    assert_eq!(body["id"], sent["id"]);
    assert_eq!(body["type"], "message");
    assert_eq!(body["data"], live.json(), "data is what the stream carried");
}

#[tokio::test]
async fn a_webhook_starts_at_the_newest_event() {
    let app = app().await;
    let alice = app.user("alice").await;
    alice.say("general", "before").await;
    let rx = Receiver::start().await;
    create(&app, &rx.url, &["message"], None).await;
    let after = alice.say_id("general", "after").await;
    let got = rx.wait_accepted(1, DELIVERED_WITHIN).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rx.accepted_ids(),
        [after],
        "only what came after it: {got:?}"
    );
}

#[tokio::test]
async fn order_is_kept_through_failures_and_the_state_shows_them() {
    let app = app().await;
    let rx = Receiver::start().await;
    rx.plan([
        Answer::Status(500),
        Answer::Status(500),
        Answer::Status(503),
    ]);
    let (hook, _) = create(&app, &rx.url, &["message"], None).await;
    let id = hook["id"].as_str().expect("id");
    let alice = app.user("alice").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(alice.say_id("general", &format!("m{i}")).await);
    }
    let got = rx.wait_accepted(5, DELIVERED_WITHIN).await;
    let accepted: Vec<i64> = got.iter().filter_map(|d| d.event_id).collect();
    assert_eq!(
        accepted, ids,
        "each event once, in id order, after the failures"
    );
    let tried: Vec<i64> = rx.all().iter().filter_map(|d| d.event_id).collect();
    assert_eq!(
        &tried[..4],
        &[ids[0]; 4],
        "the first event retried until it passed; later ones waited"
    );
    // The cursor is stored within `webhooks.save_every_ms` of the last delivery.
    let deadline = tokio::time::Instant::now() + WAIT;
    let state = loop {
        let state = get(&app, id).await;
        if state["delivered_id"] == json!(ids[4]) || tokio::time::Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(state["delivered_id"], json!(ids[4]), "{state}");
    assert_eq!(
        state["failures"], 0,
        "failures are forgotten after a success: {state}"
    );
    assert!(state["last_error"].is_null(), "{state}");
    assert_eq!(state["pending"], 0, "{state}");
}

#[tokio::test]
async fn a_failing_receiver_shows_pending_failures_and_the_last_error() {
    let app = app().await;
    let rx = Receiver::start().await;
    rx.always(Some(Answer::Status(500)));
    let (hook, _) = create(&app, &rx.url, &["message"], None).await;
    let id = hook["id"].as_str().expect("id");
    let alice = app.user("alice").await;
    for i in 0..3 {
        alice.say("general", &format!("m{i}")).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let state = loop {
        let state = get(&app, id).await;
        if state["failures"].as_i64().unwrap_or(0) >= 2 || tokio::time::Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(state["failures"].as_i64().unwrap_or(0) >= 2, "{state}");
    assert_eq!(state["pending"], 3, "nothing delivered yet: {state}");
    let error = state["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("500"),
        "the last error says what happened: {state}"
    );
}

#[tokio::test]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    let app = app().await;
    let elsewhere = Receiver::start().await;
    let rx = Receiver::start().await;
    rx.plan([Answer::Redirect(elsewhere.url.clone())]);
    let (hook, _) = create(&app, &rx.url, &["message"], None).await;
    let alice = app.user("alice").await;
    let id = alice.say_id("general", "hello").await;
    let got = rx.wait_accepted(1, DELIVERED_WITHIN).await;
    assert_eq!(got.len(), 1, "delivered on the retry");
    assert_eq!(rx.all()[0].answered, 302, "the first try was redirected");
    assert_eq!(rx.accepted_ids(), [id]);
    assert!(elsewhere.all().is_empty(), "the redirect was not followed");
    let _ = hook;
}

#[tokio::test]
async fn a_rooms_filter_keeps_other_rooms_out_but_lets_broadcasts_in() {
    let app = app().await;
    let rx = Receiver::start().await;
    create(&app, &rx.url, &["message", "broadcast"], Some(&["support"])).await;
    let alice = app.user("alice").await;
    alice.say("general", "not for the hook").await;
    let m = alice.say_id("support", "for the hook").await;
    let b = app.broadcast("to everyone").await["id"]
        .as_i64()
        .expect("id");
    let got = rx.wait_accepted(2, DELIVERED_WITHIN).await;
    let types: Vec<(i64, String)> = got
        .iter()
        .map(|d| {
            (
                d.event_id.unwrap_or(0),
                d.json()["type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [(m, "message".to_owned()), (b, "broadcast".to_owned())],
        "the room's message and the broadcast, nothing of other rooms"
    );
}

#[tokio::test]
async fn only_the_events_asked_for_are_delivered() {
    let app = app().await;
    let rx = Receiver::start().await;
    create(
        &app,
        &rx.url,
        &["message_edited", "message_deleted", "reaction"],
        None,
    )
    .await;
    let alice = app.user("alice").await;
    let m = alice.say_id("general", "draft").await;
    let edited = alice
        .http
        .patch(format!("{}/api/rooms/general/messages/{m}", app.base))
        .json(&json!({ "body": "final" }))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(edited.status(), 200);
    let reacted = alice
        .http
        .put(format!(
            "{}/api/rooms/general/messages/{m}/reactions/%F0%9F%91%8D",
            app.base
        ))
        .send()
        .await
        .expect("PUT reaction");
    assert_eq!(reacted.status(), 200);
    app.broadcast("not asked for").await;
    let deleted = alice
        .http
        .delete(format!("{}/api/rooms/general/messages/{m}", app.base))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(deleted.status(), 204);
    let deadline = tokio::time::Instant::now() + DELIVERED_WITHIN;
    let deleted_arrived = |got: &[crate::receiver::Delivery]| {
        got.iter().any(|d| d.json()["type"] == "message_deleted")
    };
    while !deleted_arrived(&rx.accepted()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = rx.accepted();
    // The deletion takes the edit and the reaction out of the log: only what is stored
    // when the delivery reads it is sent, which may be all three or just the deletion.
    let types: Vec<String> = got
        .iter()
        .map(|d| d.json()["type"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        types.last().map(String::as_str),
        Some("message_deleted"),
        "{types:?}"
    );
    assert!(
        types
            .iter()
            .all(|t| ["message_edited", "reaction", "message_deleted"].contains(&t.as_str())),
        "no message or broadcast: {types:?}"
    );
}

#[tokio::test]
async fn a_deleted_webhook_gets_nothing_more() {
    let app = app().await;
    let rx = Receiver::start().await;
    let (hook, _) = create(&app, &rx.url, &["message"], None).await;
    let alice = app.user("alice").await;
    alice.say("general", "one").await;
    rx.wait_accepted(1, DELIVERED_WITHIN).await;
    let id = hook["id"].as_str().expect("id");
    let res = app
        .admin(Method::DELETE, &format!("/api/admin/webhooks/{id}"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), 204);
    // On a cluster the node delivering it may be another: it stops within a lease renewal.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rx.all().len();
    alice.say("general", "two").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.all().len(), before, "nothing after the deletion");
}

/// Checks that `got` (event ids as received) holds every id of `sent` at least once, in
/// order (a resend after a restart repeats ids already had; nothing comes out of order
/// otherwise). Prints the duplicates.
fn assert_all_once_in_order(what: &str, sent: &[i64], got: &[i64]) {
    let mut seen = HashSet::new();
    let mut firsts = Vec::new();
    let mut duplicates = Vec::new();
    for id in got {
        if seen.insert(*id) {
            firsts.push(*id);
        } else {
            duplicates.push(*id);
        }
    }
    let acknowledged: HashSet<&i64> = sent.iter().collect();
    let unacknowledged: Vec<&i64> = firsts
        .iter()
        .filter(|id| !acknowledged.contains(id))
        .collect();
    eprintln!(
        "{what}: {} events acknowledged, {} deliveries, {} duplicates {duplicates:?}, \
         {} stored but unacknowledged (the post the kill cut off) {unacknowledged:?}",
        sent.len(),
        got.len(),
        duplicates.len(),
        unacknowledged.len()
    );
    let missing: Vec<&i64> = sent.iter().filter(|id| !seen.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{what}: events never delivered: {missing:?}"
    );
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "{what}: events came out of id order"
    );
}

/// Posts `n` messages to `room` through `c`, stopping at the first that fails (the server
/// died); the ids stored.
async fn burst(c: &Client, room: &str, from: usize, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in from..from + n {
        let res = c
            .http
            .post(format!("{}/api/rooms/{room}/messages", c.base))
            .json(&json!({ "body": format!("burst {i}") }))
            .send()
            .await;
        match res {
            Ok(r) if r.status() == 201 => {
                let v: Value = r.json().await.expect("message");
                ids.push(v["message"]["id"].as_i64().expect("id"));
            }
            _ => break,
        }
    }
    ids
}

#[tokio::test]
async fn a_kill_9_during_a_burst_then_a_restart_delivers_every_event_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    let rx = Receiver::start().await;
    let env = [
        ("ROOMCAST__ADMIN__API_TOKEN", ADMIN_TOKEN),
        ("ROOMCAST__WEBHOOKS__BACKOFF_FIRST_MS", "100"),
        ("ROOMCAST__WEBHOOKS__BACKOFF_MAX_SECS", "1"),
        ("ROOMCAST__WEBHOOKS__POLL_MS", "200"),
        ("ROOMCAST__WEBHOOKS__LEASE_SECS", "3"),
    ];
    let server = Server::start(dir.path(), &env);
    let res = reqwest::Client::new()
        .post(format!("{}/api/admin/webhooks", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "url": rx.url, "events": ["message"] }))
        .send()
        .await
        .expect("POST webhook");
    assert_eq!(res.status(), 201, "making the webhook");
    let alice = server.client();
    assert_eq!(alice.register("alice", "password123").await.status(), 201);
    // The receiver is slow enough that deliveries trail the posts when the kill comes.
    let poster = {
        let alice = alice.clone();
        tokio::spawn(async move { burst(&alice, "general", 0, 1000).await })
    };
    let killer = async {
        loop {
            if rx.accepted().len() >= 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(60), killer).await;
    server.kill_9();
    let mut sent = poster.await.expect("poster");
    let had = sent.len();
    eprintln!(
        "{had} of 1000 messages stored before kill -9; {} delivered",
        rx.accepted().len()
    );
    let server = Server::start(dir.path(), &env);
    let alice = server.client();
    assert_eq!(alice.login("alice", "password123").await.status(), 200);
    sent.extend(burst(&alice, "general", had, 1000 - had).await);
    assert_eq!(sent.len(), 1000, "every message of the burst stored");
    let last = *sent.last().expect("some");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !rx.accepted_ids().contains(&last) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_all_once_in_order("kill -9 and restart", &sent, &rx.accepted_ids());
    drop(server);
}

#[tokio::test]
async fn on_a_cluster_another_node_takes_over_when_the_delivering_one_dies() {
    if cluster_size() < 2 {
        eprintln!(
            "needs a cluster ({}=2): skipped",
            crate::helpers::CLUSTER_ENV
        );
        return;
    }
    let mut app = app().await;
    let rx = Receiver::start().await;
    let first = format!("http://127.0.0.1:{}", app.nodes[0].port);
    // Made on node 0, which leases it at once.
    let res = reqwest::Client::new()
        .post(format!("{first}/api/admin/webhooks"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "url": rx.url, "events": ["message"] }))
        .send()
        .await
        .expect("POST webhook");
    assert_eq!(res.status(), 201);
    let second = Client::new(&format!("http://127.0.0.1:{}", app.nodes[1].port));
    assert_eq!(second.register("alice", "password123").await.status(), 201);
    let mut sent = burst(&second, "general", 0, 100).await;
    rx.wait_accepted(20, DELIVERED_WITHIN).await;
    app.nodes[0].kill().await;
    let killed = tokio::time::Instant::now();
    sent.extend(burst(&second, "general", 100, 100).await);
    assert_eq!(sent.len(), 200);
    let last = *sent.last().expect("some");
    while !rx.accepted_ids().contains(&last) && killed.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "the last event arrived {:?} after the kill",
        killed.elapsed()
    );
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "taken over within the lease and a renewal"
    );
    assert_all_once_in_order("node killed", &sent, &rx.accepted_ids());
}

#[tokio::test]
async fn metrics_count_deliveries_and_failures_per_webhook() {
    if crate::helpers::single_node_only("each node shows its own deliveries on /metrics") {
        return;
    }
    let app = app().await;
    let rx = Receiver::start().await;
    rx.plan([Answer::Status(500)]);
    let (hook, _) = create(&app, &rx.url, &["message"], None).await;
    let id = hook["id"].as_str().expect("id");
    let alice = app.user("alice").await;
    alice.say("general", "counted").await;
    rx.wait_accepted(1, DELIVERED_WITHIN).await;
    let text = app
        .client()
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(id))
            .map(str::to_owned)
    };
    let deliveries = line("roomcast_webhook_deliveries_total").unwrap_or_default();
    assert!(
        deliveries.ends_with(" 1"),
        "one delivery counted: {deliveries:?}"
    );
    let failures = line("roomcast_webhook_failures_total").unwrap_or_default();
    assert!(
        failures.ends_with(" 1"),
        "one failure counted: {failures:?}"
    );
    assert!(
        line("roomcast_webhook_oldest_pending_seconds").is_some(),
        "the oldest pending age is shown"
    );
}

#[tokio::test]
async fn past_webhooks_max_a_new_webhook_is_409() {
    let app = spawn_app_with(|s| {
        fast(s);
        s.webhooks.max = 1;
    })
    .await;
    let rx = Receiver::start().await;
    create(&app, &rx.url, &["message"], None).await;
    let res = try_create(&app, json!({ "url": rx.url, "events": ["message"] })).await;
    assert_error(res, 409, "too_many_webhooks").await;
}
