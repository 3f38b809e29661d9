//! The conversation: edits, reactions, replies and mentions — each a stored change in the
//! one id sequence, sent live and replayed on resume, with every message carrying its state
//! as it is when read.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{Client, assert_error, single_node_only, spawn_app, spawn_app_with},
    private::{add, admin_user, assert_forbidden, create, delete_message, send, until_sentinel},
};

// ---- helpers ----

/// `s` percent-encoded for a path segment (every byte outside the unreserved set).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `PATCH /api/rooms/{room}/messages/{id}` with `{"body"}`, the raw response.
async fn try_edit(
    c: &Client,
    room: &str,
    id: impl std::fmt::Display,
    body: &str,
) -> reqwest::Response {
    let path = format!("/api/rooms/{room}/messages/{id}");
    send(c, Method::PATCH, &path, json!({ "body": body })).await
}

/// An edit that must succeed; the `message` answered.
async fn edit(c: &Client, room: &str, id: i64, body: &str) -> Value {
    let res = try_edit(c, room, id, body).await;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, 200, "editing message {id} of {room}: {text}");
    serde_json::from_str::<Value>(&text).expect("edit answer is JSON")["message"].clone()
}

/// `PUT` (add) or `DELETE` (remove) a reaction, the raw response.
async fn try_react(
    c: &Client,
    method: Method,
    room: &str,
    id: i64,
    emoji: &str,
) -> reqwest::Response {
    let path = format!(
        "/api/rooms/{room}/messages/{id}/reactions/{}",
        encode(emoji)
    );
    send(c, method, &path, Value::Null).await
}

/// A reaction request that must succeed; the answer.
async fn react(c: &Client, method: Method, room: &str, id: i64, emoji: &str) -> Value {
    let res = try_react(c, method.clone(), room, id, emoji).await;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{method} {emoji} on {id}: {text}");
    serde_json::from_str(&text).expect("reaction answer is JSON")
}

/// Adds `emoji`, which must succeed; the answer.
async fn add_reaction(c: &Client, room: &str, id: i64, emoji: &str) -> Value {
    react(c, Method::PUT, room, id, emoji).await
}

/// Posts `body` as a reply to `to`, the raw response.
async fn try_reply(c: &Client, room: &str, body: &str, to: Value) -> reqwest::Response {
    c.post(
        &format!("/api/rooms/{room}/messages"),
        json!({ "body": body, "reply_to": to }),
    )
    .await
}

/// The messages of `GET /api/rooms/{room}/messages`, as `c` reads them.
async fn history(c: &Client, room: &str) -> Vec<Value> {
    let res = c.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!(res.status(), 200, "history of {room}");
    let body: Value = res.json().await.expect("history answer");
    body["messages"].as_array().expect("messages array").clone()
}

/// The message `id` of `room` as history shows it now.
async fn read(c: &Client, room: &str, id: i64) -> Value {
    history(c, room)
        .await
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("message {id} is not in the history of {room}"))
}

/// `[{"emoji","count","users":[names]}]` of a reactions list, for comparing.
fn summary(reactions: &Value) -> Vec<(String, i64, Vec<String>)> {
    reactions
        .as_array()
        .unwrap_or_else(|| panic!("reactions is a list: {reactions}"))
        .iter()
        .map(|r| {
            let users = r["users"].as_array().expect("users").iter();
            (
                r["emoji"].as_str().expect("emoji").to_owned(),
                r["count"].as_i64().expect("count"),
                users
                    .map(|u| u["username"].as_str().expect("name").to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn names(users: &Value) -> Vec<&str> {
    users
        .as_array()
        .unwrap_or_else(|| panic!("a list of users: {users}"))
        .iter()
        .map(|u| u["username"].as_str().expect("username"))
        .collect()
}

/// The four conversation fields of a fresh message.
fn assert_fresh(m: &Value, where_: &str) {
    for (field, expected) in [
        ("edited_at", Value::Null),
        ("reply_to", Value::Null),
        ("mentions", json!([])),
        ("reactions", json!([])),
    ] {
        assert_eq!(
            m[field], expected,
            "{where_}: `{field}` of a fresh message in {m}"
        );
    }
}

// ---- Message carries the new fields everywhere ----

#[tokio::test]
async fn a_fresh_message_carries_the_four_fields_in_answer_stream_history_and_replay() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut sse = alice.listen(&["r"], Some(&["message"])).await;
    let answered = alice.say("r", "hello").await;
    assert_fresh(&answered, "the post's answer");
    assert_fresh(&sse.expect_next("message").await.json(), "the live event");
    assert_fresh(&history(&alice, "r").await[0], "history");
    let mut later = alice.events().await;
    alice
        .subscribe_with(&later, json!({ "rooms": ["r"], "history": 5 }))
        .await;
    assert_fresh(&later.expect("message").await.json(), "history: N");
}

// ---- edits ----

#[tokio::test]
async fn the_author_edits_and_message_edited_goes_live() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut sse = bob.listen(&["r"], Some(&["message"])).await;
    let id = alice.say_id("r", "helo").await;
    sse.expect_next("message").await;
    let edited = edit(&alice, "r", id, "  hello  ").await;
    assert_eq!(edited["id"], id, "the answer is the message: {edited}");
    assert_eq!(edited["body"], "hello", "the new body, trimmed: {edited}");
    let edited_at = edited["edited_at"]
        .as_str()
        .expect("edited_at is set")
        .to_owned();
    let e = sse.expect_next("message_edited").await;
    assert!(
        e.id_num() > id,
        "the event takes a new id after {id}: {e:?}"
    );
    assert_eq!(
        e.json(),
        json!({
            "id": e.id_num(), "room": "r", "message_id": id, "body": "hello",
            "edited_at": edited_at, "mentions": [], "by": alice.user_ref().await
        }),
        "message_edited data"
    );
}

#[tokio::test]
async fn nobody_but_the_author_edits_not_even_an_admin_or_the_owner() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    create(&owner, "square", "public").await;
    let id = bob.say_id("square", "mine").await;
    assert_forbidden(try_edit(&owner, "square", id, "owner's").await).await;
    let admin = admin_user(&app, "root").await;
    assert_forbidden(try_edit(&admin, "square", id, "admin's").await).await;
    assert_eq!(
        read(&bob, "square", id).await["body"],
        "mine",
        "a refused edit changed it"
    );
}

#[tokio::test]
async fn editing_what_is_not_a_message_of_the_room_is_404_unknown_message() {
    let app = crate::helpers::spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let id = alice.say_id("a", "in a").await;
    let b = app.broadcast("not a message").await["id"]
        .as_i64()
        .expect("id");
    let gone = alice.say_id("a", "deleted").await;
    assert_eq!(delete_message(&alice, "a", gone).await.status(), 204);
    for (room, what) in [
        ("b", id.to_string()),
        ("a", (id + 1000).to_string()),
        ("a", b.to_string()),
        ("a", gone.to_string()),
        ("a", "x1".to_owned()),
        ("a", "0".to_owned()),
    ] {
        let res = try_edit(&alice, room, &what, "new").await;
        assert_error(res, 404, "unknown_message").await;
    }
}

#[tokio::test]
async fn an_edit_is_validated_as_a_post() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let id = alice.say_id("r", "x").await;
    assert_error(try_edit(&alice, "r", id, "   ").await, 400, "invalid_body").await;
    let long = "y".repeat(4001);
    assert_error(try_edit(&alice, "r", id, &long).await, 400, "invalid_body").await;
    let res = send(
        &alice,
        Method::PATCH,
        &format!("/api/rooms/r/messages/{id}"),
        json!({}),
    )
    .await;
    assert_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn history_and_replay_show_an_edited_message_as_it_is_now() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let id = alice.say_id("r", "first").await;
    let edited = edit(&alice, "r", id, "second").await;
    let now = read(&alice, "r", id).await;
    assert_eq!(now["body"], "second", "history: {now}");
    assert_eq!(now["edited_at"], edited["edited_at"], "history: {now}");
    let mut sse = alice.events().await;
    alice
        .subscribe_with(&sse, json!({ "rooms": ["r"], "history": 1 }))
        .await;
    let replayed = sse.expect("message").await.json();
    assert_eq!(
        replayed["body"], "second",
        "history: N replays the current body"
    );
}

#[tokio::test]
async fn edits_are_replayed_after_last_event_id_with_the_message_as_it_is_now() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let before = alice.say_id("r", "before").await;
    let id = alice.say_id("r", "draft").await;
    edit(&alice, "r", id, "final").await;
    let mut sse = bob.events_from(Some(before)).await;
    let ans = bob
        .subscribe_with(&sse, json!({ "rooms": ["r"], "events": ["message"] }))
        .await;
    assert_eq!(
        ans["replay"],
        json!({ "count": 2, "complete": true }),
        "{ans}"
    );
    let m = sse.expect_next("message").await;
    assert_eq!(
        (m.id_num(), m.json()["body"].clone()),
        (id, json!("final")),
        "{m:?}"
    );
    assert!(
        m.json()["edited_at"].is_string(),
        "replayed with edited_at: {m:?}"
    );
    let e = sse.expect_next("message_edited").await;
    assert_eq!(
        (e.json()["message_id"].clone(), e.json()["body"].clone()),
        (json!(id), json!("final")),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_edit_counts_against_the_posting_rate_limit() {
    if single_node_only("rate limits are per node") {
        return;
    }
    let app = spawn_app_with(|s| {
        s.rate_limit.messages_per_sec = 1;
        s.rate_limit.messages_burst = 2;
    })
    .await;
    let alice = app.user("alice").await;
    let id = alice.say_id("r", "one").await;
    assert_eq!(try_edit(&alice, "r", id, "two").await.status(), 200);
    let res = try_edit(&alice, "r", id, "three").await;
    assert!(
        res.headers().get("retry-after").is_some(),
        "429 carries Retry-After"
    );
    assert_error(res, 429, "rate_limited").await;
}

// ---- mentions ----

#[tokio::test]
async fn mentions_follow_the_rule_and_name_existing_users_once_in_order() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for name in ["bob", "Carol", "dave", "bobby_not"] {
        app.user(name).await;
    }
    let m = alice
        .say(
            "r",
            "@carol: @bob's idea, cc @BOB me@dave @nobody_here (@alice) @bobby x@dave",
        )
        .await;
    assert_eq!(
        names(&m["mentions"]),
        ["Carol", "bob", "alice"],
        "mentions of {m}"
    );
    let ids: Vec<&Value> = m["mentions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|u| &u["id"])
        .collect();
    assert_eq!(ids[2], &alice.me().await["id"], "mentions carry ids: {m}");
}

#[tokio::test]
async fn an_edit_works_out_the_mentions_again() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    app.user("carol").await;
    let mut sse = alice.listen(&["r"], Some(&["message"])).await;
    let id = alice.say_id("r", "hi @bob").await;
    sse.expect_next("message").await;
    let edited = edit(&alice, "r", id, "sorry, I meant @carol").await;
    assert_eq!(names(&edited["mentions"]), ["carol"], "{edited}");
    let e = sse.expect_next("message_edited").await.json();
    assert_eq!(names(&e["mentions"]), ["carol"], "message_edited: {e}");
    assert_eq!(names(&read(&alice, "r", id).await["mentions"]), ["carol"]);
}

#[tokio::test]
async fn in_a_private_room_only_those_who_may_read_it_are_mentioned() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    app.user("member").await;
    app.user("stranger").await;
    admin_user(&app, "root").await;
    create(&owner, "club", "private").await;
    add(&owner, "club", "member", "member").await;
    let m = owner.say("club", "@stranger @member @root @owner").await;
    assert_eq!(names(&m["mentions"]), ["member", "root", "owner"], "{m}");
}

// ---- replies ----

#[tokio::test]
async fn a_reply_carries_the_original_id_author_and_first_hundred_characters() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut sse = alice.listen(&["r"], Some(&["message"])).await;
    let long = format!("{}{}", "é".repeat(99), "xyz");
    let original = alice.say_id("r", &long).await;
    sse.expect_next("message").await;
    let res = try_reply(&bob, "r", "agreed", json!(original)).await;
    assert_eq!(res.status(), 201, "a reply is posted");
    let posted = res.json::<Value>().await.expect("answer")["message"].clone();
    let expected = json!({
        "id": original,
        "user": alice.user_ref().await,
        "excerpt": format!("{}x", "é".repeat(99)),
    });
    assert_eq!(posted["reply_to"], expected, "the answer's reply_to");
    assert_eq!(
        sse.expect_next("message").await.json()["reply_to"],
        expected,
        "live"
    );
    assert_eq!(
        read(&bob, "r", posted["id"].as_i64().expect("id")).await["reply_to"],
        expected
    );
}

#[tokio::test]
async fn reply_to_must_be_a_message_of_the_same_room() {
    let app = crate::helpers::spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let elsewhere = alice.say_id("other", "there").await;
    let here = alice.say_id("r", "here").await;
    let b = app.broadcast("all").await["id"].as_i64().expect("id");
    let gone = alice.say_id("r", "gone").await;
    assert_eq!(delete_message(&alice, "r", gone).await.status(), 204);
    for to in [
        json!(0),
        json!(elsewhere),
        json!(here + 1000),
        json!(b),
        json!(gone),
        json!(-1),
    ] {
        let res = try_reply(&alice, "r", "re", to.clone()).await;
        assert_error(res, 404, "unknown_message").await;
    }
    assert_eq!(
        history(&alice, "r").await.len(),
        1,
        "a refused reply was stored"
    );
    let res = try_reply(&alice, "r", "no reply", Value::Null).await;
    assert_eq!(res.status(), 201, "`reply_to: null` is no reply");
    let res = try_reply(&alice, "r", "bad", json!("12")).await;
    assert_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_reply_shows_the_original_as_it_is_now_and_nulls_once_it_is_deleted() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let original = alice.say_id("r", "before").await;
    let res = try_reply(&alice, "r", "re", json!(original)).await;
    let reply = res.json::<Value>().await.expect("answer")["message"]["id"]
        .as_i64()
        .expect("id");
    edit(&alice, "r", original, "after").await;
    assert_eq!(
        read(&alice, "r", reply).await["reply_to"]["excerpt"],
        "after"
    );
    assert_eq!(delete_message(&alice, "r", original).await.status(), 204);
    assert_eq!(
        read(&alice, "r", reply).await["reply_to"],
        json!({ "id": original, "user": null, "excerpt": null }),
        "the reply once its original is deleted"
    );
}

// ---- reactions ----

#[tokio::test]
async fn adding_a_reaction_answers_the_list_and_sends_reaction() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut sse = alice.listen(&["r"], Some(&["message"])).await;
    let id = alice.say_id("r", "react to me").await;
    sse.expect_next("message").await;
    let ans = add_reaction(&bob, "r", id, "👍").await;
    assert_eq!(
        ans,
        json!({ "message_id": id, "reactions": [
            { "emoji": "👍", "count": 1, "users": [bob.user_ref().await] }
        ]}),
        "the PUT answer"
    );
    let e = sse.expect_next("reaction").await;
    assert!(e.id_num() > id, "a new id: {e:?}");
    assert_eq!(
        e.json(),
        json!({
            "id": e.id_num(), "room": "r", "message_id": id, "emoji": "👍",
            "user": bob.user_ref().await, "action": "add", "count": 1
        }),
        "reaction data"
    );
    let ans = react(&bob, Method::DELETE, "r", id, "👍").await;
    assert_eq!(ans["reactions"], json!([]), "an emoji at 0 leaves the list");
    let e = sse.expect_next("reaction").await.json();
    assert_eq!(
        (e["action"].clone(), e["count"].clone()),
        (json!("remove"), json!(0)),
        "{e}"
    );
}

#[tokio::test]
async fn a_reaction_that_changes_nothing_sends_nothing() {
    let app = crate::helpers::spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut sse = alice.listen(&["r"], Some(&["message"])).await;
    let id = alice.say_id("r", "x").await;
    sse.expect_next("message").await;
    add_reaction(&bob, "r", id, "🎉").await;
    sse.expect_next("reaction").await;
    let again = add_reaction(&bob, "r", id, "🎉").await;
    assert_eq!(
        summary(&again["reactions"]),
        [("🎉".into(), 1, vec!["bob".into()])]
    );
    let not_held = react(&alice, Method::DELETE, "r", id, "🎉").await;
    assert_eq!(
        not_held["reactions"], again["reactions"],
        "removing one not held"
    );
    let never = react(&alice, Method::DELETE, "r", id, "🦀").await;
    assert_eq!(never["reactions"], again["reactions"]);
    let seen = until_sentinel(&app, &mut sse).await;
    assert!(
        seen.is_empty(),
        "requests that changed nothing sent: {seen:?}"
    );
}

#[tokio::test]
async fn reactions_list_counts_and_holders_in_the_order_they_came() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let id = alice.say_id("r", "x").await;
    add_reaction(&carol, "r", id, "👍").await;
    add_reaction(&alice, "r", id, "❤️").await;
    add_reaction(&bob, "r", id, "👍").await;
    add_reaction(&alice, "r", id, "👍").await;
    react(&alice, Method::DELETE, "r", id, "❤️").await;
    let ans = add_reaction(&bob, "r", id, "❤️").await;
    let expected = vec![
        (
            "👍".to_owned(),
            3,
            vec!["carol".to_owned(), "bob".into(), "alice".into()],
        ),
        ("❤️".to_owned(), 1, vec!["bob".to_owned()]),
    ];
    assert_eq!(summary(&ans["reactions"]), expected, "the answer");
    assert_eq!(
        summary(&read(&alice, "r", id).await["reactions"]),
        expected,
        "history"
    );
}

#[tokio::test]
async fn only_twenty_distinct_reactions_fit_on_a_message() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let id = alice.say_id("r", "x").await;
    let emoji: Vec<String> = ('😀'..).take(21).map(String::from).collect();
    for e in &emoji[..20] {
        add_reaction(&alice, "r", id, e).await;
    }
    let res = try_react(&alice, Method::PUT, "r", id, &emoji[20]).await;
    assert_error(res, 409, "too_many_reactions").await;
    let bob = app.user("bob").await;
    let ans = add_reaction(&bob, "r", id, &emoji[0]).await;
    assert_eq!(
        ans["reactions"][0]["count"], 2,
        "one already there still takes more"
    );
}

#[tokio::test]
async fn a_reaction_that_is_not_an_emoji_is_400_invalid_reaction() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let id = alice.say_id("r", "x").await;
    for bad in [
        "+1",
        "a",
        "1️⃣",
        "é",
        "日本",
        "👍 ",
        "\u{00A0}👍",
        "👍👍👍👍👍👍👍👍👍",
        "\u{200D}",
    ] {
        let res = try_react(&alice, Method::PUT, "r", id, bad).await;
        assert_error(res, 400, "invalid_reaction").await;
    }
    for ok in ["🇫🇷", "👍🏽", "👩‍👩‍👧‍👦", "🏳️‍🌈", "©"] {
        let res = try_react(&alice, Method::PUT, "r", id, ok).await;
        assert_eq!(res.status(), 200, "{ok:?} is a reaction");
    }
}

#[tokio::test]
async fn reacting_to_what_is_not_a_message_of_the_room_is_404_unknown_message() {
    let app = crate::helpers::spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let mut sse = alice.listen(&["a"], Some(&["message"])).await;
    let id = alice.say_id("a", "x").await;
    sse.expect_next("message").await;
    add_reaction(&alice, "a", id, "👍").await;
    let event = sse.expect_next("reaction").await.id_num();
    let b = app.broadcast("all").await["id"].as_i64().expect("id");
    for (room, target) in [
        ("b", id),
        ("a", id + 1000),
        ("a", b),
        ("a", event),
        ("a", 0),
    ] {
        for method in [Method::PUT, Method::DELETE] {
            let res = try_react(&alice, method, room, target, "👍").await;
            assert_error(res, 404, "unknown_message").await;
        }
    }
}

#[tokio::test]
async fn every_reaction_request_counts_against_the_posting_rate_limit() {
    if single_node_only("rate limits are per node") {
        return;
    }
    let app = spawn_app_with(|s| {
        s.rate_limit.messages_per_sec = 1;
        s.rate_limit.messages_burst = 3;
    })
    .await;
    let alice = app.user("alice").await;
    let id = alice.say_id("r", "x").await;
    add_reaction(&alice, "r", id, "👍").await;
    // Changes nothing, counts all the same.
    add_reaction(&alice, "r", id, "👍").await;
    let res = try_react(&alice, Method::DELETE, "r", id, "🦀").await;
    assert_error(res, 429, "rate_limited").await;
}

#[tokio::test]
async fn reactions_are_replayed_after_last_event_id_with_the_message_as_it_is_now() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let before = alice.say_id("r", "before").await;
    let id = alice.say_id("r", "x").await;
    add_reaction(&bob, "r", id, "👍").await;
    add_reaction(&alice, "r", id, "👍").await;
    react(&bob, Method::DELETE, "r", id, "👍").await;
    let mut sse = bob.events().await;
    let ans = bob
        .subscribe_with(
            &sse,
            json!({ "rooms": ["r"], "last_event_id": before, "events": ["message"] }),
        )
        .await;
    assert_eq!(
        ans["replay"],
        json!({ "count": 4, "complete": true }),
        "{ans}"
    );
    let m = sse.expect_next("message").await.json();
    assert_eq!(
        summary(&m["reactions"]),
        [("👍".into(), 1, vec!["alice".into()])],
        "the message as it is now: {m}"
    );
    let mut steps = Vec::new();
    for _ in 0..3 {
        let e = sse.expect_next("reaction").await.json();
        steps.push((
            e["user"]["username"].clone(),
            e["action"].clone(),
            e["count"].clone(),
        ));
    }
    assert_eq!(
        steps,
        [
            (json!("bob"), json!("add"), json!(1)),
            (json!("alice"), json!("add"), json!(2)),
            (json!("bob"), json!("remove"), json!(1)),
        ],
        "each change, with the count it left"
    );
}

// ---- deletion ----

#[tokio::test]
async fn deleting_a_message_takes_its_reactions_and_change_events_with_it() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let before = alice.say_id("r", "before").await;
    let id = alice.say_id("r", "doomed").await;
    add_reaction(&bob, "r", id, "👍").await;
    edit(&alice, "r", id, "still doomed").await;
    assert_eq!(delete_message(&alice, "r", id).await.status(), 204);
    let mut sse = bob.events().await;
    let ans = bob
        .subscribe_with(&sse, json!({ "rooms": ["r"], "last_event_id": before }))
        .await;
    assert_eq!(
        ans["replay"]["count"], 1,
        "only message_deleted is replayed: {ans}"
    );
    let e = sse.expect_next("message_deleted").await;
    assert_eq!(e.json()["message_id"], id, "{e:?}");
    let res = try_react(&bob, Method::PUT, "r", id, "👍").await;
    assert_error(res, 404, "unknown_message").await;
    assert_error(
        try_edit(&alice, "r", id, "ghost").await,
        404,
        "unknown_message",
    )
    .await;
}

// ---- filters and names ----

#[tokio::test]
async fn message_edited_and_reaction_pass_exactly_the_filters_that_pass_message() {
    let app = crate::helpers::spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let mut messages = alice.listen(&["r"], Some(&["message"])).await;
    let mut typing = alice.listen(&["r"], Some(&["typing"])).await;
    let mut named = alice
        .listen(&["r"], Some(&["reaction", "message_edited"]))
        .await;
    let id = alice.say_id("r", "x").await;
    messages.expect_next("message").await;
    edit(&alice, "r", id, "y").await;
    add_reaction(&alice, "r", id, "👍").await;
    messages.expect_next("message_edited").await;
    messages.expect_next("reaction").await;
    for (what, sse) in [
        ("typing", &mut typing),
        ("reaction/message_edited", &mut named),
    ] {
        let seen = until_sentinel(&app, sse).await;
        assert!(seen.is_empty(), "the {what} filter let through {seen:?}");
    }
}

#[tokio::test]
async fn message_edited_and_reaction_are_reserved_names() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for name in ["message_edited", "reaction"] {
        let res = alice.custom("r", name, json!(null)).await;
        assert_error(res, 400, "reserved_event").await;
    }
}

// ---- private rooms ----

#[tokio::test]
async fn strangers_get_404_unknown_room_on_every_conversation_route() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let stranger = app.user("stranger").await;
    create(&owner, "club", "private").await;
    let id = owner.say_id("club", "members only").await;
    let routes: Vec<(&str, reqwest::Response)> = vec![
        ("PATCH", try_edit(&stranger, "club", id, "mine now").await),
        (
            "PUT reaction",
            try_react(&stranger, Method::PUT, "club", id, "👍").await,
        ),
        (
            "DELETE reaction",
            try_react(&stranger, Method::DELETE, "club", id, "👍").await,
        ),
        (
            "POST reply",
            try_reply(&stranger, "club", "re", json!(id)).await,
        ),
    ];
    for (route, res) in routes {
        crate::private::assert_unknown_room(res, route).await;
    }
    let m = read(&owner, "club", id).await;
    assert_eq!(
        (m["body"].clone(), m["reactions"].clone()),
        (json!("members only"), json!([]))
    );
}

#[tokio::test]
async fn a_member_of_a_private_room_reacts_and_replies() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let member = app.user("member").await;
    create(&owner, "club", "private").await;
    add(&owner, "club", "member", "member").await;
    let id = owner.say_id("club", "welcome").await;
    add_reaction(&member, "club", id, "👋").await;
    assert_eq!(
        try_reply(&member, "club", "thanks", json!(id))
            .await
            .status(),
        201
    );
}
