//! Webhook delivery: throughput (events per second reaching a local receiver that answers
//! at once) and the lag from commit to receiver (p50, p99), for 1 and 10 webhooks.
//!
//! `cargo bench --bench webhooks` (`-- --events N` messages posted, `-- --quick` for a short
//! run). The server runs in this process on SQLite in a temporary directory; messages are
//! posted over HTTP by a few concurrent posters; each webhook posts to its own receiver in
//! this process. The lag of a delivery is its arrival time less the event's `sent_at` (the
//! commit's time stamp, milliseconds, same clock).

#[path = "common/mod.rs"]
mod common;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use roomcast::{Application, config::Settings};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

const ADMIN: &str = "bench-admin-token-0123456789";
const POSTERS: usize = 8;

/// Arrivals at one receiver: (event id, lag in ms, when).
type Arrivals = Arc<Mutex<Vec<(i64, f64, Instant)>>>;

/// A receiver answering `200` at once; returns its URL and what arrives.
async fn receiver() -> (String, Arrivals) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let got: Arrivals = Arc::default();
    let shared = got.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let got = shared.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if read.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if read.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let now = Instant::now();
                    let wall = chrono::Utc::now();
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        let lag = v["data"]["sent_at"]
                            .as_str()
                            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                            .map_or(0.0, |at| {
                                (wall - at.with_timezone(&chrono::Utc))
                                    .num_microseconds()
                                    .unwrap_or(0) as f64
                                    / 1000.0
                            });
                        got.lock()
                            .expect("lock")
                            .push((v["id"].as_i64().unwrap_or(0), lag, now));
                    }
                    if write
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, got)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// One run: `hooks` webhooks, `events` messages posted; prints a line of figures.
async fn run(hooks: usize, events: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = Settings::defaults();
    s.server.port = 0;
    s.server.data_dir = dir.path().to_path_buf();
    s.database.url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    s.admin.api_token = Some(ADMIN.into());
    s.rate_limit.messages_per_sec = 1_000_000;
    s.rate_limit.messages_burst = 1_000_000;
    s.rate_limit.auth_per_min = 1_000_000;
    let app = Application::build(s).await.expect("the app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let mut arrivals = Vec::new();
    for _ in 0..hooks {
        let (url, got) = receiver().await;
        let res = http
            .post(format!("{base}/api/admin/webhooks"))
            .bearer_auth(ADMIN)
            .json(&json!({ "url": url, "events": ["message"] }))
            .send()
            .await
            .expect("webhook");
        assert_eq!(res.status(), 201, "making a webhook");
        arrivals.push(got);
    }
    let poster = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let res = poster
        .post(format!("{base}/api/register"))
        .json(&json!({ "username": "bench", "password": "password123" }))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), 201, "register");
    let started = Instant::now();
    let posts = (0..POSTERS).map(|p| {
        let poster = poster.clone();
        let base = base.clone();
        tokio::spawn(async move {
            for i in (p..events).step_by(POSTERS) {
                let res = poster
                    .post(format!("{base}/api/rooms/bench/messages"))
                    .json(&json!({ "body": format!("event {i}") }))
                    .send()
                    .await
                    .expect("post");
                assert_eq!(res.status(), 201, "post");
            }
        })
    });
    for p in futures_util::future::join_all(posts).await {
        p.expect("poster");
    }
    let posted = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    while arrivals
        .iter()
        .any(|a| a.lock().expect("lock").len() < events)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut lags: Vec<f64> = Vec::new();
    let mut last = started;
    let mut delivered = 0;
    for got in &arrivals {
        let got = got.lock().expect("lock");
        delivered += got.len();
        lags.extend(got.iter().map(|(_, lag, _)| *lag));
        if let Some((_, _, at)) = got.iter().max_by_key(|(_, _, at)| *at) {
            last = last.max(*at);
        }
    }
    lags.sort_by(f64::total_cmp);
    let took = last.duration_since(started).as_secs_f64();
    println!(
        "{hooks:>2} webhook(s), {events} events: posted in {:.2} s ({:.0}/s); delivered {delivered} in {took:.2} s: \
         {:.0} events/s per webhook, {:.0} deliveries/s in all; commit->receiver lag p50 {:.1} ms, p99 {:.1} ms",
        posted.as_secs_f64(),
        events as f64 / posted.as_secs_f64(),
        events as f64 / took,
        delivered as f64 / took,
        percentile(&lags, 0.50),
        percentile(&lags, 0.99),
    );
    assert_eq!(
        delivered,
        hooks * events,
        "every event reached every webhook"
    );
    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::main]
async fn main() {
    // reqwest builds its TLS setup with every client: it needs the rustls provider.
    roomcast::tls::install_provider();
    let quick = common::quick();
    let events = common::arg("--events", if quick { 200usize } else { 5000 });
    for hooks in [1, 10] {
        run(hooks, events).await;
    }
}
