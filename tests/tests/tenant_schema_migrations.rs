//! `up` over many tenant schemas: each schema in one transaction, a failure in one reported
//! with its schema and error while the others go on (and it stays exactly as it was), a rerun
//! resuming, versions summarised from one query, and new tenants provisioned with the new
//! migration too.

mod service_support;

use anyhow::ensure;
use migration::dedicated::migrate;
use migration::dedicated::{TenantSchema, TenantSchemaMigration, tenant_schema_migrations};
use migration::dsl::{Grant, GrantObject, Privilege};
use migration::plan::MigrationPlan;
use sea_orm::sea_query::{Alias, ColumnDef, Expr, Index, Query, Table};
use sea_orm::{Condition, ConnectionTrait, EntityTrait, TransactionTrait};
use service::tenants::Isolation;
use service::{NewTenant, Page};
use service_support::*;

/// A new tenant-schema migration: a column and an index on `projects`.
fn ts9000_notes(schema: &str) -> MigrationPlan {
    let projects = migration::tables::t(schema, Alias::new("projects"));
    let mut plan = MigrationPlan::new();
    let add = Table::alter()
        .table(projects.clone())
        .add_column(ColumnDef::new(Alias::new("notes")).text().null())
        .to_owned();
    let drop = Table::alter()
        .table(projects.clone())
        .drop_column(Alias::new("notes"))
        .to_owned();
    plan.step("projects.notes", &add, &drop);
    let idx = Index::create()
        .name("projects_notes_idx")
        .table(projects.clone())
        .col(Alias::new("tenant_id"))
        .col(Alias::new("notes"))
        .to_owned();
    let drop_idx = Index::drop()
        .name("projects_notes_idx")
        .table(projects)
        .to_owned();
    plan.step("index projects(tenant_id, notes)", &idx, &drop_idx);
    plan
}

fn with_notes() -> Vec<TenantSchemaMigration> {
    let mut all = tenant_schema_migrations();
    all.push(TenantSchemaMigration {
        name: "ts9000_notes",
        plan: ts9000_notes,
    });
    all
}

async fn dedicated(env: &Env, slug: &str) -> anyhow::Result<TenantSchema> {
    let owner = user(&env.svc, &format!("o@{slug}.test"), "O").await?;
    let sa = env.svc.superadmin(grant("tenant.provision", None)).await?;
    let (t, _) = sa
        .provision_tenant_with(
            NewTenant {
                name: slug.into(),
                slug: slug.into(),
                plan: "pro".into(),
                region: "eu".into(),
                admin_email: None,
            },
            owner,
            Isolation::Dedicated,
        )
        .await?;
    sa.commit().await?;
    Ok(TenantSchema::for_tenant(t.id))
}

async fn has_index(env: &Env, schema: &TenantSchema) -> anyhow::Result<bool> {
    Ok(scalar(
        &env.su,
        "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'projects_notes_idx'",
        [schema.as_str().into()],
    )
    .await?
        == 1)
}

#[tokio::test]
async fn up_migrates_every_schema_reports_failures_and_resumes() -> anyhow::Result<()> {
    let env = env().await?;
    let schemas = [
        dedicated(&env, "ts-one").await?,
        dedicated(&env, "ts-two").await?,
        dedicated(&env, "ts-three").await?,
    ];
    let owner = env
        .db
        .connect(tenantry_tests::logins::LoginRole::Owner, 2)
        .await?;
    let before = migrate::summary(&migrate::applied(&owner).await?);
    assert_eq!(before, "3 at ts0002_policy_setting");

    // The third schema already has a `notes` column: the migration fails there.
    let broken = &schemas[2];
    env.su
        .execute_unprepared(&format!(
            "ALTER TABLE {broken}.projects ADD COLUMN notes int"
        ))
        .await?;
    let report = migrate::up(&owner, &with_notes(), 2).await?;
    assert_eq!((report.migrated, report.current), (2, 0));
    assert_eq!(report.failed.len(), 1);
    ensure!(
        report.failed[0].schema == broken.as_str() && report.failed[0].migration == "ts9000_notes"
    );
    ensure!(
        report.failed[0].error.contains("notes"),
        "{:?}",
        report.failed
    );
    ensure!(has_index(&env, &schemas[0]).await? && has_index(&env, &schemas[1]).await?);
    ensure!(
        !has_index(&env, broken).await?,
        "the failed schema was half-migrated"
    );
    let after = migrate::summary(&migrate::applied(&owner).await?);
    assert_eq!(
        after,
        format!("2 at ts9000_notes; 1 at ts0002_policy_setting: {broken}")
    );
    let pending = migrate::pending(&with_notes(), &migrate::applied(&owner).await?);
    assert_eq!(pending, vec![("ts9000_notes", vec![broken.clone()])]);

    // Fixed, a rerun resumes with that schema only; then nothing is left to do.
    env.su
        .execute_unprepared(&format!("ALTER TABLE {broken}.projects DROP COLUMN notes"))
        .await?;
    let report = migrate::up(&owner, &with_notes(), 2).await?;
    assert_eq!(
        (report.migrated, report.current, report.failed.len()),
        (1, 2, 0)
    );
    let report = migrate::up(&owner, &with_notes(), 2).await?;
    assert_eq!(
        (report.migrated, report.current, report.failed.len()),
        (0, 3, 0)
    );

    // A tenant provisioned now gets the new migration from its stored template.
    let late = dedicated(&env, "ts-late").await?;
    ensure!(has_index(&env, &late).await?);
    assert_eq!(
        migrate::summary(&migrate::applied(&owner).await?),
        "4 at ts9000_notes"
    );
    Ok(())
}

/// The environment variable that turns this test binary into the child process of
/// [`a_killed_up_leaves_no_schema_half_migrated_and_a_rerun_finishes`]: the owner URL of the
/// database whose schemas it migrates.
const CHILD_URL: &str = "TENANTRY_TEST_UP_CHILD_URL";
/// Schemas the killed `up` migrates at once.
const CHILD_CONCURRENCY: u32 = 3;
/// The child's connections, named so the parent can find them in `pg_stat_activity`.
const CHILD_APP: &str = "tenantry-up-child";

/// The child process: the multi-schema `up` (`migrate::up`, as `migration up` runs it after
/// the database migrations) with `ts9000_notes` pending, on a pool of its own. Run only by
/// the parent test below, which kills it with SIGKILL; alone it does nothing.
#[tokio::test]
#[ignore = "the child process of a_killed_up_leaves_no_schema_half_migrated_and_a_rerun_finishes"]
async fn up_child_process() -> anyhow::Result<()> {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return Ok(());
    };
    let mut opts = sea_orm::ConnectOptions::new(url);
    opts.max_connections(CHILD_CONCURRENCY).sqlx_logging(false);
    let pool = sea_orm::Database::connect(opts).await?;
    migrate::up(&pool, &with_notes(), CHILD_CONCURRENCY as usize).await?;
    anyhow::bail!("the child's up finished: the parent should have killed it first")
}

/// Whether `schema` has each part of `ts9000_notes`: the column, the index, the version row.
async fn notes_parts(env: &Env, schema: &TenantSchema) -> anyhow::Result<(bool, bool, bool)> {
    let column = scalar(
        &env.su,
        "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) \
           AND attname = 'notes' AND NOT attisdropped",
        [format!("{schema}.projects").into()],
    )
    .await?
        == 1;
    let version = scalar(
        &env.su,
        "SELECT count(*) FROM tenancy.tenant_schema_versions \
           WHERE schema_name = $1 AND migration = 'ts9000_notes'",
        [schema.as_str().into()],
    )
    .await?
        == 1;
    Ok((column, has_index(env, schema).await?, version))
}

/// Polls of an observed server state: a short interval between checks (not a sleep standing
/// in for the state: each loop still waits for what it observes), and a bound that fails the
/// test with what it was waiting for instead of hanging.
struct Poll {
    interval: tokio::time::Interval,
    deadline: std::time::Instant,
}

impl Poll {
    fn new() -> Self {
        Self {
            interval: tokio::time::interval(std::time::Duration::from_millis(10)),
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(120),
        }
    }

    /// Waits for the next tick; an error once the bound has passed.
    async fn next(&mut self, waiting_for: &str) -> anyhow::Result<()> {
        self.interval.tick().await;
        if std::time::Instant::now() > self.deadline {
            anyhow::bail!("gave up after 120 s waiting for {waiting_for}");
        }
        Ok(())
    }
}

/// `up` over 12 schemas killed with SIGKILL while two schemas' transactions are open, each
/// with its DDL done and only its version row left (held back by a row lock the test takes):
/// the ten finished schemas are recorded, the two interrupted ones have nothing of the
/// migration (their transactions died with the process), and a rerun migrates exactly those
/// two. Synchronised on what the server shows (the child's backends waiting on the test's
/// transaction, the recorded versions), never on time.
#[tokio::test]
async fn a_killed_up_leaves_no_schema_half_migrated_and_a_rerun_finishes() -> anyhow::Result<()> {
    let env = env().await?;
    let mut schemas = Vec::new();
    for i in 0..12 {
        schemas.push(dedicated(&env, &format!("ts-kill-{i}")).await?);
    }
    schemas.sort();
    // Two schemas whose version row the test inserts first, in a transaction it keeps open: the
    // child's insert of the same key waits for it after the schema's DDL ran. With two of the
    // three connections held there, the other ten schemas all finish.
    let held = [schemas[3].clone(), schemas[8].clone()];
    let blocker = env.db.connect_superuser().await?;
    let hold = sea_orm::TransactionTrait::begin(&blocker).await?;
    for s in &held {
        hold.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "INSERT INTO tenancy.tenant_schema_versions (schema_name, migration) \
             VALUES ($1, 'ts9000_notes')",
            [s.as_str().into()],
        ))
        .await?;
    }

    let url = format!(
        "{}?application_name={CHILD_APP}",
        env.db.url(tenantry_tests::logins::LoginRole::Owner)
    );
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["--exact", "up_child_process", "--ignored", "--nocapture"])
        .env(CHILD_URL, url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let waiting_sql = format!(
        "SELECT coalesce(array_agg(pid ORDER BY pid), '{{}}') FROM pg_stat_activity \
         WHERE application_name = '{CHILD_APP}' AND wait_event_type = 'Lock' \
           AND query LIKE 'INSERT INTO \"tenancy\".\"tenant_schema_versions\"%'"
    );
    let mut poll = Poll::new();
    let (waiting, recorded) = loop {
        poll.next("the child's two held backends waiting and ten schemas recorded")
            .await?;
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err)?;
            }
            anyhow::bail!("the child's up ended before it was killed ({status}): {err}");
        }
        let row = env
            .su
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                waiting_sql.clone(),
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row from pg_stat_activity"))?;
        let waiting: Vec<i32> = row.try_get_by_index(0)?;
        let recorded = scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.tenant_schema_versions WHERE migration = 'ts9000_notes'",
            [],
        )
        .await?;
        if waiting.len() == held.len() && recorded == 10 {
            break (waiting, recorded);
        }
    };
    // The held backends had run the schema's DDL: each holds ACCESS EXCLUSIVE on its
    // schema's `projects` (ALTER TABLE ... ADD COLUMN), granted, in the open transaction.
    let holders: Vec<i32> = env
        .su
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT coalesce(array_agg(l.pid ORDER BY l.pid), '{{}}') FROM pg_locks l \
                 WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' AND l.granted \
                   AND l.relation IN ('{}.projects'::regclass, '{}.projects'::regclass)",
                held[0], held[1]
            ),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row from pg_locks"))?
        .try_get_by_index(0)?;
    assert_eq!(
        holders, waiting,
        "each held backend holds AccessExclusiveLock on its schema's projects"
    );
    child.kill()?; // SIGKILL
    child.wait()?;
    // The held transactions' DDL ran: the column exists inside them, uncommitted.
    hold.rollback().await?;
    // The server ends the dead client's backends as soon as they next touch its socket (here:
    // once the row lock is gone); until then their transactions are open, never committed.
    let mut poll = Poll::new();
    loop {
        poll.next("the killed child's backends gone").await?;
        let pids: Vec<String> = waiting.iter().map(i32::to_string).collect();
        let left = scalar(
            &env.su,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid IN ({})",
                pids.join(", ")
            ),
            [],
        )
        .await?;
        if left == 0 {
            break;
        }
    }
    assert_eq!(recorded, 10);
    for s in &schemas {
        let parts = notes_parts(&env, s).await?;
        if held.contains(s) {
            assert_eq!(
                parts,
                (false, false, false),
                "{s}: killed mid-transaction, half-migrated"
            );
        } else {
            assert_eq!(parts, (true, true, true), "{s}: finished before the kill");
        }
    }
    let owner = env
        .db
        .connect(tenantry_tests::logins::LoginRole::Owner, 3)
        .await?;
    assert_eq!(
        migrate::summary(&migrate::applied(&owner).await?),
        format!(
            "10 at ts9000_notes; 2 at ts0002_policy_setting: {}, {}",
            held[0], held[1]
        )
    );

    // The rerun migrates exactly the two interrupted schemas.
    let report = migrate::up(&owner, &with_notes(), 3).await?;
    assert_eq!(
        (report.migrated, report.current, report.failed.len()),
        (2, 10, 0),
        "{:?}",
        report.failed
    );
    for s in &schemas {
        assert_eq!(notes_parts(&env, s).await?, (true, true, true), "{s}");
    }
    assert_eq!(
        migrate::summary(&migrate::applied(&owner).await?),
        "12 at ts9000_notes"
    );
    Ok(())
}

/// A table this test creates in `public` and then, by a tenant-schema migration, in every
/// dedicated schema, as an entity of the test's own.
mod widgets {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "widgets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        #[sea_orm(column_type = "Text")]
        pub name: String,
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

/// A new tenant-schema migration: `widgets` in the tenant's schema, with one row of its own.
fn ts9001_widgets(schema: &str) -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    let widgets = migration::tables::t(schema, Alias::new("widgets"));
    let create = Table::create()
        .table(widgets.clone())
        .col(
            ColumnDef::new(Alias::new("id"))
                .uuid()
                .not_null()
                .primary_key(),
        )
        .col(ColumnDef::new(Alias::new("tenant_id")).uuid().not_null())
        .col(ColumnDef::new(Alias::new("name")).text().not_null())
        .to_owned();
    plan.step(
        "widgets",
        &create,
        &Table::drop().table(widgets.clone()).to_owned(),
    );
    let fill = Query::insert()
        .into_table(widgets.clone())
        .columns([
            Alias::new("id"),
            Alias::new("tenant_id"),
            Alias::new("name"),
        ])
        .values_panic([
            Expr::cust("gen_random_uuid()"),
            Expr::cust("tenancy.current_tenant_id()"),
            Expr::cust("'the schema''s own'"),
        ])
        .to_owned();
    plan.step(
        "a widget",
        &fill,
        &Query::delete().from_table(widgets).to_owned(),
    );
    let grant = Grant::privileges([Privilege::Select])
        .on(GrantObject::table(migration::tables::t(
            schema,
            Alias::new("widgets"),
        )))
        .to(Alias::new(schema))
        .to_owned();
    plan.step("the tenant role reads it", &grant, &grant.reverse());
    plan
}

// A statement a connection prepared before a tenant-schema migration added a table to the
// tenant's schema resolves, after it, to the new table, not to the one of that name in `public`
// it found before (each schema's migration rewrites the schema's `pg_namespace` row, which
// resets every session's cached plans): on the pipelined path, whose statements stay prepared
// on their connection, and through `with_tenant` (sqlx's statement cache).
#[tokio::test]
async fn a_statement_prepared_before_a_schema_migration_sees_the_table_it_adds()
-> anyhow::Result<()> {
    let env = env_with(|c| c.with_pool(1)).await?;
    let owner = user(&env.svc, "o@ts-widgets.test", "O").await?;
    let (tenant, ctx) = tenant_with(&env.svc, "ts-widgets", owner, Isolation::Dedicated).await?;
    env.su
        .execute_unprepared(&format!(
            "CREATE TABLE public.widgets (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, \
             name text NOT NULL); GRANT SELECT ON public.widgets TO PUBLIC; \
             INSERT INTO public.widgets VALUES (gen_random_uuid(), '{tenant}', 'public''s')"
        ))
        .await?;
    let names = async |env: &Env| -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let piped = env.svc.fetch_all(&ctx, widgets::Entity::find()).await?;
        let viatx = env
            .svc
            .with_tenant(&ctx, async |tx| {
                tx.list::<widgets::Entity>(Condition::all(), vec![], Page::default())
                    .await
            })
            .await?;
        Ok((
            piped.into_iter().map(|w| w.name).collect(),
            viatx.into_iter().map(|w| w.name).collect(),
        ))
    };
    let before = names(&env).await?;
    assert_eq!(
        before,
        (vec!["public's".to_string()], vec!["public's".to_string()])
    );
    let mut all = tenant_schema_migrations();
    all.push(TenantSchemaMigration {
        name: "ts9001_widgets",
        plan: ts9001_widgets,
    });
    let owner = env
        .db
        .connect(tenantry_tests::logins::LoginRole::Owner, 1)
        .await?;
    let report = migrate::up(&owner, &all, 1).await?;
    ensure!(report.failed.is_empty(), "{:?}", report.failed);
    let after = names(&env).await?;
    let own = vec!["the schema's own".to_string()];
    assert_eq!(
        after,
        (own.clone(), own),
        "the cached statements still read public.widgets"
    );
    Ok(())
}

/// A tenant provisioned while `up` stores a new migration's template: the replay ran the
/// templates it found when its loop started, so only those are recorded for its schema
/// (m0018); the late one is pending there, and `up` applies it. Before m0018 it was recorded
/// as applied without having run, and `up` never ran it.
#[tokio::test]
async fn a_template_stored_during_a_provisioning_stays_pending_for_that_schema()
-> anyhow::Result<()> {
    let env = env().await?;
    // As an older release left it: ts0002's template not stored yet.
    env.su
        .execute_unprepared(
            "DELETE FROM tenancy.tenant_schema_steps WHERE migration = 'ts0002_policy_setting'",
        )
        .await?;
    let owner_id = user(&env.svc, "o@racing.test", "O").await?;
    // Held while the provisioning replays ts0001: its foreign keys to `tenancy.tenants` wait.
    let blocker = env.db.connect_superuser().await?;
    let hold = blocker.begin().await?;
    hold.execute_unprepared("LOCK TABLE tenancy.tenants IN ROW EXCLUSIVE MODE")
        .await?;
    let svc = env.svc.clone();
    let provisioning = tokio::spawn(async move {
        let sa = svc.superadmin(grant("tenant.provision", None)).await?;
        let (t, _) = sa
            .provision_tenant_with(new_tenant("racing"), owner_id, Isolation::Dedicated)
            .await?;
        sa.commit().await?;
        anyhow::Ok(TenantSchema::for_tenant(t.id))
    });
    until_a_session_waits_on_a_lock(&env.su).await?;
    let owner = env
        .db
        .connect(tenantry_tests::logins::LoginRole::Owner, 2)
        .await?;
    migrate::store_templates(&owner, &tenant_schema_migrations()).await?;
    hold.commit().await?;
    let schema = provisioning.await??;

    let applied = migrate::applied(&owner).await?;
    assert_eq!(
        applied.get(&schema).map(Vec::as_slice),
        Some(&["ts0001_tables".to_owned()][..]),
        "{applied:?}"
    );
    let report = migrate::up(&owner, &tenant_schema_migrations(), 2).await?;
    assert_eq!((report.migrated, report.failed.len()), (1, 0), "{report:?}");
    let function_form = scalar(
        &env.su,
        "SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
         WHERE c.relnamespace = $1::regnamespace \
           AND coalesce(pg_get_expr(p.polqual, p.polrelid), '') \
               || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') LIKE '%current_tenant_id%'",
        [schema.as_str().into()],
    )
    .await?;
    assert_eq!(function_form, 0, "ts0002 did not run in {schema}");
    Ok(())
}
