//! Tenant-bound transactions and scoped CRUD for any [`TenantScoped`] entity.
//!
//! Every statement of the app path runs inside a [`TenantTx`]: a transaction opened by one
//! message, `BEGIN` followed by `SET LOCAL tenantry.tenant_id` (and `tenantry.user_id`) rendered
//! from typed `Uuid`s ([`crate::tenant_conn`]), so a one-statement unit of work costs three
//! round trips: the begin with its context, the statement, `COMMIT`. Each scoped operation also carries `tenant_id` in its own WHERE clause, so
//! the application filter and row level security each hold on their own.

use entity::TenantScoped;
use sea_orm::IdenStatic;
use sea_orm::sea_query::{IntoCondition, Query, Value};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, Condition, DbBackend, DeleteMany,
    EntityTrait, IntoActiveModel, Iterable, Order, PaginatorTrait, PrimaryKeyToColumn, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Select, UpdateMany,
};
use uuid::Uuid;

use crate::context::TenantContext;
use crate::error::{Result, ServiceError};
use crate::rows::of_tenant;
use crate::tenant_conn::TenantConn;

/// The largest page a list returns.
pub const MAX_PAGE: u64 = 1000;

/// A page of a list: at most `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to return (1..=[`MAX_PAGE`]).
    pub limit: u64,
    /// Rows to skip.
    pub offset: u64,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: 50,
            offset: 0,
        }
    }
}

/// A transaction bound to one tenant. Dropped without [`TenantTx::commit`], it rolls back.
pub struct TenantTx {
    txn: TenantConn,
    ctx: TenantContext,
}

/// The `SET LOCAL` statements for a context. Only typed `Uuid`s are rendered, and a `Uuid` can
/// only print as hex digits and dashes, so the literal is always safe. `SET LOCAL` (rather than
/// `set_config(..., true)`) is also the form Citus propagates to worker nodes.
///
/// Both settings are always set: a context without a user sets `tenantry.user_id` to `''`
/// (which `tenancy.current_user_id()` reads as NULL), so no user id of an earlier context can
/// survive into this transaction, even on a connection that were somehow still inside one.
pub fn set_local_sql(ctx: &TenantContext) -> String {
    let user = ctx.user_id().map(|u| u.to_string()).unwrap_or_default();
    format!(
        "SET LOCAL tenantry.tenant_id = '{}'; SET LOCAL tenantry.user_id = '{user}'",
        ctx.tenant_id()
    )
}

/// Enters a dedicated tenant's schema (nothing for a shared tenant): `SET LOCAL ROLE t_<hex>`
/// and `SET LOCAL search_path = t_<hex>, public, pg_temp`, the name read from the tenant's row
/// and validated in the database; a missing schema raises `TN001` (503, never another
/// tenant's rows). It reads the context the `SET LOCAL`s before it just set.
///
/// A procedure since m0020: `CALL` runs it without planning and executing a `SELECT` around
/// it, and the client reads no result row (about 23,400 fewer server instructions per tenant
/// transaction, 195,400 → 172,000, `docs/pgbench/entry_instructions.sh`). `tenancy.enter_tenant_schema()`, which
/// the release before called, now calls this procedure.
pub const ENTER_TENANT_SCHEMA_SQL: &str = migration::names::ENTRY_CALL;

/// The one message that opens a tenant-bound transaction, on either path (a [`TenantTx`] and
/// the pipelined unit of work): `BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL ...; CALL
/// tenancy.enter_tenant()`.
///
/// The level is pinned to READ COMMITTED, whatever `default_transaction_isolation` the
/// session, the login or the database has: the schema entry reads the tenant's mode after it
/// takes the tenant's move lock, which only a statement snapshot taken after the lock can see
/// (under REPEATABLE READ the snapshot is the one taken before; m0016's entry refuses it).
/// Named in `BEGIN`, it costs the server about 6,600 fewer instructions per transaction than
/// a `SET TRANSACTION` statement of its own (`docs/pgbench/entry_instructions.sh`).
///
/// `BEGIN` comes first, so the `SET LOCAL`s, the role and the search_path are part of the
/// transaction from its start. If anything after it fails (a dedicated tenant's missing
/// schema, `TN001`), the transaction is left aborted: a [`TenantTx`] closes that connection
/// rather than pooling it (`tenant_conn.rs`), and on the pipelined path the statement already
/// on the wire fails (`25P02`) instead of running without the context.
pub fn begin_sql(ctx: &TenantContext) -> String {
    format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED; {}; {ENTER_TENANT_SCHEMA_SQL}",
        set_local_sql(ctx)
    )
}

impl TenantTx {
    /// Begins a transaction on `pool` with the context set, in one message; if setting it
    /// fails, nothing runs: the aborted transaction's connection is closed, never pooled.
    pub(crate) async fn begin(pool: &sqlx::PgPool, ctx: TenantContext) -> Result<Self> {
        let txn = TenantConn::begin(pool, begin_sql(&ctx)).await?;
        Ok(Self { txn, ctx })
    }

    /// The context this transaction runs for.
    pub fn context(&self) -> &TenantContext {
        &self.ctx
    }

    /// The tenant.
    pub fn tenant_id(&self) -> Uuid {
        self.ctx.tenant_id()
    }

    /// The underlying transaction, for raw SQL and SeaORM queries. Row level security still
    /// applies: this is the only way to reach the app pool, and it is tenant-bound.
    pub fn conn(&self) -> &TenantConn {
        &self.txn
    }

    /// Commits.
    pub async fn commit(self) -> Result<()> {
        Ok(self.txn.commit().await?)
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<()> {
        Ok(self.txn.rollback().await?)
    }

    /// `SELECT ... WHERE tenant_id = <this tenant>`: the start of every scoped read.
    ///
    /// The filter is in the outer `WHERE`: an arm a caller adds with `UNION` (through
    /// `QueryTrait::query`) is not filtered by it, only by row level security underneath. The
    /// caller runs the returned `Select` itself, so the service has no later point to refuse
    /// one (as [`crate::Tenantry::fetch_all`] does); do not build set operations on it.
    pub fn select<E: TenantScoped>(&self) -> Select<E> {
        E::find().filter(E::tenant_column().eq(self.tenant_id()))
    }

    /// One row by its id (the primary-key column other than `tenant_id`).
    pub async fn find_by_id<E: TenantScoped>(
        &self,
        id: impl Into<Value>,
    ) -> Result<Option<E::Model>> {
        let col = id_column::<E>()?;
        let stmt = self
            .select::<E>()
            .filter(col.eq(id.into()))
            .limit(1)
            .build(DbBackend::Postgres);
        self.txn
            .fetch_models::<E>(&stmt)
            .await?
            .into_iter()
            .next()
            .map(|m| of_tenant::<E>(self.tenant_id(), m))
            .transpose()
    }

    /// One row by its id, or [`ServiceError::NotFound`] naming `what`.
    pub async fn get<E: TenantScoped>(
        &self,
        what: &'static str,
        id: impl Into<Value>,
    ) -> Result<E::Model> {
        self.find_by_id::<E>(id)
            .await?
            .ok_or(ServiceError::NotFound(what))
    }

    /// Rows matching `filter`, ordered by `order` (then by id), one page at a time.
    pub async fn list<E: TenantScoped>(
        &self,
        filter: impl IntoCondition,
        order: Vec<(E::Column, Order)>,
        page: Page,
    ) -> Result<Vec<E::Model>> {
        if page.limit == 0 || page.limit > MAX_PAGE {
            return Err(ServiceError::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        let mut query = self.select::<E>().filter(filter.into_condition());
        for (col, ord) in order {
            query = query.order_by(col, ord);
        }
        query = query.order_by(id_column::<E>()?, Order::Asc);
        let stmt = query
            .offset(page.offset)
            .limit(page.limit)
            .build(DbBackend::Postgres);
        self.txn
            .fetch_models::<E>(&stmt)
            .await?
            .into_iter()
            .map(|m| of_tenant::<E>(self.tenant_id(), m))
            .collect()
    }

    /// How many rows match `filter`.
    pub async fn count<E: TenantScoped>(&self, filter: impl IntoCondition) -> Result<u64>
    where
        E::Model: Sync,
    {
        Ok(self
            .select::<E>()
            .filter(filter.into_condition())
            .count(&self.txn)
            .await?)
    }

    /// Inserts a row for this tenant. The tenant is filled in; a different one is refused.
    pub async fn insert<A>(&self, mut row: A) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Send,
        A::Entity: TenantScoped,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        self.ctx.require_write()?;
        self.claim(&mut row)?;
        // What SeaORM's `ActiveModelTrait::insert` does (the hooks, `INSERT ... RETURNING`
        // every column as SeaORM returns it), the returned row read by position.
        let row = ActiveModelBehavior::before_save(row, &self.txn, true).await?;
        let mut insert = <A::Entity as EntityTrait>::insert(row);
        insert.query().returning(
            Query::returning().exprs(
                <A::Entity as EntityTrait>::Column::iter()
                    .map(|c| c.select_as(c.into_returning_expr(DbBackend::Postgres))),
            ),
        );
        let stmt = insert.build(DbBackend::Postgres);
        let model = self
            .txn
            .fetch_models::<A::Entity>(&stmt)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| sea_orm::DbErr::RecordNotFound("the insert returned no row".into()))?;
        let model = of_tenant::<A::Entity>(self.tenant_id(), model)?;
        Ok(A::after_save(model, &self.txn, true).await?)
    }

    /// Updates a row of this tenant (its primary key, which includes `tenant_id`, is the WHERE).
    pub async fn update<A>(&self, mut row: A) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Send,
        A::Entity: TenantScoped,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        self.ctx.require_write()?;
        self.claim(&mut row)?;
        match row.update(&self.txn).await {
            Err(sea_orm::DbErr::RecordNotUpdated) => Err(ServiceError::NotFound("record")),
            other => Ok(other?),
        }
    }

    /// Deletes one row by id; returns whether a row was deleted.
    pub async fn delete_by_id<E: TenantScoped>(&self, id: impl Into<Value>) -> Result<bool> {
        self.ctx.require_write()?;
        let col = id_column::<E>()?;
        let res = self
            .delete_many::<E>()?
            .filter(col.eq(id.into()))
            .exec(&self.txn)
            .await?;
        Ok(res.rows_affected > 0)
    }

    /// `UPDATE ... WHERE tenant_id = <this tenant>`, to be narrowed and executed by the caller
    /// on [`TenantTx::conn`].
    pub fn update_many<E: TenantScoped>(&self) -> Result<UpdateMany<E>> {
        self.ctx.require_write()?;
        Ok(E::update_many().filter(E::tenant_column().eq(self.tenant_id())))
    }

    /// `DELETE ... WHERE tenant_id = <this tenant>`, to be narrowed and executed by the caller.
    pub fn delete_many<E: TenantScoped>(&self) -> Result<DeleteMany<E>> {
        self.ctx.require_write()?;
        Ok(E::delete_many().filter(E::tenant_column().eq(self.tenant_id())))
    }

    /// Puts this tenant on `row`, refusing a row that names another tenant.
    fn claim<A>(&self, row: &mut A) -> Result<()>
    where
        A: ActiveModelTrait,
        A::Entity: TenantScoped,
    {
        claim_tenant(self.tenant_id(), row)
    }
}

/// Puts `tenant` on `row`, refusing a row that names another tenant (shared by
/// [`TenantTx`]'s writes and the one-round-trip insert).
pub(crate) fn claim_tenant<A>(tenant: Uuid, row: &mut A) -> Result<()>
where
    A: ActiveModelTrait,
    A::Entity: TenantScoped,
{
    let col = <A::Entity as TenantScoped>::tenant_column();
    let mine: Value = tenant.into();
    if let Some(value) = row.get(col).into_value()
        && value != mine
    {
        return Err(ServiceError::Forbidden(
            "the row names another tenant".into(),
        ));
    }
    row.set(col, mine);
    Ok(())
}

/// The primary-key column that is not `tenant_id`.
fn id_column<E: TenantScoped>() -> Result<E::Column> {
    let tenant = E::tenant_column();
    let mut others = E::PrimaryKey::iter()
        .map(|pk| pk.into_column())
        .filter(|c| c.as_str() != tenant.as_str());
    match (others.next(), others.next()) {
        (Some(col), None) => Ok(col),
        _ => Err(ServiceError::invalid(
            "entity",
            "needs exactly one key column besides tenant_id",
        )),
    }
}

/// A filter matching everything (for `list` without conditions).
pub fn all() -> Condition {
    Condition::all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Actor, MemberRole};

    #[test]
    fn set_local_sql_always_sets_tenant_and_user() {
        let tenant = Uuid::from_u128(0xaaaa_aaaa_aaaa_4aaa_8aaa_aaaa_aaaa_aaaa);
        let user = Uuid::from_u128(0xdddd_dddd_dddd_4ddd_8ddd_dddd_dddd_dddd);
        let as_user = TenantContext::new(tenant, Actor::User { user_id: user }, MemberRole::Owner);
        assert_eq!(
            set_local_sql(&as_user),
            format!(
                "SET LOCAL tenantry.tenant_id = '{tenant}'; SET LOCAL tenantry.user_id = '{user}'"
            )
        );
        let no_user = [
            TenantContext::new(
                tenant,
                Actor::ApiKey {
                    key_id: user,
                    scopes: vec!["read".into()],
                },
                MemberRole::Viewer,
            ),
            as_user.for_job("test.job"),
        ];
        for ctx in &no_user {
            assert_eq!(
                set_local_sql(ctx),
                format!(
                    "SET LOCAL tenantry.tenant_id = '{tenant}'; SET LOCAL tenantry.user_id = ''"
                ),
                "{ctx:?}"
            );
            assert_eq!(
                begin_sql(ctx),
                format!(
                    "BEGIN ISOLATION LEVEL READ COMMITTED; \
                     SET LOCAL tenantry.tenant_id = '{tenant}'; SET LOCAL tenantry.user_id = ''; \
                     CALL tenancy.enter_tenant()"
                )
            );
        }
    }
}
