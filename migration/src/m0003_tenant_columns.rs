//! Backfill, part 1: `tenant_id` on every legacy table, nullable and defaulting to the default
//! tenant (so rows that legacy writers insert while the backfill runs are assigned too).
//! Metadata-only: no table is rewritten. The reference to `tenancy.tenants` comes after the
//! backfill, in m0005: a foreign key present during the backfill runs its check once per
//! updated row (about five times the cost of the update itself), where `VALIDATE` checks all
//! rows in one scan. Until then the only value written is the default tenant, which exists.

use crate::ddl::ColumnAlter;
use crate::guards::Guard;
use crate::m0001_legacy_baseline::{LEGACY_SET_UPDATED_AT, set_updated_at_function};
use crate::names::{APP_SCHEMA, TENANT_COLUMN};
use crate::plan::MigrationPlan;
use crate::tenant_table::{PolicyForm, TenantTable};

/// The legacy tables that become tenant-scoped, in dependency order (`users` stays global);
/// their policies as m0006 created them ([`PolicyForm::Function`], m0017 rewrites them).
pub fn legacy_tenant_tables() -> Vec<TenantTable> {
    vec![
        TenantTable::new(APP_SCHEMA, "projects"),
        TenantTable::new(APP_SCHEMA, "documents").references("project_id", APP_SCHEMA, "projects"),
        TenantTable::new(APP_SCHEMA, "tasks").references("project_id", APP_SCHEMA, "projects"),
    ]
    .into_iter()
    .map(|t| t.policy_form(PolicyForm::Function))
    .collect()
}

/// `set_updated_at()` that leaves `updated_at` alone in a session where `tenantry.backfill`
/// is `on` (set by [`crate::backfill::Backfill::run`] for its own batches only).
pub const BACKFILL_AWARE_SET_UPDATED_AT: &str = "BEGIN \
    IF coalesce(pg_catalog.current_setting('tenantry.backfill', true), '') <> 'on' THEN \
    NEW.updated_at := now(); END IF; RETURN NEW; END;";

pub use migration_kit::tenant_table::default_tenant;

/// The plan of this migration.
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.guard(Guard::no_long_transactions());
    // The backfill writes only tenant_id: while it runs (and only in its own session), the
    // legacy trigger leaves updated_at alone.
    let aware = set_updated_at_function(BACKFILL_AWARE_SET_UPDATED_AT);
    let legacy = set_updated_at_function(LEGACY_SET_UPDATED_AT);
    plan.step(
        "set_updated_at() skips rows touched by the backfill",
        &aware,
        &legacy,
    );
    let tables = legacy_tenant_tables();
    for table in &tables {
        let (schema, name) = table.name();
        plan.push(table.nullable_column_step());
        let default = ColumnAlter::set_default(schema, name, TENANT_COLUMN, default_tenant());
        plan.step(
            format!("{schema}.{name}: new rows default to the default tenant"),
            &default,
            &default.reverse(),
        );
    }
    // Last in `up` order, so `down` checks it before undoing anything.
    plan.guard(Guard::KeepTenantAssignments {
        tables: tables
            .iter()
            .map(|t| (t.name().0.to_owned(), t.name().1.to_owned()))
            .collect(),
    });
    plan
}
