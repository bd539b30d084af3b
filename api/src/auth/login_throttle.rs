//! Failed-login throttling, per account and per client address, checked before any password
//! work.
//!
//! Each key (an account's normalised e-mail address, or a client address) counts its recent
//! failures. The first `free_failures` cost nothing; each one after that locks the key for
//! `base_lockout × 2^(n - 1)` (n = failures past the free ones), at most `max_lockout`. While a
//! key is locked, sign-ins for it answer 429 `rate-limited` with `Retry-After`, without reading
//! the database or hashing. The account key is the address as typed (normalised), whether or
//! not it exists, so the answers never tell which accounts exist. A successful sign-in clears
//! the account's failures (not the client address's: one success does not excuse a spray over
//! many accounts). Failures are forgotten `max_lockout` after the last one.
//!
//! The state lives in the process and is bounded: at most [`MAX_TRACKED`] keys per kind; when
//! full, forgotten entries are pruned first, then the oldest ones.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked per kind at most (accounts, addresses).
pub const MAX_TRACKED: usize = 100_000;

/// How failures turn into lockouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures that cost nothing.
    pub free_failures: u32,
    /// The first lockout; each further failure doubles it.
    pub base_lockout: Duration,
    /// The longest lockout, and how long failures are remembered.
    pub max_lockout: Duration,
}

impl LockoutPolicy {
    /// How long a key with `failures` is locked after its last failure.
    pub fn lockout(&self, failures: u32) -> Duration {
        let Some(past) = failures.checked_sub(self.free_failures).filter(|n| *n > 0) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(past - 1).unwrap_or(u32::MAX);
        self.base_lockout
            .checked_mul(factor)
            .unwrap_or(self.max_lockout)
            .min(self.max_lockout)
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// One kind of key's failures.
struct Tracker<K> {
    policy: LockoutPolicy,
    entries: Mutex<HashMap<K, Failures>>,
}

impl<K: Hash + Eq + Clone> Tracker<K> {
    fn new(policy: LockoutPolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Failures>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long `key` is still locked, if it is.
    fn locked_for(&self, key: &K, now: Instant) -> Option<Duration> {
        let map = self.lock();
        let f = map.get(key)?;
        let until = f.last + self.policy.lockout(f.count);
        (until > now).then(|| until - now)
    }

    fn fail(&self, key: K, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
            let forget = self.policy.max_lockout;
            map.retain(|_, f| now.duration_since(f.last) < forget);
            if map.len() >= MAX_TRACKED
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= self.policy.max_lockout {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    fn clear(&self, key: &K) {
        self.lock().remove(key);
    }
}

/// The per-account and per-address failure trackers.
pub struct LoginThrottle {
    accounts: Tracker<String>,
    addresses: Tracker<IpAddr>,
}

/// The account key of an e-mail address: trimmed and lowercased (addresses are citext).
pub fn account_key(email: &str) -> String {
    email.trim().to_lowercase()
}

impl LoginThrottle {
    /// Trackers with these policies.
    pub fn new(account: LockoutPolicy, address: LockoutPolicy) -> Self {
        Self {
            accounts: Tracker::new(account),
            addresses: Tracker::new(address),
        }
    }

    /// `Err(wait)` while the account or the address is locked.
    pub fn check(&self, email: &str, addr: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let account = self.accounts.locked_for(&account_key(email), now);
        let address = self.addresses.locked_for(&addr, now);
        match account.max(address) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in against the account and the address.
    pub fn record_failure(&self, email: &str, addr: IpAddr) {
        let now = Instant::now();
        self.accounts.fail(account_key(email), now);
        self.addresses.fail(addr, now);
    }

    /// Forgets the account's failures (after a successful sign-in).
    pub fn record_success(&self, email: &str) {
        self.accounts.clear(&account_key(email));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(free: u32) -> LockoutPolicy {
        LockoutPolicy {
            free_failures: free,
            base_lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(60),
        }
    }

    #[test]
    fn lockouts_double_up_to_the_cap() {
        let p = policy(3);
        assert_eq!(p.lockout(3), Duration::ZERO);
        assert_eq!(p.lockout(4), Duration::from_secs(1));
        assert_eq!(p.lockout(5), Duration::from_secs(2));
        assert_eq!(p.lockout(8), Duration::from_secs(16));
        assert_eq!(p.lockout(40), Duration::from_secs(60));
        assert_eq!(p.lockout(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn accounts_lock_and_success_clears_them() {
        let t = LoginThrottle::new(policy(2), policy(100));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..2 {
            assert!(t.check("A@x.test", ip).is_ok());
            t.record_failure("a@x.test ", ip);
        }
        assert!(t.check("a@x.test", ip).is_ok());
        t.record_failure("a@x.test", ip);
        let wait = t.check("A@X.TEST", ip).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        // Another account from the same address is not locked (the address allows 100).
        assert!(t.check("b@x.test", ip).is_ok());
        t.record_success("a@x.test");
        assert!(t.check("a@x.test", ip).is_ok());
    }

    #[test]
    fn addresses_lock_across_accounts() {
        let t = LoginThrottle::new(policy(100), policy(3));
        let ip: IpAddr = "192.0.2.2".parse().unwrap();
        for n in 0..4 {
            t.record_failure(&format!("user{n}@x.test"), ip);
        }
        assert!(t.check("someone-else@x.test", ip).is_err());
        assert!(
            t.check("someone-else@x.test", "192.0.2.3".parse().unwrap())
                .is_ok()
        );
    }
}
