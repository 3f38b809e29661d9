//! The room list, read markers and the `read` event: follows, unread and mention counts,
//! markers that only move forward, and every stream of the user told when one moves — on
//! every node of a cluster.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{Client, TestApp, assert_error, spawn_app, spawn_app_with},
    private::{add, create, delete_message, remove_ok, send},
};

// ---- helpers ----

/// `PUT /api/me/rooms/{room}`, the raw response.
pub async fn try_follow(c: &Client, room: &str) -> reqwest::Response {
    send(
        c,
        Method::PUT,
        &format!("/api/me/rooms/{room}"),
        Value::Null,
    )
    .await
}

/// Follows `room`, which must succeed; the `room` answered.
pub async fn follow(c: &Client, room: &str) -> Value {
    let res = try_follow(c, room).await;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, 200, "following {room}: {text}");
    serde_json::from_str::<Value>(&text).expect("follow answer is JSON")["room"].clone()
}

/// `DELETE /api/me/rooms/{room}`, which must answer `204`.
async fn unfollow(c: &Client, room: &str) {
    let res = send(
        c,
        Method::DELETE,
        &format!("/api/me/rooms/{room}"),
        Value::Null,
    )
    .await;
    assert_eq!(res.status(), 204, "unfollowing {room}");
}

/// `PUT /api/rooms/{room}/read` with `body`, the raw response.
async fn try_read(c: &Client, room: &str, body: Value) -> reqwest::Response {
    send(c, Method::PUT, &format!("/api/rooms/{room}/read"), body).await
}

/// Moves the marker of `room` to `id`, which must succeed; the `room` answered.
pub async fn mark_read(c: &Client, room: &str, id: i64) -> Value {
    let res = try_read(c, room, json!({ "last_read_id": id })).await;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, 200, "marking {room} read up to {id}: {text}");
    serde_json::from_str::<Value>(&text).expect("read answer is JSON")["room"].clone()
}

/// The caller's room list.
pub async fn room_list(c: &Client) -> Vec<Value> {
    let res = c.get("/api/me/rooms").await;
    assert_eq!(res.status(), 200, "GET /api/me/rooms");
    let body: Value = res.json().await.expect("room list is JSON");
    body["rooms"].as_array().expect("rooms array").clone()
}

/// `room` as the caller's list shows it, if there.
pub async fn entry(c: &Client, room: &str) -> Option<Value> {
    room_list(c).await.into_iter().find(|r| r["name"] == room)
}

/// `(unread, mentions)` of `room` in the caller's list.
async fn counts(c: &Client, room: &str) -> (i64, i64) {
    let r = entry(c, room)
        .await
        .unwrap_or_else(|| panic!("{room} is not in the list"));
    (
        r["unread"].as_i64().expect("unread"),
        r["mentions"].as_i64().expect("mentions"),
    )
}

/// A client of the same user (same cookies) talking to node `i` of the app (the same
/// node when it runs alone).
fn on_node(app: &TestApp, c: &Client, i: usize) -> Client {
    let base = match app.nodes.get(i) {
        Some(node) if app.nodes.len() > 1 => format!("http://127.0.0.1:{}", node.port),
        _ => app.base.clone(),
    };
    Client {
        http: c.http.clone(),
        base,
        jar: c.jar.clone(),
    }
}

// ---- the list ----

#[tokio::test]
async fn a_followed_room_enters_the_list_with_its_marker_at_the_newest_message() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    bob.say_id("lobby", "one").await;
    let newest = bob.say_id("lobby", "two").await;
    let room = follow(&alice, "lobby").await;
    assert_eq!(
        room,
        json!({
            "name": "lobby", "visibility": "public", "role": null, "last_read_id": newest,
            "last_message_id": newest, "unread": 0, "mentions": 0
        }),
        "a followed room starts read"
    );
    assert_eq!(
        follow(&alice, "lobby").await,
        room,
        "following again changes nothing"
    );
    let third = bob.say_id("lobby", "three").await;
    let listed = entry(&alice, "lobby").await.expect("lobby listed");
    assert_eq!(listed["last_message_id"], third, "newest message: {listed}");
    assert_eq!(listed["unread"], 1, "one new message: {listed}");
}

#[tokio::test]
async fn the_list_holds_created_rooms_rooms_one_was_added_to_and_follows_by_name() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    create(&alice, "zeta", "private").await;
    create(&bob, "beta", "private").await;
    let newest = bob.say_id("beta", "before alice").await;
    add(&bob, "beta", "alice", "member").await;
    follow(&alice, "alpha").await;
    let list = room_list(&alice).await;
    let names: Vec<&str> = list
        .iter()
        .map(|r| r["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["alpha", "beta", "zeta"],
        "ordered by name: {list:?}"
    );
    assert_eq!(list[1]["role"], "member", "added: {}", list[1]);
    assert_eq!(list[1]["visibility"], "private", "{}", list[1]);
    assert_eq!(
        list[1]["last_read_id"], newest,
        "being added starts read: {}",
        list[1]
    );
    assert_eq!(list[2]["role"], "owner", "created: {}", list[2]);
}

#[tokio::test]
async fn a_private_room_is_followed_by_members_only() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    create(&bob, "secret", "private").await;
    assert_error(try_follow(&alice, "secret").await, 404, "unknown_room").await;
    assert_error(
        try_read(&alice, "secret", json!({ "last_read_id": 1 })).await,
        404,
        "unknown_room",
    )
    .await;
    assert!(entry(&alice, "secret").await.is_none(), "not listed");
    assert_error(try_follow(&alice, "Bad!").await, 400, "invalid_room").await;
}

#[tokio::test]
async fn unfollowing_drops_a_public_room_but_a_member_keeps_its_private_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    create(&alice, "mine", "private").await;
    follow(&alice, "lobby").await;
    unfollow(&alice, "lobby").await;
    unfollow(&alice, "lobby").await;
    unfollow(&alice, "never-followed").await;
    unfollow(&alice, "mine").await;
    let names: Vec<Value> = room_list(&alice)
        .await
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, [json!("mine")], "lobby gone, mine kept");
}

#[tokio::test]
async fn following_again_after_unfollowing_starts_the_marker_afresh() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let first = bob.say_id("lobby", "one").await;
    follow(&alice, "lobby").await;
    mark_read(&alice, "lobby", 0).await;
    let newest = bob.say_id("lobby", "two").await;
    assert_eq!(counts(&alice, "lobby").await.0, 1, "one unread");
    unfollow(&alice, "lobby").await;
    let again = follow(&alice, "lobby").await;
    assert_eq!(
        again["last_read_id"], newest,
        "afresh, not {first}: {again}"
    );
    assert_eq!(again["unread"], 0, "{again}");
}

// ---- counts ----

#[tokio::test]
async fn unread_counts_others_messages_that_exist_and_mentions_those_naming_the_caller() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    follow(&alice, "lobby").await;
    bob.say_id("lobby", "hello all").await;
    bob.say_id("lobby", "hi @alice").await;
    let gone = bob.say_id("lobby", "@alice this goes").await;
    alice.say_id("lobby", "my own @alice").await;
    assert_eq!(counts(&alice, "lobby").await, (3, 2), "before the deletion");
    let res = delete_message(&bob, "lobby", gone).await;
    assert_eq!(res.status(), 204, "deleting");
    assert_eq!(
        counts(&alice, "lobby").await,
        (2, 1),
        "a deleted message counts no more; her own never did"
    );
    let last = entry(&alice, "lobby").await.expect("listed")["last_message_id"].clone();
    let newest = alice.say_id("lobby", "newest").await;
    assert!(last.as_i64() < Some(newest), "the newest message counts");
}

#[tokio::test]
async fn an_edit_or_reaction_leaves_last_message_id_and_an_edit_mention_counts() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    follow(&alice, "lobby").await;
    let id = bob.say_id("lobby", "plain").await;
    let res = send(
        &bob,
        Method::PATCH,
        &format!("/api/rooms/lobby/messages/{id}"),
        json!({ "body": "now @alice" }),
    )
    .await;
    assert_eq!(res.status(), 200, "edit");
    let listed = entry(&alice, "lobby").await.expect("listed");
    assert_eq!(
        listed["last_message_id"], id,
        "an edit is no message: {listed}"
    );
    assert_eq!(
        listed["mentions"], 1,
        "the edited body mentions her: {listed}"
    );
}

#[tokio::test]
async fn counts_are_exact_up_to_1000_and_report_1000_beyond() {
    let app = spawn_app_with(|s| {
        s.rate_limit.messages_per_sec = 100_000;
        s.rate_limit.messages_burst = 100_000;
    })
    .await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    follow(&alice, "busy").await;
    mark_read(&alice, "busy", 0).await;
    for chunk in 0..11 {
        let posts = (0..100).map(|i| {
            let n = chunk * 100 + i;
            let body = if n % 2 == 0 {
                format!("@alice {n}")
            } else {
                format!("n {n}")
            };
            let bob = &bob;
            async move { bob.say_id("busy", &body).await }
        });
        futures_util::future::join_all(posts).await;
        if chunk == 9 {
            assert_eq!(counts(&alice, "busy").await, (1000, 500), "exact at 1,000");
        }
    }
    assert_eq!(
        counts(&alice, "busy").await,
        (1000, 550),
        "1,100 unread report 1,000"
    );
}

// ---- markers ----

#[tokio::test]
async fn a_marker_moves_forward_only_and_stops_at_the_newest_message() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    follow(&alice, "lobby").await;
    let one = bob.say_id("lobby", "one").await;
    let two = bob.say_id("lobby", "two").await;
    let room = mark_read(&alice, "lobby", one).await;
    assert_eq!(room["last_read_id"], one, "{room}");
    assert_eq!(room["unread"], 1, "{room}");
    let room = mark_read(&alice, "lobby", 0).await;
    assert_eq!(room["last_read_id"], one, "a smaller id leaves it: {room}");
    let room = mark_read(&alice, "lobby", two + 1000).await;
    assert_eq!(room["last_read_id"], two, "capped at the newest: {room}");
    assert_eq!(room["unread"], 0, "{room}");
}

#[tokio::test]
async fn a_marker_set_in_a_room_not_listed_enters_it_there() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let one = bob.say_id("lobby", "one").await;
    bob.say_id("lobby", "two").await;
    let room = mark_read(&alice, "lobby", one).await;
    assert_eq!(room["last_read_id"], one, "{room}");
    assert_eq!(room["unread"], 1, "{room}");
    assert!(entry(&alice, "lobby").await.is_some(), "now listed");
}

#[tokio::test]
async fn a_bad_marker_is_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for body in [
        json!({ "last_read_id": -1 }),
        json!({}),
        json!({ "last_read_id": "1" }),
    ] {
        let res = try_read(&alice, "lobby", body.clone()).await;
        assert_error(res, 400, "invalid_request").await;
    }
    assert!(entry(&alice, "lobby").await.is_none(), "nothing listed");
}

#[tokio::test]
async fn a_removed_member_loses_its_marker_and_comes_back_afresh() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    create(&bob, "club", "private").await;
    add(&bob, "club", "alice", "member").await;
    mark_read(&alice, "club", 0).await;
    remove_ok(&bob, "club", "alice").await;
    assert!(
        entry(&alice, "club").await.is_none(),
        "gone with the membership"
    );
    let newest = bob.say_id("club", "while away").await;
    add(&bob, "club", "alice", "member").await;
    let back = entry(&alice, "club").await.expect("listed again");
    assert_eq!(back["last_read_id"], newest, "afresh: {back}");
}

// ---- the `read` event ----

#[tokio::test]
async fn a_moved_marker_reaches_every_stream_of_the_user_whatever_its_filter() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    follow(&alice, "lobby").await;
    let id = bob.say_id("lobby", "one").await;
    let mut bare = alice.events().await;
    let mut narrow = alice.listen(&["elsewhere"], Some(&["message"])).await;
    let mut other = bob.events().await;
    mark_read(&alice, "lobby", id).await;
    for (what, sse) in [("unsubscribed", &mut bare), ("filtered", &mut narrow)] {
        let e = sse.expect_next("read").await;
        assert_eq!(e.id, None, "{what}: ephemeral, no id: {e:?}");
        assert_eq!(
            e.json(),
            json!({ "room": "lobby", "last_read_id": id }),
            "{what} stream"
        );
    }
    other.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_marker_left_where_it_was_sends_nothing() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    follow(&alice, "lobby").await;
    let id = bob.say_id("lobby", "one").await;
    mark_read(&alice, "lobby", id).await;
    let mut sse = alice.events().await;
    mark_read(&alice, "lobby", id).await;
    mark_read(&alice, "lobby", 0).await;
    sse.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_marker_moved_on_one_node_reaches_the_users_stream_on_another() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    follow(&alice, "lobby").await;
    let id = bob.say_id("lobby", "one").await;
    let last = app.nodes.len() - 1;
    let mut far = on_node(&app, &alice, last).events().await;
    mark_read(&on_node(&app, &alice, 0), "lobby", id).await;
    let e = far.expect_next("read").await;
    assert_eq!(
        e.json(),
        json!({ "room": "lobby", "last_read_id": id }),
        "on node {last}"
    );
}

#[tokio::test]
async fn read_is_a_reserved_event_name() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let res = alice.custom("lobby", "read", json!({})).await;
    assert_error(res, 400, "reserved_event").await;
}

#[tokio::test]
async fn a_full_room_list_takes_no_new_room_by_a_follow_or_a_first_marker() {
    let app = spawn_app_with(|s| s.limits.rooms_listed_per_user = 2).await;
    let alice = app.user("alice").await;
    follow(&alice, "one").await;
    follow(&alice, "two").await;
    assert_error(try_follow(&alice, "three").await, 400, "too_many_rooms").await;
    assert_error(
        try_read(&alice, "three", json!({ "last_read_id": 0 })).await,
        400,
        "too_many_rooms",
    )
    .await;
    // A room already listed still takes a follow and a marker; one unfollowed makes room.
    follow(&alice, "two").await;
    mark_read(&alice, "two", 0).await;
    unfollow(&alice, "one").await;
    follow(&alice, "three").await;
    let names: Vec<Value> = room_list(&alice)
        .await
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("three"), json!("two")],
        "the list after making room"
    );
}
