//! The hub without HTTP: routing, presence, room lifetime, slow consumers, and the resume
//! protocol (replay/live splice, broadcast coverage) against a fake [`History`].

use std::{ops::RangeInclusive, sync::Arc, time::Duration};

use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::Notify;
use uuid::Uuid;

use super::*;
use crate::domain::{EventName, StoredMessage, UserRef};

fn settings(queue_capacity: usize) -> HubSettings {
    HubSettings {
        queue_capacity,
        heartbeat: Duration::from_secs(3600),
        replay_limit: 1000,
        replay_bytes: 1 << 20,
        streams_per_user: 1000,
        streams_per_session: 1000,
        max_streams: 100_000,
        rooms_per_user: 1000,
        presence_coalesce: Duration::ZERO,
        reconnect_rate: 0,
        replays_at_once: 4,
    }
}

fn hub() -> Arc<Hub> {
    Arc::new(Hub::new(settings(8)))
}

fn user(name: &str) -> UserRef {
    UserRef {
        id: Uuid::new_v4(),
        username: Some(Arc::from(name)),
    }
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

/// A stored room message (`Some(room)`) or broadcast (`None`).
fn stored(id: i64, room_name: Option<&str>) -> StoredMessage {
    StoredMessage {
        id,
        room: room_name.map(room),
        user: None,
        body: format!("m{id}"),
        sent_at: "2026-01-01T00:00:00.000Z".into(),
        kind: Default::default(),
    }
}

/// What one `since` call asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SinceCall {
    rooms: Vec<RoomName>,
    after: i64,
    up_to: i64,
    skip: RangeInclusive<i64>,
}

/// An in-memory log that answers like the database would, records what it was asked, and
/// can be held (to publish live events while a replay is being read) or made to fail.
#[derive(Default)]
struct FakeHistory {
    log: Vec<StoredMessage>,
    calls: Mutex<Vec<SinceCall>>,
    hold: Option<Arc<Notify>>,
    fail: bool,
}

impl FakeHistory {
    fn with(log: Vec<StoredMessage>) -> Self {
        Self {
            log,
            ..Self::default()
        }
    }

    fn calls(&self) -> Vec<SinceCall> {
        self.calls.lock().clone()
    }
}

impl History for FakeHistory {
    async fn since(
        &self,
        rooms: &[RoomName],
        after: i64,
        up_to: i64,
        skip: RangeInclusive<i64>,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredMessage>> {
        self.calls.lock().push(SinceCall {
            rooms: rooms.to_vec(),
            after,
            up_to,
            skip: skip.clone(),
        });
        if let Some(hold) = &self.hold {
            hold.notified().await;
        }
        anyhow::ensure!(!self.fail, "the fake database is down");
        Ok(replay_from(&self.log, rooms, after, up_to, &skip, limit))
    }

    async fn recent(
        &self,
        room: &RoomName,
        up_to: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredMessage>> {
        Ok(recent_from(&self.log, room, up_to, limit))
    }
}

/// What the database answers for a replay, from an in-memory `log` in id order: the events
/// of `rooms` plus broadcasts outside `skip` in `(after, up_to]`, the newest `limit`,
/// newest first.
pub(super) fn replay_from(
    log: &[StoredMessage],
    rooms: &[RoomName],
    after: i64,
    up_to: i64,
    skip: &RangeInclusive<i64>,
    limit: u32,
) -> Vec<StoredMessage> {
    log.iter()
        .rev()
        .filter(|m| m.id > after && m.id <= up_to)
        .filter(|m| match &m.room {
            Some(r) => rooms.contains(r),
            None => !skip.contains(&m.id),
        })
        .take(limit as usize)
        .cloned()
        .collect()
}

/// What the database answers for a room's recent messages, from an in-memory `log` in id
/// order: the newest `limit` messages of `room` up to `up_to`, newest first.
pub(super) fn recent_from(
    log: &[StoredMessage],
    room: &RoomName,
    up_to: i64,
    limit: u32,
) -> Vec<StoredMessage> {
    log.iter()
        .rev()
        .filter(|m| {
            m.room.as_ref() == Some(room)
                && m.id <= up_to
                && matches!(m.kind, crate::domain::EventKind::Message(_))
        })
        .take(limit as usize)
        .cloned()
        .collect()
}

fn request(id: ConnectionId, rooms: &[RoomName]) -> SubscribeRequest {
    SubscribeRequest::new(id, rooms.to_vec()).unwrap()
}

/// Joins synchronously (the locked part only); a replay the join promised is answered with
/// nothing, as an empty log would.
fn join(
    hub: &Hub,
    id: ConnectionId,
    owner: Uuid,
    rooms: &[RoomName],
    filter: Option<EventFilter>,
) -> Subscription {
    let joined = hub
        .join(owner, request(id, rooms).with_filter(filter))
        .unwrap();
    if let Some(pending) = joined.replay {
        pending.send(Vec::new());
    }
    joined.answer
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

/// The `id:` lines of SSE text, in order.
fn ids(text: &str) -> Vec<i64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|v| v.parse().unwrap())
        .collect()
}

/// Waits until the fake has been asked `n` times (the join is done by then).
async fn asked(history: &FakeHistory, n: usize) {
    tokio::time::timeout(Duration::from_secs(2), async {
        while history.calls.lock().len() < n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the hub never read its replay");
}

#[tokio::test]
async fn messages_reach_only_the_rooms_subscribers() {
    let hub = hub();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut a = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    let mut b = hub.connect(bob.clone(), Uuid::new_v4(), None).unwrap();
    let (a_id, b_id) = (a.connection().id, b.connection().id);
    join(&hub, a_id, alice.id, &[room("x")], None);
    join(&hub, b_id, bob.id, &[room("y")], None);
    drain(&mut a).await;
    drain(&mut b).await;

    hub.publish(&stored(1, Some("x")));
    assert_eq!(ids(&drain(&mut a).await), [1]);
    assert_eq!(
        drain(&mut b).await,
        "",
        "a room y subscriber got a room x message"
    );
}

#[tokio::test]
async fn a_connection_of_another_user_is_unknown() {
    let hub = hub();
    let s = hub.connect(user("alice"), Uuid::new_v4(), None).unwrap();
    let err = hub
        .subscribe(
            user("mallory").id,
            request(s.connection().id, &[room("r")]),
            &FakeHistory::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::UnknownConnection), "{err:?}");
}

#[tokio::test]
async fn presence_joins_once_per_user_and_leaves_with_the_last_tab() {
    let hub = hub();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut watcher = hub.connect(bob.clone(), Uuid::new_v4(), None).unwrap();
    join(&hub, watcher.connection().id, bob.id, &[room("r")], None);
    drain(&mut watcher).await;

    let tab1 = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    let tab2 = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    join(&hub, tab1.connection().id, alice.id, &[room("r")], None);
    join(&hub, tab2.connection().id, alice.id, &[room("r")], None);
    let seen = drain(&mut watcher).await;
    assert_eq!(seen.matches("\"join\"").count(), 1, "{seen}");
    assert_eq!(hub.presence(&room("r")).len(), 2);

    drop(tab1);
    assert_eq!(drain(&mut watcher).await, "", "alice still has a tab here");
    drop(tab2);
    let seen = drain(&mut watcher).await;
    assert_eq!(seen.matches("\"leave\"").count(), 1, "{seen}");
    assert_eq!(hub.presence(&room("r")).len(), 1);
}

#[tokio::test]
async fn the_last_leave_removes_the_room() {
    let hub = hub();
    let alice = user("alice");
    let s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    let id = s.connection().id;
    join(&hub, id, alice.id, &[room("a"), room("b")], None);
    assert_eq!(hub.rooms().len(), 2);
    let left = hub
        .unsubscribe(alice.id, UnsubscribeRequest::new(id, vec![room("a")]))
        .unwrap();
    assert_eq!(left.rooms, [room("b")]);
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
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    let filter = EventFilter::new([EventName::parse("typing").unwrap()]);
    join(
        &hub,
        s.connection().id,
        alice.id,
        &[room("r")],
        Some(filter),
    );
    drain(&mut s).await;

    hub.publish(&stored(1, Some("r")));
    let name = EventName::parse("typing").unwrap();
    hub.publish_custom(&room("r"), &alice, &name, &1);
    let other = EventName::parse("other").unwrap();
    hub.publish_custom(&room("r"), &alice, &other, &2);
    let seen = drain(&mut s).await;
    assert!(seen.starts_with("event: typing\n"), "{seen}");
    assert_eq!(seen.matches("event:").count(), 1, "{seen}");

    hub.publish(&stored(2, None));
    assert_eq!(ids(&drain(&mut s).await), [2], "broadcasts ignore filters");
}

#[tokio::test]
async fn too_many_rooms_is_refused_whole() {
    let hub = hub();
    let alice = user("alice");
    let s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    let rooms: Vec<RoomName> = (0..MAX_ROOMS_PER_CONNECTION)
        .map(|i| room(&format!("r{i}")))
        .collect();
    join(&hub, s.connection().id, alice.id, &rooms, only_messages());
    let err = hub
        .subscribe(
            alice.id,
            request(s.connection().id, &[room("one-more")]),
            &FakeHistory::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::TooManyRooms), "{err:?}");
    assert_eq!(hub.rooms().len(), MAX_ROOMS_PER_CONNECTION);
}

#[tokio::test]
async fn a_full_queue_disconnects_only_that_subscriber() {
    let hub = hub();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut slow = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    let mut fast = hub.connect(bob.clone(), Uuid::new_v4(), None).unwrap();
    join(&hub, slow.connection().id, alice.id, &[room("r")], None);
    join(&hub, fast.connection().id, bob.id, &[room("r")], None);
    drain(&mut slow).await;
    for i in 1..=20 {
        hub.publish(&stored(i, Some("r")));
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
async fn replay_comes_before_live_events_published_while_it_is_read() {
    let hub = hub();
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    let id = s.connection().id;
    drain(&mut s).await;
    hub.set_watermark(5);
    let hold = Arc::new(Notify::new());
    let history = Arc::new(FakeHistory {
        log: vec![
            stored(3, Some("r")),
            stored(4, Some("r")),
            stored(5, Some("r")),
        ],
        hold: Some(hold.clone()),
        ..FakeHistory::default()
    });
    let task = {
        let (hub, history) = (hub.clone(), history.clone());
        let req = request(id, &[room("r")]).with_replay(ReplayFrom::After(3));
        tokio::spawn(async move { hub.subscribe(alice.id, req, &*history).await })
    };
    asked(&history, 1).await;
    assert_eq!(
        history.calls()[0].up_to,
        5,
        "the replay stops at the watermark"
    );
    hub.publish(&stored(6, Some("r")));
    assert_eq!(drain(&mut s).await, "", "a live event overtook the replay");
    hold.notify_one();
    let sub = task.await.unwrap().unwrap();
    assert_eq!(
        sub.replay,
        ReplayOutcome {
            count: 2,
            complete: true
        }
    );
    assert_eq!(ids(&drain(&mut s).await), [4, 5, 6], "replay, then live");
}

#[tokio::test]
async fn history_replays_the_last_messages_up_to_the_watermark() {
    let hub = hub();
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    drain(&mut s).await;
    hub.set_watermark(4);
    let log = (1..=5).map(|i| stored(i, Some("r"))).collect();
    let req = request(s.connection().id, &[room("r")]).with_replay(ReplayFrom::Recent(2));
    let sub = hub
        .subscribe(alice.id, req, &FakeHistory::with(log))
        .await
        .unwrap();
    assert_eq!(sub.replay.count, 2);
    assert_eq!(
        ids(&drain(&mut s).await),
        [3, 4],
        "5 is above the watermark: it arrives live, not in the replay"
    );
}

/// A stored room message of about `bytes` bytes.
fn big(id: i64, room_name: &str, bytes: usize) -> StoredMessage {
    StoredMessage {
        body: "x".repeat(bytes),
        ..stored(id, Some(room_name))
    }
}

#[tokio::test]
async fn history_over_many_rooms_keeps_the_newest_within_the_event_bound() {
    let hub = Arc::new(Hub::new(HubSettings {
        replay_limit: 10,
        ..settings(1024)
    }));
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    drain(&mut s).await;
    hub.set_watermark(60);
    // Rooms a..f, ten messages each, interleaved by id.
    let names = ["a", "b", "c", "d", "e", "f"];
    let log: Vec<StoredMessage> = (1..=60)
        .map(|i| stored(i, Some(names[(i % 6) as usize])))
        .collect();
    let rooms: Vec<RoomName> = names.iter().map(|n| room(n)).collect();
    let req = request(s.connection().id, &rooms).with_replay(ReplayFrom::Recent(10));
    let sub = hub
        .subscribe(alice.id, req, &FakeHistory::with(log))
        .await
        .unwrap();
    assert_eq!(
        sub.replay,
        ReplayOutcome {
            count: 10,
            complete: false
        },
        "6 rooms x 10 messages replay 10 in all, not 60"
    );
    let replayed: Vec<i64> = ids(&drain(&mut s).await)
        .into_iter()
        .filter(|id| *id > 0)
        .collect();
    assert_eq!(replayed, (51..=60).collect::<Vec<_>>(), "the newest ten");
}

#[tokio::test]
async fn a_replay_is_bounded_in_bytes_keeping_the_newest() {
    let hub = Arc::new(Hub::new(HubSettings {
        replay_bytes: 10_000,
        ..settings(1024)
    }));
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    drain(&mut s).await;
    hub.set_watermark(20);
    let log: Vec<StoredMessage> = (1..=20).map(|i| big(i, "r", 3000)).collect();
    for from in [ReplayFrom::Recent(20), ReplayFrom::After(0)] {
        let req = request(s.connection().id, &[room("r")]).with_replay(from);
        let sub = hub
            .subscribe(alice.id, req, &FakeHistory::with(log.clone()))
            .await
            .unwrap();
        assert_eq!(
            sub.replay,
            ReplayOutcome {
                count: 3,
                complete: false
            },
            "{from:?}: three frames of ~3 KB fit in 10,000 bytes"
        );
        let text = drain(&mut s).await;
        assert!(
            text.len() <= 10_000,
            "{from:?}: {} bytes replayed",
            text.len()
        );
        assert_eq!(ids(&text), [18, 19, 20], "{from:?}: the newest three");
        hub.unsubscribe(
            alice.id,
            UnsubscribeRequest::new(s.connection().id, vec![room("r")]),
        )
        .unwrap();
        drain(&mut s).await;
    }
}

#[tokio::test]
async fn a_replay_that_does_not_fit_beside_unwritten_ones_is_refused_and_joins_nothing() {
    let hub = Arc::new(Hub::new(HubSettings {
        replay_bytes: 10_000,
        ..settings(1024)
    }));
    let (alice, bob) = (user("alice"), user("bob"));
    let mut watcher = hub.connect(bob.clone(), Uuid::new_v4(), None).unwrap();
    join(&hub, watcher.connection().id, bob.id, &[room("c")], None);
    drain(&mut watcher).await;
    hub.set_watermark(40);
    let names = ["a", "b", "c", "d"];
    let log: Vec<StoredMessage> = (1..=40)
        .map(|i| big(i, names[(i % 4) as usize], 3000))
        .collect();
    let history = FakeHistory::with(log);
    let replay =
        |r: &str| request(id_of(&hub, &alice), &[room(r)]).with_replay(ReplayFrom::Recent(10));
    // A stream that is not read: its replays stay unwritten, ~9 KB each.
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    for r in ["a", "b"] {
        let sub = hub.subscribe(alice.id, replay(r), &history).await.unwrap();
        assert_eq!(sub.replay.count, 3, "room {r}: a replay of ~9 KB");
    }
    // Twice the bound (20,000 bytes), less the ~18 KB unwritten, leaves no room for another.
    let refused = hub.subscribe(alice.id, replay("c"), &history).await;
    assert!(
        matches!(refused, Err(HubError::ReplayBacklog)),
        "a replay past the stream's room: {refused:?}"
    );
    assert_eq!(
        hub.presence(&room("c")),
        vec![bob.clone()],
        "the refused subscribe joined room c"
    );
    assert_eq!(
        drain(&mut watcher).await,
        "",
        "no presence for a refused join"
    );
    // Without a replay, joining still works.
    hub.subscribe(alice.id, request(s.connection().id, &[room("c")]), &history)
        .await
        .unwrap();
    assert_eq!(hub.presence(&room("c")).len(), 2, "a join without replay");
    // Once the stream writes its replays, the room is free again.
    drain(&mut s).await;
    hub.subscribe(alice.id, replay("d"), &history)
        .await
        .expect("room again once the replays are written");
}

/// The id of `user`'s only stream on `hub`.
fn id_of(hub: &Hub, user: &UserRef) -> ConnectionId {
    let ids: Vec<ConnectionId> = hub
        .connections
        .iter()
        .filter(|e| e.conn.user.id == user.id)
        .map(|e| *e.key())
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "{} has one stream",
        user.username.as_deref().unwrap_or_default()
    );
    ids[0]
}

#[tokio::test]
async fn the_streams_last_event_id_resumes_only_the_next_subscribe() {
    let hub = hub();
    let alice = user("alice");
    let s = hub.connect(alice.clone(), Uuid::new_v4(), Some(7)).unwrap();
    let id = s.connection().id;
    let history = FakeHistory::default();
    hub.subscribe(alice.id, request(id, &[room("a")]), &history)
        .await
        .unwrap();
    assert_eq!(history.calls().len(), 1, "the first subscribe replays");
    assert_eq!(
        history.calls()[0].after,
        7,
        "from the stream's Last-Event-ID"
    );
    hub.subscribe(alice.id, request(id, &[room("b")]), &history)
        .await
        .unwrap();
    assert_eq!(
        history.calls().len(),
        1,
        "a later subscribe does not replay again"
    );
}

#[tokio::test]
async fn broadcasts_before_the_first_subscribe_merge_into_its_replay_by_id() {
    let hub = hub();
    let alice = user("alice");
    hub.set_watermark(2);
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), Some(1)).unwrap();
    drain(&mut s).await;
    hub.publish(&stored(4, None));
    assert_eq!(
        drain(&mut s).await,
        "",
        "a broadcast overtook the coming replay"
    );
    let history = FakeHistory::with(vec![stored(2, Some("r")), stored(4, None)]);
    let sub = hub
        .subscribe(alice.id, request(s.connection().id, &[room("r")]), &history)
        .await
        .unwrap();
    assert_eq!(
        history.calls()[0].skip,
        3..=4,
        "the held broadcast counts as sent"
    );
    assert_eq!(sub.replay.count, 1, "only message 2 came from the log");
    assert_eq!(ids(&drain(&mut s).await), [2, 4], "one ascending sequence");
    hub.publish(&stored(5, None));
    assert_eq!(
        ids(&drain(&mut s).await),
        [5],
        "live broadcasts flow after the replay"
    );
}

#[tokio::test]
async fn a_first_subscribe_without_replay_releases_held_broadcasts_at_once() {
    let hub = hub();
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    drain(&mut s).await;
    hub.publish(&stored(3, None));
    assert_eq!(drain(&mut s).await, "", "held until the first subscribe");
    let history = FakeHistory::default();
    hub.subscribe(alice.id, request(s.connection().id, &[room("r")]), &history)
        .await
        .unwrap();
    assert!(history.calls().is_empty(), "nothing to replay");
    assert_eq!(
        ids(&drain(&mut s).await),
        [3],
        "released by the subscribe, not the timer"
    );
}

#[tokio::test]
async fn a_replayed_broadcast_is_not_replayed_again() {
    let hub = hub();
    let alice = user("alice");
    hub.set_watermark(9);
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    let id = s.connection().id;
    drain(&mut s).await;
    let history = FakeHistory::with(vec![stored(6, None), stored(7, Some("b"))]);
    let req = request(id, &[room("a")]).with_replay(ReplayFrom::After(4));
    hub.subscribe(alice.id, req, &history).await.unwrap();
    assert_eq!(ids(&drain(&mut s).await), [6], "the missed broadcast");
    let req = request(id, &[room("b")]).with_replay(ReplayFrom::After(2));
    hub.subscribe(alice.id, req, &history).await.unwrap();
    assert_eq!(
        history.calls()[1].skip,
        5..=9,
        "broadcasts above 4 were replayed already"
    );
    assert_eq!(
        ids(&drain(&mut s).await),
        [7],
        "room b's message, without broadcast 6 again"
    );
}

#[tokio::test]
async fn a_replay_cut_by_the_limit_still_covers_every_broadcast_after_its_start() {
    let hub = Arc::new(Hub::new(HubSettings {
        replay_limit: 3,
        ..settings(64)
    }));
    let alice = user("alice");
    hub.set_watermark(10);
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    let id = s.connection().id;
    drain(&mut s).await;
    let history = FakeHistory::with((1..=10).map(|i| stored(i, None)).collect());
    let req = request(id, &[room("a")]).with_replay(ReplayFrom::After(0));
    let sub = hub.subscribe(alice.id, req, &history).await.unwrap();
    assert_eq!(
        sub.replay,
        ReplayOutcome {
            count: 3,
            complete: false
        }
    );
    assert_eq!(ids(&drain(&mut s).await), [8, 9, 10], "the newest 3");
    let req = request(id, &[room("b")]).with_replay(ReplayFrom::After(0));
    hub.subscribe(alice.id, req, &history).await.unwrap();
    assert_eq!(
        history.calls()[1].skip,
        1..=10,
        "the first replay answered for every broadcast after 0 (complete: false said the rest \
         was skipped), so none is offered twice"
    );
}

#[tokio::test]
async fn racing_subscribes_on_one_connection_do_not_replay_a_broadcast_twice() {
    // Room in the queue for both replays at once.
    let hub = Arc::new(Hub::new(settings(1024)));
    let alice = user("alice");
    hub.set_watermark(100);
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    let id = s.connection().id;
    drain(&mut s).await;
    let hold = Arc::new(Notify::new());
    let history = Arc::new(FakeHistory {
        log: vec![stored(60, None), stored(80, None)],
        hold: Some(hold.clone()),
        ..FakeHistory::default()
    });
    let spawn = |r: &str| {
        let (hub, history) = (hub.clone(), history.clone());
        let req = request(id, &[room(r)]).with_replay(ReplayFrom::After(50));
        tokio::spawn(async move { hub.subscribe(alice.id, req, &*history).await })
    };
    let first = spawn("a");
    asked(&history, 1).await;
    let second = spawn("b");
    asked(&history, 2).await;
    // A permit per waiter, however their waits interleave with these notifications.
    while !(first.is_finished() && second.is_finished()) {
        hold.notify_one();
        tokio::task::yield_now().await;
    }
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(
        history.calls()[1].skip,
        51..=100,
        "the second replay skips what the first one carries"
    );
    assert_eq!(ids(&drain(&mut s).await), [60, 80], "each broadcast once");
}

#[tokio::test]
async fn a_room_revoked_during_the_join_leaves_nothing_joined_and_replays_nothing() {
    let hub = hub();
    let alice = user("alice");
    hub.set_watermark(5);
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    let id = s.connection().id;
    drain(&mut s).await;
    let history = FakeHistory::with(vec![stored(4, Some("secret")), stored(5, Some("open"))]);
    let req = request(id, &[room("secret"), room("open")]).with_replay(ReplayFrom::After(0));
    let err = hub
        .subscribe_checked(alice.id, req, &history, async { Ok(vec![room("secret")]) })
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::Revoked), "{err:?}");
    assert!(
        history.calls().is_empty(),
        "nothing was read for the replay"
    );
    assert!(
        hub.rooms().is_empty(),
        "no room of that subscribe stays joined"
    );
    assert!(!s.connection().is_closed(), "the stream itself stays up");
    assert!(ids(&drain(&mut s).await).is_empty(), "nothing was replayed");
    hub.check_invariants().unwrap();
}

#[tokio::test]
async fn a_failed_replay_read_closes_the_connection() {
    let hub = hub();
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    drain(&mut s).await;
    let history = FakeHistory {
        fail: true,
        ..FakeHistory::default()
    };
    let req = request(s.connection().id, &[room("r")]).with_replay(ReplayFrom::After(0));
    let err = hub.subscribe(alice.id, req, &history).await.unwrap_err();
    assert!(matches!(err, HubError::History(_)), "{err:?}");
    assert!(
        s.connection().is_closed(),
        "the stream must close, not carry a gap"
    );
    assert!(hub.rooms().is_empty(), "the joined room must be left");
    assert_eq!(s.next().await.map(|r| r.is_ok()), None, "the stream ends");
}

#[tokio::test]
async fn an_abandoned_subscribe_ends_the_stream() {
    let hub = hub();
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    drain(&mut s).await;
    let history = Arc::new(FakeHistory {
        hold: Some(Arc::new(Notify::new())),
        ..FakeHistory::default()
    });
    let task = {
        let (hub, history) = (hub.clone(), history.clone());
        let req = request(s.connection().id, &[room("r")]).with_replay(ReplayFrom::After(0));
        tokio::spawn(async move { hub.subscribe(alice.id, req, &*history).await })
    };
    asked(&history, 1).await;
    // The client gave up on its subscribe request while the replay was being read.
    task.abort();
    let ended = tokio::time::timeout(Duration::from_secs(1), s.next()).await;
    assert!(
        matches!(ended, Ok(None)),
        "the stream must end rather than carry on with a gap"
    );
}

#[tokio::test]
async fn a_stream_waiting_for_its_replay_ends_when_removed() {
    let hub = hub();
    let alice = user("alice");
    let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
    drain(&mut s).await;
    let joined = hub
        .join(
            alice.id,
            request(s.connection().id, &[room("r")]).with_replay(ReplayFrom::After(0)),
        )
        .unwrap();
    let waiting = tokio::spawn(async move { s.next().await.is_none() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    hub.close_all();
    let ended = tokio::time::timeout(Duration::from_secs(1), waiting).await;
    assert!(matches!(ended, Ok(Ok(true))), "still waiting after removal");
    drop(joined);
}

#[test]
fn subscribe_bodies_parse_into_requests() {
    let body = |json: serde_json::Value| -> Result<SubscribeRequest, crate::domain::ParseError> {
        SubscribeRequest::try_from(
            serde_json::from_value::<crate::domain::SubscribeBody>(json).unwrap(),
        )
    };
    let id = ConnectionId::new().to_string();
    let ok = body(
        serde_json::json!({"connection_id": id, "rooms": ["a"], "last_event_id": 4, "history": 9}),
    )
    .unwrap();
    assert_eq!(
        ok.replay(),
        ReplayFrom::After(4),
        "last_event_id wins over history"
    );
    let ok = body(serde_json::json!({"connection_id": id, "rooms": ["a"], "history": 9})).unwrap();
    assert_eq!(ok.replay(), ReplayFrom::Recent(9));
    use crate::domain::ParseError as E;
    for (json, want) in [
        (
            serde_json::json!({"connection_id": id, "rooms": []}),
            E::NoRooms,
        ),
        (
            serde_json::json!({"connection_id": id, "rooms": ["A"]}),
            E::Room,
        ),
        (
            serde_json::json!({"connection_id": "x", "rooms": ["a"]}),
            E::ConnectionId,
        ),
        (
            serde_json::json!({"connection_id": id, "rooms": ["a"], "history": 201}),
            E::History,
        ),
        (
            serde_json::json!({"connection_id": id, "rooms": ["a"], "last_event_id": -1}),
            E::LastEventId,
        ),
        (
            serde_json::json!({"connection_id": id, "rooms": ["a"], "events": ["B"]}),
            E::EventName,
        ),
    ] {
        assert_eq!(body(json.clone()).unwrap_err(), want, "{json}");
    }
    let many: Vec<String> = (0..=MAX_ROOMS_PER_CONNECTION)
        .map(|i| format!("r{i}"))
        .collect();
    assert_eq!(
        body(serde_json::json!({"connection_id": id, "rooms": many})).unwrap_err(),
        E::TooManyRooms
    );
}

/// Subscribes (connection lock, then the publish gate) race with message fan-outs that
/// overflow those same connections' queues (publish gate, then cutting the connection). A
/// lock-order inversion between the two would hang this test.
#[test]
fn subscribes_racing_overflowing_fan_outs_do_not_deadlock() {
    let hub = Arc::new(Hub::new(settings(2)));
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
                let s = hub.connect(u.clone(), Uuid::new_v4(), None).unwrap();
                let id = s.connection().id;
                // Never drained: the queue fills with `connected`, a replay marker, frames.
                for r in ["a", "b"] {
                    let req = request(id, &[room(r)])
                        .with_filter(only_messages())
                        .with_replay(ReplayFrom::After(0));
                    let _ = hub.join(u.id, req);
                }
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
                let r = if id % 2 == 0 { "a" } else { "b" };
                hub.publish(&stored(id, Some(r)));
            }
            let _ = done.send(());
        });
    }
    for _ in 0..3 {
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a thread hung: lock-order deadlock between subscribe and publish");
    }
    assert!(
        hub.stats().slow_disconnects > 0,
        "the race never cut a slow subscriber, so it did not test the slow-cut path"
    );
}

/// Many threads join and leave overlapping rooms while streams open and close; afterwards no
/// empty room is mapped and every presence count equals the connections present.
#[test]
fn churn_keeps_the_invariants() {
    let hub = Arc::new(Hub::new(settings(4096)));
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
                    let s = hub.connect(u.clone(), Uuid::new_v4(), None).unwrap();
                    let id = s.connection().id;
                    let rooms = [
                        room(&format!("r{}", i % 3)),
                        room(&format!("r{}", (i + t) % 5)),
                    ];
                    join(&hub, id, u.id, &rooms, None);
                    if i % 3 == 0 {
                        hub.unsubscribe(u.id, UnsubscribeRequest::new(id, rooms[..1].to_vec()))
                            .unwrap();
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
        let s = hub.connect(u.clone(), Uuid::new_v4(), None).unwrap();
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
    let distinct: std::collections::HashSet<_> =
        streams.iter().map(|s| s.connection().id).collect();
    assert_eq!(distinct.len(), 9);
}

#[tokio::test]
async fn a_shutdown_tells_each_stream_when_to_come_back_spread_at_the_rate() {
    let hub = Arc::new(Hub::new(HubSettings {
        reconnect_rate: 1000,
        ..settings(8)
    }));
    let alice = user("alice");
    let mut streams: Vec<_> = (0..4)
        .map(|_| hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap())
        .collect();
    for s in &mut streams {
        drain(s).await;
    }
    assert_eq!(hub.close_all(), 4);
    let mut retries = Vec::new();
    for s in &mut streams {
        let last = drain(s).await;
        let ms = last
            .strip_prefix("retry: ")
            .and_then(|r| r.strip_suffix("\n\n"))
            .and_then(|r| r.parse::<u64>().ok());
        retries.push(ms.unwrap_or_else(|| panic!("no lone retry frame last: {last:?}")));
        assert!(s.next().await.is_none(), "the stream ends after its retry");
    }
    retries.sort_unstable();
    // 4 streams at 1,000 a second: 4 ms of spread after the usual 3 s.
    assert_eq!(retries, [3000, 3001, 3002, 3003]);
}

/// A hub that reads one replay at a time, with everything up to `sent` fanned out, and a
/// history of `log` that answers each read only once `hold` is notified.
fn one_turn(log: Vec<StoredMessage>, sent: i64) -> (Arc<Hub>, Arc<FakeHistory>, Arc<Notify>) {
    let hub = Arc::new(Hub::new(HubSettings {
        replays_at_once: 1,
        ..settings(64)
    }));
    hub.set_watermark(sent);
    let hold = Arc::new(Notify::new());
    let history = Arc::new(FakeHistory {
        log,
        hold: Some(hold.clone()),
        ..FakeHistory::default()
    });
    (hub, history, hold)
}

#[tokio::test]
async fn replays_past_the_limit_wait_their_turn_and_then_succeed() {
    let (hub, history, hold) = one_turn(vec![stored(1, Some("a")), stored(2, Some("b"))], 2);
    let alice = user("alice");
    let mut tasks = Vec::new();
    for r in ["a", "b"] {
        let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
        drain(&mut s).await;
        let (hub, history) = (hub.clone(), history.clone());
        let req = request(s.connection().id, &[room(r)]).with_replay(ReplayFrom::After(0));
        tasks.push((
            s,
            tokio::spawn(async move { hub.subscribe(alice.id, req, &*history).await }),
        ));
    }
    asked(&history, 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        history.calls().len(),
        1,
        "a second replay was read while the only turn was taken"
    );
    hold.notify_one();
    asked(&history, 2).await;
    hold.notify_one();
    for (mut s, task) in tasks {
        let sub = task.await.unwrap().expect("a waiting replay succeeds");
        assert_eq!(sub.replay.count, 1);
        assert_eq!(ids(&drain(&mut s).await).len(), 1, "its replay was written");
    }
}

#[tokio::test]
async fn resumes_of_a_room_from_one_id_waiting_together_share_one_read() {
    // Event 4 is stored, not sent yet.
    let log = vec![
        stored(1, Some("r")),
        stored(2, Some("r")),
        stored(3, Some("q")),
        stored(4, Some("r")),
    ];
    let (hub, history, hold) = one_turn(log, 3);
    let alice = user("alice");
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut s = hub.connect(alice.clone(), Uuid::new_v4(), None).unwrap();
        drain(&mut s).await;
        streams.push(s);
    }
    let resume = |s: &ConnectionStream, r: &str| {
        let (hub, history) = (hub.clone(), history.clone());
        let req = request(s.connection().id, &[room(r)]).with_replay(ReplayFrom::After(0));
        tokio::spawn(async move { hub.subscribe(alice.id, req, &*history).await })
    };
    // Another room's resume holds the only turn while the two of room r wait.
    let other = resume(&streams[0], "q");
    asked(&history, 1).await;
    let first = resume(&streams[1], "r");
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Stored and sent after the first joined: live to it, replayed to the second.
    hub.publish(&stored(4, Some("r")));
    let second = resume(&streams[2], "r");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(history.calls().len(), 1, "a resume read without its turn");
    while !(other.is_finished() && first.is_finished() && second.is_finished()) {
        hold.notify_one();
        tokio::task::yield_now().await;
    }
    other.await.unwrap().unwrap();
    let (first, second) = (
        first.await.unwrap().unwrap(),
        second.await.unwrap().unwrap(),
    );
    let calls = history.calls();
    assert_eq!(calls.len(), 2, "room r's two resumes read once: {calls:?}");
    assert_eq!(
        calls[1].up_to, 4,
        "the shared read goes up to the later watermark"
    );
    assert_eq!(
        first.replay.count, 2,
        "the first replays what it had not got live"
    );
    assert_eq!(second.replay.count, 3);
    assert_eq!(
        ids(&drain(&mut streams[1]).await),
        [1, 2, 4],
        "replay, then live"
    );
    assert_eq!(
        ids(&drain(&mut streams[2]).await),
        [1, 2, 4],
        "all replayed"
    );
}
