//! Scenario 2: what a tenant-bound transaction costs, through the service.
//!
//! Ours: `tenantry.with_tenant(ctx, |tx| tx.list::<projects::Entity>(..))` (`BEGIN; SET LOCAL`
//! as one message, the query, COMMIT) on the app login. Baseline: plain SeaORM, the same query
//! with `.filter(tenant_id)` and no transaction, on a superuser pool (RLS bypassed). Second
//! baseline: the same tenant transaction written by hand with sqlx (BEGIN; SET LOCAL; query;
//! COMMIT) on the app login. Same pool size, same concurrency, alternating rounds. Round trips
//! are counted on the wire.
//!
//! Each row is measured for both of our paths: the tenant transaction (`with_tenant`, three
//! round trips) and the one-round-trip unit of work (`Tenantry::fetch_all` / `insert_one`:
//! opening, statement and `COMMIT` pipelined on one connection, one wait). The target against
//! plain SeaORM (≥ 0.85) is the one-round-trip path's: it is the service's path for a
//! one-statement unit of work, and `with_tenant` (the path for units of several statements,
//! whose closure may await between them, so nothing can be sent ahead) pays 3 round trips
//! against the autocommit read's 1; its rows there are reported for reference. The target
//! against the hand-written transaction (≥ 0.95) is on both paths: for `with_tenant` it is the
//! like-for-like comparison (3 round trips against 4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use entity::projects;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Set, TransactionTrait,
};
use service::{Page, TenantContext, Tenantry, TenantryConfig};
use tenantry_tests::databases::connect;
use tenantry_tests::logins::{APP_LOGIN, LoginRole};
use uuid::Uuid;

use super::Params;
use super::load::{LoadResult, alternate, closed_loop, cpu_note};
use super::report::{Cmp, Explain, Row, Scenario};
use super::setup::{BENCH_OWNER, Fixture, exec_text, snippet, tenant_uuid, text_lines};
use super::stats::Stat;
use tenantry_tests::proxy::RoundTripProxy;

/// Alternating rounds per side and cell (the order flips every round).
const ROUNDS: usize = 4;

pub const TITLE: &str = "Tenant-bound transaction overhead through the service";

/// Contexts of the first `n` bench tenants, as the owner user.
pub async fn contexts(
    tenantry: &Tenantry,
    fx: &Fixture,
    n: usize,
) -> anyhow::Result<Vec<TenantContext>> {
    let mut out = vec![];
    for i in 0..n.min(fx.tenants as usize).max(1) {
        out.push(
            tenantry
                .member_context(tenant_uuid(i as u64 + 1), BENCH_OWNER)
                .await?,
        );
    }
    Ok(out)
}

/// The plain SeaORM read: what an application without tenancy would run.
pub async fn plain_read(db: &DatabaseConnection, tenant: Uuid) -> anyhow::Result<usize> {
    Ok(projects::Entity::find()
        .filter(projects::Column::TenantId.eq(tenant))
        .order_by(projects::Column::CreatedAt, Order::Desc)
        .order_by(projects::Column::Id, Order::Asc)
        .offset(0)
        .limit(50)
        .all(db)
        .await?
        .len())
}

/// Ours: the same list through a tenant-bound transaction.
pub async fn service_read(tenantry: &Tenantry, ctx: &TenantContext) -> anyhow::Result<usize> {
    let rows = tenantry
        .with_tenant(ctx, async |tx| {
            tx.list::<projects::Entity>(
                service::tx::all(),
                vec![(projects::Column::CreatedAt, Order::Desc)],
                Page::default(),
            )
            .await
        })
        .await?;
    Ok(rows.len())
}

/// The list of [`service_read`] as a SeaORM select; the service adds the tenant filter.
fn recent_projects() -> sea_orm::Select<projects::Entity> {
    projects::Entity::find()
        .order_by(projects::Column::CreatedAt, Order::Desc)
        .order_by(projects::Column::Id, Order::Asc)
        .offset(0)
        .limit(50)
}

/// Ours, in one round trip: the same list through `Tenantry::fetch_all`.
pub async fn one_trip_read(tenantry: &Tenantry, ctx: &TenantContext) -> anyhow::Result<usize> {
    Ok(tenantry.fetch_all(ctx, recent_projects()).await?.len())
}

/// Ours, in one round trip: the same insert through `Tenantry::insert_one`.
async fn one_trip_insert(tenantry: &Tenantry, ctx: &TenantContext, i: u64) -> anyhow::Result<()> {
    tenantry
        .insert_one(
            ctx,
            projects::ActiveModel {
                name: Set(format!("bench insert {i}")),
                ..Default::default()
            },
        )
        .await?;
    Ok(())
}

/// The columns of `projects`, as the hand-written transactions select and return them.
const PROJECT_COLUMNS: &str =
    "tenant_id, id, owner_id, name, description, status, metadata, created_at, updated_at";

/// Decodes every column of a `projects` row (what SeaORM does into its model).
fn decode_project(row: &sqlx::postgres::PgRow) -> anyhow::Result<()> {
    use sqlx::Row;
    use sqlx::types::chrono::{DateTime, FixedOffset};
    let _: (Uuid, Uuid, Option<Uuid>) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let _: (String, String, String) = (row.try_get(3)?, row.try_get(4)?, row.try_get(5)?);
    let _: sqlx::types::JsonValue = row.try_get(6)?;
    let _: (DateTime<FixedOffset>, DateTime<FixedOffset>) = (row.try_get(7)?, row.try_get(8)?);
    Ok(())
}

/// The second baseline: the same tenant transaction written by hand with sqlx, the best a team
/// rolling its own would get: `BEGIN`; `SET LOCAL` (simple protocol); the SELECT (prepared,
/// cached); `COMMIT`, on the app login under RLS.
async fn hand_read(pool: &sqlx::PgPool, tenant: Uuid) -> anyhow::Result<usize> {
    Ok(hand_read_timed(pool, tenant).await?.0)
}

/// [`hand_read`], with the instant the opening (the acquire, `BEGIN`, `SET LOCAL`), the SELECT
/// with its decoding and `COMMIT` were each done.
async fn hand_read_timed(
    pool: &sqlx::PgPool,
    tenant: Uuid,
) -> anyhow::Result<(usize, [Instant; 3])> {
    use sqlx::Executor;
    let mut tx = pool.begin().await?;
    (&mut *tx)
        .execute(sqlx::AssertSqlSafe(format!(
            "SET LOCAL tenantry.tenant_id = '{tenant}'"
        )))
        .await?;
    let set = Instant::now();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {PROJECT_COLUMNS} FROM public.projects WHERE tenant_id = $1 \
         ORDER BY created_at DESC, id ASC LIMIT $2 OFFSET $3"
    )))
    .bind(tenant)
    .bind(50i64)
    .bind(0i64)
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        decode_project(row)?;
    }
    let read = Instant::now();
    tx.commit().await?;
    Ok((rows.len(), [set, read, Instant::now()]))
}

/// The hand-written insert: `BEGIN`; `SET LOCAL`; `INSERT ... RETURNING`; `COMMIT`.
async fn hand_insert(pool: &sqlx::PgPool, tenant: Uuid, i: u64) -> anyhow::Result<()> {
    use sqlx::Executor;
    let mut tx = pool.begin().await?;
    (&mut *tx)
        .execute(sqlx::AssertSqlSafe(format!(
            "SET LOCAL tenantry.tenant_id = '{tenant}'"
        )))
        .await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO public.projects (tenant_id, name) VALUES ($1, $2) RETURNING {PROJECT_COLUMNS}"
    )))
    .bind(tenant)
    .bind(format!("bench insert {i}"))
    .fetch_one(&mut *tx)
    .await?;
    decode_project(&row)?;
    tx.commit().await?;
    Ok(())
}

/// A sqlx pool like the service's (same size, no ping on acquire).
async fn hand_pool(url: &str, max: u32) -> anyhow::Result<sqlx::PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
        .test_before_acquire(false)
        .connect(url)
        .await?)
}

async fn plain_insert(db: &DatabaseConnection, tenant: Uuid, i: u64) -> anyhow::Result<()> {
    projects::ActiveModel {
        tenant_id: Set(tenant),
        name: Set(format!("bench insert {i}")),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

async fn service_insert(tenantry: &Tenantry, ctx: &TenantContext, i: u64) -> anyhow::Result<()> {
    tenantry
        .with_tenant(ctx, async |tx| {
            tx.insert(projects::ActiveModel {
                name: Set(format!("bench insert {i}")),
                ..Default::default()
            })
            .await
        })
        .await?;
    Ok(())
}

/// The note on the hand-written baseline's rows.
const BY_HAND_NOTE: &str =
    "baseline: BEGIN; SET LOCAL; the statement; COMMIT with sqlx on the app login";

/// The note on `with_tenant`'s rows against plain SeaORM, which carry no target.
const WITH_TENANT_NOTE: &str = "with_tenant, the path for units of several statements, for \
     reference: 3 round trips against the autocommit read's 1; a one-statement unit's target is \
     on its one-round-trip rows";

/// The note on `with_tenant`'s rows against the hand-written transaction.
const WITH_TENANT_BY_HAND_NOTE: &str = "with_tenant: like for like, 3 round trips against 4; \
     the gap is our own work per unit (see BENCHMARKS.md, Findings 2)";

/// The note on the one-round-trip rows against the hand-written transaction.
const ONE_TRIP_BY_HAND_NOTE: &str = "one wait against 4 round trips: the protocol, not less work";

/// What ours is compared with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Baseline {
    /// Plain SeaORM without a transaction, on a superuser pool.
    Plain,
    /// The same tenant transaction written by hand with sqlx, on the app login.
    ByHand,
}

impl Baseline {
    fn side(self) -> &'static str {
        match self {
            Baseline::Plain => "baseline",
            Baseline::ByHand => "by hand",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Baseline::Plain => "",
            Baseline::ByHand => ": vs the same transaction by hand (sqlx)",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Insert,
}

/// Which of our paths runs the operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    /// `with_tenant`: the tenant transaction (opening message, statement, COMMIT).
    Tx,
    /// `fetch_all` / `insert_one`: the one-round-trip unit of work.
    OneTrip,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Tx => ", with_tenant",
            Path::OneTrip => ", one round trip",
        }
    }

    async fn run(self, t: &Tenantry, ctx: &TenantContext, op: Op, i: u64) -> anyhow::Result<()> {
        match (self, op) {
            (Path::Tx, Op::Read) => service_read(t, ctx).await.map(|_| ()),
            (Path::Tx, Op::Insert) => service_insert(t, ctx, i).await,
            (Path::OneTrip, Op::Read) => one_trip_read(t, ctx).await.map(|_| ()),
            (Path::OneTrip, Op::Insert) => one_trip_insert(t, ctx, i).await,
        }
    }
}

/// Counts the round trips of `n` sequential operations through a proxy (after a warm-up, so
/// connection set-up and statement preparation are excluded): request cycles and waits per
/// operation (`RoundTripProxy::waits`: cycles sent with none unanswered; a pipeline waits once).
/// `ours`: which of our paths, `None` for the plain baseline.
async fn round_trips(
    fx: &Fixture,
    port: u16,
    op: Op,
    ours: Option<Path>,
    n: u64,
) -> anyhow::Result<(f64, f64)> {
    let proxy = RoundTripProxy::start(port).await?;
    let ctx_tenant = tenant_uuid(1);
    let (count, waits) = if let Some(path) = ours {
        let t = Tenantry::connect(
            TenantryConfig::new(proxy.url(&fx.db.url(LoginRole::App), port)).with_pool(1),
        )
        .await?;
        let ctx = contexts(&t, fx, 1).await?.remove(0);
        for i in 0..20 {
            path.run(&t, &ctx, op, i).await?;
        }
        let (before, waits) = (proxy.round_trips(), proxy.waits());
        for i in 0..n {
            path.run(&t, &ctx, op, i).await?;
        }
        let c = (proxy.round_trips() - before, proxy.waits() - waits);
        t.close().await?;
        c
    } else {
        let db = connect(&proxy.url(&fx.db.superuser_url(), port), 1).await?;
        for i in 0..20 {
            match op {
                Op::Read => plain_read(&db, ctx_tenant).await.map(|_| ())?,
                Op::Insert => plain_insert(&db, ctx_tenant, i).await?,
            }
        }
        let (before, waits) = (proxy.round_trips(), proxy.waits());
        for i in 0..n {
            match op {
                Op::Read => plain_read(&db, ctx_tenant).await.map(|_| ())?,
                Op::Insert => plain_insert(&db, ctx_tenant, i).await?,
            }
        }
        let c = (proxy.round_trips() - before, proxy.waits() - waits);
        db.close().await?;
        c
    };
    Ok((count as f64 / n as f64, waits as f64 / n as f64))
}

pub async fn run(p: &Params, fx: &Fixture, port: u16) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::new(2, TITLE);
    let tenantry =
        Tenantry::connect(TenantryConfig::new(fx.db.url(LoginRole::App)).with_pool(p.pool)).await?;
    let ctxs = Arc::new(contexts(&tenantry, fx, 64).await?);
    let plain = connect(&fx.db.superuser_url(), p.pool).await?;
    let tenants: Arc<Vec<Uuid>> = Arc::new(ctxs.iter().map(|c| c.tenant_id()).collect());

    // Sanity: both sides return the same rows for the same tenant.
    let a = plain_read(&plain, tenants[0]).await?;
    let b = service_read(&tenantry, &ctxs[0]).await?;
    if a != b {
        sc.notes.push(format!(
            "WARNING: the baseline read returned {a} rows, ours {b}"
        ));
    }

    let round = Duration::from_secs_f64(p.seconds / ROUNDS as f64);
    let max_ops = 5_000_000;
    // The second baseline: the same tenant transaction written by hand with sqlx.
    let hand = hand_pool(&fx.db.url(LoginRole::App), p.pool).await?;
    for baseline in [Baseline::Plain, Baseline::ByHand] {
        for op in [Op::Read, Op::Insert] {
            for (path, &c) in [Path::Tx, Path::OneTrip]
                .into_iter()
                .flat_map(|path| p.concurrency.iter().map(move |c| (path, c)))
            {
                tracing::info!(
                    concurrency = c,
                    read = (op == Op::Read),
                    ?baseline,
                    ?path,
                    "scenario 2"
                );
                let t = tenantry.clone();
                let x = ctxs.clone();
                let ours = move |task: usize, i: u64| {
                    let t = t.clone();
                    let ctx = x[(task * 7 + i as usize) % x.len()].clone();
                    async move { path.run(&t, &ctx, op, i).await }
                };
                let (db, pool, ts) = (plain.clone(), hand.clone(), tenants.clone());
                let base = move |task: usize, i: u64| {
                    let (db, pool) = (db.clone(), pool.clone());
                    let tenant = ts[(task * 7 + i as usize) % ts.len()];
                    async move {
                        match (baseline, op) {
                            (Baseline::Plain, Op::Read) => {
                                plain_read(&db, tenant).await.map(|_| ())
                            }
                            (Baseline::Plain, Op::Insert) => plain_insert(&db, tenant, i).await,
                            (Baseline::ByHand, Op::Read) => {
                                hand_read(&pool, tenant).await.map(|_| ())
                            }
                            (Baseline::ByHand, Op::Insert) => hand_insert(&pool, tenant, i).await,
                        }
                    }
                };
                // Warm both pools to `c` connections.
                let warm = Duration::from_secs_f64((p.seconds / 8.0).min(0.5));
                closed_loop(c, warm, max_ops, base.clone()).await;
                closed_loop(c, warm, max_ops, ours.clone()).await;
                let (b, o) = alternate(c, round, ROUNDS, max_ops, base, ours).await;
                check_errors(&mut sc, &b, baseline.side());
                check_errors(&mut sc, &o, "ours");
                let what = match op {
                    Op::Read => "read: list 50 most recent",
                    Op::Insert => "insert one project",
                };
                let row = Row::throughput(
                    format!("{what}{}, {c} task(s){}", path.label(), baseline.suffix()),
                    o.rate(),
                    &o.stat(),
                    b.rate(),
                    &b.stat(),
                );
                let cpu = cpu_note(&o, &b);
                sc.rows.push(
                    match (path, baseline) {
                        // A one-statement unit's target against plain SeaORM is the one-round-trip
                        // path's; `with_tenant` (whose closure may await between statements) pays
                        // 3 round trips against the autocommit read's 1, and is shown for reference.
                        (Path::Tx, Baseline::Plain) => row.note(WITH_TENANT_NOTE),
                        // Against the same transaction by hand, both paths carry the target: for
                        // `with_tenant` it is like for like (3 round trips against 4).
                        (Path::Tx, Baseline::ByHand) => row
                            .target_ratio(Cmp::Ge, 0.95)
                            .note(format!("{BY_HAND_NOTE}; {WITH_TENANT_BY_HAND_NOTE}")),
                        (Path::OneTrip, Baseline::Plain) => row.target_ratio(Cmp::Ge, 0.85),
                        (Path::OneTrip, Baseline::ByHand) => row
                            .target_ratio(Cmp::Ge, 0.95)
                            .note(format!("{BY_HAND_NOTE}; {ONE_TRIP_BY_HAND_NOTE}")),
                    }
                    .also(cpu),
                );
            }
        }
    }
    hand.close().await;
    tenantry.close().await?;
    plain.close().await?;

    let tenantry =
        Tenantry::connect(TenantryConfig::new(fx.db.url(LoginRole::App)).with_pool(p.pool)).await?;
    let plain = connect(&fx.db.superuser_url(), p.pool).await?;
    let ctx = contexts(&tenantry, fx, 1).await?.remove(0);
    let hand = hand_pool(&fx.db.url(LoginRole::App), p.pool).await?;
    let n = if p.quick { 50 } else { 1000 };
    let mut rows = breakdown(&tenantry, &ctx, &plain, &hand, n).await?;
    // After the opening's row, before the SELECT's and COMMIT's.
    let at = rows.len().saturating_sub(2);
    rows.insert(at, entry_cost(&fx.db.url(LoginRole::App), &ctx, n).await?);
    sc.rows.extend(rows);
    hand.close().await;
    tenantry.close().await?;
    plain.close().await?;
    explain_generic(fx, &mut sc).await?;

    let n = if p.quick { 20 } else { 200 };
    for (op, what) in [(Op::Read, "read"), (Op::Insert, "insert")] {
        let (ours, _) = round_trips(fx, port, op, Some(Path::Tx), n).await?;
        let (base, base_waits) = round_trips(fx, port, op, None, n).await?;
        sc.rows.push(
            Row::compared(format!("round trips per {what}"), "round trips", ours, base).note(
                "counted on the wire; ours: BEGIN + SET LOCAL (one message), query, COMMIT, \
                     release ping; baseline: query, release ping (sqlx's release ping is off the \
                     caller's path)",
            ),
        );
        let (cycles, waits) = round_trips(fx, port, op, Some(Path::OneTrip), n).await?;
        sc.rows.push(
            Row::compared(
                format!("waits per {what}, one round trip"),
                "waits",
                waits,
                base_waits,
            )
            .target_value(Cmp::Le, 1.0)
            .note(format!(
                "counted on the wire: request cycles sent while none was unanswered; ours: \
                 opening, statement and COMMIT pipelined ({cycles:.1} request cycles, one wait), \
                 no release ping; baseline: query, release ping"
            )),
        );
    }
    sc.notes.push(
        "ratio = our operations per second / the baseline's (same pool size, same concurrency, \
         four alternating rounds each); latencies are per operation as the caller sees them"
            .into(),
    );
    sc.notes.push(format!(
        "pool size {} on both sides; every op picks one of {} tenants",
        p.pool,
        tenants.len()
    ));
    Ok(sc)
}

/// The list's SQL exactly as SeaORM sends it (LIMIT and OFFSET are bind parameters), and
/// EXPLAIN ANALYZE of its generic plan (the one a prepared statement settles on after five
/// executions) under RLS as the app login and as the superuser.
async fn explain_generic(fx: &Fixture, sc: &mut Scenario) -> anyhow::Result<()> {
    let tenant = tenant_uuid(1);
    let stmt = projects::Entity::find()
        .filter(projects::Column::TenantId.eq(tenant))
        .order_by(projects::Column::CreatedAt, Order::Desc)
        .order_by(projects::Column::Id, Order::Asc)
        .offset(0)
        .limit(50)
        .build(sea_orm::DbBackend::Postgres);
    let su = connect(&fx.db.superuser_url(), 1).await?;
    for (title, role) in [
        (
            "ours: the service's list as the app login, under RLS",
            Some(APP_LOGIN),
        ),
        ("baseline: the same statement as the superuser", None),
    ] {
        let txn = su.begin().await?;
        exec_text(&txn, "SET LOCAL plan_cache_mode = force_generic_plan").await?;
        exec_text(&txn, &format!("SET LOCAL tenantry.tenant_id = '{tenant}'")).await?;
        if let Some(r) = role {
            exec_text(&txn, &format!("SET LOCAL ROLE {r}")).await?;
        }
        exec_text(&txn, &format!("PREPARE bench_list AS {}", stmt.sql)).await?;
        let lines = text_lines(
            &txn,
            &format!(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE bench_list('{tenant}', 50, 0)"
            ),
        )
        .await?;
        txn.rollback().await?;
        exec_text(&su, "DEALLOCATE bench_list").await?;
        sc.explain.push(Explain {
            title: format!("{title}, generic plan"),
            lines: snippet(lines, 12),
        });
    }
    su.close().await?;
    sc.notes
        .push(format!("the list as SeaORM sends it: `{}`", stmt.sql));
    Ok(())
}

/// Where the time of one read goes, one task, medians: acquire + BEGIN + SET LOCAL, the
/// SELECT, COMMIT; against the plain read.
async fn breakdown(
    tenantry: &Tenantry,
    ctx: &TenantContext,
    plain: &DatabaseConnection,
    hand: &sqlx::PgPool,
    n: usize,
) -> anyhow::Result<Vec<Row>> {
    let (mut begin, mut query, mut commit, mut total, mut base) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut h_open, mut h_query, mut h_commit, mut h_total) = (vec![], vec![], vec![], vec![]);
    for i in 0..n + n / 10 {
        let t0 = Instant::now();
        let tx = tenantry.begin(ctx).await?;
        let t1 = Instant::now();
        tx.list::<projects::Entity>(
            service::tx::all(),
            vec![(projects::Column::CreatedAt, Order::Desc)],
            Page::default(),
        )
        .await?;
        let t2 = Instant::now();
        tx.commit().await?;
        let t3 = Instant::now();
        plain_read(plain, ctx.tenant_id()).await?;
        let t4 = Instant::now();
        let (_, [set, read, done]) = hand_read_timed(hand, ctx.tenant_id()).await?;
        if i >= n / 10 {
            begin.push(t1 - t0);
            query.push(t2 - t1);
            commit.push(t3 - t2);
            total.push(t3 - t0);
            base.push(t4 - t3);
            h_open.push(set - t4);
            h_query.push(read - set);
            h_commit.push(done - read);
            h_total.push(done - t4);
        }
    }
    let b = Stat::of(&base);
    let by_hand = "medians; ratio against the same phase of the hand-written transaction";
    Ok(vec![
        Row::latency(
            "1 task, one read: whole transaction vs plain read",
            &Stat::of(&total),
            &b,
        )
        .note(PLAIN_PHASE_NOTE),
        Row::latency(
            "  of which acquire + BEGIN + SET LOCAL",
            &Stat::of(&begin),
            &b,
        )
        .note(PLAIN_PHASE_NOTE),
        Row::latency("  of which the SELECT (list 50)", &Stat::of(&query), &b)
            .note(PLAIN_PHASE_NOTE),
        Row::latency("  of which COMMIT", &Stat::of(&commit), &b).note(PLAIN_PHASE_NOTE),
        Row::latency(
            "1 task, one read: with_tenant vs the same transaction by hand",
            &Stat::of(&total),
            &Stat::of(&h_total),
        )
        .note(by_hand),
        Row::latency(
            "  opening: one message (BEGIN with the level, context, schema entry) vs BEGIN, then SET LOCAL",
            &Stat::of(&begin),
            &Stat::of(&h_open),
        )
        .note(format!("{by_hand}; both with the acquire")),
        Row::latency(
            "  the SELECT (list 50): into SeaORM models vs decoded with sqlx",
            &Stat::of(&query),
            &Stat::of(&h_query),
        )
        .note(by_hand),
        Row::latency("  COMMIT", &Stat::of(&commit), &Stat::of(&h_commit)).note(by_hand),
    ])
}

/// What the schema entry costs a shared tenant's opening: the service's opening message
/// against the same message without its `CALL tenancy.enter_tenant()`, interleaved on one
/// connection like the service's (the app login, its session already on the entry's
/// `search_path`, so the entry's resets find nothing to do), each rolled back untimed.
async fn entry_cost(url: &str, ctx: &TenantContext, n: usize) -> anyhow::Result<Row> {
    use sqlx::{ConnectOptions, Connection, Executor};
    let opts: sqlx::postgres::PgConnectOptions = url.parse()?;
    let mut conn = opts
        .options([("search_path", migration::names::ENTRY_SEARCH_PATH)])
        .connect()
        .await?;
    let with = service::tx::begin_sql(ctx);
    let without = format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED; {}",
        service::tx::set_local_sql(ctx)
    );
    let (mut entered, mut bare) = (vec![], vec![]);
    for i in 0..n + n / 10 {
        for (sql, out) in [(&with, &mut entered), (&without, &mut bare)] {
            let t = Instant::now();
            (&mut conn)
                .execute(sqlx::AssertSqlSafe(sql.clone()))
                .await?;
            let d = t.elapsed();
            (&mut conn).execute("ROLLBACK").await?;
            if i >= n / 10 {
                out.push(d);
            }
        }
    }
    conn.close().await?;
    Ok(Row::latency(
        "  of the opening, the schema entry: with it vs the same message without",
        &Stat::of(&entered),
        &Stat::of(&bare),
    )
    .note(
        "medians, one connection, interleaved: the opening message with and without \
         CALL tenancy.enter_tenant(), each rolled back untimed",
    ))
}

/// The note on the breakdown's rows against the plain read.
const PLAIN_PHASE_NOTE: &str = "medians; ratio against the plain read's median";

fn check_errors(sc: &mut Scenario, r: &LoadResult, side: &str) {
    if r.errors > 0 {
        sc.notes.push(format!(
            "WARNING: {} {side} operations failed, first: {}",
            r.errors,
            r.first_error.clone().unwrap_or_default()
        ));
    }
}
