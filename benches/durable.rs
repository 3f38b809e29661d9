//! Durable messages per second through the group-committing writer, with 1, 16 and 64
//! concurrent posters, beside the disk's own fdatasync rate measured in the same run.
//!
//! `cargo bench --bench durable` (add `-- --secs 5` for longer rounds). Every message counted
//! here was committed with SQLite `synchronous = FULL` (an fsync per commit) before its
//! poster got an answer.

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use roomcast::{
    broker::Broker,
    config::{Settings, SqliteSync},
    db::{Db, StoredMessage, writer::Writer},
    domain::{MessageBody, RoomName, UserRef},
};

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

async fn durable_rate(dir: &std::path::Path, posters: usize, secs: f64) -> (f64, f64) {
    let mut settings = Settings::defaults().database;
    settings.url = format!("sqlite://{}/bench-{posters}.db?mode=rwc", dir.display());
    settings.sqlite_synchronous = SqliteSync::Full;
    let db = Db::connect(&settings).await.expect("database");
    let author = db
        .create_user(
            &roomcast::domain::Username::parse("bench").unwrap(),
            "not-a-real-hash",
            roomcast::domain::Role::User,
        )
        .await
        .expect("user");
    let user = UserRef::from(&author);
    let published = Arc::new(Count(AtomicU64::new(0)));
    let (writer, task) = Writer::start(&db, published.clone()).await.expect("writer");
    let room = RoomName::parse("bench").unwrap();
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
                    let body =
                        MessageBody::parse(&format!("poster {p} message {i}"), 4000).unwrap();
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
    let mut l = latencies.lock().clone();
    l.sort();
    let p99 = l.get(l.len() * 99 / 100).copied().unwrap_or_default();
    (n as f64 / elapsed, p99.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let secs: f64 = std::env::args()
        .skip_while(|a| a != "--secs")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    // On the project's disk (target/), not a tmpfs, so fsync means what it means in production.
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let fsyncs = fdatasync_rate(dir.path(), secs.min(3.0));
    println!(
        "disk: {fsyncs:.0} fdatasync/s (4 KiB writes) in {}",
        dir.path().display()
    );
    println!(
        "{:>8} {:>14} {:>16} {:>12}",
        "posters", "durable msg/s", "msgs per fsync", "p99 ms"
    );
    for posters in [1, 16, 64] {
        let (rate, p99) = durable_rate(dir.path(), posters, secs).await;
        println!(
            "{posters:>8} {rate:>14.0} {:>16.1} {p99:>12.2}",
            rate / fsyncs
        );
    }
}
