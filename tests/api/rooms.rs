//! Rooms: posting and reading messages, custom events, the room list and presence.

use crate::helpers::{Client, assert_error, single_node_only, spawn_app, spawn_app_with};
use serde_json::{Value, json};

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

/// `GET /api/rooms/{room}/messages{query}`'s messages.
async fn history(c: &Client, room: &str, query: &str) -> Vec<Value> {
    let res = c.get(&format!("/api/rooms/{room}/messages{query}")).await;
    assert_eq!(res.status(), 200, "history of {room}{query}");
    let body: Value = res.json().await.expect("history answer");
    assert_eq!(keys(&body), ["messages"], "history answer keys: {body}");
    body["messages"].as_array().expect("messages array").clone()
}

fn ids(messages: &[Value]) -> Vec<i64> {
    messages.iter().map(|m| m["id"].as_i64().unwrap()).collect()
}

// ---- POST /api/rooms/{room}/messages ----

#[tokio::test]
async fn posting_a_message_answers_201_with_the_stored_message() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let res = alice
        .post("/api/rooms/general/messages", json!({ "body": "hello" }))
        .await;
    assert_eq!(res.status(), 201, "posting a message");
    let body: Value = res.json().await.unwrap();
    assert_eq!(keys(&body), ["message"], "answer keys: {body}");
    let m = &body["message"];
    assert_eq!(
        keys(m),
        [
            "body",
            "edited_at",
            "id",
            "mentions",
            "reactions",
            "reply_to",
            "room",
            "sent_at",
            "user"
        ],
        "Message keys: {m}"
    );
    assert!(
        m["id"].as_i64().is_some_and(|id| id > 0),
        "id is a positive integer: {m}"
    );
    assert_eq!(m["room"], "general");
    assert_eq!(m["body"], "hello");
    assert_eq!(
        m["user"],
        alice.user_ref().await,
        "user is {{id, username}}"
    );
    let sent_at = m["sent_at"].as_str().expect("sent_at string");
    let t = chrono::DateTime::parse_from_rfc3339(sent_at)
        .unwrap_or_else(|e| panic!("sent_at {sent_at:?} is not RFC 3339: {e}"));
    assert_eq!(t.offset().local_minus_utc(), 0, "sent_at is UTC: {sent_at}");
    let age = chrono::Utc::now().signed_duration_since(t);
    assert!(
        age.num_seconds().abs() < 60,
        "sent_at is now-ish: {sent_at}"
    );
}

#[tokio::test]
async fn message_ids_grow_across_rooms() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut last = 0;
    for room in ["a", "b", "a", "c", "b"] {
        let id = alice.say(room, "x").await["id"].as_i64().unwrap();
        assert!(id > last, "id {id} after {last}: one growing sequence");
        last = id;
    }
}

#[tokio::test]
async fn the_body_is_trimmed() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let m = alice.say("r", " \n\t  hi there \r\n ").await;
    assert_eq!(m["body"], "hi there", "the answer's body");
    assert_eq!(
        history(&alice, "r", "").await[0]["body"],
        "hi there",
        "stored"
    );
}

#[tokio::test]
async fn an_empty_or_blank_body_is_400() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for body in ["", " ", "\n\t \r\n"] {
        let res = alice
            .post("/api/rooms/r/messages", json!({ "body": body }))
            .await;
        assert_error(res, 400, "invalid_body").await;
    }
    assert!(history(&alice, "r", "").await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn a_body_of_4000_characters_is_accepted_and_4001_is_400() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    // Characters, not bytes: é is two bytes.
    let max = "é".repeat(4000);
    let m = alice.say("r", &format!("  {max}  ")).await;
    assert_eq!(m["body"], max.as_str(), "4000 characters after trimming");
    let res = alice
        .post("/api/rooms/r/messages", json!({ "body": "é".repeat(4001) }))
        .await;
    assert_error(res, 400, "invalid_body").await;
    assert_eq!(
        history(&alice, "r", "").await.len(),
        1,
        "the long one not stored"
    );
}

#[tokio::test]
async fn the_body_cap_follows_limits_message_chars() {
    let app = spawn_app_with(|s| s.limits.message_chars = 10).await;
    let alice = app.user("alice").await;
    alice.say("r", " 0123456789 ").await;
    let res = alice
        .post("/api/rooms/r/messages", json!({ "body": "0123456789a" }))
        .await;
    assert_error(res, 400, "invalid_body").await;
}

#[tokio::test]
async fn unusual_characters_survive_storage() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let body = "nul\u{0}inside \u{1} \u{7f} \u{fffd} \u{10ffff} 🎉";
    let sent = alice.say("r", body).await;
    assert_eq!(sent["body"], body, "the answer's body");
    assert_eq!(
        history(&alice, "r", "").await,
        [sent],
        "the stored body reads back verbatim"
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_string_is_400() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for bad in [json!({}), json!({ "body": 5 }), json!({ "body": null })] {
        let res = alice.post("/api/rooms/r/messages", bad).await;
        assert_error(res, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn posting_to_an_invalid_room_is_400_invalid_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for bad in [
        "General",
        "-x",
        "_x",
        "dot.ted",
        "sp%20ace",
        &"a".repeat(65),
    ] {
        let res = alice
            .post(
                &format!("/api/rooms/{bad}/messages"),
                json!({ "body": "hi" }),
            )
            .await;
        assert_error(res, 400, "invalid_room").await;
    }
}

#[tokio::test]
async fn posting_a_message_requires_a_session() {
    let app = spawn_app().await;
    let res = app
        .client()
        .post("/api/rooms/r/messages", json!({ "body": "hi" }))
        .await;
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_message_is_stored_before_it_is_sent() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut b = bob.listen(&["r"], Some(&["message"])).await;
    let sent = alice.say("r", "durable").await;
    let e = b.expect_next("message").await;
    assert_eq!(e.id_num(), sent["id"].as_i64().unwrap());
    // Read back as soon as it arrived: it is already in the history.
    let stored = history(&bob, "r", "").await;
    assert_eq!(
        stored,
        [e.json()],
        "the delivered message is in the history"
    );
}

#[tokio::test]
async fn a_message_whose_insert_failed_is_never_sent() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut sse = alice.listen(&["r"], Some(&["message", "sentinel"])).await;
    app.drop_messages_table().await;
    let res = alice
        .post("/api/rooms/r/messages", json!({ "body": "lost" }))
        .await;
    assert_error(res, 503, "unavailable").await;
    alice.send_custom("r", "sentinel", json!(1)).await;
    let e = sse.next_event().await.expect("the sentinel");
    assert_eq!(
        e.event, "sentinel",
        "a message that was not stored was sent: {e:?}"
    );
}

#[tokio::test]
async fn posting_too_fast_is_429_with_retry_after() {
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
    alice.send_custom("r", "typing", json!(1)).await;
    let res = alice
        .post("/api/rooms/r/messages", json!({ "body": "three" }))
        .await;
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_error(res, 429, "rate_limited").await;
    let retry = retry.expect("a Retry-After header on 429");
    assert!(
        retry.parse::<u64>().is_ok_and(|s| s >= 1),
        "Retry-After is whole seconds: {retry:?}"
    );
    let res = alice.custom("r", "typing", json!(1)).await;
    assert_error(res, 429, "rate_limited").await;
    // Another user has their own allowance.
    app.user("bob").await.say("r", "bob's").await;
}

// ---- GET /api/rooms/{room}/messages ----

#[tokio::test]
async fn history_is_ascending_by_id_and_only_of_that_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut mine = Vec::new();
    for i in 0..5 {
        mine.push(alice.say("r", &format!("r{i}")).await);
        alice.say("other", &format!("other{i}")).await;
    }
    let got = history(&alice, "r", "").await;
    assert_eq!(got, mine, "the room's messages, as stored, ascending");
}

#[tokio::test]
async fn history_of_a_room_without_messages_is_empty() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    assert!(history(&alice, "quiet", "").await.is_empty());
}

#[tokio::test]
async fn history_returns_50_by_default_and_at_most_limit() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut all = Vec::new();
    for i in 0..60 {
        all.push(
            alice.say("r", &format!("m{i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let page = ids(&history(&alice, "r", "").await);
    assert_eq!(page.len(), 50, "default limit 50");
    assert!(page.windows(2).all(|w| w[0] < w[1]), "ascending: {page:?}");
    let page = ids(&history(&alice, "r", "?limit=7").await);
    assert_eq!(page.len(), 7, "limit=7");
    assert!(page.windows(2).all(|w| w[0] < w[1]), "ascending: {page:?}");
    assert_eq!(
        history(&alice, "r", "?limit=200").await.len(),
        60,
        "limit=200"
    );
    assert_eq!(history(&alice, "r", "?limit=1").await.len(), 1, "limit=1");
}

#[tokio::test]
async fn history_after_pages_forward_from_that_id() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut all = Vec::new();
    for i in 0..10 {
        all.push(
            alice.say("r", &format!("m{i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let page = ids(&history(&alice, "r", &format!("?after={}&limit=3", all[2])).await);
    assert_eq!(page, all[3..6], "the three right after the 3rd message");
    let page = ids(&history(&alice, "r", &format!("?after={}", all[7])).await);
    assert_eq!(page, all[8..], "everything after the 8th message");
    let page = history(&alice, "r", &format!("?after={}", all[9])).await;
    assert!(page.is_empty(), "nothing after the last message");
}

#[tokio::test]
async fn history_before_gives_only_older_messages_ascending() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut all = Vec::new();
    for i in 0..10 {
        all.push(alice.say_id("r", &format!("m{i}")).await);
        // Ids of another room in between: a page is counted in messages, not in ids.
        alice.say("other", &format!("o{i}")).await;
    }
    let page = ids(&history(&alice, "r", &format!("?before={}", all[4])).await);
    assert_eq!(page, all[..4], "all four older messages, ascending");
    let page = ids(&history(&alice, "r", &format!("?before={}&limit=2", all[4])).await);
    assert_eq!(
        page,
        all[2..4],
        "the newest two below the 5th message, ascending"
    );
    let page = ids(&history(&alice, "r", &format!("?after={}&before={}", all[1], all[5])).await);
    assert_eq!(page, all[2..5], "between after and before");
}

#[tokio::test]
async fn a_history_limit_outside_1_to_200_is_400() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    // In range for the query's type but not for the contract: refused by the handler.
    for bad in ["0", "201"] {
        let res = alice
            .get(&format!("/api/rooms/r/messages?limit={bad}"))
            .await;
        assert_error(res, 400, "invalid_limit").await;
    }
    // Not a count at all: refused by the query parser.
    for bad in ["-1", "abc"] {
        let res = alice
            .get(&format!("/api/rooms/r/messages?limit={bad}"))
            .await;
        assert_error(res, 400, "invalid_query").await;
    }
}

#[tokio::test]
async fn history_of_an_invalid_room_is_400_invalid_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let res = alice.get("/api/rooms/Bad/messages").await;
    assert_error(res, 400, "invalid_room").await;
}

#[tokio::test]
async fn history_requires_a_session() {
    let app = spawn_app().await;
    let res = app.client().get("/api/rooms/r/messages").await;
    assert_error(res, 401, "unauthorized").await;
}

// ---- POST /api/rooms/{room}/events ----

#[tokio::test]
async fn a_custom_event_is_accepted_with_202_and_not_stored() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let res = alice.custom("r", "typing", json!({ "on": true })).await;
    assert_eq!(res.status(), 202, "custom event accepted");
    assert!(
        history(&alice, "r", "").await.is_empty(),
        "a custom event was stored as a message"
    );
}

#[tokio::test]
async fn reserved_event_names_are_400() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut sse = alice.events().await;
    alice.subscribe(&sse, &["r"]).await;
    sse.expect_next("presence").await;
    for name in ["message", "presence", "connected", "broadcast", "error"] {
        let res = alice.custom("r", name, json!("forged")).await;
        assert_error(res, 400, "reserved_event").await;
    }
    alice.send_custom("r", "sentinel", json!(1)).await;
    let e = sse.next_event().await.expect("the sentinel");
    assert_eq!(e.event, "sentinel", "a reserved name was sent: {e:?}");
}

#[tokio::test]
async fn malformed_event_names_are_400() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for name in [
        "",
        "Typing",
        "1typing",
        "_typing",
        "typ ing",
        "typ\ning",
        "typing:x",
        &"a".repeat(33),
    ] {
        let res = alice.custom("r", name, json!(1)).await;
        assert_error(res, 400, "invalid_event").await;
    }
    for name in ["a", "t.y_p-9", &"a".repeat(32)] {
        let res = alice.custom("r", name, json!(1)).await;
        assert_eq!(res.status(), 202, "valid custom name {name:?}");
    }
}

#[tokio::test]
async fn custom_event_data_over_2_kib_is_413_data_too_large() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    // A JSON string of n characters is n + 2 bytes of JSON.
    let res = alice.custom("r", "blob", json!("x".repeat(2046))).await;
    assert_eq!(res.status(), 202, "exactly 2048 bytes of JSON is allowed");
    let res = alice.custom("r", "blob", json!("x".repeat(2047))).await;
    assert_error(res, 413, "data_too_large").await;
}

#[tokio::test]
async fn a_custom_event_to_an_invalid_room_is_400_invalid_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let res = alice.custom("Bad", "typing", json!(1)).await;
    assert_error(res, 400, "invalid_room").await;
}

#[tokio::test]
async fn a_custom_event_requires_a_session() {
    let app = spawn_app().await;
    let res = app.client().custom("r", "typing", json!(1)).await;
    assert_error(res, 401, "unauthorized").await;
}

// ---- GET /api/rooms ----

#[tokio::test]
async fn the_room_list_counts_connections_and_users() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let a1 = alice.events().await;
    let a2 = alice.events().await;
    let b = bob.events().await;
    alice.subscribe(&a1, &["r", "s"]).await;
    alice.subscribe(&a2, &["r"]).await;
    bob.subscribe(&b, &["r"]).await;
    let res = bob.get("/api/rooms").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(keys(&body), ["rooms"]);
    let mut rooms = body["rooms"].as_array().unwrap().clone();
    rooms.sort_by_key(|r| r["name"].as_str().unwrap().to_owned());
    assert_eq!(
        rooms,
        [
            json!({ "name": "r", "subscribers": 3, "users": 2, "visibility": "public" }),
            json!({ "name": "s", "subscribers": 1, "users": 1, "visibility": "public" }),
        ],
        "rooms with their connections and distinct users"
    );
}

#[tokio::test]
async fn the_room_list_leaves_out_rooms_without_subscribers() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    alice.say("has-history", "but nobody listening").await;
    let _open_but_unsubscribed = alice.events().await;
    assert!(
        alice.rooms().await.is_empty(),
        "rooms without subscribers are listed"
    );
}

#[tokio::test]
async fn the_room_list_requires_a_session() {
    let app = spawn_app().await;
    assert_error(app.client().get("/api/rooms").await, 401, "unauthorized").await;
}

// ---- GET /api/rooms/{room}/presence ----

#[tokio::test]
async fn presence_lists_each_user_with_a_connection_in_the_room_once() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let a1 = alice.events().await;
    let a2 = alice.events().await;
    let b = bob.events().await;
    let _c = carol.events().await; // open, but not in the room
    alice.subscribe(&a1, &["r"]).await;
    alice.subscribe(&a2, &["r"]).await;
    bob.subscribe(&b, &["r"]).await;
    let expected = [alice.user_ref().await, bob.user_ref().await];
    // On a cluster another node's joins reach this node's view over the bus, a few
    // milliseconds after the subscribe answered: ask until they are in (at most 2 s).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let res = carol.get("/api/rooms/r/presence").await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(keys(&body), ["room", "users"], "presence answer: {body}");
        assert_eq!(body["room"], "r");
        let mut users = body["users"].as_array().unwrap().clone();
        users.sort_by_key(|u| u["username"].as_str().unwrap().to_owned());
        if users == expected || tokio::time::Instant::now() >= deadline {
            assert_eq!(users, expected, "users {{id, username}}, each once");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn presence_of_an_empty_room_is_an_empty_list() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let res = alice.get("/api/rooms/nobody-here/presence").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({ "room": "nobody-here", "users": [] }));
}

#[tokio::test]
async fn presence_of_an_invalid_room_is_400_invalid_room() {
    let app = spawn_app().await;
    let res = app.user("alice").await.get("/api/rooms/Bad/presence").await;
    assert_error(res, 400, "invalid_room").await;
}

#[tokio::test]
async fn presence_requires_a_session() {
    let app = spawn_app().await;
    let res = app.client().get("/api/rooms/r/presence").await;
    assert_error(res, 401, "unauthorized").await;
}
