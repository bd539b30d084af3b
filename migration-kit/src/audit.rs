//! The catalog audit: reads the live catalog and checks the isolation invariants of
//! `shared/reference/isolation-checklist.md` that the catalog alone can prove. It only reads,
//! so it can run against staging or production (`cargo run -p migration -- verify`), and
//! `cargo xtask test-isolation` prints the same findings beside its attack matrix.
//!
//! Tenant tables are discovered, not listed: every table outside PostgreSQL's own schemas with
//! a `tenant_id` column.

use std::fmt;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, TransactionSession, TransactionTrait};

use crate::names::{APP_ROLE, DEFAULT_TENANT_ID, LEGACY_ROLE, TENANT_COLUMN, TENANT_SETTING};

/// One check's verdict on one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check, e.g. `force_rls`.
    pub check: String,
    /// What was checked, e.g. `public.projects`.
    pub subject: String,
    /// Whether the invariant holds.
    pub ok: bool,
    /// What is wrong (or what was seen), for a person to act on.
    pub detail: String,
}

/// All findings of one audit.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every finding, passing ones included.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The failing findings.
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.ok)
    }

    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(
                f,
                "{:4}  {:28} {:40} {}",
                if finding.ok { "ok" } else { "FAIL" },
                finding.check,
                finding.subject,
                finding.detail
            )?;
        }
        let failed = self.failures().count();
        write!(f, "{} checks, {} failed", self.findings.len(), failed)
    }
}

/// `schema.table` of every tenant table (has a `tenant_id` column), in name order.
pub const TENANT_TABLES_SQL: &str = "\
SELECT n.nspname AS schema, c.relname AS table, c.oid::bigint AS oid \
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
  AND pg_catalog.left(n.nspname, 3) <> 'pg_' ORDER BY 1, 2";

/// The role `$1` and its members: no SUPERUSER, BYPASSRLS, CREATEROLE or CREATEDB.
const ROLE_NOT_PRIVILEGED_SQL: &str = "SELECT r.rolname::text, NOT (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolcreatedb), \
         CASE WHEN r.rolsuper THEN 'is SUPERUSER' WHEN r.rolbypassrls THEN 'has BYPASSRLS' \
              WHEN r.rolcreaterole THEN 'has CREATEROLE' WHEN r.rolcreatedb THEN 'has CREATEDB' ELSE 'plain role' END \
         FROM pg_roles r WHERE (r.rolname = $1 OR r.oid IN (SELECT m.member FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = $1))";

/// The role `$1` and its members own no table, schema or function.
const ROLE_OWNS_NOTHING_SQL: &str = "SELECT r.rolname::text, NOT EXISTS ( \
           SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE n.nspname NOT IN ('pg_catalog','information_schema') AND pg_catalog.left(n.nspname, 3) <> 'pg_' \
             AND pg_has_role(r.oid, c.relowner, 'MEMBER')) \
           AND NOT EXISTS (SELECT FROM pg_namespace n WHERE pg_catalog.left(n.nspname, 3) <> 'pg_' \
             AND n.nspname <> 'information_schema' AND pg_has_role(r.oid, n.nspowner, 'MEMBER') AND n.nspname <> 'public') \
           AND NOT EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname NOT IN ('pg_catalog','information_schema') AND pg_has_role(r.oid, p.proowner, 'MEMBER')), \
         'owns no table, schema or function' \
         FROM pg_roles r WHERE (r.rolname = $1 OR r.oid IN (SELECT m.member FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = $1))";

/// The role `$1` has no TRUNCATE, REFERENCES or TRIGGER on any table.
const ROLE_NO_DANGEROUS_GRANTS_SQL: &str = "SELECT c.oid::regclass::text || ' ' || priv.p, NOT has_table_privilege($1, c.oid, priv.p), \
         CASE WHEN has_table_privilege($1, c.oid, priv.p) THEN $1 || ' has ' || priv.p || \
           CASE WHEN priv.p = 'TRUNCATE' THEN ' (TRUNCATE ignores row level security)' ELSE '' END ELSE 'not granted' END \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN (VALUES ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) AS priv(p) \
         WHERE c.relkind IN ('r','p','v','m') AND n.nspname NOT IN ('pg_catalog','information_schema') \
           AND pg_catalog.left(n.nspname, 3) <> 'pg_' AND has_table_privilege($1, c.oid, priv.p)";

/// The role `$1` may CREATE in no schema.
const ROLE_NO_CREATE_SQL: &str = "SELECT n.nspname::text, NOT has_schema_privilege($1, n.oid, 'CREATE'), \
         CASE WHEN has_schema_privilege($1, n.oid, 'CREATE') THEN $1 || ' may CREATE in this schema' ELSE 'no CREATE' END \
         FROM pg_namespace n WHERE n.nspname NOT IN ('pg_catalog','information_schema') AND pg_catalog.left(n.nspname, 3) <> 'pg_'";

/// Each check: a name and a query returning `(subject text, ok bool, detail text)` rows.
/// `$1` is the app group role's name.
const CHECKS: &[(&str, &str)] = &[
    (
        "server_version",
        "SELECT 'server' , current_setting('server_version_num')::int >= 150014, \
         'PostgreSQL ' || current_setting('server_version') || ' (15.14 or newer fixes CVE-2025-8713 in RLS statistics)'",
    ),
    (
        "app_role_exists",
        "SELECT $1, EXISTS (SELECT FROM pg_roles WHERE rolname = $1), 'the application group role'",
    ),
    ("app_not_privileged", ROLE_NOT_PRIVILEGED_SQL),
    ("app_owns_nothing", ROLE_OWNS_NOTHING_SQL),
    (
        "force_rls",
        "SELECT t.schema || '.' || t.table, c.relrowsecurity AND c.relforcerowsecurity, \
         CASE WHEN NOT c.relrowsecurity THEN 'row level security is not enabled' \
              WHEN NOT c.relforcerowsecurity THEN 'row level security is not FORCED (the owner bypasses it)' \
              ELSE 'enabled and forced' END \
         FROM tenant_tables t JOIN pg_class c ON c.oid = t.oid",
    ),
    (
        "tenant_id_not_null",
        "SELECT t.schema || '.' || t.table, a.attnotnull, \
         CASE WHEN a.attnotnull THEN 'NOT NULL' ELSE 'tenant_id is nullable: rows may belong to no tenant' END \
         FROM tenant_tables t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attname = 'tenant_id'",
    ),
    (
        "policies_per_command",
        "SELECT t.schema || '.' || t.table || ' ' || cmd.c, \
         EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = t.oid AND p.polcmd IN (cmd.k, '*') \
                 AND (p.polroles = '{0}' OR (SELECT oid FROM pg_roles WHERE rolname = $1) = ANY (p.polroles))), \
         'a policy for the app role covering ' || cmd.c \
         FROM tenant_tables t CROSS JOIN (VALUES ('SELECT','r'), ('INSERT','a'), ('UPDATE','w'), ('DELETE','d')) AS cmd(c, k) \
         WHERE has_table_privilege($1, t.oid, cmd.c)",
    ),
    (
        "write_policies_with_check",
        "SELECT t.schema || '.' || t.table || ' ' || p.polname, p.polwithcheck IS NOT NULL, \
         CASE WHEN p.polwithcheck IS NULL THEN 'INSERT/UPDATE policy without WITH CHECK' ELSE 'WITH CHECK present' END \
         FROM tenant_tables t JOIN pg_policy p ON p.polrelid = t.oid WHERE p.polcmd IN ('a', 'w', '*')",
    ),
    (
        "policy_no_subselect",
        "SELECT t.schema || '.' || t.table || ' ' || p.polname, \
         coalesce(pg_get_expr(p.polqual, p.polrelid), '') !~* '[[:<:]]select[[:>:]]' \
           AND coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') !~* '[[:<:]]select[[:>:]]', \
         coalesce(pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid), '') \
         FROM tenant_tables t JOIN pg_policy p ON p.polrelid = t.oid",
    ),
    (
        "policy_helpers_inlinable",
        "SELECT n.nspname || '.' || f.proname || '()', \
         f.provolatile IN ('s', 'i') AND l.lanname = 'sql' AND NOT f.prosecdef AND f.proconfig IS NULL AND NOT f.proisstrict, \
         CASE WHEN f.provolatile = 'v' THEN 'VOLATILE: evaluated per row, no index condition' \
              WHEN l.lanname <> 'sql' THEN 'not LANGUAGE sql: cannot be inlined' \
              WHEN f.prosecdef THEN 'SECURITY DEFINER: cannot be inlined' \
              WHEN f.proconfig IS NOT NULL THEN 'has SET options: cannot be inlined' \
              WHEN f.proisstrict THEN 'STRICT: may not be inlined' ELSE 'STABLE, inlinable SQL' END \
         FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace JOIN pg_language l ON l.oid = f.prolang \
         WHERE f.pronargs = 0 AND EXISTS (SELECT FROM pg_policy p JOIN tenant_tables t ON t.oid = p.polrelid \
           WHERE coalesce(pg_get_expr(p.polqual, p.polrelid), '') || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') \
                 LIKE '%' || f.proname || '()%')",
    ),
    ("app_no_dangerous_grants", ROLE_NO_DANGEROUS_GRANTS_SQL),
    ("app_no_create", ROLE_NO_CREATE_SQL),
    (
        "definer_search_path",
        "SELECT n.nspname || '.' || f.proname || '(' || pg_get_function_identity_arguments(f.oid) || ')', \
         coalesce(sp.path[array_length(sp.path, 1)] = 'pg_temp' \
           AND NOT EXISTS (SELECT FROM unnest(sp.path) s(name) JOIN pg_namespace ns ON ns.nspname = s.name \
                           WHERE s.name NOT IN ('pg_catalog', 'pg_temp') \
                             AND (has_schema_privilege($1, ns.oid, 'CREATE') \
                                  OR EXISTS (SELECT FROM aclexplode(coalesce(ns.nspacl, acldefault('n', ns.nspowner))) a \
                                             WHERE a.grantee = 0 AND a.privilege_type = 'CREATE'))), false), \
         CASE WHEN sp.path IS NULL THEN 'no SET search_path: callers can hijack unqualified names' \
              ELSE 'search_path=' || array_to_string(sp.path, ', ') || \
                   ' (must end with pg_temp and name no schema the app or PUBLIC may create in)' END \
         FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace \
         LEFT JOIN LATERAL (SELECT string_to_array(replace(substr(c, 13), ' ', ''), ',') AS path \
                            FROM unnest(f.proconfig) c WHERE c LIKE 'search_path=%') sp ON true \
         WHERE f.prosecdef AND n.nspname NOT IN ('pg_catalog','information_schema')",
    ),
    (
        "definer_not_public",
        "SELECT n.nspname || '.' || f.proname || '(' || pg_get_function_identity_arguments(f.oid) || ')', \
         f.proacl IS NOT NULL AND NOT EXISTS (SELECT FROM aclexplode(f.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'), \
         CASE WHEN f.proacl IS NULL OR EXISTS (SELECT FROM aclexplode(f.proacl) a WHERE a.grantee = 0) \
              THEN 'PUBLIC may EXECUTE this SECURITY DEFINER function' ELSE 'EXECUTE not granted to PUBLIC' END \
         FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace \
         WHERE f.prosecdef AND n.nspname NOT IN ('pg_catalog','information_schema')",
    ),
    (
        "views_security_invoker",
        "SELECT c.oid::regclass::text, coalesce(c.reloptions::text[] && ARRAY['security_invoker=true','security_invoker=on'], false), \
         'views run with their owner''s rights unless security_invoker = true' \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'v' AND n.nspname NOT IN ('pg_catalog','information_schema') AND pg_catalog.left(n.nspname, 3) <> 'pg_'",
    ),
    (
        "unique_includes_tenant",
        "SELECT t.schema || '.' || t.table || ' ' || \
           (SELECT x.relname FROM pg_class x WHERE x.oid = i.indexrelid), \
         EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attname = 'tenant_id' AND a.attnum = ANY (i.indkey)), \
         'unique index ' || pg_get_indexdef(i.indexrelid) \
         FROM tenant_tables t JOIN pg_index i ON i.indrelid = t.oid WHERE i.indisunique",
    ),
    (
        // An invalid index another session is building, reindexing or dropping right now
        // (`CREATE INDEX` / `REINDEX CONCURRENTLY` on its table in `pg_stat_progress_create_index`,
        // in this database: a database made from the same template has the same oids,
        // or a `ShareUpdateExclusiveLock` held on the index itself, which `DROP INDEX
        // CONCURRENTLY` and `REINDEX CONCURRENTLY` take) is reported, not failed: a migration
        // running beside `verify` is not a leftover. The progress view shows another role's
        // build only to members of that role or of `pg_read_all_stats`; a build this login
        // cannot see is failed, never excused. A partitioned index (`relkind 'I'`) is invalid
        // until an index is attached for every partition.
        "indexes_valid",
        "SELECT 'indexes of tenant tables and of tenancy', count(*) FILTER (WHERE NOT x.valid AND NOT x.busy) = 0, \
         coalesce(string_agg(x.name || CASE WHEN x.partitioned \
                    THEN ': a partitioned index some partition has no index attached for \
                         (ALTER INDEX ... ATTACH PARTITION one for each; queries ignore the missing ones)' \
                    ELSE ': invalid, left by an interrupted CREATE INDEX CONCURRENTLY (queries ignore it); \
                         `migration up` drops and rebuilds those its own steps build' END, '; ') \
                  FILTER (WHERE NOT x.valid AND NOT x.busy), \
                  count(*) FILTER (WHERE x.valid) || ' valid') \
           || coalesce('; ' || string_agg(x.name, ', ') FILTER (WHERE NOT x.valid AND x.busy) \
                  || ': being built, reindexed or dropped concurrently right now, not checked \
                     (run verify again once that is done)', '') \
         FROM (SELECT i.indexrelid::regclass::text AS name, i.indisvalid AS valid, c.relkind = 'I' AS partitioned, \
                 NOT i.indisvalid AND (EXISTS (SELECT FROM pg_stat_progress_create_index p \
                     WHERE p.datname = current_database() AND p.relid = i.indrelid AND p.pid <> pg_backend_pid()) \
                   OR EXISTS (SELECT FROM pg_locks l WHERE l.locktype = 'relation' \
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                     AND l.relation = i.indexrelid AND l.mode = 'ShareUpdateExclusiveLock' \
                     AND l.granted AND l.pid <> pg_backend_pid())) AS busy \
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname = 'tenancy' OR i.indrelid IN (SELECT oid FROM tenant_tables)) x",
    ),
    (
        "foreign_keys_composite",
        "SELECT t.schema || '.' || t.table || ' ' || k.conname, \
         (SELECT attnum FROM pg_attribute WHERE attrelid = k.conrelid AND attname = 'tenant_id') = ANY (k.conkey) \
           AND (SELECT attnum FROM pg_attribute WHERE attrelid = k.confrelid AND attname = 'tenant_id') = ANY (k.confkey), \
         pg_get_constraintdef(k.oid) \
         FROM tenant_tables t JOIN pg_constraint k ON k.conrelid = t.oid AND k.contype = 'f' \
         WHERE k.confrelid IN (SELECT oid FROM tenant_tables)",
    ),
];

/// What `pg_get_expr` shows for the only expressions a permissive policy that applies to the
/// app role may have: `tenant_id` compared with the current tenant, in either form
/// (`tenant_table::PolicyForm`), each name's schema shown or not (as the session's
/// `search_path` has it). Brackets, not backslashes, escape the pattern, so it means the same
/// whatever `standard_conforming_strings` says.
pub fn app_policy_pattern() -> String {
    // Built-ins print qualified where a user's object of the same name comes first on the
    // session's path; which object each one is, `app_policies_sql` checks by dependency.
    let cat = "(pg_catalog[.])?";
    format!(
        "^[(]{TENANT_COLUMN} (=|OPERATOR[(]pg_catalog[.]=[)]) ((tenancy[.])?current_tenant_id[(][)]|\
         [(]NULLIF[(]{cat}current_setting[(]'{setting}'::{cat}text, true[)], ''::{cat}text[)][)]::{cat}uuid)[)]$",
        setting = TENANT_SETTING.replace('.', "[.]")
    )
}

/// Whether one of the roles policy `p` names (`p.polroles`) applies to a session of the role
/// `$1`: a role that is `$1` or a member of it (a login, a dedicated tenant's role, and whoever
/// may `SET ROLE` to one) and is a member of that named role. Superusers count as members of
/// every role and bypass row level security, so they are left out.
const SESSIONS_OF_ROLE_IN: &str = "SELECT FROM unnest(p.polroles) r(oid), pg_catalog.pg_roles s \
     WHERE NOT s.rolsuper AND pg_catalog.pg_has_role(s.oid, $1, 'MEMBER') \
       AND pg_catalog.pg_has_role(s.oid, r.oid, 'MEMBER')";

/// `app_policies_tenant_only`: every permissive policy on a tenant table that applies to a
/// session of the app role (to PUBLIC, to the app role or a role it is in, or to one of its
/// members: a login, a dedicated tenant's role) compares `tenant_id` with the current tenant
/// and nothing else, in each expression it has. The text alone depends on the session's
/// `search_path` (a `public.current_setting` prints unqualified where `public` comes before
/// `pg_catalog`), so the policy must also depend on no function, type or operator but
/// `tenancy.current_tenant_id()` (PostgreSQL records no dependency on its own built-ins). Permissive policies are OR-ed, so any other
/// one (`USING (true)`, `OR tenant_id IS NULL`) widens what every tenant sees; restrictive
/// ones only narrow it and are not checked. `$1` is the app role.
fn app_policies_sql() -> String {
    let pattern = format!("'{}'", app_policy_pattern().replace('\'', "''"));
    format!(
        "SELECT t.schema || '.' || t.table || ' ' || p.polname, \
         (p.polqual IS NOT NULL OR p.polwithcheck IS NOT NULL) \
           AND coalesce(pg_get_expr(p.polqual, p.polrelid) ~ {pattern}, true) \
           AND coalesce(pg_get_expr(p.polwithcheck, p.polrelid) ~ {pattern}, true) \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d \
             WHERE d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = p.oid \
               AND d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass, \
                 'pg_catalog.pg_type'::pg_catalog.regclass, 'pg_catalog.pg_operator'::pg_catalog.regclass) \
               AND NOT (d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass \
                 AND d.refobjid IS NOT DISTINCT FROM \
                   pg_catalog.to_regprocedure('tenancy.current_tenant_id()')::pg_catalog.oid)), \
         'USING ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '-') || ' WITH CHECK ' || \
           coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '-') || \
           ' (a permissive policy of the app role: tenant_id = the current tenant, nothing else)' \
         FROM tenant_tables t JOIN pg_policy p ON p.polrelid = t.oid \
         WHERE p.polpermissive AND (0 = ANY (p.polroles) OR EXISTS ({SESSIONS_OF_ROLE_IN}))"
    )
}

/// The only expression a policy that applies to the legacy role may have (as `pg_get_expr`
/// renders [`crate::tenant_table::legacy_predicate`]).
pub fn legacy_policy_expression() -> String {
    format!("({TENANT_COLUMN} = '{DEFAULT_TENANT_ID}'::uuid)")
}

/// The legacy role's checks: `$1` is its name, `$2` [`legacy_policy_expression`]. The role
/// checks of the app apply to it too; every permissive policy on a tenant table that applies
/// to a session of it (to PUBLIC, to it or a role it is in, or to one of its members, such as a
/// login) must be pinned to the default tenant by a
/// constant (a policy reading a setting would let a legacy login choose its tenant); and it
/// has no privilege on a global table (shared by every tenant).
const LEGACY_CHECKS: &[(&str, &str)] = &[
    ("legacy_not_privileged", ROLE_NOT_PRIVILEGED_SQL),
    ("legacy_owns_nothing", ROLE_OWNS_NOTHING_SQL),
    ("legacy_no_dangerous_grants", ROLE_NO_DANGEROUS_GRANTS_SQL),
    ("legacy_no_create", ROLE_NO_CREATE_SQL),
    (
        "legacy_policies_pinned",
        "SELECT t.schema || '.' || t.table || ' ' || p.polname, \
         (p.polqual IS NOT NULL OR p.polwithcheck IS NOT NULL) \
           AND coalesce(pg_get_expr(p.polqual, p.polrelid), $2) = $2 \
           AND coalesce(pg_get_expr(p.polwithcheck, p.polrelid), $2) = $2, \
         'USING ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '-') || ' WITH CHECK ' || \
           coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '-') || ' (a policy the legacy role gets must be exactly ' || $2 || ')' \
         FROM tenant_tables t JOIN pg_policy p ON p.polrelid = t.oid \
         WHERE p.polpermissive AND (0 = ANY (p.polroles) OR EXISTS (\
           SELECT FROM unnest(p.polroles) r(oid), pg_catalog.pg_roles s \
           WHERE NOT s.rolsuper AND pg_catalog.pg_has_role(s.oid, $1, 'MEMBER') \
             AND pg_catalog.pg_has_role(s.oid, r.oid, 'MEMBER')))",
    ),
    (
        "legacy_no_global_tables",
        "SELECT n.nspname || '.' || c.relname || ' ' || priv.p, false, \
         $1 || ' has ' || priv.p || ' on a global table (shared by every tenant; the legacy role is pinned to one)' \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE')) AS priv(p) \
         WHERE c.relkind IN ('r','p','v','m') AND n.nspname NOT IN ('pg_catalog','information_schema') \
           AND pg_catalog.left(n.nspname, 3) <> 'pg_' AND c.oid NOT IN (SELECT oid FROM tenant_tables) \
           AND has_table_privilege($1, c.oid, priv.p)",
    ),
];

/// Pins, for the audit's own transaction, every setting that changes what its SQL means or
/// how `pg_get_expr` renders a policy, whatever the session, the role or the database set:
/// - `search_path = pg_catalog, pg_temp`: the audit's SQL names catalog functions, operators
///   and tables (`pg_get_expr`, `~`, `pg_policy`) unqualified, and a `public.pg_get_expr` the
///   database's owner may create would otherwise be the one called; it also fixes which names
///   a policy prints qualified (the patterns allow both; `app_policies_tenant_only` checks by
///   dependency which objects they are);
/// - `standard_conforming_strings = on`: the SQL's string literals mean what they say (the
///   patterns use brackets, not backslashes, as well);
/// - `quote_all_identifiers = off`: otherwise every name prints quoted, and no correct policy
///   would match [`app_policy_pattern`].
pub const PIN_RENDERING_SQL: &str = "SET LOCAL search_path = pg_catalog, pg_temp; \
     SET LOCAL standard_conforming_strings = on; SET LOCAL quote_all_identifiers = off";

/// Runs `checks` in a transaction of their own, the settings pinned ([`PIN_RENDERING_SQL`]),
/// and rolls it back: the audit only reads, and the rollback ends the pin too, also inside a
/// caller's transaction (where `begin` opens a savepoint). A failed check's error is the one
/// returned, even if the rollback fails as well.
///
/// Pass an open transaction as a `DatabaseTransaction`, never a connection inside a `BEGIN`
/// sent by hand: on that connection the audit's own `BEGIN` is a no-op and its `ROLLBACK`
/// would end the caller's transaction.
pub async fn pinned<C, T>(
    db: &C,
    checks: impl AsyncFnOnce(&C::Transaction) -> Result<T, DbErr>,
) -> Result<T, DbErr>
where
    C: TransactionTrait,
{
    let txn = db.begin().await?;
    let out = match txn.execute_unprepared(PIN_RENDERING_SQL).await {
        Ok(_) => checks(&txn).await,
        Err(e) => Err(e),
    };
    let rolled_back = txn.rollback().await;
    let out = out?;
    rolled_back?;
    Ok(out)
}

/// Runs every catalog check, in a transaction of its own with the rendering pinned
/// ([`pinned`]). `app_role` is the group role the application's logins are in.
pub async fn audit<C: TransactionTrait>(db: &C, app_role: &str) -> Result<Report, DbErr> {
    pinned(db, async |txn| audit_in(txn, app_role).await).await
}

/// Runs every catalog check on `db` as it is (the caller pins the rendering: [`pinned`]).
pub async fn audit_in<C: ConnectionTrait>(db: &C, app_role: &str) -> Result<Report, DbErr> {
    let mut report = Report::default();
    for (check, sql) in CHECKS {
        let query = format!("WITH tenant_tables AS ({TENANT_TABLES_SQL}) {sql}");
        report
            .findings
            .extend(findings(db, check, query, app_role).await?);
    }
    report.findings.extend(
        findings(
            db,
            "app_policies_tenant_only",
            format!(
                "WITH tenant_tables AS ({TENANT_TABLES_SQL}) {}",
                app_policies_sql()
            ),
            app_role,
        )
        .await?,
    );
    legacy_checks(db, &mut report).await?;
    let tables = tenant_tables(db).await?;
    if tables.is_empty() {
        report.findings.push(Finding {
            check: "tenant_tables".into(),
            subject: "database".into(),
            ok: false,
            detail: format!("no table has a {TENANT_COLUMN} column: is the database migrated?"),
        });
    }
    Ok(report)
}

/// The legacy role's checks, when the role exists (a database migrated before
/// `m0008_legacy_role` has none, which is one passing finding).
async fn legacy_checks<C: ConnectionTrait>(db: &C, report: &mut Report) -> Result<(), DbErr> {
    let exists = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)",
            [LEGACY_ROLE.into()],
        ))
        .await?
        .map(|r| r.try_get_by_index::<bool>(0))
        .transpose()?
        .unwrap_or(false);
    if !exists {
        report.findings.push(Finding {
            check: "legacy_role".into(),
            subject: LEGACY_ROLE.into(),
            ok: true,
            detail: "absent: no legacy login to check".into(),
        });
        return Ok(());
    }
    for (check, sql) in LEGACY_CHECKS {
        // Every check gets both parameters; the CTE types `$2` for those that do not use it.
        let query = format!(
            "WITH tenant_tables AS ({TENANT_TABLES_SQL}), expected AS (SELECT $2::text AS e) {sql}"
        );
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            query,
            [LEGACY_ROLE.into(), legacy_policy_expression().into()],
        );
        report.findings.extend(findings_of(db, check, stmt).await?);
    }
    Ok(())
}

/// Runs one check: `query` returns `(subject, ok, detail)` rows and may use `$1`, the app role.
pub async fn findings<C: ConnectionTrait>(
    db: &C,
    check: &str,
    query: String,
    app_role: &str,
) -> Result<Vec<Finding>, DbErr> {
    let stmt = Statement::from_sql_and_values(DbBackend::Postgres, query, [app_role.into()]);
    findings_of(db, check, stmt).await
}

/// Runs one check given whole, with its own parameters: `stmt` returns `(subject, ok,
/// detail)` rows.
pub async fn findings_of<C: ConnectionTrait>(
    db: &C,
    check: &str,
    stmt: Statement,
) -> Result<Vec<Finding>, DbErr> {
    to_findings(check, db.query_all_raw(stmt).await?)
}

/// `(subject, ok, detail)` rows as findings of `check`.
fn to_findings(check: &str, rows: Vec<sea_orm::QueryResult>) -> Result<Vec<Finding>, DbErr> {
    let mut out = Vec::new();
    for row in rows {
        out.push(Finding {
            check: check.to_owned(),
            subject: row
                .try_get_by_index::<Option<String>>(0)?
                .unwrap_or_default(),
            ok: row.try_get_by_index::<Option<bool>>(1)?.unwrap_or(false),
            detail: row
                .try_get_by_index::<Option<String>>(2)?
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Runs the audit for the standard app role.
pub async fn audit_default<C: TransactionTrait>(db: &C) -> Result<Report, DbErr> {
    audit(db, APP_ROLE).await
}

/// `(schema, table)` of every tenant table.
pub async fn tenant_tables<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, String)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            TENANT_TABLES_SQL,
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get_by_index::<String>(0)?,
                r.try_get_by_index::<String>(1)?,
            ))
        })
        .collect()
}
