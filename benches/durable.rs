//! Durable messages per second through the group-committing writer, with 1, 16 and 64
//! concurrent posters, and how many messages each real commit carried.
//!
//! `cargo bench --bench durable` (`-- --secs 5` for longer rounds, `-- --quick` for a short
//! run). Every message counted here was committed before its poster got an answer, with the
//! SQLite `synchronous` level read back from the database and printed (2 = FULL: an fsync per
//! commit). Commits are counted by the writer itself (`roomcast_writer_commits_total`, read
//! through a metrics recorder installed here), not inferred from the disk's fsync rate.

#[path = "common/mod.rs"]
mod common;

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use roomcast::{
    broker::Broker,
    config::{Settings, SqliteSync},
    db::Db,
    domain::{MessageBody, RoomName, StoredMessage, UserRef},
    writer::Writer,
};

/// The writer's counter of committed transactions.
const COMMITS: &str = "roomcast_writer_commits_total";
/// The writer's counter of messages stored.
const STORED: &str = "roomcast_messages_stored_total";

/// A recorder that keeps the writer's two counters and drops every other metric.
#[derive(Clone, Default)]
struct WriterCounters {
    commits: Arc<AtomicU64>,
    stored: Arc<AtomicU64>,
}

impl Recorder for WriterCounters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match key.name() {
            COMMITS => Counter::from_arc(self.commits.clone()),
            STORED => Counter::from_arc(self.stored.clone()),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// One round's figures.
struct Round {
    /// Messages acknowledged per second.
    rate: f64,
    /// Transactions committed per second.
    commits_per_sec: f64,
    /// Messages per committed transaction.
    per_commit: f64,
    /// 99th percentile post latency, ms.
    p99_ms: f64,
    /// `PRAGMA synchronous` as the database reports it.
    synchronous: i64,
}

/// Counts what the writer publishes; a stand-in for the hub.
struct Count(AtomicU64);

impl Broker for Count {
    fn publish(&self, _: &StoredMessage) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn fdatasync_rate(dir: &std::path::Path, secs: f64) -> f64 {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).expect("probe file");
    let block = [7u8; 4096];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        f.write_all(&block).expect("write");
        f.sync_data().expect("fdatasync");
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn durable_rate(
    dir: &std::path::Path,
    posters: usize,
    secs: f64,
    counters: &WriterCounters,
) -> Round {
    let mut settings = Settings::defaults().database;
    settings.url = format!("sqlite://{}/bench-{posters}.db?mode=rwc", dir.display());
    settings.sqlite_synchronous = SqliteSync::Full;
    let db = Db::connect(&settings).await.expect("database");
    // Read back rather than trust the setting: this is the level the commits below ran at
    // (the writer's connection is opened with the same options as the pool's).
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(db.sqlite_pool().expect("the bench database is SQLite"))
        .await
        .expect("PRAGMA synchronous");
    let author = db
        .create_user(
            &roomcast::domain::Username::parse("bench").expect("username"),
            "not-a-real-hash",
            roomcast::domain::Role::User,
        )
        .await
        .expect("user");
    let user = UserRef::from(&author);
    let published = Arc::new(Count(AtomicU64::new(0)));
    let (writer, task) = Writer::start(&db, published.clone()).await.expect("writer");
    let commits_before = counters.commits.load(Ordering::Relaxed);
    let stored_before = counters.stored.load(Ordering::Relaxed);
    let room = RoomName::parse("bench").expect("room name");
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..posters)
        .map(|p| {
            let (writer, room, user, latencies) = (
                writer.clone(),
                room.clone(),
                user.clone(),
                latencies.clone(),
            );
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut i = 0;
                while Instant::now() < deadline {
                    let body = MessageBody::parse(&format!("poster {p} message {i}"), 4000)
                        .expect("message body");
                    let t = Instant::now();
                    writer
                        .post(Some(room.clone()), Some(user.clone()), body)
                        .await
                        .expect("durable post");
                    mine.push(t.elapsed());
                    i += 1;
                }
                latencies.lock().extend(mine);
            })
        })
        .collect();
    for h in handles {
        h.await.expect("poster");
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(writer);
    task.await.expect("writer task");
    let n = published.0.load(Ordering::Relaxed);
    let commits = counters.commits.load(Ordering::Relaxed) - commits_before;
    let stored = counters.stored.load(Ordering::Relaxed) - stored_before;
    assert_eq!(
        stored, n,
        "{STORED} disagrees with the messages the writer published"
    );
    assert!(
        commits > 0,
        "the writer reported no commits: does src/db/writer.rs increment {COMMITS}?"
    );
    let mut l = latencies.lock().clone();
    l.sort();
    let p99 = l.get(l.len() * 99 / 100).copied().unwrap_or_default();
    Round {
        rate: n as f64 / elapsed,
        commits_per_sec: commits as f64 / elapsed,
        per_commit: n as f64 / commits as f64,
        p99_ms: p99.as_secs_f64() * 1000.0,
        synchronous,
    }
}

#[tokio::main]
async fn main() {
    // reqwest builds its TLS setup with every client: it needs the rustls provider.
    roomcast::tls::install_provider();
    let counters = WriterCounters::default();
    metrics::set_global_recorder(counters.clone()).expect("installing the metrics recorder");
    let secs: f64 = common::arg("--secs", if common::quick() { 0.3 } else { 3.0 });
    // On the project's disk (target/), not a tmpfs, so fsync means what it means in production.
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let fsyncs = fdatasync_rate(dir.path(), secs.min(3.0));
    println!(
        "disk: {fsyncs:.0} fdatasync/s (4 KiB writes) in {}",
        dir.path().display()
    );
    println!(
        "{:>8} {:>14} {:>10} {:>16} {:>12}",
        "posters", "durable msg/s", "commits/s", "msgs per commit", "p99 ms"
    );
    let mut levels = Vec::new();
    for posters in [1, 16, 64] {
        let r = durable_rate(dir.path(), posters, secs, &counters).await;
        println!(
            "{posters:>8} {:>14.0} {:>10.0} {:>16.1} {:>12.2}",
            r.rate, r.commits_per_sec, r.per_commit, r.p99_ms
        );
        levels.push(r.synchronous);
    }
    println!("PRAGMA synchronous read back from each database: {levels:?} (2 = FULL)");
    if levels.iter().any(|&l| l != 2) {
        eprintln!("not every round ran with synchronous = FULL; these figures are not durable");
        std::process::exit(1);
    }
}
