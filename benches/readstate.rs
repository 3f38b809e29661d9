//! The room list and search at size: `GET /api/me/rooms` for a user following 100 rooms,
//! and `GET /api/search` with a one-word, a two-word and a prefix query, over 1,000,000
//! messages in 1,000 rooms written straight into the database; plus the database's size
//! with and without the search index.
//!
//! `cargo bench --bench readstate` (`-- --messages N --rooms N --follow N --requests N`,
//! `-- --quick` for a short run). SQLite always; PostgreSQL too when
//! `ROOMCAST_BENCH_POSTGRES` names a database (a fresh schema is made in it). The messages
//! are inserted in large transactions, then indexed the way the server indexes messages
//! stored before the index existed ([`Db::backfill_search`]); the real server binary
//! serves the database and each request is timed over HTTP, request to last byte.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use roomcast::{
    config::Settings,
    db::Db,
    domain::{Password, Role, Username},
    password::PasswordPool,
};
use uuid::Uuid;

const PASSWORD: &str = "password123";
/// Authors of the generated messages (the reader is not one of them).
const AUTHORS: usize = 20;
/// Messages per insert statement.
const CHUNK: usize = 500;

/// A small deterministic generator, so every run writes the same messages.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The words bodies are made of: a few hundred common ones, used often, and many rare
/// ones (`w0`…), so queries range from thousands of hits to a handful.
fn vocabulary() -> (Vec<String>, usize) {
    let common = "the a to and of in is it you that we for on this be with are have not \
        at deploy deployment server release build test fix bug review merge branch queue \
        latency error metrics database index search message room stream event user \
        token webhook cluster node backup restore config limit cache query page marker";
    let mut words: Vec<String> = common.split_whitespace().map(str::to_owned).collect();
    let common = words.len();
    words.extend((0..20_000).map(|i| format!("w{i}")));
    (words, common)
}

/// A body of 4 to 20 words, common words far more often than rare ones.
fn body(rng: &mut XorShift, words: &[String], common: usize) -> String {
    let n = 4 + rng.below(17);
    let mut out = String::new();
    for _ in 0..n {
        if !out.is_empty() {
            out.push(' ');
        }
        let w = if rng.below(3) == 0 {
            &words[common + rng.below(words.len() - common)]
        } else {
            &words[rng.below(common)]
        };
        out.push_str(w);
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at].as_secs_f64() * 1000.0
}

/// What a run is asked for.
#[derive(Clone, Copy)]
struct Shape {
    messages: usize,
    rooms: usize,
    follow: usize,
    requests: usize,
}

fn main() {
    roomcast::tls::install_provider();
    let quick = common::quick();
    let shape = Shape {
        messages: common::arg("--messages", if quick { 20_000 } else { 1_000_000 }),
        rooms: common::arg("--rooms", if quick { 100 } else { 1_000 }),
        follow: common::arg("--follow", 100),
        requests: common::arg("--requests", if quick { 30 } else { 300 }),
    };
    assert!(shape.follow <= shape.rooms, "--follow is at most --rooms");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{} messages in {} rooms; the reader follows {}; {} timed requests each",
        shape.messages, shape.rooms, shape.follow, shape.requests
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}/rc.db?mode=rwc", dir.path().display());
    run(&rt, "SQLite", &sqlite, shape);
    if let Ok(admin) = std::env::var("ROOMCAST_BENCH_POSTGRES") {
        let url = rt
            .block_on(Db::create_test_schema(&admin))
            .expect("a bench schema (is PostgreSQL running? ROOMCAST_BENCH_POSTGRES)");
        run(&rt, "PostgreSQL", &url, shape);
    } else {
        println!("PostgreSQL: skipped (set ROOMCAST_BENCH_POSTGRES to a database URL)");
    }
}

fn run(rt: &tokio::runtime::Runtime, backend: &str, url: &str, shape: Shape) {
    println!("{backend}:");
    let started = Instant::now();
    let db = rt.block_on(fill(url, shape));
    println!("  filled in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    rt.block_on(async {
        mark_pending(&db).await;
        db.backfill_search().await.expect("search index");
    });
    println!(
        "  search index built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (total, index) = rt.block_on(sizes(&db));
    println!(
        "  database {:.1} MiB with the search index, {:.1} MiB without ({:.1} MiB index)",
        common::mib(total),
        common::mib(total - index),
        common::mib(index)
    );
    let server = common::Server::start("127.0.0.1", &[("ROOMCAST__DATABASE__URL", url.into())]);
    let base = format!("http://127.0.0.1:{}", server.port);
    rt.block_on(async {
        let client = login(&base).await;
        let list = format!("{base}/api/me/rooms");
        time(&client, "GET /api/me/rooms", &[list], shape.requests, |v| {
            v["rooms"].as_array().map_or(0, Vec::len)
        })
        .await;
        for (what, queries) in [
            ("search, one word", ["deploy", "release", "w1234", "marker"]),
            (
                "search, two words",
                ["deploy server", "the fix", "w77 the", "error queue"],
            ),
            ("search, prefix", ["depl", "rel", "w12", "mark"]),
        ] {
            let urls: Vec<String> = queries
                .iter()
                .map(|q| format!("{base}/api/search?q={}", q.replace(' ', "%20")))
                .collect();
            time(&client, what, &urls, shape.requests, |v| {
                v["results"].as_array().map_or(0, Vec::len)
            })
            .await;
        }
    });
    drop(server);
    rt.block_on(db.close());
}

/// Registers the reader and the authors, writes the messages straight into the table
/// (ids ascending, rooms in turn; one in 50 mentions the reader), and enters the first
/// `follow` rooms in the reader's list with their markers half-way.
async fn fill(url: &str, shape: Shape) -> Db {
    let mut settings = Settings::defaults();
    settings.database.url = url.to_owned();
    let db = Db::connect(&settings.database).await.expect("database");
    let passwords = PasswordPool::new(&settings.password).expect("password pool");
    let password = Password::parse(PASSWORD.to_owned()).expect("password");
    let hash = passwords.hash(password).await.expect("hash");
    let reader = db
        .create_user(&Username::parse("reader").expect("name"), &hash, Role::User)
        .await
        .expect("reader");
    let mut authors = Vec::new();
    for i in 0..AUTHORS {
        let name = Username::parse(&format!("author{i:02}")).expect("name");
        authors.push(
            db.create_user(&name, &hash, Role::User)
                .await
                .expect("user"),
        );
    }
    let mention = format!(
        "[{{\"id\":\"{}\",\"username\":\"reader\"}}]",
        reader.id.hyphenated()
    );
    let (words, common_words) = vocabulary();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let sent_at = "2026-12-01T00:00:00Z";
    let mut id = 0_i64;
    while (id as usize) < shape.messages {
        let rows: Vec<(i64, String, Uuid, String, Option<String>)> = (0..CHUNK)
            .take_while(|i| (id as usize) + i < shape.messages)
            .map(|i| {
                let n = id + 1 + i as i64;
                let room = format!("room{:04}", n as usize % shape.rooms);
                let author = authors[rng.below(AUTHORS)].id;
                let mentions = (rng.below(50) == 0).then(|| mention.clone());
                (
                    n,
                    room,
                    author,
                    body(&mut rng, &words, common_words),
                    mentions,
                )
            })
            .collect();
        id += rows.len() as i64;
        insert(&db, &rows, sent_at).await;
    }
    follow(&db, reader.id, shape).await;
    if let Some(pool) = db.pg_pool() {
        sqlx::query("UPDATE message_seq SET v = $1 WHERE id = 1")
            .bind(id)
            .execute(pool)
            .await
            .expect("sequence");
    }
    db
}

type Row = (i64, String, Uuid, String, Option<String>);

async fn insert(db: &Db, rows: &[Row], sent_at: &str) {
    macro_rules! insert_into {
        ($pool:expr, $DB:ty, $body:expr) => {{
            let mut q = sqlx::QueryBuilder::<$DB>::new(
                "INSERT INTO messages (id, room, user_id, body, sent_at, kind, mentions) ",
            );
            q.push_values(rows, |mut b, (id, room, user, text, mentions)| {
                b.push_bind(*id)
                    .push_bind(room.clone())
                    .push_bind(*user)
                    .push_bind($body(text))
                    .push_bind(sent_at.to_owned())
                    .push_bind(0_i32)
                    .push_bind(mentions.clone());
            });
            q.build().execute($pool).await.expect("insert messages");
        }};
    }
    if let Some(pool) = db.sqlite_pool() {
        insert_into!(pool, sqlx::Sqlite, |t: &String| t.clone());
    } else if let Some(pool) = db.pg_pool() {
        insert_into!(pool, sqlx::Postgres, |t: &String| t.as_bytes().to_vec());
    }
}

/// The reader follows rooms 0.. with each marker half-way through its room.
async fn follow(db: &Db, reader: Uuid, shape: Shape) {
    let per_room = (shape.messages / shape.rooms) as i64;
    for r in 0..shape.follow {
        // Room r holds ids r, r + rooms, …: half-way is about messages / 2.
        let marker = (per_room / 2) * shape.rooms as i64 + r as i64;
        let room = format!("room{r:04}");
        let sql = "INSERT INTO read_markers (user_id, room, last_read_id) VALUES ($1, $2, $3)";
        if let Some(pool) = db.sqlite_pool() {
            sqlx::query(sql)
                .bind(reader)
                .bind(room)
                .bind(marker)
                .execute(pool)
                .await
                .expect("follow");
        } else if let Some(pool) = db.pg_pool() {
            sqlx::query(sql)
                .bind(reader)
                .bind(room)
                .bind(marker)
                .execute(pool)
                .await
                .expect("follow");
        }
    }
}

/// Asks the next start (here: [`Db::backfill_search`]) to index every stored message.
async fn mark_pending(db: &Db) {
    let sql = "INSERT INTO search_backfill (id) VALUES (1)";
    if let Some(pool) = db.sqlite_pool() {
        sqlx::query(sql).execute(pool).await.expect("pending");
    } else if let Some(pool) = db.pg_pool() {
        sqlx::query(sql).execute(pool).await.expect("pending");
    }
}

/// `(whole database, search index)` in bytes: on SQLite the pages of every table and of
/// the FTS5 tables (`dbstat`); on PostgreSQL the schema's relations and the `words`
/// column with its GIN index.
async fn sizes(db: &Db) -> (u64, u64) {
    if let Some(pool) = db.sqlite_pool() {
        let (total,): (i64,) = sqlx::query_as("SELECT SUM(pgsize) FROM dbstat")
            .fetch_one(pool)
            .await
            .expect("size");
        let (index,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name LIKE 'message_words%'",
        )
        .fetch_one(pool)
        .await
        .expect("index size");
        (total as u64, index as u64)
    } else if let Some(pool) = db.pg_pool() {
        sqlx::query("VACUUM ANALYZE messages")
            .execute(pool)
            .await
            .expect("vacuum");
        let (total,): (i64,) = sqlx::query_as(
            "SELECT SUM(pg_total_relation_size(c.oid))::BIGINT FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r'",
        )
        .fetch_one(pool)
        .await
        .expect("size");
        let (gin,): (i64,) = sqlx::query_as("SELECT pg_relation_size('messages_words')")
            .fetch_one(pool)
            .await
            .expect("gin size");
        let (column,): (Option<i64>,) =
            sqlx::query_as("SELECT SUM(pg_column_size(words))::BIGINT FROM messages")
                .fetch_one(pool)
                .await
                .expect("column size");
        (total as u64, (gin + column.unwrap_or(0)) as u64)
    } else {
        (0, 0)
    }
}

async fn login(base: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let res = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({ "username": "reader", "password": PASSWORD }))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 200, "logging in");
    client
}

/// Times `n` GETs cycling through `urls` (after a few untimed ones) and prints p50/p99 and
/// the mean number of items each answer held (`count`).
async fn time(
    client: &reqwest::Client,
    what: &str,
    urls: &[String],
    n: usize,
    count: impl Fn(&serde_json::Value) -> usize,
) {
    let mut took = Vec::with_capacity(n);
    let mut items = 0;
    for round in 0..n + 5 {
        let url = &urls[round % urls.len()];
        let t = Instant::now();
        let res = client.get(url).send().await.expect("GET");
        assert_eq!(res.status(), 200, "{url}");
        let body = res.bytes().await.expect("body");
        let elapsed = t.elapsed();
        if round >= 5 {
            took.push(elapsed);
            let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            items += count(&v);
        }
    }
    took.sort_unstable();
    println!(
        "  {what:<20} p50 {:>7.2} ms  p99 {:>7.2} ms   {:.0} items per answer",
        percentile(&took, 0.50),
        percentile(&took, 0.99),
        items as f64 / n as f64
    );
}
