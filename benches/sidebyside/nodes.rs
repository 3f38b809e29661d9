//! The many-nodes scenario (roomcast only): several nodes of one cluster on one PostgreSQL
//! database, the streams spread over them round-robin as a balancer without sticky
//! sessions would spread them, messages posted to each node in turn, and every delivery
//! checked.
//!
//! Two shapes: every stream in one room, `--messages` posts `--interval-ms` apart (each
//! post goes to every stream, through every node); and the streams spread over `--rooms`
//! rooms, one post to each room, `--post-every-us` apart (each post goes to a few streams,
//! on a few nodes).
//!
//! Memory is counted all in, over every node (PSS), and PostgreSQL's processes apart; CPU
//! per delivery likewise. The load tool shares the machine's cores with the nodes and the
//! database.

use super::*;

/// The scenario's shape.
pub(super) struct Nodes {
    pub(super) nodes: usize,
    pub(super) streams: usize,
    /// 1: one room, `messages` posts to it. More: one post to each room.
    pub(super) rooms: usize,
    pub(super) messages: usize,
    /// Between two posts.
    pub(super) interval: Duration,
    /// Keep-alive publishing connections, spread over the nodes.
    pub(super) pub_conns: usize,
    /// `server.workers` of each node.
    pub(super) workers: usize,
}

impl Nodes {
    /// The table's title.
    pub(super) fn title(&self) -> String {
        let posts = if self.rooms <= 1 {
            format!(
                "{} streams in one room, {} posts {} ms apart",
                self.streams,
                self.messages,
                self.interval.as_secs_f64() * 1e3
            )
        } else {
            format!(
                "{} streams over {} rooms ({} each), one post to each room, {} µs apart",
                self.streams,
                self.rooms,
                self.streams / self.rooms,
                self.interval.as_micros()
            )
        };
        format!(
            "{} nodes on one PostgreSQL database ({} worker{} each): {posts}, over {} \
             publishing connections",
            self.nodes,
            self.workers,
            if self.workers == 1 { "" } else { "s" },
            self.pub_conns
        )
    }
}

/// How long the children wait for the last deliveries: a few million deliveries on two
/// shared cores take a minute or more.
const NODES_DRAIN: Duration = Duration::from_secs(600);

/// Starts `n.nodes` nodes on a fresh schema of `admin`, runs one round, drops the schema.
pub(super) async fn run_nodes(admin: &str, n: &Nodes) -> Result<Figures> {
    let url = roomcast::db::Db::create_test_schema(admin)
        .await
        .context("a bench schema (is PostgreSQL running? ROOMCAST_BENCH_POSTGRES)")?;
    let figures = round(&url, n).await;
    common::drop_schema(admin, &url).await;
    figures
}

async fn round(url: &str, n: &Nodes) -> Result<Figures> {
    let mut env = roomcast_env(15, None);
    env.retain(|(k, _)| *k != "ROOMCAST__SERVER__WORKERS");
    env.extend([
        ("ROOMCAST__DATABASE__URL", url.to_owned()),
        ("ROOMCAST__SERVER__WORKERS", n.workers.to_string()),
        // One user holds every stream and listens to every room.
        (
            "ROOMCAST__LIMITS__ROOMS_PER_USER",
            n.rooms.max(300).to_string(),
        ),
    ]);
    let servers: Vec<common::Server> = (0..n.nodes)
        .map(|_| common::Server::start("127.0.0.1", &env))
        .collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let node_pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
    let (cookie, pub_cookie) = bench_users(Kind::Roomcast, ports[0]).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_nodes, idle_pg) = (
        common::pss_sum(&node_pids),
        common::pss_sum_present(&common::postgres_pids()),
    );

    let started = Instant::now();
    let spread = Spread {
        rooms: n.rooms,
        reconnect: false,
        drain: Some(NODES_DRAIN),
    };
    let mut children = spawn_children(Kind::Roomcast, &ports, &cookie, n.streams, spread)?;
    let open = streams_ready(&mut children).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (pss_nodes, pss_pg) = (
        common::pss_sum(&node_pids),
        common::pss_sum_present(&common::postgres_pids()),
    );
    eprintln!(
        "  {open} streams open over {} nodes in {connect_secs:.2} s; nodes' PSS {:.1} → {:.1} \
         MiB, PostgreSQL's {:.1} → {:.1} MiB",
        n.nodes,
        common::mib(idle_nodes),
        common::mib(pss_nodes),
        common::mib(idle_pg),
        common::mib(pss_pg),
    );

    // Post `i` leaves at t0 + i·interval on publisher i mod C, and publisher c posts to
    // node c mod N, so the nodes take turns.
    let posts = if n.rooms <= 1 { n.messages } else { n.rooms };
    let (conns, rooms, interval) = (n.pub_conns, n.rooms, n.interval);
    let perf = Perf::start(&node_pids, "--perf").await?;
    let node_cpu0 = common::cpu_secs_sum(&node_pids);
    let pg_cpu0 = postgres_cpu_by_pid();
    let first_tx = now_us();
    let t0 = tokio::time::Instant::now();
    let publishers: Vec<_> = (0..conns)
        .map(|c| {
            let mut p = Publisher::new(Kind::Roomcast, c, ports[c % ports.len()], &pub_cookie);
            tokio::spawn(async move {
                for i in (c..posts).step_by(conns) {
                    tokio::time::sleep_until(t0 + interval * i as u32).await;
                    if rooms <= 1 {
                        p.publish_counted().await;
                    } else {
                        p.publish_once_to(i, rooms).await;
                    }
                }
                p
            })
        })
        .collect();
    let (mut expect, publish_errors) = join_publishers(publishers).await?;
    if rooms > 1 {
        expect = vec![1; rooms];
    }
    let got = collect(&mut children, &expect).await?;
    if let Some(perf) = perf {
        perf.stop();
    }
    // PostgreSQL's backends may come and go: a backend that ended inside the window is not
    // counted, so its figure is a floor.
    let pg_cpu: f64 = postgres_cpu_by_pid()
        .iter()
        .map(|(pid, cpu)| cpu - pg_cpu0.get(pid).copied().unwrap_or(0.0))
        .sum();
    let node_cpu = common::cpu_secs_sum(&node_pids) - node_cpu0;

    let window = got.last_rx.saturating_sub(first_tx) as f64 / 1e6;
    let delivered = got.in_order as f64;
    let s = n.streams as f64;
    let mut f = Figures::default();
    f.put("connect time, s", connect_secs);
    f.put(
        "nodes' PSS with the streams open ÷ streams, KiB",
        pss_nodes as f64 / s / 1024.0,
    );
    f.put(
        "with PostgreSQL's processes, KiB",
        (pss_nodes + pss_pg) as f64 / s / 1024.0,
    );
    f.put("deliveries per second", delivered / window);
    f.put("publish → receive p50, ms", got.quantile(0.50) / 1e3);
    f.put("publish → receive p99, ms", got.quantile(0.99) / 1e3);
    f.put("publish → receive max, ms", got.max_latency as f64 / 1e3);
    f.put("nodes' CPU per delivery, µs", node_cpu * 1e6 / delivered);
    f.put(
        "PostgreSQL's CPU per delivery, µs",
        pg_cpu * 1e6 / delivered,
    );
    f.errors = got.errors() + publish_errors;
    f.put("errors", f.errors as f64);
    eprintln!(
        "  {} deliveries of {} in {window:.2} s; nodes' CPU {node_cpu:.2} s, PostgreSQL's \
         {pg_cpu:.2} s; missing {}, out of order {}, id errors {}, closed {}, failed to open \
         {}, publish errors {publish_errors}",
        got.in_order,
        got.in_order + got.missing,
        got.missing,
        got.disorder,
        got.id_errors,
        got.closed,
        got.open_errors,
    );
    drop(servers);
    Ok(f)
}

/// CPU seconds of each PostgreSQL process now.
fn postgres_cpu_by_pid() -> std::collections::HashMap<u32, f64> {
    common::postgres_pids()
        .into_iter()
        .map(|pid| (pid, common::cpu_secs(pid)))
        .collect()
}
