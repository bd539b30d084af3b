//! Dedicated tenants (one schema per tenant) behind the same service API, against a real
//! PostgreSQL: the same calls give the same results as for a shared tenant; the database
//! refuses every way across schemas (permission denied, or RLS and the tenant CHECK);
//! provisioning is all or nothing; a missing schema is "unavailable"; offboarding drops it.

mod service_support;

use anyhow::{Context, ensure};
use entity::{documents, projects, tasks};
use migration::dedicated::{TenantSchema, tenant_schema_migrations};
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Value};
use service::tenants::Isolation;
use service::{MemberRole, NewApiKey, ServiceError, TenantContext, Tenantry};
use service_support::*;
use uuid::Uuid;

/// What a tenant sees through the service after the same sequence of calls.
async fn same_calls(svc: &Tenantry, ctx: &TenantContext, member: Uuid) -> anyhow::Result<String> {
    let tx = svc.begin(ctx).await?;
    let p = tx
        .insert(projects::ActiveModel {
            id: Set(Uuid::new_v4()),
            name: Set("Patient Portal".into()),
            ..Default::default()
        })
        .await?;
    tx.insert(documents::ActiveModel {
        id: Set(Uuid::new_v4()),
        project_id: Set(p.id),
        title: Set("Spec".into()),
        ..Default::default()
    })
    .await?;
    let task = tx
        .insert(tasks::ActiveModel {
            id: Set(Uuid::new_v4()),
            project_id: Set(p.id),
            title: Set("Ship".into()),
            ..Default::default()
        })
        .await?;
    let mut changed: tasks::ActiveModel = task.into();
    changed.status = Set("done".into());
    tx.update(changed).await?;
    service::members::add(&tx, member, MemberRole::Member).await?;
    let key = service::api_keys::issue(
        &tx,
        NewApiKey {
            name: "ci".into(),
            scopes: vec!["read".into()],
            expires_at: None,
            rate_limit_per_minute: None,
            monthly_quota: None,
        },
    )
    .await?;
    tx.commit().await?;

    let principal = svc.authenticate_api_key(&key.secret).await?;
    ensure!(principal.context.tenant_id() == ctx.tenant_id());
    let tx = svc.begin(&principal.context).await?;
    let projects: Vec<_> = tx
        .list::<projects::Entity>(service::tx::all(), vec![], Default::default())
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    let docs = tx.count::<documents::Entity>(service::tx::all()).await?;
    let done = tx
        .list::<tasks::Entity>(service::tx::all(), vec![], Default::default())
        .await?
        .into_iter()
        .map(|t| t.status)
        .collect::<Vec<_>>();
    let members = service::members::list(&tx).await?.len();
    let current = service::tenants::current(&tx).await?;
    ensure!(current.id == ctx.tenant_id());
    let unknown = tx.find_by_id::<projects::Entity>(Uuid::new_v4()).await?;
    ensure!(unknown.is_none(), "an unknown id finds nothing");
    tx.commit().await?;
    Ok(format!(
        "projects={projects:?} documents={docs} tasks={done:?} members={members}"
    ))
}

async fn count_in(su: &DatabaseConnection, table: &str, tenant: Uuid) -> anyhow::Result<i64> {
    scalar(
        su,
        &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
        [Value::from(tenant)],
    )
    .await
}

#[tokio::test]
async fn the_same_service_calls_give_the_same_results_in_both_modes() -> anyhow::Result<()> {
    let env = env().await?;
    let a_owner = user(&env.svc, "owner@shared.test", "Owner S").await?;
    let d_owner = user(&env.svc, "owner@dedicated.test", "Owner D").await?;
    let member = user(&env.svc, "member@both.test", "Member").await?;
    let (a, a_ctx) = tenant_with(&env.svc, "shared", a_owner, Isolation::Shared).await?;
    let (d, d_ctx) = tenant_with(&env.svc, "dedicated", d_owner, Isolation::Dedicated).await?;

    let shared = same_calls(&env.svc, &a_ctx, member).await?;
    let dedicated = same_calls(&env.svc, &d_ctx, member).await?;
    assert_eq!(shared, dedicated);

    // Underneath: the dedicated tenant's rows are in its schema, none in the shared tables.
    let schema = TenantSchema::for_tenant(d);
    for table in ["projects", "documents", "tasks"] {
        assert_eq!(count_in(&env.su, &format!("public.{table}"), a).await?, 1);
        assert_eq!(count_in(&env.su, &format!("public.{table}"), d).await?, 0);
        assert_eq!(count_in(&env.su, &format!("{schema}.{table}"), d).await?, 1);
    }
    // Seed 004's reference data, per tenant schema.
    assert_eq!(
        count_in(&env.su, &format!("{schema}.cloud_providers"), d).await?,
        6
    );
    assert_eq!(
        count_in(&env.su, &format!("{schema}.service_types"), d).await?,
        7
    );
    Ok(())
}

/// Runs `sql` in a transaction of `ctx` and returns its SQLSTATE (or "ok").
async fn outcome(svc: &Tenantry, ctx: &TenantContext, sql: &[&str]) -> anyhow::Result<String> {
    let tx = svc.begin(ctx).await?;
    for s in sql {
        if let Err(e) = tx.conn().execute_unprepared(s).await {
            return Ok(service::error::sqlstate(&e).unwrap_or_else(|| e.to_string()));
        }
    }
    Ok("ok".into())
}

async fn count_as(
    svc: &Tenantry,
    ctx: &TenantContext,
    pre: &[&str],
    q: &str,
) -> anyhow::Result<i64> {
    let tx = svc.begin(ctx).await?;
    for s in pre {
        tx.conn().execute_unprepared(s).await?;
    }
    scalar(tx.conn(), q, []).await
}

#[tokio::test]
async fn the_database_refuses_every_way_across_schemas() -> anyhow::Result<()> {
    let env = env().await?;
    let o1 = user(&env.svc, "o1@x.test", "O1").await?;
    let o2 = user(&env.svc, "o2@x.test", "O2").await?;
    let o3 = user(&env.svc, "o3@x.test", "O3").await?;
    let (d1, c1) = tenant_with(&env.svc, "dee-one", o1, Isolation::Dedicated).await?;
    let (d2, c2) = tenant_with(&env.svc, "dee-two", o2, Isolation::Dedicated).await?;
    let (_s, cs) = tenant_with(&env.svc, "shared-one", o3, Isolation::Shared).await?;
    project(&env.svc, &c1, "one's").await?;
    project(&env.svc, &c2, "two's").await?;
    let (s1, s2) = (TenantSchema::for_tenant(d1), TenantSchema::for_tenant(d2));

    // Outside a tenant-bound transaction the app login can use no tenant schema.
    let app = env
        .db
        .connect(tenantry_tests::logins::LoginRole::App, 1)
        .await?;
    let e = app
        .query_one_raw(stmt(&format!("SELECT count(*) FROM {s1}.projects"), []))
        .await
        .expect_err("the app login reads a tenant schema");
    assert_eq!(service::error::sqlstate(&e).as_deref(), Some("42501"));

    // Inside one tenant's transaction, another's schema is permission denied: by name, by
    // search_path, from a shared tenant, for reads and writes.
    let read2 = format!("SELECT count(*) FROM {s2}.projects");
    let write2 = format!("INSERT INTO {s2}.projects (id, name) VALUES (gen_random_uuid(), 'x')");
    let path2 = format!("SET LOCAL search_path = {s2}, public");
    for (ctx, sql) in [
        (&c1, vec![read2.as_str()]),
        (&c1, vec![write2.as_str()]),
        (&cs, vec![read2.as_str()]),
    ] {
        assert_eq!(outcome(&env.svc, ctx, &sql).await?, "42501", "{sql:?}");
    }

    // search_path naming another tenant's schema: PostgreSQL skips a schema without USAGE,
    // so the name falls through to public.projects, where RLS shows this tenant nothing.
    let n = count_as(&env.svc, &c1, &[&path2], "SELECT count(*) FROM projects").await?;
    assert_eq!(n, 0, "another tenant's schema answered through search_path");

    // SET ROLE to another tenant's role reaches its tables, but RLS (tenant_id = the current
    // tenant) shows nothing, and a write is refused (the schema's CHECK pin on tenant_id
    // answers first, 23514; RLS's WITH CHECK would refuse it too).
    let role2 = format!("SET LOCAL ROLE {s2}");
    assert_eq!(count_as(&env.svc, &c1, &[&role2], &read2).await?, 0);
    assert_eq!(outcome(&env.svc, &c1, &[&role2, &write2]).await?, "23514");
    let steal = format!("UPDATE {s2}.projects SET name = 'stolen'");
    let tx = env.svc.begin(&c1).await?;
    tx.conn().execute_unprepared(&role2).await?;
    assert_eq!(
        tx.conn().execute_unprepared(&steal).await?.rows_affected(),
        0
    );
    drop(tx);

    // Even with the context rewritten by raw SQL, a row of another tenant cannot be written
    // into a tenant's schema: the CHECK pins tenant_id.
    let forged = format!(
        "INSERT INTO {s1}.projects (tenant_id, id, name) VALUES ('{d2}', gen_random_uuid(), 'x')"
    );
    assert_eq!(
        outcome(&env.svc, &c1, &[&forged]).await?,
        "42501",
        "RLS refuses it"
    );
    let rewrite = format!("SET LOCAL tenantry.tenant_id = '{d2}'");
    assert_eq!(
        outcome(&env.svc, &c1, &[&rewrite, &forged]).await?,
        "23514",
        "the CHECK pin refuses it even when RLS was fooled"
    );

    // pg_temp is searched last: a temporary table never shadows the tenant's own table.
    let n = count_as(
        &env.svc,
        &c1,
        &["CREATE TEMP TABLE projects (id uuid) ON COMMIT DROP"],
        "SELECT count(*) FROM projects",
    )
    .await?;
    assert_eq!(n, 1, "the tenant's real projects table answered");

    // No views or functions of one's own: the tenant role may not create in its schema.
    let view = format!("CREATE VIEW {s1}.peek AS SELECT * FROM {s2}.projects");
    assert_eq!(outcome(&env.svc, &c1, &[&view]).await?, "42501");
    let own_view = format!("CREATE VIEW {s1}.peek AS SELECT 1");
    assert_eq!(outcome(&env.svc, &c1, &[&own_view]).await?, "42501");
    Ok(())
}

async fn leftovers(su: &DatabaseConnection) -> anyhow::Result<(i64, i64, i64)> {
    Ok((
        scalar(
            su,
            "SELECT count(*) FROM pg_namespace WHERE nspname ~ '^t_[0-9a-f]{32}$'",
            [],
        )
        .await?,
        scalar(
            su,
            "SELECT count(*) FROM tenancy.tenants WHERE isolation = 'dedicated'",
            [],
        )
        .await?,
        scalar(
            su,
            "SELECT count(*) FROM tenancy.tenant_schema_versions",
            [],
        )
        .await?,
    ))
}

#[tokio::test]
async fn provisioning_is_all_or_nothing_and_refuses_an_existing_schema() -> anyhow::Result<()> {
    let env = env().await?;
    let owner = user(&env.svc, "o@fail.test", "O").await?;

    // A tenant-schema step that fails after the role, the schema and the tables were made.
    env.su
        .execute_unprepared(
            "INSERT INTO tenancy.tenant_schema_steps VALUES ('zz_fail', 0, 'SELECT 1/0')",
        )
        .await?;
    let sa = env.svc.superadmin(grant("tenant.provision", None)).await?;
    let r = sa
        .provision_tenant_with(new_tenant("will-fail"), owner, Isolation::Dedicated)
        .await;
    ensure!(r.is_err(), "provisioning went on past a failing step");
    drop(sa);
    assert_eq!(leftovers(&env.su).await?, (0, 0, 0));
    env.su
        .execute_unprepared("DELETE FROM tenancy.tenant_schema_steps WHERE migration = 'zz_fail'")
        .await?;

    // A schema of that name already there: a clear conflict, nothing changed.
    let (d, _) = tenant_with(&env.svc, "taken", owner, Isolation::Dedicated).await?;
    let schema = TenantSchema::for_tenant(d);
    let sa = env.svc.superadmin(grant("tenant.provision", None)).await?;
    let again = sa
        .conn()
        .query_one_raw(stmt("SELECT tenancy.provision_dedicated($1)", [d.into()]))
        .await
        .expect_err("provisioned twice");
    assert_eq!(service::error::sqlstate(&again).as_deref(), Some("42P06"));
    drop(sa);
    // One version row per tenant-schema migration, all of the one schema.
    let versions = i64::try_from(tenant_schema_migrations().len())?;
    assert_eq!(leftovers(&env.su).await?, (1, 1, versions));
    ensure!(
        scalar(
            &env.su,
            &format!("SELECT count(*) FROM {schema}.cloud_providers"),
            []
        )
        .await?
            == 6
    );

    // The app and superadmin logins cannot create schemas or roles themselves, nor call the
    // provisioning function without a superadmin reason.
    let app = env
        .db
        .connect(tenantry_tests::logins::LoginRole::App, 1)
        .await?;
    for sql in [
        "CREATE SCHEMA t_ffffffffffffffffffffffffffffffff",
        "CREATE ROLE t_ffffffffffffffffffffffffffffffff",
    ] {
        let e = app.execute_unprepared(sql).await.expect_err(sql);
        assert_eq!(
            service::error::sqlstate(&e).as_deref(),
            Some("42501"),
            "{sql}"
        );
    }
    let e = app
        .query_one_raw(stmt("SELECT tenancy.provision_dedicated($1)", [d.into()]))
        .await
        .expect_err("the app provisions");
    assert_eq!(service::error::sqlstate(&e).as_deref(), Some("42501"));
    Ok(())
}

#[tokio::test]
async fn a_missing_schema_is_unavailable_and_offboarding_drops_the_schema() -> anyhow::Result<()> {
    let env = env().await?;
    let o1 = user(&env.svc, "o1@gone.test", "O1").await?;
    let o2 = user(&env.svc, "o2@gone.test", "O2").await?;
    let (gone, gone_ctx) = tenant_with(&env.svc, "gone", o1, Isolation::Dedicated).await?;
    let (d, d_ctx) = tenant_with(&env.svc, "leaving", o2, Isolation::Dedicated).await?;
    project(&env.svc, &d_ctx, "keep me").await?;

    env.su
        .execute_unprepared(&format!(
            "DROP SCHEMA {} CASCADE",
            TenantSchema::for_tenant(gone)
        ))
        .await?;
    match env.svc.begin(&gone_ctx).await {
        Err(ServiceError::Unavailable(m)) => ensure!(m.contains("schema"), "{m}"),
        Err(e) => anyhow::bail!("expected unavailable, got {e:?}"),
        Ok(_) => anyhow::bail!("a transaction opened on a missing schema"),
    }
    // The other dedicated tenant works on.
    ensure!(env.svc.begin(&d_ctx).await.is_ok());

    let sa = env
        .svc
        .superadmin(grant("tenant.offboard", Some(d)))
        .await?;
    let mut out = Vec::new();
    let refused = sa.offboard(d, &mut out).await;
    ensure!(
        matches!(&refused, Err(ServiceError::Conflict(m)) if m.contains("member")),
        "{refused:?}"
    );
    drop(sa);
    let sa = env
        .svc
        .superadmin(grant("tenant.offboard", Some(d)))
        .await?;
    let mut out = Vec::new();
    let report = sa.offboard_with(d, true, &mut out).await?;
    sa.commit().await?;
    let schema = TenantSchema::for_tenant(d);
    let export = String::from_utf8(out).context("utf-8 export")?;
    ensure!(export.contains(&format!("\"{schema}.projects\"")) && export.contains("keep me"));
    ensure!(
        report
            .purged
            .iter()
            .any(|(t, n)| t == &format!("{schema}.projects") && *n == 1)
    );
    let left = scalar(
        &env.su,
        "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
        [schema.as_str().into()],
    )
    .await?
        + scalar(
            &env.su,
            "SELECT count(*) FROM pg_roles WHERE rolname = $1",
            [schema.as_str().into()],
        )
        .await?;
    assert_eq!(left, 0, "schema and role dropped");
    ensure!(
        entity::tenants::Entity::find_by_id(d)
            .one(&env.su)
            .await?
            .is_none()
    );
    Ok(())
}

/// A connection of the owner login, which `migration verify` runs the catalog audit as.
async fn owner_login(env: &Env) -> anyhow::Result<DatabaseConnection> {
    Ok(env
        .db
        .connect(tenantry_tests::logins::LoginRole::Owner, 1)
        .await?)
}

/// The catalog audit covers every tenant schema, and each new check can fail.
#[tokio::test]
async fn the_catalog_audit_covers_tenant_schemas_and_its_checks_can_fail() -> anyhow::Result<()> {
    let env = env().await?;
    let o1 = user(&env.svc, "o1@audit.test", "O1").await?;
    let o2 = user(&env.svc, "o2@audit.test", "O2").await?;
    let (d1, _) = tenant_with(&env.svc, "audit-one", o1, Isolation::Dedicated).await?;
    let (d2, _) = tenant_with(&env.svc, "audit-two", o2, Isolation::Dedicated).await?;
    let (s1, s2) = (TenantSchema::for_tenant(d1), TenantSchema::for_tenant(d2));
    let owner = owner_login(&env).await?;
    let audit = || migration::dedicated::audit::audit_all(&owner, "tenantry_app");
    let report = audit().await?;
    ensure!(report.passed(), "a clean database fails:\n{report}");
    for check in [
        "tenant_schema_present",
        "tenant_table_grants",
        "tenant_role",
        "tenant_cross_schema",
    ] {
        ensure!(
            report.findings.iter().any(|f| f.check == check),
            "{check} never ran"
        );
    }

    // Each break makes exactly its check fail.
    let breaks: [(&str, String); 5] = [
        (
            "tenant_table_grants",
            format!("GRANT SELECT ON {s1}.projects TO PUBLIC"),
        ),
        (
            "tenant_table_grants",
            format!("GRANT SELECT ON {s1}.tasks TO tenantry_app"),
        ),
        (
            "tenant_schema_grants",
            format!("GRANT CREATE ON SCHEMA {s1} TO {s1}"),
        ),
        (
            "tenant_cross_schema",
            format!("CREATE VIEW {s1}.peek AS SELECT * FROM {s2}.projects"),
        ),
        ("tenant_schema_present", format!("DROP SCHEMA {s2} CASCADE")),
    ];
    for (check, sql) in breaks {
        env.su.execute_unprepared(&sql).await?;
        let report = audit().await?;
        let failed: Vec<_> = report.failures().map(|f| f.check.clone()).collect();
        ensure!(
            failed.iter().any(|c| c == check),
            "{sql}: {check} did not fail:\n{report}"
        );
    }
    Ok(())
}

/// The audit checks the schema entry itself, the procedure `tenancy.enter_tenant()` every
/// opening calls and the function `tenancy.enter_tenant_schema()` the release before called
/// (VOLATILE, SECURITY INVOKER, no SET options, the body m0020 wrote, no overload, the owner of
/// `tenancy`), and that no index of a tenant table or of `tenancy` is invalid. Each break fails
/// exactly its check, and undoing it makes the audit pass again.
#[tokio::test]
async fn the_audit_checks_the_schema_entry_and_invalid_indexes() -> anyhow::Result<()> {
    let env = env().await?;
    let o1 = user(&env.svc, "o1@entry-audit.test", "O1").await?;
    let o2 = user(&env.svc, "o2@entry-audit.test", "O2").await?;
    tenant_with(&env.svc, "entry-audit-one", o1, Isolation::Shared).await?;
    tenant_with(&env.svc, "entry-audit-two", o2, Isolation::Shared).await?;
    let owner = owner_login(&env).await?;
    let audit = || migration::dedicated::audit::audit_all(&owner, "tenantry_app");
    let report = audit().await?;
    ensure!(report.passed(), "a clean database fails:\n{report}");
    let entries: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.check == "schema_entry")
        .map(|f| (f.subject.as_str(), f.detail.as_str()))
        .collect();
    ensure!(
        entries.len() == 2
            && entries
                .iter()
                .all(|(_, d)| d.contains("m0020_entry_procedure"))
            && entries.iter().any(|(s, _)| *s == "tenancy.enter_tenant()"),
        "both entries compared with m0020's bodies: {entries:?}"
    );
    ensure!(
        report.findings.iter().any(|f| f.check == "indexes_valid"),
        "indexes_valid never ran"
    );

    let body = |from: &str, to: &str| {
        format!(
            "DO $do$ BEGIN EXECUTE pg_catalog.format('CREATE OR REPLACE PROCEDURE \
             tenancy.enter_tenant() LANGUAGE plpgsql AS %L', \
             pg_catalog.replace((SELECT prosrc FROM pg_catalog.pg_proc \
             WHERE oid = 'tenancy.enter_tenant()'::regprocedure), '{from}', '{to}')); END $do$"
        )
    };
    let f = "ALTER FUNCTION tenancy.enter_tenant_schema()";
    let p = "ALTER PROCEDURE tenancy.enter_tenant()";
    let tenancy_owner = {
        let row = env
            .su
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'tenancy'",
            ))
            .await?
            .context("no tenancy")?;
        row.try_get_by_index::<String>(0)?
    };
    // The function with another listed migration's body, as a migration that stopped halfway
    // outside a transaction leaves it.
    let written = |name: &str| -> anyhow::Result<String> {
        let (_, body) = migration::dedicated::entry_audit::ENTRY_BODIES
            .iter()
            .find(|(n, _)| *n == name)
            .context("no such writer")?;
        Ok(format!(
            "CREATE OR REPLACE FUNCTION tenancy.enter_tenant_schema() RETURNS void \
             LANGUAGE plpgsql AS $entry${}$entry$",
            body()
        ))
    };
    // (the checks that fail, break, undo); a build that fails on duplicates leaves its
    // index invalid. A definer without a pinned search_path fails that check as well.
    let breaks: [(&[&str], String, String); 15] = [
        (
            &["schema_entry"],
            format!("{f} STABLE"),
            format!("{f} VOLATILE"),
        ),
        (
            &["definer_search_path", "schema_entry"],
            format!("{p} SECURITY DEFINER"),
            format!("{p} SECURITY INVOKER"),
        ),
        (
            &["definer_search_path", "schema_entry"],
            format!("{f} SECURITY DEFINER"),
            format!("{f} SECURITY INVOKER"),
        ),
        (
            &["schema_entry"],
            format!("{p} SET work_mem = '4MB'"),
            format!("{p} RESET ALL"),
        ),
        (
            &["schema_entry"],
            body(
                "pg_advisory_xact_lock_shared(",
                "pg_try_advisory_xact_lock_shared(",
            ),
            body(
                "pg_try_advisory_xact_lock_shared(",
                "pg_advisory_xact_lock_shared(",
            ),
        ),
        (
            &["schema_entry"],
            written("m0016_entry_unchanged_resets")?,
            written("m0020_entry_procedure")?,
        ),
        (
            &["schema_entry"],
            "CREATE PROCEDURE tenancy.enter_tenant(x int DEFAULT 0) LANGUAGE sql AS ''".into(),
            "DROP PROCEDURE tenancy.enter_tenant(int)".into(),
        ),
        (
            &["schema_entry"],
            "CREATE FUNCTION tenancy.enter_tenant_schema(x int DEFAULT 0) RETURNS void \
             LANGUAGE sql AS ''"
                .into(),
            "DROP FUNCTION tenancy.enter_tenant_schema(int)".into(),
        ),
        (
            &["schema_entry"],
            format!("{p} OWNER TO tenantry_definer"),
            format!("{p} OWNER TO {tenancy_owner}"),
        ),
        (
            &["schema_entry"],
            format!("{f} OWNER TO tenantry_definer"),
            format!("{f} OWNER TO {tenancy_owner}"),
        ),
        (
            &["schema_entry"],
            format!("{f} SUPPORT pg_catalog.textlike_support"),
            written("m0020_entry_procedure")?,
        ),
        (
            &["schema_entry"],
            "GRANT EXECUTE ON PROCEDURE tenancy.enter_tenant() TO PUBLIC".into(),
            "REVOKE EXECUTE ON PROCEDURE tenancy.enter_tenant() FROM PUBLIC".into(),
        ),
        (
            &["schema_entry"],
            "GRANT EXECUTE ON PROCEDURE tenancy.enter_tenant() TO tenantry_app WITH GRANT OPTION"
                .into(),
            "REVOKE GRANT OPTION FOR EXECUTE ON PROCEDURE tenancy.enter_tenant() \
             FROM tenantry_app CASCADE"
                .into(),
        ),
        (
            &["schema_entry"],
            "GRANT EXECUTE ON FUNCTION tenancy.enter_tenant_schema() TO tenantry_superadmin".into(),
            "REVOKE EXECUTE ON FUNCTION tenancy.enter_tenant_schema() FROM tenantry_superadmin"
                .into(),
        ),
        (
            &["indexes_valid"],
            "CREATE UNIQUE INDEX CONCURRENTLY entry_audit_dup ON tenancy.tenants (isolation)"
                .into(),
            "DROP INDEX tenancy.entry_audit_dup".into(),
        ),
    ];
    for (checks, sql, undo) in breaks {
        if let Err(e) = env.su.execute_unprepared(&sql).await {
            // Only the interrupted build is meant to fail (and leave its index behind).
            ensure!(checks == ["indexes_valid"], "{sql}: {e}");
        }
        let report = audit().await?;
        if sql.contains("$entry$") {
            ensure!(
                report.failures().any(|f| f
                    .detail
                    .contains("the one m0016_entry_unchanged_resets wrote, not the one m0020")),
                "a half-run migration is not named:\n{report}"
            );
        }
        if sql.contains("TO PUBLIC") {
            ensure!(
                report.failures().any(|f| f
                    .detail
                    .contains("EXECUTE is granted beyond tenantry_app: PUBLIC")),
                "an extra grantee is not named:\n{report}"
            );
        }
        let mut failed: Vec<_> = report.failures().map(|f| f.check.as_str()).collect();
        failed.sort_unstable();
        ensure!(
            failed == checks,
            "{sql}: expected only {checks:?} to fail, got {failed:?}:\n{report}"
        );
        env.su.execute_unprepared(&undo).await?;
        let report = audit().await?;
        ensure!(report.passed(), "{undo} left a failure:\n{report}");
    }
    Ok(())
}

/// Waits until the session running a statement that names `audit_busy_idx` waits on a lock.
async fn until_the_index_statement_waits(su: &DatabaseConnection) -> anyhow::Result<()> {
    loop {
        let row = su
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock' \
                 AND query LIKE '%audit\\_busy\\_idx%')",
            ))
            .await?
            .context("no row")?;
        if row.try_get_by_index::<bool>(0)? {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
}

/// An index another session is building or dropping concurrently right now is reported, not
/// failed; the same index left behind by a cancelled build fails `indexes_valid`.
#[tokio::test]
async fn the_audit_tells_an_index_built_right_now_from_a_leftover() -> anyhow::Result<()> {
    let env = env().await?;
    let owner = owner_login(&env).await?;
    let audit = || migration::dedicated::audit::audit_all(&owner, "tenantry_app");
    let detail = |report: &migration::audit::Report| {
        report
            .findings
            .iter()
            .find(|f| f.check == "indexes_valid")
            .map(|f| f.detail.clone())
            .unwrap_or_default()
    };
    // A transaction with a snapshot and a lock on tenancy.tenants: a concurrent build waits
    // for its snapshot before it marks its index valid, a concurrent drop for its lock after
    // it marked the index invalid.
    let holder_login = env.db.connect_superuser().await?;
    let holder = sea_orm::TransactionTrait::begin_with_config(
        &holder_login,
        Some(sea_orm::IsolationLevel::RepeatableRead),
        None,
    )
    .await?;
    holder
        .execute_unprepared("SELECT count(*) FROM tenancy.tenants")
        .await?;
    // Run as the owner, as a migration runs: the progress view shows a build to its own role.
    let build = {
        let db = owner_login(&env).await?;
        tokio::spawn(async move {
            db.execute_unprepared(
                "CREATE INDEX CONCURRENTLY audit_busy_idx ON tenancy.tenants (slug)",
            )
            .await
        })
    };
    until_the_index_statement_waits(&env.su).await?;
    let report = audit().await?;
    ensure!(report.passed(), "a build in progress fails:\n{report}");
    ensure!(
        detail(&report).contains("tenancy.audit_busy_idx: being built"),
        "{}",
        detail(&report)
    );

    // Break: the same index, its build cancelled, is a leftover.
    env.su
        .execute_unprepared(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_progress_create_index \
             WHERE relid = 'tenancy.tenants'::regclass",
        )
        .await?;
    ensure!(build.await?.is_err(), "the build was not cancelled");
    let report = audit().await?;
    let failed: Vec<_> = report.failures().map(|f| f.check.as_str()).collect();
    ensure!(failed == ["indexes_valid"], "{failed:?}:\n{report}");
    ensure!(
        detail(&report).contains("tenancy.audit_busy_idx: invalid, left by"),
        "{}",
        detail(&report)
    );

    // Dropping it concurrently waits for the holder's lock: in progress again, not failed.
    let drop = {
        let db = owner_login(&env).await?;
        tokio::spawn(async move {
            db.execute_unprepared("DROP INDEX CONCURRENTLY tenancy.audit_busy_idx")
                .await
        })
    };
    until_the_index_statement_waits(&env.su).await?;
    let report = audit().await?;
    ensure!(report.passed(), "a drop in progress fails:\n{report}");
    ensure!(
        detail(&report).contains("audit_busy_idx: being built, reindexed or dropped"),
        "{}",
        detail(&report)
    );
    holder.commit().await?;
    drop.await??;
    let report = audit().await?;
    ensure!(
        report.passed() && !detail(&report).contains("audit_busy_idx"),
        "{report}"
    );
    Ok(())
}

/// A failed opening (a missing schema) leaves the pooled connection clean: on a pool of ONE
/// connection, the next tenant's transaction works.
#[tokio::test]
async fn a_failed_opening_leaves_the_connection_clean() -> anyhow::Result<()> {
    let env = env_with(|c| c.with_pool(1)).await?;
    let o1 = user(&env.svc, "o1@clean.test", "O1").await?;
    let o2 = user(&env.svc, "o2@clean.test", "O2").await?;
    let (gone, gone_ctx) = tenant_with(&env.svc, "clean-gone", o1, Isolation::Dedicated).await?;
    let (_, ok_ctx) = tenant_with(&env.svc, "clean-ok", o2, Isolation::Shared).await?;
    project(&env.svc, &ok_ctx, "still here").await?;
    env.su
        .execute_unprepared(&format!(
            "DROP SCHEMA {} CASCADE",
            TenantSchema::for_tenant(gone)
        ))
        .await?;
    for _ in 0..3 {
        ensure!(matches!(
            env.svc.begin(&gone_ctx).await,
            Err(ServiceError::Unavailable(_))
        ));
        let tx = env.svc.begin(&ok_ctx).await?;
        ensure!(tx.count::<projects::Entity>(service::tx::all()).await? == 1);
        tx.commit().await?;
    }
    Ok(())
}

/// The release before m0020 opened its transactions with `SELECT tenancy.enter_tenant_schema()`;
/// that function, now one `CALL` of the procedure, still enters each tenant where it lives
/// during a rolling deploy: a dedicated tenant's schema and role, a shared tenant's rows only.
#[tokio::test]
async fn the_release_befores_entry_function_still_enters_both_modes() -> anyhow::Result<()> {
    let env = env().await?;
    let o1 = user(&env.svc, "o1@wrapper.test", "O1").await?;
    let o2 = user(&env.svc, "o2@wrapper.test", "O2").await?;
    let (s, s_ctx) = tenant_with(&env.svc, "wrapper-shared", o1, Isolation::Shared).await?;
    let (d, d_ctx) = tenant_with(&env.svc, "wrapper-dedicated", o2, Isolation::Dedicated).await?;
    project(&env.svc, &s_ctx, "shared one").await?;
    project(&env.svc, &d_ctx, "dedicated one").await?;
    project(&env.svc, &d_ctx, "dedicated two").await?;
    let app = env
        .db
        .connect(tenantry_tests::logins::LoginRole::App, 1)
        .await?;
    for (tenant, schema, projects) in [
        (s, "public".to_owned(), 1),
        (d, TenantSchema::for_tenant(d).to_string(), 2),
    ] {
        let tx = sea_orm::TransactionTrait::begin(&app).await?;
        tx.execute_unprepared(&format!("SET LOCAL tenantry.tenant_id = '{tenant}'"))
            .await?;
        tx.execute_unprepared("SELECT tenancy.enter_tenant_schema()")
            .await?;
        let row = tx
            .query_one_raw(stmt(
                "SELECT current_schema()::text, \
                 (SELECT count(*) FROM projects), \
                 (SELECT count(*) FROM projects WHERE tenant_id <> $1)",
                [Value::from(tenant)],
            ))
            .await?
            .context("no row")?;
        let seen: (String, i64, i64) = (
            row.try_get_by_index(0)?,
            row.try_get_by_index(1)?,
            row.try_get_by_index(2)?,
        );
        ensure!(
            seen == (schema.clone(), projects, 0),
            "{tenant}: entered {seen:?}, expected ({schema}, {projects}, 0)"
        );
        tx.rollback().await?;
    }
    Ok(())
}
