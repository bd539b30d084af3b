//! Backfill, part 3: make the assignment binding without blocking writers for long.
//!
//! Runs outside a transaction, one short step at a time, each skipped when already done, so a
//! run that fails (for instance on `lock_timeout`) resumes where it stopped:
//! `CHECK (tenant_id IS NOT NULL) NOT VALID` → `VALIDATE` (writers go on) → `SET NOT NULL`
//! (no scan: the valid check proves it) → default to the current tenant → the reference to
//! `tenants`, `NOT VALID` then validated (after the backfill, so it is checked in one scan, not
//! once per backfilled row) → primary keys `(tenant_id, id)` from concurrently built indexes →
//! composite foreign keys between tenant tables → `(tenant_id)` and
//! `(tenant_id, created_at DESC)` indexes → every existing user becomes a member of the default
//! tenant.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};

use crate::ddl::{ColumnAlter, ConstraintAdd, ConstraintDrop, ConstraintKind};
use crate::guards::Guard;
use crate::m0002_tenancy::current_tenant_id;
use crate::m0003_tenant_columns::{default_tenant, legacy_tenant_tables};
use crate::names::{APP_SCHEMA, TENANCY_SCHEMA, TENANT_COLUMN};
use crate::plan::{MigrationPlan, SqlStep, pg};
use crate::probes;
use crate::tables::{TenantUsers, Users, t};

/// The plan of this migration.
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.guard(Guard::no_long_transactions());
    let tables = legacy_tenant_tables();
    for table in &tables {
        let (schema, name) = table.name();
        let not_null = probes::column_not_null(schema, name, TENANT_COLUMN);
        let check = ConstraintAdd::new(
            schema,
            name,
            &format!("{name}_tenant_id_not_null"),
            ConstraintKind::Check(Expr::col(Alias::new(TENANT_COLUMN)).is_not_null()),
        )
        .not_valid();
        plan.push(SqlStep {
            label: format!("{schema}.{name}: CHECK (tenant_id IS NOT NULL) NOT VALID"),
            up: vec![pg(&check)],
            down: vec![pg(&check.reverse())],
            done_when: Some(probes::either(
                probes::constraint_exists(schema, name, check.name()),
                not_null.clone(),
            )),
            transactional: true,
        });
        plan.push(SqlStep {
            label: format!("{schema}.{name}: VALIDATE the check (reads the table, writers go on)"),
            up: vec![pg(&check.validate())],
            down: vec![],
            done_when: Some(probes::either(
                probes::constraint_validated(schema, name, check.name()),
                not_null.clone(),
            )),
            transactional: true,
        });
        let set_nn = ColumnAlter::set_not_null(schema, name, TENANT_COLUMN);
        plan.push(SqlStep {
            label: format!("{schema}.{name}: SET NOT NULL (proven by the check), drop the check"),
            up: vec![
                pg(&set_nn),
                pg(&ConstraintDrop::new(schema, name, check.name())),
            ],
            down: vec![pg(&set_nn.reverse())],
            done_when: Some(not_null),
            transactional: true,
        });
        plan.lint_ignore(
            &["ban-drop-constraint"],
            "the CHECK (tenant_id IS NOT NULL) dropped is replaced by SET NOT NULL in the same step",
        );
        let to_current = ColumnAlter::set_default(schema, name, TENANT_COLUMN, current_tenant_id());
        let to_default = ColumnAlter::set_default(schema, name, TENANT_COLUMN, default_tenant());
        plan.step(
            format!("{schema}.{name}: tenant_id defaults to the current tenant"),
            &to_current,
            &to_default,
        );
        plan.lint_ignore(
            &["prefer-robust-stmts"],
            "SET DEFAULT is idempotent: a rerun sets the same default",
        );
        let fk = table.tenant_fk();
        let fk_not_valid = table.tenant_fk().not_valid();
        plan.push(SqlStep {
            label: format!("{schema}.{name}: tenant_id references tenants (NOT VALID)"),
            up: vec![pg(&fk_not_valid)],
            down: vec![pg(&fk_not_valid.reverse())],
            done_when: Some(probes::constraint_exists(schema, name, fk.name())),
            transactional: true,
        });
        plan.push(SqlStep {
            label: format!("{schema}.{name}: VALIDATE tenant_id references tenants"),
            up: vec![pg(&fk.validate())],
            down: vec![],
            done_when: Some(probes::constraint_validated(schema, name, fk.name())),
            transactional: true,
        });
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
