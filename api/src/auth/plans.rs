//! Per-tenant rate limits by plan: all of a tenant's API keys together get at most its plan's
//! requests per minute (on top of each key's own limit).
//!
//! The plan is read from the tenant's row (in the tenant's own transaction) at most once per
//! [`PLAN_FRESH_FOR`] per tenant and cached, so a plan change takes effect within that time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use service::{TenantContext, Tenantry, tenants};
use uuid::Uuid;

use crate::auth::rate_limit::retry_after_secs;
use crate::config::ConfigError;
use crate::problem::{Problem, ProblemKind};
use crate::state::AppState;

/// How long a tenant's plan is trusted.
pub const PLAN_FRESH_FOR: Duration = Duration::from_secs(60);

/// Requests per minute of each plan, over all of a tenant's API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// `free` (default 120).
    pub free: u32,
    /// `pro` (default 1200).
    pub pro: u32,
    /// `enterprise` (default 6000).
    pub enterprise: u32,
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self {
            free: 120,
            pro: 1200,
            enterprise: 6000,
        }
    }
}

impl PlanLimits {
    /// The limit of `plan` (an unknown plan gets the free one's).
    pub fn per_minute(&self, plan: &str) -> u32 {
        match plan {
            "enterprise" => self.enterprise,
            "pro" => self.pro,
            _ => self.free,
        }
    }

    /// Parses `free=120,pro=1200,enterprise=6000` (any subset; the others keep their default).
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        const NAME: &str = "TENANTRY_PLAN_RATE_LIMITS";
        let invalid = |reason: String| ConfigError::Invalid { name: NAME, reason };
        let mut limits = Self::default();
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (plan, n) = part
                .split_once('=')
                .ok_or_else(|| invalid(format!("`{part}` is not plan=requests_per_minute")))?;
            let n: u32 =
                n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    invalid(format!("`{part}`: the limit must be a positive number"))
                })?;
            match plan.trim() {
                "free" => limits.free = n,
                "pro" => limits.pro = n,
                "enterprise" => limits.enterprise = n,
                other => {
                    return Err(invalid(format!(
                        "unknown plan `{other}` (free, pro or enterprise)"
                    )));
                }
            }
        }
        Ok(limits)
    }
}

/// The cache of tenants' plans.
#[derive(Default)]
pub struct PlanCache {
    plans: Mutex<HashMap<Uuid, (String, Instant)>>,
}

impl PlanCache {
    /// The plan of `ctx`'s tenant, from the cache or its row.
    pub async fn plan(&self, tenantry: &Tenantry, ctx: &TenantContext) -> Result<String, Problem> {
        let tenant = ctx.tenant_id();
        {
            let map = self.plans.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((plan, at)) = map.get(&tenant)
                && at.elapsed() < PLAN_FRESH_FOR
            {
                return Ok(plan.clone());
            }
        }
        let row = tenantry
            .with_tenant(ctx, async |tx| tenants::current(tx).await)
            .await?;
        let mut map = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= crate::auth::rate_limit::MAX_LIMITERS {
            map.retain(|_, (_, at)| at.elapsed() < PLAN_FRESH_FOR);
        }
        map.insert(tenant, (row.plan.clone(), Instant::now()));
        Ok(row.plan)
    }
}

/// Takes one request from the allowance of `ctx`'s tenant (its plan's limit, shared by all of
/// its API keys), or answers 429 `rate-limited` with `Retry-After`.
pub async fn admit_tenant(state: &AppState, ctx: &TenantContext) -> Result<(), Problem> {
    let plan = state.plans().plan(state.tenantry(), ctx).await?;
    let per_minute = state.config().plan_rate_limits.per_minute(&plan);
    state
        .tenant_rate_limits()
        .check(ctx.tenant_id(), Some(per_minute))
        .map_err(|wait| {
            Problem::new(ProblemKind::RateLimited)
                .detail(format!(
                    "this tenant's {plan} plan allows {per_minute} API-key requests per minute; retry later"
                ))
                .retry_after(retry_after_secs(wait))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_plans() {
        let l = PlanLimits::parse("free=10, enterprise=99").unwrap();
        assert_eq!((l.free, l.pro, l.enterprise), (10, 1200, 99));
        assert_eq!(l.per_minute("unknown"), 10);
        assert!(PlanLimits::parse("gold=5").is_err());
        assert!(PlanLimits::parse("free=0").is_err());
        assert!(PlanLimits::parse("free").is_err());
    }
}
