//! Adopting seed 001's database with the default-tenant rule, through the `migration adopt`
//! CLI, in two phases: every row identical apart from `tenant_id` (checksummed); a legacy login
//! that knows nothing of `tenant_id` keeps working through phase 1 and fails closed after phase
//! 2; integer, identity and composite keys made tenant-inclusive; the partitioned table and its
//! partition under forced RLS; the partial expression unique index widened; the view made
//! `security_invoker`; `status` lists the adoption; `down` then `adopt` gives the same schema;
//! the catalog audit and the unchanged isolation matrix pass.

mod adopt_support;
mod common;

use std::process::Command as Process;

use adopt_support::{SEED001, SEED001_DATA, SEED001_TABLES, checksums, count, fixture, target};
use anyhow::Context;
use common::{DEFAULT_TENANT, assert_same_schema, run_cli};
use sea_orm::ConnectionTrait;
use tenantry_tests::TestDb;
use tenantry_tests::logins::LoginRole;

const LEGACY_LOGIN: &str = "seed001_legacy_login";

/// `pg_dump --schema-only -n seed001` (owners and privileges kept).
fn dump(db: &TestDb) -> anyhow::Result<String> {
    let cluster = tenantry_tests::shared_cluster()?;
    let out = Process::new(cluster.binaries().path("pg_dump"))
        .args(["--schema-only", "-n", "seed001", "-d"])
        .arg(db.superuser_url())
        .output()
        .context("pg_dump")?;
    anyhow::ensure!(out.status.success(), "pg_dump failed");
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn adopt(db: &TestDb, extra: &[&str]) -> anyhow::Result<common::CliRun> {
    let mut args = vec!["adopt", "--schema", "seed001", "--global", "countries"];
    args.extend_from_slice(extra);
    run_cli(&db.url(LoginRole::Owner), &args)
}

/// What the unchanged single-tenant application does, as a plain login.
const LEGACY_WORKLOAD: &str = "
INSERT INTO seed001.users (email, full_name) VALUES ('legacy@example.com', 'Legacy');
UPDATE seed001.uploads SET status = 'done' WHERE id = 3;
INSERT INTO seed001.transform_logs (upload_id, step) VALUES (3, 2);
DELETE FROM seed001.email_logs WHERE subject = 'Broadcast';
";

#[tokio::test]
async fn seed001_adopted_in_two_phases_keeps_every_row_and_passes_audit_and_matrix()
-> anyhow::Result<()> {
    let db = fixture(SEED001, SEED001_DATA).await?;
    let su = db.connect_superuser().await?;
    su.execute_unprepared(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{LEGACY_LOGIN}') THEN \
         CREATE ROLE {LEGACY_LOGIN} LOGIN NOSUPERUSER NOBYPASSRLS; END IF; END $$"
    ))
    .await?;
    let owner = db.connect(LoginRole::Owner, 1).await?;
    owner
        .execute_unprepared(&format!(
            "GRANT USAGE ON SCHEMA seed001 TO {LEGACY_LOGIN}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA seed001 TO {LEGACY_LOGIN}; \
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA seed001 TO {LEGACY_LOGIN};"
        ))
        .await?;
    owner.close().await?;
    let before_schema = dump(&db)?;
    let before = checksums(&su, &SEED001_TABLES).await?;

    // --plan: the report and the SQL, nothing changed.
    let plan = adopt(&db, &["--plan"])?;
    assert!(plan.success, "plan failed: {}", plan.stderr);
    for expected in [
        "-- table seed001.uploads (3 rows)",
        "PRIMARY KEY (id) -> (tenant_id, id)",
        "uploads_live_filename (lower(filename) WHERE status <> 'deleted'::text) -> (tenant_id, lower(filename))",
        "users_country_fkey to seed001.countries kept as it is",
        "partitions (RLS and policies too): sellout_entries2_rest",
        "ALTER VIEW \"seed001\".\"upload_summary\" SET (security_invoker = on)",
        "CREATE UNIQUE INDEX CONCURRENTLY",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "plan lacks {expected:?}:\n{}",
            plan.stdout
        );
    }
    assert!(!plan.stdout.contains("BLOCKER"), "{}", plan.stdout);
    assert_eq!(dump(&db)?, before_schema, "--plan changed the schema");

    // Phase 1: columns and backfill. Every row identical, in the default tenant.
    let phase1 = adopt(&db, &["--phase", "1"])?;
    assert!(phase1.success, "phase 1 failed: {}", phase1.stderr);
    assert_eq!(
        checksums(&su, &SEED001_TABLES).await?,
        before,
        "phase 1 changed a row"
    );
    for (table, _) in &SEED001_TABLES[1..] {
        let wrong = count(
            &su,
            &format!(
                "SELECT count(*) FROM {table} WHERE tenant_id IS DISTINCT FROM '{DEFAULT_TENANT}'"
            ),
        )
        .await?;
        assert_eq!(
            wrong, 0,
            "{table}: rows outside the default tenant after phase 1"
        );
    }
    let status = run_cli(&db.url(LoginRole::Owner), &["status"])?;
    assert!(
        status
            .stdout
            .contains("Adoption adopt_seed001 (phase columns)"),
        "status: {}",
        status.stdout
    );

    // The unchanged application keeps working after phase 1 (its new rows land in the default
    // tenant).
    let legacy_url = tenantry_tests::shared_cluster()?.url(LEGACY_LOGIN, &db.name);
    let legacy = tenantry_tests::databases::connect(&legacy_url, 1).await?;
    legacy.execute_unprepared(LEGACY_WORKLOAD).await?;
    let after_legacy = checksums(&su, &SEED001_TABLES).await?;
    assert_ne!(after_legacy, before, "the legacy workload wrote nothing");

    // Phase 2: keys, RLS, policies, grants. Rows still identical.
    let phase2 = adopt(&db, &["--phase", "2"])?;
    assert!(phase2.success, "phase 2 failed: {}", phase2.stderr);
    assert_eq!(
        checksums(&su, &SEED001_TABLES).await?,
        after_legacy,
        "phase 2 changed a row"
    );
    let legacy_user = count(
        &su,
        &format!("SELECT count(*) FROM seed001.users WHERE email = 'legacy@example.com' AND tenant_id = '{DEFAULT_TENANT}'"),
    )
    .await?;
    assert_eq!(
        legacy_user, 1,
        "the legacy insert is not in the default tenant"
    );
    // Fail closed: a login with no tenant context (and not pinned like tenantry_legacy) sees nothing.
    assert_eq!(
        count(&legacy, "SELECT count(*) FROM seed001.uploads").await?,
        0
    );
    assert_eq!(
        count(
            &legacy,
            "SELECT count(*) FROM seed001.sellout_entries2_rest"
        )
        .await?,
        0,
        "a partition bypasses the parent's policies"
    );
    legacy.close().await?;
    for (query, expected) in [
        (
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'seed001' \
             AND c.relname IN ('users','uploads','products','sellout_entries2','sellout_entries2_rest','processing_logs','transform_logs','email_logs') \
             AND c.relrowsecurity AND c.relforcerowsecurity",
            8,
        ),
        (
            "SELECT count(*) FROM pg_constraint WHERE conname = 'transform_logs_pkey' AND array_length(conkey, 1) = 3",
            1,
        ),
        (
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'seed001' AND indexname = 'uploads_legacy_key_idx' \
             AND indexdef NOT LIKE '%UNIQUE%'",
            1,
        ),
        (
            "SELECT count(*) FROM pg_class WHERE relname = 'upload_summary' AND reloptions @> '{security_invoker=on}'",
            1,
        ),
        (
            "SELECT count(*) FROM pg_constraint WHERE conname = 'users_country_fkey' AND array_length(conkey, 1) = 1",
            1,
        ),
    ] {
        assert_eq!(count(&su, query).await?, expected, "{query}");
    }
    let owner = db.connect(LoginRole::Owner, 1).await?;
    let audit = migration::audit::audit_default(&owner).await?;
    assert!(audit.passed(), "catalog audit after adoption:\n{audit}");
    owner.close().await?;
    let status = run_cli(&db.url(LoginRole::Owner), &["status"])?;
    assert!(
        status.stdout.contains("Adoption adopt_seed001 (applied)"),
        "{}",
        status.stdout
    );

    // down -> the schema as before; adopt again -> the same adopted schema.
    let adopted_schema = dump(&db)?;
    let down = run_cli(&db.url(LoginRole::Owner), &["down"])?;
    assert!(down.success, "down failed: {}", down.stderr);
    assert!(
        down.stdout.contains("Rolled back adoption adopt_seed001"),
        "{}",
        down.stdout
    );
    assert_same_schema(&before_schema, &dump(&db)?, "adopt -> down");
    assert_eq!(
        checksums(&su, &SEED001_TABLES).await?,
        after_legacy,
        "down changed a row"
    );
    let again = adopt(&db, &[])?;
    assert!(again.success, "second adoption failed: {}", again.stderr);
    assert_same_schema(&adopted_schema, &dump(&db)?, "adopt -> down -> adopt");

    // The isolation matrix, unchanged, on the adopted schema.
    let report = tenantry_tests::isolation::run(&target(&db)).await?;
    assert!(
        report.passed(),
        "isolation matrix on adopted seed 001:\n{report}"
    );
    let attacked: Vec<String> = report.matrix.iter().map(|r| r.subject.clone()).collect();
    for table in [
        "seed001.uploads",
        "seed001.sellout_entries2_rest",
        "seed001.transform_logs",
    ] {
        assert!(
            attacked.contains(&table.to_owned()),
            "{table} not attacked: {attacked:?}"
        );
    }
    su.close().await?;
    Ok(())
}
