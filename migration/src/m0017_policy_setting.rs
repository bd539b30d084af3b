//! Every policy of the form `<column> = tenancy.current_tenant_id()` reads the setting itself:
//! `<column> = NULLIF(pg_catalog.current_setting('tenantry.tenant_id', true), '')::pg_catalog.uuid`,
//! which is that function's body, so each policy means exactly what it meant.
//!
//! Why: PostgreSQL inlines a SQL function each time it plans a statement, parsing and
//! analysing its body anew. A statement planned at every execution (custom plans, such as a
//! tenant's `count(*)` with its `tenant_id = $1`) paid that once per execution and per policy
//! on every table it reads (`docs/pgbench/findings.sh`, part 2). A policy stores its
//! expression parsed, so the setting's form has nothing to inline, and its function, operator
//! and cast are resolved once, here, never under a caller's `search_path`.
//!
//! Which policies: in every schema but the dedicated tenants' (`tenancy.tenant_schema_versions`
//! lists them; the tenant-schema migration `ts0002_policy_setting` does the same in each of
//! those, in the schema's own transaction, so no transaction locks every tenant's tables at
//! once), every policy whose `USING` or `WITH CHECK` is exactly that comparison, on any column:
//! ours (`tenant_id`, and `id` on `tenancy.tenants`), adopted tables' and their partitions', and
//! a user's own of that shape, with the exceptions [`crate::policy_rewrite`] lists (each left
//! with a WARNING). Each is rewritten in place (`ALTER POLICY`), so no table is ever without it.
//!
//! Locks: `ALTER POLICY` takes an exclusive lock on its table until the migration commits, one
//! table after another in schema order. Under the runner's `lock_timeout`, a table held by a
//! long transaction (or a deadlock with one that locks the same tables in another order) rolls
//! the whole migration back, every policy as it was, and a rerun in a quieter moment finishes.
//!
//! `down` rewrites the setting's form back to the function, in the same schemas (the dedicated
//! schemas keep the setting's form: `ts0002` is forward-only, like every tenant-schema
//! migration). Tables made
//! by [`crate::tenant_table::TenantTable`] from this release on get the setting's form when
//! they are created ([`crate::tenant_table::PolicyForm::Setting`]); the migrations before this
//! one keep creating the function's form, so each of them stays what it was when it ran.

use crate::plan::{MigrationPlan, SqlStep};
use crate::policy_rewrite::{Direction, Scope, rewrite_block};
use crate::probes;

/// The migration (both sets: every schema has policies of the function's form).
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.push(SqlStep {
        label: "every policy `<column> = tenancy.current_tenant_id()` outside the dedicated \
                schemas reads tenantry.tenant_id itself (ALTER POLICY, same meaning)"
            .into(),
        up: vec![probes::raw(rewrite_block(
            Direction::ToSetting,
            Scope::Shared,
        ))],
        down: vec![probes::raw(rewrite_block(
            Direction::ToFunction,
            Scope::Shared,
        ))],
        done_when: None,
        transactional: true,
    });
    plan
}
