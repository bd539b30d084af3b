//! Configuration of a [`crate::Tenantry`] handle, from the environment or code.

use std::time::Duration;

use crate::error::ServiceError;

/// How to reach the database. Read once at start-up.
#[derive(Debug, Clone)]
pub struct TenantryConfig {
    /// `TENANTRY_APP_DATABASE_URL`: a login in `tenantry_app` (never the owner).
    pub app_url: String,
    /// `TENANTRY_SUPERADMIN_DATABASE_URL`: a login in `tenantry_superadmin`; without it the
    /// superadmin escape is unavailable.
    pub superadmin_url: Option<String>,
    /// `TENANTRY_POOL_MAX` (default 16): connections of the app pool.
    pub pool_max: u32,
    /// `TENANTRY_POOL_MIN` (default 0).
    pub pool_min: u32,
    /// `TENANTRY_ACQUIRE_TIMEOUT_MS` (default 5000): waiting for a pooled connection.
    pub acquire_timeout: Duration,
    /// `TENANTRY_STATEMENT_TIMEOUT_MS` (default 30000, 0 = none): per statement, server side.
    pub statement_timeout: Duration,
    /// `TENANTRY_LAST_USED_INTERVAL_SECS` (default 60): how often an API key's `last_used_at`
    /// is written at most.
    pub last_used_interval: Duration,
    /// `TENANTRY_AUTH_CACHE_SECS` (default 30 from the environment, 0 = off; off in
    /// [`TenantryConfig::new`]): how long a successful API-key authentication is cached at
    /// most. Changes end it at once through `LISTEN tenantry_auth` ([`crate::auth_cache`]).
    pub auth_cache_ttl: Option<Duration>,
    /// `TENANTRY_AUTH_LISTEN_DATABASE_URL` (default: the app URL): where the cache's listener
    /// connects. Point it at PostgreSQL itself when the app URL goes through PgBouncer in
    /// transaction mode, where `LISTEN` does not work.
    pub auth_listen_url: Option<String>,
    /// `TENANTRY_AUTH_HEARTBEAT_MS` (default 5000): how often the cache proves its listener
    /// hears, by a heartbeat notification sent through the app pool; after
    /// [`crate::auth_cache::HEARTBEAT_MISSES`] unanswered ones the cache is flushed and unused
    /// until the listener hears again ([`crate::auth_cache`]).
    pub auth_heartbeat_interval: Duration,
    /// `TENANTRY_PREPARED_STATEMENTS` (default `on`; `off` or `on`): whether the one-round-trip
    /// path prepares each statement once per connection and then only binds and executes it
    /// (`on`), or sends it unnamed every time (`off`). With `on`, statements are named only on
    /// connections that talk to their server session directly, which each new connection
    /// checks (its cancel key names the backend answering it); behind a pooler the pool sends
    /// unnamed statements by itself (`pipeline/statements.rs`). The sqlx pool is not affected:
    /// SeaORM's sqlx driver always prepares named statements.
    pub prepared_statements: bool,
}

impl TenantryConfig {
    /// A configuration with defaults for everything but the app URL.
    pub fn new(app_url: impl Into<String>) -> Self {
        Self {
            app_url: app_url.into(),
            superadmin_url: None,
            pool_max: 16,
            pool_min: 0,
            acquire_timeout: Duration::from_millis(5000),
            statement_timeout: Duration::from_millis(30_000),
            last_used_interval: Duration::from_secs(60),
            auth_cache_ttl: None,
            auth_listen_url: None,
            auth_heartbeat_interval: Duration::from_millis(5000),
            prepared_statements: true,
        }
    }

    /// Reads the `TENANTRY_*` variables documented on each field.
    pub fn from_env() -> Result<Self, ServiceError> {
        let app_url = std::env::var("TENANTRY_APP_DATABASE_URL").map_err(|_| {
            ServiceError::Unavailable("TENANTRY_APP_DATABASE_URL is not set".into())
        })?;
        let mut config = Self::new(app_url);
        config.superadmin_url = std::env::var("TENANTRY_SUPERADMIN_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty());
        config.pool_max = env_num("TENANTRY_POOL_MAX", 16)? as u32;
        config.pool_min = env_num("TENANTRY_POOL_MIN", 0)? as u32;
        config.acquire_timeout =
            Duration::from_millis(env_num("TENANTRY_ACQUIRE_TIMEOUT_MS", 5000)?);
        config.statement_timeout =
            Duration::from_millis(env_num("TENANTRY_STATEMENT_TIMEOUT_MS", 30_000)?);
        config.last_used_interval =
            Duration::from_secs(env_num("TENANTRY_LAST_USED_INTERVAL_SECS", 60)?);
        let ttl = env_num("TENANTRY_AUTH_CACHE_SECS", 30)?;
        config.auth_cache_ttl = (ttl > 0).then(|| Duration::from_secs(ttl));
        config.auth_listen_url = std::env::var("TENANTRY_AUTH_LISTEN_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty());
        config.auth_heartbeat_interval =
            Duration::from_millis(env_num("TENANTRY_AUTH_HEARTBEAT_MS", 5000)?.max(1));
        config.prepared_statements = match std::env::var("TENANTRY_PREPARED_STATEMENTS") {
            Err(_) => true,
            Ok(v) => match v.as_str() {
                "on" | "" => true,
                "off" => false,
                _ => {
                    return Err(ServiceError::invalid(
                        "TENANTRY_PREPARED_STATEMENTS",
                        "must be on or off",
                    ));
                }
            },
        };
        Ok(config)
    }

    /// Caches successful API-key authentications for at most `ttl` (see
    /// [`TenantryConfig::auth_cache_ttl`]).
    pub fn with_auth_cache(mut self, ttl: Duration) -> Self {
        self.auth_cache_ttl = Some(ttl);
        self
    }

    /// Points the cache's listener at `url` (see [`TenantryConfig::auth_listen_url`]).
    pub fn with_auth_listen_url(mut self, url: impl Into<String>) -> Self {
        self.auth_listen_url = Some(url.into());
        self
    }

    /// Sets the cache's heartbeat interval (see [`TenantryConfig::auth_heartbeat_interval`]).
    pub fn with_auth_heartbeat(mut self, interval: Duration) -> Self {
        self.auth_heartbeat_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Sets the superadmin URL.
    pub fn with_superadmin(mut self, url: impl Into<String>) -> Self {
        self.superadmin_url = Some(url.into());
        self
    }

    /// Prepares statements once per connection, or never (see
    /// [`TenantryConfig::prepared_statements`]).
    pub fn with_prepared_statements(mut self, on: bool) -> Self {
        self.prepared_statements = on;
        self
    }

    /// Sets the app pool's size.
    pub fn with_pool(mut self, max: u32) -> Self {
        self.pool_max = max.max(1);
        self
    }
}

fn env_num(name: &'static str, default: u64) -> Result<u64, ServiceError> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| ServiceError::invalid(name, "must be a whole number")),
        Err(_) => Ok(default),
    }
}
