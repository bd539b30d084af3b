//! Scenario 3: the legacy tenancy backfill under a live writer.
//!
//! A fresh database gets the legacy baseline (`up -n 1`), `legacy_rows` legacy projects, and
//! then the remaining migrations through `migration::run`, one at a time, while a legacy
//! writer inserts (without `tenant_id`) and updates by id at a steady rate. The naive
//! approach runs on another fresh database with the same data and writer: one transaction
//! with `UPDATE projects SET tenant_id = DEFAULT` and `SET NOT NULL`; optionally a third
//! database adds, in that same transaction, the three index builds our migrations also do.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use migration::names::DEFAULT_TENANT_ID;
use migration::run::{self, Command};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, TransactionTrait};
use tenantry_tests::TestDb;
use tenantry_tests::databases::connect;
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

use super::Params;
use super::report::{Cmp, Row, Scenario, fmt_ms};
use super::setup::{exec, exec_text, rows};
use super::stats::{Rng, Stat};

pub const TITLE: &str = "Legacy backfill under a live writer (ours vs. one-transaction UPDATE)";

/// One write of the legacy writer.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When it started, since the writer started.
    at: Duration,
    latency: Duration,
    ok: bool,
}

struct Writer {
    stop: Arc<AtomicBool>,
    started: Instant,
    handle: tokio::task::JoinHandle<(Vec<Sample>, Option<String>)>,
}

impl Writer {
    /// Starts the legacy writer: a superuser login (so that what it measures is lock waits,
    /// not the permission changes the migrations make), with the default tenant as a session
    /// setting so its inserts keep getting a tenant once the column's default becomes the
    /// current tenant. Alternates `INSERT (name)` and `UPDATE ... WHERE id = $1`.
    async fn start(url: &str, ids: Vec<Uuid>, rate: u32) -> anyhow::Result<Self> {
        let mut opts = ConnectOptions::new(url);
        opts.max_connections(1).min_connections(1).sqlx_logging(false);
        opts.map_sqlx_postgres_opts(|o| o.options([("tenantry.tenant_id", DEFAULT_TENANT_ID)]));
        let db = Database::connect(opts).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let started = Instant::now();
        let handle = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut first_error = None;
            let mut rng = Rng::new(3);
            let mut ticker = (rate > 0).then(|| {
                let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            let hard_cap = Duration::from_secs(30 * 60);
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) && started.elapsed() < hard_cap {
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                }
                let at = started.elapsed();
                let t = Instant::now();
                let res = if i % 2 == 0 || ids.is_empty() {
                    exec(
                        &db,
                        "INSERT INTO public.projects (name) VALUES ($1)",
                        vec![format!("legacy insert {i}").into()],
                    )
                    .await
                } else {
                    exec(
                        &db,
                        "UPDATE public.projects SET name = $1 WHERE id = $2",
                        vec![
                            format!("legacy update {i}").into(),
                            ids[rng.below(ids.len())].into(),
                        ],
                    )
                    .await
                };
                let latency = t.elapsed();
                if let Err(e) = &res {
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
                samples.push(Sample {
                    at,
                    latency,
                    ok: res.is_ok(),
                });
                i += 1;
            }
            let _ = db.close().await;
            (samples, first_error)
        });
        Ok(Self {
            stop,
            started,
            handle,
        })
    }

    async fn finish(self) -> anyhow::Result<(Vec<Sample>, Option<String>)> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.handle.await?)
    }
}

/// What the writer saw in a window.
struct Window {
    stat: Stat,
    ops: usize,
    errors: usize,
    worst_at: Duration,
}

fn window(samples: &[Sample], from: Duration, to: Duration) -> Window {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    let lat: Vec<Duration> = inside.iter().map(|s| s.latency).collect();
    let worst_at = inside
        .iter()
        .max_by_key(|s| s.latency)
        .map_or(Duration::ZERO, |s| s.at);
    Window {
        stat: Stat::of(&lat),
        ops: inside.len(),
        errors: inside.iter().filter(|s| !s.ok).count(),
        worst_at,
    }
}

/// A migrated-from-legacy run.
struct RunResult {
    total_s: f64,
    /// `(what, started at since writer start, seconds)`.
    phases: Vec<(String, Duration, f64)>,
    before: Window,
    during: Window,
    first_error: Option<String>,
    db: String,
}

/// A fresh database at the legacy baseline, loaded with `rows` legacy projects; returns the
/// owner's single-connection runner pool and a sample of ids for the writer's updates.
async fn legacy_db(rows_n: u64) -> anyhow::Result<(TestDb, DatabaseConnection, Vec<Uuid>)> {
    let db = tenantry_tests::empty_db().await?;
    let owner = run::connect(&db.url(LoginRole::Owner)).await?;
    run::run(&owner, Command::Up(Some(1)))
        .await
        .map_err(|e| anyhow::anyhow!("legacy baseline: {e}"))?;
    let su = connect(&db.superuser_url(), 1).await?;
    tracing::info!(db = %db.name, rows = rows_n, "scenario 3: loading legacy projects");
    let chunk = 200_000u64;
    let mut lo = 1u64;
    while lo <= rows_n {
        let hi = (lo + chunk - 1).min(rows_n);
        exec_text(
            &su,
            &format!(
                "INSERT INTO public.projects (id, name, description, created_at, updated_at) \
                 SELECT gen_random_uuid(), 'Legacy project ' || g, 'Legacy row ' || g, \
                 timestamptz '2020-01-01 00:00:00+00' + g * interval '1 minute', \
                 timestamptz '2020-01-01 00:00:00+00' + g * interval '1 minute' \
                 FROM generate_series({lo}::bigint, {hi}::bigint) g"
            ),
        )
        .await?;
        lo = hi + 1;
    }
    exec_text(&su, "VACUUM (ANALYZE) public.projects").await?;
    let mut ids = vec![];
    for r in rows(
        &su,
        "SELECT id FROM public.projects ORDER BY random() LIMIT 5000",
        vec![],
    )
    .await?
    {
        ids.push(r.try_get_by_index::<Uuid>(0)?);
    }
    su.close().await?;
    Ok((db, owner, ids))
}

async fn ours(p: &Params) -> anyhow::Result<RunResult> {
    let (db, owner, ids) = legacy_db(p.legacy_rows).await?;
    let writer = Writer::start(&db.superuser_url(), ids, p.writer_rate).await?;
    let warm = Duration::from_secs_f64(if p.quick { 0.3 } else { 2.0 });
    tokio::time::sleep(warm).await;
    let t0 = writer.started.elapsed();
    let start = Instant::now();
    let mut phases = vec![];
    let pending = run::pending(&owner).await?;
    for name in pending {
        tracing::info!(migration = %name, "scenario 3: applying (writer running)");
        let at = writer.started.elapsed();
        let t = Instant::now();
        run::run(&owner, Command::Up(Some(1)))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        phases.push((name, at, t.elapsed().as_secs_f64()));
    }
    let total_s = start.elapsed().as_secs_f64();
    let t1 = writer.started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (samples, first_error) = writer.finish().await?;
    owner.close().await?;
    Ok(RunResult {
        total_s,
        phases,
        before: window(&samples, Duration::ZERO, t0),
        during: window(&samples, t0, t1),
        first_error,
        db: db.name,
    })
}

async fn naive(p: &Params, same_work: bool) -> anyhow::Result<RunResult> {
    let (db, owner, ids) = legacy_db(p.legacy_rows).await?;
    let writer = Writer::start(&db.superuser_url(), ids, p.writer_rate).await?;
    let warm = Duration::from_secs_f64(if p.quick { 0.3 } else { 2.0 });
    tokio::time::sleep(warm).await;
    let t0 = writer.started.elapsed();
    let start = Instant::now();
    let txn = owner.begin().await?;
    let mut statements = vec![
        "ALTER TABLE public.projects ADD COLUMN tenant_id uuid".to_owned(),
        format!(
            "ALTER TABLE public.projects ALTER COLUMN tenant_id SET DEFAULT '{DEFAULT_TENANT_ID}'::uuid"
        ),
        "UPDATE public.projects SET tenant_id = DEFAULT".to_owned(),
        "ALTER TABLE public.projects ALTER COLUMN tenant_id SET NOT NULL".to_owned(),
    ];
    if same_work {
        statements.extend([
            "CREATE UNIQUE INDEX projects_tenant_key_idx ON public.projects (tenant_id, id)".to_owned(),
            "CREATE INDEX projects_tenant_id_idx ON public.projects (tenant_id)".to_owned(),
            "CREATE INDEX projects_tenant_created_idx ON public.projects (tenant_id, created_at DESC)"
                .to_owned(),
        ]);
    }
    let mut phases = vec![];
    for s in &statements {
        let at = writer.started.elapsed();
        let t = Instant::now();
        exec_text(&txn, s).await?;
        phases.push((s.clone(), at, t.elapsed().as_secs_f64()));
    }
    let at = writer.started.elapsed();
    let t = Instant::now();
    txn.commit().await?;
    phases.push(("COMMIT".into(), at, t.elapsed().as_secs_f64()));
    let total_s = start.elapsed().as_secs_f64();
    let t1 = writer.started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (samples, first_error) = writer.finish().await?;
    owner.close().await?;
    Ok(RunResult {
        total_s,
        phases,
        before: window(&samples, Duration::ZERO, t0),
        during: window(&samples, t0, t1),
        first_error,
        db: db.name,
    })
}

fn phase_at(r: &RunResult, at: Duration) -> String {
    r.phases
        .iter()
        .rev()
        .find(|(_, start, _)| *start <= at)
        .map_or_else(|| "before the first step".into(), |(n, _, _)| n.clone())
}

pub async fn run(p: &Params) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::new(3, TITLE);
    let o = ours(p).await?;
    let n = naive(p, false).await?;
    let same = if p.naive_same_work {
        Some(naive(p, true).await?)
    } else {
        None
    };

    sc.rows.push(
        Row::value("writer worst stall during our migrations", "ms", o.during.stat.max_ms)
            .target_value(Cmp::Le, 200.0)
            .note(format!("while: {}", phase_at(&o, o.during.worst_at))),
    );
    sc.rows.push(
        Row::value("writer worst stall during the naive transaction", "ms", n.during.stat.max_ms)
            .note("naive: for comparison, no target"),
    );
    let mut p99 = Row::compared(
        "writer p99 latency during the migration (ours vs naive)",
        "ms",
        o.during.stat.p99_ms,
        n.during.stat.p99_ms,
    );
    p99.ours_p95_ms = Some(o.during.stat.p95_ms);
    p99.baseline_p95_ms = Some(n.during.stat.p95_ms);
    sc.rows.push(p99);
    sc.rows.push(Row::compared(
        "writer median latency during the migration (ours vs naive)",
        "ms",
        o.during.stat.median_ms,
        n.during.stat.median_ms,
    ));
    sc.rows.push(Row::compared(
        "writer p99 before any migration (idle reference)",
        "ms",
        o.before.stat.p99_ms,
        n.before.stat.p99_ms,
    ));
    sc.rows.push(
        Row::compared("total migration time vs naive", "s", o.total_s, n.total_s)
            .target_ratio(Cmp::Le, 2.0)
            .note("naive = ADD COLUMN, UPDATE ... SET tenant_id = DEFAULT, SET NOT NULL in one transaction"),
    );
    if let Some(s) = &same {
        sc.rows.push(
            Row::compared("total migration time vs naive + same index builds", "s", o.total_s, s.total_s)
                .note("naive plus the (tenant_id, id), (tenant_id) and (tenant_id, created_at DESC) indexes our migrations build"),
        );
        sc.rows.push(
            Row::value(
                "writer worst stall during naive + same index builds",
                "ms",
                s.during.stat.max_ms,
            )
            .note("for comparison, no target"),
        );
    }

    let describe = |label: &str, r: &RunResult| {
        let phases = r
            .phases
            .iter()
            .map(|(n, _, s)| format!("{} {:.2}s", short(n), s))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{label} (db {}): {:.2} s total; writer {} ops during it, {} failed{}; steps: {phases}",
            r.db,
            r.total_s,
            r.during.ops,
            r.during.errors,
            r.first_error
                .as_ref()
                .map(|e| format!(" (first error: {})", e.lines().next().unwrap_or_default()))
                .unwrap_or_default(),
        )
    };
    sc.notes.push(describe("ours", &o));
    sc.notes.push(describe("naive", &n));
    if let Some(s) = &same {
        sc.notes.push(describe("naive + same indexes", s));
    }
    sc.notes.push(format!(
        "the writer paces itself at {} ops/s (0 = flat out), alternating an INSERT without \
         tenant_id and an UPDATE by id; a stall is one write's latency (worst ours: {} ms at \
         {:.1} s)",
        p.writer_rate,
        fmt_ms(o.during.stat.max_ms),
        o.during.worst_at.as_secs_f64()
    ));
    Ok(sc)
}

fn short(s: &str) -> String {
    let s = s.trim();
    if s.len() > 60 {
        format!("{}…", &s[..s.char_indices().nth(59).map_or(s.len(), |(i, _)| i)])
    } else {
        s.to_owned()
    }
}
