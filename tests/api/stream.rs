//! The stream (`GET /api/events`) and who gets which event on it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    helpers::{
        ADMIN_TOKEN, Client, TestApp, WAIT, assert_error, eventually, single_node_only, spawn_app,
        spawn_app_with, spawn_app_with_admin,
    },
    sse::{Event, StalledStream, complete_frames},
};

// ---- GET /api/events ----

#[tokio::test]
async fn events_without_a_session_is_401() {
    let app = spawn_app().await;
    let res = app.client().get("/api/events").await;
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn events_with_a_logged_out_cookie_is_401() {
    let app = spawn_app().await;
    let c = app.user("alice").await;
    let cookie = c.cookie();
    assert_eq!(c.post("/api/logout", json!(null)).await.status(), 204);
    let res = c.get_with_cookie("/api/events", &cookie).await;
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn events_answers_200_event_stream_without_caching_or_buffering() {
    let app = spawn_app().await;
    let c = app.user("alice").await;
    let res = c
        .http
        .get(format!("{}/api/events", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "GET /api/events with a session");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no {name} header"))
    };
    assert!(
        header("content-type").starts_with("text/event-stream"),
        "content type was {:?}",
        header("content-type")
    );
    assert_eq!(header("cache-control"), "no-cache", "Cache-Control");
    assert_eq!(header("x-accel-buffering"), "no", "X-Accel-Buffering");
}

#[tokio::test]
async fn the_first_frame_is_retry_and_connected_with_a_uuid_v4() {
    let app = spawn_app_with(|s| s.sse.heartbeat_secs = 7).await;
    let c = app.user("alice").await;
    let sse = c.events().await;
    let id = uuid::Uuid::parse_str(&sse.connection_id).expect("connection_id is a uuid");
    assert_eq!(id.get_version_num(), 4, "connection_id is a uuid v4");
    let expected = format!(
        "retry: 3000\nevent: connected\ndata: {{\"connection_id\":\"{}\",\"heartbeat_secs\":7}}\n\n",
        sse.connection_id
    );
    assert!(
        sse.raw.starts_with(&expected),
        "first frame was {:?}, expected {expected:?}",
        sse.raw
    );
}

#[tokio::test]
async fn each_stream_gets_its_own_connection_id() {
    let app = spawn_app().await;
    let c = app.user("alice").await;
    let a = c.events().await;
    let b = c.events().await;
    let d = app.user("bob").await.events().await;
    assert_ne!(a.connection_id, b.connection_id, "two tabs share an id");
    assert_ne!(a.connection_id, d.connection_id, "two users share an id");
}

#[tokio::test]
async fn connected_goes_only_to_its_own_connection() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut first = alice.listen(&["r"], Some(&["message"])).await;
    let _second = alice.events().await;
    let _other = app.user("bob").await.events().await;
    alice.say("r", "after the others connected").await;
    let e = first.expect_next("message").await;
    assert_eq!(
        e.json()["body"],
        "after the others connected",
        "another stream's `connected` leaked onto this one"
    );
}

#[tokio::test]
async fn a_ping_comes_after_heartbeat_secs_of_silence() {
    let app = spawn_app_with(|s| s.sse.heartbeat_secs = 1).await;
    let mut sse = app.user("alice").await.events().await;
    let start = tokio::time::Instant::now();
    let frame = sse
        .next_within(Duration::from_secs(4))
        .await
        .expect("a frame within 4 s with heartbeat_secs = 1");
    assert_eq!(
        frame.comment.as_deref(),
        Some("ping"),
        "a `: ping` comment: {frame:?}"
    );
    assert_eq!(frame.raw, ": ping\n\n", "the ping frame on the wire");
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "ping came before a second of silence: {:?}",
        start.elapsed()
    );
    // And it keeps coming while nothing else is sent.
    let again = sse.next_within(Duration::from_secs(4)).await;
    assert_eq!(
        again.and_then(|f| f.comment),
        Some("ping".to_owned()),
        "a second ping after another silence"
    );
}

#[tokio::test]
async fn no_ping_is_written_while_events_keep_flowing() {
    let app = spawn_app_with(|s| s.sse.heartbeat_secs = 2).await;
    let alice = app.user("alice").await;
    let mut sse = alice.listen(&["r"], Some(&["tick"])).await;
    // An event every 400 ms for 5 s: never 2 s of silence.
    for i in 0..12 {
        alice.send_custom("r", "tick", json!(i)).await;
        let frame = sse.next().await.expect("the tick");
        assert_eq!(
            frame.comment, None,
            "a ping while events were flowing (before tick {i})"
        );
        assert_eq!(frame.json()["data"], i, "tick {i}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

// ---- `message` ----

#[tokio::test]
async fn a_message_reaches_every_subscriber_of_the_room_with_its_id() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut a = alice.listen(&["r"], Some(&["message"])).await;
    let mut b = bob.listen(&["r"], Some(&["message"])).await;
    let sent = alice.say("r", "hello").await;
    for (who, sse) in [("alice", &mut a), ("bob", &mut b)] {
        let e = sse.expect_next("message").await;
        assert_eq!(e.json(), sent, "{who} got the stored Message");
        assert_eq!(
            e.id_num(),
            sent["id"].as_i64().unwrap(),
            "{who}: `id:` is the message id"
        );
    }
}

#[tokio::test]
async fn with_a_write_delay_every_message_still_arrives_once_in_order() {
    let app = spawn_app_with(|s| s.sse.write_delay_ms = 50).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut b = bob.listen(&["r"], Some(&["message"])).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        sent.push(
            alice.say("r", &format!("m{i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut got = Vec::new();
    for _ in &sent {
        got.push(b.expect_next("message").await.id_num());
    }
    assert_eq!(
        got, sent,
        "collected frames were lost, repeated or reordered"
    );
}

#[tokio::test]
async fn a_message_skips_subscribers_of_other_rooms() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut a = alice.listen(&["here"], Some(&["message"])).await;
    alice.say("elsewhere", "not for you").await;
    alice.say("here", "for you").await;
    let e = a.expect_next("message").await;
    assert_eq!(
        e.json()["body"],
        "for you",
        "a message of another room arrived"
    );
}

#[tokio::test]
async fn a_message_skips_connections_that_filtered_it_out() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut typing_only = alice.listen(&["r"], Some(&["typing"])).await;
    alice.say("r", "filtered out").await;
    alice.send_custom("r", "typing", json!(1)).await;
    let e = typing_only.next_event().await.expect("the typing event");
    assert_eq!(
        e.event, "typing",
        "a connection subscribed to `typing` only got {e:?}"
    );
}

#[tokio::test]
async fn a_message_skips_streams_of_users_not_in_the_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    // Bob's stream is open but holds another room.
    let mut b = bob.listen(&["other"], Some(&["message"])).await;
    alice.say("r", "only for r").await;
    bob.say("other", "sentinel").await;
    let e = b.expect_next("message").await;
    assert_eq!(
        e.json()["body"],
        "sentinel",
        "a stream not subscribed to the room got its message"
    );
}

// ---- `presence` ----

#[tokio::test]
async fn a_join_goes_to_the_room_with_the_user() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let mut b = bob.listen(&["r"], None).await;
    let alice = app.user("alice").await;
    let mut a = alice.events().await;
    alice.subscribe(&a, &["r"]).await;
    let expected = json!({ "room": "r", "user": alice.user_ref().await, "action": "join" });
    let e = b.expect_next("presence").await;
    assert_eq!(e.json(), expected, "bob sees alice join");
    assert_eq!(e.id, None, "presence is ephemeral: no `id:`");
    let own = a.expect_next("presence").await;
    assert_eq!(own.json(), expected, "alice sees her own join");
}

#[tokio::test]
async fn presence_skips_other_rooms_and_filtered_connections() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let mut other_room = bob.listen(&["other"], None).await;
    let mut no_presence = bob.listen(&["r"], Some(&["message"])).await;
    let alice = app.user("alice").await;
    let a = alice.events().await;
    alice.subscribe(&a, &["r"]).await;
    // Sentinels: a message in each room.
    alice.say("other", "sentinel other").await;
    alice.say("r", "sentinel r").await;
    let e = other_room.next_event().await.expect("sentinel");
    assert_eq!(
        (e.event.as_str(), e.json()["body"].clone()),
        ("message", json!("sentinel other")),
        "a join in another room arrived"
    );
    let e = no_presence.next_event().await.expect("sentinel");
    assert_eq!(
        (e.event.as_str(), e.json()["body"].clone()),
        ("message", json!("sentinel r")),
        "a connection without `presence` in its events got a join"
    );
}

#[tokio::test]
async fn presence_join_is_sent_once_per_user_across_two_tabs() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let mut b = bob.listen(&["r"], Some(&["presence"])).await;
    let alice = app.user("alice").await;
    let tab1 = alice.events().await;
    let tab2 = alice.events().await;
    alice.subscribe(&tab1, &["r"]).await;
    let e = b.expect_next("presence").await;
    assert_eq!(e.json()["user"]["username"], "alice");
    assert_eq!(e.json()["action"], "join");
    alice.subscribe(&tab2, &["r"]).await;
    // Sentinel: carol joins; a second alice join would come first.
    let carol = app.user("carol").await;
    let c = carol.events().await;
    carol.subscribe(&c, &["r"]).await;
    let e = b.expect_next("presence").await;
    assert_eq!(
        e.json()["user"]["username"],
        "carol",
        "alice's second tab sent another join: {e:?}"
    );
    assert_eq!(
        bob.presence_names("r").await,
        ["alice", "bob", "carol"],
        "presence lists alice once"
    );
}

#[tokio::test]
async fn presence_leave_comes_only_when_the_users_last_connection_goes() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let mut b = bob.listen(&["r"], Some(&["presence"])).await;
    let alice = app.user("alice").await;
    let tab1 = alice.events().await;
    let tab2 = alice.events().await;
    alice.subscribe(&tab1, &["r"]).await;
    alice.subscribe(&tab2, &["r"]).await;
    assert_eq!(b.expect_next("presence").await.json()["action"], "join");

    // One tab unsubscribes, the other closes: a leave only for the second.
    let left = alice.unsubscribe(&tab1, &["r"]).await;
    assert_eq!(left["rooms"], json!([]), "tab 1 holds no room now");
    let carol = app.user("carol").await;
    let c = carol.events().await;
    carol.subscribe(&c, &["r"]).await;
    let e = b.expect_next("presence").await;
    assert_eq!(
        (
            e.json()["user"]["username"].clone(),
            e.json()["action"].clone()
        ),
        (json!("carol"), json!("join")),
        "alice left while her second tab was still in the room"
    );
    assert!(
        bob.presence_names("r").await.contains(&"alice".to_owned()),
        "alice is still present through tab 2"
    );

    drop(tab2);
    let e = b.expect_next("presence").await;
    let expected = json!({ "room": "r", "user": alice.user_ref().await, "action": "leave" });
    assert_eq!(e.json(), expected, "leave when alice's last tab goes");
}

#[tokio::test]
async fn a_stream_closed_by_the_client_is_noticed_promptly() {
    // A heartbeat far beyond the wait proves the close is not noticed by a ping write.
    let app = spawn_app_with(|s| s.sse.heartbeat_secs = 60).await;
    let bob = app.user("bob").await;
    let mut b = bob.listen(&["r"], Some(&["presence"])).await;
    let alice = app.user("alice").await;
    let a = alice.events().await;
    alice.subscribe(&a, &["r", "solo"]).await;
    assert_eq!(b.expect_next("presence").await.json()["action"], "join");

    drop(a);
    let e = b.expect_next("presence").await;
    assert_eq!(
        (
            e.json()["user"]["username"].clone(),
            e.json()["action"].clone()
        ),
        (json!("alice"), json!("leave")),
        "no prompt leave after alice closed her stream"
    );
    assert_eq!(
        bob.presence_names("r").await,
        ["bob"],
        "alice still present"
    );
    eventually("the room only alice held is removed", || async {
        bob.room_info("solo").await.is_none()
    })
    .await;
}

#[tokio::test]
async fn a_half_closed_stream_is_noticed_at_once() {
    if single_node_only("the balancer between holds both directions of the connection") {
        return;
    }
    // A heartbeat far beyond the wait proves the close is not noticed by a ping write.
    let app = spawn_app_with(|s| s.sse.heartbeat_secs = 60).await;
    let alice = app.user("alice").await;
    let mut half = StalledStream::open(&app.base, &alice.cookie()).await;
    alice.subscribe(&half, &["r"]).await;
    assert_eq!(alice.presence_names("r").await, ["alice"]);
    half.half_close().await;
    let closed = std::time::Instant::now();
    eventually("the half-closed stream leaves its room", || async {
        alice.presence_names("r").await.is_empty()
    })
    .await;
    assert!(
        closed.elapsed() < Duration::from_secs(2),
        "noticed {:?} after SHUT_WR",
        closed.elapsed()
    );
}

#[tokio::test]
async fn a_room_whose_last_stream_closes_is_removed_from_the_list() {
    let app = spawn_app_with(|s| s.sse.heartbeat_secs = 60).await;
    let alice = app.user("alice").await;
    let a = alice.events().await;
    alice.subscribe(&a, &["lonely"]).await;
    let info = alice.room_info("lonely").await.expect("room listed");
    assert_eq!(info["subscribers"], 1);
    drop(a);
    eventually("the emptied room leaves GET /api/rooms", || async {
        alice.room_info("lonely").await.is_none()
    })
    .await;
}

// ---- custom events ----

#[tokio::test]
async fn a_custom_event_reaches_subscribers_of_that_name_without_an_id() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut all = bob.listen(&["r"], None).await;
    let mut named = bob.listen(&["r"], Some(&["typing"])).await;
    alice
        .send_custom("r", "typing", json!({ "typing": true, "n": [1, 2] }))
        .await;
    let expected = json!({
        "room": "r",
        "user": alice.user_ref().await,
        "data": { "typing": true, "n": [1, 2] },
    });
    for (who, sse) in [("all events", &mut all), ("typing", &mut named)] {
        let e = sse.expect_next("typing").await;
        assert_eq!(e.json(), expected, "{who}: custom event data");
        assert_eq!(e.id, None, "{who}: a custom event has no `id:`");
    }
}

#[tokio::test]
async fn a_custom_event_skips_other_names_and_other_rooms() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut typing = alice.listen(&["r"], Some(&["typing"])).await;
    let mut messages = alice.listen(&["r"], Some(&["message"])).await;
    let mut elsewhere = alice.listen(&["other"], Some(&["typing", "message"])).await;
    alice.send_custom("r", "cursor", json!(1)).await;
    alice.send_custom("r", "typing", json!("sentinel")).await;
    let e = typing.next_event().await.expect("sentinel");
    assert_eq!(
        (e.event.as_str(), e.json()["data"].clone()),
        ("typing", json!("sentinel")),
        "a `typing`-only connection got another custom name"
    );
    alice.say("r", "sentinel").await;
    let e = messages.next_event().await.expect("sentinel");
    assert_eq!(
        e.event, "message",
        "a `message`-only connection got a custom event: {e:?}"
    );
    alice.say("other", "sentinel").await;
    let e = elsewhere.next_event().await.expect("sentinel");
    assert_eq!(
        e.event, "message",
        "a custom event of another room arrived: {e:?}"
    );
}

// ---- `broadcast` ----

#[tokio::test]
async fn a_broadcast_reaches_every_open_connection_whatever_it_subscribed() {
    let app = spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut no_rooms = alice.events().await;
    let mut typing_only = alice.listen(&["r"], Some(&["typing"])).await;
    let mut nothing = bob.listen(&["r"], Some(&[])).await;
    let mut all = bob.listen(&["other"], None).await;
    let sent = app.broadcast("server going down").await;
    for (who, sse) in [
        ("no rooms", &mut no_rooms),
        ("typing only", &mut typing_only),
        ("empty events", &mut nothing),
        ("all events", &mut all),
    ] {
        let e = sse.expect_next("broadcast").await;
        assert_eq!(
            e.json(),
            sent,
            "{who}: broadcast data is the stored broadcast"
        );
        let obj = e.json();
        let mut keys: Vec<&String> = obj.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["body", "id", "sent_at"], "{who}: broadcast shape");
        assert_eq!(
            e.id_num(),
            sent["id"].as_i64().unwrap(),
            "{who}: `id:` is the broadcast id"
        );
    }
}

// ---- framing ----

/// Splits a frame into its lines, checking it carries no `\r` at all.
fn lines(raw: &str) -> Vec<&str> {
    assert!(!raw.contains('\r'), "a \\r on the wire: {raw:?}");
    raw.strip_suffix("\n\n")
        .unwrap_or_else(|| panic!("frame does not end in a blank line: {raw:?}"))
        .split('\n')
        .collect()
}

#[tokio::test]
async fn injection_looking_bodies_arrive_verbatim_on_one_data_line() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut a = alice.listen(&["r"], Some(&["message"])).await;
    let bodies = [
        "line one\nevent: evil\nid: 9\ndata: y",
        "crlf\r\nevent: x\r\n\r\ndata: z",
        "cr\revent: x\rid: 9\r\rafter",
        "\n\nevent: x\n\n",
        "id: 9",
        "data: {\"body\":\"forged\"}",
        ": comment\n\nretry: 1",
        "unicode é 漢字 🎉 \u{2028} \u{2029} \u{85} \u{1b}[31m tab\there",
        "  padded both ends \n\t",
    ];
    for body in bodies {
        let sent = alice.say("r", body).await;
        assert_eq!(
            sent["body"],
            body.trim(),
            "the stored body is the trimmed body"
        );
        let e = a.expect_next("message").await;
        let l = lines(&e.raw);
        assert_eq!(l.len(), 3, "exactly id, event and data lines: {:?}", e.raw);
        assert_eq!(l[0], format!("id: {}", sent["id"]), "id line");
        assert_eq!(l[1], "event: message", "event line");
        assert!(l[2].starts_with("data: "), "data line: {:?}", l[2]);
        let data: Value = serde_json::from_str(&l[2]["data: ".len()..]).expect("data is JSON");
        assert_eq!(data["body"], body.trim(), "body arrives verbatim");
        assert_eq!(data, sent, "the event carries the stored Message");
    }
}

#[tokio::test]
async fn injection_looking_custom_data_arrives_verbatim_on_one_data_line() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut a = alice.listen(&["r"], Some(&["note"])).await;
    let data = json!({ "text": "x\n\nevent: message\nid: 99\r\ndata: {}\r\r", "k": ["\n"] });
    alice.send_custom("r", "note", data.clone()).await;
    let e = a.expect_next("note").await;
    let l = lines(&e.raw);
    assert_eq!(l, ["event: note", l[1]], "only event and data lines");
    assert_eq!(e.json()["data"], data, "custom data arrives verbatim");
}

#[tokio::test]
async fn every_subscriber_gets_the_same_bytes_for_an_event() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut a = alice.listen(&["r"], Some(&["message"])).await;
    let mut b = bob.listen(&["r"], Some(&["message"])).await;
    alice.say("r", "same for all").await;
    let ea = a.expect_next("message").await;
    let eb = b.expect_next("message").await;
    assert_eq!(ea.raw, eb.raw, "two subscribers got different frames");
}

// ---- logout ----

#[tokio::test]
async fn logout_closes_that_sessions_streams_only() {
    let app = spawn_app().await;
    let first = app.user("alice").await;
    let second = app.client();
    assert_eq!(second.login("alice", "password123").await.status(), 200);
    let mut s1a = first.events().await;
    let mut s1b = first.events().await;
    let mut s2 = second.listen(&["r"], Some(&["message"])).await;

    let res = first.post("/api/logout", json!(null)).await;
    assert_eq!(res.status(), 204, "logout");
    assert!(
        s1a.ends_within(WAIT).await,
        "a stream of the logged-out session stayed open"
    );
    assert!(
        s1b.ends_within(WAIT).await,
        "the session's second stream stayed open"
    );

    second.say("r", "still here").await;
    let e = s2.expect_next("message").await;
    assert_eq!(
        e.json()["body"],
        "still here",
        "the other login's stream must live on"
    );
}

// ---- slow readers ----

/// Settings for the slow-reader tests: a tiny queue so a stalled reader is cut soon, an
/// unsynced disk so the flood is quick, and the admin token for the stats.
fn small_queues(s: &mut roomcast::config::Settings) {
    s.sse.queue_capacity = 8;
    s.database.sqlite_synchronous = roomcast::config::SqliteSync::Normal;
    s.admin.api_token = Some(ADMIN_TOKEN.into());
}

/// Opens a stalled stream of `slow`, subscribed to `room` for messages only.
async fn stalled_in(app: &TestApp, slow: &Client, room: &str) -> StalledStream {
    let stalled = StalledStream::open(&app.base, &slow.cookie()).await;
    slow.subscribe_with(&stalled, json!({ "rooms": [room], "events": ["message"] }))
        .await;
    stalled
}

/// Posts ~4 KB messages to `room` until `slow_user` is no longer present there (its stalled
/// stream was cut); returns the ids posted, in order. Panics if it never is.
async fn flood_until_cut(poster: &Client, room: &str, slow_user: &str) -> Vec<i64> {
    let filler = "x".repeat(3990);
    let mut posted = Vec::new();
    // 4000 × ~4 KB = 16 MB: far beyond what socket buffers and the queue can hold.
    for i in 0..4000 {
        posted.push(poster.say_id(room, &format!("{i:06} {filler}")).await);
        if i % 25 == 24
            && !poster
                .presence_names(room)
                .await
                .iter()
                .any(|u| u == slow_user)
        {
            return posted;
        }
    }
    panic!(
        "a reader that stopped reading was still subscribed after {} messages",
        posted.len()
    );
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_off_while_others_get_everything() {
    // A cluster node's tailer hands a stream everything it read in one go, and under load
    // that is more than 8 posts: the fast reader's queue must hold such a batch, or it too is
    // (rightly) cut. 128 frames of 4 KB are still far less than the flood.
    let app = spawn_app_with(|s| {
        small_queues(s);
        s.sse.queue_capacity = 128;
    })
    .await;
    let poster = app.user("poster").await;
    let fast = app.user("fast").await;
    let slow = app.user("slow").await;

    let mut fast_sse = fast.listen(&["flood"], None).await;
    let mut stalled = stalled_in(&app, &slow, "flood").await;
    let e = fast_sse.expect_next("presence").await;
    assert_eq!(e.json()["user"]["username"], "slow", "slow joins");

    // The fast reader drains its stream all along, on its own task.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(e) = fast_sse.next_event().await {
            if tx.send(e).is_err() {
                break;
            }
        }
    });

    let mut posted = flood_until_cut(&poster, "flood", "slow").await;
    let cut_after = posted.len();
    // Others keep receiving after the cut.
    for i in 0..20 {
        posted.push(poster.say_id("flood", &format!("after cut {i}")).await);
    }
    let info = poster.room_info("flood").await.expect("flood still listed");
    assert_eq!(
        info["subscribers"], 1,
        "only the fast reader is left: {info}"
    );

    let mut got = Vec::new();
    let mut saw_leave = false;
    while got.len() < posted.len() {
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the fast reader got {} of {} messages (slow cut after {cut_after})",
                    got.len(),
                    posted.len()
                )
            })
            .expect("the fast reader's stream ended");
        match e.event.as_str() {
            "message" => got.push(e.id_num()),
            "presence" => {
                let d = e.json();
                if d["user"]["username"] == "slow" && d["action"] == "leave" {
                    saw_leave = true;
                }
            }
            other => panic!("unexpected `{other}` on the fast reader"),
        }
    }
    assert_eq!(got, posted, "the fast reader got every message, in order");
    // The leave waits `sse.presence_coalesce_ms`: it may come after the last message.
    while !saw_leave {
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("the slow reader's leave reached the room")
            .expect("the fast reader's stream ended");
        let d = e.json();
        saw_leave =
            e.event == "presence" && d["user"]["username"] == "slow" && d["action"] == "leave";
    }
    reader.abort();

    let stats = app.stats().await;
    assert_eq!(
        stats["slow_disconnects"], 1,
        "one slow disconnect counted: {stats}"
    );

    // When the stalled client finally reads, its response ends: the server cut it off.
    stalled.read_to_end(Duration::from_secs(20)).await;
}

/// Cut for being slow, the reader reconnects as a browser would, with the id of the last
/// event it got whole as `Last-Event-ID`. The replay takes its room in the (8-frame) queue,
/// so it holds the newest 7 missed at most and the client pages the rest, as the contract
/// says: between the two streams and the pages it gets every message exactly once, in order.
#[tokio::test]
async fn a_cut_slow_reader_that_resumes_gets_every_id_once_in_order() {
    let app = spawn_app_with(small_queues).await;
    let poster = app.user("poster").await;
    let slow = app.user("slow").await;
    let mut stalled = stalled_in(&app, &slow, "flood").await;
    let mut posted = flood_until_cut(&poster, "flood", "slow").await;
    let stats = app.stats().await;
    assert_eq!(
        stats["slow_disconnects"], 1,
        "the cut was a slow disconnect: {stats}"
    );
    // Posts while the reader is away.
    for i in 0..5 {
        posted.push(poster.say_id("flood", &format!("while away {i}")).await);
    }

    let body = stalled.read_to_end(Duration::from_secs(20)).await;
    let mut got: Vec<i64> = complete_frames(&body)
        .iter()
        .filter(|e| e.event == "message")
        .map(Event::id_num)
        .collect();
    let last_seen = *got
        .last()
        .expect("the stalled reader got some messages whole");
    assert!(
        got.len() < posted.len(),
        "the stalled reader got everything ({}), so it was never behind",
        got.len()
    );

    let mut sse = slow.events_from(Some(last_seen)).await;
    let answer = slow
        .subscribe_with(&sse, json!({ "rooms": ["flood"], "events": ["message"] }))
        .await;
    let missed = posted.len() - got.len();
    assert_eq!(
        answer["replay"],
        json!({ "count": missed.min(7), "complete": missed <= 7 }),
        "the replay after {last_seen}: at most what fits beside its marker in 8 frames"
    );
    let last = *posted.last().expect("posted ids");
    let mut resumed = Vec::new();
    while resumed.last() != Some(&last) {
        let e = sse.next_event().await.unwrap_or_else(|| {
            panic!(
                "the resumed stream stalled after {} of {} ids",
                got.len() + resumed.len(),
                posted.len()
            )
        });
        assert_eq!(e.event, "message", "only messages asked for: {e:?}");
        resumed.push(e.id_num());
    }
    // What the replay left out, paged from the history.
    let first_replayed = resumed[0];
    let mut from = last_seen;
    loop {
        let page: serde_json::Value = slow
            .get(&format!("/api/rooms/flood/messages?after={from}&limit=200"))
            .await
            .json()
            .await
            .expect("a history page");
        let ids: Vec<i64> = page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["id"].as_i64().expect("an id"))
            .take_while(|id| *id < first_replayed)
            .collect();
        let Some(&next) = ids.last() else { break };
        got.extend(ids);
        from = next;
    }
    got.extend(resumed);
    assert_eq!(
        got, posted,
        "stalled stream + history pages + resumed stream != every id once, in order"
    );
}
