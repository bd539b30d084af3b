//! The unchanged single-tenant application keeps working: the NOLOGIN role `tenantry_legacy`,
//! whose policies pin it to the default tenant.
//!
//! * Its policies on the legacy tables compare `tenant_id` with the default tenant's id as a
//!   constant ([`crate::tenant_table::legacy_predicate`]): they read no setting, so a legacy login reads and writes
//!   the default tenant's rows only, whatever `tenantry.*` settings it sends.
//! * `tenant_id` defaults to `tenancy.row_tenant_id()`: the default tenant for a member of
//!   the legacy role (the unchanged application never names `tenant_id`), the current tenant
//!   for everyone else (so the app's rows still need a context: without one the default is
//!   NULL and the insert fails).
//! * DML on the legacy tables, nothing on global tables: `users` and `tenants` are shared by
//!   every tenant, so a login pinned to one tenant may neither list every tenant's people nor
//!   change an identity other tenants use (references to users are still checked by the
//!   foreign keys, which need no grant).
//! * A non-unique index on `id` of each legacy table: after the key swap no index leads with
//!   `id`, and a writer filtering by `id` alone scanned the table (0.62 ms → 155 ms per
//!   `UPDATE ... WHERE id = $1`). Built concurrently, so this migration runs outside a
//!   transaction, each step skipped when already done.

use sea_orm::sea_query::Alias;

use crate::core_set::Set;
use crate::ddl::ColumnAlter;
use crate::dsl::{Function, FunctionLanguage, GrantObject, Privilege, Volatility};
use crate::guards::Guard;
use crate::m0002_tenancy::current_tenant_id;
use crate::m0003_tenant_columns::legacy_tenant_tables;
use crate::m0006_security::{grant, role};
use crate::names::{
    APP_ROLE, APP_SCHEMA, DEFAULT_TENANT_ID, LEGACY_ROLE, SUPERADMIN_ROLE, TENANCY_SCHEMA,
    TENANT_COLUMN,
};
use crate::plan::{MigrationPlan, SqlStep, Step};
use crate::tenant_table::row_tenant_id;

/// `tenancy.row_tenant_id()`, the default of `tenant_id` on tables the legacy role uses.
pub const ROW_TENANT_ID: (&str, &str) = (TENANCY_SCHEMA, "row_tenant_id");

/// `tenancy.row_tenant_id()`, the default tenant's id cast as `::{uuid}` (m0015 qualifies it).
pub(crate) fn row_tenant_id_function(uuid: &str) -> crate::dsl::FunctionCreateStatement {
    // STABLE SQL, SECURITY INVOKER. Membership, not a setting, decides: a legacy login cannot
    // send its way out of the default tenant. (A superuser is a member of every role, so its
    // rows without a tenant land in the default tenant too, as before the migration.)
    Function::create()
        .name(ROW_TENANT_ID)
        .or_replace()
        .returns("uuid")
        .language(FunctionLanguage::Sql)
        .volatility(Volatility::Stable)
        .security_invoker()
        .body(format!(
            "SELECT CASE WHEN pg_catalog.pg_has_role(CURRENT_USER, '{LEGACY_ROLE}', 'MEMBER') \
             THEN '{DEFAULT_TENANT_ID}'::{uuid} ELSE tenancy.current_tenant_id() END"
        ))
        .to_owned()
}

/// The plan of this migration.
pub fn plan() -> MigrationPlan {
    plan_in(Set::Full)
}

/// The plan of this migration in the core-only set: the role and `row_tenant_id()`; an
/// adoption gives the role its policies on the user's tables.
pub fn core_plan() -> MigrationPlan {
    plan_in(Set::Core)
}

fn plan_in(set: Set) -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.guard(Guard::no_long_transactions());
    role(&mut plan, LEGACY_ROLE);
    for schema in [TENANCY_SCHEMA, APP_SCHEMA] {
        grant(
            &mut plan,
            vec![Privilege::Usage],
            GrantObject::schema(Alias::new(schema)),
            LEGACY_ROLE,
        );
    }
    let function = row_tenant_id_function("uuid");
    plan.step(
        "function tenancy.row_tenant_id()",
        &function,
        &function.reverse(),
    );
    for role in [APP_ROLE, SUPERADMIN_ROLE, LEGACY_ROLE] {
        grant(
            &mut plan,
            vec![Privilege::Execute],
            GrantObject::function(ROW_TENANT_ID, Vec::<&str>::new()),
            role,
        );
    }
    let legacy = match set {
        Set::Full => legacy_tenant_tables(),
        Set::Core => Vec::new(),
    };
    for table in legacy {
        let (schema, name) = table.name();
        let to_row = ColumnAlter::set_default(schema, name, TENANT_COLUMN, row_tenant_id());
        let to_current = ColumnAlter::set_default(schema, name, TENANT_COLUMN, current_tenant_id());
        plan.step(
            format!("{schema}.{name}: a legacy login's rows default to the default tenant"),
            &to_row,
            &to_current,
        );
        plan.lint_ignore(
            &["prefer-robust-stmts"],
            "SET DEFAULT is idempotent: a rerun sets the same default",
        );
        plan.extend(table.legacy_plan());
        // m0005 builds the legacy key index before its key swap; a database migrated before it
        // did gets it here. It belongs to m0005, so rolling m0008 back keeps it.
        for step in table.legacy_key_index_plan().steps() {
            if let Step::Sql(sql) = step {
                plan.push(SqlStep {
                    down: Vec::new(),
                    ..sql.clone()
                });
            }
        }
    }
    plan
}
