//! Moving a tenant between isolation modes (promote to a dedicated schema, demote back).
//!
//! * `tenancy.tenant_moves`: one row per move in progress (the tenant, the target mode, the
//!   phase `copying` or `switched`, when it started and switched, the switch's counts). Read
//!   and written by the superadmin role only; a finished move deletes its row, so a rerun
//!   after completion finds nothing to do.
//! * `tenancy.enter_tenant_schema()` (m0013's body) now takes the tenant's **move lock** in shared mode
//!   (`pg_advisory_xact_lock_shared(MOVE_LOCK_CLASS, hashtext(tenant))`, held to the end of
//!   the tenant transaction) before it reads the tenant row. The move's switch transaction
//!   takes it exclusively: it waits for that tenant's transactions in flight, the tenant's new
//!   transactions wait for it, and each of them reads the tenant row (its mode) only once the
//!   switch has committed. Other tenants' transactions take other locks: an in-memory lock
//!   table entry, no row lock, no write.
//! * `tenancy.set_updated_at()` (the tenant schemas' trigger function since m0011) leaves
//!   `updated_at` alone in a transaction where `tenantry.backfill` is `on`, as
//!   `public.set_updated_at()` has since m0003: the switch copies rows with their timestamps.

use sea_orm::sea_query::{Alias, ColumnDef, Expr, ForeignKey, ForeignKeyAction, Table};

use crate::dedicated::MOVE_LOCK_CLASS;
use crate::dsl::{Grant, GrantObject, Privilege};
use crate::m0001_legacy_baseline::{LEGACY_SET_UPDATED_AT, set_updated_at_in};
use crate::m0003_tenant_columns::BACKFILL_AWARE_SET_UPDATED_AT;
use crate::m0010_dedicated_tenants::enter_function;
use crate::m0013_schema_entry::{enter_body_fast, enter_body_fast_with};
use crate::names::{SUPERADMIN_ROLE, TENANCY_SCHEMA};
use crate::plan::MigrationPlan;
use crate::tables::t;

/// `tenancy.tenant_moves`.
pub const MOVES_TABLE: (&str, &str) = (TENANCY_SCHEMA, "tenant_moves");

/// The PL/pgSQL statement `enter_tenant_schema()` runs before it reads the tenant row.
pub fn move_lock_statement() -> String {
    format!(
        "PERFORM pg_catalog.pg_advisory_xact_lock_shared({MOVE_LOCK_CLASS}, \
         pg_catalog.hashtext(tenancy.current_tenant_id()::text)); "
    )
}

/// The migration.
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    let moves = t(MOVES_TABLE.0, Alias::new(MOVES_TABLE.1));
    let create = Table::create()
        .table(moves.clone())
        .col(
            ColumnDef::new(Alias::new("subject_tenant_id"))
                .uuid()
                .not_null()
                .primary_key(),
        )
        .col(
            ColumnDef::new(Alias::new("target"))
                .text()
                .not_null()
                .check(Expr::cust("target IN ('shared', 'dedicated')")),
        )
        .col(
            ColumnDef::new(Alias::new("phase"))
                .text()
                .not_null()
                .check(Expr::cust("phase IN ('copying', 'switched')")),
        )
        .col(
            ColumnDef::new(Alias::new("started_at"))
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        )
        .col(
            ColumnDef::new(Alias::new("switched_at"))
                .timestamp_with_time_zone()
                .null(),
        )
        .col(
            ColumnDef::new(Alias::new("details"))
                .json_binary()
                .not_null()
                .default(Expr::cust("'{}'::jsonb")),
        )
        .foreign_key(
            ForeignKey::create()
                .name("tenant_moves_subject_fkey")
                .from_col(Alias::new("subject_tenant_id"))
                .to(t(TENANCY_SCHEMA, Alias::new("tenants")), Alias::new("id"))
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned();
    let drop = Table::drop().table(moves.clone()).to_owned();
    plan.step("table tenancy.tenant_moves", &create, &drop);
    let grant = Grant::privileges([
        Privilege::Select,
        Privilege::Insert,
        Privilege::Update,
        Privilege::Delete,
    ])
    .on(GrantObject::table(moves))
    .to(Alias::new(SUPERADMIN_ROLE))
    .to_owned();
    plan.step(
        "superadmin records moves in tenant_moves",
        &grant,
        &grant.reverse(),
    );
    let locked = enter_function(enter_body_fast_with(&move_lock_statement()));
    let unlocked = enter_function(enter_body_fast());
    plan.step(
        "enter_tenant_schema() takes the tenant's move lock (shared)",
        &locked,
        &unlocked,
    );
    // The switch copies rows with their updated_at: the tenant schemas' trigger function
    // (m0011's) leaves it alone where `tenantry.backfill` is on, as public.set_updated_at() does.
    let aware = set_updated_at_in(TENANCY_SCHEMA, BACKFILL_AWARE_SET_UPDATED_AT);
    let legacy = set_updated_at_in(TENANCY_SCHEMA, LEGACY_SET_UPDATED_AT);
    plan.step(
        "tenancy.set_updated_at() keeps a copied updated_at (tenantry.backfill = on)",
        &aware,
        &legacy,
    );
    plan
}
