//! Cost of routing inside the hub, HTTP excluded: CPU per delivered frame (fan-out into the
//! subscriber queues plus each stream taking its frame out) and memory per idle
//! connection, all in (hub structures, queues, allocator overhead).
//!
//! `cargo bench --bench fanout` (`-- --quick` for a small run). The fan-out runs on one
//! thread, so wall time is CPU time. The memory part re-executes this binary so it runs in
//! a fresh process: one that just freed a large run would reuse those pages and look cheap.

#[path = "common/mod.rs"]
mod common;

use std::{process::Command, sync::Arc, time::Duration};

use futures_util::StreamExt;
use roomcast::{
    domain::{EventName, RoomName, StoredMessage, UserRef},
    hub::{ConnectionStream, EventFilter, History, Hub, HubSettings, SubscribeRequest},
};
use uuid::Uuid;

/// Argument that makes this binary measure idle memory only (in a fresh process).
const IDLE_MEMORY: &str = "--idle-memory";

/// An empty log: these subscribes ask for no replay.
struct NoHistory;

impl History for NoHistory {
    async fn since(
        &self,
        _: &[RoomName],
        _: i64,
        _: i64,
        _: std::ops::RangeInclusive<i64>,
        _: u32,
    ) -> anyhow::Result<Vec<StoredMessage>> {
        Ok(Vec::new())
    }

    async fn recent(&self, _: &RoomName, _: i64, _: u32) -> anyhow::Result<Vec<StoredMessage>> {
        Ok(Vec::new())
    }
}

/// A hub with the server's defaults and room for every bench connection.
fn hub(heartbeat: Duration) -> Arc<Hub> {
    Arc::new(Hub::new(HubSettings {
        queue_capacity: 1024,
        heartbeat,
        replay_limit: 1000,
        replay_bytes: 1 << 20,
        streams_per_user: usize::MAX,
        streams_per_session: usize::MAX,
        max_streams: usize::MAX,
        rooms_per_user: usize::MAX,
        presence_coalesce: Duration::ZERO,
        reconnect_rate: 0,
        replays_at_once: 4,
    }))
}

/// Every call into the hub's connection API, in one place: opens a connection for a new
/// user and subscribes it to `rooms` with `filter`, nothing replayed.
async fn subscribed_stream(
    hub: &Arc<Hub>,
    i: usize,
    rooms: &[RoomName],
    filter: Option<EventFilter>,
) -> ConnectionStream {
    let user = UserRef {
        id: Uuid::new_v4(),
        username: Some(format!("user{i}").into()),
    };
    let stream = hub
        .connect(user.clone(), Uuid::new_v4(), None)
        .expect("connect");
    let request = SubscribeRequest::new(stream.connection().id, rooms.to_vec())
        .expect("a valid subscribe")
        .with_filter(filter);
    hub.subscribe(user.id, request, &NoHistory)
        .await
        .expect("subscribe");
    stream
}

async fn deliveries(subscribers: usize, messages: usize) -> f64 {
    let hub = hub(Duration::from_secs(3600));
    let room = RoomName::parse("bench").expect("room name");
    let mut readers = Vec::new();
    for i in 0..subscribers {
        let filter = Some(EventFilter::new([EventName::builtin("message")]));
        let mut s = subscribed_stream(&hub, i, std::slice::from_ref(&room), filter).await;
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
    let body = "x".repeat(120);
    let started = std::time::Instant::now();
    for id in 1..=messages as i64 {
        // Encoding is part of the cost: once per message, shared by every subscriber.
        hub.publish(&StoredMessage {
            id,
            room: Some(room.clone()),
            user: None,
            body: body.clone(),
            sent_at: "2026-01-01T00:00:00.000Z".to_owned(),
            kind: Default::default(),
        });
        // Let every reader drain before the next message, as sockets would.
        tokio::task::yield_now().await;
    }
    let mut delivered = 0;
    for r in readers {
        delivered += r.await.expect("reader task");
    }
    let elapsed = started.elapsed();
    assert_eq!(delivered, subscribers * messages, "every frame delivered");
    elapsed.as_nanos() as f64 / delivered as f64
}

/// Idle connections in a fresh process: PSS before and after opening them (each in one of
/// ten rooms), printed.
async fn idle_memory(connections: usize) {
    let hub = hub(Duration::from_secs(15));
    let rooms: Vec<RoomName> = (0..10)
        .map(|i| RoomName::parse(&format!("r{i}")).expect("room name"))
        .collect();
    let before = common::pss(None);
    let mut streams = Vec::with_capacity(connections);
    for i in 0..connections {
        // Only messages: an idle room sends none, so the queue holds nothing (presence
        // frames of the other joiners would otherwise pile up, as no socket drains them here).
        let only_messages = Some(EventFilter::new([EventName::builtin("message")]));
        let mut s = subscribed_stream(&hub, i, &rooms[i % 10..i % 10 + 1], only_messages).await;
        s.next().await;
        streams.push(s);
    }
    let after = common::pss(None);
    println!(
        "{connections} idle connections in the hub, fresh process: PSS {:.1} MiB before, \
         {:.1} MiB after",
        common::mib(before),
        common::mib(after)
    );
    println!(
        "idle connection in the hub (queue, state, one room, allocator), all in: {:.0} bytes",
        after.saturating_sub(before) as f64 / connections as f64
    );
    drop(streams);
}

fn main() {
    // reqwest builds its TLS setup with every client: it needs the rustls provider.
    roomcast::tls::install_provider();
    let quick = common::quick();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    if common::flag(IDLE_MEMORY) {
        let n = common::arg(IDLE_MEMORY, 20_000usize);
        rt.block_on(idle_memory(n));
        return;
    }
    let rounds: &[(usize, usize)] = if quick {
        &[(100, 200), (1000, 20)]
    } else {
        &[(100, 2000), (1000, 500), (10_000, 50)]
    };
    rt.block_on(async {
        println!("hub fan-out, one thread, HTTP excluded");
        println!(
            "{:>12} {:>10} {:>16}",
            "subscribers", "messages", "ns per delivery"
        );
        for &(subs, msgs) in rounds {
            let ns = deliveries(subs, msgs).await;
            println!("{subs:>12} {msgs:>10} {ns:>16.0}");
        }
    });
    let idle = common::arg("--connections", if quick { 2000usize } else { 20_000 });
    let exe = std::env::current_exe().expect("this bench's path");
    let status = Command::new(exe)
        .args([IDLE_MEMORY, &idle.to_string()])
        .status()
        .expect("re-running this bench for the memory part");
    if !status.success() {
        eprintln!("the idle-memory run failed: {status}");
        std::process::exit(1);
    }
}
