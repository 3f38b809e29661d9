//! `roomcast backup PATH`: a consistent copy of the SQLite database taken while the server
//! writes, which a second server then serves; on PostgreSQL it points at pg_dump, exit 2.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::Value;

use crate::{
    helpers::{Client, TestApp, backend_name, spawn_app_with},
    process::{Server, cli_at},
};

/// `roomcast backup PATH` beside `app`, off the async runtime.
async fn backup(app: &TestApp, path: PathBuf) -> std::process::Output {
    let dir = app.dir.path().to_owned();
    let url = app.settings.database.url.clone();
    tokio::task::spawn_blocking(move || {
        let path = path.to_str().expect("a UTF-8 path").to_owned();
        cli_at(&dir, &url, &["backup", &path], "")
    })
    .await
    .expect("the command ran")
}

/// Every message id of `room`, paging through its history.
async fn all_ids(c: &Client, room: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let res = c
            .get(&format!(
                "/api/rooms/{room}/messages?after={after}&limit=100"
            ))
            .await;
        assert_eq!(res.status(), 200, "history of {room} after {after}");
        let page: Value = res.json().await.expect("history JSON");
        let got: Vec<i64> = page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["id"].as_i64())
            .collect();
        let Some(last) = got.last().copied() else {
            return ids;
        };
        ids.extend(got);
        after = last;
    }
}

#[tokio::test]
async fn a_backup_under_a_stream_of_posts_holds_every_message_acknowledged_before_it() {
    let app = spawn_app_with(|s| {
        s.rate_limit.messages_per_sec = 100_000;
        s.rate_limit.messages_burst = 100_000;
    })
    .await;
    let target = app.dir.path().join("backup.db");
    if backend_name() == "postgres" {
        let out = backup(&app, target).await;
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "on PostgreSQL: exit 2 ({said})");
        assert!(said.contains("pg_dump"), "it names pg_dump: {said}");
        return;
    }
    let alice = app.user("alice").await;
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let poster = {
        let (alice, acked, stop) = (alice.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = alice.say_id("r", &format!("m{n}")).await;
                acked.lock().expect("acked").push(id);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: Vec<i64> = acked.lock().expect("acked").clone();
    assert!(
        !before.is_empty(),
        "messages were acknowledged before the backup"
    );
    let out = backup(&app, target.clone()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    poster.await.expect("the poster");
    assert!(
        out.status.success(),
        "roomcast backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let during = acked.lock().expect("acked").len() - before.len();
    assert!(during > 0, "posts went on while the backup ran");

    let second = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rw", target.display());
    let server = Server::start(second.path(), &[("ROOMCAST__DATABASE__URL", &url)]);
    let reader = server.client();
    let res = reader.login("alice", "password123").await;
    assert_eq!(res.status(), 200, "alice's account is in the backup");
    let restored = all_ids(&reader, "r").await;
    let missing: Vec<&i64> = before.iter().filter(|id| !restored.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} messages acknowledged before the backup are missing: {missing:?}",
        missing.len(),
        before.len()
    );
}

#[tokio::test]
async fn a_backup_never_overwrites_a_file() {
    if backend_name() == "postgres" {
        return;
    }
    let app = spawn_app_with(|_| {}).await;
    let target = app.dir.path().join("taken.db");
    std::fs::write(&target, b"precious").expect("a file");
    let out = backup(&app, target.clone()).await;
    assert_eq!(out.status.code(), Some(1), "refused");
    assert_eq!(
        std::fs::read(&target).expect("the file"),
        b"precious",
        "left as it was"
    );
}
