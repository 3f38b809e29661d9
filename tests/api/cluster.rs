//! Several nodes on one PostgreSQL database, in this test process: each test starts two
//! or three nodes on a fresh schema of `ROOMCAST_TEST_POSTGRES` (see `.ci/run`) and talks
//! to each node directly. Without that variable the tests say so and pass nothing: they
//! need a PostgreSQL server.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use roomcast::config::Settings;
use serde_json::{Value, json};

use crate::{
    helpers::{
        ADMIN_TOKEN, Client, Node, WAIT, assert_error, eventually, init_test_log,
        postgres_schema_url,
    },
    process::operator,
    sse::Sse,
};

/// How long a killed node may take to leave everyone's presence, with the test timings
/// below (heartbeat 200 ms, crashed after 1 s): the bound plus generous slack for a loaded
/// machine.
const DEAD_WITHIN: Duration = Duration::from_secs(6);

/// Nodes on one database schema.
struct TestCluster {
    nodes: Vec<TestNode>,
    /// The database URL every node uses.
    url: String,
}

struct TestNode {
    base: String,
    node: Node,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `n` nodes, or `None` when no PostgreSQL is configured.
    async fn start(n: usize) -> Option<Self> {
        Self::start_with(n, |_, _| {}).await
    }

    /// Starts `n` nodes, `tweak(i, settings)` adjusting node `i`'s settings.
    async fn start_with(n: usize, tweak: impl Fn(usize, &mut Settings)) -> Option<Self> {
        init_test_log();
        let Some(url) = postgres_schema_url().await else {
            eprintln!("ROOMCAST_TEST_POSTGRES is not set: skipping a cluster test");
            return None;
        };
        let mut nodes = Vec::new();
        for _ in 0..n {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut s = Settings::defaults();
            s.server.port = 0;
            s.server.workers = Some(2);
            s.server.data_dir = dir.path().to_path_buf();
            s.database.url = url.clone();
            s.database.max_connections = 6;
            s.admin.api_token = Some(ADMIN_TOKEN.into());
            s.rate_limit.auth_per_min = 100_000;
            s.rate_limit.messages_per_sec = 100_000;
            s.rate_limit.messages_burst = 100_000;
            s.rate_limit.subscribes_per_sec = 100_000;
            s.rate_limit.subscribes_burst = 100_000;
            s.rate_limit.removals_per_sec = 100_000;
            s.rate_limit.removals_burst = 100_000;
            s.cluster.heartbeat_ms = 200;
            s.cluster.crashed_after_secs = 1;
            s.cluster.hung_after_secs = 3;
            tweak(nodes.len(), &mut s);
            let node = Node::start(s).await;
            nodes.push(TestNode {
                base: format!("http://127.0.0.1:{}", node.port),
                node,
                _dir: dir,
            });
        }
        Some(Self { nodes, url })
    }

    fn base(&self, node: usize) -> &str {
        &self.nodes[node].base
    }

    /// A new user registered on `node`.
    async fn user(&self, node: usize, name: &str) -> Client {
        let c = Client::new(self.base(node));
        let res = c.register(name, "password123").await;
        assert_eq!(res.status(), 201, "registering {name}");
        c
    }

    /// Ends `node` as `kill -9` would.
    async fn kill(&mut self, node: usize) {
        self.nodes[node].node.kill().await;
    }

    fn admin(&self, node: usize, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.base(node)))
            .bearer_auth(ADMIN_TOKEN)
    }
}

/// The same user (cookie jar) talking to another node.
fn at(client: &Client, base: &str) -> Client {
    Client {
        http: client.http.clone(),
        base: base.to_owned(),
        jar: client.jar.clone(),
    }
}

/// Reads `n` `message` events; their ids and bodies.
async fn messages(sse: &mut Sse, n: usize) -> Vec<(i64, String)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let e = sse.expect("message").await;
        out.push((
            e.id_num(),
            e.json()["body"].as_str().expect("body").to_owned(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_posted_on_one_node_arrives_on_another_in_order() {
    let Some(c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let bob = c.user(1, "bob").await;
    let mut stream = bob.listen(&["r"], Some(&["message"])).await;
    let mut posted = Vec::new();
    for i in 0..20 {
        posted.push((ann.say_id("r", &format!("m{i}")).await, format!("m{i}")));
    }
    assert_eq!(
        messages(&mut stream, 20).await,
        posted,
        "node B delivers node A's messages, all of them, in id order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_held_on_one_node_is_subscribed_through_another() {
    let Some(c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let ann_on_b = at(&ann, c.base(1));
    let mut stream = ann.events().await;
    let answer = ann_on_b.subscribe(&stream, &["r"]).await;
    assert_eq!(answer["rooms"], json!(["r"]), "relayed answer: {answer}");
    let own = stream.expect_next("presence").await;
    assert_eq!(own.json()["action"], "join", "the join happened on node A");
    let id = ann_on_b.say_id("r", "via b").await;
    let got = stream.expect("message").await;
    assert_eq!(got.id_num(), id, "the stream on A gets what B stored");

    let left = ann_on_b.unsubscribe(&stream, &["r"]).await;
    assert_eq!(left["rooms"], json!([]), "relayed unsubscribe: {left}");

    // Somebody else's stream, through either node: unknown.
    let eve = c.user(1, "eve").await;
    let res = eve.try_subscribe(&stream, json!({ "rooms": ["r"] })).await;
    assert_error(res, 404, "unknown_connection").await;
    let made_up = "7f3e9a52-1c4b-4d8e-9f00-123456789abc";
    let res = eve.try_subscribe(made_up, json!({ "rooms": ["r"] })).await;
    assert_error(res, 404, "unknown_connection").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_rooms_and_stats_span_the_cluster() {
    let Some(c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let bob = c.user(1, "bob").await;
    let mut ann_stream = ann.listen(&["r"], None).await;
    let _bob_stream = bob.listen(&["r"], None).await;
    let joined = ann_stream.expect("presence").await.json();
    assert_eq!(
        (
            joined["action"].as_str(),
            joined["user"]["username"].as_str()
        ),
        (Some("join"), Some("bob")),
        "ann, on A, sees bob join on B: {joined}"
    );
    for (node, who) in [(0, &ann), (1, &bob)] {
        let me = at(who, c.base(node));
        assert_eq!(
            me.presence_names("r").await,
            ["ann", "bob"],
            "presence on node {node}"
        );
        let info = me.room_info("r").await.expect("room r listed");
        assert_eq!(
            (info["subscribers"].as_u64(), info["users"].as_u64()),
            (Some(2), Some(2)),
            "room list on node {node}: {info}"
        );
    }
    // A second stream of ann, on the other node: still one user, two subscribers.
    let _ann_again = at(&ann, c.base(1)).listen(&["r"], Some(&["message"])).await;
    let stats: Value = c
        .admin(0, reqwest::Method::GET, "/api/admin/stats")
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json");
    assert_eq!(
        (
            stats["connections"].as_u64(),
            stats["users_online"].as_u64(),
            stats["rooms"].as_u64(),
            stats["subscriptions"].as_u64()
        ),
        (Some(3), Some(2), Some(1), Some(3)),
        "cluster-wide stats: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_moving_its_stream_to_another_node_is_not_seen_leaving() {
    // Leaves unheld by the hub, so only the cluster's settling stands between the leave
    // heard from A and the join from B that the bus may bring after it.
    let Some(c) = TestCluster::start_with(2, |_, s| s.sse.presence_coalesce_ms = 0).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let bob = c.user(0, "bob").await;
    let mut watcher = bob.listen(&["r"], Some(&["presence"])).await;
    for round in 0..3 {
        let on_a = ann.listen(&["r"], Some(&["message"])).await;
        let joined = watcher.expect("presence").await.json();
        assert_eq!(
            joined["action"], "join",
            "round {round}: ann's join: {joined}"
        );
        // Her second stream opens on B; the one on A closes right after.
        let on_b = at(&ann, c.base(1)).listen(&["r"], Some(&["message"])).await;
        drop(on_a);
        if let Some(e) = watcher.next_within(Duration::from_millis(1500)).await {
            panic!(
                "round {round}: ann never left, yet bob saw {:?} {}",
                e.event, e.data
            );
        }
        drop(on_b);
        let left = watcher.expect("presence").await.json();
        assert_eq!(
            left["action"], "leave",
            "round {round}: ann's last stream closed: {left}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_event_reaches_subscribers_on_every_node() {
    let Some(c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let bob = c.user(1, "bob").await;
    let mut on_a = ann.listen(&["r"], Some(&["typing"])).await;
    let mut on_b = bob.listen(&["r"], Some(&["typing"])).await;
    ann.send_custom("r", "typing", json!({ "n": 1 })).await;
    for (node, stream) in [("A", &mut on_a), ("B", &mut on_b)] {
        let e = stream.expect("typing").await.json();
        assert_eq!(e["data"], json!({ "n": 1 }), "node {node}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_and_a_member_removal_reach_streams_on_another_node() {
    let Some(c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let mut stream = ann.listen(&["r"], Some(&["message"])).await;
    let res = c
        .admin(1, reqwest::Method::POST, "/api/admin/users/ann/ban")
        .send()
        .await
        .expect("ban");
    assert_eq!(res.status(), 200, "ban through node B");
    let body: Value = res.json().await.expect("ban answer");
    assert_eq!(body["closed"], 1, "the stream on node A was closed: {body}");
    assert!(
        stream.ends_within(WAIT).await,
        "ann's stream on node A ended"
    );

    let owner = c.user(1, "owner").await;
    let res = owner
        .post(
            "/api/rooms",
            json!({ "name": "club", "visibility": "private" }),
        )
        .await;
    assert_eq!(res.status(), 201, "private room created");
    let carol = c.user(0, "carol").await;
    let res = owner
        .http
        .put(format!("{}/api/rooms/club/members/carol", c.base(1)))
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .expect("add member");
    assert!(res.status().is_success(), "carol added: {}", res.status());
    let mut carol_stream = carol.listen(&["club"], Some(&["message"])).await;
    let res = owner
        .http
        .delete(format!("{}/api/rooms/club/members/carol", c.base(1)))
        .send()
        .await
        .expect("remove member");
    assert_eq!(res.status(), 204, "carol removed through node B");
    let removed = carol_stream.expect("removed").await.json();
    assert_eq!(
        removed["room"], "club",
        "carol's stream on node A heard it: {removed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_line_ban_closes_the_users_streams_on_every_node_within_2_s() {
    let Some(c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let mut on_a = ann.listen(&["r"], Some(&["message"])).await;
    let mut on_b = at(&ann, c.base(1)).listen(&["r"], Some(&["message"])).await;
    operator(c.nodes[0]._dir.path(), &c.url, &["user", "ban", "ann"]).await;
    let banned = tokio::time::Instant::now();
    for (node, sse) in [("A", &mut on_a), ("B", &mut on_b)] {
        let left = Duration::from_secs(2).saturating_sub(banned.elapsed());
        assert!(
            sse.ends_within(left).await,
            "ann's stream on node {node} was open {:?} after the command-line ban",
            banned.elapsed()
        );
    }
    eprintln!(
        "a command-line ban closed the streams on both nodes within {:?}",
        banned.elapsed()
    );
}

/// A TCP forwarder that counts the connections it accepts and the cluster calls sent through
/// them, started before the address it forwards to is known (a node's port is chosen when it
/// starts).
struct CountingForwarder {
    addr: std::net::SocketAddr,
    target: Arc<tokio::sync::OnceCell<std::net::SocketAddr>>,
    accepted: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

/// Copies `from` to `to`, counting in `calls` each request line of a cluster call.
async fn copy_counting(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    calls: Arc<AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const LINE: &[u8] = b"POST /internal/cluster ";
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the last read, so a line split across two reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut seen = std::mem::take(&mut tail);
        let skip = seen.len();
        seen.extend_from_slice(&buf[..n]);
        let found = seen
            .windows(LINE.len())
            .enumerate()
            .filter(|(at, w)| *w == LINE && at + LINE.len() > skip)
            .count();
        calls.fetch_add(found, Ordering::SeqCst);
        tail = seen[seen.len().saturating_sub(LINE.len() - 1)..].to_vec();
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl CountingForwarder {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the forwarder");
        let addr = listener.local_addr().expect("its address");
        let target: Arc<tokio::sync::OnceCell<std::net::SocketAddr>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (t, n, k) = (target.clone(), accepted.clone(), calls.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                let (t, k) = (t.clone(), k.clone());
                tokio::spawn(async move {
                    // Calls made before the node's port is known wait for it.
                    while t.get().is_none() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    let to = *t.get().expect("a target");
                    let Ok(upstream) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    let (client_in, mut client_out) = client.into_split();
                    let (mut upstream_in, upstream_out) = upstream.into_split();
                    let requests = copy_counting(client_in, upstream_out, k);
                    let answers = tokio::io::copy(&mut upstream_in, &mut client_out);
                    let _ = tokio::join!(requests, answers);
                });
            }
        });
        Self {
            addr,
            target,
            accepted,
            calls,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_between_nodes_reuse_connections_and_room_lists_ask_other_nodes_rarely() {
    // Node B is reached by the others through a forwarder that counts connections.
    let forwarder = CountingForwarder::start().await;
    let advertised = format!("http://{}", forwarder.addr);
    let Some(c) = TestCluster::start_with(2, |i, s| {
        if i == 1 {
            s.cluster.advertise_url = Some(advertised.clone());
        }
    })
    .await
    else {
        return;
    };
    forwarder
        .target
        .set(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            c.nodes[1].node.port,
        )))
        .expect("the target is set once");
    let ann = c.user(0, "ann").await;
    // Ann's stream is held by node B; she subscribes and unsubscribes through node A,
    // which relays each call to B, and lists rooms through A, which asks B for its rooms.
    let on_b = at(&ann, c.base(1)).events().await;
    eventually("node A knows node B", || async {
        ann.try_subscribe(&on_b, json!({ "rooms": ["warm"] }))
            .await
            .status()
            == 200
    })
    .await;
    let (before, calls_before) = (forwarder.accepted(), forwarder.calls());
    for i in 0..30 {
        let room = format!("r{i}");
        let res = ann.try_subscribe(&on_b, json!({ "rooms": [room] })).await;
        assert_eq!(res.status(), 200, "a subscribe relayed to node B");
        let res = ann.try_unsubscribe(&on_b, &[room.as_str()]).await;
        assert_eq!(res.status(), 200, "an unsubscribe relayed to node B");
    }
    let relayed = forwarder.calls() - calls_before;
    assert!(
        relayed >= 60,
        "{relayed} calls reached node B for 60 relays"
    );
    // One user listing rooms as fast as it can: node A asks B at most once per
    // cluster.fanout_cache_ms (500), whatever the rate.
    let calls_before = forwarder.calls();
    let started = std::time::Instant::now();
    for _ in 0..50 {
        assert_eq!(ann.get("/api/rooms").await.status(), 200, "the room list");
    }
    let listed = forwarder.calls() - calls_before;
    let allowed = 1 + (started.elapsed().as_millis() / 500) as usize;
    let opened = forwarder.accepted() - before;
    eprintln!(
        "60 relayed calls and 50 room lists from node A opened {opened} connections to node B; \
         the room lists asked B {listed} times in {:?}",
        started.elapsed()
    );
    assert!(
        opened <= 3,
        "calls relayed from node A to node B opened {opened} connections"
    );
    assert!(
        listed <= allowed,
        "50 room lists made node A ask node B {listed} times in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_node_resumes_on_another_and_loses_nothing() {
    let Some(mut c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(1, "ann").await;
    let bob = c.user(0, "bob").await;
    let mut stream = bob.listen(&["r"], Some(&["message"])).await;
    let mut last = 0;
    for i in 0..5 {
        ann.say_id("r", &format!("before{i}")).await;
    }
    for (id, _) in messages(&mut stream, 5).await {
        last = id;
    }
    c.kill(0).await;
    assert!(
        stream.ends_within(WAIT).await,
        "the killed node's stream ended"
    );
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push((
            ann.say_id("r", &format!("after{i}")).await,
            format!("after{i}"),
        ));
    }
    let bob_on_b = at(&bob, c.base(1));
    let mut resumed = bob_on_b.events_from(Some(last)).await;
    bob_on_b
        .subscribe_with(&resumed, json!({ "rooms": ["r"], "events": ["message"] }))
        .await;
    assert_eq!(
        messages(&mut resumed, 5).await,
        missed,
        "resuming on node B with Last-Event-ID {last} replays exactly what was missed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posters_on_every_node_give_every_reader_one_gap_free_sequence() {
    let Some(c) = TestCluster::start(3).await else {
        return;
    };
    const EACH: usize = 40;
    let mut readers = Vec::new();
    for node in 0..3 {
        let reader = c.user(node, &format!("reader{node}")).await;
        readers.push(reader.listen(&["r"], Some(&["message"])).await);
    }
    let mut posters = Vec::new();
    for node in 0..3 {
        let poster = c.user(node, &format!("poster{node}")).await;
        posters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                ids.push(poster.say_id("r", &format!("{node}-{i}")).await);
            }
            ids
        }));
    }
    let mut posted = BTreeSet::new();
    for p in posters {
        posted.extend(p.await.expect("poster"));
    }
    assert_eq!(posted.len(), 3 * EACH, "every post got its own id");
    let all: Vec<i64> = posted.into_iter().collect();
    for (node, stream) in readers.iter_mut().enumerate() {
        let seen: Vec<i64> = messages(stream, 3 * EACH)
            .await
            .into_iter()
            .map(|m| m.0)
            .collect();
        assert_eq!(
            seen, all,
            "reader on node {node}: every id, once, ascending (no gap, no reordering)"
        );
        stream.expect_silence(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_without_shutdown_leaves_presence_within_the_bound() {
    let Some(mut c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let bob = c.user(1, "bob").await;
    let _ann_stream = ann.listen(&["r"], Some(&["message"])).await;
    let mut bob_stream = bob.listen(&["r"], None).await;
    eventually("ann present on node B", || async {
        bob.presence_names("r").await == ["ann", "bob"]
    })
    .await;
    let killed = tokio::time::Instant::now();
    c.kill(0).await;
    let left = tokio::time::timeout(DEAD_WITHIN, bob_stream.expect("presence"))
        .await
        .expect("a presence event within the bound")
        .json();
    let took = killed.elapsed();
    assert_eq!(
        (left["action"].as_str(), left["user"]["username"].as_str()),
        (Some("leave"), Some("ann")),
        "ann left when her node died: {left}"
    );
    eprintln!("a killed node's presence left after {took:?}");
    assert_eq!(bob.presence_names("r").await, ["bob"], "presence on node B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_streams_on_every_node() {
    let Some(c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let bob = c.user(1, "bob").await;
    let mut on_a = ann.listen(&["r"], Some(&["broadcast"])).await;
    let mut on_b = bob.listen(&["r"], Some(&["broadcast"])).await;
    let res = c
        .admin(0, reqwest::Method::POST, "/api/admin/broadcast")
        .json(&json!({ "body": "maintenance at noon" }))
        .send()
        .await
        .expect("broadcast");
    assert_eq!(res.status(), 201, "broadcast through node A");
    for (node, stream) in [("A", &mut on_a), ("B", &mut on_b)] {
        let e = stream.expect("broadcast").await.json();
        assert_eq!(e["body"], "maintenance at noon", "node {node}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_a_listener_reconnects_are_still_delivered() {
    let Some(c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let bob = c.user(1, "bob").await;
    let mut stream = bob.listen(&["r"], Some(&["message"])).await;
    // Cut both nodes' bus listeners (this cluster's channel only: other tests run beside
    // it): what is notified until they reconnect is lost.
    let db = &c.nodes[1].node.db;
    let channel = db.notify_channel().expect("a PostgreSQL channel");
    let cut: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN \"' || $1 || '\"%'",
    )
    .bind(channel)
    .fetch_all(db.pg_pool().expect("a PostgreSQL pool"))
    .await
    .expect("terminate the listeners");
    assert_eq!(cut.len(), 2, "found both listeners' sessions to cut");
    let mut posted = Vec::new();
    for i in 0..5 {
        posted.push((ann.say_id("r", &format!("m{i}")).await, format!("m{i}")));
    }
    assert_eq!(
        messages(&mut stream, 5).await,
        posted,
        "node B read the log after losing its listener: nothing missed, in order"
    );
    // The reconnected listeners hold their nodes' liveness locks again, so neither node is
    // declared dead once the crash bound has passed.
    eventually("both nodes hold their liveness locks again", || async {
        let (held,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM nodes n JOIN pg_locks l ON l.locktype = 'advisory' \
             AND l.granted AND l.objsubid = 1 \
             AND ((l.classid::bigint << 32) | l.objid::bigint) = (x'5243000000000000'::bigint | n.tag)",
        )
        .fetch_one(db.pg_pool().expect("a PostgreSQL pool"))
        .await
        .expect("count the liveness locks");
        held == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let id = ann.say_id("r", "later").await;
    assert_eq!(stream.expect("message").await.id_num(), id, "still live");
    eventually("both users present on node A", || async {
        ann.presence_names("r").await == ["bob"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_on_another_node_holds_what_was_just_committed() {
    let Some(c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let ann_on_b = at(&ann, c.base(1));
    let mut last = ann.say_id("r", "first").await;
    // The race is a few milliseconds wide: without the catch-up, some round loses it.
    for i in 0..50 {
        let id = ann.say_id("r", &format!("m{i}")).await;
        // At once, on the other node, which learns of the post from its tailer.
        let sse = ann_on_b.events().await;
        let ans = ann_on_b
            .subscribe_with(
                &sse,
                json!({ "rooms": ["r"], "events": ["message"], "last_event_id": last }),
            )
            .await;
        assert_eq!(
            ans["replay"]["count"], 1,
            "round {i}: the replay on node B left out message {id}, committed on node A \
             before the subscribe: {ans}"
        );
        last = id;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_changes_reach_streams_on_another_node() {
    let Some(c) = TestCluster::start(2).await else {
        return;
    };
    let owner = c.user(1, "owner").await;
    let res = owner
        .post(
            "/api/rooms",
            json!({ "name": "club", "visibility": "private" }),
        )
        .await;
    assert_eq!(res.status(), 201, "private room created on node B");
    let carol = c.user(0, "carol").await;
    let dave = c.user(0, "dave").await;
    let put = |who: &str, role: &str| {
        owner
            .http
            .put(format!("{}/api/rooms/club/members/{who}", c.base(1)))
            .json(&json!({ "role": role }))
            .send()
    };
    assert_eq!(
        put("carol", "member").await.expect("add carol").status(),
        200
    );
    // On node A: carol holds the room and asks for `member`; dave holds another room only.
    let mut carol_stream = carol.listen(&["club"], Some(&["member"])).await;
    let mut dave_stream = dave.listen(&["r"], Some(&["message"])).await;

    assert_eq!(
        put("dave", "moderator").await.expect("add dave").status(),
        200
    );
    let (d, o) = (dave.user_ref().await, owner.user_ref().await);
    let expected = json!({ "room": "club", "user": d, "role": "moderator", "by": o });
    assert_eq!(
        dave_stream.expect("member").await.json(),
        expected,
        "the added user's stream on node A, whatever its filter"
    );
    assert_eq!(
        carol_stream.expect("member").await.json(),
        expected,
        "a stream holding the room on node A"
    );
}

/// Edits and reactions made on node A reach a stream on node B live, in id order with the
/// messages around them; a client that missed them resumes on B and gets them, with the
/// message as it is now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_reactions_on_one_node_reach_another_live_and_on_resume() {
    let Some(c) = TestCluster::start(2).await else {
        return;
    };
    let ann = c.user(0, "ann").await;
    let bob = c.user(1, "bob").await;
    let mut live = bob.listen(&["r"], Some(&["message"])).await;
    let id = ann.say_id("r", "draft").await;
    let path = format!("/api/rooms/r/messages/{id}");
    let res = crate::private::send(
        &ann,
        reqwest::Method::PATCH,
        &path,
        json!({ "body": "final" }),
    )
    .await;
    assert_eq!(res.status(), 200, "edit on A");
    let react = format!("{path}/reactions/%F0%9F%91%8D");
    let res = crate::private::send(&ann, reqwest::Method::PUT, &react, Value::Null).await;
    assert_eq!(res.status(), 200, "reaction on A");
    let after = ann.say_id("r", "after").await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let e = live.next_event().await.expect("an event on B");
        if e.id.is_some() {
            seen.push((e.event.clone(), e.id_num()));
        }
    }
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["message", "message_edited", "reaction", "message"],
        "on B: {seen:?}"
    );
    let ids: Vec<i64> = seen.iter().map(|(_, id)| *id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]) && ids[0] == id && ids[3] == after,
        "{ids:?}"
    );

    let mut resumed = bob.events_from(Some(id - 1)).await;
    bob.subscribe_with(&resumed, json!({ "rooms": ["r"], "events": ["message"] }))
        .await;
    let m = resumed.expect_next("message").await.json();
    assert_eq!(
        (m["body"].clone(), m["reactions"][0]["count"].clone()),
        (json!("final"), json!(1)),
        "replayed on B as it is now: {m}"
    );
    resumed.expect_next("message_edited").await;
    let r = resumed.expect_next("reaction").await.json();
    assert_eq!(r["user"]["username"], "ann", "{r}");
}
