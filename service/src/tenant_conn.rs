//! [`TenantConn`]: the connection of a tenant-bound transaction, opened in one message.
//!
//! SeaORM's `begin()` sends `BEGIN` and waits for the answer before anything else can be sent,
//! so setting the tenant context cost a second round trip. Here the transaction is opened with
//! sqlx's `begin_with`, whose custom statement is one simple-protocol message:
//! `SET LOCAL tenantry.tenant_id = '<uuid>'[; SET LOCAL tenantry.user_id = '<uuid>']; SELECT
//! tenancy.enter_tenant_schema(); BEGIN` (see `tx::begin_sql` for why `BEGIN` comes last).
//! PostgreSQL runs the statements of one message in order and stops at the first error, so a
//! failed `SET LOCAL` leaves no transaction (sqlx then reports the begin as failed) and no work
//! runs. The settings stay transaction-local and in the `SET LOCAL` form Citus propagates.
//!
//! [`TenantConn`] implements SeaORM's [`ConnectionTrait`] exactly as `DatabaseTransaction`
//! does for PostgreSQL (the same persistent prepared statements, the same error mapping), so
//! every SeaORM query, insert and update runs on it unchanged. Dropped without
//! [`TenantConn::commit`], sqlx queues a `ROLLBACK` before the connection is reused.

use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement, Values,
};
use sea_query_sqlx::SqlxValues;
use sqlx::{Executor, PgPool, Postgres, Transaction};
use tokio::sync::Mutex;

/// An open tenant-bound transaction on one pooled connection.
pub struct TenantConn {
    txn: Mutex<Transaction<'static, Postgres>>,
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

impl TenantConn {
    /// Acquires a connection and sends `begin` (a `BEGIN` followed by the context's
    /// `SET LOCAL`s, built by the caller from typed values only) as one message.
    pub(crate) async fn begin(pool: &PgPool, begin: String) -> Result<Self, DbErr> {
        let txn = pool
            .begin_with(sqlx::AssertSqlSafe(begin))
            .await
            .map_err(|e| match e {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                    DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e)))
                }
                other => query_err(other),
            })?;
        Ok(Self {
            txn: Mutex::new(txn),
        })
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.into_inner().commit().await.map_err(exec_err)
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.into_inner().rollback().await.map_err(exec_err)
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
            .execute(&mut **txn)
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let mut txn = self.txn.lock().await;
        (&mut **txn)
            .execute(sqlx::AssertSqlSafe(sql.to_owned()))
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut txn = self.txn.lock().await;
        query(&stmt)
            .fetch_optional(&mut **txn)
            .await
            .map(|row| row.map(Into::into))
            .map_err(query_err)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut txn = self.txn.lock().await;
        query(&stmt)
            .fetch_all(&mut **txn)
            .await
            .map(|rows| rows.into_iter().map(Into::into).collect())
            .map_err(query_err)
    }
}
