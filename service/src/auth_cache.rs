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
//! * **Heartbeat (delivery proven end to end)**: a connected listener may still be deaf (behind
//!   PgBouncer in transaction mode `LISTEN` runs on a server connection that goes back to the
//!   pool; a half-open TCP connection delivers nothing). Every interval the cache sends
//!   `pg_notify('tenantry_auth', 'hb:<nonce>:<seq>')` through the app pool, the path other
//!   processes' changes take, and the cache is live only once its listener has received one
//!   of its own heartbeats sent after it started listening, and only while the last one came
//!   within [`HEARTBEAT_MISSES`] intervals. When that many heartbeats in a row go unanswered the
//!   cache is flushed, not used, and the listener reconnects. Heartbeats of other processes
//!   (another nonce) are ignored; any other payload that is not a tenant id flushes everything.
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
use migration::m0009_auth_notify::AUTH_CHANNEL;

/// Entries kept at most; a full cache is emptied (authentications then refill it).
const MAX_ENTRIES: usize = 100_000;

/// How long the listener waits before reconnecting after a failure.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// How long connecting and `LISTEN` may take before the attempt counts as failed (a half-open
/// path would otherwise hang the listener).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Unanswered heartbeats in a row after which the listener counts as deaf; also the window,
/// in intervals, within which the last heartbeat must have arrived.
pub const HEARTBEAT_MISSES: u64 = 3;

/// The prefix of heartbeat payloads (tenant ids never start with it).
const HEARTBEAT_PREFIX: &str = "hb:";

/// The heartbeat's bookkeeping, under one lock.
#[derive(Default)]
struct Beats {
    /// The last heartbeat sent (its sequence number).
    sent: u64,
    /// Heartbeats up to this one do not count: sent before the listener (re)connected, or
    /// before it was found deaf.
    epoch: u64,
    /// The last of our heartbeats received (above `epoch`), and when.
    received: Option<(u64, Instant)>,
    /// Heartbeats received, in total.
    received_total: u64,
    /// Times the listener was found deaf.
    deaf: u64,
}

struct Entry {
    principal: ApiKeyPrincipal,
    until: Instant,
}

/// The cache and its invalidation state. Shared by the clones of a `Tenantry`.
pub struct AuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    generation: AtomicU64,
    /// Listening, and a heartbeat sent after the listener connected has come back.
    live: AtomicBool,
    /// The listener is connected and has run `LISTEN` (not proof that it hears anything).
    listening: AtomicBool,
    /// This cache's heartbeat nonce: heartbeats of other processes are ignored.
    nonce: String,
    /// The heartbeat interval.
    interval: Duration,
    beats: Mutex<Beats>,
    /// Where heartbeats are sent (the app pool), once listening starts.
    pool: Mutex<Option<sqlx::PgPool>>,
    /// Tells the listener to drop its (deaf) connection and reconnect.
    reconnect: Arc<tokio::sync::Notify>,
    /// Counts handled events (notifications, losses, reconnects): what tests wait on.
    events: watch::Sender<u64>,
    /// The listener and heartbeat tasks, stopped when the cache goes.
    task: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for AuthCache {
    fn drop(&mut self) {
        for task in self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

impl AuthCache {
    /// A cache whose entries live at most `ttl`, sending a heartbeat every `interval`; not live
    /// until [`AuthCache::listen`] runs and the first heartbeat comes back.
    pub(crate) fn new(ttl: Duration, interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            nonce: Uuid::new_v4().simple().to_string(),
            interval: interval.max(Duration::from_millis(1)),
            beats: Mutex::new(Beats::default()),
            pool: Mutex::new(None),
            reconnect: Arc::new(tokio::sync::Notify::new()),
            events: watch::channel(0).0,
            task: Mutex::new(Vec::new()),
        })
    }

    fn beats(&self) -> std::sync::MutexGuard<'_, Beats> {
        self.beats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached principal of a key hash, if live and fresh.
    pub(crate) fn get(&self, hash: &[u8; 32]) -> Option<ApiKeyPrincipal> {
        if !self.is_live() {
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

    /// Whether the listener is connected, listening, and proven to hear: one of this cache's
    /// heartbeats came back since it connected, the last one within [`HEARTBEAT_MISSES`]
    /// intervals (entries are stored and used only then).
    pub fn is_live(&self) -> bool {
        if !self.live.load(Ordering::Acquire) {
            return false;
        }
        let window = self.interval.saturating_mul(HEARTBEAT_MISSES as u32);
        self.beats()
            .received
            .is_some_and(|(_, at)| at.elapsed() <= window)
    }

    /// Whether the listener is connected and has run `LISTEN` (which alone proves nothing:
    /// see [`AuthCache::is_live`]).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Heartbeats sent so far.
    pub fn heartbeats_sent(&self) -> u64 {
        self.beats().sent
    }

    /// Heartbeats of this cache its listener received so far.
    pub fn heartbeats_received(&self) -> u64 {
        self.beats().received_total
    }

    /// Times the listener was found deaf ([`HEARTBEAT_MISSES`] heartbeats unanswered).
    pub fn deaf_count(&self) -> u64 {
        self.beats().deaf
    }

    /// One heartbeat, as the background task runs it every interval (tests drive it directly):
    /// first the check (when [`HEARTBEAT_MISSES`] heartbeats since the last one received went
    /// unanswered, the listener is deaf: the cache is flushed, not live, and the listener
    /// reconnects), then a new heartbeat is sent through the app pool. A heartbeat that cannot
    /// be sent counts as sent and unanswered.
    pub async fn heartbeat(&self) {
        let (seq, deaf) = {
            let mut beats = self.beats();
            let answered = beats
                .received
                .map_or(beats.epoch, |(r, _)| r.max(beats.epoch));
            let deaf = self.listening.load(Ordering::Acquire)
                && beats.sent.saturating_sub(answered) >= HEARTBEAT_MISSES;
            if deaf {
                beats.deaf += 1;
                beats.epoch = beats.sent;
                beats.received = None;
            }
            beats.sent += 1;
            (beats.sent, deaf)
        };
        if deaf {
            self.live.store(false, Ordering::Release);
            self.invalidate(None);
            self.reconnect.notify_one();
            self.event();
            tracing::warn!(
                "auth cache: {HEARTBEAT_MISSES} heartbeats unanswered, the listener is deaf \
                 (behind PgBouncer in transaction mode? set TENANTRY_AUTH_LISTEN_DATABASE_URL); \
                 cache flushed, reconnecting"
            );
        }
        self.send_heartbeat(seq).await;
        self.event();
    }

    /// Sends heartbeat `seq` through the app pool.
    async fn send_heartbeat(&self, seq: u64) {
        let pool = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(pool) = pool else { return };
        // Simple protocol (works through PgBouncer); nonce and seq are ours, not input.
        let sql = format!(
            "SELECT pg_notify('{AUTH_CHANNEL}', '{HEARTBEAT_PREFIX}{}:{seq}')",
            self.nonce
        );
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await {
            tracing::warn!(error = %e, "auth cache: cannot send a heartbeat");
        }
    }

    /// Handles a notification's payload.
    fn notified(&self, payload: &str) {
        if let Some(beat) = payload.strip_prefix(HEARTBEAT_PREFIX) {
            let ours = beat
                .split_once(':')
                .filter(|(nonce, _)| *nonce == self.nonce)
                .and_then(|(_, seq)| seq.parse::<u64>().ok());
            let Some(seq) = ours else {
                return; // another process's heartbeat
            };
            {
                let mut beats = self.beats();
                if seq <= beats.epoch {
                    return; // sent before this connection listened, proves nothing
                }
                beats.received_total += 1;
                let last = beats.received.map_or(seq, |(r, _)| r.max(seq));
                beats.received = Some((last, Instant::now()));
            }
            if self.listening.load(Ordering::Acquire) {
                self.live.store(true, Ordering::Release);
            }
            self.event();
            return;
        }
        // An unexpected payload flushes everything.
        self.invalidate(Uuid::parse_str(payload).ok());
        self.event();
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

    /// Listens on `tenantry_auth` with its own connection to `url`, until the cache is dropped
    /// by every holder, and sends heartbeats through `pool` (the app pool) every interval.
    /// Reconnects after a failure or when found deaf, flushing the cache each time.
    pub(crate) fn listen(self: &Arc<Self>, url: String, pool: sqlx::PgPool) {
        *self.pool.lock().unwrap_or_else(PoisonError::into_inner) = Some(pool);
        let weak = Arc::downgrade(self);
        let reconnect = self.reconnect.clone();
        let listener_task = tokio::spawn(async move {
            loop {
                let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
                    let mut l = PgListener::connect(&url).await?;
                    l.listen(AUTH_CHANNEL).await?;
                    Ok::<_, sqlx::Error>(l)
                })
                .await;
                let listener = match connected {
                    Ok(Ok(l)) => Some(l),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "auth cache: cannot connect the listener");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("auth cache: connecting the listener timed out");
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
                // Not live until a heartbeat sent from now on comes back.
                let seq = {
                    let mut beats = cache.beats();
                    beats.epoch = beats.sent;
                    beats.received = None;
                    beats.sent += 1;
                    beats.sent
                };
                cache.live.store(false, Ordering::Release);
                cache.invalidate(None);
                cache.listening.store(true, Ordering::Release);
                cache.send_heartbeat(seq).await;
                cache.event();
                drop(cache);
                loop {
                    // No strong reference while waiting: dropping the cache ends this task.
                    let got = tokio::select! {
                        // `try_recv` answers `None` when the connection was lost.
                        got = listener.try_recv() => Some(got),
                        () = reconnect.notified() => None,
                    };
                    let Some(cache) = weak.upgrade() else { return };
                    match got {
                        Some(Ok(Some(n))) => cache.notified(n.payload()),
                        Some(Ok(None) | Err(_)) | None => {
                            cache.listening.store(false, Ordering::Release);
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
        let weak = Arc::downgrade(self);
        let interval = self.interval;
        let beat_task = tokio::spawn(async move {
            // The first heartbeat goes out when the listener connects; then one per interval.
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(cache) = weak.upgrade() else { return };
                cache.heartbeat().await;
            }
        });
        self.task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([listener_task.abort_handle(), beat_task.abort_handle()]);
    }
}
