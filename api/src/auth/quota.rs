//! Monthly quotas of API keys.
//!
//! A key with a `monthly_quota` may be used while the month-to-date quantity of its *lineage*
//! (`usage::month_to_date_of_lineage`: every key of the tenant with the same name, since
//! rotation keeps the name) is below the quota, so rotating a key does not give it a fresh
//! month. Asking the database on every request would double its load, so the figure is cached
//! per key for a few seconds and the requests admitted meanwhile are counted locally: the check
//! may overshoot by what other API processes admit within that window, never by more. Events
//! the meter has not written yet are added to the database's figure.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{Datelike, TimeZone, Utc};
use service::TenantContext;
use uuid::Uuid;

use crate::problem::{Problem, ProblemKind};
use crate::state::AppState;
use service::usage;

/// How long a month-to-date figure is trusted.
const FRESH_FOR: Duration = Duration::from_secs(10);

/// The cache of month-to-date figures, by key.
#[derive(Default)]
pub struct QuotaCache {
    used: Mutex<HashMap<Uuid, (i64, Instant)>>,
}

impl QuotaCache {
    fn cached(&self, key: Uuid) -> Option<i64> {
        let map = self.used.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key)
            .filter(|(_, at)| at.elapsed() < FRESH_FOR)
            .map(|(n, _)| *n)
    }

    fn store(&self, key: Uuid, used: i64) {
        let mut map = self.used.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key, (used, Instant::now()));
    }

    fn add(&self, key: Uuid, n: i64) {
        let mut map = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((used, _)) = map.get_mut(&key) {
            *used += n;
        }
    }

    /// Admits one request of `key` (acting as `ctx`) under `quota`, or answers 429.
    pub async fn admit(
        &self,
        state: &AppState,
        ctx: &TenantContext,
        key: Uuid,
        quota: u64,
    ) -> Result<(), Problem> {
        let used = match self.cached(key) {
            Some(n) => n,
            None => {
                // Events of this key still waiting in the meter count too. Read before the
                // database: a batch committed in between is then counted twice, never missed.
                let waiting = state.meter().pending(key);
                let written = state
                    .tenantry()
                    .with_tenant(ctx, async |tx| {
                        usage::month_to_date_of_lineage(tx, key).await
                    })
                    .await?;
                let n = written.saturating_add(waiting);
                self.store(key, n);
                n
            }
        };
        if used >= 0 && used as u64 >= quota {
            return Err(Problem::new(ProblemKind::QuotaExceeded)
                .detail(format!(
                    "this API key's monthly quota of {quota} is used up"
                ))
                .retry_after(secs_to_next_month()));
        }
        self.add(key, 1);
        Ok(())
    }
}

/// Seconds until the next calendar month starts (UTC), when the quota resets.
fn secs_to_next_month() -> u64 {
    let now = Utc::now();
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .map(|next| (next - now).num_seconds().max(1) as u64)
        .unwrap_or(86_400)
}
