//! Metering: every API-key request becomes a `request` usage event (quantity 1, the route
//! template as endpoint, the latency, the status in metadata), attributed to the key.
//!
//! Events are buffered in memory and written in batches: per tenant, one tenant-bound
//! transaction (as the `usage.meter` job) with multi-row inserts
//! ([`service::usage::record_batch`]). A batch is written at least every
//! [`FLUSH_INTERVAL`], at once when [`FLUSH_AT`] events are waiting, and on graceful shutdown
//! ([`Meter::shutdown`], which [`crate::run`] calls after the requests in flight are done), so
//! no event of a completed request is lost on SIGTERM or Ctrl-C. A `kill -9` (or a crash)
//! loses the events still in memory: at most those of the last [`FLUSH_INTERVAL`] (or
//! [`FLUSH_AT`] events, whichever comes first). A failed write is logged and its events go back
//! into the buffer for the next flush (up to [`MAX_BUFFERED`]; beyond that the oldest are
//! dropped with a warning, rather than growing without bound while the database is down).
//!
//! Quotas count every request: the quota cache counts each admitted request locally, and when
//! it refreshes its figure from the database it adds the events still waiting here
//! ([`Meter::pending`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use service::usage::{self, MeteredEvent, UsageEventInput};
use service::{ServiceError, TenantContext, Tenantry};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::state::AppState;

/// The longest an event waits in memory.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Waiting events that trigger a flush at once.
pub const FLUSH_AT: usize = 1000;
/// The most events kept while writes fail.
pub const MAX_BUFFERED: usize = 100_000;

/// The events of one tenant waiting to be written.
struct TenantBatch {
    /// A context of the tenant (from an authenticated request), run as the meter job.
    ctx: TenantContext,
    events: Vec<MeteredEvent>,
}

#[derive(Default)]
struct Buffer {
    tenants: HashMap<Uuid, TenantBatch>,
    len: usize,
}

struct Inner {
    tenantry: Tenantry,
    buffer: Mutex<Buffer>,
    /// Events buffered or being written, per key (what quotas add to the database's figure).
    pending: Mutex<HashMap<Uuid, i64>>,
    /// One flush at a time, so `flush` returns only when everything taken before it is written.
    flushing: tokio::sync::Mutex<()>,
    wake: Notify,
    stopped: AtomicBool,
    /// Events written so far: what tests (and shutdown) observe.
    written: watch::Sender<u64>,
}

/// The request meter. Cheap to clone.
#[derive(Clone)]
pub struct Meter(Arc<Inner>);

impl Meter {
    /// A meter writing through `tenantry`, flushing in the background (on the current
    /// runtime) every `interval`.
    pub fn new(tenantry: Tenantry, interval: Duration) -> Self {
        let meter = Self(Arc::new(Inner {
            tenantry,
            buffer: Mutex::new(Buffer::default()),
            pending: Mutex::new(HashMap::new()),
            flushing: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            written: watch::channel(0).0,
        }));
        if tokio::runtime::Handle::try_current().is_ok() {
            let weak = Arc::downgrade(&meter.0);
            tokio::spawn(async move {
                loop {
                    let Some(inner) = weak.upgrade() else { return };
                    let woken = inner.wake.notified();
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep(interval) => {}
                    }
                    if inner.stopped.load(Ordering::Acquire) {
                        return;
                    }
                    Meter(inner).flush().await;
                }
            });
        }
        meter
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.0.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add_pending(&self, key: Option<Uuid>, n: i64) {
        if let Some(key) = key {
            let mut pending = self
                .0
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let left = {
                let v = pending.entry(key).or_insert(0);
                *v += n;
                *v
            };
            if left <= 0 {
                pending.remove(&key);
            }
        }
    }

    /// Buffers one event of `ctx`'s tenant, attributed to `ctx`'s API key.
    pub fn record(&self, ctx: &TenantContext, input: UsageEventInput) {
        let api_key_id = ctx.api_key_id();
        self.add_pending(api_key_id, 1);
        let full = {
            let mut buffer = self.buffer();
            let batch = buffer
                .tenants
                .entry(ctx.tenant_id())
                .or_insert_with(|| TenantBatch {
                    ctx: ctx.for_job("usage.meter"),
                    events: Vec::new(),
                });
            batch.events.push(MeteredEvent { api_key_id, input });
            buffer.len += 1;
            buffer.len >= FLUSH_AT
        };
        if full {
            self.0.wake.notify_one();
        }
    }

    /// Events of `key` not yet written (buffered or being written).
    pub fn pending(&self, key: Uuid) -> i64 {
        let pending = self
            .0
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pending.get(&key).copied().unwrap_or(0)
    }

    /// Events written so far, as a watch: a test waits for the count instead of polling.
    pub fn written(&self) -> watch::Receiver<u64> {
        self.0.written.subscribe()
    }

    /// Writes every event buffered so far and returns when they are written (or put back after
    /// a failure, which is logged).
    pub async fn flush(&self) {
        let _one = self.0.flushing.lock().await;
        let taken = std::mem::take(&mut *self.buffer());
        for (tenant_id, batch) in taken.tenants {
            let n = batch.events.len();
            let keys: Vec<Option<Uuid>> = batch.events.iter().map(|e| e.api_key_id).collect();
            let events = batch.events.clone();
            let result = self
                .0
                .tenantry
                .with_tenant(&batch.ctx, async |tx| usage::record_batch(tx, events).await)
                .await;
            match result {
                Ok(written) => {
                    for key in keys {
                        self.add_pending(key, -1);
                    }
                    self.0.written.send_modify(|w| *w += written);
                }
                // Refused as such (cannot happen for request events): retrying cannot help.
                Err(err @ (ServiceError::InvalidInput { .. } | ServiceError::Forbidden(_))) => {
                    tracing::error!(error = %err, %tenant_id, events = n, "metering refused; events dropped");
                    for key in keys {
                        self.add_pending(key, -1);
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, %tenant_id, events = n, "could not meter requests; will retry");
                    self.put_back(tenant_id, batch);
                }
            }
        }
    }

    /// Returns a batch whose write failed to the buffer, dropping the oldest events beyond
    /// [`MAX_BUFFERED`].
    fn put_back(&self, tenant_id: Uuid, mut batch: TenantBatch) {
        let mut buffer = self.buffer();
        let room = MAX_BUFFERED.saturating_sub(buffer.len);
        if batch.events.len() > room {
            let dropped = batch.events.len() - room;
            for e in batch.events.drain(..dropped) {
                self.add_pending(e.api_key_id, -1);
            }
            tracing::warn!(%tenant_id, dropped, "metering buffer full: oldest events dropped");
        }
        buffer.len += batch.events.len();
        match buffer.tenants.get_mut(&tenant_id) {
            Some(existing) => {
                batch.events.append(&mut existing.events);
                existing.events = batch.events;
            }
            None => {
                buffer.tenants.insert(tenant_id, batch);
            }
        }
    }

    /// Stops the background flushes and writes what is left (graceful shutdown).
    pub async fn shutdown(&self) {
        self.0.stopped.store(true, Ordering::Release);
        self.0.wake.notify_one();
        self.flush().await;
    }
}

/// Meters one request of an API key (buffered; see the module documentation).
pub fn record_request(
    state: &AppState,
    ctx: &TenantContext,
    endpoint: Option<String>,
    latency: Duration,
    status: StatusCode,
) {
    let mut event = UsageEventInput::new("request", 1);
    event.endpoint = endpoint;
    // Clamped to the bound `usage::record` accepts: a refused event would go unmetered.
    event.latency_ms = Some(
        i32::try_from(latency.as_millis())
            .unwrap_or(i32::MAX)
            .min(usage::MAX_LATENCY_MS),
    );
    event.metadata = serde_json::json!({ "status": status.as_u16() });
    state.meter().record(ctx, event);
}
