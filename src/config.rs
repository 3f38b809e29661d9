//! Configuration: the built-in `config/default.toml`, then `config/{environment}.toml`, then
//! `ROOMCAST__SECTION__KEY` environment variables. Loaded and checked once at start-up; a bad
//! value stops start-up with a message that names the key.

use std::path::PathBuf;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

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
    /// Admin API access.
    #[serde(default)]
    pub admin: AdminSettings,
    /// Event streams.
    pub sse: SseSettings,
    /// Replay on resume.
    pub history: HistorySettings,
    /// Input caps.
    pub limits: LimitSettings,
    /// Abuse protection.
    pub rate_limit: RateLimitSettings,
    /// Logging.
    pub log: LogSettings,
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
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
    /// Read pool size.
    pub max_connections: u32,
    /// SQLite durability level.
    pub sqlite_synchronous: SqliteSync,
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
    /// Idle lifetime of a session.
    pub ttl_hours: u64,
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
}

/// `[history]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    /// Most events replayed on one resume.
    pub replay_limit: u32,
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
}

/// `[rate_limit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Per user, sustained rate of messages and custom events.
    pub messages_per_sec: u32,
    /// Per user, burst allowance.
    pub messages_burst: u32,
    /// Per client IP, logins and registrations per minute.
    pub auth_per_min: u32,
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

    /// Checks ranges the types cannot express; the error names the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        fn check(ok: bool, key: &str, rule: &str) -> anyhow::Result<()> {
            anyhow::ensure!(ok, "configuration: `{key}` {rule}");
            Ok(())
        }
        check(
            self.server.workers != Some(0),
            "server.workers",
            "must be at least 1",
        )?;
        check(
            self.database.max_connections >= 1,
            "database.max_connections",
            "must be at least 1",
        )?;
        check(
            self.database.url.starts_with("sqlite:"),
            "database.url",
            "must be a sqlite:// URL (PostgreSQL support is not built in yet)",
        )?;
        for (value, key) in [
            (self.limits.streams_per_user, "limits.streams_per_user"),
            (
                self.limits.streams_per_session,
                "limits.streams_per_session",
            ),
            (self.limits.max_streams, "limits.max_streams"),
            (self.limits.rooms_per_user, "limits.rooms_per_user"),
        ] {
            check(value >= 1, key, "must be at least 1")?;
        }
        check(
            self.session.ttl_hours >= 1,
            "session.ttl_hours",
            "must be at least 1",
        )?;
        if let Some(secret) = &self.session.secret {
            check(
                secret.expose().len() >= 32,
                "session.secret",
                "must be at least 32 bytes",
            )?;
        }
        if let Some(token) = &self.admin.api_token {
            check(
                token.expose().len() >= 16,
                "admin.api_token",
                "must be at least 16 characters",
            )?;
        }
        check(
            self.sse.heartbeat_secs >= 1,
            "sse.heartbeat_secs",
            "must be at least 1",
        )?;
        check(
            self.sse.queue_capacity >= 1,
            "sse.queue_capacity",
            "must be at least 1",
        )?;
        check(
            self.history.replay_limit >= 1,
            "history.replay_limit",
            "must be at least 1",
        )?;
        check(
            self.limits.body_bytes >= 1024,
            "limits.body_bytes",
            "must be at least 1024",
        )?;
        check(
            self.limits.message_chars >= 1,
            "limits.message_chars",
            "must be at least 1",
        )?;
        check(
            self.rate_limit.messages_per_sec >= 1,
            "rate_limit.messages_per_sec",
            "must be at least 1",
        )?;
        check(
            self.rate_limit.messages_burst >= 1,
            "rate_limit.messages_burst",
            "must be at least 1",
        )?;
        check(
            self.rate_limit.auth_per_min >= 1,
            "rate_limit.auth_per_min",
            "must be at least 1",
        )?;
        Ok(())
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
    fn defaults_are_valid_and_match_the_contract() {
        let s = Settings::defaults();
        s.validate().expect("defaults validate");
        assert_eq!((s.server.host.as_str(), s.server.port), ("127.0.0.1", 8080));
        assert_eq!(s.sse.heartbeat_secs, 15);
        assert_eq!(s.sse.queue_capacity, 1024);
        assert_eq!(s.history.replay_limit, 1000);
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
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let mut s = Settings::defaults();
        s.sse.heartbeat_secs = 0;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("sse.heartbeat_secs"), "error was: {e}");
    }
}
