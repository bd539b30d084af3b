//! Moving a tenant between isolation modes, against a real PostgreSQL: promote and demote
//! keep every row (fingerprints of the rows underneath) and the same service calls answer the
//! same before, between and after; writes during the copy and during the switch are not lost;
//! a move stopped or killed at each phase resumes; a verification mismatch changes nothing;
//! neighbours see nothing of the moving tenant; a tenant transaction queued behind a promote's
//! switch enters the new schema.

mod common;
mod service_support;

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use entity::{documents, projects, tasks};
use migration::dedicated::TenantSchema;
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, DatabaseConnection, QueryOrder, Value};
use service::tenants::Isolation;
use service::{
    MoveOptions, MoveOutcome, MoveReport, MoveUntil, ServiceError, TenantContext, Tenantry,
};
use service_support::*;
use uuid::Uuid;

const TABLES: [&str; 3] = ["projects", "documents", "tasks"];

fn until(until: MoveUntil) -> MoveOptions {
    MoveOptions {
        batch_rows: 7,
        until,
        ..Default::default()
    }
}

async fn move_to(
    svc: &Tenantry,
    tenant: Uuid,
    target: Isolation,
    options: &MoveOptions,
) -> Result<MoveReport, ServiceError> {
    svc.move_tenant(
        "ops@tenantry.test",
        "integration test",
        tenant,
        target,
        options,
    )
    .await
}

/// Starts a promote in a task and returns once its switch waits for a tenant transaction the
/// caller holds open (the observable point: a session waits on a lock).
async fn move_behind_open_transaction(
    svc: &Tenantry,
    su: &DatabaseConnection,
    tenant: Uuid,
    stop: MoveUntil,
) -> anyhow::Result<tokio::task::JoinHandle<Result<MoveReport, ServiceError>>> {
    let svc = svc.clone();
    let mover = tokio::spawn(async move {
        let options = MoveOptions {
            lock_wait: std::time::Duration::from_secs(60),
            ..until(stop)
        };
        move_to(&svc, tenant, Isolation::Dedicated, &options).await
    });
    until_a_session_waits_on_a_lock(su).await?;
    Ok(mover)
}

/// `n` projects, each with two documents and a task, through the service.
async fn seed(svc: &Tenantry, ctx: &TenantContext, n: usize) -> anyhow::Result<()> {
    let tx = svc.begin(ctx).await?;
    for i in 0..n {
        let p = tx
            .insert(projects::ActiveModel {
                id: Set(Uuid::new_v4()),
                name: Set(format!("project {i}")),
                ..Default::default()
            })
            .await?;
        for d in 0..2 {
            tx.insert(documents::ActiveModel {
                id: Set(Uuid::new_v4()),
                project_id: Set(p.id),
                title: Set(format!("doc {i}.{d}")),
                ..Default::default()
            })
            .await?;
        }
        tx.insert(tasks::ActiveModel {
            id: Set(Uuid::new_v4()),
            project_id: Set(p.id),
            title: Set(format!("task {i}")),
            ..Default::default()
        })
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every row of the tenant in `schema`, as the superuser (who sees underneath RLS).
async fn fingerprint(
    su: &DatabaseConnection,
    schema: &str,
    tenant: Uuid,
) -> anyhow::Result<String> {
    let mut out = String::new();
    for table in TABLES {
        let row = su
            .query_one_raw(stmt(
                &format!(
                    "SELECT count(*)::text || ':' || coalesce(md5(string_agg(row_to_json(x)::text, \
                     ',' ORDER BY x.id)), '') FROM {schema}.{table} x WHERE x.tenant_id = $1"
                ),
                [Value::from(tenant)],
            ))
            .await?
            .context("no fingerprint")?;
        out.push_str(&format!("{table}={} ", row.try_get_by_index::<String>(0)?));
    }
    Ok(out)
}

/// What the tenant sees through the service.
async fn view(svc: &Tenantry, ctx: &TenantContext) -> anyhow::Result<String> {
    let tx = svc.begin(ctx).await?;
    let p = tx
        .select::<projects::Entity>()
        .order_by_asc(projects::Column::Id)
        .all(tx.conn())
        .await?;
    let d = tx
        .select::<documents::Entity>()
        .order_by_asc(documents::Column::Id)
        .all(tx.conn())
        .await?;
    let t = tx
        .select::<tasks::Entity>()
        .order_by_asc(tasks::Column::Id)
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(format!("{p:?}\n{d:?}\n{t:?}"))
}

async fn isolation_of(su: &DatabaseConnection, tenant: Uuid) -> anyhow::Result<String> {
    let row = su
        .query_one_raw(stmt(
            "SELECT isolation || coalesce(':' || schema_name, '') FROM tenancy.tenants WHERE id = $1",
            [Value::from(tenant)],
        ))
        .await?
        .context("no tenant")?;
    Ok(row.try_get_by_index(0)?)
}

async fn schema_exists(su: &DatabaseConnection, tenant: Uuid) -> anyhow::Result<bool> {
    let s = TenantSchema::for_tenant(tenant).to_string();
    Ok(scalar(
        su,
        "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = $1) \
              + (SELECT count(*) FROM pg_roles WHERE rolname = $1)",
        [Value::from(s)],
    )
    .await?
        > 0)
}

struct Fixture {
    env: Env,
    x: Uuid,
    x_ctx: TenantContext,
    neighbour: TenantContext,
}

async fn fixture(projects: usize) -> anyhow::Result<Fixture> {
    let env = env().await?;
    let xo = user(&env.svc, "owner@moving.test", "Owner X").await?;
    let no = user(&env.svc, "owner@neighbour.test", "Owner N").await?;
    let (x, x_ctx) = tenant(&env.svc, "Moving", "moving", "enterprise", xo).await?;
    let (_, neighbour) = tenant(&env.svc, "Neighbour", "neighbour", "pro", no).await?;
    seed(&env.svc, &x_ctx, projects).await?;
    seed(&env.svc, &neighbour, 3).await?;
    Ok(Fixture {
        env,
        x,
        x_ctx,
        neighbour,
    })
}

#[tokio::test]
async fn promote_then_demote_keeps_every_row_and_the_same_calls_answer_the_same()
-> anyhow::Result<()> {
    let f = fixture(20).await?;
    let (svc, su) = (&f.env.svc, &f.env.su);
    let schema = TenantSchema::for_tenant(f.x).to_string();
    let rows = fingerprint(su, "public", f.x).await?;
    let seen = view(svc, &f.x_ctx).await?;
    let neighbour = view(svc, &f.neighbour).await?;

    let report = move_to(svc, f.x, Isolation::Dedicated, &until(MoveUntil::Done)).await?;
    assert_eq!(report.outcome, MoveOutcome::Done);
    assert!(report.batches > 3, "batches of 7 rows: {report:?}");
    assert_eq!(report.tables.iter().map(|t| t.verified).sum::<u64>(), 80);
    assert_eq!(isolation_of(su, f.x).await?, format!("dedicated:{schema}"));
    assert_eq!(fingerprint(su, &schema, f.x).await?, rows);
    assert!(
        fingerprint(su, "public", f.x)
            .await?
            .starts_with("projects=0:")
    );
    assert_eq!(view(svc, &f.x_ctx).await?, seen);
    assert_eq!(view(svc, &f.neighbour).await?, neighbour);
    for action in [
        "tenant.move.started",
        "tenant.move.switched",
        "tenant.move.finished",
    ] {
        assert_eq!(
            superadmin_audits(su, action, Some(f.x)).await?,
            1,
            "{action}"
        );
    }
    // Rerunning a finished move does nothing.
    let again = move_to(svc, f.x, Isolation::Dedicated, &until(MoveUntil::Done)).await?;
    assert_eq!(again.outcome, MoveOutcome::AlreadyThere);

    // A demote refuses to lose rows shared tables have no place for, and changes nothing.
    let custom =
        format!("INSERT INTO {schema}.cloud_providers (tenant_id, name) VALUES ($1, 'Custom')");
    su.execute_raw(stmt(&custom, [Value::from(f.x)])).await?;
    let refused = move_to(svc, f.x, Isolation::Shared, &until(MoveUntil::Done)).await;
    assert!(
        matches!(&refused, Err(ServiceError::Conflict(m)) if m.contains("cloud_providers: 1 row")),
        "{refused:?}"
    );
    assert_eq!(isolation_of(su, f.x).await?, format!("dedicated:{schema}"));
    assert_eq!(view(svc, &f.x_ctx).await?, seen);
    su.execute_raw(stmt(
        &format!("DELETE FROM {schema}.cloud_providers WHERE name = 'Custom'"),
        [],
    ))
    .await?;

    let report = move_to(svc, f.x, Isolation::Shared, &until(MoveUntil::Done)).await?;
    assert_eq!(report.outcome, MoveOutcome::Done);
    assert_eq!(isolation_of(su, f.x).await?, "shared");
    assert!(!schema_exists(su, f.x).await?, "schema and role dropped");
    assert_eq!(fingerprint(su, "public", f.x).await?, rows);
    assert_eq!(view(svc, &f.x_ctx).await?, seen);
    assert_eq!(view(svc, &f.neighbour).await?, neighbour);
    Ok(())
}

/// The writer's model of the tenant: project id → name, document id → project id.
#[derive(Default, Debug, PartialEq, Eq)]
struct Model {
    projects: BTreeMap<Uuid, String>,
    documents: BTreeMap<Uuid, Uuid>,
}

async fn model_of(svc: &Tenantry, ctx: &TenantContext) -> anyhow::Result<Model> {
    let tx = svc.begin(ctx).await?;
    let p = tx.select::<projects::Entity>().all(tx.conn()).await?;
    let d = tx.select::<documents::Entity>().all(tx.conn()).await?;
    tx.commit().await?;
    Ok(Model {
        projects: p.into_iter().map(|p| (p.id, p.name)).collect(),
        documents: d.into_iter().map(|d| (d.id, d.project_id)).collect(),
    })
}

/// One write of the tenant, step `i`: a new project with a document (whose parent is new
/// too), a renamed project, or a deleted project (its children go with it).
async fn write(
    svc: &Tenantry,
    ctx: &TenantContext,
    model: &mut Model,
    i: usize,
) -> anyhow::Result<()> {
    let tx = svc.begin(ctx).await?;
    let ids: Vec<Uuid> = model.projects.keys().copied().collect();
    match i % 3 {
        0 => {
            let p = Uuid::new_v4();
            let d = Uuid::new_v4();
            tx.insert(projects::ActiveModel {
                id: Set(p),
                name: Set(format!("new {i}")),
                ..Default::default()
            })
            .await?;
            tx.insert(documents::ActiveModel {
                id: Set(d),
                project_id: Set(p),
                title: Set(format!("new doc {i}")),
                ..Default::default()
            })
            .await?;
            tx.commit().await?;
            model.projects.insert(p, format!("new {i}"));
            model.documents.insert(d, p);
        }
        1 => {
            let id = ids[(i * 7) % ids.len()];
            let row = tx.get::<projects::Entity>("project", id).await?;
            let mut row: projects::ActiveModel = row.into();
            row.name = Set(format!("renamed {i}"));
            tx.update(row).await?;
            tx.commit().await?;
            model.projects.insert(id, format!("renamed {i}"));
        }
        _ => {
            let id = ids[(i * 5) % ids.len()];
            ensure!(tx.delete_by_id::<projects::Entity>(id).await?, "deleted");
            tx.commit().await?;
            model.projects.remove(&id);
            model.documents.retain(|_, p| *p != id);
        }
    }
    Ok(())
}

#[tokio::test]
async fn writes_during_the_copy_and_the_switch_are_not_lost() -> anyhow::Result<()> {
    let f = fixture(30).await?;
    let (svc, su) = (&f.env.svc, &f.env.su);
    let mut model = model_of(svc, &f.x_ctx).await?;
    let mut step = 0;

    // Explicit interleaving: writes between copy batches, on rows copied and not yet copied.
    for batches in [1, 2, 4, 6] {
        move_to(
            svc,
            f.x,
            Isolation::Dedicated,
            &until(MoveUntil::Batches(batches)),
        )
        .await?;
        for _ in 0..3 {
            write(svc, &f.x_ctx, &mut model, step).await?;
            step += 1;
        }
        assert_eq!(model_of(svc, &f.x_ctx).await?, model);
    }

    // A tenant transaction open when the switch starts: the switch waits for it (observed on
    // pg_locks), its write lands, then the tenant is switched.
    let open = svc.begin(&f.x_ctx).await?;
    let mover = move_behind_open_transaction(svc, su, f.x, MoveUntil::Switched).await?;
    let late = Uuid::new_v4();
    open.insert(projects::ActiveModel {
        id: Set(late),
        name: Set("written while the switch waited".into()),
        ..Default::default()
    })
    .await?;
    open.commit().await?;
    model
        .projects
        .insert(late, "written while the switch waited".into());
    let switched = mover.await??;
    assert!(switched.switch_ms.is_some());
    assert!(isolation_of(su, f.x).await?.starts_with("dedicated"));
    assert_eq!(model_of(svc, &f.x_ctx).await?, model);

    // A writer running freely while the move finishes (cleanup), then a demote.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (svc, ctx, stop) = (svc.clone(), f.x_ctx.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = step;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || i < step + 6 {
                write(&svc, &ctx, &mut model, i).await?;
                i += 1;
            }
            anyhow::Ok(model)
        })
    };
    move_to(svc, f.x, Isolation::Dedicated, &until(MoveUntil::Done)).await?;
    move_to(svc, f.x, Isolation::Shared, &until(MoveUntil::Done)).await?;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let model = writer.await??;
    assert_eq!(isolation_of(su, f.x).await?, "shared");
    assert_eq!(model_of(svc, &f.x_ctx).await?, model);
    Ok(())
}

#[tokio::test]
async fn a_move_stopped_or_killed_at_each_phase_resumes() -> anyhow::Result<()> {
    let f = fixture(12).await?;
    let (svc, su) = (&f.env.svc, &f.env.su);
    let rows = fingerprint(su, "public", f.x).await?;
    let seen = view(svc, &f.x_ctx).await?;
    let schema = TenantSchema::for_tenant(f.x).to_string();

    for (target, place) in [
        (Isolation::Dedicated, schema.as_str()),
        (Isolation::Shared, "public"),
    ] {
        for stop in [
            MoveUntil::Started,
            MoveUntil::Batches(1),
            MoveUntil::Batches(3),
            MoveUntil::Switched,
        ] {
            let r = move_to(svc, f.x, target, &until(stop)).await?;
            assert_eq!(r.outcome, MoveOutcome::Stopped, "{stop:?}");
            // Stopped anywhere, the tenant works and sees the same.
            assert_eq!(view(svc, &f.x_ctx).await?, seen, "{target:?} {stop:?}");
        }
        // The other direction is refused while this move is in progress.
        let other = if target == Isolation::Dedicated {
            Isolation::Shared
        } else {
            Isolation::Dedicated
        };
        assert!(matches!(
            move_to(svc, f.x, other, &until(MoveUntil::Done)).await,
            Err(ServiceError::Conflict(_))
        ));
        let r = move_to(svc, f.x, target, &until(MoveUntil::Done)).await?;
        assert_eq!(r.outcome, MoveOutcome::Done);
        assert_eq!(fingerprint(su, place, f.x).await?, rows);
        assert_eq!(view(svc, &f.x_ctx).await?, seen);
    }

    // Killed inside the switch: its backend terminated while it waits for the tenant's open
    // transaction. Nothing changed; a rerun finishes.
    let open = svc.begin(&f.x_ctx).await?;
    let mover = move_behind_open_transaction(svc, su, f.x, MoveUntil::Done).await?;
    scalar(
        su,
        "SELECT count(*) FROM (SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
         WHERE l.locktype = 'advisory' AND NOT l.granted) k",
        [],
    )
    .await?;
    assert!(mover.await?.is_err(), "the killed switch fails");
    open.commit().await?;
    assert_eq!(isolation_of(su, f.x).await?, "shared");
    assert_eq!(view(svc, &f.x_ctx).await?, seen);
    move_to(svc, f.x, Isolation::Dedicated, &until(MoveUntil::Done)).await?;
    assert_eq!(fingerprint(su, &schema, f.x).await?, rows);

    // A switch that cannot pause the tenant in time gives up and changes nothing.
    move_to(svc, f.x, Isolation::Shared, &until(MoveUntil::Batches(1))).await?;
    let open = svc.begin(&f.x_ctx).await?;
    let quick = MoveOptions {
        lock_wait: std::time::Duration::from_millis(20),
        ..until(MoveUntil::Done)
    };
    let r = move_to(svc, f.x, Isolation::Shared, &quick).await;
    assert!(
        matches!(&r, Err(ServiceError::Unavailable(m)) if m.contains("did not pause")),
        "{r:?}"
    );
    open.commit().await?;
    assert!(isolation_of(su, f.x).await?.starts_with("dedicated"));
    assert_eq!(view(svc, &f.x_ctx).await?, seen);
    Ok(())
}

#[tokio::test]
async fn a_verification_mismatch_aborts_the_switch_and_changes_nothing() -> anyhow::Result<()> {
    let f = fixture(5).await?;
    let (svc, su) = (&f.env.svc, &f.env.su);
    let schema = TenantSchema::for_tenant(f.x).to_string();
    let rows = fingerprint(su, "public", f.x).await?;
    let seen = view(svc, &f.x_ctx).await?;
    move_to(svc, f.x, Isolation::Dedicated, &until(MoveUntil::Started)).await?;

    // The new place is not what we have: a trigger (added underneath) rewrites every row.
    su.execute_raw(stmt(
        &format!(
            "CREATE FUNCTION {schema}.mangle() RETURNS trigger LANGUAGE plpgsql AS \
             $$BEGIN NEW.name := NEW.name || '!'; RETURN NEW; END$$"
        ),
        [],
    ))
    .await?;
    su.execute_raw(stmt(
        &format!(
            "CREATE TRIGGER mangle BEFORE INSERT OR UPDATE ON {schema}.projects \
             FOR EACH ROW EXECUTE FUNCTION {schema}.mangle()"
        ),
        [],
    ))
    .await?;
    let r = move_to(svc, f.x, Isolation::Dedicated, &until(MoveUntil::Done)).await;
    assert!(
        matches!(&r, Err(ServiceError::Conflict(m)) if m.contains("verification failed for projects")),
        "{r:?}"
    );
    assert_eq!(isolation_of(su, f.x).await?, "shared");
    assert_eq!(fingerprint(su, "public", f.x).await?, rows);
    assert_eq!(view(svc, &f.x_ctx).await?, seen);
    assert_eq!(
        superadmin_audits(su, "tenant.move.switched", Some(f.x)).await?,
        0
    );
    // Offboarding waits for the move to finish (it would leave the new place behind).
    let sa = svc.superadmin(grant("tenant.offboard", Some(f.x))).await?;
    let mut export = Vec::new();
    let r = sa.offboard(f.x, &mut export).await;
    assert!(
        matches!(&r, Err(ServiceError::Conflict(m)) if m.contains("in progress")),
        "{r:?}"
    );
    drop(sa);

    // Meanwhile the neighbour sees nothing of the moving tenant's new schema.
    let tx = svc.begin(&f.neighbour).await?;
    let denied = tx
        .conn()
        .query_one_raw(stmt(&format!("SELECT count(*) FROM {schema}.projects"), []))
        .await;
    assert!(
        denied.is_err(),
        "another tenant cannot read the schema of a moving tenant"
    );
    drop(tx);

    // Repaired, the rerun's delta rewrites the mangled rows and the move completes.
    su.execute_raw(stmt(
        &format!("DROP TRIGGER mangle ON {schema}.projects"),
        [],
    ))
    .await?;
    su.execute_raw(stmt(&format!("DROP FUNCTION {schema}.mangle()"), []))
        .await?;
    move_to(svc, f.x, Isolation::Dedicated, &until(MoveUntil::Done)).await?;
    assert_eq!(fingerprint(su, &schema, f.x).await?, rows);
    assert_eq!(view(svc, &f.x_ctx).await?, seen);
    Ok(())
}

/// `api move-tenant`, the operator's command: moves, reruns as a no-op, refuses bad input.
#[tokio::test]
async fn the_operator_command_moves_a_tenant_and_reruns_as_a_no_op() -> anyhow::Result<()> {
    use tenantry_tests::logins::LoginRole;
    let f = fixture(3).await?;
    let bin = tokio::task::spawn_blocking(|| common::build_binary("api", "api")).await??;
    let (app, sa) = (
        f.env.db.url(LoginRole::App),
        f.env.db.url(LoginRole::Superadmin),
    );
    let run = |args: Vec<String>| {
        let (bin, app, sa) = (bin.clone(), app.clone(), sa.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(bin)
                .args(args)
                .env("TENANTRY_APP_DATABASE_URL", app)
                .env("TENANTRY_SUPERADMIN_DATABASE_URL", sa)
                .env("RUST_LOG", "warn")
                .output()
        })
    };
    let args = |to: &str, extra: &[&str]| {
        let mut a = vec!["move-tenant".to_owned(), f.x.to_string(), to.to_owned()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let seen = view(&f.env.svc, &f.x_ctx).await?;
    let out = run(args(
        "dedicated",
        &["--reason", "enterprise asked", "--batch-rows", "2"],
    ))
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(stdout.contains("\"outcome\": \"done\""), "{stdout}");
    assert!(isolation_of(&f.env.su, f.x).await?.starts_with("dedicated"));
    assert_eq!(view(&f.env.svc, &f.x_ctx).await?, seen);
    let again = run(args("dedicated", &["--reason", "rerun"])).await??;
    let stdout = String::from_utf8_lossy(&again.stdout);
    ensure!(stdout.contains("already_there"), "{stdout}");
    // Bad input: an unknown mode, or no reason, is refused before anything is done.
    for bad in [args("separate", &["--reason", "x"]), args("shared", &[])] {
        let out = run(bad).await??;
        ensure!(
            !out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(isolation_of(&f.env.su, f.x).await?.starts_with("dedicated"));
    Ok(())
}

/// The whole attack matrix and the catalog audit pass in the middle of a promote (the tenant
/// still shared, its schema half filled) and after it, and the dedicated leg attacks the
/// promoted tenant's schema.
#[tokio::test]
async fn isolation_holds_during_and_after_a_promote() -> anyhow::Result<()> {
    use tenantry_tests::isolation::{self, IsolationTarget};
    let f = fixture(6).await?;
    let schema = TenantSchema::for_tenant(f.x).to_string();
    let target = IsolationTarget::for_db(&f.env.db, 20);
    move_to(
        &f.env.svc,
        f.x,
        Isolation::Dedicated,
        &until(MoveUntil::Batches(2)),
    )
    .await?;
    let during = isolation::run(&target).await?;
    assert!(during.failures().is_empty(), "{:?}", during.failures());
    move_to(
        &f.env.svc,
        f.x,
        Isolation::Dedicated,
        &until(MoveUntil::Done),
    )
    .await?;
    let after = isolation::run(&target).await?;
    assert!(after.failures().is_empty(), "{:?}", after.failures());
    assert!(
        after.other.iter().any(|r| r.subject.contains(&schema)),
        "the dedicated leg attacked the promoted tenant's schema"
    );
    Ok(())
}

// A database-wide default of REPEATABLE READ (an operator's setting) never makes a move's
// switch read its delta and counts from a snapshot taken before it waited on the tenant's move
// lock: the superadmin transaction is READ COMMITTED whatever the default, so a write the switch
// waited for reaches the new place instead of being cleaned up with the old one (review 6).
#[tokio::test]
async fn a_default_repeatable_read_never_makes_the_switch_lose_a_write() -> anyhow::Result<()> {
    let env = env().await?;
    env.su
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{}\" SET default_transaction_isolation = 'repeatable read'",
            env.db.name
        ))
        .await?;
    // Fresh connections, which start at REPEATABLE READ.
    let svc = Tenantry::connect(config(&env.db)).await?;
    let owner = user(&svc, "x@switch-rr.test", "X").await?;
    let (x, x_ctx) = tenant_with(&svc, "switch-rr", owner, Isolation::Shared).await?;
    let open = svc.begin(&x_ctx).await?;
    let mover = move_behind_open_transaction(&svc, &env.su, x, MoveUntil::Done).await?;
    open.insert(projects::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set("written while the switch waited".into()),
        ..Default::default()
    })
    .await?;
    open.commit().await?;
    mover.await??;
    let schema = TenantSchema::for_tenant(x);
    let moved = scalar(
        &env.su,
        &format!(
            "SELECT count(*) FROM {schema}.projects WHERE name = 'written while the switch waited'"
        ),
        [],
    )
    .await?;
    assert_eq!(moved, 1, "the write the switch waited for was lost");
    svc.close().await?;
    Ok(())
}

/// How many requests for a tenant's move lock in `mode` (`ExclusiveLock`: a switch;
/// `ShareLock`: a tenant transaction's entry) wait.
async fn move_lock_waiters(su: &DatabaseConnection, mode: &str) -> anyhow::Result<i64> {
    scalar(
        su,
        "SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' \
         AND NOT granted AND classid::pg_catalog.int8 = $1 AND mode = $2",
        [
            i64::from(migration::dedicated::MOVE_LOCK_CLASS).into(),
            mode.into(),
        ],
    )
    .await
}

// A tenant transaction that arrives while a promote's switch waits for the tenant's move lock
// queues behind the switch, then reads the tenant row the switch committed, through the entry's
// partial index of the dedicated tenants (m0019; forced here for the app login, since with a
// handful of tenants the planner would read the table), and its write lands in the new schema.
#[tokio::test]
async fn a_write_queued_behind_a_promote_lands_in_the_new_schema() -> anyhow::Result<()> {
    use sea_orm::TransactionTrait;
    use tenantry_tests::logins::LoginRole;
    let f = fixture(3).await?;
    let su = &f.env.su;
    let app = f.env.db.connect(LoginRole::App, 1).await?;
    app.execute_unprepared(&format!(
        "ALTER ROLE CURRENT_USER IN DATABASE \"{}\" SET enable_seqscan = off",
        f.env.db.name
    ))
    .await?;
    app.close().await?;
    // Fresh connections, which start with the setting.
    let app = f.env.db.connect(LoginRole::App, 1).await?;
    let lookup = app.begin().await?;
    lookup
        .execute_unprepared(&format!("SET LOCAL tenantry.tenant_id = '{}'", f.x))
        .await?;
    let plan = lookup
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "EXPLAIN SELECT t.schema_name FROM tenancy.tenants t \
             WHERE t.id = tenancy.current_tenant_id() AND t.isolation = 'dedicated'",
        ))
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect::<Result<Vec<_>, _>>()?
        .join("\n");
    lookup.rollback().await?;
    ensure!(plan.contains("tenants_dedicated_idx"), "{plan}");
    let svc = Tenantry::connect(config(&f.env.db)).await?;

    // A tenant transaction held open, so the switch queues for the move lock behind it.
    let open = svc.begin(&f.x_ctx).await?;
    let mover = move_behind_open_transaction(&svc, su, f.x, MoveUntil::Switched).await?;
    ensure!(move_lock_waiters(su, "ExclusiveLock").await? == 1);
    let name = "queued behind the switch";
    let unit = {
        let (svc, ctx) = (svc.clone(), f.x_ctx.clone());
        tokio::spawn(async move {
            let tx = svc.begin(&ctx).await?;
            tx.insert(projects::ActiveModel {
                id: Set(Uuid::new_v4()),
                name: Set(name.into()),
                ..Default::default()
            })
            .await?;
            tx.commit().await?;
            anyhow::Ok(())
        })
    };
    // Until the unit waits too (or ended without reaching the lock, an error it reports).
    while move_lock_waiters(su, "ShareLock").await? < 1 && !unit.is_finished() {
        tokio::task::yield_now().await;
    }
    if unit.is_finished() {
        unit.await??;
        anyhow::bail!("the tenant transaction ran before the switch instead of queueing");
    }
    open.commit().await?;
    let switched = mover.await??;
    assert!(switched.switch_ms.is_some(), "{switched:?}");
    unit.await??;
    let count = |table: String| async move {
        scalar(
            su,
            &format!("SELECT count(*) FROM {table} WHERE name = $1"),
            [Value::from(name)],
        )
        .await
    };
    let schema = TenantSchema::for_tenant(f.x);
    assert_eq!(
        (
            count(format!("{schema}.projects")).await?,
            count("public.projects".into()).await?
        ),
        (1, 0),
        "the write went to the place the switch left"
    );
    svc.close().await?;
    Ok(())
}
