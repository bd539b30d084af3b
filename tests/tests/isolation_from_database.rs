//! `test-isolation --from-database`: the matrix runs against a clone of a database that lives
//! in another cluster (migrated there by our own migrations), passes, and leaves the source
//! exactly as it was; an unreachable URL and a database without Tenantry's core get clear errors.

use std::process::Command as Process;

use anyhow::{Context, bail};
use migration::run::{self, Command};
use sea_orm::ConnectionTrait;
use tenantry_tests::cluster::{BOOTSTRAP_SUPERUSER, Cluster};
use tenantry_tests::databases::connect;
use tenantry_tests::isolation::clone::clone_database;
use tenantry_tests::isolation::{self, IsolationTarget};
use tenantry_tests::logins::{OWNER_LOGIN, create_logins, grant_logins};

/// Everything in the database, schema and rows, as `pg_dump` prints it (minus the per-run
/// `\restrict` key lines).
fn full_dump(cluster: &Cluster, url: &str) -> anyhow::Result<String> {
    let out = Process::new(cluster.binaries().path("pg_dump"))
        .args(["--no-password", "-d", url])
        .output()
        .context("running pg_dump")?;
    if !out.status.success() {
        bail!("pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n"))
}

#[tokio::test]
async fn a_database_migrated_elsewhere_passes_and_is_left_untouched() -> anyhow::Result<()> {
    // The user's database: its own cluster, migrated by our migrations, with a tenant's rows.
    let source = Cluster::start_ephemeral()?;
    let su = connect(&source.url(BOOTSTRAP_SUPERUSER, "postgres"), 1).await?;
    create_logins(&su).await?;
    su.execute_unprepared(&format!("CREATE DATABASE app OWNER {OWNER_LOGIN}"))
        .await?;
    su.close().await?;
    let owner = run::connect(&source.url(OWNER_LOGIN, "app")).await?;
    run::run(&owner, Command::Up(None)).await?;
    grant_logins(&owner).await?;
    owner.close().await?;
    let source_url = source.url(BOOTSTRAP_SUPERUSER, "app");
    let su = connect(&source_url, 1).await?;
    su.execute_unprepared(
        "INSERT INTO tenancy.tenants (id, name, slug) VALUES ('c0000000-0000-0000-0000-00000000000c', 'Gamma', 'gamma');
         INSERT INTO public.projects (tenant_id, name) VALUES ('c0000000-0000-0000-0000-00000000000c', 'gamma project');",
    )
    .await?;
    su.close().await?;
    let before = full_dump(&source, &source_url)?;

    let clone = clone_database(&source_url).await?;
    assert!(clone.has_legacy_role);
    let db = &clone.db;
    let report = isolation::run(&IsolationTarget::for_db(db, 40)).await?;
    assert!(report.passed(), "{report}");
    assert!(report.matrix.len() >= 8, "{report}");
    assert_eq!(report.legacy.len(), report.matrix.len(), "{report}");
    // The clone holds the source's rows; the source is byte for byte what it was.
    let cloned = connect(&db.superuser_url(), 1).await?;
    let n = cloned
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) FROM public.projects WHERE name = 'gamma project'",
        ))
        .await?
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?;
    assert_eq!(n, Some(1));
    cloned.close().await?;
    assert!(
        before == full_dump(&source, &source_url)?,
        "the source database changed"
    );
    Ok(())
}

#[tokio::test]
async fn unreachable_and_non_tenantry_databases_get_clear_errors() -> anyhow::Result<()> {
    // Port 1 on loopback: nothing listens there.
    let err = clone_database("postgres://someone:secret@127.0.0.1:1/app")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("cannot connect to the source database postgres://someone@127.0.0.1:1/app"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    let empty = tenantry_tests::empty_db().await?;
    let err = clone_database(&empty.superuser_url())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("has no Tenantry core"), "{err}");
    Ok(())
}
