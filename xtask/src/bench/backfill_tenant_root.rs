//! Scenario 3, tenant-root part: children take their parent's tenant through a foreign key.
//!
//! Two fresh databases with the same data: `parents` parent rows spread over ten tenants and
//! `rows` child rows referencing them by a random uuid (so the naive join's order is random in
//! the parent, as in a real legacy schema). Ours is `Backfill::from_parent` (heap order,
//! budgeted batches, each its own transaction); the baseline is the one statement a team would
//! write: `UPDATE child SET tenant_id = parent.tenant_id FROM parent WHERE child.parent_id =
//! parent.id`. No writer runs here: the stall bound of a batched backfill is the longest batch
//! (reported), the naive statement locks every child row until it commits.

use std::time::{Duration, Instant};

use migration::backfill::{Backfill, BatchKind, ParentValue};
use tenantry_tests::databases::connect;

use super::report::{Cmp, Row};
use super::setup::{drop_db, exec_text};

/// What one size measured.
pub struct TenantRoot {
    /// Child rows.
    pub rows: u64,
    /// Seconds of our backfill.
    pub ours_s: f64,
    /// Seconds of the naive join UPDATE.
    pub naive_s: f64,
    /// Batches we ran.
    pub batches: usize,
    /// The longest batch (the longest any child row stayed locked).
    pub longest_batch_ms: f64,
    /// The 99th percentile of batch durations.
    pub p99_batch_ms: f64,
    /// The sweep's read-only searches (they lock no row): how many, and the longest.
    pub searches: usize,
    /// The longest sweep search.
    pub longest_search_ms: f64,
    /// The largest page-range batch.
    pub largest_pages: u64,
}

async fn child_db(rows: u64, wide: bool) -> anyhow::Result<tenantry_tests::TestDb> {
    let db = tenantry_tests::empty_db().await?;
    let su = connect(&db.superuser_url(), 1).await?;
    let parents = (rows / 100).max(10);
    // Wide rows: about 1 kB of payload per child (eight rows per page instead of ~60).
    let payload = if wide {
        "repeat(md5(g::text), 32)"
    } else {
        "md5(g::text)"
    };
    exec_text(
        &su,
        &format!(
            "CREATE TABLE public.parent (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
               tenant_id uuid NOT NULL, name text NOT NULL);
             INSERT INTO public.parent (id, tenant_id, name) \
               SELECT md5('p' || g)::uuid, \
                      ('00000000-0000-0000-0000-0000000000' || lpad((g % 10)::text, 2, '0'))::uuid, \
                      'parent ' || g FROM generate_series(1, {parents}) g;
             CREATE TABLE public.child (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
               parent_id uuid NOT NULL REFERENCES public.parent (id), body text NOT NULL, \
               tenant_id uuid);
             CREATE INDEX child_parent_id_idx ON public.child (parent_id);"
        ),
    )
    .await?;
    exec_text(
        &su,
        &format!(
            "INSERT INTO public.child (parent_id, body) \
             SELECT md5('p' || (1 + abs(hashint8(g) % {parents})))::uuid, {payload} \
             FROM generate_series(1, {rows}::bigint) g"
        ),
    )
    .await?;
    exec_text(&su, "VACUUM (ANALYZE) public.parent, public.child").await?;
    su.close().await?;
    Ok(db)
}

/// Runs both sides at `rows` child rows.
pub async fn measure(rows: u64, wide: bool) -> anyhow::Result<TenantRoot> {
    tracing::info!(rows, wide, "scenario 3: tenant-root backfill, ours");
    let db = child_db(rows, wide).await?;
    let su = connect(&db.superuser_url(), 1).await?;
    let t = Instant::now();
    let report = Backfill::from_parent(
        "public",
        "child",
        "tenant_id",
        ParentValue::new("public", "parent", "tenant_id", &[("parent_id", "id")]),
    )
    .run_reporting(&su)
    .await?;
    let ours_s = t.elapsed().as_secs_f64();
    su.close().await?;
    drop_db(&db).await;

    tracing::info!(rows, wide, "scenario 3: tenant-root backfill, naive join");
    let db = child_db(rows, wide).await?;
    let su = connect(&db.superuser_url(), 1).await?;
    let t = Instant::now();
    exec_text(
        &su,
        "UPDATE public.child SET tenant_id = parent.tenant_id FROM public.parent \
         WHERE child.parent_id = parent.id",
    )
    .await?;
    let naive_s = t.elapsed().as_secs_f64();
    su.close().await?;
    drop_db(&db).await;

    Ok(TenantRoot {
        rows,
        ours_s,
        naive_s,
        batches: report.batches.len(),
        longest_batch_ms: report.max_batch().as_secs_f64() * 1e3,
        p99_batch_ms: report.batch_quantile(0.99).as_secs_f64() * 1e3,
        searches: report.searches.len(),
        longest_search_ms: report
            .searches
            .iter()
            .max()
            .copied()
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
            * 1e3,
        largest_pages: report
            .batches
            .iter()
            .filter_map(|b| match b.kind {
                BatchKind::Pages { pages, .. } => Some(pages),
                _ => None,
            })
            .max()
            .unwrap_or(0),
    })
}

/// The rows of one size; `primary` carries the target.
pub fn rows(r: &TenantRoot, label: &str, primary: bool) -> Vec<Row> {
    let mut total = Row::compared(
        format!("tenant-root backfill of {label} vs naive join UPDATE"),
        "s",
        r.ours_s,
        r.naive_s,
    )
    .note(format!(
        "{} child rows: ours = Backfill::from_parent, {} batches (largest {} pages); naive = UPDATE child SET tenant_id = parent.tenant_id FROM parent WHERE child.parent_id = parent.id",
        r.rows, r.batches, r.largest_pages
    ));
    if primary {
        total = total.target_ratio(Cmp::Le, 2.0);
    }
    vec![
        total,
        Row::value(
            format!("tenant-root backfill of {label}: longest batch"),
            "ms",
            r.longest_batch_ms,
        )
        .note(format!(
            "the longest any child row stayed locked (the batch budget is TENANTRY_BACKFILL_BUDGET_MS, 20 ms by default); the sweep's {} read-only search(es), longest {:.0} ms, lock no row and are not batches",
            r.searches, r.longest_search_ms
        )),
        Row::value(
            format!("tenant-root backfill of {label}: p99 batch"),
            "ms",
            r.p99_batch_ms,
        )
        .note("99th percentile of the batch durations"),
    ]
}
