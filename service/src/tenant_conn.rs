//! [`TenantConn`]: the connection of a tenant-bound transaction, opened in one message.
//!
//! SeaORM's `begin()` sends `BEGIN` and waits for the answer before anything else can be sent,
//! so setting the tenant context cost a second round trip. Here the transaction is opened by one
//! simple-protocol message on a pooled connection (built by `tx::begin_sql`):
//! `SET LOCAL tenantry.tenant_id = '<uuid>'; SET LOCAL tenantry.user_id = '<uuid>'; SELECT
//! tenancy.enter_tenant_schema(); BEGIN`. The statements of one message form an implicit
//! transaction block that the trailing `BEGIN` turns into the transaction itself, so the
//! settings are part of it; PostgreSQL stops at the first error, so a failed `SET LOCAL` (or a
//! dedicated tenant's missing schema) leaves no transaction open and no work runs. The settings
//! stay transaction-local and in the `SET LOCAL` form Citus propagates.
//!
//! [`TenantConn`] implements SeaORM's [`ConnectionTrait`] exactly as `DatabaseTransaction`
//! does for PostgreSQL (the same persistent prepared statements, the same error mapping), so
//! every SeaORM query, insert and update runs on it unchanged. Dropped without
//! [`TenantConn::commit`] or [`TenantConn::rollback`], it rolls back on a spawned task before
//! the connection is reused (or, without a runtime, closes the connection, which the server
//! rolls back).

use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement, Values,
};
use sea_query_sqlx::SqlxValues;
use sqlx::pool::PoolConnection;
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

/// Ends the transaction on `conn` with `sql` (`COMMIT` or `ROLLBACK`); a connection that cannot
/// end it is closed rather than returned to the pool.
async fn end(mut conn: PoolConnection<Postgres>, sql: &'static str) -> Result<(), DbErr> {
    let result = (&mut *conn).execute(sql).await;
    if result.is_err() {
        conn.close_on_drop();
    }
    result.map(|_| ()).map_err(exec_err)
}

impl TenantConn {
    /// Acquires a connection and sends `begin` (a `BEGIN` followed by the context's
    /// `SET LOCAL`s, built by the caller from typed values only) as one message.
    pub(crate) async fn begin(pool: &PgPool, begin: String) -> Result<Self, DbErr> {
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?;
        if let Err(e) = (&mut *conn).execute(sqlx::AssertSqlSafe(begin)).await {
            // The BEGIN may have opened a transaction the failed SET LOCAL aborted.
            let _ = end(conn, "ROLLBACK").await;
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
