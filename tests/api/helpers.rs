//! Test scaffolding: spawn the app, HTTP clients with cookie jars, an SSE frame reader.

#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use reqwest::cookie::{CookieStore, Jar};
use roomcast::{Application, config::Settings};
use serde_json::{Value, json};

/// How long a test waits for an event that should come.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running roomcast on a random port, with its own data directory.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The settings it runs with.
    pub settings: Settings,
    /// Kept alive for the app's lifetime.
    pub dir: tempfile::TempDir,
}

/// Starts the app with test defaults (generous auth limits so tests can register freely).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `tweak` adjusts the settings.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut s = Settings::defaults();
    s.server.port = 0;
    s.server.workers = Some(2);
    s.server.data_dir = dir.path().to_path_buf();
    s.database.url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
    s.rate_limit.auth_per_min = 100_000;
    s.rate_limit.messages_per_sec = 100_000;
    s.rate_limit.messages_burst = 100_000;
    tweak(&mut s);
    let app = Application::build(s.clone()).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        base,
        settings: s,
        dir,
    }
}

impl TestApp {
    /// A client with an empty cookie jar.
    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    /// A client logged in as a freshly registered `name`.
    pub async fn user(&self, name: &str) -> Client {
        let c = self.client();
        let res = c.register(name, "password123").await;
        assert_eq!(res.status(), 201, "registering {name}");
        c
    }
}

/// An HTTP client bound to one app, with its own cookie jar.
#[derive(Clone)]
pub struct Client {
    /// The underlying client (cookies kept).
    pub http: reqwest::Client,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Its cookies.
    pub jar: Arc<Jar>,
}

impl Client {
    /// A client for the server at `base`, with an empty cookie jar.
    pub fn new(base: &str) -> Self {
        let jar = Arc::new(Jar::default());
        Client {
            http: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .build()
                .expect("http client"),
            base: base.to_owned(),
            jar,
        }
    }

    /// The `Cookie` header this client would send now.
    pub fn cookie(&self) -> String {
        let url = self.base.parse().expect("base url");
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().expect("ascii cookie").to_owned())
            .unwrap_or_default()
    }

    /// A GET carrying exactly `cookie`, from a client without a jar.
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .expect("GET")
    }

    /// GET a path.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    /// POST JSON to a path.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    /// `POST /api/register`.
    pub async fn register(&self, username: &str, password: &str) -> reqwest::Response {
        self.post(
            "/api/register",
            json!({ "username": username, "password": password }),
        )
        .await
    }

    /// `POST /api/login`.
    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post(
            "/api/login",
            json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Opens `GET /api/events` and reads the `connected` event.
    pub async fn events(&self) -> Sse {
        self.events_from(None).await
    }

    /// Opens the stream with an optional `Last-Event-ID`.
    pub async fn events_from(&self, last_event_id: Option<i64>) -> Sse {
        let mut req = self.http.get(format!("{}/api/events", self.base));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let res = req.send().await.expect("GET /api/events");
        assert_eq!(res.status(), 200, "opening the stream");
        let mut sse = Sse::new(res);
        let first = sse.next().await.expect("a first event");
        assert_eq!(first.event, "connected", "the first event is `connected`");
        sse.connection_id = first.json()["connection_id"]
            .as_str()
            .expect("connection_id")
            .to_owned();
        sse
    }

    /// Subscribes `sse` to rooms with all events.
    pub async fn subscribe(&self, sse: &Sse, rooms: &[&str]) -> Value {
        self.subscribe_with(sse, json!({ "rooms": rooms })).await
    }

    /// Subscribes with extra body fields (`events`, `history`, `last_event_id`, …).
    pub async fn subscribe_with(&self, sse: &Sse, mut body: Value) -> Value {
        body["connection_id"] = json!(sse.connection_id);
        let res = self.post("/api/subscribe", body).await;
        assert_eq!(res.status(), 200, "subscribe");
        res.json().await.expect("subscribe answer")
    }

    /// Posts a message and returns the stored `Message`.
    pub async fn say(&self, room: &str, body: &str) -> Value {
        let res = self
            .post(
                &format!("/api/rooms/{room}/messages"),
                json!({ "body": body }),
            )
            .await;
        assert_eq!(res.status(), 201, "posting to {room}");
        res.json::<Value>().await.expect("message answer")["message"].clone()
    }
}

/// Asserts the contract's error shape, status and code; returns the message.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(res.status(), status, "status for expected `{code}`");
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "error content type was {ct:?}"
    );
    let body: Value = res.json().await.expect("error body is JSON");
    let obj = body.as_object().expect("error body is an object");
    assert_eq!(obj.len(), 1, "only `error` at the top: {body}");
    assert_eq!(body["error"]["code"], code, "error code in {body}");
    let message = body["error"]["message"].as_str().expect("a message string");
    assert!(!message.is_empty(), "empty error message");
    assert_eq!(
        body["error"].as_object().unwrap().len(),
        2,
        "code and message only: {body}"
    );
    message.to_owned()
}

/// One SSE event (or comment) as read off the wire.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// `id:` field.
    pub id: Option<String>,
    /// `event:` field (`message` when absent, as in browsers); empty for a comment.
    pub event: String,
    /// `data:` lines joined by `\n`.
    pub data: String,
    /// `retry:` field.
    pub retry: Option<String>,
    /// The comment text for `: ping` style frames.
    pub comment: Option<String>,
    /// The frame exactly as received, blank line included.
    pub raw: String,
}

impl Event {
    /// `data` as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("data {:?}: {e}", self.data))
    }

    /// The `id:` as a number.
    pub fn id_num(&self) -> i64 {
        self.id
            .as_deref()
            .expect("event has an id")
            .parse()
            .expect("numeric id")
    }
}

/// Reads SSE frames from a streaming response.
pub struct Sse {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
    /// From the `connected` event.
    pub connection_id: String,
    /// Raw text received so far (for framing assertions).
    pub raw: String,
}

impl Sse {
    fn new(res: reqwest::Response) -> Self {
        Self {
            stream: Box::pin(res.bytes_stream()),
            buf: String::new(),
            connection_id: String::new(),
            raw: String::new(),
        }
    }

    /// The next frame (event or comment), waiting at most [`WAIT`]; `None` at end of stream
    /// or on timeout.
    pub async fn next(&mut self) -> Option<Event> {
        self.next_within(WAIT).await
    }

    /// The next frame, waiting at most `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                return Some(parse_frame(&frame));
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    let text = std::str::from_utf8(&chunk).expect("utf-8 stream");
                    self.raw.push_str(text);
                    self.buf.push_str(text);
                }
                Ok(Some(Err(_))) | Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next non-comment event, skipping `: ping`s.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            let e = self.next().await?;
            if e.comment.is_none() {
                return Some(e);
            }
        }
    }

    /// Skips events until one named `name` arrives; panics after [`WAIT`].
    pub async fn expect(&mut self, name: &str) -> Event {
        loop {
            match self.next_event().await {
                Some(e) if e.event == name => return e,
                Some(_) => continue,
                None => panic!("no `{name}` event arrived"),
            }
        }
    }

    /// Asserts nothing but pings arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_within(left).await {
                Some(e) if e.comment.is_some() => continue,
                Some(e) => panic!("expected nothing, got {e:?}"),
                None => return,
            }
        }
    }

    /// True when the server ended the stream within `wait`.
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.raw.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Some(Err(_))) | Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}

fn parse_frame(frame: &str) -> Event {
    let mut e = Event {
        raw: frame.to_owned(),
        ..Event::default()
    };
    let mut data = Vec::new();
    for line in frame.trim_end_matches('\n').split('\n') {
        if let Some(c) = line.strip_prefix(':') {
            e.comment = Some(c.trim().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => e.id = Some(value.to_owned()),
            "event" => e.event = value.to_owned(),
            "data" => data.push(value.to_owned()),
            "retry" => e.retry = Some(value.to_owned()),
            other => panic!("unknown SSE field {other:?} in {frame:?}"),
        }
    }
    if e.comment.is_none() && e.event.is_empty() {
        e.event = "message".to_owned();
    }
    e.data = data.join("\n");
    e
}

// ---- Additions for the stream, subscribe and rooms tests. ----

impl TestApp {
    /// `POST /api/admin/broadcast` with the bearer `token` (set `admin.api_token` first).
    pub async fn broadcast(&self, token: &str, body: &str) -> Value {
        let res = reqwest::Client::new()
            .post(format!("{}/api/admin/broadcast", self.base))
            .bearer_auth(token)
            .json(&json!({ "body": body }))
            .send()
            .await
            .expect("POST /api/admin/broadcast");
        assert_eq!(res.status(), 201, "admin broadcast");
        res.json::<Value>().await.expect("broadcast answer")["broadcast"].clone()
    }
}

impl Client {
    /// `GET /api/me`'s user.
    pub async fn me(&self) -> Value {
        let res = self.get("/api/me").await;
        assert_eq!(res.status(), 200, "GET /api/me");
        res.json::<Value>().await.expect("me answer")["user"].clone()
    }

    /// `{"id","username"}` of this client's user, as events show it.
    pub async fn user_ref(&self) -> Value {
        let me = self.me().await;
        json!({ "id": me["id"], "username": me["username"] })
    }

    /// `GET /api/rooms`'s `rooms` array.
    pub async fn rooms(&self) -> Vec<Value> {
        let res = self.get("/api/rooms").await;
        assert_eq!(res.status(), 200, "GET /api/rooms");
        let body: Value = res.json().await.expect("rooms answer");
        body["rooms"].as_array().expect("rooms array").clone()
    }

    /// The `GET /api/rooms` entry for `room`, if listed.
    pub async fn room_info(&self, room: &str) -> Option<Value> {
        self.rooms().await.into_iter().find(|r| r["name"] == room)
    }

    /// Usernames from `GET /api/rooms/{room}/presence`.
    pub async fn presence_names(&self, room: &str) -> Vec<String> {
        let res = self.get(&format!("/api/rooms/{room}/presence")).await;
        assert_eq!(res.status(), 200, "GET presence of {room}");
        let body: Value = res.json().await.expect("presence answer");
        body["users"]
            .as_array()
            .expect("users array")
            .iter()
            .map(|u| u["username"].as_str().expect("username").to_owned())
            .collect()
    }

    /// `POST /api/rooms/{room}/events`.
    pub async fn custom(&self, room: &str, event: &str, data: Value) -> reqwest::Response {
        self.post(
            &format!("/api/rooms/{room}/events"),
            json!({ "event": event, "data": data }),
        )
        .await
    }

    /// Posts a custom event that must be accepted.
    pub async fn send_custom(&self, room: &str, event: &str, data: Value) {
        let res = self.custom(room, event, data).await;
        assert_eq!(res.status(), 202, "custom `{event}` to {room}");
    }

    /// `POST /api/subscribe` with `body` (connection id added), the raw response.
    pub async fn try_subscribe(&self, sse: &Sse, mut body: Value) -> reqwest::Response {
        body["connection_id"] = json!(sse.connection_id);
        self.post("/api/subscribe", body).await
    }

    /// `POST /api/unsubscribe` that must succeed; the answer.
    pub async fn unsubscribe(&self, sse: &Sse, rooms: &[&str]) -> Value {
        let res = self
            .post(
                "/api/unsubscribe",
                json!({ "connection_id": sse.connection_id, "rooms": rooms }),
            )
            .await;
        assert_eq!(res.status(), 200, "unsubscribe");
        res.json().await.expect("unsubscribe answer")
    }
}

impl Sse {
    /// The next non-comment event, which must be named `name`.
    pub async fn expect_next(&mut self, name: &str) -> Event {
        match self.next_event().await {
            Some(e) if e.event == name => e,
            Some(e) => panic!("expected `{name}` next, got {e:?}"),
            None => panic!("expected `{name}` next, got nothing (stream ended or timed out)"),
        }
    }
}

/// Checks the contract's error shape with `status`; returns the code.
pub async fn assert_error_status(res: reqwest::Response, status: u16) -> String {
    assert_eq!(res.status(), status, "status");
    let body: Value = res.json().await.expect("error body is JSON");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "only `error` at the top: {body}"
    );
    let err = body["error"].as_object().expect("`error` object");
    assert_eq!(err.len(), 2, "code and message only: {body}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message: {body}"
    );
    err["code"].as_str().expect("a code string").to_owned()
}

/// Polls `check` until it is true, failing with `what` after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
