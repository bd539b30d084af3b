//! The API-key authentication cache: successful authentications by the SHA-256 of the presented
//! key (never the key), dropped when the database announces a change.
//!
//! * **Invalidation**: a listener connection (its own, not from the pool) listens on
//!   `tenantry_auth` (migration `m0009_auth_notify`): every committed change to a tenant's
//!   keys, its status or its memberships names the tenant, and its entries are dropped.
//! * **Races**: an authentication looked up before a change commits could be stored after the
//!   notification was handled. Every notification bumps a generation; a lookup stores its result
//!   only if the generation is the one it started with.
//! * **Fail closed**: while the listener is not connected (at start, after a dropped
//!   connection, until it listens again) nothing is cached and hits are refused as misses; a
//!   lost connection flushes the cache.
//! * **Bounded lifetime**: an entry lives at most the configured lifetime, and never past the
//!   key's expiry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::ApiKeyPrincipal;

/// Entries kept at most; a full cache is emptied (authentications then refill it).
const MAX_ENTRIES: usize = 100_000;

/// How long the listener waits before reconnecting after a failure.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

struct Entry {
    principal: ApiKeyPrincipal,
    until: Instant,
}

/// The cache and its invalidation state. Shared by the clones of a `Tenantry`.
pub struct AuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    generation: AtomicU64,
    live: AtomicBool,
    /// Counts handled events (notifications, losses, reconnects): what tests wait on.
    events: watch::Sender<u64>,
    /// The listener task, stopped when the cache goes.
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for AuthCache {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl AuthCache {
    /// A cache whose entries live at most `ttl`; not live until [`AuthCache::listen`] runs.
    pub(crate) fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            events: watch::channel(0).0,
            task: Mutex::new(None),
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached principal of a key hash, if live and fresh.
    pub(crate) fn get(&self, hash: &[u8; 32]) -> Option<ApiKeyPrincipal> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries();
        entries
            .get(hash)
            .filter(|e| e.until > Instant::now())
            .map(|e| e.principal.clone())
    }

    /// The generation to pass to [`AuthCache::store`], taken before the lookup.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores a successful authentication looked up at `generation`, valid for at most
    /// `remaining` (the key's time to expiry, if it has one).
    pub(crate) fn store(
        &self,
        hash: [u8; 32],
        principal: ApiKeyPrincipal,
        generation: u64,
        remaining: Option<Duration>,
    ) {
        let ttl = remaining.map_or(self.ttl, |r| r.min(self.ttl));
        let mut entries = self.entries();
        // Checked under the lock: `invalidate` bumps the generation under it too.
        if !self.live.load(Ordering::Acquire) || self.generation() != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            hash,
            Entry {
                principal,
                until: Instant::now() + ttl,
            },
        );
    }

    /// Drops the entries of `tenant` (or all of them).
    fn invalidate(&self, tenant: Option<Uuid>) {
        let mut entries = self.entries();
        self.generation.fetch_add(1, Ordering::AcqRel);
        match tenant {
            Some(t) => entries.retain(|_, e| e.principal.context.tenant_id() != t),
            None => entries.clear(),
        }
    }

    fn event(&self) {
        self.events.send_modify(|n| *n += 1);
    }

    /// Whether the listener is connected and listening (entries are used only then).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// How many entries are cached.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver of the count of handled events: a test that changed a key waits until the
    /// count moves (and [`AuthCache::is_live`] holds) instead of sleeping.
    pub fn events(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Listens on `channel` with its own connection to `url`, until the cache is dropped by
    /// every holder. Reconnects after a failure, flushing the cache each time.
    pub(crate) fn listen(self: &Arc<Self>, url: String, channel: &'static str) {
        let weak = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            loop {
                let listener = match PgListener::connect(&url).await {
                    Ok(mut l) => match l.listen(channel).await {
                        Ok(()) => Some(l),
                        Err(e) => {
                            tracing::warn!(error = %e, "auth cache: cannot listen");
                            None
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "auth cache: cannot connect the listener");
                        None
                    }
                };
                let Some(cache) = weak.upgrade() else { return };
                let Some(mut listener) = listener else {
                    drop(cache);
                    tokio::time::sleep(RECONNECT_AFTER).await;
                    continue;
                };
                // Listening from here on: anything committed earlier is already in the database.
                cache.invalidate(None);
                cache.live.store(true, Ordering::Release);
                cache.event();
                drop(cache);
                loop {
                    // `try_recv` answers `None` when the connection was lost.
                    let got = listener.try_recv().await;
                    let Some(cache) = weak.upgrade() else { return };
                    match got {
                        Ok(Some(n)) => {
                            // An unexpected payload flushes everything.
                            cache.invalidate(Uuid::parse_str(n.payload()).ok());
                            cache.event();
                        }
                        Ok(None) | Err(_) => {
                            cache.live.store(false, Ordering::Release);
                            cache.invalidate(None);
                            cache.event();
                            tracing::warn!("auth cache: listener connection lost; cache flushed");
                            break;
                        }
                    }
                }
            }
        });
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
    }
}
