//! Nothing lost: history, Last-Event-ID replay, one ordered id sequence, durability.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    helpers::{Client, TestApp, assert_error, spawn_app, spawn_app_with, spawn_app_with_admin},
    process::Server,
    sse::Sse,
};

/// Reads message/broadcast events until one with id `last` arrives; returns their ids.
async fn ids_until(sse: &mut Sse, last: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    while ids.last() != Some(&last) {
        let e = sse
            .next_event()
            .await
            .unwrap_or_else(|| panic!("stream ended or stalled before id {last}; got {ids:?}"));
        if e.event == "message" || e.event == "broadcast" {
            ids.push(e.id_num());
        }
    }
    ids
}

/// Every stored id above `after` in `rooms`, ascending, read through the history API.
async fn stored_ids(c: &Client, rooms: &[&str], after: i64) -> Vec<i64> {
    let mut all = BTreeSet::new();
    for room in rooms {
        let mut from = after;
        loop {
            let page: Value = c
                .get(&format!(
                    "/api/rooms/{room}/messages?after={from}&limit=200"
                ))
                .await
                .json()
                .await
                .unwrap();
            let ids: Vec<i64> = page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_i64().unwrap())
                .collect();
            let Some(&last) = ids.last() else { break };
            all.extend(ids);
            from = last;
        }
    }
    all.into_iter().collect()
}

/// Sends an admin broadcast; its id.
async fn broadcast(app: &TestApp, body: &str) -> i64 {
    app.broadcast(body).await["id"]
        .as_i64()
        .expect("a numeric broadcast id")
}

#[tokio::test]
async fn resume_after_a_dropped_stream_replays_exactly_what_was_missed() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut sse = alice.events().await;
    alice.subscribe(&sse, &["r"]).await;
    let seen = bob.say("r", "before").await["id"].as_i64().unwrap();
    assert_eq!(sse.expect("message").await.id_num(), seen);
    drop(sse);

    let m1 = bob.say("r", "missed 1").await["id"].as_i64().unwrap();
    let m2 = bob.say("r", "missed 2").await["id"].as_i64().unwrap();
    let mut sse = alice.events().await;
    let ans = alice
        .subscribe_with(&sse, json!({ "rooms": ["r"], "last_event_id": seen }))
        .await;
    assert_eq!(ans["replay"], json!({ "count": 2, "complete": true }));
    assert_eq!(ids_until(&mut sse, m2).await, vec![m1, m2]);
    let live = bob.say("r", "live").await["id"].as_i64().unwrap();
    assert_eq!(
        ids_until(&mut sse, live).await,
        vec![live],
        "no duplicate after the replay"
    );
}

#[tokio::test]
async fn the_last_event_id_header_of_the_stream_drives_the_replay() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let seen = bob.say("r", "seen").await["id"].as_i64().unwrap();
    let m1 = bob.say("r", "missed").await["id"].as_i64().unwrap();
    let mut sse = alice.events_from(Some(seen)).await;
    let ans = alice.subscribe(&sse, &["r"]).await;
    assert_eq!(ans["replay"]["count"], 1);
    let e = sse.expect("message").await;
    assert_eq!(
        (e.id_num(), e.json()["body"].clone()),
        (m1, json!("missed"))
    );
}

#[tokio::test]
async fn missed_broadcasts_replay_in_order_between_room_messages() {
    let app = spawn_app_with_admin().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let start = bob.say("r", "start").await["id"].as_i64().unwrap();
    let a = bob.say("r", "a").await["id"].as_i64().unwrap();
    let b = broadcast(&app, "maintenance at noon").await;
    let c = bob.say("other", "not subscribed").await["id"]
        .as_i64()
        .unwrap();
    let d = bob.say("r", "d").await["id"].as_i64().unwrap();
    assert!(
        start < a && a < b && b < c && c < d,
        "one ascending sequence"
    );

    let mut sse = alice.events().await;
    alice
        .subscribe_with(&sse, json!({ "rooms": ["r"], "last_event_id": start }))
        .await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let e = sse.next_event().await.expect("replayed events");
        if e.event == "message" || e.event == "broadcast" {
            got.push((e.event.clone(), e.id_num()));
        }
    }
    assert_eq!(
        got,
        vec![
            ("message".to_owned(), a),
            ("broadcast".to_owned(), b),
            ("message".to_owned(), d)
        ]
    );
}

#[tokio::test]
async fn history_gives_the_last_n_messages_of_each_room() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut r1 = Vec::new();
    let mut r2 = Vec::new();
    for i in 0..5 {
        r1.push(
            bob.say("r1", &format!("one {i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
        if i < 3 {
            r2.push(
                bob.say("r2", &format!("two {i}")).await["id"]
                    .as_i64()
                    .unwrap(),
            );
        }
    }
    let mut sse = alice.events().await;
    let ans = alice
        .subscribe_with(&sse, json!({ "rooms": ["r1", "r2"], "history": 2 }))
        .await;
    assert_eq!(ans["replay"], json!({ "count": 4, "complete": true }));
    let mut expected = vec![r1[3], r1[4], r2[1], r2[2]];
    expected.sort();
    assert_eq!(
        ids_until(&mut sse, *expected.last().unwrap()).await,
        expected
    );
}

#[tokio::test]
async fn last_event_id_wins_over_history() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let first = bob.say("r", "1").await["id"].as_i64().unwrap();
    let second = bob.say("r", "2").await["id"].as_i64().unwrap();
    let mut sse = alice.events().await;
    let ans = alice
        .subscribe_with(
            &sse,
            json!({ "rooms": ["r"], "history": 50, "last_event_id": first }),
        )
        .await;
    assert_eq!(ans["replay"]["count"], 1);
    assert_eq!(ids_until(&mut sse, second).await, vec![second]);
}

#[tokio::test]
async fn a_replay_over_the_limit_keeps_the_newest_and_says_incomplete() {
    let app = spawn_app_with(|s| s.history.replay_limit = 3).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(bob.say("r", &format!("m{i}")).await["id"].as_i64().unwrap());
    }
    let mut sse = alice.events().await;
    let ans = alice
        .subscribe_with(&sse, json!({ "rooms": ["r"], "last_event_id": ids[0] }))
        .await;
    assert_eq!(ans["replay"], json!({ "count": 3, "complete": false }));
    assert_eq!(ids_until(&mut sse, ids[5]).await, ids[3..].to_vec());
}

/// Resumes `alice` in room `r` after `missed` messages posted by another user with
/// `history.replay_limit = limit`; the subscribe answer's `replay`, the ids replayed and
/// the ids posted after the resume point.
async fn resume_after(limit: u32, missed: usize) -> (Value, Vec<i64>, Vec<i64>) {
    let app = spawn_app_with(|s| s.history.replay_limit = limit).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let seen = bob.say_id("r", "seen").await;
    let mut posted = Vec::new();
    for i in 0..missed {
        posted.push(bob.say_id("r", &format!("missed {i}")).await);
    }
    let mut sse = alice.events_from(Some(seen)).await;
    let answer = alice.subscribe(&sse, &["r"]).await;
    let last = *posted.last().expect("something missed");
    let replayed = ids_until(&mut sse, last).await;
    (answer["replay"].clone(), replayed, posted)
}

#[tokio::test]
async fn a_replay_of_exactly_the_limit_is_complete() {
    let (replay, replayed, posted) = resume_after(3, 3).await;
    assert_eq!(
        replay,
        json!({ "count": 3, "complete": true }),
        "3 missed with replay_limit 3"
    );
    assert_eq!(replayed, posted, "every missed message replayed");
}

#[tokio::test]
async fn a_replay_of_one_over_the_limit_is_incomplete_with_the_newest_limit_events() {
    let (replay, replayed, posted) = resume_after(3, 4).await;
    assert_eq!(
        replay,
        json!({ "count": 3, "complete": false }),
        "4 missed with replay_limit 3"
    );
    assert_eq!(replayed, posted[1..], "the newest 3 of the 4 missed");
}

#[tokio::test]
async fn history_out_of_range_is_400() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    let res = alice
        .try_subscribe(&sse, json!({ "rooms": ["r"], "history": 201 }))
        .await;
    assert_error(res, 400, "invalid_history").await;
}

/// Posters write into several rooms while a reader resumes from the middle: what the reader
/// gets (replay, then live) is exactly the stored ids above its resume point, ascending,
/// with no gap and no duplicate. Many rounds, each with the race at a different moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_and_live_join_without_gap_or_duplicate_under_concurrent_posts() {
    let app = spawn_app().await;
    let rooms = ["a", "b", "c"];
    let posters: Vec<Client> = futures_util::future::join_all((0..4).map(|i| {
        let app = &app;
        async move { app.user(&format!("poster{i}")).await }
    }))
    .await;
    let reader = app.user("reader").await;
    let mut resume_from = reader.say("a", "seed").await["id"].as_i64().unwrap();

    for round in 0..12 {
        let posted = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = posters
            .iter()
            .enumerate()
            .map(|(p, c)| {
                let c = c.clone();
                let posted = posted.clone();
                tokio::spawn(async move {
                    for i in 0..15 {
                        // Room `d` is posted to but never subscribed: it must not show up.
                        let room = ["a", "b", "c", "d"][(p + i) % 4];
                        c.say(room, &format!("r{round} p{p} m{i}")).await;
                        posted.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        // Join at a different point of the burst each round.
        while posted.load(Ordering::Relaxed) < round * 4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut sse = reader.events().await;
        reader
            .subscribe_with(
                &sse,
                json!({ "rooms": rooms, "events": ["message"], "last_event_id": resume_from }),
            )
            .await;
        for t in tasks {
            t.await.unwrap();
        }
        let expected = stored_ids(&reader, &rooms, resume_from).await;
        let got = ids_until(&mut sse, *expected.last().unwrap()).await;
        assert_eq!(got, expected, "round {round}: replay + live != stored ids");
        resume_from = expected[expected.len() / 2];
    }
}

/// Acknowledged means on disk: `kill -9` the real binary while posters are busy, restart it
/// on the same database and find every message that got a 201.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_message_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let c = server.client();
    assert_eq!(c.register("poster", "password123").await.status(), 201);
    let acked = Arc::new(parking_lot::Mutex::new(Vec::<(i64, String)>::new()));
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let c = c.clone();
            let acked = acked.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let body = format!("t{t} m{i}");
                    let res = c
                        .http
                        .post(format!("{}/api/rooms/crash/messages", c.base))
                        .json(&json!({ "body": body }))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 201 => {
                            let v: Value = match r.json().await {
                                Ok(v) => v,
                                Err(_) => return,
                            };
                            acked
                                .lock()
                                .push((v["message"]["id"].as_i64().unwrap(), body));
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    while acked.lock().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill_9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().clone();

    let server = Server::start(dir.path(), &[]);
    let c = server.client();
    assert_eq!(c.login("poster", "password123").await.status(), 200);
    let stored: BTreeSet<i64> = stored_ids(&c, &["crash"], 0).await.into_iter().collect();
    let lost: Vec<&(i64, String)> = acked
        .iter()
        .filter(|(id, _)| !stored.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost: {lost:?}",
        lost.len(),
        acked.len()
    );
}

/// A stream reopened with `Last-Event-ID` gets what it missed — broadcasts included — and
/// what arrives before its first subscribe, in one ascending sequence, nothing twice.
#[tokio::test]
async fn a_resumed_stream_gets_missed_and_early_broadcasts_in_id_order() {
    let app = spawn_app_with_admin().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let seen = alice.say("r", "seen").await["id"].as_i64().unwrap();
    let b1 = broadcast(&app, "while away").await;
    let m = alice.say("r", "missed").await["id"].as_i64().unwrap();
    let mut sse = bob.events_from(Some(seen)).await;
    let b2 = broadcast(&app, "before the subscribe").await;
    let ans = bob.subscribe(&sse, &["r"]).await;
    // b1 and m are replayed; b2 was live, held back and merged in its place.
    assert_eq!(ans["replay"], json!({ "count": 2, "complete": true }));
    let live = alice.say("r", "live").await["id"].as_i64().unwrap();
    assert_eq!(ids_until(&mut sse, live).await, vec![b1, m, b2, live]);
}

#[tokio::test]
async fn a_replay_leaves_out_broadcasts_already_sent_live_and_counts_what_it_sends() {
    let app = spawn_app_with_admin().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let from = alice.say("r", "resume point").await["id"].as_i64().unwrap();
    let m = alice.say("r", "missed").await["id"].as_i64().unwrap();
    let mut sse = bob.events().await;
    let b = broadcast(&app, "seen live").await;
    assert_eq!(sse.expect("broadcast").await.id_num(), b);
    let ans = bob
        .subscribe_with(&sse, json!({ "rooms": ["r"], "last_event_id": from }))
        .await;
    assert_eq!(
        ans["replay"]["count"], 1,
        "only the room message is replayed"
    );
    assert_eq!(ids_until(&mut sse, m).await, vec![m]);
    let live = alice.say("r", "live").await["id"].as_i64().unwrap();
    assert_eq!(
        ids_until(&mut sse, live).await,
        vec![live],
        "the broadcast came twice"
    );
}

#[tokio::test]
async fn a_replay_respects_the_event_filter() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    alice.say("r", "old").await;
    let mut sse = bob.events().await;
    let ans = bob
        .subscribe_with(
            &sse,
            json!({ "rooms": ["r"], "events": ["typing"], "history": 5 }),
        )
        .await;
    assert_eq!(
        ans["replay"]["count"], 0,
        "messages replayed to a typing-only subscriber"
    );
    alice.send_custom("r", "typing", json!({})).await;
    let e = sse.next_event().await.expect("the typing event");
    assert_eq!(e.event, "typing", "got {e:?} before the typing event");
}

#[tokio::test]
async fn a_second_resume_on_one_stream_does_not_repeat_broadcasts() {
    let app = spawn_app_with_admin().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let m1 = alice.say("ra", "one").await["id"].as_i64().unwrap();
    let m2 = alice.say("rb", "two").await["id"].as_i64().unwrap();
    let b = broadcast(&app, "once").await;
    let m4 = alice.say("ra", "four").await["id"].as_i64().unwrap();
    let mut sse = bob.events().await;
    let first = bob
        .subscribe_with(&sse, json!({ "rooms": ["ra"], "last_event_id": 0 }))
        .await;
    assert_eq!(first["replay"]["count"], 3);
    assert_eq!(ids_until(&mut sse, m4).await, vec![m1, b, m4]);
    let second = bob
        .subscribe_with(&sse, json!({ "rooms": ["rb"], "last_event_id": 0 }))
        .await;
    assert_eq!(
        second["replay"]["count"], 1,
        "the broadcast was replayed again"
    );
    assert_eq!(ids_until(&mut sse, m2).await, vec![m2]);
    let live = alice.say("rb", "live").await["id"].as_i64().unwrap();
    assert_eq!(ids_until(&mut sse, live).await, vec![live]);
}
