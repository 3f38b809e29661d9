//! End to end, over real sockets: server memory per idle SSE stream and server CPU per
//! delivered event, measured from outside the real binary (/proc of the server process).
//!
//! `cargo bench --bench streams` (options: `-- --streams 5000 --messages 100`). The client
//! side runs in this process; only the server's RSS and CPU time are counted.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use serde_json::{Value, json};

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of a process, bytes.
fn rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| {
            v.trim()
                .trim_end_matches(" kB")
                .trim()
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(0)
        * 1024
}

/// User + system CPU time of a process, seconds.
fn cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`; utime and stime are the 14th and 15th overall.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

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
    let mut buf = String::new();
    while !buf.contains("\n\n") {
        let chunk = body.next().await.expect("connected frame").expect("bytes");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
    let id = buf
        .split("\"connection_id\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("connection id")
        .to_owned();
    Stream { id, body }
}

#[tokio::main]
async fn main() {
    let streams = arg("--streams", 5000);
    let messages = arg("--messages", 100);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .current_dir(dir.path())
        .env("ROOMCAST__SERVER__PORT", "0")
        .env("ROOMCAST__SERVER__DATA_DIR", dir.path())
        .env(
            "ROOMCAST__DATABASE__URL",
            format!("sqlite://{}/rc.db?mode=rwc", dir.path().display()),
        )
        .env("ROOMCAST__RATE_LIMIT__MESSAGES_PER_SEC", "1000000")
        .env("ROOMCAST__RATE_LIMIT__MESSAGES_BURST", "1000000")
        .env("ROOMCAST__SSE__HEARTBEAT_SECS", "3600")
        .env("RUST_LOG", "roomcast=info,actix_server=warn")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let pid = server.id();
    let mut lines = BufReader::new(server.stderr.take().expect("stderr")).lines();
    let port = loop {
        let line = lines.next().expect("server output").expect("line");
        if let Some(rest) = line.split("port=").nth(1) {
            break rest
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://127.0.0.1:{port}");
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
    assert_eq!(res.status(), 201);

    // Warm up, then measure the memory that each further idle, subscribed stream adds.
    let warm = 200.min(streams / 10);
    let mut open_streams = Vec::with_capacity(streams);
    let mut opened = 0;
    let (mut rss_base, mut base_count) = (0, 0);
    while opened < streams {
        let batch = (streams - opened).min(250);
        let more = futures_util::future::join_all((0..batch).map(|_| open(&http, &base))).await;
        futures_util::future::join_all(more.iter().map(|s| {
            http.post(format!("{base}/api/subscribe"))
                .json(&json!({ "connection_id": s.id, "rooms": ["bench"], "events": ["message"] }))
                .send()
        }))
        .await;
        opened += batch;
        open_streams.extend(more);
        if opened >= warm && rss_base == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            rss_base = rss(pid);
            base_count = opened;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_all = rss(pid);
    let per_stream = (rss_all.saturating_sub(rss_base)) as f64 / (streams - base_count) as f64;

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
    let cpu_before = cpu(pid);
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
    let cpu_used = cpu(pid) - cpu_before;
    let delivered = received.load(Ordering::Relaxed);
    assert_eq!(
        delivered,
        streams * messages,
        "every stream got every message"
    );

    println!("roomcast, {streams} idle SSE streams subscribed to one room (server process only)");
    println!(
        "  memory per idle stream: {:.1} KiB  (RSS {:.1} MiB with all open)",
        per_stream / 1024.0,
        rss_all as f64 / 1048576.0
    );
    println!(
        "  {messages} messages x {streams} streams = {delivered} deliveries in {elapsed:.2} s: \
         {:.2} us server CPU per delivery ({:.0} deliveries/s)",
        cpu_used * 1e6 / delivered as f64,
        delivered as f64 / elapsed
    );
    let _ = server.kill();
    let _ = server.wait();
}
