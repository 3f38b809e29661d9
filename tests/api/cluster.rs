//! Several nodes on one PostgreSQL database, in this test process: each test starts two
//! or three nodes on a fresh schema of `ROOMCAST_TEST_POSTGRES` (see `.ci/run`) and talks
//! to each node directly. Without that variable the tests say so and pass nothing: they
//! need a PostgreSQL server.

use std::{collections::BTreeSet, time::Duration};

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
            s.cluster.heartbeat_ms = 200;
            s.cluster.crashed_after_secs = 1;
            s.cluster.hung_after_secs = 3;
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
