//! Scenario 7: dedicated tenants (one schema per tenant) at scale.
//!
//! On a fresh migrated database: N dedicated tenants provisioned one by one through the real
//! path (`SuperadminTx::provision_tenant_with(.., Isolation::Dedicated)`, which calls
//! `tenancy.provision_dedicated`), each audited transaction timed; a no-op
//! `migration::dedicated::migrate::up` over all of them (nothing pending) and the `status`
//! summary query; a bench-only tenant-schema migration (a column and an index on `projects`)
//! applied to every schema by the same `up`; and a tenant-bound read through the service for a
//! dedicated tenant against the same read for a shared tenant with the same rows, alternating.

use std::sync::Arc;
use std::time::{Duration, Instant};

use entity::projects;
use migration::dedicated::{TenantSchema, TenantSchemaMigration, migrate};
use migration::plan::MigrationPlan;
use migration::tables::t;
use sea_orm::sea_query::{Alias, ColumnDef, Index, Table};
use sea_orm::{ConnectOptions, Database};
use service::tenants::Isolation;
use service::{NewTenant, SuperadminGrant, TenantContext, Tenantry, TenantryConfig};
use tenantry_tests::databases::connect;
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

use super::Params;
use super::load::{alternate, closed_loop};
use super::report::{Cmp, Row, Scenario};
use super::service_tx::service_read;
use super::setup::{drop_db_and_roles, exec, exec_text, rows};
use super::stats::Stat;

pub const TITLE: &str = "Dedicated tenants (schema per tenant)";

/// Alternating rounds per side of the read comparison (the order flips every round).
const ROUNDS: usize = 4;

/// `up`'s default concurrency: `TENANTRY_SCHEMA_CONCURRENCY`, else 4, as `migration up` reads it.
fn schema_concurrency() -> usize {
    std::env::var("TENANTRY_SCHEMA_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(4)
}

/// The bench-only tenant-schema migration's name (never part of the compiled-in list).
pub const BENCH_MIGRATION: &str = "ts9001_bench_note";

/// The bench-only tenant-schema migration: a nullable column and an index on `projects`, the
/// typical "extend one table" change. `migrate::up` takes the list of migrations to apply, so
/// the bench passes the compiled-in list plus this one; production runs never see it.
fn bench_note(schema: &str) -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    let projects = || t(schema, Alias::new("projects"));
    let add = Table::alter()
        .table(projects())
        .add_column(ColumnDef::new(Alias::new("bench_note")).text())
        .to_owned();
    let drop = Table::alter()
        .table(projects())
        .drop_column(Alias::new("bench_note"))
        .to_owned();
    plan.step(format!("{schema}.projects: column bench_note"), &add, &drop);
    let index = Index::create()
        .name("projects_bench_note_idx")
        .table(projects())
        .col(Alias::new("tenant_id"))
        .col(Alias::new("bench_note"))
        .to_owned();
    let drop_index = Index::drop()
        .name("projects_bench_note_idx")
        .table(projects())
        .to_owned();
    plan.step(
        format!("{schema}.projects: index (tenant_id, bench_note)"),
        &index,
        &drop_index,
    );
    plan
}

fn bench_migration() -> TenantSchemaMigration {
    TenantSchemaMigration {
        name: BENCH_MIGRATION,
        plan: bench_note,
    }
}

fn grant() -> SuperadminGrant<'static> {
    SuperadminGrant {
        actor: "bench@tenantry.invalid",
        reason: "cargo xtask bench, scenario 7",
        action: "tenant.provision",
        scope: None,
    }
}

fn new_tenant(slug: String) -> NewTenant {
    NewTenant {
        name: format!("Bench {slug}"),
        slug,
        plan: "pro".into(),
        region: "eu".into(),
        admin_email: None,
    }
}

/// Provisions one tenant in its own audited superadmin transaction (committed).
async fn provision(
    svc: &Tenantry,
    slug: String,
    owner: Uuid,
    isolation: Isolation,
) -> anyhow::Result<TenantContext> {
    let sa = svc.superadmin(grant()).await?;
    let (_, ctx) = sa
        .provision_tenant_with(new_tenant(slug), owner, isolation)
        .await?;
    sa.commit().await?;
    Ok(ctx)
}

/// Loads `n` projects of `tenant` into `table` as the superuser.
pub(super) async fn load(
    su: &sea_orm::DatabaseConnection,
    table: &str,
    tenant: Uuid,
    n: u64,
) -> anyhow::Result<()> {
    exec(
        su,
        &format!(
            "INSERT INTO {table} (tenant_id, id, name, description, status, metadata, created_at, updated_at) \
             SELECT $1, gen_random_uuid(), 'Project ' || g, 'Bench project number ' || g, 'active', \
             jsonb_build_object('n', g), timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', \
             timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' \
             FROM generate_series(1::bigint, {n}::bigint) g"
        ),
        vec![tenant.into()],
    )
    .await?;
    exec_text(su, &format!("VACUUM (ANALYZE) {table}")).await
}

/// Up to 1000 ids of `table`'s projects.
async fn ids(su: &sea_orm::DatabaseConnection, table: &str) -> anyhow::Result<Vec<Uuid>> {
    let mut out = vec![];
    for r in rows(
        su,
        &format!("SELECT id FROM {table} ORDER BY random() LIMIT 1000"),
        vec![],
    )
    .await?
    {
        out.push(r.try_get_by_index(0)?);
    }
    anyhow::ensure!(!out.is_empty(), "{table} has no rows");
    Ok(out)
}

/// Which tenant-bound work the read comparison times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The 50 most recent projects (scenario 2's read).
    List,
    /// One project by id.
    ById,
    /// Nothing: the opening message (`BEGIN`, context, `enter_tenant_schema()`) and `COMMIT`.
    Empty,
}

async fn read(
    tenantry: &Tenantry,
    ctx: &TenantContext,
    what: Read,
    id: Uuid,
) -> anyhow::Result<()> {
    match what {
        Read::List => service_read(tenantry, ctx).await.map(|_| ()),
        Read::ById => service_by_id(tenantry, ctx, id).await,
        Read::Empty => Ok(tenantry.with_tenant(ctx, async |_tx| Ok(())).await?),
    }
}

/// One project by id through a tenant-bound transaction.
async fn service_by_id(tenantry: &Tenantry, ctx: &TenantContext, id: Uuid) -> anyhow::Result<()> {
    let found = tenantry
        .with_tenant(ctx, async |tx| tx.find_by_id::<projects::Entity>(id).await)
        .await?;
    anyhow::ensure!(found.is_some(), "project {id} not found");
    Ok(())
}

pub async fn run(p: &Params) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::new(7, TITLE);
    let db = tenantry_tests::migrated_db().await?;
    let mut roles = vec![];
    let result = measure(p, &db, &mut sc, &mut roles).await;
    // The tenant roles are cluster-wide: drop them with the database.
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    drop_db_and_roles(&db, &roles).await;
    result?;
    Ok(sc)
}

async fn measure(
    p: &Params,
    db: &tenantry_tests::TestDb,
    sc: &mut Scenario,
    roles: &mut Vec<TenantSchema>,
) -> anyhow::Result<()> {
    let n = p.dedicated_tenants;
    let svc = Tenantry::connect(
        TenantryConfig::new(db.url(LoginRole::App))
            .with_superadmin(db.url(LoginRole::Superadmin))
            .with_pool(p.pool),
    )
    .await?;
    let sa = svc.superadmin(grant()).await?;
    let owner = sa
        .create_user("bench-dedicated@example.invalid", "Bench Owner", None)
        .await?;
    sa.commit().await?;

    // Provisioning, one audited transaction per tenant, each timed.
    tracing::info!(tenants = n, "scenario 7: provisioning dedicated tenants");
    let mut took = Vec::with_capacity(n as usize);
    let mut dedicated: Option<TenantContext> = None;
    for i in 1..=n {
        let t = Instant::now();
        let ctx = provision(&svc, format!("ded-{i}"), owner, Isolation::Dedicated).await?;
        took.push(t.elapsed());
        roles.push(TenantSchema::for_tenant(ctx.tenant_id()));
        dedicated.get_or_insert(ctx);
    }
    let dedicated = dedicated.ok_or_else(|| anyhow::anyhow!("no dedicated tenant"))?;
    let shared = provision(&svc, "shared-1".into(), owner, Isolation::Shared).await?;
    let stat = Stat::of(&took);
    sc.rows.push(
        Row::latency_alone(
            format!("provision one dedicated tenant ({n} in a row)"),
            &stat,
        )
        .target_value(Cmp::Le, 100.0)
        .note(format!(
            "one audited superadmin transaction each: tenant row, owner, schema, role, tables, reference data; slowest {:.0} ms",
            stat.max_ms
        )),
    );

    // The read: the same rows for a dedicated and a shared tenant, through the service.
    let su = connect(&db.superuser_url(), 1).await?;
    let schema = TenantSchema::for_tenant(dedicated.tenant_id());
    let d_table = format!("\"{}\".projects", schema.as_str());
    load(&su, &d_table, dedicated.tenant_id(), p.dedicated_rows).await?;
    load(&su, "public.projects", shared.tenant_id(), p.dedicated_rows).await?;
    let d_ids = Arc::new(ids(&su, &d_table).await?);
    let s_ids = Arc::new(ids(&su, "public.projects").await?);
    su.close().await?;
    let a = service_read(&svc, &dedicated).await?;
    let b = service_read(&svc, &shared).await?;
    anyhow::ensure!(
        a == b,
        "the dedicated tenant's list returned {a} rows, the shared one's {b}"
    );
    let round = Duration::from_secs_f64(p.seconds / ROUNDS as f64);
    let max_ops = 5_000_000;
    for what in [Read::List, Read::ById, Read::Empty] {
        let (ts, tc) = (svc.clone(), shared.clone());
        let sids = s_ids.clone();
        let base = move |_task: usize, i: u64| {
            let (ts, tc, sids) = (ts.clone(), tc.clone(), sids.clone());
            async move { read(&ts, &tc, what, sids[i as usize % sids.len()]).await }
        };
        let (td, dc) = (svc.clone(), dedicated.clone());
        let dids = d_ids.clone();
        let ours = move |_task: usize, i: u64| {
            let (td, dc, dids) = (td.clone(), dc.clone(), dids.clone());
            async move { read(&td, &dc, what, dids[i as usize % dids.len()]).await }
        };
        let warm = Duration::from_secs_f64((p.seconds / 8.0).min(0.5));
        closed_loop(1, warm, max_ops, base.clone()).await;
        closed_loop(1, warm, max_ops, ours.clone()).await;
        let (b, o) = alternate(1, round, ROUNDS, max_ops, base, ours).await;
        for (r, side) in [(&b, "shared"), (&o, "dedicated")] {
            anyhow::ensure!(
                r.errors == 0,
                "{side} read failed {} time(s): {}",
                r.errors,
                r.first_error.clone().unwrap_or_default()
            );
        }
        let row = |label: &str| {
            Row::latency(
                format!(
                    "{label}, dedicated vs shared tenant ({} rows each)",
                    p.dedicated_rows
                ),
                &o.stat(),
                &b.stat(),
            )
        };
        sc.rows.push(match what {
            Read::List => row("read: list 50 most recent").target_ratio(Cmp::Le, 1.05).note(
                "through Tenantry::with_tenant, 1 task, alternating rounds; baseline: a shared tenant",
            ),
            Read::ById => row("read: one project by id").target_ratio(Cmp::Le, 1.05),
            Read::Empty => row("breakdown: empty tenant transaction").note(
                "no statement: the opening message (enter_tenant_schema) and COMMIT; no target",
            ),
        });
    }

    if let Some(counts) = server_counts(p, db, &svc, &shared, &dedicated, &s_ids, &d_ids).await? {
        sc.notes.extend(counts);
    }

    // `up` over every schema, as `migration up` runs it.
    let concurrency = schema_concurrency();
    let mut opts = ConnectOptions::new(db.url(LoginRole::Owner));
    opts.max_connections(concurrency as u32).sqlx_logging(false);
    let owner_db = Database::connect(opts).await?;
    let compiled = migration::dedicated::tenant_schema_migrations();
    let t = Instant::now();
    let report = migrate::up(&owner_db, &compiled, concurrency).await?;
    let noop = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.migrated == 0 && report.failed.is_empty() && report.current == n as usize,
        "no-op up: {} migrated, {} current, {} failed (expected {n} current)",
        report.migrated,
        report.current,
        report.failed.len()
    );
    sc.rows.push(
        Row::value(format!("no-op up over {n} schemas"), "s", noop)
            .target_value(Cmp::Le, 2.0)
            .note(format!(
                "migrate::up, concurrency {concurrency}, nothing pending"
            )),
    );
    let t = Instant::now();
    let summary = migrate::summary(&migrate::applied(&owner_db).await?);
    let status_ms = t.elapsed().as_secs_f64() * 1e3;
    sc.rows.push(
        Row::value(format!("status summary over {n} schemas"), "ms", status_ms)
            .note(summary.clone()),
    );

    // A tenant-schema migration in every schema: a column and an index on projects.
    let mut with_bench = compiled.clone();
    with_bench.push(bench_migration());
    let t = Instant::now();
    let report = migrate::up(&owner_db, &with_bench, concurrency).await?;
    let migrated = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.migrated == n as usize && report.failed.is_empty(),
        "bench migration: {} migrated, {} failed (first: {:?})",
        report.migrated,
        report.failed.len(),
        report.failed.first()
    );
    let after = migrate::summary(&migrate::applied(&owner_db).await?);
    anyhow::ensure!(
        after == format!("{n} at {BENCH_MIGRATION}"),
        "after the bench migration, status says: {after}"
    );
    let indexed = rows(
        &owner_db,
        "SELECT count(*) FROM pg_catalog.pg_indexes \
         WHERE indexname = 'projects_bench_note_idx' AND schemaname ~ '^t_[0-9a-f]{32}$'",
        vec![],
    )
    .await?
    .first()
    .map(|r| r.try_get_by_index::<i64>(0))
    .transpose()?
    .unwrap_or(0);
    anyhow::ensure!(
        indexed == n as i64,
        "the bench index exists in {indexed} of {n} schemas"
    );
    sc.rows.push(
        Row::value(
            format!("up: add a column and an index to projects in {n} schemas"),
            "s",
            migrated,
        )
        .target_value(Cmp::Le, 60.0)
        .note(format!(
            "bench-only migration {BENCH_MIGRATION}, one transaction per schema, concurrency {concurrency}"
        )),
    );
    sc.notes.push(format!(
        "{n} dedicated tenants plus one shared tenant on a fresh migrated database; the read's tenants hold {} projects each (the shared table holds only the shared tenant's); status before the bench migration: {summary}",
        p.dedicated_rows
    ));
    owner_db.close().await?;
    svc.close().await?;
    Ok(())
}

/// With pg_stat_statements loaded (`TENANTRY_PG_CONF="shared_preload_libraries =
/// 'pg_stat_statements'"`), one more pass of each read per side, alone, and what the server
/// counted for it: per statement, calls, plans and the mean execution time. Counts, not
/// timings of the client: whether a statement is planned again per transaction (plans ≈
/// calls) and what `enter_tenant_schema()` costs each side. `None` without the extension.
async fn server_counts(
    p: &Params,
    db: &tenantry_tests::TestDb,
    svc: &Tenantry,
    shared: &TenantContext,
    dedicated: &TenantContext,
    s_ids: &[Uuid],
    d_ids: &[Uuid],
) -> anyhow::Result<Option<Vec<String>>> {
    let su = connect(&db.superuser_url(), 1).await?;
    let loaded = exec_text(&su, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .is_ok()
        && exec_text(&su, "SELECT pg_stat_statements_reset()")
            .await
            .is_ok();
    if !loaded {
        su.close().await?;
        return Ok(None);
    }
    let pass = Duration::from_secs_f64((p.seconds / 4.0).max(0.2));
    let mut notes = vec![];
    for what in [Read::List, Read::ById, Read::Empty] {
        for (side, ctx, ids) in [("shared", shared, s_ids), ("dedicated", dedicated, d_ids)] {
            exec_text(&su, "SELECT pg_stat_statements_reset()").await?;
            let (t, c, ids) = (svc.clone(), ctx.clone(), Arc::new(ids.to_vec()));
            let r = closed_loop(1, pass, 5_000_000, move |_task, i| {
                let (t, c, ids) = (t.clone(), c.clone(), ids.clone());
                async move { read(&t, &c, what, ids[i as usize % ids.len()]).await }
            })
            .await;
            let stats = rows(
                &su,
                "SELECT s.calls, s.plans, s.total_exec_time * 1000 / greatest(s.calls, 1), \
                   regexp_replace(left(s.query, 48), '\\s+', ' ', 'g') \
                 FROM pg_stat_statements s JOIN pg_catalog.pg_roles r ON r.oid = s.userid \
                 WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
                   AND r.rolname <> 'postgres' AND s.calls >= $1 ORDER BY s.calls DESC, 4",
                vec![(r.ops.max(1) as i64 / 2).into()],
            )
            .await?;
            let mut parts = vec![];
            for row in stats {
                let calls: i64 = row.try_get_by_index(0)?;
                let plans: i64 = row.try_get_by_index(1)?;
                let us: f64 = row.try_get_by_index(2)?;
                let query: String = row.try_get_by_index(3)?;
                parts.push(format!(
                    "`{query}` {calls} calls, {plans} plans, {us:.1} µs"
                ));
            }
            notes.push(format!(
                "server counts, {what:?} alone, {side} ({} transactions): {}",
                r.ops,
                parts.join("; ")
            ));
        }
    }
    su.close().await?;
    Ok(Some(notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench-only migration renders as a template (what `up` stores and replays) for the
    /// placeholder schema, and is not one of the migrations `migration up` applies.
    #[test]
    fn bench_migration_is_a_template_outside_the_compiled_in_list() {
        let statements = migration::dedicated::template(&bench_migration()).unwrap();
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(
            statements
                .iter()
                .all(|s| s.contains(migration::dedicated::PLACEHOLDER))
        );
        assert!(
            migration::dedicated::tenant_schema_migrations()
                .iter()
                .all(|m| m.name != BENCH_MIGRATION)
        );
    }
}
