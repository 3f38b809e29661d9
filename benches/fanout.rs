//! Cost of routing inside the hub, HTTP excluded: CPU per delivered frame (fan-out into the
//! subscriber queues plus each stream taking its frame out) and memory per idle
//! connection (hub structures and its queue, not the socket's buffers).
//!
//! `cargo bench --bench fanout`. Everything runs on one thread, so wall time is CPU time.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use roomcast::{
    domain::{EventName, RoomName, UserRef},
    hub::{EventFilter, Hub},
};
use uuid::Uuid;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Subscribes; a replay, if the hub asks for one, is answered with nothing.
fn join(
    hub: &Hub,
    id: roomcast::domain::ConnectionId,
    owner: Uuid,
    rooms: &[RoomName],
    filter: Option<EventFilter>,
    want_replay: bool,
) {
    let sub = hub
        .subscribe(id, owner, rooms, filter, want_replay)
        .expect("subscribe");
    if let Some(tx) = sub.replay {
        let _ = tx.send(Vec::new());
    }
}

fn user(i: usize) -> UserRef {
    UserRef {
        id: Uuid::new_v4(),
        username: format!("user{i}").into(),
    }
}

async fn deliveries(subscribers: usize, messages: usize) -> f64 {
    let hub = Arc::new(Hub::new(1024, Duration::from_secs(3600)));
    let room = RoomName::parse("bench").unwrap();
    let filter = || Some(EventFilter::new([EventName::builtin("message")]));
    let mut readers = Vec::new();
    for i in 0..subscribers {
        let u = user(i);
        let mut s = hub.connect(u.clone(), Uuid::new_v4(), None);
        join(
            &hub,
            s.connection().id,
            u.id,
            std::slice::from_ref(&room),
            filter(),
            false,
        );
        s.next().await; // the `connected` frame
        readers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while n < messages {
                match s.next().await {
                    Some(Ok(_)) => n += 1,
                    _ => break,
                }
            }
            n
        }));
    }
    tokio::task::yield_now().await;
    let frame = Bytes::from(format!(
        "id: 1\nevent: message\ndata: {{\"body\":\"{}\"}}\n\n",
        "x".repeat(120)
    ));
    let started = std::time::Instant::now();
    for id in 1..=messages as i64 {
        hub.publish_message(id, &room, &frame);
        // Let every reader drain before the next message, as sockets would.
        tokio::task::yield_now().await;
    }
    let mut delivered = 0;
    for r in readers {
        delivered += r.await.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(delivered, subscribers * messages, "every frame delivered");
    elapsed.as_nanos() as f64 / delivered as f64
}

async fn idle_memory(connections: usize) -> f64 {
    let hub = Arc::new(Hub::new(1024, Duration::from_secs(15)));
    let rooms: Vec<RoomName> = (0..10)
        .map(|i| RoomName::parse(&format!("r{i}")).unwrap())
        .collect();
    let before = rss_bytes();
    let mut streams = Vec::with_capacity(connections);
    for i in 0..connections {
        let u = user(i);
        let mut s = hub.connect(u.clone(), Uuid::new_v4(), None);
        // Only messages: an idle room sends none, so the queue holds nothing (presence
        // frames of the other joiners would otherwise pile up, as no socket drains them here).
        let only_messages = Some(EventFilter::new([EventName::builtin("message")]));
        join(
            &hub,
            s.connection().id,
            u.id,
            &rooms[i % 10..i % 10 + 1],
            only_messages,
            false,
        );
        s.next().await;
        streams.push(s);
    }
    let after = rss_bytes();
    drop(streams);
    (after - before) as f64 / connections as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("hub fan-out, one thread, HTTP excluded");
        println!(
            "{:>12} {:>10} {:>16}",
            "subscribers", "messages", "ns per delivery"
        );
        for (subs, msgs) in [(100, 2000), (1000, 500), (10_000, 50)] {
            let ns = deliveries(subs, msgs).await;
            println!("{subs:>12} {msgs:>10} {ns:>16.0}");
        }
        let per = idle_memory(20_000).await;
        println!(
            "idle connection in the hub (queue, state, one room): {:.0} bytes",
            per
        );
    });
}
