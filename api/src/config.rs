//! The API server's configuration, read once from `TENANTRY_*` variables.
//!
//! The database side (`TENANTRY_APP_DATABASE_URL`, pools, timeouts) is the service's
//! [`service::TenantryConfig`]; this is what only the HTTP layer needs.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::http::HeaderValue;

use crate::auth::login_throttle::LockoutPolicy;
use crate::auth::password::PasswordPool;
use crate::auth::plans::PlanLimits;

/// The smallest HS256 key we accept: 32 bytes, the output size of SHA-256.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is absent.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A variable is present but unusable.
    #[error("{name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The HS256 key that signs and verifies access tokens. Its `Debug` never prints it.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// Accepts a key of at least [`MIN_JWT_SECRET_BYTES`] bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: "TENANTRY_JWT_SECRET",
                reason: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            });
        }
        Ok(Self(bytes))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// The superadmin credential for `/admin`. Its `Debug` never prints it.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// Accepts a non-blank token of at least 16 characters (shorter ones are guessable).
    pub fn new(token: impl Into<String>) -> Result<Self, ConfigError> {
        let token = token.into();
        if token.trim().len() < 16 {
            return Err(ConfigError::Invalid {
                name: "TENANTRY_ADMIN_TOKEN",
                reason: "must be at least 16 characters".into(),
            });
        }
        Ok(Self(token))
    }

    /// The token's bytes, for a constant-time comparison.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// What the HTTP layer needs besides the service's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `TENANTRY_LISTEN` (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `TENANTRY_JWT_SECRET` (required, at least 32 bytes): the HS256 key of access tokens.
    pub jwt_secret: JwtSecret,
    /// How long an access token lives (one hour).
    pub token_ttl: Duration,
    /// `TENANTRY_BODY_LIMIT_BYTES` (default 2 MiB, room for the longest fields the document
    /// allows even when every character is sent as a JSON escape): larger request bodies get a
    /// 413 problem.
    pub body_limit_bytes: usize,
    /// `TENANTRY_REQUEST_TIMEOUT_MS` (default 30000): a request still running after this gets
    /// a 503 problem.
    pub request_timeout: Duration,
    /// `TENANTRY_ADMIN_TOKEN`: the bearer credential of `/admin`; absent, `/admin` answers 404.
    pub admin_token: Option<AdminToken>,
    /// `TENANTRY_READY_DATABASE_URL`: a login that may read `seaql_migrations`, used by
    /// `/readyz` to check that no migration is pending. Absent, `/readyz` tries the app login
    /// and reports the migrations as `unknown` when it lacks the privilege.
    pub ready_database_url: Option<String>,
    /// `TENANTRY_DEFAULT_RATE_LIMIT_PER_MINUTE` (default 600): for API keys without their own.
    pub default_rate_limit_per_minute: u32,
    /// How long a metered event waits in memory at most (default 1 s; see
    /// [`crate::auth::meter`]). Tests lengthen it to see the shutdown flush alone.
    pub meter_flush_interval: Duration,
    /// `TENANTRY_PLAN_RATE_LIMITS` (default `free=120,pro=1200,enterprise=6000`): requests per
    /// minute of all of a tenant's API keys together, by plan.
    pub plan_rate_limits: PlanLimits,
    /// `TENANTRY_ADDRESS_RATE_LIMIT_PER_MINUTE` (default 120): requests per minute of one client
    /// address to the unauthenticated routes but `/healthz` (sign-in, `/readyz`,
    /// `/openapi.json`).
    pub address_rate_limit_per_minute: u32,
    /// `TENANTRY_TRUSTED_PROXIES` (comma-separated addresses; default none): peers whose
    /// `X-Forwarded-For` names the client. Everyone else's is ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// Failed sign-ins per account: `TENANTRY_LOGIN_ACCOUNT_FREE_FAILURES` (default 5) free,
    /// then lockouts from `TENANTRY_LOGIN_LOCKOUT_BASE_MS` (1000) doubling up to
    /// `TENANTRY_LOGIN_LOCKOUT_MAX_SECS` (900).
    pub login_account_policy: LockoutPolicy,
    /// Failed sign-ins per client address: `TENANTRY_LOGIN_ADDRESS_FREE_FAILURES` (default 20)
    /// free, then the same lockouts.
    pub login_address_policy: LockoutPolicy,
    /// `TENANTRY_PASSWORD_WORKERS` (default half the cores, at least 1): password
    /// verifications at once; a sign-in finding them all busy gets a 503 at once.
    pub password_workers: usize,
    /// `TENANTRY_CORS_ORIGINS` (comma-separated origins such as `https://app.example.com`;
    /// default none: CORS off, browsers on other origins may not call the API).
    pub cors_origins: Vec<HeaderValue>,
}

impl ApiConfig {
    /// A configuration with defaults for everything but the token key.
    pub fn new(jwt_secret: JwtSecret) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            jwt_secret,
            token_ttl: Duration::from_secs(3600),
            body_limit_bytes: 2 * 1024 * 1024,
            request_timeout: Duration::from_millis(30_000),
            admin_token: None,
            ready_database_url: None,
            default_rate_limit_per_minute: 600,
            meter_flush_interval: crate::auth::meter::FLUSH_INTERVAL,
            plan_rate_limits: PlanLimits::default(),
            address_rate_limit_per_minute: 120,
            trusted_proxies: Vec::new(),
            login_account_policy: LockoutPolicy {
                free_failures: 5,
                base_lockout: Duration::from_millis(1000),
                max_lockout: Duration::from_secs(900),
            },
            login_address_policy: LockoutPolicy {
                free_failures: 20,
                base_lockout: Duration::from_millis(1000),
                max_lockout: Duration::from_secs(900),
            },
            password_workers: PasswordPool::default_size(),
            cors_origins: Vec::new(),
        }
    }

    /// Reads the variables documented on each field.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let secret =
            get("TENANTRY_JWT_SECRET").ok_or(ConfigError::Missing("TENANTRY_JWT_SECRET"))?;
        let mut config = Self::new(JwtSecret::new(secret.into_bytes())?);
        if let Some(listen) = get("TENANTRY_LISTEN") {
            config.listen = listen.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "TENANTRY_LISTEN",
                reason: "must be an address and port, e.g. 127.0.0.1:8080".into(),
            })?;
        }
        if let Some(v) = get("TENANTRY_BODY_LIMIT_BYTES") {
            config.body_limit_bytes = positive("TENANTRY_BODY_LIMIT_BYTES", &v)? as usize;
        }
        if let Some(v) = get("TENANTRY_REQUEST_TIMEOUT_MS") {
            config.request_timeout =
                Duration::from_millis(positive("TENANTRY_REQUEST_TIMEOUT_MS", &v)?);
        }
        if let Some(v) = get("TENANTRY_ADMIN_TOKEN") {
            config.admin_token = Some(AdminToken::new(v)?);
        }
        config.ready_database_url = get("TENANTRY_READY_DATABASE_URL");
        if let Some(v) = get("TENANTRY_DEFAULT_RATE_LIMIT_PER_MINUTE") {
            let n = positive("TENANTRY_DEFAULT_RATE_LIMIT_PER_MINUTE", &v)?;
            config.default_rate_limit_per_minute =
                u32::try_from(n).map_err(|_| ConfigError::Invalid {
                    name: "TENANTRY_DEFAULT_RATE_LIMIT_PER_MINUTE",
                    reason: "too large".into(),
                })?;
        }
        if let Some(v) = get("TENANTRY_PLAN_RATE_LIMITS") {
            config.plan_rate_limits = PlanLimits::parse(&v)?;
        }
        if let Some(v) = get("TENANTRY_ADDRESS_RATE_LIMIT_PER_MINUTE") {
            config.address_rate_limit_per_minute =
                positive_u32("TENANTRY_ADDRESS_RATE_LIMIT_PER_MINUTE", &v)?;
        }
        if let Some(v) = get("TENANTRY_TRUSTED_PROXIES") {
            config.trusted_proxies = list(&v)
                .map(|p| {
                    p.parse::<IpAddr>().map_err(|_| ConfigError::Invalid {
                        name: "TENANTRY_TRUSTED_PROXIES",
                        reason: format!("`{p}` is not an IP address"),
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = get("TENANTRY_LOGIN_ACCOUNT_FREE_FAILURES") {
            config.login_account_policy.free_failures =
                positive_u32("TENANTRY_LOGIN_ACCOUNT_FREE_FAILURES", &v)?;
        }
        if let Some(v) = get("TENANTRY_LOGIN_ADDRESS_FREE_FAILURES") {
            config.login_address_policy.free_failures =
                positive_u32("TENANTRY_LOGIN_ADDRESS_FREE_FAILURES", &v)?;
        }
        if let Some(v) = get("TENANTRY_LOGIN_LOCKOUT_BASE_MS") {
            let base = Duration::from_millis(positive("TENANTRY_LOGIN_LOCKOUT_BASE_MS", &v)?);
            config.login_account_policy.base_lockout = base;
            config.login_address_policy.base_lockout = base;
        }
        if let Some(v) = get("TENANTRY_LOGIN_LOCKOUT_MAX_SECS") {
            let max = Duration::from_secs(positive("TENANTRY_LOGIN_LOCKOUT_MAX_SECS", &v)?);
            config.login_account_policy.max_lockout = max;
            config.login_address_policy.max_lockout = max;
        }
        if let Some(v) = get("TENANTRY_PASSWORD_WORKERS") {
            config.password_workers = positive("TENANTRY_PASSWORD_WORKERS", &v)? as usize;
        }
        if let Some(v) = get("TENANTRY_CORS_ORIGINS") {
            config.cors_origins = list(&v)
                .map(|o| {
                    let ok = (o.starts_with("https://") || o.starts_with("http://"))
                        && !o.ends_with('/');
                    HeaderValue::from_str(o).ok().filter(|_| ok).ok_or_else(|| {
                        ConfigError::Invalid {
                            name: "TENANTRY_CORS_ORIGINS",
                            reason: format!("`{o}` is not an origin like https://app.example.com"),
                        }
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(config)
    }
}

/// The non-empty, trimmed items of a comma-separated list.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn positive_u32(name: &'static str, value: &str) -> Result<u32, ConfigError> {
    u32::try_from(positive(name, value)?).map_err(|_| ConfigError::Invalid {
        name,
        reason: "too large".into(),
    })
}

fn positive(name: &'static str, value: &str) -> Result<u64, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::Invalid {
            name,
            reason: "must be a positive whole number".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn secret_is_required_and_long_enough() {
        assert!(matches!(
            ApiConfig::from_lookup(lookup(&[])),
            Err(ConfigError::Missing("TENANTRY_JWT_SECRET"))
        ));
        assert!(ApiConfig::from_lookup(lookup(&[("TENANTRY_JWT_SECRET", "short")])).is_err());
    }

    #[test]
    fn defaults_and_overrides() {
        let secret = "0123456789abcdef0123456789abcdef";
        let c = ApiConfig::from_lookup(lookup(&[("TENANTRY_JWT_SECRET", secret)])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.body_limit_bytes, 2 * 1024 * 1024);
        assert!(c.admin_token.is_none());
        let c = ApiConfig::from_lookup(lookup(&[
            ("TENANTRY_JWT_SECRET", secret),
            ("TENANTRY_LISTEN", "0.0.0.0:9000"),
            ("TENANTRY_BODY_LIMIT_BYTES", "1024"),
            ("TENANTRY_REQUEST_TIMEOUT_MS", "250"),
            ("TENANTRY_ADMIN_TOKEN", "an-admin-token-of-some-length"),
        ]))
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.body_limit_bytes, 1024);
        assert_eq!(c.request_timeout, Duration::from_millis(250));
        assert!(c.admin_token.is_some());
        assert!(format!("{c:?}").contains("<redacted>"));
        assert!(!format!("{c:?}").contains(secret));
        assert!(
            ApiConfig::from_lookup(lookup(&[
                ("TENANTRY_JWT_SECRET", secret),
                ("TENANTRY_BODY_LIMIT_BYTES", "0")
            ]))
            .is_err()
        );
    }

    #[test]
    fn abuse_limits_and_origins() {
        let secret = "0123456789abcdef0123456789abcdef";
        let c = ApiConfig::from_lookup(lookup(&[
            ("TENANTRY_JWT_SECRET", secret),
            ("TENANTRY_TRUSTED_PROXIES", "10.0.0.1, ::1"),
            ("TENANTRY_LOGIN_ACCOUNT_FREE_FAILURES", "3"),
            ("TENANTRY_LOGIN_LOCKOUT_MAX_SECS", "60"),
            ("TENANTRY_PASSWORD_WORKERS", "2"),
            ("TENANTRY_PLAN_RATE_LIMITS", "free=7"),
            ("TENANTRY_CORS_ORIGINS", "https://app.example.com"),
        ]))
        .unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.login_account_policy.free_failures, 3);
        assert_eq!(c.login_address_policy.max_lockout, Duration::from_secs(60));
        assert_eq!(c.password_workers, 2);
        assert_eq!(c.plan_rate_limits.free, 7);
        assert_eq!(c.cors_origins.len(), 1);
        for (name, bad) in [
            ("TENANTRY_TRUSTED_PROXIES", "proxy.internal"),
            ("TENANTRY_CORS_ORIGINS", "*"),
            ("TENANTRY_CORS_ORIGINS", "https://app.example.com/"),
            ("TENANTRY_PASSWORD_WORKERS", "0"),
        ] {
            assert!(
                ApiConfig::from_lookup(lookup(&[("TENANTRY_JWT_SECRET", secret), (name, bad)]))
                    .is_err(),
                "{name}={bad}"
            );
        }
    }
}
