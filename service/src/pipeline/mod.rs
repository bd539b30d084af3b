//! The one-round-trip tenant unit of work: a single statement, with the tenant context, in
//! one network round trip.
//!
//! A [`crate::TenantTx`] costs three round trips for one statement (its opening message, the
//! statement, `COMMIT`): for a cheap read the protocol, not row level security, is the price.
//! Here the three requests are written together on one tokio-postgres client and their answers
//! read afterwards ("pipelining": tokio-postgres sends requests issued concurrently on a client
//! without waiting, which sqlx 0.9 keeps crate-private):
//!
//! 1. `BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL tenantry.tenant_id = '<uuid>'; SET LOCAL
//!    tenantry.user_id = '<uuid>' (or ''); CALL tenancy.enter_tenant()` (simple
//!    protocol, rendered from typed `Uuid`s only, the same level, `SET LOCAL`s and schema entry
//!    as a [`crate::TenantTx`]'s opening);
//! 2. the statement: Bind/Execute of the connection's prepared statement (`statements.rs`), or,
//!    with `TENANTRY_PREPARED_STATEMENTS=off` or behind a pooler (the pool finds out on
//!    connecting), Parse/Bind/Execute of an unnamed statement with explicitly typed
//!    bind parameters; its result columns are the entity's own, of built-in types only
//!    (`columns.rs`: otherwise tokio-postgres would look a type up with a named statement);
//! 3. `COMMIT`.
//!
//! `BEGIN` comes first ([`crate::tx::begin_sql`], the opening a [`crate::TenantTx`] sends
//! too): if anything in the opening fails (a dedicated tenant's missing schema, say), the
//! transaction is aborted, so the statement already on the wire fails (`25P02`) instead of
//! running without the context, and the `COMMIT` ends the aborted transaction as a rollback. The statement still carries its own
//! `WHERE tenant_id = $n` (the service adds it), so the double filter holds on this path too.
//!
//! The connection comes from the path's own small pool (`pool.rs`) and goes back only when
//! every answer was read and none failed; any error, or the future dropped while the pipeline
//! is in flight, closes it (the server rolls back an open transaction of a closed connection).

mod columns;
mod pool;
mod statements;
mod values;

use entity::TenantScoped;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect, QueryTrait, Select, Statement,
};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tracing::Instrument;

use pool::Lease;
pub(crate) use pool::PipelinePool;

use crate::context::TenantContext;
use crate::error::{Result, ServiceError};
use crate::tenantry::Tenantry;
use crate::tx::{begin_sql, claim_tenant};

/// The first error of a pipeline, in the order its requests ran, classified (SQLSTATE) as
/// every database error of the service is; the detail stays in the logs.
fn first_error(errors: [Option<tokio_postgres::Error>; 3]) -> ServiceError {
    let Some(err) = errors.into_iter().flatten().next() else {
        return ServiceError::Unavailable("internal database error".into());
    };
    tracing::debug!(error = %err, "pipelined unit of work failed");
    match err.code() {
        Some(code) => ServiceError::from_sqlstate(code.code()).unwrap_or_else(|| {
            tracing::warn!(error = %err, "unclassified database error");
            ServiceError::Unavailable("internal database error".into())
        }),
        None => ServiceError::Unavailable("database connection lost".into()),
    }
}

/// How a unit on a prepared statement ended.
enum Attempt {
    /// Its rows.
    Rows(Vec<Row>),
    /// It could not use a prepared statement and nothing ran (its transaction rolled back):
    /// run it again unnamed.
    Unnamed,
}

/// The parameters as tokio-postgres binds them to a prepared statement.
fn bound(params: &[values::Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|(v, _)| &**v as &(dyn ToSql + Sync))
        .collect()
}

/// The SQLSTATE of a failed request, if the server sent one.
fn code(r: &Option<tokio_postgres::Error>) -> Option<&SqlState> {
    r.as_ref().and_then(tokio_postgres::Error::code)
}

/// One unit on the connection's prepared statement for `sql` (see `statements.rs`; the pool
/// names statements only on connections that talk to their server session directly).
///
/// The first use on a connection prepares it inside the unit's own transaction, after the
/// opening (so names resolve as they do for this tenant): two waits, once. A statement the
/// session no longer has, or whose result type changed for this tenant's schema ("cached plan
/// must not change result type"), runs again unnamed: the failed attempt's transaction rolled
/// back, so nothing of it is kept.
async fn named_unit(
    mut lease: Lease,
    ctx: &TenantContext,
    sql: &str,
    params: &[values::Param],
    types: &[Type],
) -> Result<Attempt> {
    let bound = bound(params);
    let opening = begin_sql(ctx);
    if let Some(statement) = lease.cached(sql, types) {
        // Polled together: each future queues its request on its first poll, so all three
        // are queued before the connection writes them. `biased` keeps the order written.
        let (open, rows, commit) = lease
            .drive(async |client| {
                tokio::join!(
                    biased;
                    client.batch_execute(&opening),
                    client.query(&statement, &bound),
                    client.batch_execute("COMMIT"),
                )
            })
            .await?;
        return match (open, rows, commit) {
            (Ok(()), Ok(rows), Ok(())) => {
                lease.release();
                Ok(Attempt::Rows(rows))
            }
            (open, rows, commit) => {
                drop(lease);
                let (open, rows, commit) = (open.err(), rows.err(), commit.err());
                let rerun = open.is_none()
                    && matches!(
                        code(&rows),
                        Some(
                            &SqlState::INVALID_SQL_STATEMENT_NAME
                                | &SqlState::FEATURE_NOT_SUPPORTED
                        )
                    );
                if rerun {
                    return Ok(Attempt::Unnamed);
                }
                Err(first_error([open, rows, commit]))
            }
        };
    }
    let (open, prepared) = lease
        .drive(async |client| {
            tokio::join!(
                biased;
                client.batch_execute(&opening),
                client.prepare_typed(sql, types),
            )
        })
        .await?;
    let statement = match (open, prepared) {
        (Ok(()), Ok(statement)) => statement,
        (Ok(()), Err(e)) if e.code() == Some(&SqlState::DUPLICATE_PSTATEMENT) => {
            // The name is taken on this session: it is not this connection's alone.
            lease.stop_naming();
            return Ok(Attempt::Unnamed);
        }
        (open, prepared) => {
            drop(lease);
            return Err(first_error([open.err(), prepared.err(), None]));
        }
    };
    lease.remember(sql, types, statement.clone())?;
    let (rows, commit) = lease
        .drive(async |client| {
            tokio::join!(
                biased;
                client.query(&statement, &bound),
                client.batch_execute("COMMIT"),
            )
        })
        .await?;
    match (rows, commit) {
        (Ok(rows), Ok(())) => {
            lease.release();
            Ok(Attempt::Rows(rows))
        }
        (rows, commit) => {
            drop(lease);
            Err(first_error([rows.err(), commit.err(), None]))
        }
    }
}

/// One unit with its statement unnamed: Parse, Bind and Execute every time.
async fn unnamed_unit(
    mut lease: Lease,
    ctx: &TenantContext,
    sql: &str,
    params: &[values::Param],
) -> Result<Vec<Row>> {
    let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
        .iter()
        .map(|(v, t)| (&**v as &(dyn ToSql + Sync), t.clone()))
        .collect();
    let opening = begin_sql(ctx);
    // Polled together, in the order written (see `named_unit`).
    let (open, rows, commit) = lease
        .drive(async |client| {
            tokio::join!(
                biased;
                client.batch_execute(&opening),
                client.query_typed(sql, &typed),
                client.batch_execute("COMMIT"),
            )
        })
        .await?;
    match (open, rows, commit) {
        (Ok(()), Ok(rows), Ok(())) => {
            lease.release();
            Ok(rows)
        }
        (open, rows, commit) => {
            // Dropping the lease closes the connection: an opening that failed may have
            // failed because of session state, and the next tenant gets a fresh session.
            drop(lease);
            Err(first_error([open.err(), rows.err(), commit.err()]))
        }
    }
}

impl Tenantry {
    /// Runs one statement for `ctx` in one round trip: opening, statement and `COMMIT`
    /// pipelined on one connection. The statement must already be tenant-filtered.
    async fn one_trip(&self, ctx: &TenantContext, stmt: Statement) -> Result<Vec<Row>> {
        let params = values::params(stmt.values.as_ref())?;
        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
        let mut lease = self.pipeline.acquire().await?;
        if lease.named() {
            match named_unit(lease, ctx, &stmt.sql, &params, &types).await? {
                Attempt::Rows(rows) => return Ok(rows),
                // Nothing ran (its transaction rolled back): once more, unnamed.
                Attempt::Unnamed => lease = self.pipeline.acquire().await?,
            }
        }
        unnamed_unit(lease, ctx, &stmt.sql, &params).await
    }

    /// The rows of `select` for `ctx`'s tenant, in one round trip (see [`crate::pipeline`]).
    /// The service adds `WHERE <tenant column> = <ctx's tenant>`, as [`crate::TenantTx::select`]
    /// does; row level security applies underneath.
    ///
    /// The service owns the select list: `E`'s columns, whatever `select` names (see
    /// `columns.rs`). A `select` combining rows with `UNION`, `INTERSECT` or `EXCEPT` is refused
    /// (an arm would escape the tenant filter): run such a query on a [`crate::TenantTx`].
    pub async fn fetch_all<E: TenantScoped>(
        &self,
        ctx: &TenantContext,
        select: Select<E>,
    ) -> Result<Vec<E::Model>> {
        let stmt = columns::entity_columns(select)
            .filter(E::tenant_column().eq(ctx.tenant_id()))
            .build(DbBackend::Postgres);
        if columns::has_set_operation(&stmt.sql) {
            return Err(ServiceError::invalid(
                "statement",
                "a set operation (UNION, INTERSECT, EXCEPT) on the one-round-trip path",
            ));
        }
        let span = tracing::info_span!("tenant_one_trip", tenant_id = %ctx.tenant_id());
        let rows = self.one_trip(ctx, stmt).instrument(span).await?;
        rows.iter().map(|row| model::<E>(ctx, row)).collect()
    }

    /// The first row of `select` for `ctx`'s tenant (`LIMIT 1`), in one round trip.
    pub async fn fetch_one<E: TenantScoped>(
        &self,
        ctx: &TenantContext,
        select: Select<E>,
    ) -> Result<Option<E::Model>> {
        Ok(self
            .fetch_all(ctx, select.limit(1))
            .await?
            .into_iter()
            .next())
    }

    /// Inserts one row for `ctx`'s tenant in one round trip and returns it as stored
    /// (`RETURNING *`). The tenant is filled in and a row naming another tenant is refused, as
    /// [`crate::TenantTx::insert`] does; the context must allow writes. SeaORM's
    /// `ActiveModelBehavior` hooks are not called on this path (Tenantry's entities have none).
    ///
    /// An insert cancelled (its future dropped) after its first poll may still have committed:
    /// the whole pipeline, `COMMIT` included, is on the wire once the unit is first polled, and
    /// the server runs it even when nobody reads the answers. Give rows client-generated ids
    /// (`Uuid::new_v4()`, as the API does) and retry with the same id: a retry of a committed
    /// insert is then a conflict, never a second row.
    pub async fn insert_one<A>(
        &self,
        ctx: &TenantContext,
        mut row: A,
    ) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Send,
        A::Entity: TenantScoped,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        ctx.require_write()?;
        claim_tenant(ctx.tenant_id(), &mut row)?;
        let mut insert = <A::Entity as EntityTrait>::insert(row);
        insert.query().returning(columns::returning::<A::Entity>());
        let stmt = insert.build(DbBackend::Postgres);
        let span = tracing::info_span!("tenant_one_trip", tenant_id = %ctx.tenant_id());
        let rows = self.one_trip(ctx, stmt).instrument(span).await?;
        match rows.first() {
            Some(row) => model::<A::Entity>(ctx, row),
            None => Err(ServiceError::Unavailable(
                "the insert returned no row".into(),
            )),
        }
    }

    /// Idle connections of the one-round-trip path right now (tests use it to see whether a
    /// connection went back to the pool or was closed).
    pub fn pipeline_idle_connections(&self) -> usize {
        self.pipeline.idle()
    }
}

/// A row as `E`'s model, which must be `ctx`'s tenant's (the statement filtered by it: a row
/// of another tenant here is a bug, refused rather than returned).
fn model<E: TenantScoped>(ctx: &TenantContext, row: &Row) -> Result<E::Model> {
    crate::rows::of_tenant::<E>(ctx.tenant_id(), values::model::<E>(row)?)
}
