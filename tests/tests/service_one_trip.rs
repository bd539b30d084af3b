//! The one-round-trip tenant unit of work (`Tenantry::fetch_all`, `fetch_one`, `insert_one`)
//! against a real PostgreSQL: one wait on the wire per unit (counted by the harness's proxy),
//! each tenant sees only its own rows (shared and dedicated tenants, by list, by id, and with
//! a filter naming another tenant), a failed opening runs no statement and its connection is
//! closed, a unit cancelled in flight never hands its connection to the next tenant, the
//! same holds behind PgBouncer in transaction mode, no unit ever leaves a named statement on
//! its session (a column of a type tokio-postgres would look up, such as `citext`), the app
//! URL's own `options` hold, and a caller's select list never reaches a model.

mod service_support;

use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};

use anyhow::{Result, bail, ensure};
use entity::projects;
use migration::dedicated::TenantSchema;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, UnionType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
    QueryTrait,
};
use service::tenants::Isolation;
use service::{ServiceError, TenantContext, Tenantry, TenantryConfig};
use service_support::{
    Env, config, env, env_with, insert_project, project, scalar, tenant_with, three_tenants, user,
};
use tenantry_tests::isolation::pool::PgBouncer;
use tenantry_tests::logins::{APP_LOGIN, LoginRole};
use tenantry_tests::proxy::RoundTripProxy;
use uuid::Uuid;

/// A project row for the pipelined insert (the tenant is filled in by the service).
fn new_project(name: &str) -> projects::ActiveModel {
    projects::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(name.into()),
        ..Default::default()
    }
}

/// Provisions a dedicated tenant owned by a new user (committed).
async fn dedicated(svc: &Tenantry, slug: &str) -> Result<(Uuid, TenantContext)> {
    let owner = user(svc, &format!("owner@{slug}.test"), "Owner").await?;
    tenant_with(svc, slug, owner, Isolation::Dedicated).await
}

/// Rows of `projects` in `schema` for `tenant`, seen by the superuser (under RLS's radar).
async fn rows_in(su: &DatabaseConnection, schema: &str, tenant: Uuid) -> Result<i64> {
    scalar(
        su,
        &format!("SELECT count(*) AS n FROM {schema}.projects WHERE tenant_id = $1"),
        [tenant.into()],
    )
    .await
}

// Multi-threaded, as a server runs: the pipeline must still leave in one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_and_an_insert_wait_once_on_the_wire() -> Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    project(&env.svc, &a.ctx, "a's").await?;
    let port = env.db.port();
    let proxy = RoundTripProxy::start(port).await?;
    let svc = Tenantry::connect(
        TenantryConfig::new(proxy.url(&env.db.url(LoginRole::App), port)).with_pool(1),
    )
    .await?;
    // Warm-up: the pipelined pool connects, and prepares each statement, on first use.
    svc.fetch_all(&a.ctx, projects::Entity::find()).await?;
    let n = 10;
    let (waits, trips) = (proxy.waits(), proxy.round_trips());
    for _ in 0..n {
        let rows = svc.fetch_all(&a.ctx, projects::Entity::find()).await?;
        ensure!(rows.len() == 1 && rows[0].tenant_id == a.id, "{rows:?}");
    }
    let (read_waits, read_trips) = (proxy.waits() - waits, proxy.round_trips() - trips);
    // Three request cycles (opening, the prepared statement's Bind/Execute, COMMIT), answered
    // after one wait.
    ensure!(
        read_trips == 3 * n,
        "{read_trips} request cycles for {n} reads"
    );
    ensure!(read_waits == n, "{read_waits} waits for {n} reads");

    svc.insert_one(&a.ctx, new_project("warm-up")).await?;
    let waits = proxy.waits();
    for i in 0..n {
        let row = svc
            .insert_one(&a.ctx, new_project(&format!("p{i}")))
            .await?;
        ensure!(row.tenant_id == a.id && row.status == "active", "{row:?}");
    }
    let insert_waits = proxy.waits() - waits;
    ensure!(insert_waits == n, "{insert_waits} waits for {n} inserts");
    ensure!(
        svc.pipeline_idle_connections() == 1,
        "one connection served them all"
    );
    // The rows are committed: the ordinary path sees them.
    let count = env
        .svc
        .with_tenant(&a.ctx, async |tx| {
            tx.count::<projects::Entity>(service::tx::all()).await
        })
        .await?;
    ensure!(count == 2 + n, "{count} projects");
    svc.close().await?;
    Ok(())
}

/// What `ctx` sees of `projects` through the pipelined path, for each tenant's project ids.
async fn check_sees_only_its_own(
    svc: &Tenantry,
    ctx: &TenantContext,
    mine: &[Uuid],
    others: &[(Uuid, Uuid)],
) -> Result<()> {
    let rows = svc.fetch_all(ctx, projects::Entity::find()).await?;
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    ids.sort();
    let mut want = mine.to_vec();
    want.sort();
    ensure!(
        ids == want && rows.iter().all(|r| r.tenant_id == ctx.tenant_id()),
        "{} saw {rows:?}",
        ctx.tenant_id()
    );
    for id in mine {
        let one = svc
            .fetch_one(ctx, projects::Entity::find_by_id((ctx.tenant_id(), *id)))
            .await?;
        ensure!(one.is_some_and(|p| p.id == *id), "own project {id} by id");
    }
    for (tenant, id) in others {
        // By the other tenant's full key, and by a filter naming the other tenant: nothing.
        let by_key = svc
            .fetch_one(ctx, projects::Entity::find_by_id((*tenant, *id)))
            .await?;
        let named = svc
            .fetch_all(
                ctx,
                projects::Entity::find().filter(projects::Column::TenantId.eq(*tenant)),
            )
            .await?;
        ensure!(
            by_key.is_none() && named.is_empty(),
            "{} reached {tenant}'s project {id}",
            ctx.tenant_id()
        );
    }
    Ok(())
}

/// `rounds` times every tenant of `owned` in turn: each sees only its own projects.
async fn each_sees_only_its_own(
    svc: &Tenantry,
    owned: &[(TenantContext, Vec<Uuid>)],
    rounds: usize,
) -> Result<()> {
    for _ in 0..rounds {
        for (ctx, mine) in owned {
            let others: Vec<(Uuid, Uuid)> = owned
                .iter()
                .filter(|(c, _)| c.tenant_id() != ctx.tenant_id())
                .flat_map(|(c, ids)| ids.iter().map(|id| (c.tenant_id(), *id)))
                .collect();
            check_sees_only_its_own(svc, ctx, mine, &others).await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn each_tenant_reads_and_writes_only_its_own_rows_shared_or_dedicated() -> Result<()> {
    let env = env().await?;
    let [a, b, _] = three_tenants(&env.svc).await?;
    let (d, d_ctx) = dedicated(&env.svc, "piped").await?;
    let mut owned: Vec<(TenantContext, Vec<Uuid>)> = Vec::new();
    for (ctx, name) in [(&a.ctx, "a"), (&b.ctx, "b"), (&d_ctx, "d")] {
        let mut ids = vec![project(&env.svc, ctx, &format!("{name} seeded")).await?];
        // Written through the pipelined path itself.
        ids.push(
            env.svc
                .insert_one(ctx, new_project(&format!("{name} piped")))
                .await?
                .id,
        );
        owned.push((ctx.clone(), ids));
    }
    // A row naming another tenant is refused before anything is sent.
    let mut foreign = new_project("foreign");
    foreign.tenant_id = Set(b.id);
    ensure!(matches!(
        env.svc.insert_one(&a.ctx, foreign).await,
        Err(ServiceError::Forbidden(_))
    ));
    // Interleaved on one pool: every tenant, twice, in turn.
    each_sees_only_its_own(&env.svc, &owned, 2).await?;
    // On one connection, so that one prepared statement serves every tenant in turn: shared,
    // dedicated, and a second dedicated tenant (PostgreSQL re-analyses a statement whose
    // search_path or role changed; a plan kept across them would read the wrong schema).
    let (d2, d2_ctx) = dedicated(&env.svc, "piped-two").await?;
    let d2_ids = vec![project(&env.svc, &d2_ctx, "d2 seeded").await?];
    owned.push((d2_ctx, d2_ids));
    let one = Tenantry::connect(config(&env.db).with_pool(1)).await?;
    each_sees_only_its_own(&one, &owned, 3).await?;
    let named = one
        .fetch_all(
            &a.ctx,
            projects::Entity::find().filter(Expr::cust(
                "EXISTS (SELECT 1 FROM pg_prepared_statements WHERE statement LIKE 'SELECT %')",
            )),
        )
        .await?;
    ensure!(!named.is_empty(), "the statements were not prepared");
    ensure!(rows_in(&env.su, &TenantSchema::for_tenant(d2).to_string(), d2).await? == 1);
    one.close().await?;
    // Underneath: the dedicated tenant's rows are in its schema, none in the shared table.
    let schema = TenantSchema::for_tenant(d).to_string();
    ensure!(rows_in(&env.su, &schema, d).await? == 2);
    ensure!(rows_in(&env.su, "public", d).await? == 0);
    ensure!(rows_in(&env.su, "public", a.id).await? == 2);
    Ok(())
}

#[tokio::test]
async fn a_failed_opening_runs_no_statement_and_closes_its_connection() -> Result<()> {
    let Env { svc, su, .. } = env().await?;
    let [a, ..] = three_tenants(&svc).await?;
    let (gone, gone_ctx) = dedicated(&svc, "piped-gone").await?;
    project(&svc, &a.ctx, "a's").await?;
    su.execute_unprepared(&format!(
        "DROP SCHEMA {} CASCADE",
        TenantSchema::for_tenant(gone)
    ))
    .await?;
    svc.fetch_all(&a.ctx, projects::Entity::find()).await?;
    ensure!(svc.pipeline_idle_connections() == 1);
    for _ in 0..3 {
        // The insert is on the wire behind the failing opening: it must not run (without the
        // dedicated role and search_path it would land in the shared table).
        match svc.insert_one(&gone_ctx, new_project("lost")).await {
            Err(ServiceError::Unavailable(m)) => ensure!(m.contains("schema"), "{m}"),
            other => bail!("expected unavailable, got {other:?}"),
        }
        ensure!(matches!(
            svc.fetch_all(&gone_ctx, projects::Entity::find()).await,
            Err(ServiceError::Unavailable(_))
        ));
        ensure!(
            svc.pipeline_idle_connections() == 0,
            "a failed unit's connection was pooled"
        );
        let rows = svc.fetch_all(&a.ctx, projects::Entity::find()).await?;
        ensure!(rows.len() == 1 && rows[0].tenant_id == a.id, "{rows:?}");
        ensure!(svc.pipeline_idle_connections() == 1);
    }
    let anywhere = scalar(
        &su,
        "SELECT count(*) AS n FROM public.projects WHERE name = 'lost'",
        [],
    )
    .await?;
    ensure!(anywhere == 0, "{anywhere} rows of the failed insert");
    // A statement the database refuses (a duplicate key) is a clean, classified error too.
    let first = svc.insert_one(&a.ctx, new_project("twice")).await?;
    let mut again = new_project("twice");
    again.id = Set(first.id);
    let failed = svc.insert_one(&a.ctx, again).await;
    ensure!(
        matches!(failed, Err(ServiceError::Conflict(_))),
        "{failed:?}"
    );
    ensure!(svc.pipeline_idle_connections() == 0);
    Ok(())
}

#[tokio::test]
async fn a_unit_cancelled_in_flight_never_serves_the_next_tenant() -> Result<()> {
    let Env { db, su, .. } = env().await?;
    let svc = Tenantry::connect(config(&db).with_pool(1)).await?;
    let [a, b, _] = three_tenants(&svc).await?;
    project(&svc, &a.ctx, "a's").await?;
    project(&svc, &b.ctx, "b's").await?;
    svc.fetch_all(&a.ctx, projects::Entity::find()).await?;
    ensure!(svc.pipeline_idle_connections() == 1);
    for i in 0..3 {
        // Polled once: the pooled client is leased and the pipeline written; then dropped
        // before any answer is read (the caller went away).
        {
            let mut unit = pin!(svc.insert_one(&a.ctx, new_project(&format!("cancelled {i}"))));
            let mut cx = TaskContext::from_waker(Waker::noop());
            ensure!(
                matches!(unit.as_mut().poll(&mut cx), Poll::Pending),
                "the unit finished without waiting for the server"
            );
        }
        ensure!(
            svc.pipeline_idle_connections() == 0,
            "a cancelled unit's connection went back to the pool"
        );
        // The next tenant gets a fresh connection and only its own rows.
        let rows = svc.fetch_all(&b.ctx, projects::Entity::find()).await?;
        ensure!(rows.len() == 1 && rows[0].tenant_id == b.id, "{rows:?}");
        ensure!(svc.pipeline_idle_connections() == 1);
    }
    // Nothing of a's is left open: no session of the app login on this test's database (other
    // tests hold transactions open on theirs) is idle in a transaction
    // (the cancelled pipelines ended with their own COMMIT or the connection's close).
    let open = scalar(
        &su,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = $1 \
         AND datname = current_database() AND state LIKE 'idle in transaction%'",
        [APP_LOGIN.into()],
    )
    .await?;
    ensure!(open == 0, "{open} sessions idle in a transaction");
    svc.close().await?;
    Ok(())
}

#[tokio::test]
async fn behind_pgbouncer_in_transaction_mode_each_tenant_sees_its_own() -> Result<()> {
    if !PgBouncer::available() {
        eprintln!("pgbouncer is not installed: this test is skipped");
        return Ok(());
    }
    let env = env().await?;
    let [a, b, _] = three_tenants(&env.svc).await?;
    let (_, d_ctx) = dedicated(&env.svc, "piped-bounced").await?;
    // One server connection behind the bouncer: every unit of every tenant shares it.
    let bouncer = PgBouncer::start(tenantry_tests::shared_cluster()?, APP_LOGIN, 1)
        .map_err(anyhow::Error::msg)?;
    let svc = Tenantry::connect(bounced(&bouncer, &env.db.name).with_pool(3)).await?;
    let tenants = [&a.ctx, &b.ctx, &d_ctx];
    for round in 0..4 {
        // Three tenants' units at once over three clients and one server connection.
        let name = format!("r{round}");
        let (x, y, z) = tokio::join!(
            svc.insert_one(tenants[0], new_project(&name)),
            svc.insert_one(tenants[1], new_project(&name)),
            svc.insert_one(tenants[2], new_project(&name)),
        );
        for (ctx, row) in tenants.iter().zip([x?, y?, z?]) {
            ensure!(row.tenant_id == ctx.tenant_id(), "{row:?}");
        }
        let (x, y, z) = tokio::join!(
            svc.fetch_all(tenants[0], projects::Entity::find()),
            svc.fetch_all(tenants[1], projects::Entity::find()),
            svc.fetch_all(tenants[2], projects::Entity::find()),
        );
        for (ctx, rows) in tenants.iter().zip([x?, y?, z?]) {
            ensure!(
                rows.len() == round + 1 && rows.iter().all(|r| r.tenant_id == ctx.tenant_id()),
                "round {round}: {} saw {rows:?}",
                ctx.tenant_id()
            );
        }
    }
    svc.close().await?;
    Ok(())
}

/// `projects` with a result column of a type tokio-postgres does not know built in (`citext`,
/// or an array of it), which it would look up with a named statement of its own.
fn with_a_looked_up_type(sql: &'static str) -> sea_orm::Select<projects::Entity> {
    projects::Entity::find().column_as(Expr::cust(sql), "zz")
}

/// `projects` only if the session running it holds no prepared statement of tokio-postgres's
/// type lookup (`pg_prepared_statements` is per session: this runs on the pipeline's own). The
/// pattern does not match its own text (it has a backslash where the lookup has none).
fn if_no_type_lookup_prepared() -> sea_orm::Select<projects::Entity> {
    projects::Entity::find().filter(Expr::cust(
        r"NOT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE statement ~ 'pg_catalog\.pg_type t')",
    ))
}

/// `projects` only if the session running it holds no named `SELECT` (the pipelined path's;
/// the ordinary path's sqlx prepares its `INSERT`s named whatever the setting).
fn if_no_select_prepared() -> sea_orm::Select<projects::Entity> {
    projects::Entity::find().filter(Expr::cust(
        "NOT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE statement LIKE 'SELECT %')",
    ))
}

/// The service's configuration behind `bouncer`: PgBouncer 1.18 in transaction mode, so no
/// statement is named (`TENANTRY_PREPARED_STATEMENTS=off`).
fn bounced(bouncer: &PgBouncer, db: &str) -> TenantryConfig {
    TenantryConfig::new(bouncer.url(APP_LOGIN, db)).with_prepared_statements(false)
}

#[tokio::test]
async fn no_type_lookup_is_prepared_and_behind_pgbouncer_nothing_is_named() -> Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    project(&env.svc, &a.ctx, "a's").await?;
    // Direct: a unit with a citext column, then the same session is asked what it holds.
    let svc = Tenantry::connect(config(&env.db).with_pool(1)).await?;
    let rows = svc
        .fetch_all(&a.ctx, with_a_looked_up_type("'x'::public.citext"))
        .await?;
    ensure!(rows.len() == 1, "{rows:?}");
    let rows = svc.fetch_all(&a.ctx, if_no_type_lookup_prepared()).await?;
    ensure!(rows.len() == 1, "the pipelined session holds a type lookup");
    ensure!(svc.pipeline_idle_connections() == 1);
    svc.close().await?;
    if !PgBouncer::available() {
        eprintln!("pgbouncer is not installed: the bouncer half is skipped");
        return Ok(());
    }
    // Two server connections; a transaction of the ordinary path pins one of them so that the
    // next unit lands on the other one than the unit before.
    let bouncer = PgBouncer::start(tenantry_tests::shared_cluster()?, APP_LOGIN, 2)
        .map_err(anyhow::Error::msg)?;
    let svc = Tenantry::connect(bounced(&bouncer, &env.db.name).with_pool(2)).await?;
    let first = svc.begin(&a.ctx).await?;
    insert_project(&first, "pins a server").await?;
    let rows = svc
        .fetch_all(&a.ctx, with_a_looked_up_type("'x'::public.citext"))
        .await?;
    ensure!(rows.len() == 1, "{rows:?}");
    let second = svc.begin(&a.ctx).await?;
    insert_project(&second, "pins the other").await?;
    first.commit().await?;
    let rows = svc
        .fetch_all(&a.ctx, with_a_looked_up_type("ARRAY['x']::public.citext[]"))
        .await?;
    ensure!(rows.len() == 2, "{rows:?}");
    second.commit().await?;
    for _ in 0..2 {
        let rows = svc.fetch_all(&a.ctx, if_no_select_prepared()).await?;
        ensure!(
            rows.len() == 3,
            "a server session holds a pipelined statement"
        );
    }
    svc.close().await?;
    Ok(())
}

#[tokio::test]
async fn the_app_urls_own_options_hold_on_the_pipelined_path() -> Result<()> {
    let Env { db, svc, su } = env().await?;
    let [a, ..] = three_tenants(&svc).await?;
    let url = format!(
        "{}?options=-c%20default_transaction_read_only%3Don",
        db.url(LoginRole::App)
    );
    let ro = Tenantry::connect(TenantryConfig::new(url).with_pool(1)).await?;
    let sqlx_path = ro
        .with_tenant(&a.ctx, async |tx| insert_project(tx, "via sqlx").await)
        .await;
    ensure!(sqlx_path.is_err(), "the sqlx path wrote: {sqlx_path:?}");
    let piped = ro.insert_one(&a.ctx, new_project("via pipeline")).await;
    ensure!(piped.is_err(), "the pipelined path wrote: {piped:?}");
    let written = scalar(
        &su,
        "SELECT count(*) AS n FROM public.projects WHERE name LIKE 'via %'",
        [],
    )
    .await?;
    ensure!(written == 0, "{written} rows written by a read-only login");
    ro.close().await?;
    Ok(())
}

/// Matches only while the session's `search_path` is the one the connection started with
/// (source `client`): the unit's schema entry found it already right and set no local value.
fn if_the_entry_left_the_path() -> sea_orm::Select<projects::Entity> {
    projects::Entity::find().filter(Expr::cust(
        "(SELECT source FROM pg_catalog.pg_settings WHERE name = 'search_path') = 'client'",
    ))
}

// m0016 and the pool's session `search_path`: a shared tenant's entry changes nothing on a
// pipelined connection, a dedicated tenant's still sets its own path, and the shared tenant
// after it on the same connection is back on `public` (its entry reset the path again).
#[tokio::test]
async fn a_shared_tenants_entry_leaves_the_pipelined_sessions_path_as_it_is() -> Result<()> {
    let Env { svc, .. } = env_with(|c| c.with_pool(1)).await?;
    let [a, ..] = three_tenants(&svc).await?;
    svc.insert_one(&a.ctx, new_project("a's")).await?;
    let (_, d_ctx) = dedicated(&svc, "path-d").await?;
    svc.insert_one(&d_ctx, new_project("d's")).await?;
    for round in 0..2 {
        let left = svc.fetch_all(&a.ctx, if_the_entry_left_the_path()).await?;
        ensure!(
            left.len() == 1,
            "round {round}: the shared tenant's entry set the path"
        );
        let set = svc.fetch_all(&d_ctx, if_the_entry_left_the_path()).await?;
        ensure!(
            set.is_empty(),
            "round {round}: the dedicated tenant kept public's path"
        );
        let own = svc.fetch_all(&d_ctx, projects::Entity::find()).await?;
        ensure!(
            own.len() == 1 && own[0].name == "d's",
            "round {round}: {own:?}"
        );
    }
    Ok(())
}

// The same for `with_tenant` on the app pool, whose sessions start on the entry's path too.
#[tokio::test]
async fn a_shared_tenants_entry_leaves_the_app_pools_path_as_it_is() -> Result<()> {
    let Env { svc, .. } = env_with(|c| c.with_pool(1)).await?;
    let [a, ..] = three_tenants(&svc).await?;
    svc.insert_one(&a.ctx, new_project("a's")).await?;
    let (_, d_ctx) = dedicated(&svc, "app-path-d").await?;
    svc.insert_one(&d_ctx, new_project("d's")).await?;
    let left = async |ctx: &TenantContext| {
        svc.with_tenant(ctx, async |tx| {
            Ok(if_the_entry_left_the_path()
                .filter(projects::Column::TenantId.eq(tx.tenant_id()))
                .all(tx.conn())
                .await?)
        })
        .await
    };
    for round in 0..2 {
        let shared = left(&a.ctx).await?;
        ensure!(
            shared.len() == 1,
            "round {round}: the shared tenant's entry set the path"
        );
        let set = left(&d_ctx).await?;
        ensure!(
            set.is_empty(),
            "round {round}: the dedicated tenant kept public's path"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_callers_select_list_never_reaches_a_model() -> Result<()> {
    let Env { svc, .. } = env().await?;
    let [a, b, _] = three_tenants(&svc).await?;
    project(&svc, &a.ctx, "real name").await?;
    let spoofed = projects::Entity::find()
        .column_as(Expr::cust("'spoofed'"), "name")
        .column_as(Expr::cust(format!("'{}'::uuid", b.id)), "tenant_id");
    let rows = svc.fetch_all(&a.ctx, spoofed).await?;
    ensure!(
        rows.len() == 1 && rows[0].name == "real name" && rows[0].tenant_id == a.id,
        "{rows:?}"
    );
    // A UNION arm would escape the filter the service adds to the outer WHERE: refused.
    project(&svc, &b.ctx, "b's").await?;
    let mut union = projects::Entity::find();
    QueryTrait::query(&mut union).union(UnionType::All, projects::Entity::find().into_query());
    let got = svc.fetch_all(&a.ctx, union).await;
    ensure!(
        matches!(got, Err(ServiceError::InvalidInput { .. })),
        "{got:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_unit_finishing_after_close_does_not_pool_its_connection() -> Result<()> {
    let Env { db, .. } = env().await?;
    let svc = Tenantry::connect(config(&db).with_pool(1)).await?;
    let [a, ..] = three_tenants(&svc).await?;
    project(&svc, &a.ctx, "a's").await?;
    let handle = svc.clone();
    let mut unit = pin!(svc.fetch_all(&a.ctx, projects::Entity::find()));
    let mut cx = TaskContext::from_waker(Waker::noop());
    ensure!(
        matches!(unit.as_mut().poll(&mut cx), Poll::Pending),
        "the unit finished without waiting for the server"
    );
    // Closed while the unit holds its connection; the unit then finishes normally.
    handle.close().await?;
    let rows = unit.await?;
    ensure!(rows.len() == 1, "{rows:?}");
    ensure!(
        svc.pipeline_idle_connections() == 0,
        "a closed pool kept a connection"
    );
    Ok(())
}

/// A table only dedicated tenants' schemas have (`cloud_providers`, seeded by the tenant-schema
/// template), as an entity of the test's own.
mod cloud_providers {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "cloud_providers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(column_type = "Text")]
        pub name: String,
        pub created_at: DateTimeWithTimeZone,
        pub tenant_id: Uuid,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl entity::TenantScoped for Entity {
        fn tenant_column() -> Column {
            Column::TenantId
        }
    }
}

#[tokio::test]
async fn a_prepared_statement_resolves_names_as_its_tenant_does_and_survives_schema_drift()
-> Result<()> {
    let Env { db, svc, su } = env().await?;
    let [a, ..] = three_tenants(&svc).await?;
    let (d, d_ctx) = dedicated(&svc, "drifted").await?;
    let (_, e_ctx) = dedicated(&svc, "undrifted").await?;
    project(&svc, &a.ctx, "a's").await?;
    project(&svc, &d_ctx, "d's").await?;
    project(&svc, &e_ctx, "e's").await?;
    let one = Tenantry::connect(config(&db).with_pool(1)).await?;
    // A table that exists in the tenant's schema only: prepared inside the tenant's
    // transaction, after its schema entry, it resolves there.
    for _ in 0..2 {
        let providers = one
            .fetch_all(&d_ctx, cloud_providers::Entity::find())
            .await?;
        ensure!(
            !providers.is_empty() && providers.iter().all(|p| p.tenant_id == d),
            "{providers:?}"
        );
    }
    // One tenant's schema drifts (a tenant-schema migration rolled out to some schemas only):
    // the statement prepared for e's and a's `projects` changes result type for d, which is
    // served unnamed instead of failing; the others keep the prepared statement.
    one.fetch_all(&e_ctx, projects::Entity::find()).await?;
    su.execute_unprepared(&format!(
        "ALTER TABLE {}.projects ALTER COLUMN description TYPE varchar(1000)",
        TenantSchema::for_tenant(d)
    ))
    .await?;
    for ctx in [&d_ctx, &a.ctx, &e_ctx, &d_ctx] {
        let rows = one.fetch_all(ctx, projects::Entity::find()).await?;
        ensure!(
            rows.len() == 1 && rows[0].tenant_id == ctx.tenant_id(),
            "{} saw {rows:?}",
            ctx.tenant_id()
        );
    }
    one.close().await?;
    Ok(())
}

#[tokio::test]
async fn behind_a_pooler_a_statement_name_is_never_bound_on_another_session() -> Result<()> {
    use sqlx::Connection;
    if !PgBouncer::available() {
        eprintln!("pgbouncer is not installed: this test is skipped");
        return Ok(());
    }
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    project(&env.svc, &a.ctx, "a's only project").await?;
    let bouncer = PgBouncer::start(tenantry_tests::shared_cluster()?, APP_LOGIN, 2)
        .map_err(anyhow::Error::msg)?;
    let url = bouncer.url(APP_LOGIN, &env.db.name);
    let raw = async |sql: &str, conn: &mut sqlx::PgConnection| -> Result<()> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(conn)
            .await?;
        Ok(())
    };
    // Another client (another process, or this one before a restart) holds statements named
    // as tokio-postgres names its own, on the first server session (X): a DELETE of the
    // tenant's rows that returns rows shaped like projects.
    let mut other = sqlx::PgConnection::connect(&url).await?;
    let squat: String = (0..3000)
        .map(|i| {
            format!(
                "PREPARE s{i}(uuid) AS DELETE FROM projects WHERE tenant_id = $1 RETURNING \
                 tenant_id, id, owner_id, 'deleted by s{i}'::text, description, status, \
                 metadata, created_at, updated_at;"
            )
        })
        .collect();
    raw(&squat, &mut other).await?;
    // X pinned: the service's first unit prepares its statement on the second session (Y).
    let mut pin_x = sqlx::PgConnection::connect(&url).await?;
    raw("BEGIN; SELECT 1", &mut pin_x).await?;
    let svc = Tenantry::connect(TenantryConfig::new(url.clone()).with_pool(1)).await?;
    let first = svc.fetch_all(&a.ctx, projects::Entity::find()).await?;
    ensure!(first.len() == 1, "{first:?}");
    raw("COMMIT", &mut pin_x).await?;
    // Y pinned, X free: the next unit's Bind would land where `s<n>` is the DELETE.
    let (mut h1, mut h2) = (
        sqlx::PgConnection::connect(&url).await?,
        sqlx::PgConnection::connect(&url).await?,
    );
    raw("BEGIN; SELECT 1", &mut h1).await?;
    raw("BEGIN; SELECT 1", &mut h2).await?;
    let squatted: (i64,) = sqlx::query_as("SELECT count(*) FROM pg_prepared_statements")
        .persistent(false)
        .fetch_one(&mut h1)
        .await?;
    let (mut on_y, mut on_x) = if squatted.0 >= 3000 {
        (h2, h1)
    } else {
        (h1, h2)
    };
    raw("COMMIT", &mut on_x).await?;
    let second = svc.fetch_all(&a.ctx, projects::Entity::find()).await?;
    raw("COMMIT", &mut on_y).await?;
    let third = svc.fetch_all(&a.ctx, projects::Entity::find()).await?;
    // The pool found the pooler on connecting (its cancel key is not the server's): nothing
    // of the service's is named on the server sessions.
    for _ in 0..2 {
        let rows = svc.fetch_all(&a.ctx, if_no_select_prepared()).await?;
        ensure!(
            rows.len() == 1,
            "a server session holds a pipelined statement"
        );
    }
    svc.close().await?;
    for rows in [&second, &third] {
        ensure!(
            rows.len() == 1 && rows[0].name == "a's only project",
            "a read ran another session's statement: {rows:?}"
        );
    }
    let left = scalar(
        &env.su,
        "SELECT count(*) AS n FROM public.projects WHERE tenant_id = $1",
        [a.id.into()],
    )
    .await?;
    ensure!(left == 1, "{left} of a's projects left");
    Ok(())
}
