//! Isolation smoke test through the application login on a migrated database holding two
//! tenants: without a tenant context it reads nothing; with `SET LOCAL tenantry.tenant_id` it
//! reads exactly its tenant's rows, and the context ends with the transaction even on the same
//! pooled connection; it cannot write another tenant's rows, TRUNCATE, or become the owner or
//! the superadmin.

mod common;

use common::{scalar_i64, strings};
use migration::audit;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, RuntimeErr, TransactionTrait};
use tenantry_tests::logins::LoginRole;

const A: &str = "a0000000-0000-0000-0000-00000000000a";
const B: &str = "b0000000-0000-0000-0000-00000000000b";
const PROJECT_A: &str = "20000000-0000-0000-0000-00000000000a";
const PROJECT_B: &str = "20000000-0000-0000-0000-00000000000b";

/// Two tenants with a row in every tenant table, inserted by the superuser.
const SEED: &str = "
INSERT INTO tenancy.tenants (id, name, slug) VALUES
  ('a0000000-0000-0000-0000-00000000000a', 'Alpha', 'alpha'),
  ('b0000000-0000-0000-0000-00000000000b', 'Beta', 'beta');
INSERT INTO tenancy.users (id, email) VALUES
  ('10000000-0000-0000-0000-00000000000a', 'a@alpha.test'),
  ('10000000-0000-0000-0000-00000000000b', 'b@beta.test');
INSERT INTO tenancy.tenant_users (tenant_id, user_id, role) VALUES
  ('a0000000-0000-0000-0000-00000000000a', '10000000-0000-0000-0000-00000000000a', 'owner'),
  ('b0000000-0000-0000-0000-00000000000b', '10000000-0000-0000-0000-00000000000b', 'owner');
INSERT INTO tenancy.api_keys (tenant_id, id, name, prefix, secret_hash) VALUES
  ('a0000000-0000-0000-0000-00000000000a', '50000000-0000-0000-0000-00000000000a', 'key', 'alphakey', decode(repeat('aa', 32), 'hex')),
  ('b0000000-0000-0000-0000-00000000000b', '50000000-0000-0000-0000-00000000000b', 'key', 'betakey0', decode(repeat('bb', 32), 'hex'));
INSERT INTO tenancy.usage_events (tenant_id, api_key_id, kind) VALUES
  ('a0000000-0000-0000-0000-00000000000a', '50000000-0000-0000-0000-00000000000a', 'call'),
  ('b0000000-0000-0000-0000-00000000000b', '50000000-0000-0000-0000-00000000000b', 'call');
INSERT INTO tenancy.audit_logs (tenant_id, action) VALUES
  ('a0000000-0000-0000-0000-00000000000a', 'created'),
  ('b0000000-0000-0000-0000-00000000000b', 'created');
INSERT INTO public.projects (id, tenant_id, name) VALUES
  ('20000000-0000-0000-0000-00000000000a', 'a0000000-0000-0000-0000-00000000000a', 'alpha project'),
  ('20000000-0000-0000-0000-00000000000b', 'b0000000-0000-0000-0000-00000000000b', 'beta project');
INSERT INTO public.documents (tenant_id, project_id, title) VALUES
  ('a0000000-0000-0000-0000-00000000000a', '20000000-0000-0000-0000-00000000000a', 'alpha doc'),
  ('b0000000-0000-0000-0000-00000000000b', '20000000-0000-0000-0000-00000000000b', 'beta doc');
INSERT INTO public.tasks (tenant_id, project_id, title) VALUES
  ('a0000000-0000-0000-0000-00000000000a', '20000000-0000-0000-0000-00000000000a', 'alpha task'),
  ('b0000000-0000-0000-0000-00000000000b', '20000000-0000-0000-0000-00000000000b', 'beta task');
";

/// The SQLSTATE of a database error.
fn sqlstate(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match &**e {
                sea_orm::sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Runs `sql`, expecting it to fail with SQLSTATE `code` and a message containing `text`.
async fn expect_refused<C: ConnectionTrait>(conn: &C, sql: &str, code: &str, text: &str) {
    match conn.execute_unprepared(sql).await {
        Ok(done) => panic!(
            "`{sql}` succeeded ({} rows) but must be refused",
            done.rows_affected()
        ),
        Err(err) => {
            assert_eq!(
                sqlstate(&err).as_deref(),
                Some(code),
                "`{sql}` failed with the wrong SQLSTATE: {err}"
            );
            assert!(
                err.to_string().contains(text),
                "`{sql}`: error lacks {text:?}: {err}"
            );
        }
    }
}

async fn backend_pid(conn: &DatabaseConnection) -> Result<i64, DbErr> {
    scalar_i64(conn, "SELECT pg_backend_pid()::bigint").await
}

#[tokio::test]
async fn app_login_sees_only_its_tenant_and_cannot_escape() -> anyhow::Result<()> {
    let db = common::migrated_db().await?;
    let su = db.connect_superuser().await?;
    su.execute_unprepared(SEED).await?;

    let tables: Vec<String> = audit::tenant_tables(&su)
        .await?
        .into_iter()
        .map(|(schema, table)| format!("{schema}.{table}"))
        .collect();
    const SEEDED: [&str; 7] = [
        "public.projects",
        "public.documents",
        "public.tasks",
        "tenancy.tenant_users",
        "tenancy.api_keys",
        "tenancy.usage_events",
        "tenancy.audit_logs",
    ];
    for expected in SEEDED {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} not discovered: {tables:?}"
        );
    }
    // What each tenant owns, as the superuser (who bypasses row level security) sees it. Tenant
    // tables added by later migrations are checked too, just without seed rows.
    let mut owned_by_a = Vec::new();
    for table in &tables {
        for tenant in [A, B] {
            let n = scalar_i64(
                &su,
                &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{tenant}'"),
            )
            .await?;
            if SEEDED.contains(&table.as_str()) {
                assert!(n > 0, "{table}: the seed gave tenant {tenant} no row");
            }
            if tenant == A {
                owned_by_a.push(n);
            }
        }
    }
    su.close().await?;

    let app = db.connect(LoginRole::App, 1).await?;
    let pid = backend_pid(&app).await?;

    // No tenant context: nothing at all, global tables included.
    let global = ["tenancy.tenants".to_owned(), "tenancy.users".to_owned()];
    for table in tables.iter().chain(&global) {
        let n = scalar_i64(&app, &format!("SELECT count(*) FROM {table}")).await?;
        assert_eq!(n, 0, "{table}: {n} rows visible without a tenant context");
    }

    // Tenant A's context: exactly A's rows.
    let txn = app.begin().await?;
    txn.execute_unprepared(&format!("SET LOCAL tenantry.tenant_id = '{A}'"))
        .await?;
    assert_eq!(
        strings(&txn, "SELECT name FROM public.projects ORDER BY name").await?,
        vec!["alpha project".to_owned()]
    );
    for (table, expected) in tables.iter().zip(&owned_by_a) {
        let n = scalar_i64(&txn, &format!("SELECT count(*) FROM {table}")).await?;
        assert_eq!(
            n, *expected,
            "{table}: tenant A sees {n} rows, owns {expected}"
        );
        let foreign = scalar_i64(
            &txn,
            &format!("SELECT count(*) FROM {table} WHERE tenant_id <> '{A}'"),
        )
        .await?;
        assert_eq!(foreign, 0, "{table}: tenant A sees other tenants' rows");
    }
    assert_eq!(
        strings(&txn, "SELECT id::text FROM tenancy.tenants").await?,
        vec![A.to_owned()]
    );
    assert_eq!(
        strings(&txn, "SELECT email::text FROM tenancy.users").await?,
        vec!["a@alpha.test".to_owned()],
        "tenant A sees exactly its members"
    );
    txn.commit().await?;

    // The context ended with the transaction, on the same pooled connection.
    assert_eq!(
        backend_pid(&app).await?,
        pid,
        "the pool switched connections"
    );
    let txn = app.begin().await?;
    for table in tables.iter().chain(&global) {
        let n = scalar_i64(&txn, &format!("SELECT count(*) FROM {table}")).await?;
        assert_eq!(n, 0, "{table}: tenant A's context outlived its transaction");
    }
    txn.commit().await?;

    // Writing another tenant's rows is refused by the policies' WITH CHECK.
    let txn = app.begin().await?;
    txn.execute_unprepared(&format!("SET LOCAL tenantry.tenant_id = '{A}'"))
        .await?;
    expect_refused(
        &txn,
        &format!("INSERT INTO public.projects (tenant_id, name) VALUES ('{B}', 'planted')"),
        "42501",
        "row-level security",
    )
    .await;
    txn.rollback().await?;
    let txn = app.begin().await?;
    txn.execute_unprepared(&format!("SET LOCAL tenantry.tenant_id = '{A}'"))
        .await?;
    expect_refused(
        &txn,
        &format!("UPDATE public.projects SET tenant_id = '{B}' WHERE id = '{PROJECT_A}'"),
        "42501",
        "row-level security",
    )
    .await;
    txn.rollback().await?;
    // ... and B's rows are invisible to A's writes.
    let txn = app.begin().await?;
    txn.execute_unprepared(&format!("SET LOCAL tenantry.tenant_id = '{A}'"))
        .await?;
    let hit = txn
        .execute_unprepared(&format!(
            "DELETE FROM public.projects WHERE id = '{PROJECT_B}'"
        ))
        .await?;
    assert_eq!(
        hit.rows_affected(),
        0,
        "tenant A deleted tenant B's project"
    );
    txn.rollback().await?;

    // No way around the policies.
    expect_refused(
        &app,
        "TRUNCATE public.projects",
        "42501",
        "permission denied",
    )
    .await;
    for role in ["tenantry_owner", "tenantry_superadmin", "tenantry_definer"] {
        expect_refused(
            &app,
            &format!("SET ROLE {role}"),
            "42501",
            "permission denied to set role",
        )
        .await;
    }
    expect_refused(
        &app,
        "SELECT count(*) FROM tenancy.superadmin_audit_logs",
        "42501",
        "permission denied",
    )
    .await;
    assert_eq!(
        strings(&app, "SELECT current_user::text").await?,
        vec![LoginRole::App.login().to_owned()]
    );
    app.close().await?;

    let su = db.connect_superuser().await?;
    assert_eq!(
        scalar_i64(&su, "SELECT count(*) FROM public.projects").await?,
        2,
        "the app changed projects"
    );
    su.close().await?;
    Ok(())
}
