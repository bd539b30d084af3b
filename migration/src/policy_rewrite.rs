//! Rewriting the app policies' form in place: from `<column> = tenancy.current_tenant_id()` to
//! the setting read in the policy itself, and back (`m0017_policy_setting` in the shared
//! schemas, `ts0002_policy_setting` in each dedicated schema).
//!
//! One DO block finds the policies by their text, not by name, so ours, an adopted table's, its
//! partitions' and a user's own of exactly that shape are all found: `pg_get_expr` of `USING`
//! and of `WITH CHECK`, under `search_path = pg_catalog, pg_temp` and `quote_all_identifiers =
//! off`, which the block sets for itself and restores (so the text depends on neither the
//! runner's path nor its quoting). A match is rewritten with `ALTER POLICY` (the table is never
//! without it), the column re-quoted with `%I`. Any other expression is left as it is.
//!
//! Left as they are, each with a WARNING naming it (either form means the same there, and the
//! migration goes on; the CLI and the service log it):
//! * a policy on a table the login may not alter: owned by a role whose privileges it lacks,
//!   or in a schema it may not use (a user's own table, never adopted);
//! * going to the setting's form, a policy applying to a role that may not execute
//!   `tenancy.current_tenant_id()`: the function's form refuses that role (permission denied),
//!   the setting's would let it read whichever tenant it names.
//!
//! Temporary tables are skipped: any session may make one with a policy of either form (the
//! app login too), in a schema this login may not use.

use crate::names::TENANT_SETTING;

/// `pg_get_expr` of `(<column> = tenancy.current_tenant_id())`, the column captured, under the
/// block's path and quoting. Brackets, not backslashes, escape the pattern's parentheses and
/// dots: a backslash in a string literal would mean another thing under
/// `standard_conforming_strings = off`, and the pattern would silently match nothing.
pub const FUNCTION_FORM: &str = "^[(]([a-z_][a-z0-9_]*) = tenancy[.]current_tenant_id[(][)][)]$";

/// `pg_get_expr` of the setting's form, the column captured, under the block's path and
/// quoting (escaped like [`FUNCTION_FORM`]).
pub fn setting_form() -> String {
    format!(
        "^[(]([a-z_][a-z0-9_]*) = [(]NULLIF[(]current_setting[(]'{}'::text, true[)], ''::text[)][)]::uuid[)]$",
        TENANT_SETTING.replace('.', "[.]")
    )
}

/// The `format()` template of the function's form for the column `%4$I`.
pub const FUNCTION_TEMPLATE: &str = "%4$I = tenancy.current_tenant_id()";

/// The `format()` template of the setting's form for the column `%4$I`.
pub fn setting_template() -> String {
    format!(
        "%4$I = NULLIF(pg_catalog.current_setting('{TENANT_SETTING}', true), '')::pg_catalog.uuid"
    )
}

/// Which policies a rewrite looks at.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every schema but the dedicated tenants' (those `tenancy.tenant_schema_versions` lists).
    Shared,
    /// One schema (a dedicated tenant's, or the template placeholder).
    Schema(&'a str),
}

/// Which way a rewrite goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The function's form to the setting's.
    ToSetting,
    /// The setting's form back to the function's.
    ToFunction,
}

/// A SQL string literal of `s`.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Whether every role policy `pol` applies to (`0`: PUBLIC) may execute
/// `tenancy.current_tenant_id()`.
const ROLES_MAY_EXECUTE: &str = "NOT EXISTS (SELECT FROM pg_catalog.unnest(pol.polroles) r(oid) \
     WHERE NOT CASE WHEN r.oid = 0 THEN EXISTS (SELECT FROM pg_catalog.pg_proc f, \
       pg_catalog.aclexplode(COALESCE(f.proacl, pg_catalog.acldefault('f', f.proowner))) a \
       WHERE f.oid = 'tenancy.current_tenant_id()'::pg_catalog.regprocedure \
         AND a.grantee = 0 AND a.privilege_type = 'EXECUTE') \
     ELSE pg_catalog.has_function_privilege(r.oid, \
       'tenancy.current_tenant_id()'::pg_catalog.regprocedure, 'EXECUTE') END)";

/// The DO block rewriting, in `scope`, every policy expression of one form as the other.
pub fn rewrite_block(direction: Direction, scope: Scope<'_>) -> String {
    let (from, to, allowed) = match direction {
        Direction::ToSetting => (
            FUNCTION_FORM.to_owned(),
            setting_template(),
            ROLES_MAY_EXECUTE,
        ),
        Direction::ToFunction => (setting_form(), FUNCTION_TEMPLATE.to_owned(), "true"),
    };
    let scope = match scope {
        Scope::Shared => "NOT EXISTS (SELECT FROM tenancy.tenant_schema_versions v \
                          WHERE v.schema_name = n.nspname)"
            .to_owned(),
        Scope::Schema(schema) => format!(
            "c.relnamespace = pg_catalog.to_regnamespace({})",
            literal(schema)
        ),
    };
    let from = literal(&from);
    let using = literal(&format!("ALTER POLICY %1$I ON %2$I.%3$I USING ({to})"));
    let check = literal(&format!("ALTER POLICY %1$I ON %2$I.%3$I WITH CHECK ({to})"));
    format!(
        "DO $tenantry$ DECLARE \
           saved_path pg_catalog.text := pg_catalog.current_setting('search_path'); \
           saved_quote pg_catalog.text := pg_catalog.current_setting('quote_all_identifiers'); \
           p record; \
         BEGIN \
         PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true); \
         PERFORM pg_catalog.set_config('quote_all_identifiers', 'off', true); \
         FOR p IN SELECT n.nspname AS s, c.relname AS r, pol.polname AS name, \
             pg_catalog.substring(pg_catalog.pg_get_expr(pol.polqual, pol.polrelid), {from}) AS q, \
             pg_catalog.substring(pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid), {from}) AS w, \
             pg_catalog.pg_has_role(c.relowner, 'USAGE') \
               AND pg_catalog.has_schema_privilege(n.oid, 'USAGE') AS owned, \
             {allowed} AS allowed \
           FROM pg_catalog.pg_namespace n \
           JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid \
           JOIN pg_catalog.pg_policy pol ON pol.polrelid = c.oid \
           WHERE c.relpersistence <> 't' AND {scope} \
           ORDER BY 1, 2, 3 LOOP \
           CONTINUE WHEN p.q IS NULL AND p.w IS NULL; \
           IF NOT p.owned THEN \
             RAISE WARNING 'policy % on %.% left as it is: its table belongs to a role, or is in a schema, this login may not alter', \
               p.name, p.s, p.r; \
             CONTINUE; END IF; \
           IF NOT p.allowed THEN \
             RAISE WARNING 'policy % on %.% left as it is: a role it applies to may not execute tenancy.current_tenant_id(), which its form refuses', \
               p.name, p.s, p.r; \
             CONTINUE; END IF; \
           IF p.q IS NOT NULL THEN EXECUTE pg_catalog.format({using}, p.name, p.s, p.r, p.q); END IF; \
           IF p.w IS NOT NULL THEN EXECUTE pg_catalog.format({check}, p.name, p.s, p.r, p.w); END IF; \
         END LOOP; \
         PERFORM pg_catalog.set_config('quote_all_identifiers', saved_quote, true); \
         PERFORM pg_catalog.set_config('search_path', saved_path, true); END $tenantry$"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant_table::PolicyForm;
    use sea_orm::sea_query::{PostgresQueryBuilder, Query};

    #[test]
    fn the_templates_are_the_forms_the_tables_are_created_with() {
        let render = |form: PolicyForm| {
            Query::select()
                .and_where(form.predicate("tenant_id"))
                .to_string(PostgresQueryBuilder)
                .replace("SELECT  WHERE ", "")
        };
        let expected =
            |template: &str| format!("\"tenant_id\" = ({})", template.replace("%4$I = ", ""));
        assert_eq!(render(PolicyForm::Setting), expected(&setting_template()));
        assert_eq!(render(PolicyForm::Function), expected(FUNCTION_TEMPLATE));
    }

    #[test]
    fn a_schema_scope_names_only_that_schema_quoted() {
        let block = rewrite_block(Direction::ToSetting, Scope::Schema("t_0'x"));
        assert!(
            block.contains("c.relnamespace = pg_catalog.to_regnamespace('t_0''x')"),
            "{block}"
        );
        assert!(!block.contains("tenant_schema_versions"), "{block}");
        assert!(block.contains("has_function_privilege"), "{block}");
        let back = rewrite_block(Direction::ToFunction, Scope::Shared);
        assert!(back.contains("tenant_schema_versions"), "{back}");
        assert!(!back.contains("has_function_privilege"), "{back}");
    }

    #[test]
    fn no_block_holds_a_backslash() {
        for direction in [Direction::ToSetting, Direction::ToFunction] {
            for scope in [Scope::Shared, Scope::Schema("t_00")] {
                let block = rewrite_block(direction, scope);
                assert!(!block.contains('\\'), "{block}");
            }
        }
    }
}
