//! Scenario 2: what a tenant-bound transaction costs, through the service.
//!
//! Ours: `tenantry.with_tenant(ctx, |tx| tx.list::<projects::Entity>(..))` (BEGIN, SET LOCAL,
//! the query, COMMIT) on the app login. Baseline: plain SeaORM, the same query with
//! `.filter(tenant_id)` and no transaction, on a superuser pool (RLS bypassed). Same pool
//! size, same concurrency, alternating rounds. Round trips are counted on the wire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use entity::projects;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set, TransactionTrait,
};
use service::{Page, TenantContext, Tenantry, TenantryConfig};
use tenantry_tests::databases::connect;
use tenantry_tests::logins::{APP_LOGIN, LoginRole};
use uuid::Uuid;

use super::Params;
use super::load::{LoadResult, alternate, closed_loop};
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

/// The service's read, statement for statement (BEGIN, SET LOCAL, the same SELECT, COMMIT),
/// on a pool that does not ping connections on acquire: what the one-line pool fix would give.
async fn projected_read(db: &DatabaseConnection, tenant: Uuid) -> anyhow::Result<usize> {
    let txn = db.begin().await?;
    txn.execute_unprepared(&format!("SET LOCAL tenantry.tenant_id = '{tenant}'"))
        .await?;
    let n = projects::Entity::find()
        .filter(projects::Column::TenantId.eq(tenant))
        .order_by(projects::Column::CreatedAt, Order::Desc)
        .order_by(projects::Column::Id, Order::Asc)
        .offset(0)
        .limit(50)
        .all(&txn)
        .await?
        .len();
    txn.commit().await?;
    Ok(n)
}

/// A pool like the service's (same size and statement timeout) without the acquire ping.
async fn projected_pool(url: &str, max: u32) -> anyhow::Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(max)
        .min_connections(0)
        .test_before_acquire(false)
        .sqlx_logging(false);
    opts.map_sqlx_postgres_opts(|o| o.options([("statement_timeout", "30000")]));
    Ok(Database::connect(opts).await?)
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Insert,
}

/// Counts the round trips of `n` sequential operations through a proxy (after a warm-up, so
/// connection set-up and statement preparation are excluded).
async fn round_trips(fx: &Fixture, port: u16, op: Op, ours: bool, n: u64) -> anyhow::Result<f64> {
    let proxy = RoundTripProxy::start(port).await?;
    let ctx_tenant = tenant_uuid(1);
    let count = if ours {
        let t = Tenantry::connect(
            TenantryConfig::new(proxy.url(&fx.db.url(LoginRole::App), port)).with_pool(1),
        )
        .await?;
        let ctx = contexts(&t, fx, 1).await?.remove(0);
        for i in 0..20 {
            match op {
                Op::Read => service_read(&t, &ctx).await.map(|_| ())?,
                Op::Insert => service_insert(&t, &ctx, i).await?,
            }
        }
        let before = proxy.round_trips();
        for i in 0..n {
            match op {
                Op::Read => service_read(&t, &ctx).await.map(|_| ())?,
                Op::Insert => service_insert(&t, &ctx, i).await?,
            }
        }
        let c = proxy.round_trips() - before;
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
        let before = proxy.round_trips();
        for i in 0..n {
            match op {
                Op::Read => plain_read(&db, ctx_tenant).await.map(|_| ())?,
                Op::Insert => plain_insert(&db, ctx_tenant, i).await?,
            }
        }
        let c = proxy.round_trips() - before;
        db.close().await?;
        c
    };
    Ok(count as f64 / n as f64)
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
    for op in [Op::Read, Op::Insert] {
        for &c in &p.concurrency {
            tracing::info!(concurrency = c, read = (op == Op::Read), "scenario 2");
            let t = tenantry.clone();
            let x = ctxs.clone();
            let ours = move |task: usize, i: u64| {
                let t = t.clone();
                let ctx = x[(task * 7 + i as usize) % x.len()].clone();
                async move {
                    match op {
                        Op::Read => service_read(&t, &ctx).await.map(|_| ()),
                        Op::Insert => service_insert(&t, &ctx, i).await,
                    }
                }
            };
            let db = plain.clone();
            let ts = tenants.clone();
            let base = move |task: usize, i: u64| {
                let db = db.clone();
                let tenant = ts[(task * 7 + i as usize) % ts.len()];
                async move {
                    match op {
                        Op::Read => plain_read(&db, tenant).await.map(|_| ()),
                        Op::Insert => plain_insert(&db, tenant, i).await,
                    }
                }
            };
            // Warm both pools to `c` connections.
            let warm = Duration::from_secs_f64((p.seconds / 8.0).min(0.5));
            closed_loop(c, warm, max_ops, base.clone()).await;
            closed_loop(c, warm, max_ops, ours.clone()).await;
            let (b, o) = alternate(c, round, ROUNDS, max_ops, base, ours).await;
            check_errors(&mut sc, &b, "baseline");
            check_errors(&mut sc, &o, "ours");
            let what = match op {
                Op::Read => "read: list 50 most recent",
                Op::Insert => "insert one project",
            };
            sc.rows.push(
                Row::throughput(
                    format!("{what}, {c} task(s)"),
                    o.rate(),
                    &o.stat(),
                    b.rate(),
                    &b.stat(),
                )
                .target_ratio(Cmp::Ge, 0.85),
            );
        }
    }

    // The projected fix: the same statements as ours on a pool without the acquire ping.
    let projected = projected_pool(&fx.db.url(LoginRole::App), p.pool).await?;
    for &c in &p.concurrency {
        tracing::info!(concurrency = c, "scenario 2: projected fix");
        let db = projected.clone();
        let ts = tenants.clone();
        let fixed = move |task: usize, i: u64| {
            let db = db.clone();
            let tenant = ts[(task * 7 + i as usize) % ts.len()];
            async move { projected_read(&db, tenant).await.map(|_| ()) }
        };
        let db = plain.clone();
        let ts = tenants.clone();
        let base = move |task: usize, i: u64| {
            let db = db.clone();
            let tenant = ts[(task * 7 + i as usize) % ts.len()];
            async move { plain_read(&db, tenant).await.map(|_| ()) }
        };
        let warm = Duration::from_secs_f64((p.seconds / 8.0).min(0.5));
        closed_loop(c, warm, max_ops, fixed.clone()).await;
        let (b, o) = alternate(c, round, ROUNDS, max_ops, base, fixed).await;
        check_errors(&mut sc, &o, "projected");
        sc.rows.push(
            Row::throughput(
                format!("read, {c} task(s): PROJECTED with the pool fix (no acquire ping)"),
                o.rate(),
                &o.stat(),
                b.rate(),
                &b.stat(),
            )
            .note("the service's statements on a pool with test_before_acquire(false); not the service itself"),
        );
    }
    projected.close().await?;
    tenantry.close().await?;
    plain.close().await?;

    let tenantry =
        Tenantry::connect(TenantryConfig::new(fx.db.url(LoginRole::App)).with_pool(p.pool)).await?;
    let plain = connect(&fx.db.superuser_url(), p.pool).await?;
    let ctx = contexts(&tenantry, fx, 1).await?.remove(0);
    for row in breakdown(&tenantry, &ctx, &plain, if p.quick { 50 } else { 1000 }).await? {
        sc.rows
            .push(row.note("medians; ratio against the plain read's median"));
    }
    tenantry.close().await?;
    plain.close().await?;
    explain_generic(fx, &mut sc).await?;

    let n = if p.quick { 20 } else { 200 };
    for (op, what) in [(Op::Read, "read"), (Op::Insert, "insert")] {
        let ours = round_trips(fx, port, op, true, n).await?;
        let base = round_trips(fx, port, op, false, n).await?;
        sc.rows.push(
            Row::compared(format!("round trips per {what}"), "round trips", ours, base)
                .note(
                    "counted on the wire; ours: acquire ping, BEGIN, SET LOCAL, query, COMMIT, release ping; \
                     baseline: acquire ping, query, release ping (the release ping is off the caller's path)",
                ),
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
    n: usize,
) -> anyhow::Result<Vec<Row>> {
    let (mut begin, mut query, mut commit, mut total, mut base) =
        (vec![], vec![], vec![], vec![], vec![]);
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
        if i >= n / 10 {
            begin.push(t1 - t0);
            query.push(t2 - t1);
            commit.push(t3 - t2);
            total.push(t3 - t0);
            base.push(t4 - t3);
        }
    }
    let b = Stat::of(&base);
    Ok(vec![
        Row::latency(
            "1 task, one read: whole transaction vs plain read",
            &Stat::of(&total),
            &b,
        ),
        Row::latency(
            "  of which acquire + BEGIN + SET LOCAL",
            &Stat::of(&begin),
            &b,
        ),
        Row::latency("  of which the SELECT (list 50)", &Stat::of(&query), &b),
        Row::latency("  of which COMMIT", &Stat::of(&commit), &b),
    ])
}

fn check_errors(sc: &mut Scenario, r: &LoadResult, side: &str) {
    if r.errors > 0 {
        sc.notes.push(format!(
            "WARNING: {} {side} operations failed, first: {}",
            r.errors,
            r.first_error.clone().unwrap_or_default()
        ));
    }
}
