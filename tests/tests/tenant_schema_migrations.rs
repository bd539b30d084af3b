//! `up` over many tenant schemas: each schema in one transaction, a failure in one reported
//! with its schema and error while the others go on (and it stays exactly as it was), a rerun
//! resuming, versions summarised from one query, and new tenants provisioned with the new
//! migration too.

mod service_support;

use anyhow::ensure;
use migration::dedicated::migrate;
use migration::dedicated::{TenantSchema, TenantSchemaMigration, tenant_schema_migrations};
use migration::plan::MigrationPlan;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, ColumnDef, Index, Table};
use service::NewTenant;
use service::tenants::Isolation;
use service_support::*;

/// A new tenant-schema migration: a column and an index on `projects`.
fn ts9000_notes(schema: &str) -> MigrationPlan {
    let projects = migration::tables::t(schema, Alias::new("projects"));
    let mut plan = MigrationPlan::new();
    let add = Table::alter()
        .table(projects.clone())
        .add_column(ColumnDef::new(Alias::new("notes")).text().null())
        .to_owned();
    let drop = Table::alter()
        .table(projects.clone())
        .drop_column(Alias::new("notes"))
        .to_owned();
    plan.step("projects.notes", &add, &drop);
    let idx = Index::create()
        .name("projects_notes_idx")
        .table(projects.clone())
        .col(Alias::new("tenant_id"))
        .col(Alias::new("notes"))
        .to_owned();
    let drop_idx = Index::drop()
        .name("projects_notes_idx")
        .table(projects)
        .to_owned();
    plan.step("index projects(tenant_id, notes)", &idx, &drop_idx);
    plan
}

fn with_notes() -> Vec<TenantSchemaMigration> {
    let mut all = tenant_schema_migrations();
    all.push(TenantSchemaMigration {
        name: "ts9000_notes",
        plan: ts9000_notes,
    });
    all
}

async fn dedicated(env: &Env, slug: &str) -> anyhow::Result<TenantSchema> {
    let owner = user(&env.svc, &format!("o@{slug}.test"), "O").await?;
    let sa = env.svc.superadmin(grant("tenant.provision", None)).await?;
    let (t, _) = sa
        .provision_tenant_with(
            NewTenant {
                name: slug.into(),
                slug: slug.into(),
                plan: "pro".into(),
                region: "eu".into(),
                admin_email: None,
            },
            owner,
            Isolation::Dedicated,
        )
        .await?;
    sa.commit().await?;
    Ok(TenantSchema::for_tenant(t.id))
}

async fn has_index(env: &Env, schema: &TenantSchema) -> anyhow::Result<bool> {
    Ok(scalar(
        &env.su,
        "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'projects_notes_idx'",
        [schema.as_str().into()],
    )
    .await?
        == 1)
}

#[tokio::test]
async fn up_migrates_every_schema_reports_failures_and_resumes() -> anyhow::Result<()> {
    let env = env().await?;
    let schemas = [
        dedicated(&env, "ts-one").await?,
        dedicated(&env, "ts-two").await?,
        dedicated(&env, "ts-three").await?,
    ];
    let owner = env
        .db
        .connect(tenantry_tests::logins::LoginRole::Owner, 2)
        .await?;
    let before = migrate::summary(&migrate::applied(&owner).await?);
    assert_eq!(before, "3 at ts0001_tables");

    // The third schema already has a `notes` column: the migration fails there.
    let broken = &schemas[2];
    env.su
        .execute_unprepared(&format!(
            "ALTER TABLE {broken}.projects ADD COLUMN notes int"
        ))
        .await?;
    let report = migrate::up(&owner, &with_notes(), 2).await?;
    assert_eq!((report.migrated, report.current), (2, 0));
    assert_eq!(report.failed.len(), 1);
    ensure!(
        report.failed[0].schema == broken.as_str() && report.failed[0].migration == "ts9000_notes"
    );
    ensure!(
        report.failed[0].error.contains("notes"),
        "{:?}",
        report.failed
    );
    ensure!(has_index(&env, &schemas[0]).await? && has_index(&env, &schemas[1]).await?);
    ensure!(
        !has_index(&env, broken).await?,
        "the failed schema was half-migrated"
    );
    let after = migrate::summary(&migrate::applied(&owner).await?);
    assert_eq!(
        after,
        format!("2 at ts9000_notes; 1 at ts0001_tables: {broken}")
    );
    let pending = migrate::pending(&with_notes(), &migrate::applied(&owner).await?);
    assert_eq!(pending, vec![("ts9000_notes", vec![broken.clone()])]);

    // Fixed, a rerun resumes with that schema only; then nothing is left to do.
    env.su
        .execute_unprepared(&format!("ALTER TABLE {broken}.projects DROP COLUMN notes"))
        .await?;
    let report = migrate::up(&owner, &with_notes(), 2).await?;
    assert_eq!(
        (report.migrated, report.current, report.failed.len()),
        (1, 2, 0)
    );
    let report = migrate::up(&owner, &with_notes(), 2).await?;
    assert_eq!(
        (report.migrated, report.current, report.failed.len()),
        (0, 3, 0)
    );

    // A tenant provisioned now gets the new migration from its stored template.
    let late = dedicated(&env, "ts-late").await?;
    ensure!(has_index(&env, &late).await?);
    assert_eq!(
        migrate::summary(&migrate::applied(&owner).await?),
        "4 at ts9000_notes"
    );
    Ok(())
}
