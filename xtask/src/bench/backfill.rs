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
use super::backfill_tenant_root;
use super::report::{Cmp, Row, Scenario, fmt_ms};
use super::setup::{drop_db, exec, exec_text, rows};
use super::stats::{Rng, Stat};

pub const TITLE: &str = "Legacy backfill under a live writer (ours vs. one-transaction UPDATE)";

/// One write of the legacy writer.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When it started, since the writer started.
    at: Duration,
    latency: Duration,
    ok: bool,
    update: bool,
}

struct Writer {
    stop: Arc<AtomicBool>,
    started: Instant,
    pid: i32,
    handle: tokio::task::JoinHandle<(Vec<Sample>, Option<String>)>,
}

/// What one backend was doing at one instant (from `pg_stat_activity`).
#[derive(Debug, Clone)]
struct Activity {
    at: Duration,
    pid: i32,
    wait: String,
    query: String,
}

/// Polls `pg_stat_activity` of one database every 20 ms (bounded), to tell afterwards what
/// the writer waited on and what the migration ran during the worst stall.
struct Monitor {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Vec<Activity>>,
}

impl Monitor {
    async fn start(url: &str, dbname: String, started: Instant) -> anyhow::Result<Self> {
        let db = connect(url, 1).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = tokio::spawn(async move {
            let mut out = Vec::new();
            while !flag.load(Ordering::Relaxed) && out.len() < 2_000_000 {
                let at = started.elapsed();
                if let Ok(rs) = rows(
                    &db,
                    "SELECT pid, coalesce(wait_event_type || ':' || wait_event, ''), \
                     left(regexp_replace(query, '\\s+', ' ', 'g'), 140) \
                     FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() \
                     AND state = 'active'",
                    vec![dbname.clone().into()],
                )
                .await
                {
                    for r in rs {
                        if let (Ok(pid), Ok(wait), Ok(query)) = (
                            r.try_get_by_index::<i32>(0),
                            r.try_get_by_index::<String>(1),
                            r.try_get_by_index::<String>(2),
                        ) {
                            out.push(Activity {
                                at,
                                pid,
                                wait,
                                query,
                            });
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = db.close().await;
            out
        });
        Ok(Self { stop, handle })
    }

    async fn finish(self) -> Vec<Activity> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap_or_default()
    }
}

/// What the writer waited on, and what the other sessions ran, during `[from, to]`.
fn explain_stall(acts: &[Activity], writer: i32, from: Duration, to: Duration) -> String {
    let inside: Vec<&Activity> = acts.iter().filter(|a| a.at >= from && a.at <= to).collect();
    let mut waits: Vec<(String, usize)> = vec![];
    let mut others: Vec<String> = vec![];
    for a in &inside {
        if a.pid == writer {
            let w = if a.wait.is_empty() {
                "running (no wait event)".to_owned()
            } else {
                a.wait.clone()
            };
            match waits.iter_mut().find(|(x, _)| *x == w) {
                Some((_, n)) => *n += 1,
                None => waits.push((w, 1)),
            }
        } else if !others.contains(&a.query) {
            others.push(a.query.clone());
        }
    }
    let waits = if waits.is_empty() {
        "not sampled".to_owned()
    } else {
        waits
            .iter()
            .map(|(w, n)| format!("{w} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let others = if others.is_empty() {
        "nothing sampled".to_owned()
    } else {
        others
            .iter()
            .take(4)
            .map(|q| format!("`{q}`"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    format!("the writer was {waits}; other sessions ran {others}")
}

impl Writer {
    /// Starts the legacy writer: a superuser login (so that what it measures is lock waits,
    /// not the permission changes the migrations make), with the default tenant as a session
    /// setting so its inserts keep getting a tenant once the column's default becomes the
    /// current tenant. Alternates `INSERT (name)` and `UPDATE ... WHERE id = $1`.
    async fn start(url: &str, ids: Vec<Uuid>, rate: u32) -> anyhow::Result<Self> {
        let mut opts = ConnectOptions::new(url);
        opts.max_connections(1)
            .min_connections(1)
            .sqlx_logging(false);
        opts.map_sqlx_postgres_opts(|o| o.options([("tenantry.tenant_id", DEFAULT_TENANT_ID)]));
        let db = Database::connect(opts).await?;
        let pid = rows(&db, "SELECT pg_backend_pid()", vec![])
            .await?
            .first()
            .and_then(|r| r.try_get_by_index::<i32>(0).ok())
            .unwrap_or(0);
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
                let update = i % 2 == 1 && !ids.is_empty();
                let res = if !update {
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
                    update,
                });
                i += 1;
            }
            let _ = db.close().await;
            (samples, first_error)
        });
        Ok(Self {
            stop,
            started,
            pid,
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
    /// Latency of the updates alone.
    updates: Stat,
    ops: usize,
    errors: usize,
    worst_at: Duration,
    worst_update: bool,
}

fn window(samples: &[Sample], from: Duration, to: Duration) -> Window {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    let lat: Vec<Duration> = inside.iter().map(|s| s.latency).collect();
    let upd: Vec<Duration> = inside
        .iter()
        .filter(|s| s.update)
        .map(|s| s.latency)
        .collect();
    let worst = inside.iter().max_by_key(|s| s.latency);
    Window {
        stat: Stat::of(&lat),
        updates: Stat::of(&upd),
        ops: inside.len(),
        errors: inside.iter().filter(|s| !s.ok).count(),
        worst_at: worst.map_or(Duration::ZERO, |s| s.at),
        worst_update: worst.is_some_and(|s| s.update),
    }
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

/// A migrated-from-legacy run.
struct RunResult {
    total_s: f64,
    /// `(what, started at since writer start, seconds)`.
    phases: Vec<(String, Duration, f64)>,
    before: Window,
    during: Window,
    after: Window,
    first_error: Option<String>,
    /// What the writer waited on during its worst stall, and what else ran.
    stall_cause: String,
}

/// Runs `migrate` on a fresh legacy database while the writer and the monitor run; drops the
/// database afterwards (so its autovacuum does not disturb the next measurements).
async fn with_writer(
    p: &Params,
    migrate: impl AsyncFnOnce(
        &DatabaseConnection,
        &dyn Fn() -> Duration,
    ) -> anyhow::Result<Vec<(String, Duration, f64)>>,
) -> anyhow::Result<RunResult> {
    let (db, owner, ids) = legacy_db(p.legacy_rows).await?;
    let writer = Writer::start(&db.superuser_url(), ids, p.writer_rate).await?;
    let started = writer.started;
    let monitor = Monitor::start(&db.superuser_url(), db.name.clone(), started).await?;
    let warm = Duration::from_secs_f64(if p.quick { 0.3 } else { 2.0 });
    tokio::time::sleep(warm).await;
    let t0 = started.elapsed();
    let clock = move || started.elapsed();
    let result = migrate(&owner, &clock).await;
    let t1 = started.elapsed();
    // Keep writing a little longer: what legacy code sees once the migration is done.
    tokio::time::sleep(warm).await;
    let t2 = started.elapsed();
    let writer_pid = writer.pid;
    let (samples, first_error) = writer.finish().await?;
    let acts = monitor.finish().await;
    owner.close().await?;
    drop_db(&db).await;
    let phases = result?;
    let during = window(&samples, t0, t1);
    let worst = samples
        .iter()
        .filter(|s| s.at >= t0 && s.at <= t1)
        .max_by_key(|s| s.latency)
        .copied();
    let stall_cause = match worst {
        Some(w) => explain_stall(&acts, writer_pid, w.at, w.at + w.latency),
        None => "no writes".into(),
    };
    Ok(RunResult {
        total_s: (t1 - t0).as_secs_f64(),
        phases,
        before: window(&samples, Duration::ZERO, t0),
        during,
        after: window(&samples, t1, t2),
        first_error,
        stall_cause,
    })
}

async fn ours(p: &Params) -> anyhow::Result<RunResult> {
    with_writer(p, async |owner, clock| {
        let mut phases = vec![];
        for name in run::pending(owner).await? {
            tracing::info!(migration = %name, "scenario 3: applying (writer running)");
            let at = clock();
            let t = Instant::now();
            run::run(owner, Command::Up(Some(1)))
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            phases.push((name, at, t.elapsed().as_secs_f64()));
        }
        if p.no_legacy_key_index {
            exec_text(owner, "DROP INDEX public.projects_legacy_key_idx").await?;
        }
        Ok(phases)
    })
    .await
}

async fn naive(p: &Params, same_work: bool) -> anyhow::Result<RunResult> {
    with_writer(p, async |owner, clock| {
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
                "CREATE UNIQUE INDEX projects_tenant_key_idx ON public.projects (tenant_id, id)"
                    .to_owned(),
                "CREATE INDEX projects_tenant_id_idx ON public.projects (tenant_id)".to_owned(),
                "CREATE INDEX projects_tenant_created_idx ON public.projects (tenant_id, created_at DESC)"
                    .to_owned(),
            ]);
        }
        tracing::info!(same_work, "scenario 3: naive transaction (writer running)");
        let txn = owner.begin().await?;
        let mut phases = vec![];
        for s in &statements {
            let at = clock();
            let t = Instant::now();
            exec_text(&txn, s).await?;
            phases.push((s.clone(), at, t.elapsed().as_secs_f64()));
        }
        let at = clock();
        let t = Instant::now();
        txn.commit().await?;
        phases.push(("COMMIT".into(), at, t.elapsed().as_secs_f64()));
        Ok(phases)
    })
    .await
}

fn phase_at(r: &RunResult, at: Duration) -> String {
    r.phases
        .iter()
        .rev()
        .find(|(_, start, _)| *start <= at)
        .map_or_else(|| "before the first step".into(), |(n, _, _)| short(n))
}

pub async fn run(p: &Params) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::new(3, TITLE);
    let _ = migration::backfill::take_recent();
    let o = ours(p).await?;
    // m0004's backfill of the legacy table (the runner keeps no report; the engine does).
    let legacy_backfill = migration::backfill::take_recent()
        .into_iter()
        .filter(|s| s.table == "public.projects")
        .max_by_key(|s| s.rows);
    let n = naive(p, false).await?;
    let same = if p.naive_same_work {
        Some(naive(p, true).await?)
    } else {
        None
    };

    let kind = |w: &Window| {
        if w.worst_update {
            "an UPDATE by id"
        } else {
            "an INSERT"
        }
    };
    sc.rows.push(
        Row::value(
            "writer worst stall during our migrations",
            "ms",
            o.during.stat.max_ms,
        )
        .target_value(Cmp::Le, 100.0)
        .note(format!(
            "{} during {}",
            kind(&o.during),
            phase_at(&o, o.during.worst_at)
        )),
    );
    sc.rows.push(
        Row::value(
            "writer worst stall during the naive transaction",
            "ms",
            n.during.stat.max_ms,
        )
        .note("naive: for comparison, no target"),
    );
    let mut p99 = Row::compared(
        "writer p99 latency during the migration (ours vs naive)",
        "ms",
        o.during.stat.p99_ms,
        n.during.stat.p99_ms,
    );
    p99 = p99.target_value(Cmp::Le, 10.0);
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
        Row::compared(
            "legacy UPDATE by id once migrated: median (ours vs naive)",
            "ms",
            o.after.updates.median_ms,
            n.after.updates.median_ms,
        )
        .note(format!(
            "before the migration: {} ms (ours), {} ms (naive)",
            fmt_ms(o.before.updates.median_ms),
            fmt_ms(n.before.updates.median_ms)
        )),
    );
    sc.rows.push(
        Row::compared("total migration time vs naive", "s", o.total_s, n.total_s)
            .target_ratio(Cmp::Le, 1.5)
            .note("naive = ADD COLUMN, UPDATE ... SET tenant_id = DEFAULT, SET NOT NULL in one transaction"),
    );
    if let Some(s) = &same {
        sc.rows.push(
            Row::compared(
                "total migration time vs naive + same index builds",
                "s",
                o.total_s,
                s.total_s,
            )
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

    if let Some(b) = &legacy_backfill {
        sc.rows.push(
            Row::value("our backfill of projects: longest batch", "ms", ms(b.max_batch))
                .note(format!(
                    "m0004, under the writer: {} batches, {} rows, {} sweep search(es) (read-only, not batches); the longest any row stayed locked (the budget is TENANTRY_BACKFILL_BUDGET_MS, 20 ms by default)",
                    b.batches, b.rows, b.searches
                )),
        );
        sc.rows.push(
            Row::value("our backfill of projects: p99 batch", "ms", ms(b.p99_batch))
                .note("99th percentile of m0004's batch durations"),
        );
    }

    // Tenant-root inheritance: children take their parent's tenant through a foreign key.
    let root = backfill_tenant_root::measure(p.legacy_rows, false).await?;
    sc.rows
        .extend(backfill_tenant_root::rows(&root, "1x legacy rows", true));
    if p.backfill_second_size {
        let big = backfill_tenant_root::measure(p.legacy_rows * 10, false).await?;
        sc.rows
            .extend(backfill_tenant_root::rows(&big, "10x legacy rows", false));
        let wide = backfill_tenant_root::measure(p.legacy_rows, true).await?;
        sc.rows.extend(backfill_tenant_root::rows(
            &wide,
            "1x legacy rows, wide (1 kB)",
            false,
        ));
    }

    let describe = |label: &str, r: &RunResult| {
        let phases = r
            .phases
            .iter()
            .map(|(n, _, s)| format!("{} {:.2}s", short(n), s))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{label}: {:.2} s; writer {} ops during it, {} failed{}; steps: {phases}",
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
    sc.notes.push(format!(
        "ours, worst stall ({} ms, {}): {}",
        fmt_ms(o.during.stat.max_ms),
        kind(&o.during),
        o.stall_cause
    ));
    sc.notes.push(describe("naive", &n));
    sc.notes.push(format!(
        "naive, worst stall ({} ms): {}",
        fmt_ms(n.during.stat.max_ms),
        n.stall_cause
    ));
    if let Some(s) = &same {
        sc.notes.push(describe("naive + same indexes", s));
    }
    sc.notes.push(format!(
        "the writer paces itself at {} ops/s (0 = flat out), alternating an INSERT without \
         tenant_id and an UPDATE by id, as a superuser (so it measures lock waits, not the \
         permissions the migration adds) with the default tenant as a session setting; a stall \
         is one write's latency; backfill: heap order, first batch TENANTRY_BACKFILL_BATCH={} \
         rows, then sized to TENANTRY_BACKFILL_BUDGET_MS={} per batch",
        p.writer_rate,
        std::env::var("TENANTRY_BACKFILL_BATCH").unwrap_or_else(|_| "5000 (default)".into()),
        std::env::var("TENANTRY_BACKFILL_BUDGET_MS").unwrap_or_else(|_| "20 (default)".into())
    ));
    if p.no_legacy_key_index {
        sc.notes.push(
            "EXPERIMENT (--no-legacy-key-index): m0008's non-unique index on projects (id) was \
             dropped once migrated, so legacy updates by id scan the table"
                .into(),
        );
    }
    Ok(sc)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn short(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s.to_owned()
    }
}
