//! History paging with and without reactions: `GET /api/rooms/{room}/messages?before=&limit=50`
//! against a room of plain messages and against one where every message carries 20
//! distinct reactions from 50 users each (1,000 reactions, and as many `reaction` events in
//! the log, per message).
//!
//! `cargo bench --bench reactions` (`-- --messages N` per room, `-- --pages N` timed pages
//! per room, `-- --quick` for a short run). Both rooms are written through the real writer
//! (every reaction one change, group-committed), then the real server binary serves the
//! database and the pages are timed over HTTP, request to last byte; the database's own
//! read of the same pages is timed in-process too, to show which part grows.

#[path = "common/mod.rs"]
mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use roomcast::{
    broker::Broker,
    config::Settings,
    db::{Db, NewPost, Page},
    domain::{
        Emoji, MessageBody, Password, ReactionAction, Role, RoomName, StoredMessage, UserRef,
        Username,
    },
    password::PasswordPool,
    writer::Writer,
};

const USERS: usize = 50;
const EMOJI: usize = 20;
const PAGE: u32 = 50;
const PASSWORD: &str = "password123";

/// Drops what the writer publishes: nobody is listening while the rooms are filled.
struct Nobody;

impl Broker for Nobody {
    fn publish(&self, _event: &StoredMessage) {}
}

/// A small deterministic generator, so every run pages the same places.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at].as_secs_f64() * 1000.0
}

/// One room's figures.
struct Figures {
    http: Vec<Duration>,
    db: Vec<Duration>,
    bytes: usize,
}

fn main() {
    // reqwest builds its TLS setup with every client: it needs the rustls provider.
    roomcast::tls::install_provider();
    let quick = common::quick();
    let messages: usize = common::arg("--messages", if quick { 60 } else { 400 });
    let pages: usize = common::arg("--pages", if quick { 40 } else { 400 });
    assert!(messages > PAGE as usize, "--messages must be above {PAGE}");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/rc.db?mode=rwc", dir.path().display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let (db, plain, reacted) = rt.block_on(fill(&url, messages));
    println!(
        "filled: {messages} messages per room, {} reactions, in {:.1} s",
        messages * USERS * EMOJI,
        started.elapsed().as_secs_f64()
    );
    let server = common::Server::start("127.0.0.1", &[("ROOMCAST__DATABASE__URL", url)]);
    let base = format!("http://127.0.0.1:{}", server.port);
    rt.block_on(async {
        let client = login(&base).await;
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        println!("history page of {PAGE} messages, {pages} pages per room, ms:");
        for (name, ids) in [("plain", &plain), ("reacted", &reacted)] {
            let f = time_pages(&client, &base, &db, name, ids, pages, &mut rng).await;
            report(name, f);
        }
    });
}

/// Registers the users, fills room `plain` with `n` messages and room `reacted` with `n`
/// messages of 20 emoji from 50 users each; the message ids of both rooms.
async fn fill(url: &str, n: usize) -> (Db, Vec<i64>, Vec<i64>) {
    let mut settings = Settings::defaults();
    settings.database.url = url.to_owned();
    let db = Db::connect(&settings.database).await.expect("database");
    let passwords = PasswordPool::new(&settings.password).expect("password pool");
    let password = Password::parse(PASSWORD.to_owned()).expect("password");
    let hash = passwords.hash(password).await.expect("hash");
    let mut users = Vec::new();
    for i in 0..USERS {
        let name = Username::parse(&format!("user{i:02}")).expect("name");
        let user = db
            .create_user(&name, &hash, Role::User)
            .await
            .expect("user");
        users.push(UserRef::from(&user));
    }
    let (writer, task) = Writer::start(&db, Arc::new(Nobody)).await.expect("writer");
    let plain = post_all(&writer, "plain", &users[0], n).await;
    let reacted = post_all(&writer, "reacted", &users[0], n).await;
    let emoji: Vec<Emoji> = ('😀'..)
        .take(EMOJI)
        .map(|c| Emoji::parse(&c.to_string()).expect("emoji"))
        .collect();
    let room = RoomName::parse("reacted").expect("room");
    let changes = reacted
        .iter()
        .flat_map(|&id| (0..EMOJI).flat_map(move |e| (0..USERS).map(move |u| (id, e, u))));
    stream::iter(changes)
        .for_each_concurrent(1024, |(id, e, u)| {
            let change = NewPost::Reaction {
                room: room.clone(),
                by: users[u].clone(),
                message_id: id,
                emoji: emoji[e].clone(),
                action: ReactionAction::Add,
            };
            let writer = writer.clone();
            async move {
                writer.submit(change).await.expect("reaction stored");
            }
        })
        .await;
    drop(writer);
    task.await.expect("writer ends");
    (db, plain, reacted)
}

async fn post_all(writer: &Writer, room: &str, by: &UserRef, n: usize) -> Vec<i64> {
    let room = RoomName::parse(room).expect("room");
    let posts = (0..n).map(|i| {
        let body = MessageBody::parse(&format!("message {i} of {room}"), 4000).expect("body");
        writer.post(Some(room.clone()), Some(by.clone()), body)
    });
    let mut ids: Vec<i64> = futures_util::future::join_all(posts)
        .await
        .into_iter()
        .map(|m| m.expect("stored").id)
        .collect();
    ids.sort_unstable();
    ids
}

async fn login(base: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let res = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({ "username": "user00", "password": PASSWORD }))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 200, "logging in");
    client
}

/// Times `pages` random full pages of `room` (and a few untimed ones first, to warm up).
async fn time_pages(
    client: &reqwest::Client,
    base: &str,
    db: &Db,
    room: &str,
    ids: &[i64],
    pages: usize,
    rng: &mut XorShift,
) -> Figures {
    let name = RoomName::parse(room).expect("room");
    let mut f = Figures {
        http: Vec::with_capacity(pages),
        db: Vec::with_capacity(pages),
        bytes: 0,
    };
    for round in 0..pages + 10 {
        let before = ids[PAGE as usize + rng.below(ids.len() - PAGE as usize)];
        let url = format!("{base}/api/rooms/{room}/messages?before={before}&limit={PAGE}");
        let t = Instant::now();
        let res = client.get(&url).send().await.expect("GET history");
        assert_eq!(res.status(), 200, "history page of {room}");
        let body = res.bytes().await.expect("page body");
        let http = t.elapsed();
        let page = Page {
            before: Some(before),
            after: None,
            limit: PAGE,
        };
        let t = Instant::now();
        let read = db.messages_page(&name, page).await.expect("page read");
        let read_time = t.elapsed();
        assert_eq!(read.len(), PAGE as usize, "a full page of {room}");
        if round >= 10 {
            f.http.push(http);
            f.db.push(read_time);
            f.bytes = body.len();
        }
    }
    f
}

fn report(room: &str, mut f: Figures) {
    f.http.sort_unstable();
    f.db.sort_unstable();
    println!(
        "  {room:<8} HTTP p50 {:>7.2}  p99 {:>7.2}   database read p50 {:>6.2}  p99 {:>6.2}   {:>8} bytes per page",
        percentile(&f.http, 0.50),
        percentile(&f.http, 0.99),
        percentile(&f.db, 0.50),
        percentile(&f.db, 0.99),
        f.bytes
    );
}
