//! An adoption interrupted in the middle of its backfill (the `INTERRUPT_AFTER_BATCHES` hook
//! leaves the database exactly as a killed migrator would: committed batches stay) resumes when
//! rerun: no row lost or changed, and every row's tenant is the one its rule gives, for the
//! default-tenant rule (seed 001) and the tenant-root rule (seed 003, inherited through FKs).
//!
//! The same through the CLI with `kill -9`: the migrator is killed as soon as it reports the
//! backfill of the large table started; a rerun finishes with every row intact and assigned.
//!
//! Alone in its binary: it sets the process-wide hook and `TENANTRY_BACKFILL_BATCH`.

mod adopt_support;
mod common;

use std::sync::atomic::Ordering;

use adopt_support::{
    SEED001, SEED001_DATA, SEED001_TABLES, SEED003, SEED003_DATA, SEED003_TABLES, checksums, count,
    fixture,
};
use common::DEFAULT_TENANT;
use migration::adoption::{self, Adoption, Phase, record};
use migration::backfill::INTERRUPT_AFTER_BATCHES;
use sea_orm_migration::SchemaManager;
use tenantry_tests::logins::LoginRole;

/// The two tests run one at a time: one sets the process environment, the other spawns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Plans and applies `declaration` as the owner on a single connection, like the CLI.
async fn adopt(db: &tenantry_tests::TestDb, declaration: &Adoption) -> anyhow::Result<()> {
    let conn = migration::run::connect(&db.url(LoginRole::Owner)).await?;
    let plan = adoption::plan(&conn, declaration).await?;
    let result = record::apply(&SchemaManager::new(&conn), &plan, Phase::All).await;
    conn.close().await?;
    Ok(result?)
}

#[tokio::test]
async fn an_interrupted_backfill_resumes_for_both_rules() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    // SAFETY: set before any backfill is built, and this binary runs this one test.
    unsafe { std::env::set_var("TENANTRY_BACKFILL_BATCH", "100") };

    // Default tenant: 20,000 more uploads (a batch is a range of heap pages, growing from 8),
    // killed after 3 batches.
    let more = "INSERT INTO seed001.uploads (user_id, filename) SELECT 1 + g % 3, 'bulk-' || g FROM generate_series(1, 20000) g;";
    let db = fixture(SEED001, &format!("{SEED001_DATA}{more}")).await?;
    let su = db.connect_superuser().await?;
    let before = checksums(&su, &SEED001_TABLES).await?;
    let declaration = Adoption::new("seed001").global(&["countries"]);
    INTERRUPT_AFTER_BATCHES.store(3, Ordering::SeqCst);
    let err = adopt(&db, &declaration)
        .await
        .expect_err("the hook did not interrupt");
    INTERRUPT_AFTER_BATCHES.store(0, Ordering::SeqCst);
    assert!(
        err.to_string().contains("interrupted after 3 batches"),
        "{err}"
    );
    let filled = count(&su, "SELECT count(tenant_id) FROM seed001.uploads").await?;
    assert!(
        (1..20003).contains(&filled),
        "{filled} uploads filled when interrupted"
    );
    adopt(&db, &declaration).await?;
    assert_eq!(
        checksums(&su, &SEED001_TABLES).await?,
        before,
        "a row changed"
    );
    let wrong = count(
        &su,
        &format!("SELECT count(*) FROM seed001.uploads WHERE tenant_id IS DISTINCT FROM '{DEFAULT_TENANT}'"),
    )
    .await?;
    assert_eq!(wrong, 0);
    su.close().await?;

    // Tenant root: 20,000 more knowledge-base rows under both organizations, killed after 2 batches
    // of the inheritance.
    let more = "INSERT INTO seed003.knowledge_base (project_id, slug) SELECT \
                (ARRAY['b0000000-0000-0000-0000-000000000001', 'b0000000-0000-0000-0000-000000000003'])[1 + g % 2]::uuid, \
                'bulk-' || g FROM generate_series(1, 20000) g;";
    let db = fixture(SEED003, &format!("{SEED003_DATA}{more}")).await?;
    let su = db.connect_superuser().await?;
    let before = checksums(&su, &SEED003_TABLES).await?;
    let declaration = Adoption::new("seed003").tenant_root("organizations", "name");
    INTERRUPT_AFTER_BATCHES.store(2, Ordering::SeqCst);
    let err = adopt(&db, &declaration)
        .await
        .expect_err("the hook did not interrupt");
    INTERRUPT_AFTER_BATCHES.store(0, Ordering::SeqCst);
    assert!(
        err.to_string().contains("interrupted after 2 batches"),
        "{err}"
    );
    adopt(&db, &declaration).await?;
    assert_eq!(
        checksums(&su, &SEED003_TABLES).await?,
        before,
        "a row changed"
    );
    let wrong = count(
        &su,
        "SELECT count(*) FROM seed003.knowledge_base k JOIN seed003.projects p ON p.id = k.project_id \
         JOIN seed003.organizations o ON o.id = p.organization_id WHERE k.tenant_id IS DISTINCT FROM o.tenant_id",
    )
    .await?;
    assert_eq!(
        wrong, 0,
        "rows not in their organization's tenant after the resume"
    );
    assert_eq!(
        count(
            &su,
            "SELECT count(DISTINCT tenant_id) FROM seed003.knowledge_base"
        )
        .await?,
        2
    );
    su.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_migrator_killed_during_the_backfill_resumes_on_rerun() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    use std::io::BufRead;
    let more = "INSERT INTO seed001.uploads (user_id, filename) SELECT 1 + g % 3, 'bulk-' || g FROM generate_series(1, 20000) g;";
    let db = fixture(SEED001, &format!("{SEED001_DATA}{more}")).await?;
    let su = db.connect_superuser().await?;
    let before = checksums(&su, &SEED001_TABLES).await?;
    let args = ["adopt", "--schema", "seed001", "--global", "countries"];
    let mut child = std::process::Command::new(common::migration_binary()?)
        .args(args)
        .env("DATABASE_URL", db.url(LoginRole::Owner))
        .env("TENANTRY_BACKFILL_BATCH", "100")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut seen = false;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        if line.contains("backfilling") && line.contains("seed001.uploads") {
            seen = true;
            break;
        }
    }
    assert!(seen, "the migrator never reported the backfill of uploads");
    // Synchronise on observed progress: kill -9 once the first batches are committed.
    let mut assigned = 0;
    while child.try_wait()?.is_none() {
        assigned = count(&su, "SELECT count(tenant_id) FROM seed001.uploads").await?;
        if assigned > 0 {
            break;
        }
    }
    child.kill()?;
    child.wait()?;
    let at_kill = count(&su, "SELECT count(tenant_id) FROM seed001.uploads").await?;
    assert!(
        assigned > 0 && at_kill < 20_003,
        "not killed mid-backfill ({at_kill} of 20003 assigned)"
    );
    let rerun = common::run_cli(&db.url(LoginRole::Owner), &args)?;
    assert!(
        rerun.success,
        "rerun after kill -9 failed: {}",
        rerun.stderr
    );
    assert_eq!(
        checksums(&su, &SEED001_TABLES).await?,
        before,
        "a row changed"
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
            "{table}: rows outside the default tenant after the rerun"
        );
    }
    let owner = db.connect(LoginRole::Owner, 1).await?;
    let audit = migration::audit::audit_default(&owner).await?;
    assert!(
        audit.passed(),
        "catalog audit after the resumed adoption:\n{audit}"
    );
    owner.close().await?;
    su.close().await?;
    Ok(())
}
