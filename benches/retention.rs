//! Retention: a sweep of a large log while a client keeps posting. Prints the sweep rate
//! (log rows deleted per second), the worst and p99 latency of the posts made meanwhile
//! (and of posts with no sweep running, for comparison), and the SQLite file size before the
//! sweep, after it, and after new posts refill what it freed.
//!
//! `cargo bench --bench retention` (`-- --messages N` stored before the sweep, 1,000,000 by
//! default; `-- --rooms N`; `-- --keep P` percent of each room kept; `-- --batch N` messages
//! per sweep transaction; `-- --quick` for a short run). In-process: the real writer (group
//! commit, the writer's own connection) and the real sweep (`Db::sweep`, batches on the
//! pool), on a new database file, so `auto_vacuum = incremental` applies.

#[path = "common/mod.rs"]
mod common;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use roomcast::{
    broker::Broker,
    config::Settings,
    db::{Db, Retention},
    domain::{MessageBody, RoomName, StoredMessage},
    writer::Writer,
};

/// Drops what the writer publishes: nobody is listening.
struct Nobody;

impl Broker for Nobody {
    fn publish(&self, _event: &StoredMessage) {}
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    ms(sorted[at])
}

fn main() {
    let quick = common::quick();
    let messages: usize = common::arg("--messages", if quick { 20_000 } else { 1_000_000 });
    let rooms: usize = common::arg("--rooms", 10);
    let keep: usize = common::arg("--keep", 10);
    let batch: u32 = common::arg("--batch", 500);
    assert!(
        rooms > 0 && (1..100).contains(&keep),
        "--rooms > 0, --keep 1..99"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rc.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut settings = Settings::defaults();
        settings.database.url = url;
        let db = Db::connect(&settings.database).await.expect("database");
        let (writer, task) = Writer::start(&db, Arc::new(Nobody)).await.expect("writer");
        let started = Instant::now();
        fill(&writer, rooms, messages, 0).await;
        println!(
            "filled: {messages} messages in {rooms} rooms in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let before = size(&db, &file).await;

        let idle = time_posts(&writer, Duration::from_secs(if quick { 1 } else { 3 })).await;
        report("posts, no sweep", idle, None);

        let per_room = (messages / rooms) * keep / 100;
        let policy = Retention {
            retain_days: 0,
            retain_per_room: u32::try_from(per_room).expect("fits"),
            batch,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let poster = {
            let (writer, stop) = (writer.clone(), stop.clone());
            tokio::spawn(async move { post_until(&writer, &stop).await })
        };
        let t0 = Instant::now();
        let swept = db.sweep(policy).await.expect("sweep").expect("not locked");
        let took = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        let during = poster.await.expect("poster");
        println!(
            "sweep: {} rows in {} batches of up to {batch} in {:.2} s: {:.0} rows/s \
             (each room kept to its newest {per_room})",
            swept.events,
            swept.batches,
            took.as_secs_f64(),
            swept.events as f64 / took.as_secs_f64()
        );
        report("posts during the sweep", during, Some(took));
        let after = size(&db, &file).await;

        let refill = usize::try_from(swept.events).expect("fits");
        fill(&writer, rooms, refill, 1).await;
        let refilled = size(&db, &file).await;
        println!(
            "file: {:.1} MiB before the sweep, {:.1} MiB after it, {:.1} MiB after {refill} \
             new messages",
            common::mib(before),
            common::mib(after),
            common::mib(refilled)
        );
        drop(writer);
        task.await.expect("writer ends");
    });
}

/// Posts `n` messages over `rooms` rooms through the writer, many at once (as many
/// clients would), bodies of about 100 characters.
async fn fill(writer: &Writer, rooms: usize, n: usize, round: usize) {
    let names: Vec<RoomName> = (0..rooms)
        .map(|r| RoomName::parse(&format!("room{r}")).expect("room"))
        .collect();
    stream::iter(0..n)
        .for_each_concurrent(512, |i| {
            let room = names[i % rooms].clone();
            let body = MessageBody::parse(
                &format!("round {round} message {i:>8}: the quick brown fox jumps over the lazy dog, twice over"),
                4000,
            )
            .expect("body");
            async move {
                writer.post(Some(room), None, body).await.expect("stored");
            }
        })
        .await;
}

/// One client posting, one message after another, until `stop`: each post's latency.
async fn post_until(writer: &Writer, stop: &AtomicBool) -> Vec<Duration> {
    let room = RoomName::parse("live").expect("room");
    let body = MessageBody::parse("a post while the sweep runs", 4000).expect("body");
    let mut took = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        writer
            .post(Some(room.clone()), None, body.clone())
            .await
            .expect("stored");
        took.push(t.elapsed());
    }
    took
}

/// As [`post_until`], for `how_long`.
async fn time_posts(writer: &Writer, how_long: Duration) -> Vec<Duration> {
    let stop = AtomicBool::new(false);
    let posting = post_until(writer, &stop);
    tokio::pin!(posting);
    tokio::select! {
        took = &mut posting => took,
        () = tokio::time::sleep(how_long) => {
            stop.store(true, Ordering::Relaxed);
            posting.await
        }
    }
}

fn report(what: &str, mut took: Vec<Duration>, window: Option<Duration>) {
    took.sort_unstable();
    let worst = took.last().copied().map_or(0.0, ms);
    let rate = window.map_or(String::new(), |w| {
        format!(", {:.0} posts/s", took.len() as f64 / w.as_secs_f64())
    });
    println!(
        "{what}: {} posts{rate}, p50 {:.2} ms, p99 {:.2} ms, worst {worst:.2} ms",
        took.len(),
        percentile(&took, 0.50),
        percentile(&took, 0.99),
    );
}

/// The database file's size once the WAL is checkpointed into it.
async fn size(db: &Db, file: &Path) -> u64 {
    let pool = db.sqlite_pool().expect("SQLite");
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await
        .expect("checkpoint");
    std::fs::metadata(file).expect("the database file").len()
}
