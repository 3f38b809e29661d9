//! The one-step subscribe: `GET /api/events?rooms=…` subscribes the stream as it opens.

use serde_json::{Value, json};

use crate::helpers::{Client, assert_error, eventually, spawn_app, spawn_app_with_admin};
use crate::sse::Sse;

/// Opens `GET /api/events?{query}` (and `Last-Event-ID` when given); the raw answer.
async fn open(c: &Client, query: &str, last_event_id: Option<i64>) -> reqwest::Response {
    let mut req = c.http.get(format!("{}/api/events?{query}", c.base));
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    req.send().await.expect("GET /api/events")
}

/// Opens a one-step stream that must succeed; the stream and its `connected` data.
async fn open_ok(c: &Client, query: &str, last_event_id: Option<i64>) -> (Sse, Value) {
    let res = open(c, query, last_event_id).await;
    assert_eq!(res.status(), 200, "opening the stream with ?{query}");
    let mut sse = Sse::new(res);
    let first = sse.next().await.expect("a first event");
    assert_eq!(first.event, "connected", "the first event is `connected`");
    let data = first.json();
    sse.connection_id = data["connection_id"]
        .as_str()
        .expect("connection_id")
        .to_owned();
    (sse, data)
}

#[tokio::test]
async fn connected_says_what_the_subscribe_did() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (_sse, connected) = open_ok(&alice, "rooms=lobby,rust&events=message,presence", None).await;
    assert_eq!(
        connected["subscribed"],
        json!({
            "rooms": ["lobby", "rust"],
            "events": ["message", "presence"],
            "replay": { "count": 0, "complete": true }
        }),
        "`subscribed` carries the subscribe answer's fields: {connected}"
    );
    assert!(
        connected["heartbeat_secs"].is_u64(),
        "the usual fields stay: {connected}"
    );
}

#[tokio::test]
async fn a_stream_without_rooms_has_no_subscribed_field() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (_sse, connected) = open_ok(&alice, "", None).await;
    assert!(
        connected.get("subscribed").is_none(),
        "two-step stream: {connected}"
    );
}

#[tokio::test]
async fn a_one_step_stream_receives_live_messages_and_presence() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (mut sse, _) = open_ok(&alice, "rooms=lobby", None).await;
    let own = sse.expect_next("presence").await;
    assert_eq!(
        own.json()["action"],
        "join",
        "joining sends presence: {own:?}"
    );
    let id = alice.say_id("lobby", "hello").await;
    let msg = sse.expect("message").await;
    assert_eq!(
        msg.id_num(),
        id,
        "the live message reaches the one-step stream"
    );
}

#[tokio::test]
async fn the_history_replay_follows_connected_at_once() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let ids = [
        alice.say_id("lobby", "one").await,
        alice.say_id("lobby", "two").await,
        alice.say_id("lobby", "three").await,
    ];
    let (mut sse, connected) = open_ok(&alice, "rooms=lobby&events=message&history=2", None).await;
    assert_eq!(connected["subscribed"]["replay"]["count"], 2, "{connected}");
    let first = sse.expect_next("message").await;
    let second = sse.expect_next("message").await;
    assert_eq!(
        [first.id_num(), second.id_num()],
        [ids[1], ids[2]],
        "the last two messages, in order, right after `connected`"
    );
}

#[tokio::test]
async fn last_event_id_in_the_query_wins_over_the_header() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let first = alice.say_id("lobby", "one").await;
    let second = alice.say_id("lobby", "two").await;
    let query = format!("rooms=lobby&events=message&last_event_id={first}");
    let (mut sse, connected) = open_ok(&alice, &query, Some(0)).await;
    assert_eq!(connected["subscribed"]["replay"]["count"], 1, "{connected}");
    assert_eq!(
        sse.expect_next("message").await.id_num(),
        second,
        "resumed after the query's id, not the header's"
    );
}

#[tokio::test]
async fn the_header_alone_resumes_a_one_step_stream() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let first = alice.say_id("lobby", "one").await;
    let second = alice.say_id("lobby", "two").await;
    let (mut sse, _) = open_ok(&alice, "rooms=lobby&events=message", Some(first)).await;
    assert_eq!(
        sse.expect_next("message").await.id_num(),
        second,
        "an EventSource reconnecting to the same URL resumes from Last-Event-ID"
    );
}

#[tokio::test]
async fn a_later_two_step_subscribe_works_on_a_one_step_stream() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (sse, _) = open_ok(&alice, "rooms=lobby&events=message", None).await;
    let answer = alice.subscribe(&sse, &["rust"]).await;
    let rooms: Vec<&str> = answer["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(rooms, ["lobby", "rust"], "both rooms held: {answer}");
}

#[tokio::test]
async fn bad_parameters_answer_as_a_subscribe_would() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for (query, status, code) in [
        ("rooms=", 400, "invalid_rooms"),
        ("events=message", 400, "invalid_rooms"),
        ("history=5", 400, "invalid_rooms"),
        ("rooms=Not%20A%20Room", 400, "invalid_room"),
        ("rooms=lobby&history=201", 400, "invalid_history"),
        ("rooms=lobby&history=x", 400, "invalid_history"),
        ("rooms=lobby&last_event_id=-1", 400, "invalid_last_event_id"),
        (
            "rooms=lobby&events=message,bad%20name",
            400,
            "invalid_event",
        ),
    ] {
        // A JSON error body, not a stream: the GET itself failed.
        assert_error(open(&alice, query, None).await, status, code).await;
    }
}

#[tokio::test]
async fn a_stranger_to_a_private_room_is_refused_and_no_stream_stays_open() {
    let app = spawn_app_with_admin().await;
    let owner = app.user("owner").await;
    crate::private::create(&owner, "club", "private").await;
    let stranger = app.user("stranger").await;
    let res = open(&stranger, "rooms=lobby,club", None).await;
    assert_error(res, 404, "unknown_room").await;
    eventually("the refused stream is gone", || async {
        app.stats().await["connections"] == 0
    })
    .await;
}

#[tokio::test]
async fn without_a_session_the_one_step_form_is_401() {
    let app = spawn_app().await;
    let res = open(&app.client(), "rooms=lobby", None).await;
    assert_error(res, 401, "unauthorized").await;
}
