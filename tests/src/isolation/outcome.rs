//! Running one statement as the app login, under a tenant context, and classifying the result.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, RuntimeErr, Statement,
    TransactionTrait,
};
use uuid::Uuid;

/// How the tenant context is set: the right way, or the seeds' mistake (for the tests that
/// prove the matrix notices it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextMode {
    /// `SET LOCAL`: ends with the transaction.
    Local,
    /// `SET` (session-level): survives into the next transaction of a pooled connection.
    Session,
    /// `SET LOCAL` and the schema entry, as the service opens every tenant
    /// transaction: a dedicated tenant's transaction runs in its schema, under its role.
    Entered,
}

impl ContextMode {
    /// The statement setting `tenant` in this mode.
    pub fn set_sql(self, tenant: Uuid) -> String {
        match self {
            Self::Local => format!("SET LOCAL tenantry.tenant_id = '{tenant}'"),
            Self::Session => format!("SET tenantry.tenant_id = '{tenant}'"),
            Self::Entered => format!(
                "SET LOCAL tenantry.tenant_id = '{tenant}'; {}",
                migration::names::ENTRY_CALL
            ),
        }
    }
}

/// What a statement did.
#[derive(Debug)]
pub enum Outcome {
    /// A query's rows.
    Rows(Vec<QueryResult>),
    /// A command's affected-row count.
    Affected(u64),
    /// It failed.
    Refused {
        /// SQLSTATE, when PostgreSQL sent one.
        code: Option<String>,
        /// The message.
        message: String,
    },
}

impl Outcome {
    /// True when PostgreSQL refused with `insufficient_privilege` (42501): a missing grant or a
    /// row-level-security WITH CHECK violation.
    pub fn refused_by_security(&self) -> bool {
        matches!(self, Self::Refused { code: Some(c), .. } if c == "42501")
    }

    /// A short description for a matrix cell.
    pub fn describe(&self) -> String {
        match self {
            Self::Rows(r) => format!("{} row(s)", r.len()),
            Self::Affected(n) => format!("{n} row(s) affected"),
            Self::Refused { code, message } => {
                format!("refused {}: {message}", code.as_deref().unwrap_or("?"))
            }
        }
    }
}

/// The SQLSTATE of an error.
pub fn sqlstate(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned()),
        _ => None,
    }
}

/// Runs `sql` in a transaction of `app` (optionally under `tenant`, set in `mode`), then rolls
/// back: attacks never leave traces. `query` says whether rows are expected.
pub async fn attempt(
    app: &DatabaseConnection,
    tenant: Option<Uuid>,
    mode: ContextMode,
    sql: &str,
    query: bool,
) -> Result<Outcome, DbErr> {
    let set = tenant.map(|t| mode.set_sql(t));
    attempt_after(app, set.as_deref(), sql, query).await
}

/// Runs `pre` (when given) then `sql` in a transaction of `app` and rolls back: what `sql`
/// did. [`attempt`] with the context statement as `pre`.
pub async fn attempt_after(
    app: &DatabaseConnection,
    pre: Option<&str>,
    sql: &str,
    query: bool,
) -> Result<Outcome, DbErr> {
    let txn = app.begin().await?;
    if let Some(pre) = pre {
        txn.execute_unprepared(pre).await?;
    }
    let stmt = Statement::from_string(DbBackend::Postgres, sql.to_owned());
    let result = if query {
        txn.query_all_raw(stmt).await.map(Outcome::Rows)
    } else {
        txn.execute_raw(stmt)
            .await
            .map(|r| Outcome::Affected(r.rows_affected()))
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) => Outcome::Refused {
            code: sqlstate(&e),
            message: first_line(&e.to_string()),
        },
    };
    txn.rollback().await?;
    Ok(outcome)
}

/// The first line of a database error, without sqlx's prefix, at most 160 characters.
pub(crate) fn first_line(s: &str) -> String {
    let s = s
        .rsplit("error returned from database: ")
        .next()
        .unwrap_or(s);
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(160)
        .collect()
}
