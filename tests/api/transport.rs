//! Holding up on the open internet: stalled readers, slow bodies, the connection cap, the
//! operational routes and who may scrape `/metrics`. Raw sockets where reqwest would hide the
//! behaviour (it always reads, always sends whole bodies).

use std::time::{Duration, Instant};

use roomcast::{Application, config::Settings};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::helpers::{TestApp, assert_error, single_node_only, spawn_app_with, use_test_database};

const TOKEN: &str = "metrics-token-0123456789";

/// The app's `127.0.0.1:PORT`.
fn addr(app: &TestApp) -> std::net::SocketAddr {
    app.base
        .trim_start_matches("http://")
        .parse()
        .expect("base is http://IP:PORT")
}

/// Reads until the server closes (EOF or reset) or `wait` passes; returns what arrived and
/// whether the connection was closed.
async fn read_to_close(conn: &mut TcpStream, wait: Duration) -> (String, bool) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

/// Status code and raw body of a raw HTTP/1.1 answer.
fn split_answer(raw: &str) -> (u16, &str) {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer in {raw:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    (status, body)
}

/// Status code and JSON body of a raw HTTP/1.1 answer.
fn parse_answer(raw: &str) -> (u16, Value) {
    let (status, body) = split_answer(raw);
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("body {body:?}: {e}"));
    (status, body)
}

/// Sends a head declaring a 16,000-byte JSON body, then one byte every 200 ms, and returns
/// the answer and whether the server closed the connection within 5 s.
async fn trickle_body(app: &TestApp, path: &str, cookie: &str) -> (String, bool) {
    let conn = TcpStream::connect(addr(app)).await.expect("connect");
    let (mut rd, mut wr) = conn.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 16000\r\nCookie: {cookie}\r\n\r\n{{",
        addr(app)
    );
    wr.write_all(head.as_bytes()).await.expect("send head");
    let trickle = tokio::spawn(async move {
        while wr.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let closed = loop {
        match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    trickle.abort();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[tokio::test]
async fn a_login_body_that_trickles_in_gets_408_and_the_connection_is_closed() {
    let app = spawn_app_with(|s| s.server.body_timeout_secs = 1).await;
    let (raw, closed) = trickle_body(&app, "/api/login", "").await;
    let (status, body) = parse_answer(&raw);
    assert_eq!(status, 408, "a trickled body was answered {raw:?}");
    assert_eq!(body["error"]["code"], "request_timeout", "body {body}");
    assert!(closed, "the connection stayed open after the 408");
}

#[tokio::test]
async fn a_message_body_that_trickles_in_gets_408_and_the_connection_is_closed() {
    let app = spawn_app_with(|s| s.server.body_timeout_secs = 1).await;
    let user = app.user("slowpoke").await;
    let (raw, closed) = trickle_body(&app, "/api/rooms/general/messages", &user.cookie()).await;
    let (status, body) = parse_answer(&raw);
    assert_eq!(status, 408, "a trickled message was answered {raw:?}");
    assert_eq!(body["error"]["code"], "request_timeout", "body {body}");
    assert!(closed, "the connection stayed open after the 408");
}

#[tokio::test]
async fn a_head_that_never_completes_is_cut_after_the_configured_head_timeout() {
    let app = spawn_app_with(|s| s.server.head_timeout_secs = 1).await;
    let mut conn = TcpStream::connect(addr(&app)).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send part of a head");
    let started = Instant::now();
    // actix's own default is 5 s: an answer well before that proves the setting is applied.
    let (raw, closed) = read_to_close(&mut conn, Duration::from_secs(4)).await;
    assert!(
        closed,
        "still open {:?} after a 1 s head timeout",
        started.elapsed()
    );
    // actix-http writes this answer itself, before any service runs: it has no body.
    let (status, body) = split_answer(&raw);
    assert_eq!(status, 408, "answer was {raw:?}");
    assert!(
        raw.to_ascii_lowercase().contains("content-length: 0\r\n"),
        "the 408 says its body is empty: {raw:?}"
    );
    assert_eq!(body, "", "the head timeout's 408 has no body: {raw:?}");
}

/// The answers actix-http writes by itself, before the app sees a request, have no body
/// (docs/api.md lists them as bodyless).
#[tokio::test]
async fn protocol_errors_are_answered_without_a_body() {
    let app = spawn_app_with(|_| {}).await;
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(256 * 1024)
    );
    for (request, status) in [("NONSENSE\r\n\r\n".to_owned(), 400), (huge, 431)] {
        let mut conn = TcpStream::connect(addr(&app)).await.expect("connect");
        // The server may answer and close before the whole head is sent.
        let _ = conn.write_all(request.as_bytes()).await;
        let (raw, closed) = read_to_close(&mut conn, Duration::from_secs(5)).await;
        let (got, body) = split_answer(&raw);
        assert_eq!(got, status, "answer was {raw:?}");
        assert!(closed, "the connection stayed open after the {status}");
        assert!(
            raw.to_ascii_lowercase().contains("content-length: 0\r\n"),
            "a {status} says its body is empty: {raw:?}"
        );
        assert_eq!(body, "", "the {status} has no body: {raw:?}");
    }
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    if single_node_only("a node's own sockets: the test balancer sits between") {
        return;
    }
    let app = spawn_app_with(|s| {
        s.server.workers = Some(2);
        s.server.max_connections = 2;
        // The idle connections holding the cap must not be cut by the head timeout.
        s.server.head_timeout_secs = 60;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(addr(&app)).await.expect("connect"));
    }
    // Let the workers take both before the third arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let over = probe.get(format!("{}/healthz", app.base)).send().await;
    assert!(
        over.is_err(),
        "a third connection was served with a cap of 2: {over:?}"
    );
    drop(idle);
    let res = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("served once the held connections closed");
    assert_eq!(res.status(), 200, "healthz after the cap freed up");
}

#[tokio::test]
async fn other_methods_on_the_operational_routes_are_405_with_allow() {
    let app = spawn_app_with(|_| {}).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let res = app
            .client()
            .http
            .post(format!("{}{path}", app.base))
            .send()
            .await
            .expect("POST");
        let allow = res
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        assert_eq!(allow.as_deref(), Some("GET"), "Allow header on POST {path}");
        assert_error(res, 405, "method_not_allowed").await;
    }
}

#[tokio::test]
async fn metrics_need_the_bearer_token_when_one_is_set() {
    let app = spawn_app_with(|s| s.metrics.token = Some(TOKEN.to_owned())).await;
    let url = format!("{}/metrics", app.base);
    let http = reqwest::Client::new();
    let anonymous = http.get(&url).send().await.expect("GET");
    assert_error(anonymous, 401, "unauthorized").await;
    let wrong = http
        .get(&url)
        .bearer_auth("metrics-token-wrong-guess")
        .send()
        .await
        .expect("GET");
    assert_error(wrong, 401, "unauthorized").await;
    let ok = http.get(&url).bearer_auth(TOKEN).send().await.expect("GET");
    assert_eq!(ok.status(), 200, "the right token was refused");
}

/// Starts the app with `metrics.listen` on a free loopback port; returns the app's base URL,
/// the metrics listener's, and the temp dir to keep.
async fn spawn_with_metrics_listener() -> (String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut s = Settings::defaults();
    s.server.port = 0;
    s.server.workers = Some(2);
    s.server.data_dir = dir.path().to_path_buf();
    use_test_database(&mut s.database, dir.path()).await;
    s.metrics.listen = Some("127.0.0.1:0".to_owned());
    let app = Application::build(s).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let metrics = format!(
        "http://127.0.0.1:{}",
        app.metrics_port().expect("a metrics listener")
    );
    tokio::spawn(app.run_until(std::future::pending()));
    (base, metrics, dir)
}

#[tokio::test]
async fn a_metrics_listener_serves_metrics_and_the_main_listener_no_longer_does() {
    let (base, metrics, _dir) = spawn_with_metrics_listener().await;
    let http = reqwest::Client::new();
    let scraped = http
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("GET");
    assert_eq!(scraped.status(), 200, "scrape on the metrics listener");
    let text = scraped.text().await.expect("metrics text");
    assert!(
        text.contains("roomcast_connections"),
        "no roomcast gauge in {text:?}"
    );
    let main = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET");
    assert_error(main, 404, "not_found").await;
}

#[tokio::test]
async fn the_metrics_listener_serves_no_api() {
    let (_base, metrics, _dir) = spawn_with_metrics_listener().await;
    let res = reqwest::Client::new()
        .get(format!("{metrics}/api/rooms"))
        .send()
        .await
        .expect("GET");
    assert_error(res, 404, "not_found").await;
}

/// The TCP state of the server-side socket `server_port` → `client_port` in
/// /proc/net/tcp (`"01"` is ESTABLISHED), or `None` when the kernel holds no such socket.
#[cfg(target_os = "linux")]
fn server_socket_state(server_port: u16, client_port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (port(cols[1]) == Some(server_port) && port(cols[2]) == Some(client_port))
            .then(|| cols[3].to_owned())
    })
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_peer_that_stops_reading_loses_its_socket_within_the_write_timeout() {
    if single_node_only("a node's own sockets: the test balancer sits between") {
        return;
    }
    const WRITE_TIMEOUT: u64 = 3;
    let app = spawn_app_with(|s| {
        s.sse.write_timeout_secs = WRITE_TIMEOUT;
        s.database.sqlite_synchronous = roomcast::config::SqliteSync::Normal;
    })
    .await;
    let user = app.user("stalled").await;

    // A small receive buffer: the window closes after a few KB instead of megabytes.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut conn = socket.connect(addr(&app)).await.expect("connect");
    let client_port = conn.local_addr().expect("local addr").port();
    let head = format!(
        "GET /api/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCookie: {}\r\n\r\n",
        addr(&app),
        user.cookie()
    );
    conn.write_all(head.as_bytes()).await.expect("send head");
    let mut got = String::new();
    let mut buf = [0u8; 1024];
    let connection_id = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("the connected event in time")
            .expect("read");
        assert!(n > 0, "stream closed before `connected`: {got:?}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(id) = got
            .split("\"connection_id\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        {
            break id.to_owned();
        }
    };
    let res = user
        .post(
            "/api/subscribe",
            json!({ "connection_id": connection_id, "rooms": ["general"] }),
        )
        .await;
    assert_eq!(res.status(), 200, "subscribe");

    // From here on the client reads nothing. Far more than both socket buffers can take.
    let flood_started = Instant::now();
    let body = "x".repeat(3900);
    for _ in 0..60 {
        user.say("general", &body).await;
    }
    let flooded_after = flood_started.elapsed();
    assert!(
        flooded_after < Duration::from_secs(WRITE_TIMEOUT),
        "the flood took {flooded_after:?}, longer than the write timeout it tests"
    );
    let state = server_socket_state(addr(&app).port(), client_port);
    assert_eq!(
        state.as_deref(),
        Some("01"),
        "the server socket should still be ESTABLISHED right after the flood"
    );

    let deadline = Instant::now() + Duration::from_secs(WRITE_TIMEOUT + 4);
    while server_socket_state(addr(&app).port(), client_port).is_some() {
        assert!(
            Instant::now() < deadline,
            "the server socket of a peer that stopped reading still exists {:?} after the \
             flood (write timeout {WRITE_TIMEOUT} s)",
            flood_started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(conn);
}

/// `GET /api/events` on a raw socket: the socket, the response head and what
/// of the body arrived with it, read up to the connection id.
async fn raw_stream(app: &TestApp, cookie: &str) -> (TcpStream, String, Vec<u8>, String) {
    let mut conn = TcpStream::connect(addr(app)).await.expect("connect");
    let head = format!(
        "GET /api/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n",
        addr(app)
    );
    conn.write_all(head.as_bytes()).await.expect("send head");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("the connected event in time")
            .expect("read");
        assert!(
            n > 0,
            "stream closed before `connected`: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let (Some(end), Some(id)) = (
            text.find("\r\n\r\n"),
            text.split("\"connection_id\":\"")
                .nth(1)
                .and_then(|rest| rest.split_once('"'))
                .map(|(id, _)| id.to_owned()),
        ) {
            let head = text[..end].to_owned();
            let body = got[end + 4..].to_vec();
            return (conn, head, body, id);
        }
    }
}

/// Reads into `got` until it contains `needle` (panics after 5 s).
async fn read_until(conn: &mut TcpStream, got: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(got).contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{needle:?} never arrived; got {:?}",
                    String::from_utf8_lossy(got)
                )
            })
            .expect("read");
        assert!(
            n > 0,
            "stream closed before {needle:?}: {:?}",
            String::from_utf8_lossy(got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// The chunks of a chunked body that are complete in `body`, each as text.
fn chunks(mut body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size_line = std::str::from_utf8(&body[..line_end]).expect("ascii chunk size");
        let size = usize::from_str_radix(size_line, 16)
            .unwrap_or_else(|e| panic!("chunk size line {size_line:?}: {e}"));
        let start = line_end + 2;
        if body.len() < start + size + 2 {
            break;
        }
        assert_eq!(
            &body[start + size..start + size + 2],
            b"\r\n",
            "a chunk ends with CRLF"
        );
        out.push(String::from_utf8(body[start..start + size].to_vec()).expect("utf-8 chunk"));
        body = &body[start + size + 2..];
    }
    out
}

#[tokio::test]
async fn frames_queued_together_go_out_as_one_chunk() {
    // A window long enough that three posts made at once land in it.
    let app = spawn_app_with(|s| s.sse.write_delay_ms = 400).await;
    let user = app.user("batched").await;
    let (mut conn, head, mut body, id) = raw_stream(&app, &user.cookie()).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "an HTTP/1.1 stream is chunked: {head}"
    );
    user.subscribe_with(
        id.as_str(),
        json!({ "rooms": ["batch"], "events": ["message"] }),
    )
    .await;
    let (a, b, c) = tokio::join!(
        user.say_id("batch", "one"),
        user.say_id("batch", "two"),
        user.say_id("batch", "three"),
    );
    let last = a.max(b).max(c);
    read_until(&mut conn, &mut body, &format!("id: {last}\n")).await;
    read_until(&mut conn, &mut body, "\r\n").await;
    let chunks = chunks(&body);
    assert!(
        chunks[0].contains("event: connected"),
        "the first chunk is the connected event: {chunks:?}"
    );
    let with_messages: Vec<&String> = chunks
        .iter()
        .filter(|c| c.contains("event: message"))
        .collect();
    assert_eq!(
        with_messages.len(),
        1,
        "three messages queued within one write window come in one chunk: {chunks:?}"
    );
    assert_eq!(
        with_messages[0].matches("event: message").count(),
        3,
        "the chunk holds all three: {chunks:?}"
    );
}
