//! The backfill engine on its own: batches follow the time budget (a budget no batch can meet
//! shrinks them to one page, then to one row, and the report says so; a generous one grows
//! them), tables keyed by anything are walked in heap order, and a tenant-root backfill takes
//! each child's value from its parent (one index lookup per child, never a hash of the whole
//! parent table per batch), leaves orphans NULL, and resumes after an interruption; the sweep
//! catches rows written behind the walk, searching again until a search finds none.
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
    from_parent_batches_look_the_parent_up_by_index(&su).await?;
    sweep_searches_until_nothing_is_left(&su).await?;
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

async fn from_parent_batches_look_the_parent_up_by_index(
    su: &DatabaseConnection,
) -> anyhow::Result<()> {
    // Enough parents that a hash join is the planner's own choice for a 100-page batch.
    su.execute_unprepared(
        "CREATE TABLE public.org (id bigint PRIMARY KEY, tenant_id uuid NOT NULL);
         INSERT INTO public.org SELECT g, gen_random_uuid() FROM generate_series(1, 20000) g;
         CREATE TABLE public.member (id bigserial PRIMARY KEY, org_id bigint REFERENCES public.org, \
           tenant_id uuid, body text);
         INSERT INTO public.member (org_id, body) \
           SELECT 1 + (g * 7919) % 20000, md5(g::text) FROM generate_series(1, 40000) g;
         ANALYZE public.org; ANALYZE public.member;",
    )
    .await?;
    let backfill = Backfill::from_parent(
        "public",
        "member",
        "tenant_id",
        ParentValue::new("public", "org", "tenant_id", &[("org_id", "id")]),
    );
    let plan = backfill.explain_batch(su, 0, 100).await?;
    assert!(
        plan.contains("Index Scan using org_pkey on org") && !plan.contains("Hash"),
        "each child's parent is found through the parent's key index, not by hashing the \
         parent table per batch:\n{plan}"
    );
    // The same statement without the backfill's session settings: what the fix prevents.
    let statement = plan_of_statement_without_settings(su, &backfill).await?;
    assert!(
        statement.contains("Hash Join") && statement.contains("Seq Scan on org"),
        "without them the planner hashes the whole parent table for one batch:\n{statement}"
    );
    let report = backfill.run_reporting(su).await?;
    assert_eq!(report.rows(), 40_000);
    let wrong = scalar_i64(
        su,
        "SELECT count(*) FROM public.member m JOIN public.org o ON o.id = m.org_id \
         WHERE m.tenant_id IS DISTINCT FROM o.tenant_id",
    )
    .await?;
    assert_eq!(wrong, 0);
    let hashjoin = scalar_i64(
        su,
        "SELECT count(*) WHERE current_setting('enable_hashjoin') = 'on'",
    )
    .await?;
    assert_eq!(hashjoin, 1, "the session's planner settings are restored");
    Ok(())
}

/// `EXPLAIN` of one 100-page batch's UPDATE with the session's default planner settings.
async fn plan_of_statement_without_settings(
    su: &DatabaseConnection,
    backfill: &Backfill,
) -> anyhow::Result<String> {
    let sql = backfill
        .render()
        .into_iter()
        .find(|l| l.starts_with("UPDATE"))
        .unwrap_or_default()
        .replace("'(64,0)'", "'(100,0)'");
    let rows = su
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("EXPLAIN {}", sql.trim_end_matches(';')),
        ))
        .await?;
    let mut out = vec![];
    for r in rows {
        out.push(r.try_get_by_index::<String>(0)?);
    }
    Ok(out.join("\n"))
}

async fn sweep_searches_until_nothing_is_left(su: &DatabaseConnection) -> anyhow::Result<()> {
    // Every UPDATE statement on the table (the walk's and the sweep's batches) appends a new
    // row still NULL, 40 in all: they land past the pages the walk covers, as a concurrent
    // writer's inserts would, and the sweep's own batches spawn more, so it has to search again.
    narrow_table(su, "spawning", 3_000).await?;
    su.execute_unprepared(
        "CREATE TABLE public.spawned (n int);
         CREATE FUNCTION public.spawn() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF (SELECT count(*) FROM public.spawned) < 40 THEN
             INSERT INTO public.spawned VALUES (1);
             INSERT INTO public.spawning (n) SELECT max(n) + 1 FROM public.spawning;
           END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER spawn AFTER UPDATE ON public.spawning
           FOR EACH STATEMENT EXECUTE FUNCTION public.spawn();",
    )
    .await?;
    let report = Backfill::new("public", "spawning", "v", 3)
        .batch_size(500)
        .budget(Duration::from_secs(60))
        .run_reporting(su)
        .await?;
    let left = scalar_i64(su, "SELECT count(*) FROM public.spawning WHERE v IS NULL").await?;
    assert_eq!(left, 0, "no row is left NULL");
    assert_eq!(report.rows(), 3_040);
    let sweeps = report
        .batches
        .iter()
        .filter(|b| matches!(b.kind, BatchKind::Sweep { .. }))
        .count();
    assert!(sweeps >= 2, "the sweep updated the spawned rows: {sweeps}");
    assert!(
        report.searches.len() >= 3,
        "a search after each round of sweep batches, the last finding nothing: {}",
        report.searches.len()
    );
    Ok(())
}
