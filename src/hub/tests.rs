//! The hub without HTTP: routing, presence, room lifetime, slow consumers and replay order.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;

use super::*;

fn hub() -> Arc<Hub> {
    Arc::new(Hub::new(8, Duration::from_secs(3600)))
}

fn user(name: &str) -> UserRef {
    UserRef {
        id: Uuid::new_v4(),
        username: Arc::from(name),
    }
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

/// Subscribes without asking for a replay; a resuming stream's replay is answered with
/// nothing, as the handler would when the database has nothing newer.
fn join(
    hub: &Hub,
    id: ConnectionId,
    owner: Uuid,
    rooms: &[RoomName],
    filter: Option<EventFilter>,
) -> Subscribed {
    let mut sub = hub.subscribe(id, owner, rooms, filter, false).unwrap();
    if let Some(tx) = sub.replay.take() {
        tx.send(Vec::new()).unwrap();
    }
    sub
}

fn only_messages() -> Option<EventFilter> {
    Some(EventFilter::new([EventName::builtin("message")]))
}

/// Reads whatever the stream has ready now, as text.
async fn drain(stream: &mut ConnectionStream) -> String {
    let mut out = String::new();
    while let Ok(Some(Ok(bytes))) =
        tokio::time::timeout(Duration::from_millis(20), stream.next()).await
    {
        out.push_str(std::str::from_utf8(&bytes).unwrap());
    }
    out
}

#[tokio::test]
async fn messages_reach_only_the_rooms_subscribers() {
    let hub = hub();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut a = hub.connect(alice.clone(), Uuid::new_v4(), None);
    let mut b = hub.connect(bob.clone(), Uuid::new_v4(), None);
    let (a_id, b_id) = (a.connection().id, b.connection().id);
    join(&hub, a_id, alice.id, &[room("x")], None);
    join(&hub, b_id, bob.id, &[room("y")], None);
    drain(&mut a).await;
    drain(&mut b).await;

    hub.publish_message(1, &room("x"), &Bytes::from_static(b"id: 1\ndata: x\n\n"));
    assert_eq!(drain(&mut a).await, "id: 1\ndata: x\n\n");
    assert_eq!(
        drain(&mut b).await,
        "",
        "a room y subscriber got a room x message"
    );
}

#[tokio::test]
async fn a_connection_of_another_user_is_unknown() {
    let hub = hub();
    let s = hub.connect(user("alice"), Uuid::new_v4(), None);
    let err = hub
        .subscribe(s.connection().id, Uuid::new_v4(), &[room("x")], None, false)
        .unwrap_err();
    assert_eq!(err, HubError::UnknownConnection);
}

#[tokio::test]
async fn presence_joins_once_per_user_and_leaves_with_the_last_tab() {
    let hub = hub();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut watcher = hub.connect(bob.clone(), Uuid::new_v4(), None);
    join(&hub, watcher.connection().id, bob.id, &[room("r")], None);
    drain(&mut watcher).await;

    let tab1 = hub.connect(alice.clone(), Uuid::new_v4(), None);
    let tab2 = hub.connect(alice.clone(), Uuid::new_v4(), None);
    join(&hub, tab1.connection().id, alice.id, &[room("r")], None);
    join(&hub, tab2.connection().id, alice.id, &[room("r")], None);
    let seen = drain(&mut watcher).await;
    assert_eq!(seen.matches("\"action\":\"join\"").count(), 1, "{seen}");
    assert_eq!(hub.presence(&room("r")).len(), 2);

    drop(tab1);
    assert_eq!(
        drain(&mut watcher).await,
        "",
        "leave sent while a tab remains"
    );
    drop(tab2);
    let seen = drain(&mut watcher).await;
    assert!(seen.contains("\"action\":\"leave\""), "{seen}");
    assert_eq!(hub.presence(&room("r")).len(), 1);
}

#[tokio::test]
async fn the_last_leave_removes_the_room() {
    let hub = hub();
    let alice = user("alice");
    let s = hub.connect(alice.clone(), Uuid::new_v4(), None);
    let id = s.connection().id;
    join(&hub, id, alice.id, &[room("a"), room("b")], None);
    assert_eq!(hub.rooms().len(), 2);
    let left = hub.unsubscribe(id, alice.id, &[room("a")]).unwrap();
    assert_eq!(left.rooms, vec![room("b")]);
    assert_eq!(hub.rooms().len(), 1);
    drop(s);
    assert!(
        hub.rooms().is_empty(),
        "closing the stream must drop its rooms"
    );
}

#[tokio::test]
async fn filters_pass_only_the_named_events() {
    let hub = hub();
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None);
    let id = s.connection().id;
    let only_typing = EventFilter::new([EventName::parse("typing").unwrap()]);
    join(&hub, id, alice.id, &[room("r")], Some(only_typing));
    drain(&mut s).await;
    hub.publish_message(1, &room("r"), &Bytes::from_static(b"m\n\n"));
    let name = EventName::parse("typing").unwrap();
    hub.publish_custom(&room("r"), &alice, &name, &1);
    let other = EventName::parse("other").unwrap();
    hub.publish_custom(&room("r"), &alice, &other, &2);
    let seen = drain(&mut s).await;
    assert!(seen.starts_with("event: typing\n"), "{seen}");
    assert!(!seen.contains("m\n\n") && !seen.contains("other"), "{seen}");
    hub.publish_broadcast(2, &Bytes::from_static(b"b\n\n"));
    assert_eq!(drain(&mut s).await, "b\n\n", "broadcasts ignore filters");
}

#[tokio::test]
async fn too_many_rooms_is_refused_whole() {
    let hub = hub();
    let alice = user("alice");
    let s = hub.connect(alice.clone(), Uuid::new_v4(), None);
    let rooms: Vec<RoomName> = (0..MAX_ROOMS_PER_CONNECTION)
        .map(|i| room(&format!("r{i}")))
        .collect();
    join(&hub, s.connection().id, alice.id, &rooms, only_messages());
    let err = hub
        .subscribe(
            s.connection().id,
            alice.id,
            &[room("one-more")],
            only_messages(),
            false,
        )
        .unwrap_err();
    assert_eq!(err, HubError::TooManyRooms);
    assert_eq!(hub.rooms().len(), MAX_ROOMS_PER_CONNECTION);
}

#[tokio::test]
async fn a_full_queue_disconnects_only_that_subscriber() {
    let hub = hub();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut slow = hub.connect(alice.clone(), Uuid::new_v4(), None);
    let mut fast = hub.connect(bob.clone(), Uuid::new_v4(), None);
    join(&hub, slow.connection().id, alice.id, &[room("r")], None);
    join(&hub, fast.connection().id, bob.id, &[room("r")], None);
    drain(&mut slow).await;
    for i in 1..=20 {
        hub.publish_message(i, &room("r"), &Bytes::from(format!("{i}\n\n")));
        drain(&mut fast).await;
    }
    assert!(
        slow.connection().is_closed(),
        "the slow reader should be cut"
    );
    assert!(!fast.connection().is_closed());
    assert_eq!(hub.stats().slow_disconnects, 1);
    assert_eq!(hub.stats().connections, 1);
    hub.check_invariants().unwrap();
}

#[tokio::test]
async fn replay_comes_before_live_events_queued_behind_it() {
    let hub = hub();
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None);
    let id = s.connection().id;
    drain(&mut s).await;
    hub.set_watermark(5);
    let sub = hub
        .subscribe(id, alice.id, &[room("r")], only_messages(), true)
        .unwrap();
    assert_eq!(sub.watermark, 5);
    // Live events published while the replay is being read must wait behind it.
    hub.publish_message(6, &room("r"), &Bytes::from_static(b"6\n\n"));
    assert_eq!(drain(&mut s).await, "", "live event overtook the replay");
    let replay = (4..=5)
        .map(|i| ReplayFrame {
            id: i,
            is_broadcast: false,
            bytes: Bytes::from(format!("{i}\n\n")),
        })
        .collect();
    sub.replay.unwrap().send(replay).unwrap();
    assert_eq!(drain(&mut s).await, "4\n\n5\n\n6\n\n");
}

#[tokio::test]
async fn the_streams_last_event_id_resumes_only_the_next_subscribe() {
    let hub = hub();
    let alice = user("alice");
    let s = hub.connect(alice.clone(), Uuid::new_v4(), Some(7));
    let id = s.connection().id;
    let first = hub
        .subscribe(id, alice.id, &[room("a")], only_messages(), false)
        .unwrap();
    assert_eq!(first.stream_last_event_id, Some(7));
    assert!(first.replay.is_some(), "the first subscribe replays");
    first.replay.unwrap().send(Vec::new()).unwrap();
    let second = hub
        .subscribe(id, alice.id, &[room("b")], only_messages(), false)
        .unwrap();
    assert_eq!(second.stream_last_event_id, None);
    assert!(
        second.replay.is_none(),
        "a later subscribe does not replay again"
    );
}

#[tokio::test]
async fn broadcasts_before_the_first_subscribe_merge_into_its_replay_by_id() {
    let hub = hub();
    let alice = user("alice");
    hub.set_watermark(2);
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), Some(1));
    drain(&mut s).await;
    hub.publish_broadcast(4, &Bytes::from_static(b"b4\n\n"));
    assert_eq!(
        drain(&mut s).await,
        "",
        "a broadcast overtook the coming replay"
    );
    let sub = hub
        .subscribe(
            s.connection().id,
            alice.id,
            &[room("r")],
            only_messages(),
            false,
        )
        .unwrap();
    assert_eq!(
        sub.broadcasts_sent,
        3..=4,
        "the held broadcast counts as sent"
    );
    // What the database would return: the missed message 2 and broadcast 3.
    let frames = [(2, false), (3, true)]
        .into_iter()
        .map(|(id, is_broadcast)| ReplayFrame {
            id,
            is_broadcast,
            bytes: Bytes::from(format!("{id}\n\n")),
        })
        .collect();
    sub.replay.unwrap().send(frames).unwrap();
    assert_eq!(
        drain(&mut s).await,
        "2\n\n3\n\nb4\n\n",
        "one ascending sequence"
    );
    hub.publish_broadcast(5, &Bytes::from_static(b"b5\n\n"));
    assert_eq!(
        drain(&mut s).await,
        "b5\n\n",
        "live broadcasts flow after the replay"
    );
}

#[tokio::test]
async fn a_first_subscribe_without_replay_releases_held_broadcasts_at_once() {
    let hub = hub();
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None);
    drain(&mut s).await;
    hub.publish_broadcast(3, &Bytes::from_static(b"b3\n\n"));
    assert_eq!(drain(&mut s).await, "", "held until the first subscribe");
    let sub = join(
        &hub,
        s.connection().id,
        alice.id,
        &[room("r")],
        only_messages(),
    );
    assert!(sub.replay.is_none(), "nothing to replay");
    assert_eq!(
        drain(&mut s).await,
        "b3\n\n",
        "released by the subscribe, not the timer"
    );
}

#[tokio::test]
async fn a_replayed_broadcast_is_not_replayed_again() {
    let hub = hub();
    let alice = user("alice");
    hub.set_watermark(9);
    let s = hub.connect(alice.clone(), Uuid::new_v4(), None);
    let id = s.connection().id;
    let first = join(&hub, id, alice.id, &[room("a")], None);
    assert!(first.broadcasts_sent.is_empty(), "nothing sent yet");
    hub.broadcasts_replayed(id, 4);
    let second = hub
        .subscribe(id, alice.id, &[room("b")], None, true)
        .unwrap();
    assert_eq!(
        second.broadcasts_sent,
        5..=9,
        "broadcasts above 4 were replayed"
    );
}

#[tokio::test]
async fn a_dropped_replay_ends_the_stream() {
    let hub = hub();
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None);
    drain(&mut s).await;
    let sub = hub
        .subscribe(s.connection().id, alice.id, &[room("r")], None, true)
        .unwrap();
    drop(sub);
    assert_eq!(
        s.next().await.map(|r| r.is_ok()),
        None,
        "the stream must end"
    );
}

#[tokio::test]
async fn a_stream_waiting_for_its_replay_ends_when_removed() {
    let hub = hub();
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None);
    drain(&mut s).await;
    let sub = hub
        .subscribe(s.connection().id, alice.id, &[room("r")], None, true)
        .unwrap();
    let waiting = tokio::spawn(async move { s.next().await.is_none() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    hub.close_all();
    let ended = tokio::time::timeout(Duration::from_secs(1), waiting).await;
    assert!(matches!(ended, Ok(Ok(true))), "still waiting after removal");
    drop(sub);
}

/// Subscribes (connection lock, then the publish gate) race with message fan-outs that
/// overflow those same connections' queues (publish gate, then cutting the connection). A
/// lock-order inversion between the two would hang this test.
#[test]
fn subscribes_racing_overflowing_fan_outs_do_not_deadlock() {
    let hub = Arc::new(Hub::new(2, Duration::from_secs(3600)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for t in 0..2 {
        let (hub, handle, done) = (hub.clone(), rt.handle().clone(), done_tx.clone());
        std::thread::spawn(move || {
            let _rt = handle.enter();
            let u = user(&format!("u{t}"));
            for i in 0..3000 {
                let s = hub.connect(u.clone(), Uuid::new_v4(), None);
                let id = s.connection().id;
                // Never drained: the queue fills with `connected`, a replay marker, frames.
                let _ = hub.subscribe(id, u.id, &[room("a")], only_messages(), true);
                let _ = hub.subscribe(id, u.id, &[room("b")], only_messages(), true);
                if i % 7 == 0 {
                    drop(s);
                }
            }
            let _ = done.send(());
        });
    }
    {
        let (hub, done) = (hub.clone(), done_tx.clone());
        std::thread::spawn(move || {
            for id in 1..20_000 {
                let r = if id % 2 == 0 { room("a") } else { room("b") };
                hub.publish_message(id, &r, &Bytes::from_static(b"m\n\n"));
            }
            let _ = done.send(());
        });
    }
    for _ in 0..3 {
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a thread hung: lock-order deadlock between subscribe and publish");
    }
    // Without a cut the race under test never happened.
    let cut = hub.stats().slow_disconnects;
    assert!(cut > 0, "no connection was cut for a full queue");
}

/// Many threads join and leave overlapping rooms while streams open and close; afterwards no
/// empty room is mapped and every presence count equals the connections present.
#[test]
fn churn_keeps_the_invariants() {
    let hub = Arc::new(Hub::new(4096, Duration::from_secs(3600)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let users: Vec<UserRef> = (0..4).map(|i| user(&format!("u{i}"))).collect();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let hub = hub.clone();
            let users = users.clone();
            let handle = rt.handle().clone();
            scope.spawn(move || {
                // Streams arm their heartbeat timer, which needs a runtime in scope.
                let _rt = handle.enter();
                let mut keep = Vec::new();
                for i in 0..2000usize {
                    let u = &users[(t + i) % users.len()];
                    let s = hub.connect(u.clone(), Uuid::new_v4(), None);
                    let id = s.connection().id;
                    let rooms = [
                        room(&format!("r{}", i % 3)),
                        room(&format!("r{}", (i + t) % 5)),
                    ];
                    join(&hub, id, u.id, &rooms, None);
                    if i % 3 == 0 {
                        hub.unsubscribe(id, u.id, &rooms[..1]).unwrap();
                    }
                    if i % 2 == 0 {
                        keep.push(s);
                    }
                    if keep.len() > 10 {
                        keep.remove(i % keep.len());
                    }
                }
                drop(keep);
            });
        }
    });
    hub.check_invariants().unwrap();
    assert!(
        hub.rooms().is_empty(),
        "all streams closed, yet rooms remain: {:?}",
        hub.rooms()
    );
    assert_eq!(hub.stats().connections, 0);
}

#[tokio::test]
async fn invariants_hold_with_streams_open() {
    let hub = hub();
    let users: Vec<UserRef> = (0..3).map(|i| user(&format!("u{i}"))).collect();
    let mut streams = Vec::new();
    for (i, u) in users.iter().cycle().take(9).enumerate() {
        let s = hub.connect(u.clone(), Uuid::new_v4(), None);
        join(
            &hub,
            s.connection().id,
            u.id,
            &[room(&format!("r{}", i % 2))],
            None,
        );
        streams.push(s);
    }
    hub.check_invariants().unwrap();
    let r0 = hub
        .rooms()
        .into_iter()
        .find(|r| r.name.as_str() == "r0")
        .unwrap();
    assert_eq!((r0.subscribers, r0.users), (5, 3));
}
