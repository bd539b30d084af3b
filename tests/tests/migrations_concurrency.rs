//! Two `up` runs started at the same moment on one empty database (two single-connection pools,
//! as two deploys would) must both succeed: one applies under the advisory lock, the other waits
//! and then applies only what is still pending. Each migration is recorded once and the schema
//! equals a normally migrated database's.
//!
//! To make the race certain rather than likely, a third session holds the migration lock until
//! both runners are seen waiting for it in `pg_locks`, then lets them go.
//!
//! Two full `up`s side by side currently deadlock (ignored test below): the runner holding the
//! lock reaches m0005's `CREATE INDEX CONCURRENTLY`, which waits for every older snapshot in the
//! database, including the one the other runner holds while it sits in
//! `SELECT pg_advisory_lock(...)`, which waits for the first runner. PostgreSQL aborts one of
//! them with "deadlock detected". Two `up -n 4` runs avoid that: the second one only reaches
//! m0005 after the first has released the lock, when nobody is waiting.

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
    // `run` sets lock_timeout (default 5s) before it waits for the advisory lock, so a waiting
    // runner gives up when the other takes longer than that; these tests are about the lock,
    // not about how fast this machine is, so the timeout is made long. Every test of this binary
    // sets the same value.
    // SAFETY: no other thread of this process reads or writes this variable concurrently in a
    // way that matters: every writer writes the same value.
    unsafe { std::env::set_var("TENANTRY_LOCK_TIMEOUT", "10min") };
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
    let waiting_sql = "SELECT count(*) FROM pg_catalog.pg_locks l \
         JOIN pg_catalog.pg_database d ON d.oid = l.database AND d.datname = current_database() \
         WHERE l.locktype = 'advisory' AND NOT l.granted";
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
        6,
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
    let [first, second] = race_two_ups(&db, Some(4)).await?;
    first.map_err(|e| anyhow::anyhow!("first runner: {e}"))?;
    second.map_err(|e| anyhow::anyhow!("second runner: {e}"))?;
    // Whoever got the lock first applied m0001..m0004; the other then applied the two still
    // pending, each exactly once.
    assert_fully_migrated_once(&db, &expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bug: the waiting runner's snapshot deadlocks m0005's CREATE INDEX CONCURRENTLY"]
async fn two_full_concurrent_ups_both_succeed() -> anyhow::Result<()> {
    let expected = reference_schema().await?;
    let _cluster = CLUSTER_DDL.lock().await;
    let db = tenantry_tests::empty_db().await?;
    let [first, second] = race_two_ups(&db, None).await?;
    first.map_err(|e| anyhow::anyhow!("first runner: {e}"))?;
    second.map_err(|e| anyhow::anyhow!("second runner: {e}"))?;
    assert_fully_migrated_once(&db, &expected).await
}
