//! The backfill engine on its own: batches follow the time budget (a budget no batch can meet
//! shrinks them to one page, then to one row, and the report says so; a generous one grows
//! them), tables keyed by anything are walked in heap order, and a tenant-root backfill takes
//! each child's value from its parent, leaves orphans NULL, and resumes after an interruption.
//!
//! One test: it sets the process-wide `INTERRUPT_AFTER_BATCHES` hook, which would interrupt
//! any other backfill running in this binary at the same time.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::scalar_i64;
use migration::backfill::{Backfill, BatchKind, INTERRUPT_AFTER_BATCHES, ParentValue};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tenantry_tests::databases::connect;

#[tokio::test]
async fn backfill_engine() -> anyhow::Result<()> {
    let db = tenantry_tests::empty_db().await?;
    let su = connect(&db.superuser_url(), 1).await?;
    budget_shrinks_batches_to_one_row(&su).await?;
    generous_budget_grows_batches(&su).await?;
    tenant_root_from_parent_resumes(&su).await?;
    su.close().await?;
    Ok(())
}

/// A bigint-keyed table of `rows` narrow rows with `v` NULL.
async fn narrow_table(su: &DatabaseConnection, name: &str, rows: i64) -> anyhow::Result<()> {
    su.execute_unprepared(&format!(
        "CREATE TABLE public.{name} (n bigint PRIMARY KEY, v integer);
         INSERT INTO public.{name} (n) SELECT g FROM generate_series(1, {rows}) g;
         ANALYZE public.{name};"
    ))
    .await?;
    Ok(())
}

async fn budget_shrinks_batches_to_one_row(su: &DatabaseConnection) -> anyhow::Result<()> {
    narrow_table(su, "tight", 1_500).await?;
    let report = Backfill::new("public", "tight", "v", 7)
        .batch_size(1_000)
        .budget(Duration::ZERO)
        .run_reporting(su)
        .await?;
    let first = report.batches.first().map(|b| b.kind);
    assert!(
        matches!(first, Some(BatchKind::Pages { pages, .. }) if pages > 1),
        "the first batch is sized from the row hint: {first:?}"
    );
    let one_page = report
        .batches
        .iter()
        .position(|b| matches!(b.kind, BatchKind::Pages { pages: 1, .. }));
    let one_row = report
        .batches
        .iter()
        .position(|b| matches!(b.kind, BatchKind::Rows { limit: 1, .. }));
    assert!(
        matches!((one_page, one_row), (Some(p), Some(r)) if p < r),
        "an unmeetable budget shrinks batches to one page, then to one row: {:?}",
        report.batches.iter().map(|b| b.kind).collect::<Vec<_>>()
    );
    let after = one_row.unwrap_or(0);
    assert!(
        report.batches[after..].iter().all(|b| matches!(
            b.kind,
            BatchKind::Rows { limit: 1, .. } | BatchKind::Sweep { limit: 1 }
        )),
        "once at one row, batches stay at one row"
    );
    assert!(
        report.budget_missed,
        "the report says the budget was missed"
    );
    assert!(
        report.batches.iter().all(|b| match b.kind {
            BatchKind::Rows { limit, .. } | BatchKind::Sweep { limit } => b.rows <= limit,
            BatchKind::Pages { .. } => true,
        }),
        "a row-limited batch never updates more rows than its limit"
    );
    assert_eq!(report.rows(), 1_500);
    let left = scalar_i64(
        su,
        "SELECT count(*) FROM public.tight WHERE v IS DISTINCT FROM 7",
    )
    .await?;
    assert_eq!(left, 0, "every row is backfilled");
    Ok(())
}

async fn generous_budget_grows_batches(su: &DatabaseConnection) -> anyhow::Result<()> {
    narrow_table(su, "roomy", 20_000).await?;
    let report = Backfill::new("public", "roomy", "v", 1)
        .batch_size(500)
        .budget(Duration::from_secs(60))
        .run_reporting(su)
        .await?;
    let pages: Vec<u64> = report
        .batches
        .iter()
        .filter_map(|b| match b.kind {
            BatchKind::Pages { pages, .. } => Some(pages),
            _ => None,
        })
        .collect();
    assert!(
        pages.len() >= 3 && pages[1] == 2 * pages[0] && pages[2] == 2 * pages[1],
        "batches under half the budget double: {pages:?}"
    );
    assert!(!report.budget_missed);
    assert_eq!(report.rows(), 20_000);
    Ok(())
}

async fn tenant_root_from_parent_resumes(su: &DatabaseConnection) -> anyhow::Result<()> {
    // Parents 1..=100 of two tenants, parent 100 without one; children reference a parent by
    // (org, pid) (a two-column key), 30 of them a parent that does not exist.
    su.execute_unprepared(
        "CREATE TABLE public.parent (org int, pid int, tenant_id uuid, PRIMARY KEY (org, pid));
         INSERT INTO public.parent SELECT 1, g, CASE WHEN g = 100 THEN NULL \
           WHEN g % 2 = 0 THEN '00000000-0000-0000-0000-00000000000a'::uuid \
           ELSE '00000000-0000-0000-0000-00000000000b'::uuid END FROM generate_series(1, 100) g;
         CREATE TABLE public.child (id bigserial PRIMARY KEY, org int, parent_id int, tenant_id uuid, body text);
         INSERT INTO public.child (org, parent_id, body) \
           SELECT 1, 1 + g % 130, repeat('x', 50) FROM generate_series(0, 5999) g;
         ANALYZE public.parent; ANALYZE public.child;",
    )
    .await?;
    let backfill = Backfill::from_parent(
        "public",
        "child",
        "tenant_id",
        ParentValue::new(
            "public",
            "parent",
            "tenant_id",
            &[("org", "org"), ("parent_id", "pid")],
        ),
    )
    .batch_size(200)
    .budget(Duration::from_secs(60));

    INTERRUPT_AFTER_BATCHES.store(2, Ordering::SeqCst);
    let interrupted = backfill.run_reporting(su).await;
    INTERRUPT_AFTER_BATCHES.store(0, Ordering::SeqCst);
    let err = interrupted.expect_err("the hook interrupts the backfill");
    assert!(
        err.to_string().contains("interrupted after 2 batches"),
        "{err}"
    );
    let done = scalar_i64(su, "SELECT count(tenant_id) FROM public.child").await?;
    assert!(done > 0 && done < 6_000, "two batches did part: {done}");

    let report = backfill.run_reporting(su).await?;
    assert_eq!(
        report.rows() as i64 + done,
        scalar_i64(su, "SELECT count(tenant_id) FROM public.child").await?,
        "the resumed run updates only rows still NULL"
    );
    let wrong = scalar_i64(
        su,
        "SELECT count(*) FROM public.child c JOIN public.parent p \
           ON p.org = c.org AND p.pid = c.parent_id \
         WHERE c.tenant_id IS DISTINCT FROM p.tenant_id",
    )
    .await?;
    assert_eq!(wrong, 0, "every child with a parent has its parent's value");
    let orphans_filled = scalar_i64(
        su,
        "SELECT count(*) FROM public.child c WHERE c.tenant_id IS NOT NULL AND NOT EXISTS \
           (SELECT 1 FROM public.parent p WHERE p.org = c.org AND p.pid = c.parent_id)",
    )
    .await?;
    assert_eq!(orphans_filled, 0, "orphans stay NULL");
    let null_parent = scalar_i64(
        su,
        "SELECT count(*) FROM public.child WHERE parent_id = 100 AND tenant_id IS NULL",
    )
    .await?;
    assert!(
        null_parent > 0,
        "children of a parent without a value stay NULL"
    );
    let left = scalar_i64(
        su,
        "SELECT count(*) FROM public.child WHERE tenant_id IS NULL",
    )
    .await?;
    assert_eq!(
        left,
        scalar_i64(
            su,
            "SELECT count(*) FROM public.child WHERE parent_id >= 100"
        )
        .await?,
        "only orphans and children of parent 100 are left"
    );
    // A rerun finds nothing to do (its sweep ends: orphans are not work).
    let again = backfill.run_reporting(su).await?;
    assert_eq!(again.rows(), 0);
    Ok(())
}
