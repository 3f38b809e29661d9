//! The cluster path's cost, one node against two, on this machine: deliveries per second,
//! publish → receive latency and server CPU per delivery (roomcast nodes, and PostgreSQL,
//! which carries the cluster's bus, counted apart).
//!
//! `cargo bench --bench cluster` (options: `-- --streams 2000 --messages 200 --every-ms 2
//! --rounds 3`, or `--quick`). Needs PostgreSQL: `ROOMCAST_BENCH_POSTGRES` names a database
//! the bench may create schemas in (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! each run gets a fresh schema, dropped at the end. Both layouts run on the same machine,
//! alternating, so the two-node figures show the overhead of the cluster path (relays, the
//! tailer's reads, NOTIFY), not more capacity: both nodes share these cores.
//!
//! The subscribers are spread evenly over the nodes (as a round-robin balancer would), the
//! one publisher posts to each node in turn, and every delivery is checked: each stream gets
//! every message once, in id order.

#[path = "common/mod.rs"]
mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::json;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// CPU seconds of every PostgreSQL process (the server and its backends).
fn postgres_cpu() -> f64 {
    common::cpu_secs_sum(&common::postgres_pids())
}

struct Figures {
    deliveries_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    node_cpu_us: f64,
    pg_cpu_us: f64,
}

async fn round(
    nodes: usize,
    url: &str,
    streams: usize,
    messages: usize,
    every: Duration,
) -> Figures {
    let servers: Vec<common::Server> = (0..nodes)
        .map(|_| {
            common::Server::start(
                "127.0.0.1",
                &[
                    ("ROOMCAST__DATABASE__URL", url.to_owned()),
                    ("ROOMCAST__SSE__HEARTBEAT_SECS", "3600".to_owned()),
                ],
            )
        })
        .collect();
    let bases: Vec<String> = servers
        .iter()
        .map(|s| format!("http://127.0.0.1:{}", s.port))
        .collect();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let user = format!("bench{}", now_us() % 1_000_000_000);
    let res = http
        .post(format!("{}/api/register", bases[0]))
        .json(&json!({ "username": user, "password": "bench-password" }))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), 201, "registering the bench user");

    let mut bodies = Vec::with_capacity(streams);
    for i in 0..streams {
        let base = &bases[i % nodes];
        let res = http
            .get(format!("{base}/api/events"))
            .send()
            .await
            .expect("open a stream");
        let mut body = Box::pin(res.bytes_stream());
        let id = common::connection_id(&mut body).await;
        // Through the other node when there is one: the relay is part of the path.
        let via = &bases[(i + 1) % nodes];
        let res = http
            .post(format!("{via}/api/subscribe"))
            .json(&json!({ "connection_id": id, "rooms": ["bench"], "events": ["message"] }))
            .send()
            .await
            .expect("subscribe");
        assert_eq!(res.status(), 200, "subscribe answered");
        bodies.push(body);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let latencies = Arc::new(Mutex::new(Vec::with_capacity(streams * messages)));
    let last_at = Arc::new(Mutex::new(Instant::now()));
    let readers: Vec<_> = bodies
        .into_iter()
        .map(|mut body| {
            let latencies = latencies.clone();
            let last_at = last_at.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let (mut n, mut last_id) = (0, 0i64);
                let mut mine = Vec::with_capacity(messages);
                while n < messages {
                    let Some(Ok(chunk)) = body.next().await else {
                        panic!("a stream ended after {n} of {messages} messages");
                    };
                    buf.extend_from_slice(&chunk);
                    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                        let frame = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 2);
                        let Some(id) = frame.strip_prefix("id: ").and_then(|r| r.lines().next())
                        else {
                            continue;
                        };
                        let id: i64 = id.parse().expect("numeric id");
                        assert!(id > last_id, "ids out of order: {id} after {last_id}");
                        last_id = id;
                        let sent: u64 = frame
                            .split("\"body\":\"")
                            .nth(1)
                            .and_then(|r| r.split('"').next())
                            .and_then(|t| t.parse().ok())
                            .expect("a send time in the body");
                        mine.push(now_us().saturating_sub(sent));
                        n += 1;
                    }
                }
                *last_at.lock() = Instant::now();
                latencies.lock().extend(mine);
            })
        })
        .collect();

    let cpu =
        |servers: &[common::Server]| servers.iter().map(|s| common::cpu_secs(s.pid)).sum::<f64>();
    let (node_before, pg_before) = (cpu(&servers), postgres_cpu());
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    for i in 0..messages {
        tick.tick().await;
        let base = &bases[i % nodes];
        let res = http
            .post(format!("{base}/api/rooms/bench/messages"))
            .json(&json!({ "body": now_us().to_string() }))
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), 201, "posted");
    }
    for r in readers {
        r.await.expect("a reader checked every delivery");
    }
    let elapsed = last_at.lock().duration_since(started).as_secs_f64();
    let (node_cpu, pg_cpu) = (cpu(&servers) - node_before, postgres_cpu() - pg_before);
    let mut lat = std::mem::take(&mut *latencies.lock());
    let delivered = lat.len();
    assert_eq!(
        delivered,
        streams * messages,
        "every stream got every message"
    );
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    Figures {
        deliveries_per_sec: delivered as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        node_cpu_us: node_cpu * 1e6 / delivered as f64,
        pg_cpu_us: pg_cpu * 1e6 / delivered as f64,
    }
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

#[tokio::main]
async fn main() {
    // reqwest builds its TLS setup with every client: it needs the rustls provider.
    roomcast::tls::install_provider();
    let quick = common::quick();
    let streams = common::arg("--streams", if quick { 50usize } else { 2000 });
    let messages = common::arg("--messages", if quick { 10usize } else { 200 });
    let every = Duration::from_millis(common::arg("--every-ms", 2u64));
    let rounds = common::arg("--rounds", if quick { 1usize } else { 3 });
    let admin = common::bench_postgres();

    let mut results: [Vec<Figures>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (slot, nodes) in [1usize, 2].into_iter().enumerate() {
            let url = roomcast::db::Db::create_test_schema(&admin)
                .await
                .expect("a bench schema (is PostgreSQL running? ROOMCAST_BENCH_POSTGRES)");
            results[slot].push(round(nodes, &url, streams, messages, every).await);
            common::drop_schema(&admin, &url).await;
        }
    }
    println!(
        "roomcast on PostgreSQL, {streams} streams in one room, {messages} messages {} ms apart, \
         medians of {rounds} (min–max); nodes on the same 2 cores",
        every.as_millis()
    );
    println!("| | 1 node | 2 nodes | 2 / 1 |\n|---|---:|---:|---:|");
    type Pick = fn(&Figures) -> f64;
    let rows: [(&str, Pick, usize); 6] = [
        ("deliveries per second", |f| f.deliveries_per_sec, 0),
        ("publish → receive p50, ms", |f| f.p50_ms, 1),
        ("publish → receive p99, ms", |f| f.p99_ms, 1),
        ("publish → receive max, ms", |f| f.max_ms, 1),
        ("roomcast CPU per delivery, µs", |f| f.node_cpu_us, 2),
        ("PostgreSQL CPU per delivery, µs", |f| f.pg_cpu_us, 2),
    ];
    for (name, pick, digits) in rows {
        let one = median(results[0].iter().map(pick).collect());
        let two = median(results[1].iter().map(pick).collect());
        let fmt =
            |(m, lo, hi): (f64, f64, f64)| format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})");
        println!(
            "| {name} | {} | {} | {:.2}× |",
            fmt(one),
            fmt(two),
            two.0 / one.0
        );
    }
}
