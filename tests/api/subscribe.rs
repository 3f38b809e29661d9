//! `POST /api/subscribe` and `POST /api/unsubscribe`: ownership, limits, the event filter,
//! the answer's shape.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    assert_error, eventually, single_node_only, spawn_app, spawn_app_with, spawn_app_with_admin,
};

/// `n` distinct valid room names with a prefix.
fn room_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// A JSON array of strings, sorted.
fn sorted(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().expect("a string").to_owned())
        .collect();
    s.sort();
    s
}

#[tokio::test]
async fn subscribe_without_a_session_is_401() {
    let app = spawn_app().await;
    let sse = app.user("alice").await.events().await;
    let res = app
        .client()
        .try_subscribe(&sse, json!({ "rooms": ["r"] }))
        .await;
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn another_users_connection_is_404_like_a_made_up_id() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mallory = app.user("mallory").await;
    let sse = alice.events().await;

    let theirs = mallory.try_subscribe(&sse, json!({ "rooms": ["r"] })).await;
    let theirs = assert_error(theirs, 404, "unknown_connection").await;
    let made_up = mallory
        .try_subscribe(
            uuid::Uuid::new_v4().to_string().as_str(),
            json!({ "rooms": ["r"] }),
        )
        .await;
    let made_up = assert_error(made_up, 404, "unknown_connection").await;
    assert_eq!(
        theirs, made_up,
        "another user's connection must be told apart from no connection at all"
    );
    assert!(
        alice.presence_names("r").await.is_empty(),
        "the refused subscribe still joined the room"
    );
}

#[tokio::test]
async fn unsubscribing_another_users_connection_is_404_like_a_made_up_id() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mallory = app.user("mallory").await;
    let sse = alice.events().await;
    alice.subscribe(&sse, &["r"]).await;

    let theirs = mallory.try_unsubscribe(&sse, &["r"]).await;
    let theirs = assert_error(theirs, 404, "unknown_connection").await;
    let made_up = mallory
        .try_unsubscribe(uuid::Uuid::new_v4().to_string().as_str(), &["r"])
        .await;
    let made_up = assert_error(made_up, 404, "unknown_connection").await;
    assert_eq!(theirs, made_up, "the two 404s must be the same answer");
    assert_eq!(
        alice.presence_names("r").await,
        ["alice"],
        "mallory's unsubscribe took alice out of the room"
    );
}

#[tokio::test]
async fn a_closed_streams_connection_id_is_unknown() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    let id = sse.connection_id.clone();
    drop(sse);
    eventually("subscribing a closed connection is refused", || async {
        alice
            .try_subscribe(id.as_str(), json!({ "rooms": ["r"] }))
            .await
            .status()
            != 200
    })
    .await;
    let res = alice
        .try_subscribe(id.as_str(), json!({ "rooms": ["r"] }))
        .await;
    assert_error(res, 404, "unknown_connection").await;
}

#[tokio::test]
async fn more_than_100_rooms_in_one_request_is_too_many_rooms() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    let res = alice
        .try_subscribe(&sse, json!({ "rooms": room_names("r", 101) }))
        .await;
    assert_error(res, 400, "too_many_rooms").await;
    assert!(
        alice.rooms().await.is_empty(),
        "a refused subscribe joined rooms"
    );
    let res = alice
        .try_subscribe(&sse, json!({ "rooms": room_names("r", 100) }))
        .await;
    assert_eq!(res.status(), 200, "exactly 100 rooms is allowed");
}

#[tokio::test]
async fn a_connection_holds_at_most_100_rooms_in_all() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    alice
        .subscribe_with(&sse, json!({ "rooms": room_names("a", 60) }))
        .await;
    let res = alice
        .try_subscribe(&sse, json!({ "rooms": room_names("b", 41) }))
        .await;
    assert_error(res, 400, "too_many_rooms").await;
    assert_eq!(
        alice.rooms().await.len(),
        60,
        "the refused subscribe joined some rooms"
    );
    let answer = alice
        .subscribe_with(&sse, json!({ "rooms": room_names("b", 40) }))
        .await;
    assert_eq!(
        answer["rooms"].as_array().unwrap().len(),
        100,
        "60 + 40 = 100 rooms is allowed"
    );
    let res = alice
        .try_subscribe(&sse, json!({ "rooms": ["one-more"] }))
        .await;
    assert_error(res, 400, "too_many_rooms").await;
}

#[tokio::test]
async fn a_second_tab_has_its_own_room_allowance() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let tab1 = alice.events().await;
    let tab2 = alice.events().await;
    alice
        .subscribe_with(&tab1, json!({ "rooms": room_names("a", 100) }))
        .await;
    let res = alice
        .try_subscribe(&tab2, json!({ "rooms": room_names("b", 100) }))
        .await;
    assert_eq!(res.status(), 200, "the limit is per connection");
}

#[tokio::test]
async fn no_rooms_is_400() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    let res = alice.try_subscribe(&sse, json!({ "rooms": [] })).await;
    assert_error(res, 400, "invalid_rooms").await;
}

#[tokio::test]
async fn an_invalid_room_name_is_400_invalid_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    for bad in [
        "General".to_owned(),
        "-dash-first".to_owned(),
        "_under".to_owned(),
        "with space".to_owned(),
        "dot.ted".to_owned(),
        String::new(),
        "a".repeat(65),
    ] {
        let res = alice
            .try_subscribe(&sse, json!({ "rooms": ["ok", bad] }))
            .await;
        assert_error(res, 400, "invalid_room").await;
    }
    assert!(
        alice.rooms().await.is_empty(),
        "a refused subscribe joined its valid rooms"
    );
    let longest = "a".repeat(64);
    let res = alice
        .try_subscribe(&sse, json!({ "rooms": ["0", "a_b-c", longest] }))
        .await;
    assert_eq!(res.status(), 200, "valid room names are accepted");
}

#[tokio::test]
async fn an_invalid_event_name_is_400() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    for bad in ["Typing", "1st", "", "has space", &"a".repeat(33)] {
        let res = alice
            .try_subscribe(&sse, json!({ "rooms": ["r"], "events": [bad] }))
            .await;
        assert_error(res, 400, "invalid_event").await;
    }
}

#[tokio::test]
async fn the_subscribe_answer_has_exactly_the_contracts_shape() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    let answer = alice.subscribe(&sse, &["general", "rust"]).await;
    assert_eq!(
        keys(&answer),
        ["connection_id", "events", "replay", "rooms"],
        "subscribe answer keys: {answer}"
    );
    assert_eq!(answer["connection_id"], sse.connection_id.as_str());
    assert_eq!(sorted(&answer["rooms"]), ["general", "rust"]);
    assert_eq!(answer["events"], Value::Null, "events omitted: null");
    assert_eq!(
        answer["replay"],
        json!({ "count": 0, "complete": true }),
        "nothing replayed"
    );

    let answer = alice
        .subscribe_with(
            &sse,
            json!({ "rooms": ["zed"], "events": ["typing", "message"] }),
        )
        .await;
    assert_eq!(
        sorted(&answer["rooms"]),
        ["general", "rust", "zed"],
        "rooms lists every room now held"
    );
    assert_eq!(
        sorted(&answer["events"]),
        ["message", "typing"],
        "events lists the filter"
    );
    assert_eq!(answer["replay"], json!({ "count": 0, "complete": true }));
}

#[tokio::test]
async fn subscribing_a_room_twice_counts_once() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    alice.subscribe(&sse, &["r"]).await;
    let answer = alice.subscribe(&sse, &["r", "r"]).await;
    assert_eq!(answer["rooms"], json!(["r"]), "rooms held");
    let info = alice.room_info("r").await.expect("r listed");
    assert_eq!(info["subscribers"], 1, "one connection in r: {info}");
}

#[tokio::test]
async fn events_omitted_means_every_event() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut sse = alice.events().await;
    alice.subscribe(&sse, &["r"]).await;
    assert_eq!(sse.expect_next("presence").await.json()["action"], "join");
    let b = bob.events().await;
    bob.subscribe_with(&b, json!({ "rooms": ["r"], "events": [] }))
        .await;
    assert_eq!(
        sse.expect_next("presence").await.json()["user"]["username"],
        "bob",
        "presence"
    );
    bob.say("r", "hi").await;
    assert_eq!(sse.expect_next("message").await.json()["body"], "hi");
    bob.send_custom("r", "typing", json!(true)).await;
    assert_eq!(sse.expect_next("typing").await.json()["data"], true);
    bob.send_custom("r", "any.other-name_2", json!(null)).await;
    sse.expect_next("any.other-name_2").await;
}

#[tokio::test]
async fn a_later_subscribe_replaces_the_event_set() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut sse = alice.events().await;
    alice
        .subscribe_with(&sse, json!({ "rooms": ["r"], "events": ["message"] }))
        .await;
    let answer = alice
        .subscribe_with(&sse, json!({ "rooms": ["s"], "events": ["typing"] }))
        .await;
    assert_eq!(answer["events"], json!(["typing"]), "the answer's new set");
    // In the room subscribed first, too, `message` is gone and `typing` arrives.
    alice.say("r", "no longer wanted").await;
    alice.send_custom("r", "typing", json!("r")).await;
    let e = sse.next_event().await.expect("an event");
    assert_eq!(
        (e.event.as_str(), e.json()["data"].clone()),
        ("typing", json!("r")),
        "the old event set still applied: {e:?}"
    );
}

#[tokio::test]
async fn a_later_subscribe_without_events_receives_every_event_again() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut sse = alice.events().await;
    alice
        .subscribe_with(&sse, json!({ "rooms": ["r"], "events": ["typing"] }))
        .await;
    let answer = alice.subscribe(&sse, &["s"]).await;
    assert_eq!(answer["events"], Value::Null, "events omitted: all");
    assert_eq!(
        sse.expect_next("presence").await.json()["room"],
        "s",
        "presence now passes"
    );
    alice.say("r", "wanted again").await;
    assert_eq!(
        sse.expect_next("message").await.json()["body"],
        "wanted again",
        "message passes again"
    );
}

#[tokio::test]
async fn broadcast_is_delivered_whatever_the_event_set() {
    let app = spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let mut sse = alice.events().await;
    alice
        .subscribe_with(&sse, json!({ "rooms": ["r"], "events": ["typing"] }))
        .await;
    let sent = app.broadcast("to everyone").await;
    let e = sse.expect_next("broadcast").await;
    assert_eq!(e.json(), sent, "broadcast passes a `typing`-only filter");
}

// ---- unsubscribe ----

#[tokio::test]
async fn the_unsubscribe_answer_has_exactly_the_contracts_shape() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    alice
        .subscribe_with(
            &sse,
            json!({ "rooms": ["a", "b", "c"], "events": ["message"] }),
        )
        .await;
    let answer = alice.unsubscribe(&sse, &["b", "not-held"]).await;
    assert_eq!(
        keys(&answer),
        ["connection_id", "events", "rooms"],
        "unsubscribe answer keys (no replay): {answer}"
    );
    assert_eq!(answer["connection_id"], sse.connection_id.as_str());
    assert_eq!(sorted(&answer["rooms"]), ["a", "c"], "rooms still held");
    assert_eq!(answer["events"], json!(["message"]), "the filter stays");

    let sse2 = alice.events().await;
    alice.subscribe(&sse2, &["x"]).await;
    let answer = alice.unsubscribe(&sse2, &["x"]).await;
    assert_eq!(answer["rooms"], json!([]));
    assert_eq!(answer["events"], Value::Null, "all events: null");
}

#[tokio::test]
async fn unsubscribe_without_a_session_is_401() {
    let app = spawn_app().await;
    let sse = app.user("alice").await.events().await;
    let res = app.client().try_unsubscribe(&sse, &["r"]).await;
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn unsubscribe_validates_room_names() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    let res = alice.try_unsubscribe(&sse, &["Bad"]).await;
    assert_error(res, 400, "invalid_room").await;
}

#[tokio::test]
async fn unsubscribing_sends_a_leave_to_the_room() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let mut b = bob.listen(&["r"], Some(&["presence"])).await;
    let alice = app.user("alice").await;
    let a = alice.events().await;
    alice.subscribe(&a, &["r"]).await;
    assert_eq!(b.expect_next("presence").await.json()["action"], "join");
    alice.unsubscribe(&a, &["r"]).await;
    let e = b.expect_next("presence").await;
    assert_eq!(
        e.json(),
        json!({ "room": "r", "user": alice.user_ref().await, "action": "leave" }),
        "leave after unsubscribe"
    );
    assert_eq!(bob.presence_names("r").await, ["bob"]);
}

#[tokio::test]
async fn an_unsubscribed_connection_gets_nothing_more_from_the_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut sse = alice.events().await;
    alice
        .subscribe_with(&sse, json!({ "rooms": ["r", "s"], "events": ["message"] }))
        .await;
    alice.unsubscribe(&sse, &["r"]).await;
    alice.say("r", "gone").await;
    alice.say("s", "sentinel").await;
    assert_eq!(
        sse.expect_next("message").await.json()["body"],
        "sentinel",
        "a message of an unsubscribed room arrived"
    );
}

#[tokio::test]
async fn unsubscribing_the_last_subscriber_removes_the_room_at_once() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    alice.subscribe(&sse, &["r", "keep"]).await;
    alice.unsubscribe(&sse, &["r"]).await;
    let names: Vec<Value> = alice
        .rooms()
        .await
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, [json!("keep")], "the emptied room is still listed");
    assert!(alice.presence_names("r").await.is_empty());
}

// ---- join/leave floods ----

/// The configured defaults for subscribes (the test apps lift them): 5 a second, 30 at once.
fn default_subscribe_rate(s: &mut roomcast::config::Settings) {
    s.rate_limit.subscribes_per_sec = 5;
    s.rate_limit.subscribes_burst = 30;
}

#[tokio::test]
async fn a_join_leave_flood_is_answered_429_with_retry_after() {
    if single_node_only("each node limits the subscribes it is asked") {
        return;
    }
    let app = spawn_app_with(default_subscribe_rate).await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    let started = Instant::now();
    let (mut accepted, mut refused) = (0, None);
    for _ in 0..100 {
        let res = alice.try_subscribe(&sse, json!({ "rooms": ["r"] })).await;
        if res.status() == 429 {
            refused = Some(res);
            break;
        }
        assert_eq!(res.status(), 200, "subscribe");
        accepted += 1;
        let res = alice.try_unsubscribe(&sse, &["r"]).await;
        if res.status() == 429 {
            refused = Some(res);
            break;
        }
        assert_eq!(res.status(), 200, "unsubscribe");
        accepted += 1;
    }
    let res = refused.expect("100 join/leave pairs were all accepted");
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert_error(res, 429, "rate_limited").await;
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {retry:?}");
    let allowed = 30.0 + 5.0 * started.elapsed().as_secs_f64();
    assert!(
        f64::from(accepted) <= allowed + 1.0,
        "{accepted} accepted in {:?}",
        started.elapsed()
    );
    // Other users are not held back by alice's flood.
    let bob = app.user("bob").await;
    let b = bob.events().await;
    bob.subscribe(&b, &["r"]).await;
}

#[tokio::test]
async fn a_leave_and_a_join_within_the_window_send_no_presence() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let mut watcher = bob.listen(&["r"], Some(&["presence"])).await;
    let alice = app.user("alice").await;
    let a = alice.events().await;
    alice.subscribe(&a, &["r"]).await;
    assert_eq!(
        watcher.expect_next("presence").await.json()["action"],
        "join"
    );

    // A flood of leaves and joins, ending joined: the room hears nothing of it.
    for _ in 0..20 {
        alice.unsubscribe(&a, &["r"]).await;
        alice.subscribe(&a, &["r"]).await;
    }
    // A reload: the stream goes, a new one joins.
    drop(a);
    let a = alice.events().await;
    alice.subscribe(&a, &["r"]).await;
    watcher.expect_silence(Duration::from_millis(2500)).await;
    assert_eq!(bob.presence_names("r").await, ["alice", "bob"]);

    // A leave that is not followed by a join is sent once the window has passed.
    let left = Instant::now();
    alice.unsubscribe(&a, &["r"]).await;
    let e = watcher.expect_next("presence").await.json();
    assert_eq!(
        e,
        json!({ "room": "r", "user": alice.user_ref().await, "action": "leave" }),
        "the leave after the window"
    );
    assert!(
        left.elapsed() >= Duration::from_millis(900),
        "the leave came {:?} after the unsubscribe, before the 1 s window",
        left.elapsed()
    );
}

#[tokio::test]
async fn with_no_window_every_leave_and_join_is_sent() {
    // No coalescing window on the node, and (when the suite runs as a cluster) no settling
    // window for a cluster-wide leave either.
    let app = spawn_app_with(|s| {
        s.sse.presence_coalesce_ms = 0;
        s.cluster.presence_settle_ms = 0;
    })
    .await;
    let bob = app.user("bob").await;
    let mut watcher = bob.listen(&["r"], Some(&["presence"])).await;
    let alice = app.user("alice").await;
    let a = alice.events().await;
    alice.subscribe(&a, &["r"]).await;
    alice.unsubscribe(&a, &["r"]).await;
    alice.subscribe(&a, &["r"]).await;
    let actions: Vec<Value> = [
        watcher.expect_next("presence").await,
        watcher.expect_next("presence").await,
        watcher.expect_next("presence").await,
    ]
    .iter()
    .map(|e| e.json()["action"].clone())
    .collect();
    assert_eq!(actions, [json!("join"), json!("leave"), json!("join")]);
}
