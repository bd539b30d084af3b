//! Dedicated tenants (one schema per tenant, seed 004) as a second isolation mode.
//!
//! * `tenancy.tenants.isolation` (`shared` | `dedicated`) and `schema_name`, pinned by a CHECK
//!   to `t_<32 hex of the id>` for a dedicated tenant (NULL for a shared one).
//! * `tenantry_dedicated`: NOLOGIN **NOINHERIT**; every tenant role is granted to it and app
//!   logins are its members, so they may `SET ROLE` to a tenant role but inherit nothing.
//! * `tenancy.tenant_schema_steps`: the tenant-schema migrations rendered for the placeholder
//!   schema (templates); `tenancy.tenant_schema_versions`: which migration each schema has,
//!   recorded centrally so `status` is one query however many schemas there are.
//! * `tenancy.provision_dedicated(uuid)` / `tenancy.drop_dedicated(uuid)`: SECURITY DEFINER,
//!   owned by the migration login (the only role here that may create roles and schemas),
//!   EXECUTE for `tenantry_superadmin` only, refused without a superadmin reason. The names
//!   come from the uuid inside the function; the statements only from the templates.
//! * `tenancy.enter_tenant_schema()`: called by every tenant-bound transaction right after its
//!   context is set (same message): for a dedicated tenant `SET LOCAL ROLE t_<hex>` and
//!   `SET LOCAL search_path = t_<hex>, public, pg_temp`; a missing schema raises `TN001`.

use sea_orm::sea_query::{Alias, ColumnDef, Expr, Query, Table};

use crate::ddl::{ConstraintAdd, ConstraintKind, ident};
use crate::dedicated::{
    DEDICATED_ROLE, PLACEHOLDER, SCHEMA_UNAVAILABLE_SQLSTATE, template, tenant_schema_migrations,
};
use crate::dsl::{
    Function, FunctionCreateStatement, FunctionLanguage, Grant, GrantObject, Privilege, Revoke,
    Role, Volatility,
};
use crate::names::{APP_ROLE, SUPERADMIN_ROLE, TENANCY_SCHEMA};
use crate::plan::MigrationPlan;
use crate::tables::t;

/// `tenancy.tenant_schema_steps`.
pub const STEPS_TABLE: (&str, &str) = (TENANCY_SCHEMA, "tenant_schema_steps");
/// `tenancy.tenant_schema_versions`.
pub const VERSIONS_TABLE: (&str, &str) = (TENANCY_SCHEMA, "tenant_schema_versions");

pub(crate) const SCHEMA_NAME_PATTERN: &str = "'^t_[0-9a-f]{32}$'";

/// The migration.
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    tenant_columns(&mut plan);
    dedicated_role(&mut plan);
    template_tables(&mut plan);
    functions(&mut plan);
    plan
}

fn tenant_columns(plan: &mut MigrationPlan) {
    let tenants = t(TENANCY_SCHEMA, Alias::new("tenants"));
    let add = Table::alter()
        .table(tenants.clone())
        .add_column(
            ColumnDef::new(Alias::new("isolation"))
                .text()
                .not_null()
                .default("shared"),
        )
        .add_column(ColumnDef::new(Alias::new("schema_name")).text().null())
        .to_owned();
    let drop = Table::alter()
        .table(tenants)
        .drop_column(Alias::new("schema_name"))
        .drop_column(Alias::new("isolation"))
        .to_owned();
    plan.step("tenancy.tenants: isolation, schema_name", &add, &drop);
    let check = ConstraintAdd::new(
        TENANCY_SCHEMA,
        "tenants",
        "tenants_isolation_check",
        ConstraintKind::Check(Expr::cust(
            "(isolation = 'shared' AND schema_name IS NULL) OR \
             (isolation = 'dedicated' AND schema_name = 't_' || replace(id::text, '-', ''))",
        )),
    );
    plan.step(
        "tenancy.tenants: isolation is shared or dedicated, schema from the id",
        &check,
        &check.reverse(),
    );
    plan.lint_ignore(
        &["constraint-missing-not-valid"],
        "the columns were added in this transaction with their defaults, so the check holds for every row: the scan of tenants (one row per tenant) is short",
    );
}

fn dedicated_role(plan: &mut MigrationPlan) {
    let role = Role::create()
        .name(Alias::new(DEDICATED_ROLE))
        .no_login()
        .no_inherit()
        .if_not_exists()
        .to_owned();
    let drop = Role::drop()
        .name(Alias::new(DEDICATED_ROLE))
        .if_unused()
        .to_owned();
    plan.step(format!("role {DEDICATED_ROLE} NOINHERIT"), &role, &drop);
}

fn template_tables(plan: &mut MigrationPlan) {
    let steps = Table::create()
        .table(t(STEPS_TABLE.0, Alias::new(STEPS_TABLE.1)))
        .col(ColumnDef::new(Alias::new("migration")).text().not_null())
        .col(ColumnDef::new(Alias::new("ordinal")).integer().not_null())
        .col(ColumnDef::new(Alias::new("statement")).text().not_null())
        .primary_key(
            sea_orm::sea_query::Index::create()
                .col(Alias::new("migration"))
                .col(Alias::new("ordinal")),
        )
        .to_owned();
    let drop = Table::drop()
        .table(t(STEPS_TABLE.0, Alias::new(STEPS_TABLE.1)))
        .to_owned();
    plan.step("table tenancy.tenant_schema_steps", &steps, &drop);
    plan.lint_ignore(
        &["prefer-bigint-over-int"],
        "ordinal numbers the statements of one tenant-schema migration: a few dozen, never near 2^31",
    );
    let versions = Table::create()
        .table(t(VERSIONS_TABLE.0, Alias::new(VERSIONS_TABLE.1)))
        .col(ColumnDef::new(Alias::new("schema_name")).text().not_null())
        .col(ColumnDef::new(Alias::new("migration")).text().not_null())
        .col(
            ColumnDef::new(Alias::new("applied_at"))
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        )
        .primary_key(
            sea_orm::sea_query::Index::create()
                .col(Alias::new("schema_name"))
                .col(Alias::new("migration")),
        )
        .to_owned();
    let drop = Table::drop()
        .table(t(VERSIONS_TABLE.0, Alias::new(VERSIONS_TABLE.1)))
        .to_owned();
    plan.step("table tenancy.tenant_schema_versions", &versions, &drop);
    // The superadmin may read which schema is at which version (verify, status); nothing else.
    let read = Grant::privileges([Privilege::Select])
        .on(GrantObject::table(t(
            VERSIONS_TABLE.0,
            Alias::new(VERSIONS_TABLE.1),
        )))
        .to(Alias::new(SUPERADMIN_ROLE))
        .to_owned();
    plan.step(
        "superadmin reads tenant_schema_versions",
        &read,
        &read.reverse(),
    );

    for migration in tenant_schema_migrations() {
        // A plan that cannot be a template is a programming error caught by the unit test.
        for (ordinal, insert) in template_rows(&migration)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            plan.forward_only(format!("template {} #{ordinal}", migration.name), insert);
        }
    }
}

/// The `tenancy.tenant_schema_steps` rows of `migration`: its template, one row per statement.
pub fn template_rows(
    migration: &crate::dedicated::TenantSchemaMigration,
) -> Result<Vec<sea_orm::sea_query::InsertStatement>, crate::dedicated::schema_plan::TemplateError>
{
    Ok(template(migration)?
        .iter()
        .enumerate()
        .map(|(ordinal, sql)| {
            Query::insert()
                .into_table(t(STEPS_TABLE.0, Alias::new(STEPS_TABLE.1)))
                .columns([
                    Alias::new("migration"),
                    Alias::new("ordinal"),
                    Alias::new("statement"),
                ])
                .values_panic([
                    Expr::val(migration.name),
                    Expr::val(ordinal as i32),
                    Expr::val(sql.as_str()),
                ])
                .to_owned()
        })
        .collect())
}

/// Raises 42501 unless the transaction is a superadmin one with a reason.
const REQUIRE_REASON: &str = "IF tenancy.current_superadmin_reason() IS NULL THEN \
     RAISE EXCEPTION 'tenant schemas are managed in a superadmin transaction with a reason' \
     USING ERRCODE = '42501'; END IF;";

pub(crate) fn provision_body() -> String {
    format!(
        "DECLARE s text; st record; tbl record; \
         BEGIN {REQUIRE_REASON} \
         SELECT t.schema_name INTO s FROM tenancy.tenants t \
           WHERE t.id = p_tenant AND t.isolation = 'dedicated'; \
         IF s IS NULL THEN RAISE EXCEPTION 'tenant % is not a dedicated tenant', p_tenant \
           USING ERRCODE = '22023'; END IF; \
         IF s !~ {SCHEMA_NAME_PATTERN} OR s <> 't_' || replace(p_tenant::text, '-', '') THEN \
           RAISE EXCEPTION 'invalid tenant schema name' USING ERRCODE = '22023'; END IF; \
         IF EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = s) THEN \
           RAISE EXCEPTION 'schema % already exists', s USING ERRCODE = '42P06'; END IF; \
         IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = s) THEN \
           RAISE EXCEPTION 'role % already exists', s USING ERRCODE = '42710'; END IF; \
         EXECUTE format('CREATE ROLE %I NOLOGIN INHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB \
           NOCREATEROLE NOREPLICATION', s); \
         EXECUTE format('GRANT {app} TO %I', s); \
         EXECUTE format('GRANT %I TO {dedicated}', s); \
         EXECUTE format('CREATE SCHEMA %I', s); \
         EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I, {superadmin}', s, s); \
         PERFORM pg_catalog.set_config('tenantry.tenant_id', p_tenant::text, true); \
         FOR st IN SELECT x.statement FROM tenancy.tenant_schema_steps x \
           ORDER BY x.migration, x.ordinal LOOP \
           EXECUTE replace(st.statement, '{PLACEHOLDER}', s); \
         END LOOP; \
         INSERT INTO tenancy.tenant_schema_versions (schema_name, migration) \
           SELECT DISTINCT s, x.migration FROM tenancy.tenant_schema_steps x; \
         PERFORM tenancy.pin_dedicated_tables(p_tenant); \
         PERFORM pg_catalog.set_config('tenantry.tenant_id', '', true); \
         RETURN s; END",
        app = ident(APP_ROLE),
        dedicated = ident(DEDICATED_ROLE),
        superadmin = ident(SUPERADMIN_ROLE),
    )
}

/// Adds `CHECK (tenant_id = '<the tenant>')` to every table of the tenant's schema that lacks
/// it: a row of another tenant cannot even be stored there.
const PIN_BODY: &str = "DECLARE s text := 't_' || replace(p_tenant::text, '-', ''); tbl record; \
     BEGIN FOR tbl IN SELECT c.relname FROM pg_catalog.pg_class c \
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
         AND NOT a.attisdropped \
       WHERE n.nspname = s AND c.relkind IN ('r', 'p') \
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid \
           AND k.conname = c.relname || '_tenant_pinned') LOOP \
       EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I CHECK (tenant_id = %L::uuid)', \
         s, tbl.relname, tbl.relname || '_tenant_pinned', p_tenant); \
     END LOOP; END";

fn drop_body() -> String {
    format!(
        "DECLARE s text; \
         BEGIN {REQUIRE_REASON} \
         SELECT t.schema_name INTO s FROM tenancy.tenants t \
           WHERE t.id = p_tenant AND t.isolation = 'dedicated'; \
         IF s IS NULL OR s !~ {SCHEMA_NAME_PATTERN} THEN \
           RAISE EXCEPTION 'tenant % is not a dedicated tenant', p_tenant \
           USING ERRCODE = '22023'; END IF; \
         EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', s); \
         IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = s) THEN \
           EXECUTE format('GRANT %I TO %I', s, current_user); \
           EXECUTE format('DROP OWNED BY %I', s); \
           BEGIN EXECUTE format('DROP ROLE %I', s); \
           EXCEPTION WHEN dependent_objects_still_exist THEN \
             EXECUTE format('REVOKE %I FROM {dedicated}, %I', s, current_user); \
             EXECUTE format('REVOKE {app} FROM %I', s); \
           END; END IF; \
         DELETE FROM tenancy.tenant_schema_versions v WHERE v.schema_name = s; \
         RETURN s; END",
        app = ident(APP_ROLE),
        dedicated = ident(DEDICATED_ROLE),
    )
}

/// The body of `tenancy.enter_tenant_schema()` as m0010 made it (m0013 replaces it and
/// restores this one on `down`).
///
/// Its variable is typed `pg_catalog.text`, not `text`: PL/pgSQL resolves DECLARE types when
/// it compiles the function, under the caller's `search_path`, where an unlisted `pg_temp` comes
/// first, so a temporary domain `pg_temp.text` would run its CHECK inside the next tenant's
/// entry (m0015). Fixed in place, not in a new migration: every database past m0010 runs
/// m0013's body (then m0015's), and this one comes back only through m0013's `down`, which
/// should restore the safe body.
pub(crate) fn enter_body() -> String {
    format!(
        "DECLARE s pg_catalog.text; \
         BEGIN SET LOCAL ROLE NONE; \
         SET LOCAL search_path = public, pg_temp; SET LOCAL row_security = on; \
         SELECT t.schema_name INTO s FROM tenancy.tenants t \
           WHERE t.id = tenancy.current_tenant_id() AND t.isolation = 'dedicated'; \
         IF s IS NULL THEN RETURN; END IF; \
         IF s !~ {SCHEMA_NAME_PATTERN} \
           OR NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = s) \
           OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = s) THEN \
           RAISE EXCEPTION 'the schema of this tenant is unavailable' \
           USING ERRCODE = '{SCHEMA_UNAVAILABLE_SQLSTATE}'; END IF; \
         EXECUTE format('SET LOCAL ROLE %I', s); \
         EXECUTE format('SET LOCAL search_path = %I, public, pg_temp', s); END"
    )
}

/// `tenancy.enter_tenant_schema()` with `body`: PL/pgSQL, SECURITY INVOKER, volatile. No SET
/// clause: a function with one would undo the SET LOCALs it makes on return.
pub(crate) fn enter_function(body: String) -> FunctionCreateStatement {
    Function::create()
        .name((TENANCY_SCHEMA, "enter_tenant_schema"))
        .or_replace()
        .returns("void")
        .language(FunctionLanguage::PlPgSql)
        .volatility(Volatility::Volatile)
        .security_invoker()
        .body(body)
        .to_owned()
}

/// A superadmin's SECURITY DEFINER function of one tenant id, its `search_path` pinned.
pub(crate) fn definer(
    name: &'static str,
    returns: &'static str,
    body: String,
) -> FunctionCreateStatement {
    Function::create()
        .name((TENANCY_SCHEMA, name))
        .or_replace()
        .arg("p_tenant", "uuid")
        .returns(returns)
        .language(FunctionLanguage::PlPgSql)
        .security_definer()
        .set_search_path(["pg_catalog", "pg_temp"])
        .body(body)
        .to_owned()
}

fn functions(plan: &mut MigrationPlan) {
    let pin = definer("pin_dedicated_tables", "void", PIN_BODY.to_owned());
    let provision = definer("provision_dedicated", "text", provision_body());
    let drop = definer("drop_dedicated", "text", drop_body());
    let enter = enter_function(enter_body());
    for (fname, f, arg, to) in [
        ("pin_dedicated_tables", &pin, Some("uuid"), None),
        (
            "provision_dedicated",
            &provision,
            Some("uuid"),
            Some(SUPERADMIN_ROLE),
        ),
        ("drop_dedicated", &drop, Some("uuid"), Some(SUPERADMIN_ROLE)),
        ("enter_tenant_schema", &enter, None, Some(APP_ROLE)),
    ] {
        let label = format!("{fname}({})", arg.unwrap_or(""));
        plan.step(format!("function tenancy.{label}"), f, &f.reverse());
        let name = (TENANCY_SCHEMA, fname);
        let args: Vec<&str> = arg.into_iter().collect();
        let revoke = Revoke::privileges([Privilege::Execute])
            .on(GrantObject::function(name, args.clone()))
            .from_public()
            .to_owned();
        plan.step(
            format!("revoke EXECUTE on tenancy.{label} from PUBLIC"),
            &revoke,
            &revoke.reverse(),
        );
        if let Some(role) = to {
            let grant = Grant::privileges([Privilege::Execute])
                .on(GrantObject::function(name, args))
                .to(Alias::new(role))
                .to_owned();
            plan.step(
                format!("grant EXECUTE on tenancy.{label} to {role}"),
                &grant,
                &grant.reverse(),
            );
        }
    }
}
