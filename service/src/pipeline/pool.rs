//! The pipelined path's own small pool of tokio-postgres clients: bounded by a semaphore,
//! connected on demand from the app login's URL, health-checked on checkout.
//!
//! A client's connection (the tokio-postgres `Connection` future, which writes requests and
//! reads answers) is not spawned on a task of its own: [`Lease::drive`] polls it together with
//! the unit of work, the work first. So every request of a pipeline is queued before the
//! connection writes any of them, and they leave in one write: on a multi-threaded runtime a
//! spawned connection task could start writing the first request before the next is queued
//! (and the server would idle between them). It also saves two task wake-ups per unit.
//!
//! A client goes back to the pool only through [`Lease::release`], which the unit of work
//! calls after every answer of its pipeline was read and none was an error: the server is then
//! known to be idle, outside any transaction. A lease dropped any other way (an error, a
//! cancelled future) drops its client, which closes the connection; the server rolls back
//! whatever was open on it. So no connection in an unknown state ever serves the next tenant.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use migration::names::ENTRY_SEARCH_PATH;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Connection, NoTls, Socket, Statement};

use super::statements::StatementCache;
use crate::error::{Result, ServiceError};

/// A client idle this long is checked with an empty `Sync` before it is used (as the sqlx pool
/// checks connections idle for 30 s): a half-open connection is found before a unit of work.
const CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(30);

/// A connection is closed once it is this old (as sqlx's pool does by default): its prepared
/// statements, and the plans cached on its session, never outlive a schema change for long.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// One connection: the client that queues requests, the connection that sends them, and the
/// statements prepared on it.
struct Conn {
    client: Client,
    connection: Connection<Socket, NoTlsStream>,
    statements: StatementCache,
    created: Instant,
}

/// The process id of the `BackendKeyData` the server (or whatever answered) gave `client`,
/// read back from the cancel request tokio-postgres writes for it (tokio-postgres keeps the
/// key private; `cancel_query_raw` writes it to any stream: here an in-memory one).
async fn key_process_id(client: &Client) -> Option<i32> {
    use tokio::io::AsyncReadExt;
    let (mut ours, theirs) = tokio::io::duplex(64);
    client
        .cancel_token()
        .cancel_query_raw(theirs, NoTls)
        .await
        .ok()?;
    let mut request = [0u8; 16];
    ours.read_exact(&mut request).await.ok()?;
    let word =
        |i: usize| i32::from_be_bytes([request[i], request[i + 1], request[i + 2], request[i + 3]]);
    // Length 16, the cancel request code, then the process id and the secret key.
    (word(0) == 16 && word(4) == 80_877_102).then(|| word(8))
}

/// Whether `conn` talks to its server session directly: the cancel key it was given names
/// the backend that answers it (`pg_backend_pid()`). A pooler (PgBouncer in any mode, and
/// the like) hands out cancel keys of its own, since the server behind a client changes.
async fn is_direct(conn: &mut Conn) -> bool {
    let Some(key) = key_process_id(&conn.client).await else {
        return false;
    };
    let Conn {
        client, connection, ..
    } = conn;
    let answer = drive(
        connection,
        client.simple_query("SELECT pg_catalog.pg_backend_pid()"),
    )
    .await;
    let pid = answer.and_then(|r| r.ok()).and_then(|messages| {
        messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|p| p.parse().ok()),
            _ => None,
        })
    });
    pid == Some(key)
}

/// Polls `work` and then `connection` until `work` is done; `None` when the connection ended
/// first (closed by the server, or an I/O error, logged here).
async fn drive<F: Future>(
    connection: &mut Connection<Socket, NoTlsStream>,
    work: F,
) -> Option<F::Output> {
    let mut work = pin!(work);
    std::future::poll_fn(|cx| {
        // The work first: its requests are queued before the connection writes.
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        match Pin::new(&mut *connection).poll(cx) {
            Poll::Ready(end) => {
                if let Err(e) = end {
                    tracing::debug!(error = %e, "pipelined connection ended");
                }
                Poll::Ready(None)
            }
            // Answers it delivered woke this task, so `work` is polled again.
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The pool.
pub(crate) struct PipelinePool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<(Conn, Instant)>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    /// Whether statements are prepared once per connection (named) or sent unnamed each time;
    /// turned off for good once a statement is seen not to stay with its connection.
    named: AtomicBool,
}

/// One connection, checked out.
pub(crate) struct Lease {
    conn: Option<Conn>,
    pool: Arc<PipelinePool>,
    _permit: OwnedSemaphorePermit,
}

impl PipelinePool {
    /// A pool of at most `max` connections to `url` (nothing is connected yet). The URL is the
    /// app login's; `statement_timeout` (zero: none) is set per connection as the sqlx pool does;
    /// `named`: whether statements are prepared once per connection (`statements.rs`).
    pub(crate) fn new(
        url: &str,
        max: u32,
        acquire_timeout: Duration,
        statement_timeout: Duration,
        named: bool,
    ) -> Result<Self> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            ServiceError::invalid("app_url", "not a PostgreSQL URL tokio-postgres reads")
        })?;
        // Appended to the URL's own `options` (`Config::options` replaces them), as the sqlx
        // pool appends: a `-c default_transaction_read_only=on` there still holds. The session's
        // `search_path` is the one every unit's schema entry resets to (`public, pg_temp`, the
        // space escaped), so for a shared tenant the entry finds it set and leaves it (m0016):
        // this pool runs nothing but units of work, each of which enters its tenant first.
        let mut ours = vec![format!(
            "-c search_path={}",
            ENTRY_SEARCH_PATH.replace(' ', "\\ ")
        )];
        let ms = statement_timeout.as_millis();
        if ms > 0 {
            ours.push(format!("-c statement_timeout={ms}"));
        }
        let ours = ours.join(" ");
        let options = match config.get_options() {
            Some(own) if !own.trim().is_empty() => format!("{own} {ours}"),
            _ => ours,
        };
        config.options(options);
        Ok(Self {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1) as usize)),
            acquire_timeout,
            named: AtomicBool::new(named),
        })
    }

    /// Stops this pool from preparing statements, for good: it does not talk to its server
    /// sessions directly (a pooler in between), or a statement did not stay with its session.
    fn stop_naming(&self) {
        if self.named.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                "the one-round-trip path's connections go through a pooler (or a statement did \
                 not stay with its session): it sends unnamed statements from now on; set \
                 TENANTRY_PREPARED_STATEMENTS=off to say so up front"
            );
        }
    }

    fn pop_idle(&self) -> Option<(Conn, Instant)> {
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
        while let Some((mut conn, since)) = self.pop_idle() {
            if conn.created.elapsed() >= MAX_LIFETIME {
                continue;
            }
            if since.elapsed() >= CHECK_IF_IDLE_FOR {
                let Conn {
                    client, connection, ..
                } = &mut conn;
                if !matches!(
                    drive(connection, client.check_connection()).await,
                    Some(Ok(()))
                ) {
                    continue;
                }
            }
            return Ok(self.lease(conn, permit));
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot connect the pipelined pool");
            ServiceError::Unavailable("cannot connect to the database".into())
        })?;
        let mut conn = Conn {
            client,
            connection,
            statements: StatementCache::default(),
            created: Instant::now(),
        };
        if self.named.load(Ordering::Relaxed) && !is_direct(&mut conn).await {
            self.stop_naming();
        }
        Ok(self.lease(conn, permit))
    }

    fn lease(self: &Arc<Self>, conn: Conn, permit: OwnedSemaphorePermit) -> Lease {
        Lease {
            conn: Some(conn),
            pool: self.clone(),
            _permit: permit,
        }
    }

    /// Closes the pool: no new lease, and every idle connection ends politely (`Terminate`).
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle = self.idle.lock().map(|mut v| std::mem::take(&mut *v));
        for (conn, _) in idle.unwrap_or_default() {
            let Conn {
                client, connection, ..
            } = conn;
            // Without a client the connection sends `Terminate` and ends.
            drop(client);
            let _ = connection.await;
        }
    }

    /// Idle clients right now (tests use it to see whether a connection came back).
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

impl Lease {
    /// Runs `work` on the client, driving the connection meanwhile (see the module
    /// documentation). A connection that ended first is "unavailable".
    pub(crate) async fn drive<'a, F: Future + 'a>(
        &'a mut self,
        work: impl FnOnce(&'a Client) -> F,
    ) -> Result<F::Output> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| ServiceError::Unavailable("the connection was released".into()))?;
        let Conn {
            client, connection, ..
        } = conn;
        drive(connection, work(client))
            .await
            .ok_or_else(|| ServiceError::Unavailable("database connection lost".into()))
    }

    /// Whether this pool prepares statements (see `statements.rs`).
    pub(crate) fn named(&self) -> bool {
        self.pool.named.load(Ordering::Relaxed)
    }

    /// Stops this pool from preparing statements, for good (see [`PipelinePool::stop_naming`]).
    pub(crate) fn stop_naming(&self) {
        self.pool.stop_naming();
    }

    fn conn_mut(&mut self) -> Result<&mut Conn> {
        self.conn
            .as_mut()
            .ok_or_else(|| ServiceError::Unavailable("the connection was released".into()))
    }

    /// The statement prepared on this connection for `sql` with `types`.
    pub(crate) fn cached(&self, sql: &str, types: &[Type]) -> Option<Statement> {
        self.conn.as_ref()?.statements.get(sql, types)
    }

    /// Remembers `statement`, prepared on this connection for `sql` with `types`.
    pub(crate) fn remember(
        &mut self,
        sql: &str,
        types: &[Type],
        statement: Statement,
    ) -> Result<()> {
        self.conn_mut()?.statements.insert(sql, types, statement);
        Ok(())
    }

    /// Returns the connection to the pool: call only once every answer was read and none
    /// failed. Dropped instead, the lease closes its connection; so does a release after
    /// [`PipelinePool::close`] (a closed pool keeps nothing open).
    pub(crate) fn release(mut self) {
        if let Some(conn) = self.conn.take()
            && !conn.client.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
            // Checked under the lock `close` takes after closing: either `close` finds this
            // connection among the idle ones, or this sees the pool closed.
            && !self.pool.permits.is_closed()
        {
            idle.push((conn, Instant::now()));
        }
    }
}
