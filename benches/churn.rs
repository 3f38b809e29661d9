//! Bounded soak: thousands of SSE streams open, subscribe and go away — most closing
//! normally, some vanishing without a FIN — then a check that the server let go of all of
//! them. Prints the server's RSS, PSS, open fds and hub counts (`GET /api/admin/stats`)
//! before, during and after, and exits non-zero when, after the settle wait, connections or
//! subscriptions are left or the fds have not come back near where they started.
//!
//! `cargo bench --bench churn` (`-- --quick`; options `--streams N --wave N --vanish N
//! --heartbeat SECS --settle SECS --fd-slack N --no-netns`). Extra server settings pass
//! through the environment (`ROOMCAST__…`), e.g. a write timeout.
//!
//! How a client vanishes: the bench re-runs itself in a private network namespace
//! (`unshare --net`, or `unshare --user --map-root-user --net` without root), where the
//! server listens. The vanishing streams come from a child process in a namespace of its
//! own, joined to the server's by a veth pair; halfway through the churn the client's end of
//! the link goes down, so from then on nothing the server sends arrives and nothing (no FIN,
//! no ACK) comes back. Where no namespace can be made, the churn runs without vanishing
//! clients and says so.

#[path = "common/mod.rs"]
mod common;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
};

/// Runs as the vanishing client (inside its own network namespace).
const VANISH_CLIENT: &str = "--vanish-client";
/// Already inside the private network namespace.
const IN_NETNS: &str = "--in-netns";
/// The server's end of the veth link and its address.
const HOST_IF: &str = "rcchurn0";
const HOST_ADDR: &str = "10.201.0.1";
/// The vanishing client's end.
const PEER_IF: &str = "rcchurn1";
const PEER_ADDR: &str = "10.201.0.2";
/// Rooms the streams spread over.
const ROOMS: usize = 50;
/// Streams opened at once.
const OPEN_BATCH: usize = 250;

struct Stream {
    id: String,
    _body:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
}

/// What a client needs to reach the server as the bench user.
#[derive(Clone)]
struct Api {
    /// For streams: a connection each.
    streams: reqwest::Client,
    /// For everything else.
    calls: reqwest::Client,
    base: String,
    cookie: String,
}

impl Api {
    fn new(base: String, cookie: String) -> Self {
        // No idle keep-alive connections: they would show in the server's fds and blur
        // what the streams leave behind.
        let client = || {
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client")
        };
        Self {
            streams: client(),
            calls: client(),
            base,
            cookie,
        }
    }

    /// Opens a stream and reads its `connected` frame.
    async fn open(&self) -> Stream {
        let res = self
            .streams
            .get(format!("{}/api/events", self.base))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .expect("open stream");
        assert_eq!(res.status(), 200, "opening a stream");
        let mut body = Box::pin(res.bytes_stream());
        let id = common::connection_id(&mut body).await;
        Stream { id, _body: body }
    }

    /// Opens `n` streams, [`OPEN_BATCH`] at a time.
    async fn open_many(&self, n: usize) -> Vec<Stream> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let batch = (n - out.len()).min(OPEN_BATCH);
            out.extend(futures_util::future::join_all((0..batch).map(|_| self.open())).await);
        }
        out
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::StatusCode {
        self.calls
            .post(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
            .status()
    }

    /// Subscribes each stream to its [`rooms`], except every tenth: streams that never
    /// subscribe must go too.
    async fn subscribe_all(&self, streams: &[Stream], wave: usize) {
        futures_util::future::join_all(streams.iter().enumerate().filter_map(|(i, s)| {
            let rooms = rooms(i, wave)?;
            Some(async move {
                let status = self
                    .post(
                        "/api/subscribe",
                        json!({ "connection_id": s.id, "rooms": rooms, "events": ["message", "presence"] }),
                    )
                    .await;
                assert_eq!(status, 200, "subscribe answered");
            })
        }))
        .await;
    }

    /// Unsubscribes every third stream from its rooms (the others just close).
    async fn unsubscribe_some(&self, streams: &[Stream], wave: usize) {
        futures_util::future::join_all(streams.iter().enumerate().step_by(3).filter_map(
            |(i, s)| {
                let rooms = rooms(i, wave)?;
                Some(async move {
                    let status = self
                        .post(
                            "/api/unsubscribe",
                            json!({ "connection_id": s.id, "rooms": rooms }),
                        )
                        .await;
                    assert_eq!(status, 200, "unsubscribe answered");
                })
            },
        ))
        .await;
    }
}

/// The two rooms stream `i` of wave `wave` joins; `None` for every tenth stream, which
/// stays unsubscribed.
fn rooms(i: usize, wave: usize) -> Option<[String; 2]> {
    (!i.is_multiple_of(10)).then(|| {
        [
            format!("churn-{}", i % ROOMS),
            format!("churn-{}", (i + wave + 1) % ROOMS),
        ]
    })
}

/// The server's hub counts and process figures at one moment.
struct Sample {
    stats: Value,
    rss: u64,
    pss: u64,
    fds: usize,
}

impl Sample {
    fn count(&self, name: &str) -> u64 {
        self.stats[name]
            .as_u64()
            .unwrap_or_else(|| panic!("admin stats without `{name}`: {}", self.stats))
    }

    fn print(&self, label: &str) {
        println!(
            "{label:<24} conns {:>6} subs {:>6} rooms {:>4} users {:>2} | RSS {:>6.1} MiB \
             PSS {:>6.1} MiB fds {:>6}",
            self.count("connections"),
            self.count("subscriptions"),
            self.count("rooms"),
            self.count("users_online"),
            common::mib(self.rss),
            common::mib(self.pss),
            self.fds
        );
    }

    /// What is still held compared with `baseline`, or `None` when nothing is.
    fn leftovers(&self, baseline: &Sample, fd_slack: usize) -> Option<String> {
        let mut left = Vec::new();
        for name in ["connections", "subscriptions", "rooms"] {
            let n = self.count(name);
            if n > 0 {
                left.push(format!("{n} {name}"));
            }
        }
        if self.fds > baseline.fds + fd_slack {
            left.push(format!(
                "{} fds (baseline {} + slack {fd_slack})",
                self.fds, baseline.fds
            ));
        }
        (!left.is_empty()).then(|| left.join(", "))
    }
}

async fn sample(api: &Api, token: &str, pid: u32) -> Sample {
    let res = api
        .calls
        .get(format!("{}/api/admin/stats", api.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("admin stats");
    assert_eq!(res.status(), 200, "admin stats with the bearer token");
    Sample {
        stats: res.json().await.expect("stats JSON"),
        rss: common::rss(Some(pid)),
        pss: common::pss(Some(pid)),
        fds: common::open_fds(pid),
    }
}

/// Runs `cmd args`, stopping the bench with its output when it fails.
async fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `cmd args` runs and succeeds (probing what this machine allows).
fn works(cmd: &str, args: &[&str]) -> bool {
    std::process::Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How to enter a private network namespace here, if at all.
fn netns_prefix() -> Option<&'static [&'static str]> {
    if !works("ip", &["-V"]) {
        return None;
    }
    [&["--net"][..], &["--user", "--map-root-user", "--net"][..]]
        .into_iter()
        .find(|p| works("unshare", &[*p, &["true"][..]].concat()))
}

/// The vanishing client: in its own network namespace, waits for the bench to plug in the
/// link, opens and subscribes its streams, says `ready`, then holds them until killed.
async fn vanish_client() {
    let n = common::arg("--vanish", 0usize);
    let server = common::arg("--server", String::new());
    let cookie = std::env::var("CHURN_COOKIE").expect("CHURN_COOKIE");
    println!("netns-ready");
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    stdin.next_line().await.expect("stdin");
    run("ip", &["link", "set", "lo", "up"]).await;
    run(
        "ip",
        &["addr", "add", &format!("{PEER_ADDR}/24"), "dev", PEER_IF],
    )
    .await;
    run("ip", &["link", "set", PEER_IF, "up"]).await;
    let api = Api::new(format!("http://{server}"), cookie);
    // The link takes a moment to come up on both ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while api
        .calls
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the server is not reachable over the veth link"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let streams = api.open_many(n).await;
    api.subscribe_all(&streams, 0).await;
    println!("ready {}", streams.len());
    // Hold the streams (the bench kills this process at its end); on `down`, cut the link.
    while let Ok(Some(line)) = stdin.next_line().await {
        if line == "down" {
            run("ip", &["link", "set", PEER_IF, "down"]).await;
            println!("down");
        }
    }
}

/// The vanishing client, seen from the bench.
struct Vanishing {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    streams: usize,
}

impl Vanishing {
    /// Starts the client in a namespace of its own, links it to this one and waits until
    /// its streams are open and subscribed.
    async fn start(n: usize, port: u16, cookie: &str) -> Self {
        let exe = std::env::current_exe().expect("this bench's path");
        let mut child = Command::new("unshare")
            .arg("--net")
            .arg("--")
            .arg(exe)
            .args([
                VANISH_CLIENT,
                "--vanish",
                &n.to_string(),
                "--server",
                &format!("{HOST_ADDR}:{port}"),
            ])
            .env("CHURN_COOKIE", cookie)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the vanishing client");
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // Only once it runs is the child surely in its own namespace.
        let line = out.next_line().await.expect("child output");
        assert_eq!(
            line.as_deref(),
            Some("netns-ready"),
            "vanishing client start"
        );
        let pid = child.id().expect("child pid").to_string();
        run(
            "ip",
            &[
                "link", "add", HOST_IF, "type", "veth", "peer", "name", PEER_IF, "netns", &pid,
            ],
        )
        .await;
        run(
            "ip",
            &["addr", "add", &format!("{HOST_ADDR}/24"), "dev", HOST_IF],
        )
        .await;
        run("ip", &["link", "set", HOST_IF, "up"]).await;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").await.expect("telling the child");
        let line = out.next_line().await.expect("child output");
        let streams = line
            .as_deref()
            .and_then(|l| l.strip_prefix("ready "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("vanishing client did not get ready: {line:?}"));
        Self {
            child,
            stdin,
            stdout: out,
            streams,
        }
    }

    /// Takes the client's end of the link down: from then on whatever the server sends it
    /// is dropped on the wire, and nothing (no FIN, no ACK) comes back. The route stays, so
    /// the server's TCP retransmits as it would to a client gone behind a NAT.
    async fn vanish(&mut self) {
        self.stdin
            .write_all(b"down\n")
            .await
            .expect("telling the vanishing client");
        let line = self.stdout.next_line().await.expect("child output");
        assert_eq!(line.as_deref(), Some("down"), "taking the link down");
    }

    /// Kills the client (its namespace and link go with it).
    async fn end(mut self) {
        self.child
            .kill()
            .await
            .expect("killing the vanishing client");
    }
}

async fn churn(netns: Option<&str>) {
    let quick = common::quick();
    let total = common::arg("--streams", if quick { 400usize } else { 5000 });
    let wave = common::arg("--wave", if quick { 100usize } else { 500 }).max(1);
    let vanish = common::arg("--vanish", if quick { 50usize } else { 500 });
    let heartbeat = common::arg("--heartbeat", if quick { 2u64 } else { 5 });
    // Long enough for a write timeout of 30 s (plus a heartbeat) to reclaim vanished streams.
    let settle = common::arg("--settle", if quick { 45u64 } else { 60 });
    let fd_slack = common::arg("--fd-slack", 16usize);
    let token = uuid::Uuid::new_v4().to_string();
    let server = common::Server::start(
        if netns.is_some() {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        },
        &[
            ("ROOMCAST__SSE__HEARTBEAT_SECS", heartbeat.to_string()),
            ("ROOMCAST__ADMIN__API_TOKEN", token.clone()),
        ],
    );
    let pid = server.pid;
    let base = format!("http://127.0.0.1:{}", server.port);
    let res = reqwest::Client::new()
        .post(format!("{base}/api/register"))
        .json(&json!({ "username": "churn", "password": "churn-password" }))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), 201, "registering the bench user");
    let cookie = res
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("roomcast_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned();
    let api = Api::new(base, cookie.clone());

    println!(
        "churn: {total} streams in waves of {wave}, {vanish} vanishing; heartbeat {heartbeat} s, \
         settle wait {settle} s"
    );
    match netns {
        _ if vanish == 0 => println!("vanishing clients: none (--vanish 0)"),
        Some(how) => {
            println!("vanishing clients: their end of a veth link taken down (unshare {how})")
        }
        None => println!("vanishing clients: none (no network namespace could be made here)"),
    }

    // Warm up (database pool, worker buffers), so the baseline is a server that has served.
    let warm = api.open_many(wave.min(32)).await;
    api.subscribe_all(&warm, 0).await;
    drop(warm);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = sample(&api, &token, pid).await;
    before.print("before");

    let started = Instant::now();
    let mut vanishing = match netns {
        Some(_) if vanish > 0 => Some(Vanishing::start(vanish, server.port, &cookie).await),
        _ => None,
    };
    let waves = total.div_ceil(wave);
    let mut opened = 0;
    for w in 0..waves {
        let n = (total - opened).min(wave);
        let streams = api.open_many(n).await;
        api.subscribe_all(&streams, w).await;
        opened += n;
        if w == waves / 2 {
            sample(&api, &token, pid).await.print("during (peak)");
            if let Some(v) = vanishing.as_mut() {
                println!("  {} streams vanish now", v.streams);
                v.vanish().await;
            }
        }
        // A third leave their rooms first; then every client closes its socket.
        api.unsubscribe_some(&streams, w).await;
        drop(streams);
    }
    let churned = started.elapsed().as_secs_f64();
    sample(&api, &token, pid)
        .await
        .print(&format!("after churn ({churned:.1} s)"));

    let settle_started = Instant::now();
    let mut last_print = Instant::now();
    let outcome = loop {
        let now = sample(&api, &token, pid).await;
        let left = now.leftovers(&before, fd_slack);
        let waited = settle_started.elapsed().as_secs();
        if left.is_none() || waited >= settle {
            now.print(&format!("after {waited} s settling"));
            break left;
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            now.print(&format!("  settling, {waited} s"));
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    if let Some(v) = vanishing {
        v.end().await;
    }
    drop(server);
    if let Some(left) = outcome {
        eprintln!("LEFT BEHIND after {settle} s: {left}");
        std::process::exit(1);
    }
    println!("nothing left behind");
}

fn main() {
    // reqwest builds its TLS setup with every client: it needs the rustls provider.
    roomcast::tls::install_provider();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if common::flag(VANISH_CLIENT) {
        rt.block_on(vanish_client());
        return;
    }
    if common::flag(IN_NETNS) {
        let how = std::env::var("CHURN_NETNS").unwrap_or_default();
        rt.block_on(async {
            run("ip", &["link", "set", "lo", "up"]).await;
            churn(Some(&how)).await;
        });
        return;
    }
    if !common::flag("--no-netns")
        && let Some(prefix) = netns_prefix()
    {
        let exe = std::env::current_exe().expect("this bench's path");
        let status = std::process::Command::new("unshare")
            .args(prefix)
            .arg("--")
            .arg(exe)
            .args(std::env::args().skip(1))
            .arg(IN_NETNS)
            .env("CHURN_NETNS", prefix.join(" "))
            .status()
            .expect("re-running the bench in a network namespace");
        std::process::exit(status.code().unwrap_or(1));
    }
    rt.block_on(churn(None));
}
