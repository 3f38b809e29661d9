//! How much one subscribe replays, and the room a replay takes in its stream's queue: the
//! bounds in events and bytes over all the rooms of a subscribe, `429 replay_backlog`, and
//! the attack those bounds stop (replays piling up on a stream that never reads), measured
//! on the real binary.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    helpers::{assert_error, single_node_only, spawn_app_with},
    process::Server,
    sse::{Sse, StalledStream},
};

/// Reads `n` `message` events; their ids and the bytes of their `data`.
async fn replayed(sse: &mut Sse, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        ids.push(sse.expect("message").await.id_num());
    }
    ids
}

#[tokio::test]
async fn history_over_many_rooms_replays_at_most_replay_limit_events_in_all() {
    let app = spawn_app_with(|s| s.history.replay_limit = 5).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut posted = Vec::new();
    for i in 0..4 {
        for room in ["a", "b", "c"] {
            posted.push(bob.say_id(room, &format!("{room}{i}")).await);
        }
    }
    let mut sse = alice.events().await;
    let answer = alice
        .subscribe_with(
            &sse,
            json!({ "rooms": ["a", "b", "c"], "events": ["message"], "history": 4 }),
        )
        .await;
    assert_eq!(
        answer["replay"],
        json!({ "count": 5, "complete": false }),
        "3 rooms x history 4 is 12 messages; replay_limit 5 bounds the subscribe"
    );
    assert_eq!(
        replayed(&mut sse, 5).await,
        posted[7..],
        "the newest five of the twelve, in id order"
    );
    let after = bob.say_id("a", "live").await;
    assert_eq!(
        sse.expect("message").await.id_num(),
        after,
        "live after the replay"
    );
}

#[tokio::test]
async fn a_subscribe_replays_at_most_replay_bytes_of_frames_keeping_the_newest() {
    let app = spawn_app_with(|s| s.history.replay_bytes = 4096).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let seen = bob.say_id("r", "seen").await;
    let mut posted = Vec::new();
    for i in 0..10 {
        posted.push(bob.say_id("r", &format!("{i} {}", "x".repeat(1000))).await);
    }
    for (how, body) in [
        (
            "history",
            json!({ "rooms": ["r"], "events": ["message"], "history": 10 }),
        ),
        (
            "last_event_id",
            json!({ "rooms": ["r"], "events": ["message"], "last_event_id": seen }),
        ),
    ] {
        let mut sse = alice.events().await;
        let answer = alice.subscribe_with(&sse, body).await;
        let count = answer["replay"]["count"].as_u64().expect("a count") as usize;
        assert_eq!(
            answer["replay"]["complete"], false,
            "{how}: ten ~1 KB frames do not fit in 4096 bytes: {answer}"
        );
        assert!(
            (2..=4).contains(&count),
            "{how}: {count} frames of ~1.1 KB replayed within 4096 bytes"
        );
        let mut bytes = 0;
        let mut ids = Vec::new();
        for _ in 0..count {
            let e = sse.expect("message").await;
            bytes += e.data.len();
            ids.push(e.id_num());
        }
        assert!(bytes < 4096, "{how}: {bytes} bytes of data replayed");
        assert_eq!(ids, posted[10 - count..], "{how}: the newest {count}");
    }
}

/// Settings for ~16 KB messages, as the attack used.
fn big_messages(s: &mut roomcast::config::Settings) {
    s.limits.message_chars = 16_000;
    s.limits.body_bytes = 32_768;
    s.database.sqlite_synchronous = roomcast::config::SqliteSync::Normal;
}

/// A body of about 16 KB.
fn body_16k(i: usize) -> String {
    format!("{i:05} {}", "x".repeat(15_990))
}

#[tokio::test]
async fn a_replay_that_does_not_fit_in_the_streams_queue_is_429_replay_backlog_and_joins_nothing() {
    if single_node_only("the balancer between reads the stream and holds what its client does not")
    {
        return;
    }
    let app = spawn_app_with(big_messages).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let rooms: Vec<String> = (0..8).map(|i| format!("big{i}")).collect();
    for room in &rooms {
        for i in 0..70 {
            bob.say(room, &body_16k(i)).await;
        }
    }
    let mut watcher = bob.events().await;
    bob.subscribe_with(&watcher, json!({ "rooms": rooms, "events": ["presence"] }))
        .await;
    for _ in &rooms {
        watcher.expect("presence").await;
    }
    // A stream that never reads: its first replays sit in the socket's buffers and its
    // writer, the next ones in its queue.
    let stalled = StalledStream::open(&app.base, &alice.cookie()).await;
    let mut accepted = 0;
    let mut refused = None;
    for room in &rooms {
        let res = alice
            .try_subscribe(
                &stalled,
                json!({ "rooms": [room], "events": ["message"], "history": 200 }),
            )
            .await;
        if res.status() == 200 {
            let answer: Value = res.json().await.expect("subscribe answer");
            assert_eq!(
                answer["replay"]["complete"], false,
                "70 messages of 16 KB are more than 1 MiB: {answer}"
            );
            accepted += 1;
            continue;
        }
        let retry = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        assert_error(res, 429, "replay_backlog").await;
        assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {retry:?}");
        refused = Some(room.clone());
        break;
    }
    let refused = refused.unwrap_or_else(|| {
        panic!("{accepted} replays of 1 MiB each were taken by a stream that never reads")
    });
    // The kernel's send buffer on loopback takes a replay or two, the stream's writer one,
    // its queue two (twice `history.replay_bytes`); then no more.
    assert!(
        (1..=6).contains(&accepted),
        "{accepted} replays accepted before the backlog"
    );
    assert_eq!(
        alice.presence_names(&refused).await,
        ["bob"],
        "the refused subscribe joined {refused}"
    );
    // The joins of the accepted subscribes, and nothing for the refused one.
    for _ in 0..accepted {
        let e = watcher.expect("presence").await.json();
        assert_eq!(e["action"], "join", "{e}");
        assert_ne!(
            e["room"],
            refused.as_str(),
            "a join for the refused room: {e}"
        );
    }
    watcher.expect_silence(Duration::from_millis(300)).await;
    // The same stream may still join without a replay.
    alice
        .subscribe_with(
            &stalled,
            json!({ "rooms": [refused], "events": ["message"] }),
        )
        .await;
}

const MIB: u64 = 1024 * 1024;

/// The process's proportional set size, from `/proc/PID/smaps_rollup`.
fn pss(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .expect("reading /proc/PID/smaps_rollup");
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("a Pss line")
}

/// Samples the PSS of `pid` every few milliseconds until stopped; the peak.
struct PeakPss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl PeakPss {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(pss(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Self { stop, peak, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the sampler");
        self.peak.load(Ordering::Relaxed)
    }
}

/// Stores `per_room` messages of ~16 KB in each of `rooms`, in the database a server with
/// its data in `dir` will use, before that server starts: the log as posting would leave it,
/// without thousands of posts' time.
async fn fill_rooms(dir: &std::path::Path, rooms: &[String], per_room: usize) {
    let mut settings = roomcast::config::Settings::defaults();
    settings.database.url = crate::process::database_url(dir);
    let db = roomcast::db::Db::connect(&settings.database)
        .await
        .expect("the test database");
    let username = roomcast::domain::Username::parse("poster").expect("a username");
    // Nobody logs in as the poster: any hash will do.
    let poster = db
        .create_user(
            &username,
            "not-a-password-hash",
            roomcast::domain::Role::User,
        )
        .await
        .expect("the poster");
    let author = roomcast::domain::UserRef::from(&poster);
    let mut log = db.message_log().await.expect("the message log");
    for i in 0..per_room {
        let posts: Vec<roomcast::db::NewPost> = rooms
            .iter()
            .map(|room| roomcast::db::NewPost::Message {
                room: Some(roomcast::domain::RoomName::parse(room).expect("a room")),
                user: Some(author.clone()),
                body: roomcast::domain::MessageBody::parse(&body_16k(i), 16_000).expect("a body"),
                reply_to: None,
                mentions: Vec::new(),
            })
            .collect();
        let batch: Vec<&roomcast::db::NewPost> = posts.iter().collect();
        log.append(&batch).await.expect("appending to the log");
    }
    log.close().await;
    db.close().await;
}

/// The attack on the real binary: 20 rooms of 200 messages of ~16 KB; one stream that never
/// reads, unsubscribed and subscribed again with `history: 200` 30 times; then one user's 32
/// streams with one such subscribe each. Before the replay bounds this took the server from
/// about 200 MB to 2.6 GB; the server's PSS must stay under 300 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_attack_leaves_the_servers_memory_under_300_mb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rooms: Vec<String> = (0..20).map(|i| format!("room{i:02}")).collect();
    fill_rooms(dir.path(), &rooms, 200).await;
    let server = Server::start(
        dir.path(),
        &[
            ("ROOMCAST__LIMITS__MESSAGE_CHARS", "16000"),
            ("ROOMCAST__LIMITS__BODY_BYTES", "32768"),
            ("ROOMCAST__SERVER__WORKERS", "2"),
        ],
    );
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = pss(pid);

    let mallory = server.client();
    assert_eq!(
        mallory.register("mallory", "password123").await.status(),
        201
    );
    let subscribe = json!({ "rooms": rooms, "events": ["message"], "history": 200 });

    // One stream that never reads; 30 cycles of unsubscribe + subscribe.
    let sampler = PeakPss::start(pid);
    let stalled = StalledStream::open(&server.base, &mallory.cookie()).await;
    let mut answers: Vec<u16> = Vec::new();
    for _ in 0..30 {
        let all: Vec<&str> = rooms.iter().map(String::as_str).collect();
        let res = mallory.try_unsubscribe(&stalled, &all).await;
        assert_eq!(res.status(), 200, "unsubscribe");
        let res = mallory.try_subscribe(&stalled, subscribe.clone()).await;
        answers.push(res.status().as_u16());
    }
    let peak_cycles = sampler.stop();
    let accepted = answers.iter().filter(|s| **s == 200).count();
    assert!(
        answers.iter().all(|s| *s == 200 || *s == 429),
        "subscribe answers: {answers:?}"
    );
    assert!(
        accepted <= 4,
        "{accepted} of 30 replays taken by a stream that never reads: {answers:?}"
    );
    drop(stalled);

    // One user's 32 streams (two sessions of 16), one subscribe each.
    let sampler = PeakPss::start(pid);
    let second = server.client();
    assert_eq!(second.login("mallory", "password123").await.status(), 200);
    let mut streams = Vec::new();
    for session in [&mallory, &second] {
        for _ in 0..16 {
            let s = StalledStream::open(&server.base, &session.cookie()).await;
            let res = session.try_subscribe(&s, subscribe.clone()).await;
            assert_eq!(res.status(), 200, "one subscribe on each of 32 streams");
            streams.push(s);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peak_streams = sampler.stop();
    let held = pss(pid);
    drop(streams);
    eprintln!(
        "replay attack: PSS before {} MiB; 30 unsubscribe/subscribe cycles on a stalled \
         stream: peak {} MiB ({accepted} of 30 subscribes accepted, the rest 429); 32 \
         stalled streams, one subscribe each: peak {} MiB, {} MiB while held",
        before / MIB,
        peak_cycles / MIB,
        peak_streams / MIB,
        held / MIB,
    );
    for (what, peak) in [("the cycles", peak_cycles), ("32 streams", peak_streams)] {
        assert!(
            peak < 300 * 1000 * 1000,
            "{what}: the server's PSS peaked at {} MiB",
            peak / MIB
        );
    }
}
