//! Backfill, part 3: make the assignment binding without blocking writers for long.
//!
//! Runs outside a transaction, one short step at a time, each skipped when already done, so a
//! run that fails (for instance on `lock_timeout`) resumes where it stopped:
//! `CHECK (tenant_id IS NOT NULL) NOT VALID` → `VALIDATE` (writers go on) → `SET NOT NULL`
//! (no scan: the valid check proves it) → default to the current tenant → the reference to
//! `tenants`, `NOT VALID` then validated (after the backfill, so it is checked in one scan, not
//! once per backfilled row) → a non-unique `(id)` index for the legacy key → primary keys
//! `(tenant_id, id)` from concurrently built indexes →
//! composite foreign keys between tenant tables → `(tenant_id)` and
//! `(tenant_id, created_at DESC)` indexes → every existing user becomes a member of the default
//! tenant.

use sea_orm::sea_query::{Expr, OnConflict, Query};

use crate::guards::Guard;
use crate::m0003_tenant_columns::{default_tenant, legacy_tenant_tables};
use crate::names::{APP_SCHEMA, TENANCY_SCHEMA};
use crate::plan::{MigrationPlan, SqlStep, pg};
use crate::probes;
use crate::tables::{TenantUsers, Users, t};

/// The plan of this migration.
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.guard(Guard::no_long_transactions());
    let tables = legacy_tenant_tables();
    for table in &tables {
        plan.extend(table.enforce_column_plan());
    }
    // Single-column references between tenant tables go first: they hold the old keys.
    for table in &tables {
        let (schema, name) = table.name();
        for parent in table.parents() {
            let legacy = table.legacy_parent_fk(parent);
            plan.push(SqlStep {
                label: format!("{schema}.{name}: drop single-column {}", legacy.name()),
                up: vec![pg(&legacy.reverse())],
                down: vec![pg(&legacy)],
                done_when: Some(probes::constraint_absent(schema, name, legacy.name())),
                transactional: true,
            });
            plan.lint_ignore(
                &["ban-drop-constraint"],
                "replaced by the composite (tenant_id, ...) foreign key this migration adds",
            );
        }
    }
    // The unchanged application looks rows up by `id`: keep an index leading with it before the
    // key becomes `(tenant_id, id)`, so its updates never scan (m0008 finds it built and skips).
    for table in &tables {
        plan.extend(table.legacy_key_index_plan());
    }
    for table in &tables {
        plan.extend(table.key_plan_with(true));
    }
    for table in &tables {
        let (schema, name) = table.name();
        for parent in table.parents() {
            let fk = table.parent_fk(parent).not_valid();
            plan.push(SqlStep {
                label: format!("{schema}.{name}: composite {} (NOT VALID)", fk.name()),
                up: vec![pg(&fk)],
                down: vec![pg(&fk.reverse())],
                done_when: Some(probes::constraint_exists(schema, name, fk.name())),
                transactional: true,
            });
            plan.push(SqlStep {
                label: format!("{schema}.{name}: VALIDATE {}", fk.name()),
                up: vec![pg(&fk.validate())],
                down: vec![],
                done_when: Some(probes::constraint_validated(schema, name, fk.name())),
                transactional: true,
            });
        }
    }
    for table in &tables {
        plan.extend(table.index_plan_with(true));
    }
    // Users stay global; everyone who used the single-tenant app is a member of the default one.
    let members = Query::insert()
        .into_table(t(TENANCY_SCHEMA, TenantUsers::Table))
        .columns([
            TenantUsers::TenantId,
            TenantUsers::UserId,
            TenantUsers::Role,
        ])
        .select_from(
            Query::select()
                .expr(default_tenant())
                .column(Users::Id)
                .expr(Expr::val("member"))
                .from(t(APP_SCHEMA, Users::Table))
                .to_owned(),
        )
        .map(|q| {
            q.on_conflict(
                OnConflict::columns([TenantUsers::TenantId, TenantUsers::UserId])
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned()
        });
    if let Ok(members) = members {
        plan.forward_only(
            "every existing user becomes a member of the default tenant",
            &members,
        );
    }
    plan
}
