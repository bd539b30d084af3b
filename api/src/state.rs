//! The state every handler shares: the service handle, the configuration, the token keys,
//! the rate limiters (per key, tenant and client address), the sign-in throttle and password
//! pool, the plan and quota caches, the request meter and the readiness probe.

use std::net::IpAddr;
use std::sync::Arc;

use service::Tenantry;

use crate::auth::login_throttle::LoginThrottle;
use crate::auth::meter::Meter;
use crate::auth::password::PasswordPool;
use crate::auth::plans::PlanCache;
use crate::auth::quota::QuotaCache;
use crate::auth::rate_limit::RateLimits;
use crate::auth::token::TokenKeys;
use crate::config::ApiConfig;
use crate::readiness::Readiness;
use uuid::Uuid;

/// The application's shared state. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    tenantry: Tenantry,
    config: ApiConfig,
    tokens: TokenKeys,
    rate_limits: RateLimits,
    tenant_rate_limits: RateLimits<Uuid>,
    address_rate_limits: RateLimits<IpAddr>,
    login_throttle: LoginThrottle,
    password_pool: PasswordPool,
    plans: PlanCache,
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
        let tenant_rate_limits = RateLimits::new(config.plan_rate_limits.free);
        let address_rate_limits = RateLimits::new(config.address_rate_limit_per_minute);
        let login_throttle =
            LoginThrottle::new(config.login_account_policy, config.login_address_policy);
        let password_pool = PasswordPool::new(config.password_workers);
        Self(Arc::new(Inner {
            meter,
            tenantry,
            config,
            tokens,
            rate_limits,
            tenant_rate_limits,
            address_rate_limits,
            login_throttle,
            password_pool,
            plans: PlanCache::default(),
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

    /// The per-tenant (plan) rate limiters.
    pub fn tenant_rate_limits(&self) -> &RateLimits<Uuid> {
        &self.0.tenant_rate_limits
    }

    /// The per-client-address rate limiters of the unauthenticated routes.
    pub fn address_rate_limits(&self) -> &RateLimits<IpAddr> {
        &self.0.address_rate_limits
    }

    /// Failed sign-ins per account and address.
    pub fn login_throttle(&self) -> &LoginThrottle {
        &self.0.login_throttle
    }

    /// The bounded pool sign-ins verify passwords through.
    pub fn password_pool(&self) -> &PasswordPool {
        &self.0.password_pool
    }

    /// The tenants' plans.
    pub fn plans(&self) -> &PlanCache {
        &self.0.plans
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
