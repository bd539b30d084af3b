//! A cheaper `tenancy.enter_tenant_schema()`: the same checks and the same settings, without
//! dynamic SQL or catalog queries.
//!
//! m0010's version entered a dedicated tenant's schema with two `EXECUTE format('SET LOCAL
//! ...')` statements (parsed, planned and run through SPI on every call) after two SPI queries
//! of `pg_namespace` and `pg_roles`. Counted with pg_stat_statements on a scratch cluster, the
//! call cost a dedicated tenant about 18 µs against 6 µs for a shared one, per transaction
//! (docs/BENCHMARKS.md, scenario 7). This version sets the same three settings with
//! `pg_catalog.set_config(.., true)`, which is what `SET LOCAL` does (the same GUC, the same
//! `check_role` permission test for `role`), evaluated as PL/pgSQL simple expressions; and it
//! checks the schema and role with `to_regnamespace` / `to_regrole` (one syscache lookup each).
//! About 10 µs for a dedicated tenant, the shared path unchanged.
//!
//! Unchanged: every call first resets `role`, `search_path` (`public, pg_temp`) and
//! `row_security` (so pooled session state never reaches the next tenant), the tenant row is
//! the one truth for the schema name, the name is re-validated against the pattern, and a
//! missing schema or role raises `TN001` before anything is set.

use crate::dedicated::SCHEMA_UNAVAILABLE_SQLSTATE;
use crate::m0010_dedicated_tenants::{SCHEMA_NAME_PATTERN, enter_body, enter_function};
use crate::plan::MigrationPlan;

/// The body of `tenancy.enter_tenant_schema()` from this migration on.
pub fn enter_body_fast() -> String {
    enter_body_fast_with("")
}

/// [`enter_body_fast`] with `before_lookup` (PL/pgSQL statements, each ending in `;` and a
/// space) run after the resets and before the tenant row is read (m0014's move lock).
pub fn enter_body_fast_with(before_lookup: &str) -> String {
    format!(
        "DECLARE s text; done text; \
         BEGIN done := pg_catalog.set_config('role', 'none', true); \
         done := pg_catalog.set_config('search_path', 'public, pg_temp', true); \
         done := pg_catalog.set_config('row_security', 'on', true); \
         {before_lookup}SELECT t.schema_name INTO s FROM tenancy.tenants t \
           WHERE t.id = tenancy.current_tenant_id() AND t.isolation = 'dedicated'; \
         IF s IS NULL THEN RETURN; END IF; \
         IF s !~ {SCHEMA_NAME_PATTERN} \
           OR pg_catalog.to_regnamespace(s) IS NULL OR pg_catalog.to_regrole(s) IS NULL THEN \
           RAISE EXCEPTION 'the schema of this tenant is unavailable' \
           USING ERRCODE = '{SCHEMA_UNAVAILABLE_SQLSTATE}'; END IF; \
         done := pg_catalog.set_config('role', s, true); \
         done := pg_catalog.set_config('search_path', \
           pg_catalog.format('%I, public, pg_temp', s), true); END"
    )
}

/// The migration: `CREATE OR REPLACE` with the new body; `down` restores m0010's (grants are
/// kept by `CREATE OR REPLACE` either way).
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.step(
        "function tenancy.enter_tenant_schema(): set_config and syscache lookups, no dynamic SQL",
        &enter_function(enter_body_fast()),
        &enter_function(enter_body()),
    );
    plan
}
