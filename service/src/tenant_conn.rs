//! [`TenantConn`]: the connection of a tenant-bound transaction, opened in one message.
//!
//! SeaORM's `begin()` sends `BEGIN` and waits for the answer before anything else can be sent,
//! so setting the tenant context cost a second round trip. Here the transaction is opened by one
//! simple-protocol message on a pooled connection (built by `tx::begin_sql`): `BEGIN ISOLATION
//! LEVEL READ COMMITTED; SET LOCAL tenantry.tenant_id = '<uuid>'; SET LOCAL tenantry.user_id =
//! '<uuid>' (or ''); CALL tenancy.enter_tenant()`. PostgreSQL stops a message at its
//! first error, so after a failed `SET LOCAL` (or a dedicated tenant's missing schema) no work
//! runs; the transaction it leaves aborted is never pooled, because a connection whose opening
//! fails is closed (the server rolls its transaction back). The settings stay
//! transaction-local and in the `SET LOCAL` form Citus propagates.
//!
//! [`TenantConn`] implements SeaORM's [`ConnectionTrait`] exactly as `DatabaseTransaction`
//! does for PostgreSQL (the same persistent prepared statements, the same error mapping), so
//! every SeaORM query, insert and update runs on it unchanged. Dropped without
//! [`TenantConn::commit`] or [`TenantConn::rollback`], it rolls back on a spawned task before
//! the connection is reused (or, without a runtime, closes the connection, which the server
//! rolls back).
//!
//! A begin, commit or rollback whose future is dropped while its message is in flight (a
//! client that went away, a `TimeoutLayer`, any `timeout`) leaves the server's transaction
//! state unknown: the server may yet run the message, and sqlx does not track a transaction it
//! did not open. Such a connection is closed (the server rolls back a closed connection's
//! transaction), never returned to the pool, so the next tenant's transaction can never run
//! inside one left open by another (`InFlight`).

use std::sync::Arc;

use entity::TenantScoped;
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, ExecResult, FromQueryResult, QueryResult, RuntimeErr,
    Statement, Values,
};
use sea_query_sqlx::SqlxValues;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{Executor, PgPool, Postgres};
use tokio::sync::Mutex;

/// An open tenant-bound transaction on one pooled connection.
pub struct TenantConn {
    /// `None` once committed or rolled back.
    txn: Mutex<Option<PoolConnection<Postgres>>>,
}

impl std::fmt::Debug for TenantConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantConn")
    }
}

/// A failed statement, as SeaORM's driver reports it (so SQLSTATE classification is unchanged).
fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

/// A failed query, as SeaORM's driver reports it.
fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
}

/// The sqlx query for a SeaORM statement (what SeaORM's own PostgreSQL driver builds).
fn query(stmt: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt.values.clone().unwrap_or(Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

/// A pooled connection with a transaction-control message in flight. If the future awaiting
/// the answer is dropped before it arrives, the guard is dropped with it and marks the
/// connection to be closed instead of returned to the pool: whether the server ran the message
/// (and so whether a transaction is open on it, with which context) is unknown. sqlx 0.9 keeps
/// the server's transaction status (`ReadyForQuery`) crate-private, so a pool hook could only
/// find out with a query of its own; closing costs nothing on the normal path.
struct InFlight<'c> {
    conn: &'c mut PoolConnection<Postgres>,
    answered: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.conn.close_on_drop();
        }
    }
}

/// Sends `sql` on `conn` as one simple-protocol message and reads its answer; cancelled before
/// the answer is read, `conn` is closed when dropped (`InFlight`).
async fn send(
    conn: &mut PoolConnection<Postgres>,
    sql: impl sqlx::SqlSafeStr + Send,
) -> Result<(), sqlx::Error> {
    let mut guard = InFlight {
        conn,
        answered: false,
    };
    let result = (&mut **guard.conn).execute(sql).await;
    guard.answered = true;
    result.map(|_| ())
}

/// Ends the transaction on `conn` with `sql` (`COMMIT` or `ROLLBACK`); a connection that cannot
/// end it, or whose end is cancelled before it is answered, is closed rather than returned to
/// the pool.
async fn end(mut conn: PoolConnection<Postgres>, sql: &'static str) -> Result<(), DbErr> {
    let result = send(&mut conn, sql).await;
    if result.is_err() {
        conn.close_on_drop();
    }
    result.map_err(exec_err)
}

impl TenantConn {
    /// Acquires a connection and sends `begin` (`BEGIN`, the context's `SET LOCAL`s and the
    /// schema entry, built by the caller from typed values only) as one message. Cancelled
    /// after the acquire, or failed, the connection is closed, never pooled in an unknown or
    /// poisoned state.
    pub(crate) async fn begin(pool: &PgPool, begin: String) -> Result<Self, DbErr> {
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?;
        if let Err(e) = send(&mut conn, sqlx::AssertSqlSafe(begin)).await {
            // The message stops at its first error, leaving its transaction aborted. The
            // connection is closed, never pooled: the server rolls back a closed connection's
            // transaction, and an opening that fails may fail because of session state an
            // earlier transaction left behind (a session `SET row_security = off`, say), which
            // a ROLLBACK would not undo. The next checkout gets a fresh session.
            conn.close_on_drop();
            return Err(query_err(e));
        }
        Ok(Self {
            txn: Mutex::new(Some(conn)),
        })
    }

    /// The connection, leaving nothing for `Drop` to roll back.
    fn take(mut self) -> Option<PoolConnection<Postgres>> {
        self.txn.get_mut().take()
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), DbErr> {
        match self.take() {
            Some(conn) => end(conn, "COMMIT").await,
            None => Ok(()),
        }
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), DbErr> {
        match self.take() {
            Some(conn) => end(conn, "ROLLBACK").await,
            None => Ok(()),
        }
    }
}

impl Drop for TenantConn {
    fn drop(&mut self) {
        if let Some(mut conn) = self.txn.get_mut().take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        let _ = end(conn, "ROLLBACK").await;
                    });
                }
                Err(_) => conn.close_on_drop(),
            }
        }
    }
}

/// The connection of an open transaction, or an error once it has ended.
fn open(guard: &mut Option<PoolConnection<Postgres>>) -> Result<&mut sqlx::PgConnection, DbErr> {
    guard
        .as_deref_mut()
        .ok_or_else(|| DbErr::Custom("the tenant transaction has ended".into()))
}

impl TenantConn {
    /// The rows of `stmt`, a statement that selects (or returns) exactly `E`'s columns in
    /// `E`'s order, each as `E`'s model read by position (`rows.rs`); a row that does not fit
    /// is read by name, as SeaORM's `all()` would.
    pub(crate) async fn fetch_models<E: TenantScoped>(
        &self,
        stmt: &Statement,
    ) -> Result<Vec<E::Model>, DbErr> {
        let rows = {
            let mut txn = self.txn.lock().await;
            query(stmt)
                .fetch_all(open(&mut txn)?)
                .await
                .map_err(query_err)?
        };
        rows.into_iter().map(read_model::<E>).collect()
    }
}

/// One row as `E`'s model: by position, or by name where the row does not fit.
fn read_model<E: TenantScoped>(row: PgRow) -> Result<E::Model, DbErr> {
    match crate::rows::model::<E>(&row) {
        Ok(model) => Ok(model),
        Err(unfit) => {
            tracing::debug!(
                column = unfit.column,
                error = unfit.error,
                "{}; read by name",
                unfit.what
            );
            E::Model::from_query_result(&QueryResult::from(row), "")
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for TenantConn {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let mut txn = self.txn.lock().await;
        query(&stmt)
            .execute(open(&mut txn)?)
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let mut txn = self.txn.lock().await;
        open(&mut txn)?
            .execute(sqlx::AssertSqlSafe(sql.to_owned()))
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut txn = self.txn.lock().await;
        query(&stmt)
            .fetch_optional(open(&mut txn)?)
            .await
            .map(|row| row.map(Into::into))
            .map_err(query_err)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut txn = self.txn.lock().await;
        query(&stmt)
            .fetch_all(open(&mut txn)?)
            .await
            .map(|rows| rows.into_iter().map(Into::into).collect())
            .map_err(query_err)
    }
}
