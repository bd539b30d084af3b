//! Rate limits (GCRA, via governor): per API key, per tenant (its plan's limit, over all of its
//! keys together), and per client address on the unauthenticated routes.
//!
//! Each key of a [`RateLimits`] gets its own limiter with its own quota: a burst of that many
//! requests, refilled evenly over a minute. A key whose configured limit changes gets a fresh
//! limiter. Limits live in this process: N API processes behind a balancer each allow the full
//! rate (ARCHITECTURE.md, "Rate limits are per process", has the arithmetic).

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::client_addr::ClientAddr;
use crate::problem::{Problem, ProblemKind};
use crate::state::AppState;

/// Keys tracked at most by one [`RateLimits`]; when full, limiters that are back at a full
/// allowance (indistinguishable from fresh ones) are dropped.
pub const MAX_LIMITERS: usize = 100_000;

/// The limiters, keyed by `K` (an API key's id by default).
pub struct RateLimits<K = Uuid> {
    default_per_minute: u32,
    clock: DefaultClock,
    limiters: Mutex<HashMap<K, (u32, Arc<DefaultDirectRateLimiter>)>>,
}

impl<K: Hash + Eq + Clone> RateLimits<K> {
    /// Limiters with `default_per_minute` for keys without their own limit.
    pub fn new(default_per_minute: u32) -> Self {
        Self {
            default_per_minute: default_per_minute.max(1),
            clock: DefaultClock::default(),
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s allowance; `Err(wait)` when it is exhausted.
    pub fn check(&self, key: K, per_minute: Option<u32>) -> Result<(), Duration> {
        let per_minute = per_minute.unwrap_or(self.default_per_minute).max(1);
        let limiter = {
            let mut map = self
                .limiters
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match map.get(&key) {
                Some((n, limiter)) if *n == per_minute => limiter.clone(),
                _ => {
                    if map.len() >= MAX_LIMITERS {
                        map.retain(|_, (n, l)| {
                            NonZeroU32::new(*n).is_some_and(|n| matches!(l.check_n(n), Ok(Err(_))))
                        });
                    }
                    let quota =
                        Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
                    let limiter = Arc::new(RateLimiter::direct(quota));
                    map.insert(key, (per_minute, limiter.clone()));
                    limiter
                }
            }
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Routes exempt from the per-address limit: liveness must answer whatever the load.
pub const ADDRESS_LIMIT_EXEMPT: &[&str] = &["/healthz"];

/// Middleware of the unauthenticated routes: one request from the client address's allowance
/// (`TENANTRY_ADDRESS_RATE_LIMIT_PER_MINUTE`), or 429 `rate-limited` with `Retry-After`.
pub async fn limit_address(
    State(state): State<AppState>,
    client: ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    let exempt = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| ADDRESS_LIMIT_EXEMPT.contains(&p.as_str()));
    if !exempt && let Err(wait) = state.address_rate_limits().check(client.0, None) {
        return Problem::new(ProblemKind::RateLimited)
            .detail("too many requests from this address; retry later")
            .retry_after(retry_after_secs(wait))
            .into_response();
    }
    next.run(request).await
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse() {
        let limits = RateLimits::new(600);
        let key = Uuid::new_v4();
        assert!(limits.check(key, Some(2)).is_ok());
        assert!(limits.check(key, Some(2)).is_ok());
        let wait = limits.check(key, Some(2)).unwrap_err();
        assert!(retry_after_secs(wait) >= 1 && retry_after_secs(wait) <= 30);
        // Another key is unaffected.
        assert!(limits.check(Uuid::new_v4(), Some(2)).is_ok());
    }

    #[test]
    fn any_key_type() {
        let limits = RateLimits::<std::net::IpAddr>::new(1);
        let ip = "192.0.2.9".parse().unwrap();
        assert!(limits.check(ip, None).is_ok());
        assert!(limits.check(ip, None).is_err());
    }
}
