//! The restart scenario: streams over many rooms while messages flow, the server (roomcast,
//! or nginx + Nchan, which keeps its messages in memory) stopped with SIGTERM and started
//! again, every stream back as `EventSource` comes back (after the
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

/// Runs it once on a server of `kind`.
pub(super) async fn run_restart(kind: Kind, r: &Restart) -> Result<Figures> {
    let mut server = Running::start(kind, 15, None)?;
    let port = server.port();
    let (cookie, pub_cookie) = bench_users(kind, port).await?;
    let spread = Spread {
        rooms: r.rooms,
        reconnect: true,
        drain: None,
    };
    let started = Instant::now();
    let mut children = spawn_children(kind, &[port], &cookie, r.streams, spread)?;
    for c in &mut children {
        c.line("READY").await?;
    }
    eprintln!(
        "  {}: {} streams over {} rooms open in {:.2} s",
        kind.name(),
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
            let mut p =
                Publisher::new(kind, room, port, &pub_cookie).posting_to(room_of(room, rooms));
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

    // The server's PSS every 100 ms (the new processes' after the restart): its peak.
    let pids = Arc::new(std::sync::Mutex::new(server.pids()));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (pids, peak) = (pids.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let now = pids.lock().map(|p| p.clone()).unwrap_or_default();
                peak.fetch_max(common::pss_sum_present(&now), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    tokio::time::sleep(r.before).await;
    let pss_before = common::pss_sum_present(&server.pids());
    peak.store(0, Ordering::Relaxed);
    let term_at = now_us();
    let stopped_secs = tokio::task::block_in_place(|| server.restart())?;
    let started_at = now_us();
    let up_at = answering(kind, port).await?;
    let new_pids = server.pids();
    if let Ok(mut p) = pids.lock() {
        p.clone_from(&new_pids);
    }
    eprintln!(
        "  {}: SIGTERM; exited after {stopped_secs:.2} s, started again, answering after \
         {:.2} s",
        kind.name(),
        (up_at - started_at) as f64 / 1e6
    );
    let cpu_from = common::cpu_secs_sum(&new_pids);
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
    let cpu = common::cpu_secs_sum(&server.pids()) - cpu_from;
    sampler.abort();

    let after_term = |t: u64| t.saturating_sub(term_at) as f64 / 1e6;
    let mut figures = Figures::default();
    figures.put("SIGTERM → exited, s", stopped_secs);
    figures.put("start → answering, s", (up_at - started_at) as f64 / 1e6);
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
        "  {}: {} deliveries; reconnected {} of {n}, caught up {}; missing {}, out of \
         order {}, id errors {}, closed {}, failed to open {}, publish errors {publish_errors}",
        kind.name(),
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

/// Waits until the server on `port` answers (roomcast: `/healthz` with 200; nginx: any
/// answer); returns when (µs).
async fn answering(kind: Kind, port: u16) -> Result<u64> {
    let mut conn = HttpConn::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = conn.request("GET", "/healthz", "", b"").await;
        if matches!(
            (kind, answer),
            (Kind::Roomcast, Ok((200, _))) | (Kind::Nchan, Ok(_))
        ) {
            return Ok(now_us());
        }
        if Instant::now() >= give_up {
            bail!("the restarted server did not answer /healthz within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
