//! Per-API-key rate limits (GCRA, via governor).
//!
//! Each key gets its own limiter with its own quota (`rate_limit_per_minute`, or the default):
//! a burst of that many requests, refilled evenly over a minute. A key whose configured limit
//! changes gets a fresh limiter. Limits live in this process: several API processes each allow
//! the full rate (see the README).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

/// The limiters, keyed by API key id.
pub struct RateLimits {
    default_per_minute: u32,
    clock: DefaultClock,
    limiters: Mutex<HashMap<Uuid, (u32, Arc<DefaultDirectRateLimiter>)>>,
}

impl RateLimits {
    /// Limiters with `default_per_minute` for keys without their own limit.
    pub fn new(default_per_minute: u32) -> Self {
        Self {
            default_per_minute: default_per_minute.max(1),
            clock: DefaultClock::default(),
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s allowance; `Err(wait)` when it is exhausted.
    pub fn check(&self, key: Uuid, per_minute: Option<u32>) -> Result<(), Duration> {
        let per_minute = per_minute.unwrap_or(self.default_per_minute).max(1);
        let limiter = {
            let mut map = self
                .limiters
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match map.get(&key) {
                Some((n, limiter)) if *n == per_minute => limiter.clone(),
                _ => {
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
}
