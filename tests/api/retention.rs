//! Retention (`history.retain_days`, `history.retain_per_room`, swept every
//! `history.sweep_secs`): what a sweep deletes is gone from history and replay, with its
//! reactions and change events, and a resume from before it says `complete: false`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{ADMIN_TOKEN, Client, TestApp, eventually, spawn_app_with},
    private::send,
};

/// An app that keeps `per_room` messages per room and `days` days, sweeping every second.
async fn app_keeping(per_room: u32, days: u32) -> TestApp {
    spawn_app_with(|s| {
        s.history.retain_per_room = per_room;
        s.history.retain_days = days;
        s.history.sweep_secs = 1;
        s.history.sweep_batch = 2;
        s.admin.api_token = Some(ADMIN_TOKEN.into());
    })
    .await
}

/// The bodies of a room's history, oldest first.
async fn bodies(c: &Client, room: &str) -> Vec<String> {
    let res = c.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!(res.status(), 200, "history of {room}");
    let page: Value = res.json().await.expect("history JSON");
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Subscribes a new stream of `c` to `rooms` resuming after `after`: the answer's `replay`
/// and the ids of the persisted events replayed.
async fn resume(c: &Client, rooms: &[&str], after: i64) -> (Value, Vec<i64>) {
    let mut sse = c.events().await;
    let ans = c
        .subscribe_with(
            &sse,
            json!({ "rooms": rooms, "last_event_id": after, "events": ["message"] }),
        )
        .await;
    let count = ans["replay"]["count"].as_u64().expect("replay count");
    let mut ids = Vec::new();
    for _ in 0..count {
        let e = sse.next_event().await.expect("a replayed event");
        ids.push(e.id_num());
    }
    (ans["replay"].clone(), ids)
}

/// Adds `emoji` to message `id` of `room`, which must succeed.
async fn react(c: &Client, room: &str, id: i64, emoji: &str) {
    let path = format!("/api/rooms/{room}/messages/{id}/reactions/{emoji}");
    let res = send(c, Method::PUT, &path, Value::Null).await;
    assert_eq!(res.status(), 200, "reacting to {id}");
}

#[tokio::test]
async fn a_room_keeps_its_newest_messages_past_the_cap_and_others_keep_theirs() {
    let app = app_keeping(3, 0).await;
    let alice = app.user("alice").await;
    let first = alice.say_id("busy", "m1").await;
    react(&alice, "busy", first, "👍").await;
    for n in 2..=6 {
        alice.say_id("busy", &format!("m{n}")).await;
    }
    alice.say_id("quiet", "q1").await;
    eventually("the sweep caps busy at 3 messages", || async {
        bodies(&alice, "busy").await == ["m4", "m5", "m6"]
    })
    .await;
    assert_eq!(
        bodies(&alice, "quiet").await,
        ["q1"],
        "under the cap: untouched"
    );
    let (replay, ids) = resume(&alice, &["busy"], first - 1).await;
    assert_eq!(
        replay["complete"], false,
        "a resume from before the swept messages lost events: {replay}"
    );
    assert_eq!(ids.len(), 3, "only the kept messages are replayed: {ids:?}");
    assert!(
        ids.iter().all(|id| *id > first + 1),
        "no swept message and no reaction event about one: {ids:?}"
    );
}

#[tokio::test]
async fn a_resume_after_the_swept_events_or_in_another_room_is_complete() {
    let app = app_keeping(2, 0).await;
    let alice = app.user("alice").await;
    let q = alice.say_id("quiet", "q1").await;
    for n in 1..=4 {
        alice.say_id("busy", &format!("m{n}")).await;
    }
    eventually("the sweep caps busy at 2", || async {
        bodies(&alice, "busy").await.len() == 2
    })
    .await;
    let (replay, ids) = resume(&alice, &["quiet"], q - 1).await;
    assert_eq!(replay["complete"], true, "quiet lost nothing: {replay}");
    assert_eq!(ids, [q], "quiet's message is replayed");
    let kept = alice.say_id("busy", "m5").await;
    let (replay, ids) = resume(&alice, &["busy"], kept - 1).await;
    assert_eq!(
        replay["complete"], true,
        "nothing after it was swept: {replay}"
    );
    assert_eq!(ids, [kept]);
}

#[tokio::test]
async fn events_older_than_retain_days_go_broadcasts_and_deletions_included() {
    let app = app_keeping(0, 1).await;
    let alice = app.user("alice").await;
    let old = alice.say_id("r", "old").await;
    let doomed = alice.say_id("r", "doomed").await;
    let res = send(
        &alice,
        Method::DELETE,
        &format!("/api/rooms/r/messages/{doomed}"),
        Value::Null,
    )
    .await;
    assert_eq!(
        res.status(),
        204,
        "deleting a message leaves a message_deleted event"
    );
    app.broadcast("old news").await;
    // Two days ago, as far as the log can tell.
    app.db
        .execute_for_tests("UPDATE messages SET sent_at = '2000-01-01T00:00:00.000Z'")
        .await
        .expect("ageing the log");
    let fresh = alice.say_id("r", "fresh").await;
    // The sweep goes two rows a batch: wait for its last batch (the broadcast and the
    // deletion event go after the messages), not only for the history to look swept.
    eventually("the sweep deletes what is older than a day", || async {
        bodies(&alice, "r").await == ["fresh"] && app.stats().await["messages_stored"] == 1
    })
    .await;
    let (replay, ids) = resume(&alice, &["r"], old - 1).await;
    assert_eq!(replay["complete"], false, "{replay}");
    assert_eq!(
        ids,
        [fresh],
        "no old message, message_deleted event or broadcast is replayed"
    );
    assert_eq!(
        app.stats().await["messages_stored"],
        1,
        "only the fresh message is stored"
    );
}

#[tokio::test]
async fn with_no_retention_nothing_is_swept() {
    let app = app_keeping(0, 0).await;
    let alice = app.user("alice").await;
    let first = alice.say_id("r", "one").await;
    alice.say_id("r", "two").await;
    app.db
        .execute_for_tests("UPDATE messages SET sent_at = '2000-01-01T00:00:00.000Z'")
        .await
        .expect("ageing the log");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(bodies(&alice, "r").await, ["one", "two"]);
    let (replay, _) = resume(&alice, &["r"], first - 1).await;
    assert_eq!(replay["complete"], true, "{replay}");
}
