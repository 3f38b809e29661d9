//! Wiring: build every part from the settings, bind, serve, and shut down cleanly.

use std::{
    net::{TcpListener, ToSocketAddrs},
    path::Path,
    sync::Arc,
    time::Duration,
};

use actix_session::{
    SessionMiddleware,
    config::{PersistentSession, TtlExtensionPolicy},
};
use actix_web::{
    App, HttpServer,
    cookie::{Key, SameSite, time},
    dev::Server,
    middleware::{ErrorHandlers, from_fn},
    web,
};
use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::task::JoinHandle;

use crate::{
    broker::Waking,
    cluster::{self, Cluster},
    config::Settings,
    db::{Db, Retention, SqlSessionStore},
    http::auth,
    http::error,
    http::ratelimit::Limits,
    http::routes,
    http::state::AppState,
    http::stream_writer::LiveWriters,
    http::telemetry,
    http::token_uses::TokenUses,
    http::transport,
    hub::{Hub, HubSettings},
    password::PasswordPool,
    webhooks::Webhooks,
    writer::Writer,
};

/// A built, bound, not yet running roomcast.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    hub: Arc<Hub>,
    cluster: Arc<Cluster>,
    webhooks: Arc<Webhooks>,
    db: Db,
    writer_task: JoinHandle<()>,
    /// Announces the leaves held back for coalescing.
    departures: JoinHandle<()>,
    stream_writers: LiveWriters,
    housekeeping: Housekeeping,
    shutdown_timeout: Duration,
}

impl Application {
    /// Opens the database (migrating it), starts the writer, binds the listener.
    /// `server.port = 0` binds a free port; see [`Application::port`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::tls::install_provider();
        let settings = Arc::new(settings);
        let db = Db::connect(&settings.database).await?;
        let hub = Arc::new(Hub::new(hub_settings(&settings)));
        let departures = tokio::spawn(hub.clone().announce_departures());
        let last_id = db.last_message_id().await?;
        hub.set_watermark(last_id);
        let listeners = Listeners::bind(&settings)?;
        let cluster = Arc::new(if db.is_postgres() {
            let url = advertise_url(&settings, listeners.port)?;
            Cluster::join(&db, hub.clone(), &settings.cluster, url, last_id).await?
        } else {
            Cluster::alone(hub.clone())
        });
        cluster
            .watch_accounts(
                &db,
                Duration::from_millis(settings.database.account_poll_ms),
            )
            .await?;
        let webhooks = Webhooks::new(db.clone(), &settings.webhooks)?;
        let broker = Arc::new(Waking::new(cluster.broker(), webhooks.wake()));
        let (writer, writer_task) = Writer::start(&db, broker).await?;
        webhooks.start();
        let key = session_key(&settings, &db).await?;
        let limits = Arc::new(Limits::new(&settings.rate_limit)?);
        let housekeeping = Housekeeping::start(
            db.clone(),
            limits.clone(),
            cluster.clone(),
            Duration::from_secs(settings.session.purge_interval_secs),
            retention(&settings),
        );
        transport::ensure_fd_budget(settings.server.max_connections, settings.limits.max_streams)?;
        let stream_writers = LiveWriters::default();
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            db: db.clone(),
            hub: hub.clone(),
            cluster: cluster.clone(),
            writer,
            limits,
            passwords: PasswordPool::new(&settings.password)?,
            writers: stream_writers.clone(),
            webhooks: webhooks.clone(),
            token_uses: Arc::new(TokenUses::new(Duration::from_secs(
                settings.tokens.last_used_every_secs,
            ))),
        });
        let (port, metrics_port) = (listeners.port, listeners.metrics_port());
        Ok(Self {
            port,
            metrics_port,
            server: http_server(state, key, listeners)?,
            hub,
            cluster,
            webhooks,
            db,
            writer_task,
            departures,
            stream_writers,
            housekeeping,
            shutdown_timeout: Duration::from_secs(settings.server.shutdown_timeout_secs),
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application's database (tests inspect and provoke it).
    pub fn db(&self) -> Db {
        self.db.clone()
    }

    /// The port of the separate metrics listener, when `metrics.listen` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// A switch that ends this node as a crash would (for tests of a cluster).
    #[doc(hidden)]
    pub fn kill_switch(&self) -> KillSwitch {
        KillSwitch {
            server: self.server.handle(),
            cluster: self.cluster.clone(),
            webhooks: self.webhooks.clone(),
            writer: self.writer_task.abort_handle(),
            housekeeping: self.housekeeping.task.abort_handle(),
            departures: self.departures.abort_handle(),
            db: self.db.clone(),
        }
    }

    /// Serves until the process gets SIGTERM or SIGINT, then shuts down cleanly.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then: stops accepting, ends every stream with a
    /// complete frame, lets the writer commit and publish what it acknowledged, closes the
    /// database. All within `server.shutdown_timeout_secs`.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        tokio::select! {
            res = &mut server => return res.context("server task")?.context("server"),
            () = stop => {}
        }
        tracing::info!("shutting down");
        self.housekeeping.stop().await;
        // Another node takes the webhooks over at once (a delivery cut short is sent again).
        self.webhooks.stop().await;
        // The streams are about to close: their leaves need no announcing.
        self.departures.abort();
        let hub = self.hub.clone();
        let graceful = async move {
            // Streams are not actix's connections once handed off, so its graceful stop
            // would not wait for them: end them first, and let each writer write its last
            // chunk (a writer whose client reads nothing drops its socket at once).
            let closed = hub.close_all();
            tracing::info!(streams = closed, "closed every stream");
            let writers = self.stream_writers.all_ended();
            if tokio::time::timeout(self.shutdown_timeout / 3, writers)
                .await
                .is_err()
            {
                // Clients still taking their last bytes: the rest of the shutdown matters more.
                tracing::warn!(
                    writers = self.stream_writers.count(),
                    "streams still writing; closing them"
                );
            }
            let stopping = tokio::spawn(async move { handle.stop(true).await });
            self.cluster.leave().await;
            let _ = stopping.await;
            let _ = server.await;
            // The last handle to the writer lived in the app state, now dropped with the
            // server: the writer commits what is queued and ends.
            let _ = self.writer_task.await;
            self.db.close().await;
        };
        if tokio::time::timeout(self.shutdown_timeout, graceful)
            .await
            .is_err()
        {
            tracing::warn!("shutdown timed out");
        }
        Ok(())
    }
}

/// Ends a node as `kill -9` would, inside a test process: no goodbye to the cluster, the
/// streams cut, every database session closed (which frees the node's liveness lock).
#[doc(hidden)]
pub struct KillSwitch {
    server: actix_web::dev::ServerHandle,
    cluster: Arc<Cluster>,
    webhooks: Arc<Webhooks>,
    writer: tokio::task::AbortHandle,
    housekeeping: tokio::task::AbortHandle,
    departures: tokio::task::AbortHandle,
    db: Db,
}

impl KillSwitch {
    /// Kills the node.
    pub async fn kill(self) {
        self.cluster.stop_tasks();
        self.webhooks.halt();
        self.writer.abort();
        self.housekeeping.abort();
        self.departures.abort();
        self.server.stop(false).await;
        self.db.close().await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The cookie key: from `session.secret`, else generated once — into the database when
/// it is PostgreSQL (every node of a cluster must share it), else into the data directory.
async fn session_key(settings: &Settings, db: &Db) -> anyhow::Result<Key> {
    if let Some(secret) = &settings.session.secret {
        return Ok(Key::derive_from(secret.expose().as_bytes()));
    }
    if db.is_postgres() {
        let stored = cluster::shared_cookie_key(db, Key::generate().master()).await?;
        return Key::try_from(stored.as_slice())
            .map_err(|_| anyhow::anyhow!("the stored session key is not 64 bytes"));
    }
    let path = settings.server.data_dir.join("session.key");
    load_or_create_key(&path)
}

/// Where the other nodes of a cluster reach this one.
fn advertise_url(settings: &Settings, port: u16) -> anyhow::Result<String> {
    if let Some(url) = &settings.cluster.advertise_url {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let host = settings.server.host.as_str();
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    anyhow::ensure!(
        !ip.is_some_and(|ip| ip.is_unspecified()),
        "configuration: `cluster.advertise_url` must be set when `server.host` is {host} \
         (the other nodes need an address they can reach)"
    );
    Ok(match ip {
        Some(std::net::IpAddr::V6(v6)) => format!("http://[{v6}]:{port}"),
        _ => format!("http://{host}:{port}"),
    })
}

fn load_or_create_key(path: &Path) -> anyhow::Result<Key> {
    match std::fs::read(path) {
        Ok(bytes) => Key::try_from(bytes.as_slice())
            .map_err(|_| anyhow::anyhow!("{} is not a 64-byte session key", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let key = Key::generate();
            write_private(path, key.master())?;
            tracing::info!(path = %path.display(), "generated a new session key");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// The periodic chores task; stopped and joined on shutdown.
struct Housekeeping {
    stop: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Housekeeping {
    fn start(
        db: Db,
        limits: Arc<Limits>,
        cluster: Arc<Cluster>,
        purge_every: Duration,
        retention: (Retention, Duration),
    ) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut stopped = stopped;
            let chores = async {
                // Side by side, so a long sweep delays no session purge.
                tokio::join!(
                    housekeeping(db.clone(), limits, cluster, purge_every),
                    sweeping(db, retention.0, retention.1),
                );
            };
            tokio::select! {
                () = chores => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        });
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Once a minute: forget rate-limit keys that are back to a full allowance (else every IP
/// and user ever seen stays in memory). Every `purge_every`: delete expired sessions and
/// close their open streams (an expired login must not keep receiving).
async fn housekeeping(db: Db, limits: Arc<Limits>, cluster: Arc<Cluster>, purge_every: Duration) {
    let mut shrink = tokio::time::interval(Duration::from_secs(60));
    let mut purge = tokio::time::interval(purge_every);
    loop {
        tokio::select! {
            _ = shrink.tick() => limits.shrink(),
            _ = purge.tick() => match db.purge_expired_sessions().await {
                Ok(states) if !states.is_empty() => {
                    let mut streams = 0;
                    for sid in states.iter().filter_map(auth::login_id) {
                        streams += cluster.close_session(sid).await;
                    }
                    tracing::info!(sessions = states.len(), streams, "purged expired sessions");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
            },
        }
    }
}

/// The retention policy and the time between sweeps, from `[history]`.
fn retention(settings: &Settings) -> (Retention, Duration) {
    let h = &settings.history;
    let policy = Retention {
        retain_days: h.retain_days,
        retain_per_room: h.retain_per_room,
        batch: h.sweep_batch,
    };
    (policy, Duration::from_secs(h.sweep_secs))
}

/// Every `every`: a retention sweep (nothing at all when retention keeps everything). A
/// failed sweep is logged and tried again next time; on a cluster a node that finds
/// another sweeping skips its turn.
async fn sweeping(db: Db, policy: Retention, every: Duration) {
    if !policy.is_active() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        match db.sweep(policy).await {
            Ok(Some(swept)) if swept.events > 0 => tracing::info!(
                events = swept.events,
                batches = swept.batches,
                ms = started.elapsed().as_millis() as u64,
                "retention sweep"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "retention sweep failed"),
        }
    }
}

/// The hub's limits, from the settings.
fn hub_settings(settings: &Settings) -> HubSettings {
    HubSettings {
        queue_capacity: settings.sse.queue_capacity,
        heartbeat: Duration::from_secs(settings.sse.heartbeat_secs),
        replay_limit: settings.history.replay_limit,
        replay_bytes: settings.history.replay_bytes,
        streams_per_user: settings.limits.streams_per_user,
        streams_per_session: settings.limits.streams_per_session,
        max_streams: settings.limits.max_streams,
        rooms_per_user: settings.limits.rooms_per_user,
        presence_coalesce: Duration::from_millis(settings.sse.presence_coalesce_ms),
        reconnect_rate: settings.sse.reconnect_rate,
        replays_at_once: settings.history.replays_at_once,
    }
}

/// Binds the first address `addr` resolves to that can be bound, as `TcpListener::bind`
/// does, but with a listen queue of `backlog` (std's is fixed at 128).
fn listen(addr: impl ToSocketAddrs, backlog: u32) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // As std does on Unix: a restart can bind while the old sockets sit in TIME_WAIT.
        socket.set_reuse_address(true)?;
        let bound = socket
            .bind(&addr.into())
            .and_then(|()| socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX)));
        match bound {
            Ok(()) => return Ok(socket.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )
    }))
}

/// The sockets bound before anything serves: the API's, and `metrics.listen`'s when set.
struct Listeners {
    main: TcpListener,
    port: u16,
    metrics: Option<TcpListener>,
}

impl Listeners {
    fn bind(settings: &Settings) -> anyhow::Result<Self> {
        let backlog = settings.server.listen_backlog;
        let addr = (settings.server.host.as_str(), settings.server.port);
        let main =
            listen(addr, backlog).with_context(|| format!("binding {}:{}", addr.0, addr.1))?;
        let port = main.local_addr()?.port();
        let metrics = match &settings.metrics.listen {
            Some(l) => Some(
                listen(l.as_str(), backlog)
                    .with_context(|| format!("binding metrics.listen {l}"))?,
            ),
            None => None,
        };
        Ok(Self {
            main,
            port,
            metrics,
        })
    }

    fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    fn metrics_port(&self) -> Option<u16> {
        self.metrics_addr().map(|a| a.port())
    }
}

/// actix's server over `listeners`, running: every route, the middleware stack, the socket
/// options.
fn http_server(
    state: web::Data<AppState>,
    key: Key,
    listeners: Listeners,
) -> anyhow::Result<Server> {
    let settings = state.settings.clone();
    let body_cap = settings.limits.body_bytes;
    let metrics = telemetry::metrics_handle();
    let metrics_addr = listeners.metrics_addr();
    let workers = transport::worker_count(settings.server.workers);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(metrics.clone()))
            .app_data(transport::MetricsListener(metrics_addr))
            .app_data(
                web::FormConfig::default()
                    .limit(body_cap)
                    .error_handler(error::form_error),
            )
            .app_data(web::PayloadConfig::new(body_cap))
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .configure(routes::configure)
            .wrap(ErrorHandlers::new().default_handler(telemetry::render_plain_errors))
            .wrap(session_middleware(&state, key.clone()))
            .wrap(from_fn(crate::http::web_security::guard))
            .wrap(from_fn(transport::body_deadline))
            .wrap(from_fn(transport::ops_listener_only))
            .wrap(from_fn(telemetry::observe))
    })
    // Every stream write is a whole batch of frames: nothing is gained by holding it back
    // for the previous one's acknowledgement (Nagle), and latency is lost.
    .tcp_nodelay(true)
    .on_connect(transport::on_connect(Duration::from_secs(
        settings.sse.write_timeout_secs,
    )))
    .listen(listeners.main)?
    // A browser that closes its EventSource half-closes the socket; without this the
    // stream would only notice at its next write (heartbeat).
    .h1_allow_half_closed(false)
    .client_request_timeout(Duration::from_secs(settings.server.head_timeout_secs))
    .client_disconnect_timeout(Duration::from_secs(settings.server.disconnect_timeout_secs))
    .workers(workers)
    .max_connections(transport::per_worker_connections(
        settings.server.max_connections,
        workers,
    ))
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_timeout_secs);
    if let Some(l) = listeners.metrics {
        server = server.listen(l)?;
    }
    Ok(server.run())
}

/// The session cookie: `HttpOnly`, `SameSite=Lax`, `Secure` per the settings, stored in the
/// database, its TTL an idle timeout.
fn session_middleware(state: &web::Data<AppState>, key: Key) -> SessionMiddleware<SqlSessionStore> {
    let settings = &state.settings;
    SessionMiddleware::builder(SqlSessionStore::new(state.db.clone()), key)
        .cookie_name("roomcast_session".to_owned())
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_secure(settings.cookie_secure())
        .session_lifecycle(
            PersistentSession::default()
                .session_ttl(time::Duration::hours(settings.session.ttl_hours as i64))
                // The TTL is an idle timeout, pushed when the session changes: `auth::touch`
                // changes it once per touch interval.
                .session_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listen queue's length as the kernel reports it (`ss`: a listening socket's
    /// Send-Q is its backlog).
    fn backlog_of(port: u16) -> Option<u32> {
        let out = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{port}")])
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        text.split_whitespace().nth(2)?.parse().ok()
    }

    #[test]
    fn the_listener_queues_as_many_connections_as_configured() {
        let listener = listen(("127.0.0.1", 0), 777).expect("binds a free port");
        let port = listener.local_addr().expect("bound").port();
        let backlog = backlog_of(port).expect("`ss` (iproute2) reads the listening socket back");
        assert_eq!(backlog, 777, "the kernel's listen queue for :{port}");
    }

    #[test]
    fn a_taken_port_is_an_error_not_a_panic() {
        let first = listen(("127.0.0.1", 0), 16).expect("binds a free port");
        let port = first.local_addr().expect("bound").port();
        let err = listen(("127.0.0.1", port), 16).expect_err("the port is taken");
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    }
}
