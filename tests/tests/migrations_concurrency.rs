//! Two `up` runs started at the same moment on one empty database (two single-connection pools,
//! as two deploys would) must both succeed: one applies under the advisory lock, the other waits
//! and then applies only what is still pending. Each migration is recorded once and the schema
//! equals a normally migrated database's.
//!
//! To make the race certain rather than likely, a third session holds the migration lock until
//! both runners are seen trying to take it (`pg_try_advisory_lock` in `pg_stat_activity`), then
//! lets them go.
//!
//! Two full `up`s side by side once deadlocked: a runner blocked in `SELECT pg_advisory_lock`
//! holds a snapshot, and the other runner's `CREATE INDEX CONCURRENTLY` (m0005) waits for every
//! older snapshot. The runner now polls `pg_try_advisory_lock` instead, holding no snapshot
//! while it waits; `two_full_concurrent_ups_both_succeed` guards that.

mod common;

use common::{
    CLUSTER_DDL, all_migration_names, applied, assert_same_schema, scalar_i64, schema_dump,
};
use migration::names::MIGRATION_LOCK_KEY;
use migration::run::{self, Command};
use sea_orm::{ConnectionTrait, DbErr};
use tenantry_tests::TestDb;
use tenantry_tests::logins::LoginRole;

/// The schema of a database migrated the ordinary way, by the harness.
async fn reference_schema() -> anyhow::Result<String> {
    let reference = common::migrated_db().await?;
    schema_dump(&reference)
}

/// Starts `Up(n)` twice on `db`, each on its own single-connection pool, both released at once.
async fn race_two_ups(db: &TestDb, n: Option<u32>) -> anyhow::Result<[Result<(), DbErr>; 2]> {
    let holder = db.connect(LoginRole::Owner, 1).await?;
    holder
        .execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .await?;
    let mut runners = Vec::new();
    for _ in 0..2 {
        let conn = run::connect(&db.url(LoginRole::Owner)).await?;
        runners.push(tokio::spawn(async move {
            let result = run::run(&conn, Command::Up(n)).await;
            conn.close().await.ok();
            result
        }));
    }
    // Both runners have asked for the lock (and been told to wait) once each shows the try as
    // its last statement.
    let waiting_sql = "SELECT count(*) FROM pg_catalog.pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND query LIKE '%pg_try_advisory_lock%'";
    loop {
        assert!(
            runners.iter().all(|r| !r.is_finished()),
            "a runner finished while another session held the migration lock"
        );
        if scalar_i64(&holder, waiting_sql).await? == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    holder
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .await?;
    holder.close().await?;
    let second = runners.pop().expect("two runners");
    let first = runners.pop().expect("two runners");
    let (r1, r2) = tokio::join!(first, second);
    Ok([r1?, r2?])
}

async fn assert_fully_migrated_once(db: &TestDb, expected: &str) -> anyhow::Result<()> {
    let owner = db.connect(LoginRole::Owner, 1).await?;
    assert_eq!(applied(&owner).await?, all_migration_names());
    assert_eq!(
        scalar_i64(&owner, "SELECT count(*) FROM public.seaql_migrations").await?,
        all_migration_names().len() as i64,
        "a migration was recorded twice"
    );
    owner.close().await?;
    assert_same_schema(
        &schema_dump(db)?,
        expected,
        "concurrently migrated vs. normally migrated",
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_up_runs_are_serialised_by_the_advisory_lock() -> anyhow::Result<()> {
    let expected = reference_schema().await?;
    let _cluster = CLUSTER_DDL.lock().await;
    let db = tenantry_tests::empty_db().await?;
    // Each run applies at most half (rounded up): together they apply every migration.
    let half = (all_migration_names().len() as u32).div_ceil(2);
    let [first, second] = race_two_ups(&db, Some(half)).await?;
    first.map_err(|e| anyhow::anyhow!("first runner: {e}"))?;
    second.map_err(|e| anyhow::anyhow!("second runner: {e}"))?;
    // Whoever got the lock first applied the first half; the other then applied the ones still
    // pending, each exactly once.
    assert_fully_migrated_once(&db, &expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_full_concurrent_ups_both_succeed() -> anyhow::Result<()> {
    let expected = reference_schema().await?;
    let _cluster = CLUSTER_DDL.lock().await;
    let db = tenantry_tests::empty_db().await?;
    let [first, second] = race_two_ups(&db, None).await?;
    first.map_err(|e| anyhow::anyhow!("first runner: {e}"))?;
    second.map_err(|e| anyhow::anyhow!("second runner: {e}"))?;
    assert_fully_migrated_once(&db, &expected).await
}
