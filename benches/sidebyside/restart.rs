//! The restart scenario: streams over many rooms while messages flow, the server stopped
//! with SIGTERM and started again, every stream back as `EventSource` comes back (after the
//! server's `retry:`, with `Last-Event-ID`, subscribing in one step), and every delivery
//! checked across the gap.
//!
//! A stream has *reconnected* when its new stream answered 200, and has *caught up* when a
//! message sent after that arrived in order, so everything before it arrived too. The
//! times are counted from the SIGTERM.

use super::*;

/// The scenario's shape.
pub(super) struct Restart {
    pub(super) streams: usize,
    pub(super) rooms: usize,
    /// Messages per second over all rooms, paced (each room's publisher waits for its answer).
    pub(super) per_sec: f64,
    /// How long messages flow before the restart, and after the new server is up.
    pub(super) before: Duration,
    pub(super) after: Duration,
}

/// Runs it once on roomcast.
pub(super) async fn run_restart(r: &Restart) -> Result<Figures> {
    let mut server = common::Server::start("127.0.0.1", &roomcast_env(15, None));
    let port = server.port;
    let cookie = register(port, "bench_sub").await?;
    let pub_cookie = register(port, "bench_pub").await?;
    let spread = Spread {
        rooms: r.rooms,
        reconnect: true,
    };
    let started = Instant::now();
    let mut children = spawn_children(Kind::Roomcast, port, &cookie, r.streams, spread)?;
    for c in &mut children {
        c.line("READY").await?;
    }
    eprintln!(
        "  roomcast: {} streams over {} rooms open in {:.2} s",
        r.streams,
        r.rooms,
        started.elapsed().as_secs_f64()
    );

    // One publisher per room, each message `period` after the last was sent.
    let stop = Arc::new(AtomicBool::new(false));
    let period = Duration::from_secs_f64(r.rooms as f64 / r.per_sec);
    let rooms = r.rooms;
    let publishers: Vec<_> = (0..rooms)
        .map(|room| {
            let mut p = Publisher::new(Kind::Roomcast, room, port, &pub_cookie)
                .posting_to(room_of(room, rooms));
            let stop = stop.clone();
            tokio::spawn(async move {
                // Rooms start apart, so the posts do not come in waves.
                let t0 = tokio::time::Instant::now() + period.mul_f64(room as f64 / rooms as f64);
                let mut retries = 0;
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep_until(t0 + period * i).await;
                    i += 1;
                    match p.publish_until_stored(Instant::now() + RECONNECT_FOR).await {
                        Ok(failed) => retries += failed,
                        Err(e) => {
                            eprintln!("  publish: {e:#}");
                            p.errors += 1;
                        }
                    }
                }
                (p, retries)
            })
        })
        .collect();

    // The server's PSS every 100 ms (the new process's after the restart): its peak.
    let pid = Arc::new(AtomicU32::new(server.pid));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (pid, peak) = (pid.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let pss = std::fs::read_to_string(format!(
                    "/proc/{}/smaps_rollup",
                    pid.load(Ordering::Relaxed)
                ))
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("Pss:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                });
                if let Some(kb) = pss {
                    peak.fetch_max(kb * 1024, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    tokio::time::sleep(r.before).await;
    let pss_before = common::pss(Some(server.pid));
    peak.store(0, Ordering::Relaxed);
    let term_at = now_us();
    let stopped_secs = tokio::task::block_in_place(|| server.restart());
    let started_at = now_us();
    pid.store(server.pid, Ordering::Relaxed);
    let up_at = healthy(port).await?;
    eprintln!(
        "  roomcast: SIGTERM; exited after {stopped_secs:.2} s, started again, /healthz after \
         {:.2} s",
        (up_at - started_at) as f64 / 1e6
    );
    let cpu_from = common::cpu_secs(server.pid);
    tokio::time::sleep(r.after).await;
    stop.store(true, Ordering::Relaxed);
    let mut expect = Vec::new();
    let (mut publish_errors, mut retries) = (0, 0);
    for p in publishers {
        let (p, tries) = p.await?;
        expect.push(p.seq);
        publish_errors += p.errors;
        retries += tries;
    }
    let got = collect(&mut children, &expect).await?;
    let cpu = common::cpu_secs(server.pid) - cpu_from;
    sampler.abort();

    let after_term = |t: u64| t.saturating_sub(term_at) as f64 / 1e6;
    let mut figures = Figures::default();
    figures.put("SIGTERM → exited, s", stopped_secs);
    figures.put("start → /healthz, s", (up_at - started_at) as f64 / 1e6);
    figures.put(
        "SIGTERM → every stream reconnected, s",
        after_term(got.reconnected_last),
    );
    figures.put(
        "SIGTERM → every stream caught up, s",
        after_term(got.caught_up_last),
    );
    figures.put("reconnect attempts that failed", got.refused as f64);
    figures.put("posts sent again while it was down", retries as f64);
    figures.put("server PSS before, MiB", common::mib(pss_before));
    figures.put(
        "server PSS peak after, MiB",
        common::mib(peak.load(Ordering::Relaxed)),
    );
    figures.put("server CPU from start to the end, s", cpu);
    figures.put("deliveries", got.in_order as f64);
    let n = r.streams as u64;
    figures.errors = got.errors()
        + publish_errors
        + n.saturating_sub(got.reconnected)
        + n.saturating_sub(got.caught_up);
    figures.put("errors", figures.errors as f64);
    eprintln!(
        "  roomcast: {} deliveries; reconnected {} of {n}, caught up {}; missing {}, out of \
         order {}, id errors {}, closed {}, failed to open {}, publish errors {publish_errors}",
        got.in_order,
        got.reconnected,
        got.caught_up,
        got.missing,
        got.disorder,
        got.id_errors,
        got.closed,
        got.open_errors,
    );
    Ok(figures)
}

/// Waits until the server on `port` answers `/healthz` with 200; returns when (µs).
async fn healthy(port: u16) -> Result<u64> {
    let mut conn = HttpConn::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = conn.request("GET", "/healthz", "", b"").await {
            return Ok(now_us());
        }
        if Instant::now() >= give_up {
            bail!("the restarted server did not answer /healthz within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
