//! The pipelined path's own small pool of tokio-postgres clients: bounded by a semaphore,
//! connected on demand from the app login's URL, health-checked on checkout.
//!
//! A client goes back to the pool only through [`Lease::release`], which the unit of work
//! calls after every answer of its pipeline was read and none was an error: the server is then
//! known to be idle, outside any transaction. A lease dropped any other way (an error, a
//! cancelled future) drops its client, which closes the connection; the server rolls back
//! whatever was open on it. So no connection in an unknown state ever serves the next tenant.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, NoTls};

use crate::error::{Result, ServiceError};

/// A client idle this long is checked with an empty `Sync` before it is used (as the sqlx pool
/// checks connections idle for 30 s): a half-open connection is found before a unit of work.
const CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(30);

/// The pool.
pub(crate) struct PipelinePool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<(Client, Instant)>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

/// One client, checked out.
pub(crate) struct Lease {
    client: Option<Client>,
    pool: Arc<PipelinePool>,
    _permit: OwnedSemaphorePermit,
}

impl PipelinePool {
    /// A pool of at most `max` connections to `url` (nothing is connected yet). The URL is the
    /// app login's; `statement_timeout` (zero: none) is set per connection as the sqlx pool does.
    pub(crate) fn new(
        url: &str,
        max: u32,
        acquire_timeout: Duration,
        statement_timeout: Duration,
    ) -> Result<Self> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            ServiceError::invalid("app_url", "not a PostgreSQL URL tokio-postgres reads")
        })?;
        let ms = statement_timeout.as_millis();
        if ms > 0 {
            config.options(format!("-c statement_timeout={ms}"));
        }
        Ok(Self {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1) as usize)),
            acquire_timeout,
        })
    }

    fn pop_idle(&self) -> Option<(Client, Instant)> {
        self.idle.lock().ok()?.pop()
    }

    /// A healthy client: an idle one (skipping closed ones, checking one idle for long), else a
    /// new connection. Waits at most the acquire timeout for a free place.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Lease> {
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| {
                    ServiceError::Unavailable("no database connection free in time".into())
                })?
                .map_err(|_| ServiceError::Unavailable("the pool is closed".into()))?;
        while let Some((client, since)) = self.pop_idle() {
            if client.is_closed() {
                continue;
            }
            if since.elapsed() >= CHECK_IF_IDLE_FOR && client.check_connection().await.is_err() {
                continue;
            }
            return Ok(self.lease(client, permit));
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot connect the pipelined pool");
            ServiceError::Unavailable("cannot connect to the database".into())
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "pipelined connection ended");
            }
        });
        Ok(self.lease(client, permit))
    }

    fn lease(self: &Arc<Self>, client: Client, permit: OwnedSemaphorePermit) -> Lease {
        Lease {
            client: Some(client),
            pool: self.clone(),
            _permit: permit,
        }
    }

    /// Idle clients right now (tests use it to see whether a connection came back).
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

impl Lease {
    /// The client.
    pub(crate) fn client(&self) -> Result<&Client> {
        self.client
            .as_ref()
            .ok_or_else(|| ServiceError::Unavailable("the connection was released".into()))
    }

    /// Returns the client to the pool: call only once every answer was read and none failed.
    pub(crate) fn release(mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push((client, Instant::now()));
        }
    }
}
