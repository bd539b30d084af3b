//! The unchanged single-tenant application after every migration, as a login in
//! `tenantry_legacy`: it writes and reads without ever naming `tenant_id`, its rows land in the
//! default tenant whatever `tenantry.tenant_id` it sends, it never sees another tenant's rows,
//! and its key lookups by `id` stay indexed (a plan that scans would be 249× slower at 1M rows).

mod common;

use common::{DEFAULT_TENANT, migrated_db, scalar_i64, strings};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tenantry_tests::logins::LoginRole;

const B: &str = "b0000000-0000-0000-0000-00000000000b";
const PROJECT_B: &str = "20000000-0000-0000-0000-00000000000b";
const LEGACY_PROJECT: &str = "20000000-0000-0000-0000-000000000001";

/// Tenant B with one project (as the superuser), and 3000 projects, documents and tasks of the
/// default tenant so the planner prefers an index over a scan when one fits.
const SEED: &str = "
INSERT INTO tenancy.tenants (id, name, slug) VALUES ('b0000000-0000-0000-0000-00000000000b', 'Beta', 'beta');
INSERT INTO public.projects (id, tenant_id, name) VALUES
  ('20000000-0000-0000-0000-00000000000b', 'b0000000-0000-0000-0000-00000000000b', 'beta project');
INSERT INTO public.projects (tenant_id, name)
  SELECT '00000000-0000-0000-0000-000000000000', 'legacy ' || g FROM generate_series(1, 3000) g;
INSERT INTO public.documents (tenant_id, project_id, title)
  SELECT '00000000-0000-0000-0000-000000000000', p.id, 'doc ' || g
  FROM generate_series(1, 3000) g, (SELECT id FROM public.projects WHERE name = 'legacy 1') p;
INSERT INTO public.tasks (tenant_id, project_id, title)
  SELECT '00000000-0000-0000-0000-000000000000', p.id, 'task ' || g
  FROM generate_series(1, 3000) g, (SELECT id FROM public.projects WHERE name = 'legacy 1') p;
ANALYZE public.projects; ANALYZE public.documents; ANALYZE public.tasks;
";

async fn seeded() -> anyhow::Result<(tenantry_tests::TestDb, DatabaseConnection)> {
    let db = migrated_db().await?;
    let su = db.connect_superuser().await?;
    su.execute_unprepared(SEED).await?;
    su.close().await?;
    let legacy = db.connect(LoginRole::Legacy, 1).await?;
    Ok((db, legacy))
}

/// What the legacy application sends, none of it naming a tenant, with `setting` (if any)
/// set the way an attacker would: session-level, surviving every transaction.
async fn legacy_workload(legacy: &DatabaseConnection, setting: Option<&str>) -> anyhow::Result<()> {
    if let Some(s) = setting {
        legacy
            .execute_unprepared(&format!("SET tenantry.tenant_id = '{s}'"))
            .await?;
    }
    legacy
        .execute_unprepared(&format!(
            "INSERT INTO public.projects (id, name) VALUES ('{LEGACY_PROJECT}', 'legacy');
             INSERT INTO public.documents (project_id, title) VALUES ('{LEGACY_PROJECT}', 'doc');
             INSERT INTO public.tasks (project_id, title) VALUES ('{LEGACY_PROJECT}', 'task');
             UPDATE public.projects SET name = 'renamed' WHERE id = '{LEGACY_PROJECT}';
             UPDATE public.tasks SET status = 'done' WHERE project_id = '{LEGACY_PROJECT}';"
        ))
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_legacy_application_writes_the_default_tenant_whatever_it_sends() -> anyhow::Result<()>
{
    for setting in [None, Some(B), Some("")] {
        let (db, legacy) = seeded().await?;
        legacy_workload(&legacy, setting).await?;
        let su = db.connect_superuser().await?;
        for table in ["public.projects", "public.documents", "public.tasks"] {
            let tenants = strings(
                &su,
                &format!(
                    "SELECT DISTINCT tenant_id::text FROM {table} WHERE \
                     {} = '{LEGACY_PROJECT}'",
                    if table == "public.projects" {
                        "id"
                    } else {
                        "project_id"
                    }
                ),
            )
            .await?;
            assert_eq!(tenants, [DEFAULT_TENANT], "{table} with {setting:?}");
        }
        assert_eq!(
            scalar_i64(&su, &format!("SELECT count(*) FROM public.projects WHERE id = '{LEGACY_PROJECT}' AND name = 'renamed'")).await?,
            1
        );
        // It sees the default tenant's projects (3000 + its own) and not B's, even asking by key.
        assert_eq!(
            scalar_i64(&legacy, "SELECT count(*) FROM public.projects").await?,
            3001
        );
        assert_eq!(
            scalar_i64(
                &legacy,
                &format!("SELECT count(*) FROM public.projects WHERE id = '{PROJECT_B}'")
            )
            .await?,
            0
        );
        let hit = legacy
            .execute_unprepared(&format!(
                "UPDATE public.projects SET name = 'x' WHERE id = '{PROJECT_B}'"
            ))
            .await?;
        assert_eq!(hit.rows_affected(), 0);
        // Naming B's tenant is refused by row level security.
        let err = legacy
            .execute_unprepared(&format!(
                "INSERT INTO public.projects (tenant_id, name) VALUES ('{B}', 'into b')"
            ))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("row-level security"), "{err}");
        // Global tables are not its business, and it cannot become the app or the owner.
        for sql in [
            "SELECT count(*) FROM tenancy.users",
            "SELECT count(*) FROM tenancy.tenants",
            "SET ROLE tenantry_app",
            "SET ROLE tenantry_owner",
        ] {
            let err = legacy
                .execute_unprepared(sql)
                .await
                .err()
                .map(|e| e.to_string());
            assert!(
                err.is_some_and(|e| e.contains("permission denied")),
                "{sql} was allowed"
            );
        }
        su.close().await?;
        legacy.close().await?;
        assert_eq!(
            scalar_i64(&db.connect_superuser().await?, &format!("SELECT count(*) FROM public.projects WHERE id = '{PROJECT_B}' AND name = 'beta project'")).await?,
            1
        );
    }
    Ok(())
}

/// The plan of `sql` (run by `conn`, inside a transaction that is rolled back).
async fn plan(conn: &DatabaseConnection, sql: &str) -> anyhow::Result<String> {
    let txn = conn.begin().await?;
    let lines = strings(&txn, &format!("EXPLAIN {sql}")).await?;
    txn.rollback().await?;
    Ok(lines.join(" / "))
}

#[tokio::test]
async fn legacy_updates_and_deletes_by_id_stay_indexed() -> anyhow::Result<()> {
    let (db, legacy) = seeded().await?;
    // A writer that RLS does not filter (a superuser's script, the bench's legacy writer) filters
    // by id alone: only the legacy key index serves it.
    let su = db.connect_superuser().await?;
    for table in ["public.projects", "public.documents", "public.tasks"] {
        let name = table.trim_start_matches("public.");
        for sql in [
            format!("UPDATE {table} SET updated_at = now() WHERE id = '{LEGACY_PROJECT}'"),
            format!("DELETE FROM {table} WHERE id = '{LEGACY_PROJECT}'"),
        ] {
            let p = plan(&su, &sql).await?;
            assert!(p.contains(&format!("{name}_legacy_key_idx")), "{sql}: {p}");
            // The legacy login's own statements add its pinned tenant: an index condition too.
            let p = plan(&legacy, &sql).await?;
            assert!(
                p.contains("Index Cond") && !p.contains("Seq Scan"),
                "{sql} as legacy: {p}"
            );
        }
    }
    // The test can fail: without the index, the same UPDATE scans the table.
    su.execute_unprepared("DROP INDEX public.projects_legacy_key_idx")
        .await?;
    let p = plan(
        &su,
        &format!("UPDATE public.projects SET name = 'x' WHERE id = '{LEGACY_PROJECT}'"),
    )
    .await?;
    assert!(p.contains("Seq Scan"), "{p}");
    su.close().await?;
    legacy.close().await?;
    Ok(())
}
