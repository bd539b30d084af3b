//! The catalog audit of every dedicated tenant's schema, beside [`crate::audit`]: each check
//! is ONE catalog query over all tenant schemas (thousands of schemas must not mean thousands
//! of queries). `verify` and `cargo xtask test-isolation` print these findings with the rest.
//!
//! What must hold: each schema recorded in `tenancy.tenant_schema_versions` exists with its
//! role (a schema dropped by hand is reported); schemas and their objects are owned by
//! neither the app nor a tenant role; no PUBLIC grant; the tenant role has USAGE on its own
//! schema and DML on its own tables, nothing more, and the app role nothing at all; tenant
//! roles are NOLOGIN, powerless, in `tenantry_app`, granted to the NOINHERIT
//! `tenantry_dedicated`; functions pin `search_path`; no object of one tenant's schema refers
//! to another tenant's schema.

use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};

use crate::audit::Report;

/// The tenant schemas, as a CTE (`ns`: oid, nspname, nspowner, nspacl).
const TENANT_SCHEMAS: &str = "SELECT oid, nspname, nspowner, nspacl FROM pg_namespace \
     WHERE nspname ~ '^t_[0-9a-f]{32}$'";

/// `(check, query)`: each query returns `(subject, ok, detail)`; `$1` is the app role.
const CHECKS: &[(&str, &str)] = &[
    (
        "tenant_schema_present",
        "SELECT v.schema_name, n.oid IS NOT NULL AND r.oid IS NOT NULL, \
           CASE WHEN n.oid IS NULL THEN 'schema missing (recorded at ' || max(v.migration) || ')' \
                WHEN r.oid IS NULL THEN 'role missing' ELSE 'present' END \
         FROM tenancy.tenant_schema_versions v \
         LEFT JOIN ns n ON n.nspname = v.schema_name \
         LEFT JOIN pg_roles r ON r.rolname = v.schema_name \
         GROUP BY v.schema_name, n.oid, r.oid",
    ),
    (
        "tenant_schema_recorded",
        "SELECT n.nspname, EXISTS (SELECT FROM tenancy.tenant_schema_versions v \
           WHERE v.schema_name = n.nspname), 'a tenant schema with no recorded version' \
         FROM ns n",
    ),
    (
        "tenant_schema_owner",
        "SELECT n.nspname || COALESCE('.' || c.relname, ''), \
           NOT pg_has_role($1, COALESCE(c.relowner, n.nspowner), 'MEMBER') \
           AND pg_get_userbyid(COALESCE(c.relowner, n.nspowner)) !~ '^t_[0-9a-f]{32}$', \
           'owner ' || pg_get_userbyid(COALESCE(c.relowner, n.nspowner)) \
         FROM ns n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r','p','v','m','S','f')",
    ),
    (
        "tenant_schema_grants",
        "SELECT n.nspname, bool_and(ok), string_agg(detail, ', ') FILTER (WHERE NOT ok) \
         FROM ns n CROSS JOIN LATERAL ( \
           SELECT (a.grantee = n.nspowner) \
               OR (a.grantee <> 0 AND pg_get_userbyid(a.grantee) IN (n.nspname, 'tenantry_superadmin') \
                   AND a.privilege_type = 'USAGE') AS ok, \
             CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END \
               || ' ' || a.privilege_type AS detail \
           FROM aclexplode(COALESCE(n.nspacl, acldefault('n', n.nspowner))) a) g \
         GROUP BY n.nspname",
    ),
    (
        "tenant_table_grants",
        "SELECT n.nspname || '.' || c.relname, bool_and(ok), \
           COALESCE(string_agg(detail, ', ') FILTER (WHERE NOT ok), 'owner, tenant role DML, superadmin DML') \
         FROM ns n JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r','p','v','m','S','f') \
         CROSS JOIN LATERAL ( \
           SELECT (a.grantee = c.relowner) \
               OR (a.grantee <> 0 AND pg_get_userbyid(a.grantee) IN (n.nspname, 'tenantry_superadmin') \
                   AND a.privilege_type IN ('SELECT','INSERT','UPDATE','DELETE')) AS ok, \
             CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END \
               || ' ' || a.privilege_type AS detail \
           FROM aclexplode(COALESCE(c.relacl, acldefault('r', c.relowner))) a) g \
         GROUP BY n.nspname, c.relname",
    ),
    (
        "tenant_role",
        "SELECT n.nspname, r.oid IS NOT NULL AND NOT r.rolcanlogin AND NOT r.rolsuper \
           AND NOT r.rolbypassrls AND NOT r.rolcreaterole AND NOT r.rolcreatedb \
           AND pg_has_role(r.oid, $1, 'USAGE') \
           AND EXISTS (SELECT FROM pg_auth_members m JOIN pg_roles d ON d.oid = m.member \
             WHERE m.roleid = r.oid AND d.rolname = 'tenantry_dedicated' AND NOT d.rolinherit), \
           CASE WHEN r.oid IS NULL THEN 'role missing' \
             ELSE 'NOLOGIN, powerless, in the app role, granted to NOINHERIT tenantry_dedicated' END \
         FROM ns n LEFT JOIN pg_roles r ON r.rolname = n.nspname",
    ),
    (
        "tenant_function_search_path",
        "SELECT n.nspname || '.' || p.proname, \
           EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%'), \
           'a function in a tenant schema must pin search_path' \
         FROM ns n JOIN pg_proc p ON p.pronamespace = n.oid",
    ),
    (
        "tenant_cross_schema",
        "WITH dep AS ( \
           SELECT COALESCE(vc.relnamespace, kc.connamespace, pc.pronamespace, tc.relnamespace) AS from_ns, \
                  COALESCE(r2.relnamespace, p2.pronamespace) AS to_ns \
           FROM pg_depend d \
           LEFT JOIN pg_rewrite rw ON d.classid = 'pg_rewrite'::regclass AND rw.oid = d.objid \
           LEFT JOIN pg_class vc ON vc.oid = rw.ev_class \
           LEFT JOIN pg_constraint kc ON d.classid = 'pg_constraint'::regclass AND kc.oid = d.objid \
           LEFT JOIN pg_proc pc ON d.classid = 'pg_proc'::regclass AND pc.oid = d.objid \
           LEFT JOIN pg_class tc ON d.classid = 'pg_class'::regclass AND tc.oid = d.objid \
           LEFT JOIN pg_class r2 ON d.refclassid = 'pg_class'::regclass AND r2.oid = d.refobjid \
           LEFT JOIN pg_proc p2 ON d.refclassid = 'pg_proc'::regclass AND p2.oid = d.refobjid \
         ), bad AS ( \
           SELECT f.nspname || ' -> ' || t.nspname AS what FROM dep \
             JOIN ns f ON f.oid = dep.from_ns JOIN ns t ON t.oid = dep.to_ns WHERE f.oid <> t.oid \
           UNION \
           SELECT n.nspname || '.' || p.proname || ' -> ' || m[1] FROM ns n \
             JOIN pg_proc p ON p.pronamespace = n.oid \
             CROSS JOIN LATERAL regexp_matches(p.prosrc, '(t_[0-9a-f]{32})', 'g') m \
             WHERE m[1] <> n.nspname \
         ) SELECT 'tenant schemas', count(*) = 0, \
             COALESCE(string_agg(what, ', '), 'no object refers to another tenant''s schema') FROM bad",
    ),
];

/// Runs every tenant-schema check (each one query over all schemas), and the check of
/// `tenancy.enter_tenant_schema()` itself ([`super::entry_audit`]) against `applied`, the
/// migrations `seaql_migrations` records ([`super::entry_audit::applied`]).
pub async fn audit<C: ConnectionTrait>(
    db: &C,
    app_role: &str,
    applied: &[String],
) -> Result<Report, DbErr> {
    let mut report = Report::default();
    // Before m0010 there are no tenant schemas to audit, and no schema entry.
    let migrated = super::migrate::migrated(db).await?;
    if !migrated {
        return Ok(report);
    }
    for (check, sql) in CHECKS {
        let query = match sql.strip_prefix("WITH ") {
            Some(more) => format!("WITH ns AS ({TENANT_SCHEMAS}), {more}"),
            None => format!("WITH ns AS ({TENANT_SCHEMAS}) {sql}"),
        };
        report
            .findings
            .extend(crate::audit::findings(db, check, query, app_role).await?);
    }
    report
        .findings
        .extend(super::entry_audit::audit(db, app_role, applied).await?);
    Ok(report)
}

/// [`crate::audit::audit`] and then [`audit`]: the whole catalog audit of a Tenantry database,
/// in one transaction with the rendering pinned ([`crate::audit::pinned`]). Which migrations
/// are applied is read first, through the session's own `search_path`.
pub async fn audit_all<C>(db: &C, app_role: &str) -> Result<Report, DbErr>
where
    C: TransactionTrait + ConnectionTrait,
{
    let applied = super::entry_audit::applied(db).await?;
    crate::audit::pinned(db, async |txn| {
        let mut report = crate::audit::audit_in(txn, app_role).await?;
        report
            .findings
            .extend(audit(txn, app_role, &applied).await?.findings);
        Ok(report)
    })
    .await
}
