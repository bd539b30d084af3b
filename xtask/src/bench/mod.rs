//! `cargo xtask bench`: Tenantry's benchmarks against an ephemeral PostgreSQL.
//!
//! Scenarios: RLS read overhead (`rls`); tenant-bound transaction overhead through the
//! service (`service_tx`); the legacy backfill under a live writer (`backfill`); the HTTP API
//! (`api`); API-key authentication cost and `test-isolation` wall time (`auth`); another
//! tenant's reads during a login flood (`login_flood`); dedicated tenants at scale: provisioning,
//! `up` over every schema, reads against a shared tenant (`dedicated`); a tenant promoted to its
//! own schema and demoted back under a live writer (`tenant_move`).
//!
//! Every number is computed here from `Instant`-timed samples (medians, p95, p99 by nearest
//! rank); every load is bounded in count and time and talks to 127.0.0.1 only. The defaults
//! take a few minutes on 2 cores; `--quick` is a smoke run (< 30 s) whose numbers mean nothing.

mod api;
mod auth;
mod backfill;
mod backfill_tenant_root;
mod cpu;
mod dedicated;
mod load;
mod login_flood;
mod report;
mod rls;
mod service_tx;
mod setup;
mod stats;
mod tenant_move;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use tenantry_tests::databases::connect;

use report::{Report, Scenario, Status};

/// Options of `cargo xtask bench`. Sizes default to the full run (or to the smoke run with
/// `--quick`); any size given explicitly wins over both.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BenchArgs {
    /// Smoke run: tiny sizes, short loads, no test-isolation (< 30 s; numbers are meaningless).
    #[arg(long)]
    pub quick: bool,
    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Rewrite the results block of this markdown file (between `<!-- bench:begin -->` and
    /// `<!-- bench:end -->`), e.g. docs/BENCHMARKS.md.
    #[arg(long, value_name = "PATH")]
    pub update_doc: Option<PathBuf>,
    /// Run only these scenarios (comma-separated, 1-7).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<u8>,
    /// Tenants in the read fixture (1000).
    #[arg(long)]
    pub tenants: Option<u64>,
    /// Rows of `public.projects` in the read fixture (1,000,000).
    #[arg(long)]
    pub rows: Option<u64>,
    /// Timed iterations per query and variant in scenarios 1 and 5 (3000).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Rows of the naive-policy scratch table (same as --rows; 0 skips it).
    #[arg(long)]
    pub naive_rows: Option<u64>,
    /// Timed iterations per query under the naive policy (5).
    #[arg(long)]
    pub naive_iterations: Option<usize>,
    /// Concurrent tasks for scenarios 2 and 4 (1,8,32).
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Seconds per measured cell of scenarios 2 and 4, split over alternating rounds (4).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Pool size of both sides in scenarios 2 and 4 (16, the service's default).
    #[arg(long)]
    pub pool: Option<u32>,
    /// Rows of the legacy table in scenario 3 (1,000,000).
    #[arg(long)]
    pub legacy_rows: Option<u64>,
    /// Legacy writer operations per second in scenario 3 (200; 0 = as fast as it can).
    #[arg(long)]
    pub writer_rate: Option<u32>,
    /// Experiment for scenario 3: drop m0008's legacy key index (`projects_legacy_key_idx`)
    /// once migrated, to see what legacy `WHERE id = $1` statements cost without it.
    #[arg(long)]
    pub no_legacy_key_index: bool,
    /// Skip the third database of scenario 3 (naive plus the same index builds).
    #[arg(long)]
    pub no_naive_same_work: bool,
    /// Scenario 3: also run the tenant-root backfill at a second size, 10x the legacy rows
    /// (10,000,000 by default), and once with wide rows (about 1 kB each).
    #[arg(long)]
    pub backfill_second_size: bool,
    /// Do not time `test-isolation` in scenario 5.
    #[arg(long)]
    pub no_isolation: bool,
    /// Dedicated tenants provisioned in scenario 7 (1000).
    #[arg(long)]
    pub dedicated_tenants: Option<u64>,
    /// Projects of each of the two tenants read in scenario 7 (10,000).
    #[arg(long)]
    pub dedicated_rows: Option<u64>,
    /// Scenario 8: projects of the tenant that is promoted and demoted (default 100,000;
    /// `--quick` 2,000).
    #[arg(long)]
    pub move_rows: Option<u64>,
}

/// The resolved sizes of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    quick: bool,
    tenants: u64,
    rows: u64,
    iterations: usize,
    naive_rows: u64,
    naive_iterations: usize,
    concurrency: Vec<usize>,
    seconds: f64,
    pool: u32,
    legacy_rows: u64,
    writer_rate: u32,
    naive_same_work: bool,
    no_legacy_key_index: bool,
    backfill_second_size: bool,
    isolation: bool,
    dedicated_tenants: u64,
    dedicated_rows: u64,
    move_rows: u64,
    scenarios: Vec<u8>,
}

impl Params {
    fn resolve(a: &BenchArgs) -> Self {
        let q = a.quick;
        let pick = |full: u64, quick: u64| if q { quick } else { full };
        let rows = a.rows.unwrap_or(pick(1_000_000, 20_000));
        Self {
            quick: q,
            tenants: a.tenants.unwrap_or(pick(1000, 20)).max(1),
            rows,
            iterations: a.iterations.unwrap_or(if q { 100 } else { 3000 }).max(1),
            naive_rows: a.naive_rows.unwrap_or(if q { 5_000 } else { rows }),
            naive_iterations: a.naive_iterations.unwrap_or(if q { 2 } else { 5 }).max(1),
            concurrency: if a.concurrency.is_empty() {
                if q { vec![1, 8] } else { vec![1, 8, 32] }
            } else {
                a.concurrency.iter().map(|c| (*c).max(1)).collect()
            },
            seconds: a.seconds.unwrap_or(if q { 0.4 } else { 4.0 }).max(0.05),
            pool: a.pool.unwrap_or(16).max(1),
            legacy_rows: a.legacy_rows.unwrap_or(pick(1_000_000, 10_000)),
            writer_rate: a.writer_rate.unwrap_or(200),
            naive_same_work: !a.no_naive_same_work && !q,
            no_legacy_key_index: a.no_legacy_key_index,
            backfill_second_size: a.backfill_second_size,
            isolation: !a.no_isolation && !q,
            dedicated_tenants: a.dedicated_tenants.unwrap_or(pick(1000, 20)).max(1),
            dedicated_rows: a.dedicated_rows.unwrap_or(pick(10_000, 500)).max(1),
            move_rows: a.move_rows.unwrap_or(pick(100_000, 2_000)).max(1),
            scenarios: if a.only.is_empty() {
                vec![1, 2, 3, 4, 5, 6, 7, 8]
            } else {
                a.only.clone()
            },
        }
    }

    fn wants(&self, id: u8) -> bool {
        self.scenarios.contains(&id)
    }
}

/// `cargo xtask bench`. Runs on a multi-threaded runtime of its own (the xtask binary's is
/// single-threaded), so concurrent load really runs on both cores.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<(Report, BenchArgs)> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let report = rt.block_on(measure(&args))?;
        rt.shutdown_timeout(std::time::Duration::from_secs(5));
        Ok((report, args))
    })
    .await??;
    let (report, args) = report;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = &args.update_doc {
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        std::fs::write(path, report::splice(&doc, &report.markdown()))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    let failed: Vec<String> = report
        .scenarios
        .iter()
        .filter_map(|s| match &s.status {
            Status::Failed(e) => Some(format!("{}: {e}", s.id)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        anyhow::bail!("bench: scenario(s) failed: {}", failed.join("; "));
    }
    Ok(())
}

/// Runs the selected scenarios and returns the report (a failing scenario is recorded, and the
/// others still run).
pub async fn measure(args: &BenchArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let run_ticks = cpu::CpuTicks::now();
    let p = Params::resolve(args);
    let cluster = tenantry_tests::shared_cluster()?;
    let su = connect(
        &cluster.url(tenantry_tests::cluster::BOOTSTRAP_SUPERUSER, "postgres"),
        1,
    )
    .await?;
    let machine = setup::machine(&su).await?;
    let started_at = setup::text_lines(
        &su,
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"')",
    )
    .await?
    .join("");
    su.close().await?;
    if cfg!(debug_assertions) && !p.quick {
        eprintln!(
            "note: this is an unoptimized build; for numbers to publish run \
             `cargo xtask-release bench` (see docs/BENCHMARKS.md)"
        );
    }

    let mut fixture: Option<setup::Fixture> = None;
    let needs_fixture = [1u8, 2, 4, 5, 6].iter().any(|id| p.wants(*id));
    let mut fixture_error = None;
    if needs_fixture {
        match setup::fixture(p.tenants, p.rows).await {
            Ok(f) => {
                tracing::info!(seconds = f.load_s, "fixture loaded");
                fixture = Some(f);
            }
            Err(e) => fixture_error = Some(format!("{e:#}")),
        }
    }
    let port = cluster.port();
    let mut scenarios = vec![];
    // Scenario 3 runs last: it rewrites a million rows, and the machine should be quiet for
    // the others. The report lists them in order.
    for id in [1u8, 2, 4, 5, 6, 7, 8, 3] {
        let title = match id {
            1 => rls::TITLE,
            2 => service_tx::TITLE,
            3 => backfill::TITLE,
            4 => api::TITLE,
            6 => login_flood::TITLE,
            7 => dedicated::TITLE,
            8 => tenant_move::TITLE,
            _ => auth::TITLE,
        };
        if !p.wants(id) {
            scenarios.push(Scenario::with_status(
                id,
                title,
                Status::Skipped("not selected".into()),
            ));
            continue;
        }
        let t = Instant::now();
        let ticks = cpu::CpuTicks::now();
        let result = match (id, &fixture) {
            (3, _) => backfill::run(&p).await,
            (7, _) => dedicated::run(&p).await,
            (8, _) => tenant_move::run(&p).await,
            (_, None) => Err(anyhow::anyhow!(
                "fixture: {}",
                fixture_error.clone().unwrap_or_default()
            )),
            (1, Some(fx)) => rls::run(&p, fx).await,
            (2, Some(fx)) => service_tx::run(&p, fx, port).await,
            (4, Some(fx)) => api::run(&p, fx, port).await,
            (6, Some(fx)) => login_flood::run(&p, fx).await,
            (_, Some(fx)) => auth::run(&p, fx, port).await,
        };
        let mut sc = match result {
            Ok(sc) => sc,
            Err(e) => {
                tracing::error!(scenario = id, error = %format!("{e:#}"), "scenario failed");
                Scenario::with_status(id, title, Status::Failed(format!("{e:#}")))
            }
        };
        sc.wall_s = t.elapsed().as_secs_f64();
        if let Some(steal) = cpu::steal_text(&cpu::since(ticks)) {
            sc.notes.push(format!(
                "host during this scenario: {steal} (a virtual CPU runnable but not run; \
                 wall-clock ratios swing with it, CPU per op much less)"
            ));
        }
        scenarios.push(sc);
    }
    scenarios.sort_by_key(|s| s.id);
    if let Some(fx) = &fixture
        && let Some(s) = scenarios.iter_mut().find(|s| s.id == 1)
    {
        s.notes.push(format!(
                "fixture: {} tenants, {} projects loaded in {:.1} s (INSERT ... SELECT generate_series, VACUUM ANALYZE), database {}",
                p.tenants, p.rows, fx.load_s, fx.db.name
            ));
    }
    let command = std::iter::once(if cfg!(debug_assertions) {
        "cargo xtask".to_owned()
    } else {
        "cargo xtask-release".to_owned()
    })
    .chain(std::env::args().skip(1))
    .collect::<Vec<_>>()
    .join(" ");
    Ok(Report {
        command,
        started_at,
        wall_s: started.elapsed().as_secs_f64(),
        steal: cpu::since(run_ticks).steal_share(),
        machine,
        params: serde_json::to_value(&p)?,
        scenarios,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smoke run CI may afford: every scenario runs end to end on tiny sizes.
    #[test]
    fn quick_smoke_run_completes() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let args = BenchArgs {
            quick: true,
            ..Default::default()
        };
        let t = Instant::now();
        let report = rt.block_on(measure(&args)).unwrap();
        for s in &report.scenarios {
            assert!(
                !matches!(s.status, Status::Failed(_)),
                "scenario {} failed: {:?}",
                s.id,
                s.status
            );
        }
        assert!(report.table().contains("RLS"));
        assert!(
            serde_json::to_string(&report)
                .unwrap()
                .contains("\"scenarios\"")
        );
        eprintln!("{}", report.table());
        eprintln!("quick bench: {:.1} s", t.elapsed().as_secs_f64());
    }

    #[test]
    fn explicit_sizes_win_over_quick() {
        let p = Params::resolve(&BenchArgs {
            quick: true,
            rows: Some(123),
            ..Default::default()
        });
        assert_eq!(p.rows, 123);
        assert_eq!(p.tenants, 20);
        let full = Params::resolve(&BenchArgs::default());
        assert_eq!(full.rows, 1_000_000);
        assert_eq!(full.concurrency, vec![1, 8, 32]);
        assert!(full.isolation);
        assert_eq!(full.dedicated_tenants, 1000);
        assert_eq!(p.dedicated_tenants, 20);
        assert!(full.wants(7));
    }
}
