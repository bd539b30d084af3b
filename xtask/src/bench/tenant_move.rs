//! Scenario 8: moving a tenant between isolation modes under a live writer.
//!
//! On a fresh migrated database, a shared tenant with N projects and a writer that keeps
//! updating the tenant's projects one transaction at a time through the service (each write
//! timed). The tenant is promoted to a dedicated schema with `Tenantry::move_tenant`, then
//! demoted back. Reported: the longest any single write of the tenant took while each move ran
//! (the switch pause as the tenant feels it; target ≤ 1 s), the switch transaction's own time
//! (from asking for the move lock to its commit), the whole move's time, and the writer's
//! median and p99 during the move against its own before the move (same run).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use service::tenants::Isolation;
use service::{
    MoveOptions, MoveReport, NewTenant, SuperadminGrant, TenantContext, Tenantry, TenantryConfig,
};
use tenantry_tests::databases::connect;
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

use super::Params;
use super::dedicated::load;
use super::report::{Cmp, Row, Scenario};
use super::setup::{drop_db_and_roles, rows};
use super::stats::Stat;

pub const TITLE: &str = "Moving a tenant between modes (promote / demote)";

fn grant(action: &'static str) -> SuperadminGrant<'static> {
    SuperadminGrant {
        actor: "bench@tenantry.invalid",
        reason: "cargo xtask bench, scenario 8",
        action,
        scope: None,
    }
}

/// One write of the tenant: a project renamed, in its own tenant-bound transaction.
async fn write(svc: &Tenantry, ctx: &TenantContext, id: Uuid, i: u64) -> anyhow::Result<()> {
    svc.with_tenant(ctx, async |tx| {
        tx.conn()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE projects SET name = $3 WHERE tenant_id = $1 AND id = $2",
                [
                    Value::from(ctx.tenant_id()),
                    Value::from(id),
                    Value::from(format!("Project renamed {i}")),
                ],
            ))
            .await?;
        Ok(())
    })
    .await?;
    Ok(())
}

/// Writes until `stop`, returning each write's duration.
async fn writer(
    svc: Tenantry,
    ctx: TenantContext,
    ids: Arc<Vec<Uuid>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<Duration>> {
    let mut took = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        write(&svc, &ctx, ids[i as usize % ids.len()], i).await?;
        took.push(t.elapsed());
        i += 1;
    }
    Ok(took)
}

/// Runs `move` with the writer going; returns the move's report and time, and the writes.
async fn under_writer(
    svc: &Tenantry,
    ctx: &TenantContext,
    ids: &Arc<Vec<Uuid>>,
    target: Isolation,
) -> anyhow::Result<(MoveReport, f64, Vec<Duration>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(writer(svc.clone(), ctx.clone(), ids.clone(), stop.clone()));
    let t = Instant::now();
    let report = svc
        .move_tenant(
            "bench@tenantry.invalid",
            "cargo xtask bench, scenario 8",
            ctx.tenant_id(),
            target,
            &MoveOptions::default(),
        )
        .await;
    let took = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let writes = task.await??;
    Ok((report?, took, writes))
}

pub async fn run(p: &Params) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::new(8, TITLE);
    let db = tenantry_tests::migrated_db().await?;
    let mut role = None;
    let result = measure(p, &db, &mut sc, &mut role).await;
    // The tenant role is cluster-wide: if a move stopped half-way, drop it with the database.
    drop_db_and_roles(&db, role.as_slice()).await;
    result?;
    Ok(sc)
}

async fn measure(
    p: &Params,
    db: &tenantry_tests::TestDb,
    sc: &mut Scenario,
    role: &mut Option<String>,
) -> anyhow::Result<()> {
    let n = p.move_rows;
    let svc = Tenantry::connect(
        TenantryConfig::new(db.url(LoginRole::App))
            .with_superadmin(db.url(LoginRole::Superadmin))
            .with_pool(4),
    )
    .await?;
    let sa = svc.superadmin(grant("tenant.provision")).await?;
    let owner = sa
        .create_user("bench-move@example.invalid", "Bench Owner", None)
        .await?;
    let (tenant, ctx) = sa
        .provision_tenant(
            NewTenant {
                name: "Bench Enterprise".into(),
                slug: "bench-move".into(),
                plan: "enterprise".into(),
                region: "eu".into(),
                admin_email: None,
            },
            owner,
        )
        .await?;
    sa.commit().await?;
    *role = Some(migration::dedicated::TenantSchema::for_tenant(tenant.id).to_string());

    let su = connect(&db.superuser_url(), 1).await?;
    load(&su, "public.projects", tenant.id, n).await?;
    let mut ids = vec![];
    for r in rows(
        &su,
        "SELECT id FROM public.projects WHERE tenant_id = $1 ORDER BY random() LIMIT 1000",
        vec![tenant.id.into()],
    )
    .await?
    {
        ids.push(r.try_get_by_index::<Uuid>(0)?);
    }
    su.close().await?;
    anyhow::ensure!(!ids.is_empty(), "no projects loaded");
    let ids = Arc::new(ids);

    // The writer alone first: its own baseline.
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(writer(svc.clone(), ctx.clone(), ids.clone(), stop.clone()));
    let quiet = Duration::from_secs_f64(p.seconds.min(2.0));
    tokio::time::sleep(quiet).await;
    stop.store(true, Ordering::SeqCst);
    let before = Stat::of(&task.await??);

    for (target, label) in [
        (Isolation::Dedicated, "promote"),
        (Isolation::Shared, "demote"),
    ] {
        let (report, took, writes) = under_writer(&svc, &ctx, &ids, target).await?;
        let during = Stat::of(&writes);
        anyhow::ensure!(
            report.outcome == service::MoveOutcome::Done,
            "{label}: {:?}",
            report.outcome
        );
        let verified: u64 = report.tables.iter().map(|t| t.verified).sum();
        let delta: u64 = report.tables.iter().map(|t| t.delta_written).sum();
        sc.rows.push(
            Row::value(
                format!("{label} {n} projects: longest write of the tenant during the move"),
                "ms",
                during.max_ms,
            )
            .target_value(Cmp::Le, 1000.0)
            .note(format!(
                "{} writes by one live writer (rename by id, one transaction each)",
                during.n
            )),
        );
        sc.rows.push(
            Row::value(
                format!("{label}: switch transaction (lock asked to commit)"),
                "ms",
                report.switch_ms.unwrap_or(0.0),
            )
            .note(format!(
                "delta of {delta} row(s) applied, {verified} row(s) verified by count and checksum; {}",
                report
                    .switch_phases_ms
                    .iter()
                    .map(|(p, ms)| format!("{p} {ms:.0} ms"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
        sc.rows.push(
            Row::value(format!("{label}: whole move"), "s", took).note(format!(
                "{} copy batches of 1000 rows, then the switch, then the old rows removed",
                report.batches
            )),
        );
        sc.rows.push(Row::latency(
            format!("{label}: the tenant's writes during the move vs before"),
            &during,
            &before,
        ));
    }
    sc.notes.push(format!(
        "one shared tenant with {n} projects on a fresh migrated database, promoted then demoted with MoveOptions::default() while one writer renames its projects; the writer's baseline ran alone for {:.1} s first",
        quiet.as_secs_f64()
    ));
    svc.close().await?;
    Ok(())
}
