//! Ranges the types cannot express, checked once at start-up, one section at a time; every
//! error names its key.

use std::fmt::Display;

use super::{
    ClusterSettings, DatabaseSettings, HistorySettings, LimitSettings, MAX_CLUSTER_EVENT_DATA,
    MetricsSettings, PasswordSettings, RateLimitSettings, ServerSettings, SessionSettings,
    Settings, SseSettings, TokenSettings, WebhookSettings,
};

type Checked = anyhow::Result<()>;

/// Fails with "configuration: `key` rule" unless `ok`.
fn rule(ok: bool, key: &str, rule: impl Display) -> Checked {
    anyhow::ensure!(ok, "configuration: `{key}` {rule}");
    Ok(())
}

/// `key` must be at least `min`.
fn at_least<T: PartialOrd + Display>(key: &str, value: T, min: T) -> Checked {
    rule(value >= min, key, format_args!("must be at least {min}"))
}

/// `key` must be at most `max`.
fn at_most<T: PartialOrd + Display>(key: &str, value: T, max: T) -> Checked {
    rule(value <= max, key, format_args!("must be at most {max}"))
}

/// An optional secret, when set, must be at least `min` characters long.
fn long_enough(key: &str, value: Option<&str>, min: usize) -> Checked {
    match value {
        Some(v) => rule(
            v.len() >= min,
            key,
            format_args!("must be at least {min} characters"),
        ),
        None => Ok(()),
    }
}

impl Settings {
    /// Checks ranges the types cannot express; the error names the key.
    pub fn validate(&self) -> Checked {
        self.server.validate()?;
        self.database.validate()?;
        self.session.validate()?;
        self.password.validate()?;
        long_enough(
            "admin.api_token",
            self.admin.api_token.as_ref().map(|t| t.expose()),
            16,
        )?;
        self.sse.validate()?;
        self.metrics.validate()?;
        self.history.validate()?;
        self.limits.validate()?;
        self.rate_limit.validate()?;
        self.tokens.validate()?;
        self.webhooks.validate()?;
        self.cluster.validate()
    }
}

impl ServerSettings {
    fn validate(&self) -> Checked {
        at_least("server.workers", self.workers.unwrap_or(1), 1)?;
        if let Some(origin) = &self.public_origin {
            rule(
                crate::domain::Origin::parse_bare(origin).is_some(),
                "server.public_origin",
                "must be scheme://host[:port] with scheme http or https and no path",
            )?;
        }
        at_least("server.max_connections", self.max_connections, 1)?;
        at_least("server.listen_backlog", self.listen_backlog, 1)?;
        at_most("server.listen_backlog", self.listen_backlog, 65_535)?;
        at_least("server.body_timeout_secs", self.body_timeout_secs, 1)?;
        at_least("server.head_timeout_secs", self.head_timeout_secs, 1)?;
        at_least(
            "server.disconnect_timeout_secs",
            self.disconnect_timeout_secs,
            1,
        )
    }
}

impl DatabaseSettings {
    fn validate(&self) -> Checked {
        at_least("database.max_connections", self.max_connections, 1)?;
        rule(
            ["sqlite:", "postgres:", "postgresql:"]
                .iter()
                .any(|scheme| self.url.starts_with(scheme)),
            "database.url",
            "must be a sqlite:// or postgres:// URL",
        )?;
        at_most("database.read_cache_ms", self.read_cache_ms, 60_000)?;
        rule(
            (50..=10_000).contains(&self.account_poll_ms),
            "database.account_poll_ms",
            "must be 50 to 10000",
        )
    }
}

impl SessionSettings {
    fn validate(&self) -> Checked {
        at_least("session.ttl_hours", self.ttl_hours, 1)?;
        rule(
            self.touch_interval_secs >= 1
                && self.touch_interval_secs < self.ttl_hours.saturating_mul(3600),
            "session.touch_interval_secs",
            "must be at least 1 and less than session.ttl_hours",
        )?;
        at_least("session.purge_interval_secs", self.purge_interval_secs, 1)?;
        match &self.secret {
            Some(secret) => rule(
                secret.expose().len() >= 32,
                "session.secret",
                "must be at least 32 bytes",
            ),
            None => Ok(()),
        }
    }
}

impl PasswordSettings {
    fn validate(&self) -> Checked {
        at_least("password.hash_threads", self.hash_threads.unwrap_or(1), 1)
    }
}

impl SseSettings {
    fn validate(&self) -> Checked {
        at_least("sse.heartbeat_secs", self.heartbeat_secs, 1)?;
        at_least("sse.queue_capacity", self.queue_capacity, 1)?;
        at_least("sse.write_timeout_secs", self.write_timeout_secs, 1)?;
        at_most("sse.write_delay_ms", self.write_delay_ms, 1000)?;
        at_most(
            "sse.presence_coalesce_ms",
            self.presence_coalesce_ms,
            60_000,
        )?;
        at_most("sse.reconnect_rate", self.reconnect_rate, 1_000_000)
    }
}

impl MetricsSettings {
    fn validate(&self) -> Checked {
        long_enough("metrics.token", self.token.as_deref(), 16)?;
        match &self.listen {
            Some(listen) => rule(
                listen.parse::<std::net::SocketAddr>().is_ok(),
                "metrics.listen",
                "must be an IP:port address such as 127.0.0.1:9100",
            ),
            None => Ok(()),
        }
    }
}

impl HistorySettings {
    fn validate(&self) -> Checked {
        at_least("history.replay_limit", self.replay_limit, 1)?;
        at_least("history.replay_bytes", self.replay_bytes, 1024)?;
        // Past about 68 years a cutoff is before any stored time; the bound keeps the
        // arithmetic on dates far from overflow.
        at_most("history.retain_days", self.retain_days, 36_500)?;
        at_least("history.sweep_secs", self.sweep_secs, 1)?;
        at_most("history.sweep_secs", self.sweep_secs, 86_400)?;
        // Each batch is one short write transaction that posts wait behind.
        at_least("history.sweep_batch", self.sweep_batch, 1)?;
        at_most("history.sweep_batch", self.sweep_batch, 10_000)?;
        at_least("history.replays_at_once", self.replays_at_once, 1)?;
        at_most("history.replays_at_once", self.replays_at_once, 1024)
    }
}

impl LimitSettings {
    fn validate(&self) -> Checked {
        at_least("limits.streams_per_user", self.streams_per_user, 1)?;
        at_least("limits.streams_per_session", self.streams_per_session, 1)?;
        at_least("limits.max_streams", self.max_streams, 1)?;
        at_least("limits.rooms_per_user", self.rooms_per_user, 1)?;
        at_least(
            "limits.rooms_listed_per_user",
            self.rooms_listed_per_user,
            1,
        )?;
        at_least(
            "limits.rooms_created_per_user",
            self.rooms_created_per_user,
            1,
        )?;
        at_least("limits.body_bytes", self.body_bytes, 1024)?;
        at_least("limits.message_chars", self.message_chars, 1)?;
        // Custom events cross nodes as PostgreSQL notifications, whose payload is at most
        // 8,000 bytes; room, sender and event name take the rest.
        rule(
            self.event_data_bytes <= MAX_CLUSTER_EVENT_DATA,
            "limits.event_data_bytes",
            "must be at most 6000 (custom events cross nodes as PostgreSQL notifications)",
        )
    }
}

impl RateLimitSettings {
    fn validate(&self) -> Checked {
        at_least("rate_limit.messages_per_sec", self.messages_per_sec, 1)?;
        at_least("rate_limit.messages_burst", self.messages_burst, 1)?;
        at_least("rate_limit.auth_per_min", self.auth_per_min, 1)?;
        at_least("rate_limit.login_backoff_secs", self.login_backoff_secs, 1)?;
        at_least("rate_limit.subscribes_per_sec", self.subscribes_per_sec, 1)?;
        at_least("rate_limit.subscribes_burst", self.subscribes_burst, 1)?;
        at_least("rate_limit.removals_per_sec", self.removals_per_sec, 1)?;
        at_least("rate_limit.removals_burst", self.removals_burst, 1)?;
        at_least(
            "rate_limit.login_name_failures",
            self.login_name_failures,
            1,
        )?;
        at_most(
            "rate_limit.login_name_delay_ms",
            self.login_name_delay_ms,
            10_000,
        )?;
        rule(
            self.login_backoff_max_secs >= self.login_backoff_secs,
            "rate_limit.login_backoff_max_secs",
            "must be at least rate_limit.login_backoff_secs",
        )
    }
}

impl TokenSettings {
    fn validate(&self) -> Checked {
        at_least("tokens.per_user", self.per_user, 1)?;
        at_most("tokens.per_user", self.per_user, 1000)?;
        at_least("tokens.last_used_every_secs", self.last_used_every_secs, 1)
    }
}

impl WebhookSettings {
    fn validate(&self) -> Checked {
        at_most("webhooks.max", self.max, 1000)?;
        at_least("webhooks.timeout_secs", self.timeout_secs, 1)?;
        at_most("webhooks.timeout_secs", self.timeout_secs, 300)?;
        at_least("webhooks.backoff_first_ms", self.backoff_first_ms, 10)?;
        rule(
            self.backoff_max_secs * 1000 >= self.backoff_first_ms,
            "webhooks.backoff_max_secs",
            "must be at least webhooks.backoff_first_ms",
        )?;
        at_least("webhooks.response_bytes", self.response_bytes, 1)?;
        at_least("webhooks.batch", self.batch, 1)?;
        at_most("webhooks.batch", self.batch, 10_000)?;
        at_least("webhooks.poll_ms", self.poll_ms, 10)?;
        at_most("webhooks.save_every_ms", self.save_every_ms, 60_000)?;
        at_least("webhooks.lease_secs", self.lease_secs, 2)
    }
}

impl ClusterSettings {
    fn validate(&self) -> Checked {
        at_least("cluster.heartbeat_ms", self.heartbeat_ms, 100)?;
        rule(
            self.crashed_after_secs * 1000 >= 2 * self.heartbeat_ms,
            "cluster.crashed_after_secs",
            "must be at least two heartbeats",
        )?;
        rule(
            self.hung_after_secs >= self.crashed_after_secs,
            "cluster.hung_after_secs",
            "must be at least cluster.crashed_after_secs",
        )?;
        at_least("cluster.tail_every_ms", self.tail_every_ms, 10)?;
        at_least("cluster.relay_timeout_ms", self.relay_timeout_ms, 100)?;
        at_most("cluster.fanout_cache_ms", self.fanout_cache_ms, 10_000)?;
        at_most(
            "cluster.presence_settle_ms",
            self.presence_settle_ms,
            10_000,
        )?;
        long_enough("cluster.token", self.token.as_ref().map(|t| t.expose()), 32)
    }
}
