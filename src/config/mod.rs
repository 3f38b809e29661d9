//! Configuration: the built-in `config/default.toml`, then `config/{environment}.toml`, then
//! `ROOMCAST__SECTION__KEY` environment variables. Loaded and checked once at start-up; a bad
//! value stops start-up with a message that names the key.

use std::path::PathBuf;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

mod cidr;
mod validate;

pub use cidr::Cidr;

const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Everything roomcast can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Listening and process settings.
    pub server: ServerSettings,
    /// Where messages, users and sessions live.
    pub database: DatabaseSettings,
    /// The session cookie.
    pub session: SessionSettings,
    /// Password hashing.
    pub password: PasswordSettings,
    /// Admin API access.
    #[serde(default)]
    pub admin: AdminSettings,
    /// Event streams.
    pub sse: SseSettings,
    /// Who may scrape `/metrics`, and where.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Replay on resume.
    pub history: HistorySettings,
    /// Input caps.
    pub limits: LimitSettings,
    /// Abuse protection.
    pub rate_limit: RateLimitSettings,
    /// Personal access tokens.
    pub tokens: TokenSettings,
    /// Webhook deliveries.
    pub webhooks: WebhookSettings,
    /// Logging.
    pub log: LogSettings,
    /// Several nodes on one PostgreSQL database.
    pub cluster: ClusterSettings,
    /// Which environment this is (from `ROOMCAST_ENVIRONMENT`, not from files).
    #[serde(skip)]
    pub environment: RunEnvironment,
}

/// The environments roomcast knows; each may have a `config/{name}.toml`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunEnvironment {
    /// A developer's machine: plain-HTTP cookies allowed.
    #[default]
    Development,
    /// Test suites.
    Test,
    /// Serving real users.
    Production,
}

impl RunEnvironment {
    /// Parses `ROOMCAST_ENVIRONMENT`; anything else is refused rather than guessed.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "development" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "production" => Ok(Self::Production),
            other => anyhow::bail!(
                "ROOMCAST_ENVIRONMENT is {other:?}; use development, test or production"
            ),
        }
    }

    /// The name, as in `config/{name}.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        }
    }
}

/// A secret from the configuration: never shown by `Debug` (so never in a log line).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 for any free one.
    pub port: u16,
    /// HTTP worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// Grace period on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Home of the SQLite file and the generated session key.
    pub data_dir: PathBuf,
    /// Peers whose `X-Forwarded-For` is believed.
    #[serde(default, deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<Cidr>,
    /// `scheme://host[:port]` browsers use; the cross-site check compares against it.
    pub public_origin: Option<String>,
    /// Open HTTP connections the whole server accepts at once; more wait in the listen
    /// backlog. A stream leaves this count once handed off (see `limits.max_streams`).
    pub max_connections: usize,
    /// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`), so a
    /// reconnect storm after a restart waits there instead of being refused and retried.
    pub listen_backlog: u32,
    /// Seconds a client has to send a whole request body once its head arrived.
    pub body_timeout_secs: u64,
    /// Seconds a client has to send the head of its first request.
    pub head_timeout_secs: u64,
    /// Seconds a client has to acknowledge the server closing its connection.
    pub disconnect_timeout_secs: u64,
}

/// A list of CIDRs: a TOML array, or one comma-separated string (how an environment
/// variable spells a list).
fn cidr_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Items(Vec<Cidr>),
        Text(String),
    }
    match List::deserialize(d)? {
        List::Items(items) => Ok(items),
        List::Text(text) => text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .collect(),
    }
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://…` (one node) or `postgres://…` (a server several nodes may share; the
    /// schema is the `search_path`'s first, e.g. `?options=-c%20search_path%3Dchat`).
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// SQLite durability level (PostgreSQL: the server's own settings apply).
    pub sqlite_synchronous: SqliteSync,
    /// Milliseconds a cached session, user or room read is trusted (SQLite only; 0: off).
    pub read_cache_ms: u64,
    /// Milliseconds between two reads of the account change log (bans, role changes made
    /// outside this server).
    pub account_poll_ms: u64,
}

/// The SQLite `synchronous` levels roomcast allows.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// fsync on every commit: acknowledged writes survive a power cut.
    Full,
    /// fsync at checkpoints: acknowledged writes survive a process crash only.
    Normal,
}

/// `[session]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    /// Cookie `Secure` flag; `None` means "true outside development".
    pub secure: Option<bool>,
    /// Signing/encryption key material (≥ 32 bytes), or generated and kept in the data dir.
    pub secret: Option<Secret>,
    /// Idle lifetime of a session: each use pushes its expiry this far ahead.
    pub ttl_hours: u64,
    /// Least time between two pushes of one session's expiry.
    pub touch_interval_secs: u64,
    /// Time between sweeps of expired sessions (and their streams).
    pub purge_interval_secs: u64,
}

/// `[password]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    /// Hashing threads; `None` means one per core.
    pub hash_threads: Option<usize>,
    /// Hash requests that may wait for a thread before `503`.
    pub hash_queue: usize,
    /// Seconds a hashing thread keeps its memory after its last hash.
    pub keep_memory_secs: u64,
}

impl PasswordSettings {
    /// The number of hashing threads to run.
    pub fn threads(&self) -> usize {
        self.hash_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

/// `[admin]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Bearer token for admin routes; `None` disables bearer access.
    pub api_token: Option<Secret>,
}

/// `[sse]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseSettings {
    /// Silence before a `: ping`.
    pub heartbeat_secs: u64,
    /// Frames queued per connection before a slow disconnect.
    pub queue_capacity: usize,
    /// Seconds a peer may leave sent data unread before its socket is closed.
    pub write_timeout_secs: u64,
    /// Milliseconds a stream collects live frames before writing them (0: write at once).
    pub write_delay_ms: u64,
    /// How long a `leave` waits, cancelled by a `join` of the same user in the same room.
    pub presence_coalesce_ms: u64,
    /// Reconnects per second the streams a shutdown closes are spread over (0: not spread).
    pub reconnect_rate: u32,
}

/// `[metrics]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Bearer token required to scrape `/metrics`; `None` means loopback peers only (on the
    /// main listener) or anyone reaching `listen`.
    pub token: Option<String>,
    /// A separate `host:port` serving only `/metrics`, `/healthz` and `/readyz`; when set the
    /// main listener no longer serves `/metrics`.
    pub listen: Option<String>,
}

/// Largest custom event `data` a node accepts: it crosses nodes in a PostgreSQL
/// notification (8,000 bytes of payload at most).
pub const MAX_CLUSTER_EVENT_DATA: usize = 6000;

/// `[cluster]`: used only when `database.url` is PostgreSQL (every such node is part of a
/// cluster, possibly of one).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// The base URL other nodes reach this one at (`http://10.0.0.5:8080`); `None` means
    /// `http://server.host:port` (refused when the host is a wildcard address).
    pub advertise_url: Option<String>,
    /// Bearer token nodes use with each other; `None` means generated once into the
    /// database (so every node shares it).
    pub token: Option<Secret>,
    /// How often a node records that it is alive.
    pub heartbeat_ms: u64,
    /// A node whose process is gone (its database session ended) is declared dead once its
    /// heartbeat is this old.
    pub crashed_after_secs: u64,
    /// A node whose process still holds its session but stopped heartbeating (hung, cut
    /// off) is declared dead once its heartbeat is this old.
    pub hung_after_secs: u64,
    /// Besides the wake-ups, how often the tailer reads the log anyway (a lost
    /// notification delays delivery by at most this).
    pub tail_every_ms: u64,
    /// How long a request relayed to another node may take.
    pub relay_timeout_ms: u64,
    /// Milliseconds the other nodes' room lists are reused for (0: asked anew each time).
    pub fanout_cache_ms: u64,
    /// Milliseconds a cluster-wide presence `leave` is held, so that the same user's join
    /// on another node, sent before it but heard after it, cancels it (0: at once).
    pub presence_settle_ms: u64,
}

/// `[history]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    /// Most events one subscribe replays.
    pub replay_limit: u32,
    /// Most bytes of frames one subscribe replays.
    pub replay_bytes: usize,
    /// Days every stored event is kept (0: forever).
    pub retain_days: u32,
    /// Messages kept per room, the newest (0: no cap).
    pub retain_per_room: u32,
    /// Seconds between retention sweeps.
    pub sweep_secs: u64,
    /// Messages one sweep transaction deletes at most.
    pub sweep_batch: u32,
    /// Replays read from the database at once; more subscribes wait their turn.
    pub replays_at_once: usize,
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Request body cap, bytes.
    pub body_bytes: usize,
    /// Message body cap, characters after trimming.
    pub message_chars: usize,
    /// Custom event `data` cap, bytes of JSON.
    pub event_data_bytes: usize,
    /// Open streams one user may hold at once.
    pub streams_per_user: usize,
    /// Open streams one login session may hold at once.
    pub streams_per_session: usize,
    /// Open streams the whole server holds at most.
    pub max_streams: usize,
    /// Distinct rooms one user may be subscribed to at once, over all its streams.
    pub rooms_per_user: usize,
    /// Rooms one user may create (`POST /api/rooms`).
    pub rooms_created_per_user: usize,
    /// Rooms one user's room list may hold (follows and first markers add to it).
    pub rooms_listed_per_user: u32,
}

/// `[rate_limit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Per user, sustained rate of messages and custom events.
    pub messages_per_sec: u32,
    /// Per user, burst allowance.
    pub messages_burst: u32,
    /// Per user, sustained subscribes and unsubscribes per second.
    pub subscribes_per_sec: u32,
    /// Per user, burst allowance of subscribes and unsubscribes.
    pub subscribes_burst: u32,
    /// Per user, sustained removals of members from private rooms per second.
    pub removals_per_sec: u32,
    /// Per user, burst allowance of removals.
    pub removals_burst: u32,
    /// Per client IP, logins and registrations per minute.
    pub auth_per_min: u32,
    /// Per (username, client address), login attempts in a row without success before
    /// backoff.
    pub login_free_failures: u32,
    /// The first backoff wait, seconds; it doubles per further attempt.
    pub login_backoff_secs: u64,
    /// The longest backoff wait, seconds; also the quiet time that resets the count.
    pub login_backoff_max_secs: u64,
    /// Failed logins of one username, over every address, past which its logins are slowed.
    pub login_name_failures: u32,
    /// Milliseconds a login for a username past its ceiling waits before it is judged.
    pub login_name_delay_ms: u64,
}

/// `[tokens]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Access tokens one user may hold.
    pub per_user: usize,
    /// Least seconds between two writes of a token's `last_used_at`.
    pub last_used_every_secs: u64,
}

/// `[webhooks]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Webhooks that may exist.
    pub max: usize,
    /// Seconds one delivery may take.
    pub timeout_secs: u64,
    /// The first retry's wait, milliseconds; it doubles per failure.
    pub backoff_first_ms: u64,
    /// The longest wait between retries, seconds.
    pub backoff_max_secs: u64,
    /// Bytes of an answer body read at most.
    pub response_bytes: usize,
    /// Events read per query.
    pub batch: u32,
    /// Least milliseconds between two stores of a cursor while deliveries succeed.
    pub save_every_ms: u64,
    /// Milliseconds between looks at the log without a wake-up.
    pub poll_ms: u64,
    /// Seconds a delivery lease lasts unrenewed (clusters).
    pub lease_secs: u64,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// EnvFilter directives; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Settings {
    /// Loads the layered configuration for `ROOMCAST_ENVIRONMENT` (default `development`).
    pub fn load() -> anyhow::Result<Self> {
        let environment = match std::env::var("ROOMCAST_ENVIRONMENT") {
            Ok(name) => RunEnvironment::parse(&name)?,
            Err(_) => RunEnvironment::Development,
        };
        let settings: Settings = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(
                File::with_name(&format!("config/{}", environment.as_str())).required(false),
            )
            .add_source(
                Environment::with_prefix("ROOMCAST")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(false),
            )
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        let settings = Settings {
            environment,
            ..settings
        };
        settings.validate()?;
        Ok(settings)
    }

    /// The built-in defaults alone, for tests and tools.
    pub fn defaults() -> Self {
        let settings: Settings = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("the built-in config/default.toml is valid");
        Settings {
            environment: RunEnvironment::Development,
            ..settings
        }
    }

    /// Whether the session cookie is `Secure`.
    pub fn cookie_secure(&self) -> bool {
        self.session
            .secure
            .unwrap_or(self.environment != RunEnvironment::Development)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let mut s = Settings::defaults();
        s.session.secret = Some("a-session-secret-of-at-least-32-bytes".into());
        s.admin.api_token = Some("an-admin-token-0123".into());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("a-session-secret"),
            "session.secret leaked: {shown}"
        );
        assert!(!shown.contains("an-admin-token"), "admin.api_token leaked");
    }

    #[test]
    fn an_unknown_environment_is_refused() {
        assert!(RunEnvironment::parse("staging").is_err());
        assert_eq!(
            RunEnvironment::parse("production").expect("known"),
            RunEnvironment::Production
        );
    }

    #[test]
    fn defaults_are_valid_and_match_the_contract() {
        let s = Settings::defaults();
        s.validate().expect("defaults validate");
        assert_eq!((s.server.host.as_str(), s.server.port), ("127.0.0.1", 8080));
        assert_eq!(s.sse.heartbeat_secs, 15);
        assert_eq!(s.sse.queue_capacity, 1024);
        assert_eq!(s.history.replay_limit, 1000);
        assert_eq!(
            (
                s.history.retain_days,
                s.history.retain_per_room,
                s.history.sweep_secs
            ),
            (0, 0, 60),
            "retention keeps everything by default"
        );
        assert_eq!(s.history.replay_bytes, 1 << 20);
        assert_eq!(s.limits.body_bytes, 16384);
        assert_eq!(s.limits.message_chars, 4000);
        assert_eq!(
            (
                s.rate_limit.messages_per_sec,
                s.rate_limit.messages_burst,
                s.rate_limit.auth_per_min
            ),
            (10, 20, 20)
        );
        assert!(!s.cookie_secure(), "development cookies are not Secure");
        assert_eq!(s.sse.write_timeout_secs, 30);
        assert_eq!(
            (
                s.server.max_connections,
                s.server.body_timeout_secs,
                s.server.head_timeout_secs,
                s.server.disconnect_timeout_secs
            ),
            (1024, 10, 5, 1)
        );
        assert!(
            s.metrics.token.is_none() && s.metrics.listen.is_none(),
            "metrics are open to loopback peers by default"
        );
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let mut s = Settings::defaults();
        s.sse.heartbeat_secs = 0;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("sse.heartbeat_secs"), "error was: {e}");
    }

    #[test]
    fn a_cidr_contains_its_network_only() {
        let net: Cidr = "10.0.0.0/8".parse().expect("a CIDR");
        assert!(net.contains("10.200.0.1".parse().expect("ip")));
        assert!(!net.contains("11.0.0.1".parse().expect("ip")));
        assert!(
            net.contains("::ffff:10.0.0.1".parse().expect("ip")),
            "IPv4-mapped IPv6 counts as IPv4"
        );
        let one: Cidr = "::1".parse().expect("a bare address");
        assert!(one.contains("::1".parse().expect("ip")));
        assert!(!one.contains("::2".parse().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("everything");
        assert!(all.contains("203.0.113.5".parse().expect("ip")));
    }

    #[test]
    fn a_bad_cidr_names_its_key() {
        for bad in ["10.0.0.0/33", "10.0.0.1/8", "example.com", "10.0.0.0/x"] {
            let e = bad.parse::<Cidr>().expect_err(bad);
            assert!(e.contains("server.trusted_proxies"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_public_origin_must_be_a_bare_origin() {
        let mut s = Settings::defaults();
        s.server.public_origin = Some("https://chat.example/app".to_owned());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("server.public_origin"), "error was: {e}");
        s.server.public_origin = Some("https://chat.example:8443".to_owned());
        s.validate().expect("scheme://host:port is fine");
    }

    #[test]
    fn the_database_url_is_sqlite_or_postgres() {
        let mut s = Settings::defaults();
        for good in [
            "sqlite://data/x.db?mode=rwc",
            "postgres://chat@db.internal/chat",
            "postgresql://chat@db.internal/chat",
        ] {
            s.database.url = good.to_owned();
            s.validate().unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        s.database.url = "mysql://chat@db.internal/chat".to_owned();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("database.url"), "error was: {e}");
    }

    #[test]
    fn retention_settings_out_of_range_are_refused_naming_their_key() {
        type Spoil = fn(&mut Settings);
        let cases: [(&str, Spoil); 4] = [
            ("history.sweep_secs", |s| s.history.sweep_secs = 0),
            ("history.sweep_batch", |s| s.history.sweep_batch = 0),
            ("history.sweep_batch", |s| s.history.sweep_batch = 10_001),
            ("history.retain_days", |s| s.history.retain_days = 36_501),
        ];
        for (key, spoil) in cases {
            let mut s = Settings::defaults();
            spoil(&mut s);
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn zero_rates_are_refused_naming_their_key() {
        for key in [
            "rate_limit.messages_per_sec",
            "rate_limit.messages_burst",
            "rate_limit.auth_per_min",
        ] {
            let mut s = Settings::defaults();
            match key {
                "rate_limit.messages_per_sec" => s.rate_limit.messages_per_sec = 0,
                "rate_limit.messages_burst" => s.rate_limit.messages_burst = 0,
                _ => s.rate_limit.auth_per_min = 0,
            }
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(key), "error for {key} was: {e}");
        }
    }

    #[test]
    fn a_write_delay_over_a_second_or_a_read_cache_over_a_minute_is_refused() {
        let mut s = Settings::defaults();
        s.sse.write_delay_ms = 1001;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("sse.write_delay_ms"), "error was: {e}");
        let mut s = Settings::defaults();
        s.database.read_cache_ms = 60_001;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("database.read_cache_ms"), "error was: {e}");
    }

    #[test]
    fn zero_hashing_threads_are_refused() {
        let mut s = Settings::defaults();
        s.password.hash_threads = Some(0);
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("password.hash_threads"), "error was: {e}");
    }

    #[test]
    fn trusted_proxies_may_be_one_comma_separated_string() {
        let s: Settings = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .set_override("server.trusted_proxies", "10.0.0.0/8, ::1")
            .and_then(|b| b.build())
            .and_then(|c| c.try_deserialize())
            .expect("a comma-separated list deserializes");
        let expected: Vec<Cidr> = ["10.0.0.0/8", "::1"]
            .iter()
            .map(|c| c.parse().expect("a CIDR"))
            .collect();
        assert_eq!(s.server.trusted_proxies, expected);
    }

    #[test]
    fn a_metrics_listen_that_is_not_an_address_is_refused() {
        let mut s = Settings::defaults();
        s.metrics.listen = Some("localhost".to_owned());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("metrics.listen"), "error was: {e}");
    }
}
