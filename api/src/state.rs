//! The state every handler shares: the service handle, the configuration, the token keys,
//! the per-key rate limiters, the quota cache, the request meter and the readiness probe.

use std::sync::Arc;

use service::Tenantry;

use crate::auth::meter::Meter;
use crate::auth::quota::QuotaCache;
use crate::auth::rate_limit::RateLimits;
use crate::auth::token::TokenKeys;
use crate::config::ApiConfig;
use crate::readiness::Readiness;

/// The application's shared state. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    tenantry: Tenantry,
    config: ApiConfig,
    tokens: TokenKeys,
    rate_limits: RateLimits,
    quotas: QuotaCache,
    meter: Meter,
    readiness: Readiness,
}

impl AppState {
    /// Builds the state over a connected service handle.
    pub fn new(tenantry: Tenantry, config: ApiConfig) -> Self {
        let tokens = TokenKeys::new(&config.jwt_secret, config.token_ttl);
        let rate_limits = RateLimits::new(config.default_rate_limit_per_minute);
        let readiness = Readiness::new(config.ready_database_url.clone());
        let meter = Meter::new(tenantry.clone(), config.meter_flush_interval);
        Self(Arc::new(Inner {
            meter,
            tenantry,
            config,
            tokens,
            rate_limits,
            quotas: QuotaCache::default(),
            readiness,
        }))
    }

    /// The service.
    pub fn tenantry(&self) -> &Tenantry {
        &self.0.tenantry
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.0.config
    }

    /// Signs and verifies access tokens.
    pub fn tokens(&self) -> &TokenKeys {
        &self.0.tokens
    }

    /// The per-API-key rate limiters.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.0.rate_limits
    }

    /// The monthly-quota cache.
    pub fn quotas(&self) -> &QuotaCache {
        &self.0.quotas
    }

    /// The request meter (batched usage events).
    pub fn meter(&self) -> &Meter {
        &self.0.meter
    }

    /// The `/readyz` probe.
    pub fn readiness(&self) -> &Readiness {
        &self.0.readiness
    }
}
