//! Tenantry's identity table (the people who sign in; global, not tenant-scoped) moves from
//! `public` into `tenancy`, so the tenancy core never claims a name in a user's schema.
//!
//! `ALTER TABLE ... SET SCHEMA` keeps the rows, the primary key, the unique e-mail, the
//! foreign keys pointing at it (`tenancy.tenant_users`, `projects.owner_id`,
//! `tasks.assignee_id`), its RLS, policies, grants and its `updated_at` trigger. What names it
//! by text is replaced: the two SECURITY DEFINER login lookups of m0007 (their bodies are
//! resolved when called). `down` moves it back and restores the lookups as m0007 wrote them.
//!
//! Dedicated tenants' schemas: tables provisioned before keep their references (they follow the
//! table); the stored templates of new ones (`tenancy.tenant_schema_steps`, rendered by m0010)
//! are rewritten to name `tenancy.users` and `tenancy.set_updated_at()`, which this migration
//! creates (the core set's m0002 creates it too), so a tenant schema never depends on `public`.

use crate::ddl::TableSetSchema;
use crate::m0001_legacy_baseline::{LEGACY_SET_UPDATED_AT, set_updated_at_in};
use crate::m0007_permissions::{FIND_LOGIN, FIND_USER_ID_BY_EMAIL, definer_functions};
use crate::m0010_dedicated_tenants::STEPS_TABLE;
use crate::names::{APP_SCHEMA, IDENTITY_SCHEMA, TENANCY_SCHEMA};
use crate::plan::{MigrationPlan, SqlStep, pg};
use crate::probes;

/// The plan of this migration.
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    let to_tenancy = TableSetSchema::new(APP_SCHEMA, "users", IDENTITY_SCHEMA);
    // CREATE OR REPLACE keeps the owner (tenantry_definer), the grants and the pinned
    // search_path; only the body changes. A SQL body is checked when created, so each
    // direction replaces the lookups right after the table is where they will read it.
    let lookups = |schema: &str| -> Vec<sea_orm::Statement> {
        definer_functions(schema)
            .iter()
            .filter(|(name, _, _)| [FIND_LOGIN, FIND_USER_ID_BY_EMAIL].contains(name))
            .map(|(_, f, _)| pg(f))
            .collect()
    };
    let mut up = vec![pg(&to_tenancy)];
    up.extend(lookups(IDENTITY_SCHEMA));
    let mut down = vec![pg(&to_tenancy.reverse())];
    down.extend(lookups(APP_SCHEMA));
    plan.push(SqlStep {
        label: format!(
            "table {APP_SCHEMA}.users moves to schema {IDENTITY_SCHEMA}; the login lookups read it there"
        ),
        up,
        down,
        done_when: None,
        transactional: true,
    });
    plan.lint_ignore(
        &["ban-set-schema"],
        "the identity table is Tenantry's own; every reader (entity, service, lookups) names \
         tenancy.users from this release on, and the move keeps rows, keys and references",
    );
    let set_updated_at = set_updated_at_in(TENANCY_SCHEMA, LEGACY_SET_UPDATED_AT);
    plan.step(
        "function tenancy.set_updated_at()",
        &set_updated_at,
        &set_updated_at.reverse(),
    );
    let rewrite = |from: &str, to: &str| {
        let (from, to) = (from.replace('\'', "''"), to.replace('\'', "''"));
        probes::raw(format!(
            "UPDATE {steps_schema}.{steps_table} SET statement = \
             replace(replace(statement, '\"{from}\".\"users\"', '\"{to}\".\"users\"'), \
             '\"{from}\".\"set_updated_at\"', '\"{to}\".\"set_updated_at\"')",
            steps_schema = STEPS_TABLE.0,
            steps_table = STEPS_TABLE.1,
        ))
    };
    plan.push(SqlStep {
        label: "tenant-schema templates name tenancy.users and tenancy.set_updated_at()".into(),
        up: vec![rewrite(APP_SCHEMA, TENANCY_SCHEMA)],
        down: vec![rewrite(TENANCY_SCHEMA, APP_SCHEMA)],
        done_when: None,
        transactional: true,
    });
    plan
}
