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
//! lists them; the tenant-schema migration `ts0002_policy_setting` rewrites each of those in
//! the schema's own transaction, so no transaction locks every tenant's tables at once), every
//! policy whose `USING` or `WITH CHECK` is exactly that comparison, on any column: ours
//! (`tenant_id`, and `id` on `tenancy.tenants`), adopted tables' and their partitions', and a
//! user's own of that shape. Each is rewritten in place (`ALTER POLICY`), so no table is ever
//! without it. Any other expression is left as it is. The comparison is made on
//! `pg_get_expr`'s text under `search_path = pg_catalog, pg_temp`, which this step sets for
//! itself and restores, so the text does not depend on the runner's path. A policy on a table
//! the migration login may not alter (owned by a role it does not have the privileges of: a
//! user's own table, never adopted) is left as it is, with a NOTICE naming it: it means the
//! same in either form.
//!
//! `down` rewrites the setting's form back to the function, in the same schemas. Tables made
//! by [`crate::tenant_table::TenantTable`] from this release on get the setting's form when
//! they are created ([`crate::tenant_table::PolicyForm::Setting`]); the migrations before this
//! one keep creating the function's form, so each of them stays what it was when it ran.

use crate::names::TENANT_SETTING;
use crate::plan::{MigrationPlan, SqlStep};
use crate::probes;

/// `pg_get_expr` of `(<column> = tenancy.current_tenant_id())`, the column captured, under
/// `search_path = pg_catalog, pg_temp`.
pub const FUNCTION_FORM: &str = r"^\(([a-z_][a-z0-9_]*) = tenancy\.current_tenant_id\(\)\)$";

/// `pg_get_expr` of the setting's form, the column captured, under the same path.
pub fn setting_form() -> String {
    format!(
        r"^\(([a-z_][a-z0-9_]*) = \(NULLIF\(current_setting\('{}'::text, true\), ''::text\)\)::uuid\)$",
        TENANT_SETTING.replace('.', r"\.")
    )
}

/// The `format()` template of the function's form for the column `%4$I`.
const FUNCTION_TEMPLATE: &str = "%4$I = tenancy.current_tenant_id()";

/// The `format()` template of the setting's form for the column `%4$I`.
fn setting_template() -> String {
    format!(
        "%4$I = NULLIF(pg_catalog.current_setting('{TENANT_SETTING}', true), '')::pg_catalog.uuid"
    )
}

/// A SQL string literal of `s`.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The block that rewrites, outside the dedicated tenants' schemas, every policy expression
/// matching `from` (a regular expression capturing the column) as `to` (a `format()`
/// template: `%1$I` the policy, `%2$I.%3$I` the table, `%4$I` the column).
pub fn rewrite_block(from: &str, to: &str) -> String {
    let from = literal(from);
    let using = literal(&format!("ALTER POLICY %1$I ON %2$I.%3$I USING ({to})"));
    let check = literal(&format!("ALTER POLICY %1$I ON %2$I.%3$I WITH CHECK ({to})"));
    format!(
        "DO $tenantry$ DECLARE saved pg_catalog.text := pg_catalog.current_setting('search_path'); \
         p record; \
         BEGIN PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true); \
         FOR p IN SELECT n.nspname AS s, c.relname AS r, pol.polname AS name, \
             pg_catalog.substring(pg_catalog.pg_get_expr(pol.polqual, pol.polrelid), {from}) AS q, \
             pg_catalog.substring(pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid), {from}) AS w, \
             pg_catalog.pg_has_role(c.relowner, 'USAGE') AS owned \
           FROM pg_catalog.pg_policy pol \
           JOIN pg_catalog.pg_class c ON c.oid = pol.polrelid \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
           WHERE NOT EXISTS (SELECT FROM tenancy.tenant_schema_versions v WHERE v.schema_name = n.nspname) \
           ORDER BY 1, 2, 3 LOOP \
           IF (p.q IS NOT NULL OR p.w IS NOT NULL) AND NOT p.owned THEN \
             RAISE NOTICE 'policy % on %.% left as it is: the table belongs to a role this login is not', \
               p.name, p.s, p.r; \
             CONTINUE; END IF; \
           IF p.q IS NOT NULL THEN EXECUTE pg_catalog.format({using}, p.name, p.s, p.r, p.q); END IF; \
           IF p.w IS NOT NULL THEN EXECUTE pg_catalog.format({check}, p.name, p.s, p.r, p.w); END IF; \
         END LOOP; \
         PERFORM pg_catalog.set_config('search_path', saved, true); END $tenantry$"
    )
}

/// The migration (both sets: every schema has policies of the function's form).
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.push(SqlStep {
        label: "every policy `<column> = tenancy.current_tenant_id()` outside the dedicated \
                schemas reads tenantry.tenant_id itself (ALTER POLICY, same meaning)"
            .into(),
        up: vec![probes::raw(rewrite_block(
            FUNCTION_FORM,
            &setting_template(),
        ))],
        down: vec![probes::raw(rewrite_block(
            &setting_form(),
            FUNCTION_TEMPLATE,
        ))],
        done_when: None,
        transactional: true,
    });
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_are_the_forms_the_tables_are_created_with() {
        use crate::tenant_table::PolicyForm;
        use sea_orm::sea_query::{PostgresQueryBuilder, Query};
        let render = |form: PolicyForm| {
            Query::select()
                .and_where(form.predicate("tenant_id"))
                .to_string(PostgresQueryBuilder)
                .replace("SELECT  WHERE ", "")
        };
        assert_eq!(
            render(PolicyForm::Setting),
            format!(
                "\"tenant_id\" = ({})",
                setting_template().replace("%4$I = ", "")
            )
        );
        assert_eq!(
            render(PolicyForm::Function),
            format!(
                "\"tenant_id\" = ({})",
                FUNCTION_TEMPLATE.replace("%4$I = ", "")
            )
        );
    }
}
