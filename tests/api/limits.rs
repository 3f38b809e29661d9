//! What one client may hold at once: streams per user and per session, rooms per user, and
//! how much a room listing answers.

use serde_json::{Value, json};

use crate::helpers::{assert_error, single_node_only, spawn_app_with};

#[tokio::test]
async fn a_session_past_its_stream_cap_gets_429_too_many_streams() {
    if single_node_only("stream caps are per node") {
        return;
    }
    let app = spawn_app_with(|s| s.limits.streams_per_session = 2).await;
    let alice = app.user("alice").await;
    let _a = alice.events().await;
    let b = alice.events().await;
    let res = alice.get("/api/events").await;
    let retry = res.headers().get("retry-after").cloned();
    assert_error(res, 429, "too_many_streams").await;
    assert!(retry.is_some(), "a 429 carries Retry-After");
    drop(b);
    // The cap counts open streams: one closing makes room for the next.
    crate::helpers::eventually("a closed stream frees its slot", || async {
        alice.get("/api/events").await.status() == 200
    })
    .await;
}

#[tokio::test]
async fn a_user_past_its_stream_cap_gets_429_across_sessions() {
    if single_node_only("stream caps are per node") {
        return;
    }
    let app = spawn_app_with(|s| {
        s.limits.streams_per_user = 2;
        s.limits.streams_per_session = 10;
    })
    .await;
    let first = app.user("alice").await;
    let second = app.client();
    assert_eq!(second.login("alice", "password123").await.status(), 200);
    let _a = first.events().await;
    let _b = second.events().await;
    assert_error(first.get("/api/events").await, 429, "too_many_streams").await;
    assert_error(second.get("/api/events").await, 429, "too_many_streams").await;
    let bob = app.user("bob").await;
    let _c = bob.events().await;
}

#[tokio::test]
async fn the_server_past_its_stream_cap_answers_503() {
    if single_node_only("stream caps are per node") {
        return;
    }
    let app = spawn_app_with(|s| s.limits.max_streams = 2).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let _a = alice.events().await;
    let _b = bob.events().await;
    assert_error(bob.get("/api/events").await, 503, "unavailable").await;
}

#[tokio::test]
async fn a_user_past_its_room_cap_is_refused_and_joins_nothing() {
    let app = spawn_app_with(|s| s.limits.rooms_per_user = 3).await;
    let alice = app.user("alice").await;
    let one = alice.events().await;
    let two = alice.events().await;
    alice.subscribe(&one, &["a", "b"]).await;
    // The same rooms on another stream are not new rooms for the user.
    alice.subscribe(&two, &["a", "b", "c"]).await;
    let res = alice.try_subscribe(&two, json!({ "rooms": ["d"] })).await;
    assert_error(res, 400, "too_many_rooms").await;
    let names: Vec<String> = alice
        .rooms()
        .await
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!names.contains(&"d".to_owned()), "d was joined: {names:?}");
}

#[tokio::test]
async fn the_room_list_is_busiest_first_and_capped_by_limit() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let (a1, a2, b1) = (
        alice.events().await,
        alice.events().await,
        bob.events().await,
    );
    alice.subscribe(&a1, &["quiet", "busy", "mid"]).await;
    alice.subscribe(&a2, &["busy", "mid"]).await;
    bob.subscribe(&b1, &["busy"]).await;
    let res = bob.get("/api/rooms?limit=2").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    let names: Vec<&str> = body["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["busy", "mid"], "the two busiest, busiest first");
    for bad in ["0", "501", "x"] {
        let res = bob.get(&format!("/api/rooms?limit={bad}")).await;
        let code = if bad == "x" {
            "invalid_query"
        } else {
            "invalid_limit"
        };
        assert_error(res, 400, code).await;
    }
}

#[tokio::test]
async fn a_user_past_its_room_creation_cap_gets_429() {
    let app = spawn_app_with(|s| s.limits.rooms_created_per_user = 2).await;
    let alice = app.user("alice").await;
    for name in ["one", "two"] {
        let res = alice
            .post(
                "/api/rooms",
                json!({ "name": name, "visibility": "private" }),
            )
            .await;
        assert_eq!(res.status(), 201, "creating {name}");
    }
    let res = alice
        .post(
            "/api/rooms",
            json!({ "name": "three", "visibility": "public" }),
        )
        .await;
    assert_error(res, 429, "too_many_rooms_created").await;
    let bob = app.user("bob").await;
    let res = bob
        .post(
            "/api/rooms",
            json!({ "name": "three", "visibility": "public" }),
        )
        .await;
    assert_eq!(res.status(), 201, "the cap is per user");
}
