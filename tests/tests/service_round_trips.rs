//! Round trips of a tenant-bound transaction, counted on the wire by the harness's proxy
//! (`ReadyForQuery` messages from the server): a one-statement unit of work costs exactly
//! three (`BEGIN; SET LOCAL ...` as one message, the statement, `COMMIT`), with the context
//! still transaction-local.

mod service_support;

use anyhow::{Result, ensure};
use entity::projects;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, Order, QueryFilter,
    QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use service::tx::all;
use service::{Page, TenantTx, Tenantry, TenantryConfig};
use service_support::{env, project, three_tenants};
use tenantry_tests::logins::LoginRole;
use tenantry_tests::proxy::RoundTripProxy;

/// A transaction holding the only connection of a pool.
enum Held {
    Ours(TenantTx),
    Plain(DatabaseTransaction),
}

impl Held {
    async fn rollback(self) -> Result<()> {
        match self {
            Held::Ours(tx) => tx.rollback().await?,
            Held::Plain(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// Round trips of `n` runs of `op` on a pool of one connection, after two warm-up runs
/// (connection set-up and the statement's first preparation excluded). sqlx pings a connection
/// when it returns to the pool (off the caller's path, but on the wire), so the counter is
/// read only while `hold` has the connection: every earlier release has then finished. The two
/// holds add `BEGIN` + `ROLLBACK` + a release ping, subtracted here.
async fn count(
    proxy: &RoundTripProxy,
    n: u64,
    hold: impl AsyncFn() -> Result<Held>,
    op: impl AsyncFn() -> Result<()>,
) -> Result<u64> {
    op().await?;
    op().await?;
    let h = hold().await?;
    let before = proxy.round_trips();
    h.rollback().await?;
    for _ in 0..n {
        op().await?;
    }
    let h = hold().await?;
    let after = proxy.round_trips();
    h.rollback().await?;
    Ok(after - before - 3)
}

#[tokio::test]
async fn one_statement_unit_of_work_costs_three_round_trips() -> Result<()> {
    let env = env().await?;
    let [a, b, _] = three_tenants(&env.svc).await?;
    project(&env.svc, &a.ctx, "a's").await?;
    project(&env.svc, &b.ctx, "b's").await?;

    let port = env.db.port();
    let proxy = RoundTripProxy::start(port).await?;
    let svc = Tenantry::connect(
        TenantryConfig::new(proxy.url(&env.db.url(LoginRole::App), port)).with_pool(1),
    )
    .await?;
    let n = 10;
    let hold = async || Ok(Held::Ours(svc.begin(&a.ctx).await?));

    let reads = count(&proxy, n, hold, async || {
        let rows = svc
            .with_tenant(&a.ctx, async |tx| {
                tx.list::<projects::Entity>(
                    all(),
                    vec![(projects::Column::CreatedAt, Order::Desc)],
                    Page::default(),
                )
                .await
            })
            .await?;
        ensure!(
            rows.len() == 1 && rows[0].tenant_id == a.id,
            "a sees only its project"
        );
        Ok(())
    })
    .await?;
    // Per read: `BEGIN; SET LOCAL`, the SELECT, COMMIT on the caller's path, plus sqlx's
    // release ping after it.
    ensure!(
        reads == 4 * n,
        "a read costs 3 + 1 round trips, counted {reads} for {n}"
    );

    let inserts = count(&proxy, n, hold, async || {
        let tx = svc.begin(&b.ctx).await?;
        service_support::insert_project(&tx, "more").await?;
        tx.commit().await?;
        Ok(())
    })
    .await?;
    ensure!(
        inserts == 4 * n,
        "an insert costs 3 + 1 round trips, counted {inserts} for {n}"
    );

    // The same proxy counts plain SeaORM's read (no transaction, no RLS) as the statement
    // plus the release ping: the service adds exactly BEGIN and COMMIT.
    let plain = sea_orm::Database::connect(
        sea_orm::ConnectOptions::new(proxy.url(&env.db.superuser_url(), port))
            .max_connections(1)
            .test_before_acquire(false)
            .to_owned(),
    )
    .await?;
    let plain_hold = async || Ok(Held::Plain(plain.begin().await?));
    let plain_reads = count(&proxy, n, plain_hold, async || {
        let rows = projects::Entity::find()
            .filter(projects::Column::TenantId.eq(a.id))
            .order_by(projects::Column::CreatedAt, Order::Desc)
            .limit(50)
            .all(&plain)
            .await?;
        ensure!(rows.len() == 1, "the plain read finds a's project");
        Ok(())
    })
    .await?;
    ensure!(
        plain_reads == 2 * n,
        "plain read: 1 + 1 round trips, counted {plain_reads} for {n}"
    );

    // Still transaction-local on the same single connection: after a's transaction, a bare
    // statement on a new transaction without context sees no setting.
    let tx = svc.begin(&a.ctx).await?;
    tx.commit().await?;
    let raw = svc.with_tenant(&b.ctx, async |tx| {
        let row = tx
            .conn()
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_setting('tenantry.tenant_id', true) AS t",
            ))
            .await?;
        Ok(row.and_then(|r| r.try_get::<String>("", "t").ok()))
    });
    ensure!(
        raw.await? == Some(b.id.to_string()),
        "each transaction carries its own tenant"
    );
    let db = sea_orm::Database::connect(proxy.url(&env.db.url(LoginRole::App), port)).await?;
    let leftover = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT coalesce(current_setting('tenantry.tenant_id', true), '') AS t",
        ))
        .await?
        .and_then(|r| r.try_get::<String>("", "t").ok());
    ensure!(
        leftover.as_deref() == Some(""),
        "no session-level context: {leftover:?}"
    );
    svc.close().await?;
    Ok(())
}
