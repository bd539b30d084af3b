//! The attack matrix against a real PostgreSQL: all pass on our schema (directly and through
//! PgBouncer when installed), and each deliberate break turns exactly its cell or finding to FAIL.

use std::collections::BTreeSet;

use sea_orm::ConnectionTrait;
use tenantry_tests::isolation::pool::PgBouncer;
use tenantry_tests::isolation::{self, ContextMode, IsolationReport, IsolationTarget};
use tenantry_tests::logins::APP_LOGIN;
use tenantry_tests::{TestDb, migrated_db, shared_cluster};

fn target(db: &TestDb, mode: ContextMode, bouncer_url: Option<String>) -> IsolationTarget {
    IsolationTarget {
        mode,
        bouncer_url,
        ..IsolationTarget::for_db(db, 60)
    }
}

/// `(subject, check)` of every failure.
fn failures(report: &IsolationReport) -> BTreeSet<(String, String)> {
    report
        .failures()
        .into_iter()
        .map(|(s, c, _)| (s, c))
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(s, c)| ((*s).to_owned(), (*c).to_owned()))
        .collect()
}

/// Applies `sql` as the superuser to a fresh migrated database, then runs the matrix.
async fn broken(sql: &str, mode: ContextMode) -> anyhow::Result<IsolationReport> {
    let db = migrated_db().await?;
    let su = db.connect_superuser().await?;
    if !sql.is_empty() {
        su.execute_unprepared(sql).await?;
    }
    su.close().await?;
    Ok(isolation::run(&target(&db, mode, None)).await?)
}

#[tokio::test]
async fn our_schema_passes_every_attack_directly_and_through_pgbouncer() -> anyhow::Result<()> {
    let db = migrated_db().await?;
    let bouncer = if PgBouncer::available() {
        Some(PgBouncer::start(shared_cluster()?, APP_LOGIN, 2).map_err(anyhow::Error::msg)?)
    } else {
        eprintln!("pgbouncer not installed: the PgBouncer leg is not exercised here");
        None
    };
    let report = isolation::run(&target(
        &db,
        ContextMode::Local,
        bouncer.as_ref().map(|b| b.url(APP_LOGIN, &db.name)),
    ))
    .await?;
    assert!(report.passed(), "{report}");
    let tables: Vec<&str> = report.matrix.iter().map(|r| r.subject.as_str()).collect();
    for t in [
        "public.projects",
        "public.documents",
        "public.tasks",
        "tenancy.api_keys",
        "tenancy.tenant_users",
    ] {
        assert!(
            tables.contains(&t),
            "{t} missing from the matrix: {tables:?}"
        );
    }
    assert!(
        report
            .matrix
            .iter()
            .all(|r| r.cells.len() == isolation::attacks::ATTACKS.len())
    );
    // The legacy login: every tenant table attacked, its rows land in the default tenant where
    // it may insert at all (the legacy tables), and Tenantry's own tables are closed to it.
    assert_eq!(report.legacy.len(), report.matrix.len(), "{report}");
    for t in ["public.projects", "public.documents", "public.tasks"] {
        assert_eq!(
            report.legacy_cell(t, "insert_default"),
            Some(&isolation::Cell::pass("landed in the default tenant")),
            "{report}"
        );
    }
    assert_eq!(
        report.legacy_cell("tenancy.api_keys", "insert_default"),
        Some(&isolation::Cell::NotApplicable),
        "{report}"
    );
    assert!(
        matches!(
            report.cell("login tenantry_legacy_login", "set_role"),
            Some(isolation::Cell::Pass(_))
        ),
        "{report}"
    );
    if bouncer.is_some() {
        assert!(
            matches!(
                report.cell("pool (1-2 server connections)", "pool_reuse_pgbouncer"),
                Some(isolation::Cell::Pass(_))
            ),
            "{report}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn dropping_a_policy_is_reported() -> anyhow::Result<()> {
    let report = broken(
        "DROP POLICY projects_app_select ON public.projects",
        ContextMode::Local,
    )
    .await?;
    // Without a SELECT policy the app reads nothing (so no read leaks), but the catalog check
    // names the missing policy, and the plan has no index condition left to use.
    assert_eq!(
        failures(&report),
        set(&[
            ("public.projects SELECT", "policies_per_command"),
            ("public.projects", "index_cond")
        ]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn disabling_force_is_reported() -> anyhow::Result<()> {
    let report = broken(
        "ALTER TABLE public.tasks NO FORCE ROW LEVEL SECURITY",
        ContextMode::Local,
    )
    .await?;
    assert_eq!(
        failures(&report),
        set(&[("public.tasks", "force_rls")]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn granting_truncate_is_reported() -> anyhow::Result<()> {
    let report = broken(
        "GRANT TRUNCATE ON public.documents TO tenantry_app",
        ContextMode::Local,
    )
    .await?;
    assert_eq!(
        failures(&report),
        set(&[
            ("public.documents", "truncate"),
            ("public.documents TRUNCATE", "app_no_dangerous_grants")
        ]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn a_definer_function_without_search_path_is_reported() -> anyhow::Result<()> {
    let report = broken(
        "ALTER FUNCTION tenancy.api_key_lookup(text, bytea) RESET search_path",
        ContextMode::Local,
    )
    .await?;
    assert_eq!(
        failures(&report),
        set(&[(
            "tenancy.api_key_lookup(p_prefix text, p_secret_hash bytea)",
            "definer_search_path"
        )]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn a_tenant_blind_unique_constraint_is_reported() -> anyhow::Result<()> {
    let report = broken(
        "ALTER TABLE public.projects ADD CONSTRAINT projects_name_key UNIQUE (name)",
        ContextMode::Local,
    )
    .await?;
    assert_eq!(
        failures(&report),
        set(&[(
            "public.projects projects_name_key",
            "unique_includes_tenant"
        )]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn a_session_level_context_is_reported() -> anyhow::Result<()> {
    let report = broken("", ContextMode::Session).await?;
    let found = failures(&report);
    // The context leaks into the next transaction of the same pooled connection: every table's
    // emptied-context check fails, and so does the pool-reuse check; only checks that run
    // without a context may fail besides.
    for row in &report.matrix {
        assert!(
            found.contains(&(row.subject.clone(), "emptied_ctx".to_owned())),
            "{report}"
        );
    }
    assert!(
        found.contains(&(
            "pool (1-2 server connections)".to_owned(),
            "pool_reuse_direct".to_owned()
        )),
        "{report}"
    );
    for (subject, check) in &found {
        assert!(
            [
                "emptied_ctx",
                "no_context",
                "write_no_ctx",
                "pool_reuse_direct"
            ]
            .contains(&check.as_str()),
            "unexpected failure {subject} {check}\n{report}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_global_table_open_to_every_tenant_is_reported() -> anyhow::Result<()> {
    let report = broken(
        "DROP POLICY tenants_app_select ON tenancy.tenants; \
         CREATE POLICY tenants_app_select ON tenancy.tenants FOR SELECT TO tenantry_app USING (true)",
        ContextMode::Local,
    )
    .await?;
    assert_eq!(
        failures(&report),
        set(&[("global tenancy.tenants", "read_other")]),
        "{report}"
    );
    Ok(())
}

/// A second permissive policy that lets the app role read every row: the attacks read other
/// tenants' rows, and the catalog audit names the policy; a restrictive policy, which only
/// narrows, is not reported.
#[tokio::test]
async fn an_extra_permissive_policy_is_reported_and_a_restrictive_one_is_not() -> anyhow::Result<()>
{
    let report = broken(
        "CREATE POLICY tasks_open ON public.tasks FOR SELECT TO PUBLIC USING (true); \
         CREATE POLICY tasks_narrow ON public.tasks AS RESTRICTIVE FOR SELECT TO tenantry_app \
           USING (status <> 'hidden')",
        ContextMode::Local,
    )
    .await?;
    let failed = failures(&report);
    assert!(
        failed.contains(&(
            "public.tasks tasks_open".to_owned(),
            "app_policies_tenant_only".to_owned()
        )),
        "{report}"
    );
    assert!(
        !failed.iter().any(|(s, _)| s.contains("tasks_narrow")),
        "{report}"
    );
    assert!(
        failed
            .iter()
            .any(|(s, c)| s == "public.tasks" && c.starts_with("read")),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn writes_allowed_without_a_context_are_reported() -> anyhow::Result<()> {
    let report = broken(
        "ALTER POLICY projects_app_insert ON public.projects \
         WITH CHECK (tenant_id = tenancy.current_tenant_id() OR tenancy.current_tenant_id() IS NULL)",
        ContextMode::Local,
    )
    .await?;
    assert_eq!(
        failures(&report),
        set(&[
            ("public.projects", "write_no_ctx"),
            (
                "public.projects projects_app_insert",
                "app_policies_tenant_only"
            )
        ]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn a_definer_function_changing_other_tenants_rows_is_reported() -> anyhow::Result<()> {
    let report = broken(
        "CREATE FUNCTION tenancy.touch_all() RETURNS integer LANGUAGE sql SECURITY DEFINER \
           SET search_path = pg_catalog, pg_temp \
           AS $$ UPDATE public.projects SET name = name || '!' RETURNING 1 $$; \
         REVOKE EXECUTE ON FUNCTION tenancy.touch_all() FROM PUBLIC; \
         GRANT EXECUTE ON FUNCTION tenancy.touch_all() TO tenantry_app",
        ContextMode::Local,
    )
    .await?;
    assert_eq!(
        failures(&report),
        set(&[("function tenancy.touch_all()", "definer_other_tenant")]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn a_search_path_searching_pg_temp_first_is_reported() -> anyhow::Result<()> {
    let report = broken(
        "ALTER FUNCTION tenancy.api_key_lookup(text, bytea) SET search_path = pg_temp, pg_catalog",
        ContextMode::Local,
    )
    .await?;
    assert_eq!(
        failures(&report),
        set(&[(
            "tenancy.api_key_lookup(p_prefix text, p_secret_hash bytea)",
            "definer_search_path"
        )]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn an_insert_policy_that_checks_nothing_is_reported() -> anyhow::Result<()> {
    let report = broken(
        "ALTER POLICY projects_app_insert ON public.projects WITH CHECK (true)",
        ContextMode::Local,
    )
    .await?;
    // A row for tenant B is accepted under tenant A's context, and so is one without a context.
    // The catalog audit names the policy.
    assert_eq!(
        failures(&report),
        set(&[
            ("public.projects", "insert_other"),
            ("public.projects", "write_no_ctx"),
            (
                "public.projects projects_app_insert",
                "app_policies_tenant_only"
            )
        ]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn a_legacy_policy_that_reads_the_setting_is_reported() -> anyhow::Result<()> {
    // The legacy login could then choose its tenant: with B's id set it reads B's rows.
    let report = broken(
        "ALTER POLICY projects_legacy_select ON public.projects \
         USING (tenant_id = tenancy.current_tenant_id() OR tenant_id = '00000000-0000-0000-0000-000000000000')",
        ContextMode::Local,
    )
    .await?;
    assert_eq!(
        failures(&report),
        set(&[
            ("public.projects", "legacy_read_other"),
            (
                "public.projects projects_legacy_select",
                "legacy_policies_pinned"
            ),
        ]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn a_legacy_write_policy_not_pinned_to_the_default_tenant_is_reported() -> anyhow::Result<()>
{
    // WITH CHECK (true): the legacy login may write rows into any tenant.
    let report = broken(
        "ALTER POLICY documents_legacy_insert ON public.documents WITH CHECK (true)",
        ContextMode::Local,
    )
    .await?;
    assert_eq!(
        failures(&report),
        set(&[
            ("public.documents", "legacy_insert_other"),
            (
                "public.documents documents_legacy_insert",
                "legacy_policies_pinned"
            ),
        ]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn a_global_table_open_to_the_legacy_role_is_reported() -> anyhow::Result<()> {
    // users is shared by every tenant: a login pinned to one must not read all of it.
    let report = broken(
        "GRANT SELECT ON tenancy.users TO tenantry_legacy",
        ContextMode::Local,
    )
    .await?;
    assert_eq!(
        failures(&report),
        set(&[("tenancy.users SELECT", "legacy_no_global_tables")]),
        "{report}"
    );
    Ok(())
}

/// Provisions two dedicated tenants, applies the break rendered for their schemas `(a, b)`,
/// then runs the matrix.
async fn broken_dedicated(
    sql: impl Fn(&str, &str) -> String,
) -> anyhow::Result<(IsolationReport, String)> {
    let db = migrated_db().await?;
    let su = db.connect_superuser().await?;
    let d = isolation::schemas::discover(&su).await?;
    let (a, b) = (d.a.1.to_string(), d.b.1.to_string());
    su.execute_unprepared(&sql(&a, &b)).await?;
    su.close().await?;
    Ok((
        isolation::run(&target(&db, ContextMode::Local, None)).await?,
        a,
    ))
}

/// `(check)` of every failure in the dedicated rows of schema `a`.
fn dedicated_failures(report: &IsolationReport, a: &str) -> BTreeSet<String> {
    report
        .failures()
        .into_iter()
        .filter(|(s, _, _)| s.starts_with(a))
        .map(|(_, c, _)| c)
        .collect()
}

#[tokio::test]
async fn dedicated_tenants_are_attacked_across_schemas() -> anyhow::Result<()> {
    let (report, a) = broken_dedicated(|_, _| String::new()).await?;
    assert!(report.passed(), "{report}");
    let projects = format!("{a}.projects (dedicated)");
    for attack in [
        "own_rows",
        "outside_tx",
        "qualified_read",
        "qualified_write",
        "search_path",
        "set_role",
        "pg_temp",
        "pg_temp_session",
        "view_across",
        "truncate",
        "move_row",
    ] {
        assert!(
            matches!(
                report.cell(&projects, attack),
                Some(isolation::Cell::Pass(_))
            ),
            "{attack} did not pass on {projects}:\n{report}"
        );
    }
    assert!(
        matches!(
            report.cell(&format!("{a} session state (dedicated)"), "pg_temp_type"),
            Some(isolation::Cell::Pass(_))
        ),
        "pg_temp_type did not pass:\n{report}"
    );
    assert!(
        matches!(
            report.cell(&format!("{a} session state (dedicated)"), "pg_temp_uuid"),
            Some(isolation::Cell::Pass(_))
        ),
        "pg_temp_uuid did not pass:\n{report}"
    );
    let cloud = format!("{a}.cloud_providers (dedicated)");
    assert!(
        report.cell(&cloud, "own_rows").is_some(),
        "reference tables attacked too"
    );
    // The shared leg's attacks on the tables of A's schema, as A entered in it.
    for table in ["projects", "documents", "tasks", "cloud_providers"] {
        let subject = format!("{a}.{table} (dedicated, shared attacks)");
        for attack in isolation::attacks::ATTACKS.iter().chain(&["copy_across"]) {
            assert!(
                report.cell(&subject, attack).is_some(),
                "{attack} not run on {subject}:\n{report}"
            );
        }
        for attack in ["insert_other", "copy_to", "copy_across", "index_cond"] {
            assert!(
                matches!(
                    report.cell(&subject, attack),
                    Some(isolation::Cell::Pass(_))
                ),
                "{attack} did not pass on {subject}:\n{report}"
            );
        }
    }
    for table in ["documents", "tasks"] {
        let subject = format!("{a}.{table} (dedicated, shared attacks)");
        assert!(
            matches!(
                report.cell(&subject, "fk_other"),
                Some(isolation::Cell::Pass(_))
            ),
            "fk_other did not pass on {subject}:\n{report}"
        );
    }
    Ok(())
}

/// In a dedicated tenant's own table, an insert policy that checks nothing leaves only the
/// schema's `CHECK (tenant_id = A)` between A and a row carrying B's id: the shared leg's
/// `insert_other` cell, run on the tenant schema, reports it.
#[tokio::test]
async fn a_dedicated_insert_policy_that_checks_nothing_is_reported() -> anyhow::Result<()> {
    let (report, a) = broken_dedicated(|a, _| {
        format!(
            "DROP POLICY projects_app_insert ON {a}.projects; \
             CREATE POLICY projects_app_insert ON {a}.projects FOR INSERT TO tenantry_app \
               WITH CHECK (true)"
        )
    })
    .await?;
    let failed: Vec<(String, String)> = report
        .failures()
        .into_iter()
        .filter(|(s, _, _)| s.starts_with(&a))
        .map(|(s, c, _)| (s, c))
        .collect();
    // `write_no_ctx` too: "no context" in A's schema is A's role with no tenant id, and the
    // policy lets it insert A's row there. The catalog audit names the policy.
    let subject = format!("{a}.projects (dedicated, shared attacks)");
    assert_eq!(
        failed,
        vec![
            (subject.clone(), "insert_other".to_owned()),
            (subject, "write_no_ctx".to_owned()),
            (
                format!("{a}.projects projects_app_insert"),
                "app_policies_tenant_only".to_owned()
            )
        ],
        "{report}"
    );
    Ok(())
}

/// A tenant role that may read another tenant's schema, whose table does not force row level
/// security: `copy_across` (COPY of B's table from A's transaction) reports B's rows.
#[tokio::test]
async fn a_copy_across_schemas_is_reported() -> anyhow::Result<()> {
    let (report, a) = broken_dedicated(|a, b| {
        format!(
            "GRANT USAGE ON SCHEMA {b} TO {a}; GRANT SELECT ON {b}.tasks TO {a}; \
             ALTER TABLE {b}.tasks NO FORCE ROW LEVEL SECURITY; \
             ALTER TABLE {b}.tasks DISABLE ROW LEVEL SECURITY"
        )
    })
    .await?;
    let subject = format!("{a}.tasks (dedicated, shared attacks)");
    assert!(
        matches!(
            report.cell(&subject, "copy_across"),
            Some(isolation::Cell::Fail(_))
        ),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn a_tenant_schema_open_to_the_app_role_is_reported() -> anyhow::Result<()> {
    let (report, a) = broken_dedicated(|_, b| {
        format!(
            "GRANT USAGE ON SCHEMA {b} TO tenantry_app; \
             GRANT SELECT, DELETE ON ALL TABLES IN SCHEMA {b} TO tenantry_app"
        )
    })
    .await?;
    let failed = dedicated_failures(&report, &a);
    assert!(
        failed.contains("qualified_read") && failed.contains("qualified_write"),
        "{report}"
    );
    assert!(
        report
            .failures()
            .iter()
            .any(|(_, c, _)| c == "tenant_schema_grants"),
        "{report}"
    );
    Ok(())
}

/// Roles are cluster-wide and tests run concurrently in one cluster: breaks touch only this
/// database's own tenant roles and schemas, never `tenantry_dedicated` itself.
#[tokio::test]
async fn a_tenant_schema_usable_outside_a_transaction_is_reported() -> anyhow::Result<()> {
    let (report, a) = broken_dedicated(|a, _| {
        format!(
            "GRANT USAGE ON SCHEMA {a} TO tenantry_app; \
             GRANT SELECT ON ALL TABLES IN SCHEMA {a} TO tenantry_app; \
             REVOKE {a} FROM tenantry_dedicated"
        )
    })
    .await?;
    let failed = dedicated_failures(&report, &a);
    assert!(failed.contains("outside_tx"), "{report}");
    for check in ["tenant_role", "tenant_table_grants", "tenant_schema_grants"] {
        assert!(
            report.failures().iter().any(|(_, c, _)| c == check),
            "{check}: {report}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_search_path_with_pg_temp_first_is_reported_for_dedicated_tenants() -> anyhow::Result<()>
{
    let (report, a) = broken_dedicated(|_, _| {
        "DO $$ DECLARE d text; BEGIN \
           SELECT pg_get_functiondef('tenancy.enter_tenant()'::regprocedure) INTO d; \
           EXECUTE replace(d, '%I, public, pg_temp', 'pg_temp, %I, public'); END $$"
            .into()
    })
    .await?;
    assert_eq!(
        dedicated_failures(&report, &a)
            .into_iter()
            .collect::<Vec<_>>(),
        // pg_temp_type checks the entry's search_path too.
        vec!["pg_temp".to_owned(), "pg_temp_type".to_owned()],
        "{report}"
    );
    Ok(())
}

/// Without the shared tenants' explicit `search_path` (`pg_temp` implicitly first), a
/// temporary table a dedicated tenant leaves on the pooled connection shadows the next shared
/// tenant's table.
#[tokio::test]
async fn a_session_temp_table_shadowing_the_next_tenant_is_reported() -> anyhow::Result<()> {
    let (report, a) = broken_dedicated(|_, _| {
        "DO $$ DECLARE d text; BEGIN \
           SELECT pg_get_functiondef('tenancy.enter_tenant()'::regprocedure) INTO d; \
           IF strpos(d, 'done := pg_catalog.set_config(''search_path'', ''public, pg_temp'', true);') = 0 THEN \
             RAISE EXCEPTION 'the shared search_path line is not in the entry'; END IF; \
           EXECUTE replace(d, 'done := pg_catalog.set_config(''search_path'', ''public, pg_temp'', true);', ''); END $$"
            .into()
    })
    .await?;
    let failed = dedicated_failures(&report, &a);
    assert!(failed.contains("pg_temp_session"), "{report}");
    Ok(())
}

/// With its variables typed by the unqualified name `text` (m0013's body), the entry resolves
/// them to a temporary domain a tenant left on the connection: its hook runs inside the next
/// tenant's entry and has the last word on `search_path`.
#[tokio::test]
async fn an_entry_declaring_unqualified_types_is_reported() -> anyhow::Result<()> {
    let (report, a) = broken_dedicated(|_, _| {
        "DO $$ DECLARE d text; BEGIN \
           SELECT pg_get_functiondef('tenancy.enter_tenant()'::regprocedure) INTO d; \
           IF strpos(d, 'pg_catalog.text;') = 0 THEN \
             RAISE EXCEPTION 'no qualified declaration in the entry'; END IF; \
           EXECUTE replace(d, 'pg_catalog.text;', 'text;'); END $$"
            .into()
    })
    .await?;
    let failed = dedicated_failures(&report, &a);
    assert!(failed.contains("pg_temp_type"), "{report}");
    assert!(
        matches!(
            report.cell(&format!("{a} session state (dedicated)"), "pg_temp_type"),
            Some(isolation::Cell::Fail(why)) if why.contains("hook ran: yes")
        ),
        "{report}"
    );
    Ok(())
}

/// With row level security off on one table of A's schema, the shared leg's cells meet B's row
/// in A's own table (seeded past the pin) and report it: they are not vacuous.
#[tokio::test]
async fn a_dedicated_table_without_row_level_security_is_reported() -> anyhow::Result<()> {
    let (report, a) = broken_dedicated(|a, _| {
        format!("ALTER TABLE {a}.projects NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY")
    })
    .await?;
    let subject = format!("{a}.projects (dedicated, shared attacks)");
    for attack in ["read_all", "read_by_key", "no_context", "emptied_ctx"] {
        assert!(
            matches!(
                report.cell(&subject, attack),
                Some(isolation::Cell::Fail(_))
            ),
            "{attack} passed on {subject} without RLS:\n{report}"
        );
    }
    Ok(())
}

/// With its cast unqualified (m0002's body), `tenancy.current_tenant_id()`, inlined where it is
/// called (the column defaults; the policies too before m0017), casts to a temporary domain
/// `pg_temp.uuid` a tenant left on the connection.
#[tokio::test]
async fn a_setting_reader_casting_to_an_unqualified_type_is_reported() -> anyhow::Result<()> {
    let (report, a) = broken_dedicated(|_, _| {
        "CREATE OR REPLACE FUNCTION tenancy.current_tenant_id() RETURNS uuid LANGUAGE sql \
         STABLE PARALLEL SAFE AS \
         $$ SELECT NULLIF(pg_catalog.current_setting('tenantry.tenant_id', true), '')::uuid $$"
            .into()
    })
    .await?;
    let failed = dedicated_failures(&report, &a);
    assert!(failed.contains("pg_temp_uuid"), "{report}");
    assert!(
        matches!(
            report.cell(&format!("{a} session state (dedicated)"), "pg_temp_uuid"),
            Some(isolation::Cell::Fail(why)) if why.contains("hook ran evaluating")
        ),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn a_tenant_role_that_may_create_views_is_reported() -> anyhow::Result<()> {
    let (report, a) = broken_dedicated(|a, b| {
        format!("GRANT CREATE ON SCHEMA {a} TO {a}; GRANT USAGE ON SCHEMA {b} TO {a}")
    })
    .await?;
    let failed = dedicated_failures(&report, &a);
    assert!(failed.contains("view_across"), "{report}");
    Ok(())
}

/// A policy of the setting's shape calling a `public.current_setting` of the user's: under a
/// session whose `search_path` puts `public` before `pg_catalog` it prints exactly like ours,
/// and the audit still names it (it depends on a function that is not a built-in).
#[tokio::test]
async fn a_policy_calling_a_lookalike_function_is_reported_whatever_the_path() -> anyhow::Result<()>
{
    let db = tenantry_tests::migrated_db().await?;
    let su = db.connect_superuser().await?;
    su.execute_unprepared(
        "CREATE FUNCTION public.current_setting(text, boolean) RETURNS text LANGUAGE sql STABLE \
           AS $$ SELECT '00000000-0000-0000-0000-000000000000'::text $$; \
         ALTER POLICY projects_app_select ON public.projects USING (tenant_id = \
           NULLIF(public.current_setting('tenantry.tenant_id', true), '')::pg_catalog.uuid)",
    )
    .await?;
    let owner = db
        .connect(tenantry_tests::logins::LoginRole::Owner, 1)
        .await?;
    owner
        .execute_unprepared("SET search_path = public, pg_catalog")
        .await?;
    let printed = owner
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_get_expr(polqual, polrelid) FROM pg_policy \
             WHERE polname = 'projects_app_select'",
        ))
        .await?
        .map(|r| r.try_get_by_index::<String>(0))
        .transpose()?
        .unwrap_or_default();
    assert!(printed.contains("(NULLIF(current_setting("), "{printed}");
    let report = migration::audit::audit(&owner, migration::names::APP_ROLE).await?;
    let failed: Vec<_> = report
        .failures()
        .map(|f| (f.check.clone(), f.subject.clone()))
        .collect();
    assert_eq!(
        failed,
        vec![(
            "app_policies_tenant_only".to_owned(),
            "public.projects projects_app_select".to_owned()
        )],
        "{report}"
    );
    Ok(())
}

/// A permissive policy naming a member of the app role (its login) rather than the role: it
/// applies to every session of the app, and the audit names it.
#[tokio::test]
async fn a_permissive_policy_on_the_app_login_is_reported() -> anyhow::Result<()> {
    let report = broken(
        "CREATE POLICY tasks_login_open ON public.tasks FOR SELECT TO tenantry_app_login \
           USING (true)",
        ContextMode::Local,
    )
    .await?;
    let failed = failures(&report);
    assert!(
        failed.contains(&(
            "public.tasks tasks_login_open".to_owned(),
            "app_policies_tenant_only".to_owned()
        )),
        "{report}"
    );
    Ok(())
}

/// A session (or role, or database) quoting every identifier: the audit pins it off for its
/// own transaction, so correct policies still match, and the session's setting comes back.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_quoting_every_identifier_neither_fails_a_correct_audit_nor_keeps_the_pin()
-> anyhow::Result<()> {
    let db = tenantry_tests::migrated_db().await?;
    let owner = db
        .connect(tenantry_tests::logins::LoginRole::Owner, 1)
        .await?;
    // A session (or role, or database) default that makes `pg_get_expr` quote every name.
    owner
        .execute_unprepared("SET quote_all_identifiers = on")
        .await?;
    let report = migration::dedicated::audit::audit_all(&owner, migration::names::APP_ROLE).await?;
    assert!(report.passed(), "{report}");
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.check == "app_policies_tenant_only"),
        "{report}"
    );
    // The audit's pin ended with its transaction: the session's own setting is back.
    let row = owner
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_catalog.current_setting('quote_all_identifiers')",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    assert_eq!(row.try_get_by_index::<String>(0)?, "on");
    Ok(())
}

/// Under `standard_conforming_strings = off` a `LIKE 'pg\_%'` reads as `LIKE 'pg_%'` and hid
/// every schema named `pg` and one more character: a tenant table in `pgapp` is audited.
#[tokio::test]
async fn a_schema_named_like_a_system_one_is_audited_whatever_the_string_syntax()
-> anyhow::Result<()> {
    let db = tenantry_tests::migrated_db().await?;
    let su = db.connect_superuser().await?;
    su.execute_unprepared(
        "CREATE SCHEMA pgapp; CREATE TABLE pgapp.secrets (tenant_id uuid NOT NULL, v text); \
         ALTER TABLE pgapp.secrets ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY wide ON pgapp.secrets TO tenantry_app USING (true)",
    )
    .await?;
    let owner = db
        .connect(tenantry_tests::logins::LoginRole::Owner, 1)
        .await?;
    owner
        .execute_unprepared("SET standard_conforming_strings = off")
        .await?;
    let report = migration::audit::audit(&owner, migration::names::APP_ROLE).await?;
    assert!(
        report
            .failures()
            .any(|f| f.check == "app_policies_tenant_only" && f.subject == "pgapp.secrets wide"),
        "{report}"
    );
    Ok(())
}

/// Runs the whole audit on `owner` and asserts that `check` reports `subject`.
async fn assert_audit_reports(
    owner: &sea_orm::DatabaseConnection,
    check: &str,
    subject: &str,
) -> anyhow::Result<()> {
    let report = migration::dedicated::audit::audit_all(owner, migration::names::APP_ROLE).await?;
    assert!(
        report
            .failures()
            .any(|f| f.check == check && f.subject == subject),
        "{report}"
    );
    Ok(())
}

/// The audit's own SQL names catalog functions unqualified: a `public.pg_get_expr` that the
/// database's owner may create, first on the session's path, would be the one it called, and
/// could print `USING (true)` as a correct policy. The audit pins its `search_path`.
#[tokio::test(flavor = "multi_thread")]
async fn a_lookalike_of_a_function_the_audit_calls_cannot_pass_a_wide_policy() -> anyhow::Result<()>
{
    let db = tenantry_tests::migrated_db().await?;
    let owner = db
        .connect(tenantry_tests::logins::LoginRole::Owner, 1)
        .await?;
    owner
        .execute_unprepared(
            "CREATE FUNCTION public.pg_get_expr(pg_node_tree, oid) RETURNS text LANGUAGE sql \
               STABLE AS $$ SELECT CASE WHEN pg_catalog.pg_get_expr($1, $2) IN ('true', '(true)') \
               THEN '(tenant_id = tenancy.current_tenant_id())' \
               ELSE pg_catalog.pg_get_expr($1, $2) END $$; \
             CREATE POLICY wide ON public.projects FOR SELECT TO tenantry_app USING (true); \
             SET search_path = public, pg_catalog",
        )
        .await?;
    assert_audit_reports(&owner, "app_policies_tenant_only", "public.projects wide").await
}

/// Under `standard_conforming_strings = off` (a role's or database's default, on a fresh
/// session) `'\mselect\M'` read as `'mselectM'` and a sub-select in a policy passed
/// `policy_no_subselect`; the pattern uses brackets, and the audit pins the setting.
#[tokio::test(flavor = "multi_thread")]
async fn a_subselect_in_a_policy_is_reported_whatever_the_string_syntax() -> anyhow::Result<()> {
    let db = tenantry_tests::migrated_db().await?;
    let su = db.connect_superuser().await?;
    su.execute_unprepared(
        "CREATE POLICY narrow ON public.projects AS RESTRICTIVE TO tenantry_app \
           USING ((SELECT true))",
    )
    .await?;
    let owner = db
        .connect(tenantry_tests::logins::LoginRole::Owner, 1)
        .await?;
    owner
        .execute_unprepared("SET standard_conforming_strings = off")
        .await?;
    assert_audit_reports(&owner, "policy_no_subselect", "public.projects narrow").await
}

/// A type named `uuid` first on the session's path made every correct legacy policy print
/// `::pg_catalog.uuid` and fail the exact-text check; under the audit's pinned path it passes.
#[tokio::test(flavor = "multi_thread")]
async fn a_lookalike_type_on_the_sessions_path_does_not_fail_a_correct_audit() -> anyhow::Result<()>
{
    let db = tenantry_tests::migrated_db().await?;
    let owner = db
        .connect(tenantry_tests::logins::LoginRole::Owner, 1)
        .await?;
    owner
        .execute_unprepared(
            "CREATE TYPE public.uuid AS ENUM ('x'); SET search_path = public, pg_catalog",
        )
        .await?;
    let report = migration::dedicated::audit::audit_all(&owner, migration::names::APP_ROLE).await?;
    assert!(report.passed(), "{report}");
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.check == "legacy_policies_pinned"),
        "{report}"
    );
    Ok(())
}
