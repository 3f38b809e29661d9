//! Test scaffolding: spawn the app, HTTP clients with cookie jars, the error-shape check.
//! Reading streams lives in `sse.rs`.

#![allow(dead_code)]

use std::{
    sync::{Arc, Once},
    time::Duration,
};

use reqwest::cookie::{CookieStore, Jar};
use roomcast::{
    Application,
    config::{DatabaseSettings, Settings},
    db::Db,
    startup::KillSwitch,
};
use serde_json::{Value, json};

use crate::sse::{Conn, Sse};

/// How long a test waits for an event that should come.
pub const WAIT: Duration = Duration::from_secs(5);

/// The bearer token of apps started with [`spawn_app_with_admin`].
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A running roomcast on a random port, with its own data directory.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The settings it runs with.
    pub settings: Settings,
    /// The app's own database pool (close it to make the database stop answering).
    pub db: Db,
    /// Kept alive for the app's lifetime.
    pub dir: tempfile::TempDir,
    /// Its nodes (one unless [`CLUSTER_ENV`] says more); they stop when the test ends.
    pub nodes: Vec<Node>,
}

/// One running roomcast, on a thread and runtime of its own: when the test ends (and its
/// runtime with it) the node still shuts down cleanly and closes its database connections.
/// PostgreSQL caps connections, and a test process starts hundreds of apps.
pub struct Node {
    /// The port it serves on.
    pub port: u16,
    /// Its database handle.
    pub db: Db,
    kill: Option<KillSwitch>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Node {
    /// Builds and starts a node with `settings`.
    pub async fn start(settings: Settings) -> Node {
        let (ready, started) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the node");
            rt.block_on(async move {
                match Application::build(settings).await {
                    Ok(app) => {
                        let _ = ready.send(Ok((app.port(), app.db(), app.kill_switch())));
                        let _ = app
                            .run_until(async {
                                let _ = stopped.await;
                            })
                            .await;
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            });
        });
        let (port, db, kill) = started
            .await
            .expect("the node's thread answered")
            .expect("the node builds");
        Node {
            port,
            db,
            kill: Some(kill),
            stop: Some(stop),
        }
    }

    /// Ends the node as `kill -9` would: no clean shutdown, streams cut, its database
    /// sessions closed.
    pub async fn kill(&mut self) {
        let switch = self.kill.take().expect("a node is killed once");
        switch.kill().await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the app with test defaults (generous auth limits so tests can register freely).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app with [`ADMIN_TOKEN`] as its admin bearer token.
pub async fn spawn_app_with_admin() -> TestApp {
    spawn_app_with(|s| s.admin.api_token = Some(ADMIN_TOKEN.into())).await
}

/// The environment variable that runs the suite on PostgreSQL: the URL of a database the
/// tests may create schemas in (`postgres://postgres@127.0.0.1:5432/roomcast_ci_123`).
pub const PG_ENV: &str = "ROOMCAST_TEST_POSTGRES";

/// `postgres` when the suite runs on PostgreSQL ([`PG_ENV`] set), else `sqlite`.
pub fn backend_name() -> &'static str {
    if std::env::var_os(PG_ENV).is_some() {
        "postgres"
    } else {
        "sqlite"
    }
}

/// Points `db` at a fresh database for an app keeping its data in `dir`: a SQLite file
/// there, or with [`PG_ENV`] set a new schema of that database, so every app starts empty
/// and alone.
pub async fn use_test_database(db: &mut DatabaseSettings, dir: &std::path::Path) {
    match std::env::var(PG_ENV) {
        Ok(base) => {
            db.url = Db::create_test_schema(&base)
                .await
                .unwrap_or_else(|e| panic!("a test schema in {PG_ENV}={base}: {e:#}"));
            // PostgreSQL allows 100 connections; tests run two at a time, some with several
            // apps.
            db.max_connections = 4;
        }
        Err(_) => db.url = format!("sqlite://{}/test.db?mode=rwc", dir.display()),
    }
}

/// The environment variable that runs every test against a cluster of that many nodes
/// behind a round-robin balancer (needs [`PG_ENV`]).
pub const CLUSTER_ENV: &str = "ROOMCAST_TEST_CLUSTER";

/// How many nodes each test app runs as ([`CLUSTER_ENV`]; 1 without it).
pub fn cluster_size() -> usize {
    let n = std::env::var(CLUSTER_ENV).map_or(1, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{CLUSTER_ENV}={v:?} is not a node count"))
    });
    assert!(
        n == 1 || std::env::var_os(PG_ENV).is_some(),
        "{CLUSTER_ENV} needs {PG_ENV}: a cluster shares a PostgreSQL database"
    );
    n
}

/// True (and says so) when the suite runs against a cluster and the calling test checks
/// something that is one node's own: its rate limits and caps (each node enforces its own),
/// its sockets (a balancer sits between), its health. The caller then returns.
pub fn single_node_only(why: &str) -> bool {
    let cluster = cluster_size() > 1;
    if cluster {
        eprintln!("not run against a cluster: {why}");
    }
    cluster
}

/// Starts the app after `tweak` adjusts the settings.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    init_test_log();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut s = Settings::defaults();
    s.server.port = 0;
    s.server.workers = Some(2);
    s.server.data_dir = dir.path().to_path_buf();
    use_test_database(&mut s.database, dir.path()).await;
    s.rate_limit.auth_per_min = 100_000;
    s.rate_limit.messages_per_sec = 100_000;
    s.rate_limit.messages_burst = 100_000;
    s.rate_limit.subscribes_per_sec = 100_000;
    s.rate_limit.subscribes_burst = 100_000;
    s.rate_limit.removals_per_sec = 100_000;
    s.rate_limit.removals_burst = 100_000;
    tweak(&mut s);
    let first = Node::start(s.clone()).await;
    let mut base = format!("http://127.0.0.1:{}", first.port);
    let db = first.db.clone();
    let mut nodes = vec![first];
    // The same app as a cluster: more nodes on the same database, a balancer in front.
    for _ in 1..cluster_size() {
        nodes.push(Node::start(s.clone()).await);
    }
    if nodes.len() > 1 {
        let addrs = nodes
            .iter()
            .map(|n| std::net::SocketAddr::from(([127, 0, 0, 1], n.port)))
            .collect();
        base = format!("http://{}", crate::proxy::round_robin(addrs).await);
    }
    TestApp {
        base,
        settings: s,
        db,
        dir,
        nodes,
    }
}

/// With `TEST_LOG` set (not `0`), the apps' logs go to the test output; `RUST_LOG` filters
/// (default `info`). Installed once per test process.
pub fn init_test_log() {
    // Every reqwest client builds its TLS setup, which needs the process's rustls provider.
    roomcast::tls::install_provider();
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let on = std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0");
        if on {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
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

    /// A request to `path` carrying [`ADMIN_TOKEN`] as its bearer token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// `POST /api/admin/broadcast` that must succeed; the stored broadcast.
    pub async fn broadcast(&self, body: &str) -> Value {
        let res = self
            .admin(reqwest::Method::POST, "/api/admin/broadcast")
            .json(&json!({ "body": body }))
            .send()
            .await
            .expect("POST /api/admin/broadcast");
        assert_eq!(res.status(), 201, "admin broadcast");
        res.json::<Value>().await.expect("broadcast answer")["broadcast"].clone()
    }

    /// Drops the `messages` table under the running app, so storing and reading messages
    /// fail from now on.
    pub async fn drop_messages_table(&self) {
        self.db
            .execute_for_tests("DROP TABLE messages")
            .await
            .expect("drop messages");
    }

    /// `GET /api/admin/stats`.
    pub async fn stats(&self) -> Value {
        let res = self
            .admin(reqwest::Method::GET, "/api/admin/stats")
            .send()
            .await
            .expect("GET /api/admin/stats");
        assert_eq!(res.status(), 200, "admin stats");
        res.json().await.expect("stats answer")
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
        roomcast::tls::install_provider();
        let jar = Arc::new(Jar::default());
        let mut http = reqwest::Client::builder().cookie_provider(jar.clone());
        if cluster_size() > 1 {
            // A new connection per request, so the balancer spreads every request.
            http = http.pool_max_idle_per_host(0);
        }
        Client {
            http: http.build().expect("http client"),
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

    /// Opens the stream with an optional `Last-Event-ID` and reads the `connected` event.
    pub async fn events_from(&self, last_event_id: Option<i64>) -> Sse {
        let mut req = self.http.get(format!("{}/api/events", self.base));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        open_stream(req).await
    }

    /// Opens a stream and subscribes it to `rooms` for `events` (`None`: every event),
    /// reading its own presence joins when its filter lets `presence` through.
    pub async fn listen(&self, rooms: &[&str], events: Option<&[&str]>) -> Sse {
        let mut sse = self.events().await;
        let mut body = json!({ "rooms": rooms });
        if let Some(events) = events {
            body["events"] = json!(events);
        }
        self.subscribe_with(&sse, body).await;
        if events.is_none_or(|e| e.contains(&"presence")) {
            for _ in rooms {
                let own = sse.expect_next("presence").await;
                assert_eq!(own.json()["action"], "join", "own join first: {own:?}");
            }
        }
        sse
    }

    /// Subscribes `conn` to rooms with all events; the answer.
    pub async fn subscribe(&self, conn: &(impl Conn + ?Sized), rooms: &[&str]) -> Value {
        self.subscribe_with(conn, json!({ "rooms": rooms })).await
    }

    /// Subscribes with extra body fields (`events`, `history`, `last_event_id`, …), which
    /// must succeed; the answer.
    pub async fn subscribe_with(&self, conn: &(impl Conn + ?Sized), body: Value) -> Value {
        let res = self.try_subscribe(conn, body).await;
        assert_eq!(res.status(), 200, "subscribe");
        res.json().await.expect("subscribe answer")
    }

    /// `POST /api/subscribe` with `body` (connection id added), the raw response.
    pub async fn try_subscribe(
        &self,
        conn: &(impl Conn + ?Sized),
        mut body: Value,
    ) -> reqwest::Response {
        body["connection_id"] = json!(conn.connection_id());
        self.post("/api/subscribe", body).await
    }

    /// `POST /api/unsubscribe` for `conn` and `rooms`, the raw response.
    pub async fn try_unsubscribe(
        &self,
        conn: &(impl Conn + ?Sized),
        rooms: &[&str],
    ) -> reqwest::Response {
        self.post(
            "/api/unsubscribe",
            json!({ "connection_id": conn.connection_id(), "rooms": rooms }),
        )
        .await
    }

    /// `POST /api/unsubscribe` that must succeed; the answer.
    pub async fn unsubscribe(&self, conn: &(impl Conn + ?Sized), rooms: &[&str]) -> Value {
        let res = self.try_unsubscribe(conn, rooms).await;
        assert_eq!(res.status(), 200, "unsubscribe");
        res.json().await.expect("unsubscribe answer")
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

    /// Posts a message and returns its id.
    pub async fn say_id(&self, room: &str, body: &str) -> i64 {
        self.say(room, body).await["id"]
            .as_i64()
            .expect("a numeric message id")
    }

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
}

/// Sends `req` (a `GET /api/events`), which must open a stream, and reads its `connected`
/// event.
pub async fn open_stream(req: reqwest::RequestBuilder) -> Sse {
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

/// Asserts the contract's error: `status`, a JSON body that is exactly
/// `{"error":{"code","message"}}`, the expected `code` and a non-empty message. Returns
/// the message.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> String {
    let got = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let text = res.text().await.expect("an error body");
    assert_eq!(got, status, "status for expected `{code}` (body: {text})");
    assert!(
        ct.starts_with("application/json"),
        "error content type was {ct:?} (body: {text})"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    let top = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not an object: {body}"));
    assert_eq!(top.len(), 1, "only `error` at the top: {body}");
    let err = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("`error` is not an object: {body}"));
    assert_eq!(err.len(), 2, "code and message only: {body}");
    assert_eq!(body["error"]["code"], code, "error code in {body}");
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("message is not a string: {body}"));
    assert!(!message.is_empty(), "empty error message: {body}");
    message.to_owned()
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

/// A URL for a fresh schema of the [`PG_ENV`] database (every connection made with it uses
/// that schema), for tests that start several nodes on one database; `None` without
/// [`PG_ENV`].
pub async fn postgres_schema_url() -> Option<String> {
    let base = std::env::var(PG_ENV).ok()?;
    Some(
        Db::create_test_schema(&base)
            .await
            .unwrap_or_else(|e| panic!("a test schema in {PG_ENV}={base}: {e:#}")),
    )
}
