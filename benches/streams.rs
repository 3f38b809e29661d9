//! End to end, over real sockets: server memory per idle SSE stream and server CPU per
//! delivered event, measured from outside the real binary (/proc of the server process).
//!
//! `cargo bench --bench streams` (options: `-- --streams 5000 --messages 100`, or `--quick`).
//! The client side runs in this process; only the server is counted. Memory is the server's
//! PSS, all in (allocator arenas and pages kept after frees included): divided by the
//! streams, and as growth over the same server idle (after start-up and the one
//! registration this tool needs, whose argon2 hash leaves its own arenas behind).

#[path = "common/mod.rs"]
mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use serde_json::{Value, json};

struct Stream {
    id: String,
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
}

async fn open(http: &reqwest::Client, base: &str) -> Stream {
    let res = http
        .get(format!("{base}/api/events"))
        .send()
        .await
        .expect("open stream");
    let mut body = Box::pin(res.bytes_stream());
    let id = common::connection_id(&mut body).await;
    Stream { id, body }
}

#[tokio::main]
async fn main() {
    // reqwest builds its TLS setup with every client: it needs the rustls provider.
    roomcast::tls::install_provider();
    let quick = common::quick();
    let streams = common::arg("--streams", if quick { 200usize } else { 5000 });
    let messages = common::arg("--messages", if quick { 10usize } else { 100 });
    let server = common::Server::start(
        "127.0.0.1",
        &[("ROOMCAST__SSE__HEARTBEAT_SECS", "3600".to_owned())],
    );
    let pid = server.pid;
    let base = format!("http://127.0.0.1:{}", server.port);
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let res = http
        .post(format!("{base}/api/register"))
        .json(&json!({ "username": "bench", "password": "bench-password" }))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), 201, "registering the bench user");

    // The idle server: start-up plus the registration, nothing streamed yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (pss_idle, rss_idle) = (common::pss(Some(pid)), common::rss(Some(pid)));

    let mut open_streams = Vec::with_capacity(streams);
    while open_streams.len() < streams {
        let batch = (streams - open_streams.len()).min(250);
        let more = futures_util::future::join_all((0..batch).map(|_| open(&http, &base))).await;
        let answers = futures_util::future::join_all(more.iter().map(|s| {
            http.post(format!("{base}/api/subscribe"))
                .json(&json!({ "connection_id": s.id, "rooms": ["bench"], "events": ["message"] }))
                .send()
        }))
        .await;
        for a in answers {
            assert_eq!(a.expect("subscribe").status(), 200, "subscribe answered");
        }
        open_streams.extend(more);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (pss_all, rss_all) = (common::pss(Some(pid)), common::rss(Some(pid)));

    // Deliveries: every stream reads every message; count the server's CPU meanwhile.
    let received = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = open_streams
        .into_iter()
        .map(|mut s| {
            let received = received.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut n = 0;
                while n < messages {
                    let Some(Ok(chunk)) = s.body.next().await else {
                        break;
                    };
                    buf.extend_from_slice(&chunk);
                    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                        if buf.starts_with(b"id: ") {
                            n += 1;
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        buf.drain(..end + 2);
                    }
                }
            })
        })
        .collect();
    let cpu_before = common::cpu_secs(pid);
    let started = Instant::now();
    let body = "x".repeat(100);
    for _ in 0..messages {
        let res = http
            .post(format!("{base}/api/rooms/bench/messages"))
            .json(&json!({ "body": body }))
            .send()
            .await
            .expect("post");
        let _: Value = res.json().await.expect("posted");
    }
    for r in readers {
        r.await.expect("reader");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_used = common::cpu_secs(pid) - cpu_before;
    let delivered = received.load(Ordering::Relaxed);
    assert_eq!(
        delivered,
        streams * messages,
        "every stream got every message"
    );

    let n = streams as f64;
    println!("roomcast, {streams} idle SSE streams subscribed to one room (server process only)");
    println!(
        "  idle server (start-up + 1 registration): PSS {:.1} MiB (RSS {:.1} MiB)",
        common::mib(pss_idle),
        common::mib(rss_idle)
    );
    println!(
        "  with the streams open: PSS {:.1} MiB (RSS {:.1} MiB)",
        common::mib(pss_all),
        common::mib(rss_all)
    );
    println!(
        "  memory per idle stream, all in: {:.1} KiB of PSS per stream, {:.1} KiB growth over \
         the idle server",
        pss_all as f64 / n / 1024.0,
        pss_all.saturating_sub(pss_idle) as f64 / n / 1024.0
    );
    println!(
        "  {messages} messages x {streams} streams = {delivered} deliveries in {elapsed:.2} s: \
         {:.2} us server CPU per delivery ({:.0} deliveries/s)",
        cpu_used * 1e6 / delivered as f64,
        delivered as f64 / elapsed
    );
}
