//! `TenantTx`'s scoped CRUD against a real PostgreSQL, with three tenants on `projects`,
//! `documents` and `tasks`: every read returns only the transaction's tenant's rows, every
//! write touches only them (checked as the superuser, who sees everything), raw SQL through
//! `TenantTx::conn` is still filtered by row level security, usage events of two tenants never
//! mix, and errors carry no SQL text, constraint names or another tenant's ids.
//!
//! Tenants, users and memberships are created as the bootstrap superuser (it bypasses row level
//! security); contexts then come from `Tenantry::member_context`, the authenticated source.
//!
//! Without a context the app pool cannot be reached at all: `Tenantry` keeps its pools private
//! and hands out connections only as a `TenantTx` (from `begin`/`with_tenant`, which need a
//! `TenantContext`), and `TenantContext` has no public constructor. That is a compile-time
//! property, so it is not tested here; what is tested is the layer under it: the app login
//! connected directly, without the service, sees no rows and can write none.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, ensure};
use entity::{documents, projects, tasks};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::value::prelude::chrono::{DateTime, Datelike, TimeZone, Utc};
use sea_orm::sea_query::{Expr, Value};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Order, QueryFilter,
    Statement,
};
use service::api_keys::{self, NewApiKey};
use service::tx::all;
use service::usage::{self, Period, UsageEventInput};
use service::{MemberRole, Page, ServiceError, TenantContext, Tenantry, TenantryConfig};
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------

struct Tenant {
    id: Uuid,
    ctx: TenantContext,
}

struct Fixture {
    su: DatabaseConnection,
    tenantry: Tenantry,
    tenants: Vec<Tenant>,
    db: tenantry_tests::TestDb,
}

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

async fn exec<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Result<u64, DbErr> {
    Ok(conn.execute_raw(stmt(sql, values)).await?.rows_affected())
}

async fn scalar_i64<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Result<i64> {
    let row = conn
        .query_one_raw(stmt(sql, values))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row from {sql}"))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

async fn uuids<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Result<Vec<Uuid>> {
    conn.query_all_raw(stmt(sql, values))
        .await?
        .iter()
        .map(|r| Ok(r.try_get_by_index::<Uuid>(0)?))
        .collect()
}

/// A new tenant with an owner, and the owner's context.
async fn add_tenant(su: &DatabaseConnection, tenantry: &Tenantry, slug: &str) -> Result<Tenant> {
    let id = Uuid::new_v4();
    exec(
        su,
        "INSERT INTO tenancy.tenants (id, name, slug) VALUES ($1, $2, $3)",
        [id.into(), format!("Tenant {slug}").into(), slug.into()],
    )
    .await?;
    let user = add_member(su, id, "owner").await?;
    let ctx = tenantry.member_context(id, user).await?;
    Ok(Tenant { id, ctx })
}

/// A new user who is a member of `tenant` with `role`.
async fn add_member(su: &DatabaseConnection, tenant: Uuid, role: &str) -> Result<Uuid> {
    let user = Uuid::new_v4();
    exec(
        su,
        "INSERT INTO tenancy.users (id, email, full_name) VALUES ($1, $2, 'Test user')",
        [user.into(), format!("{user}@example.test").into()],
    )
    .await?;
    exec(
        su,
        "INSERT INTO tenancy.tenant_users (tenant_id, user_id, role) VALUES ($1, $2, $3)",
        [tenant.into(), user.into(), role.into()],
    )
    .await?;
    Ok(user)
}

async fn fixture(tenants: usize) -> Result<Fixture> {
    let db = tenantry_tests::migrated_db().await?;
    let su = db.connect_superuser().await?;
    let tenantry =
        Tenantry::connect(TenantryConfig::new(db.url(LoginRole::App)).with_pool(4)).await?;
    let mut out = Vec::new();
    for i in 0..tenants {
        out.push(add_tenant(&su, &tenantry, &format!("tenant-{i}")).await?);
    }
    Ok(Fixture {
        su,
        tenantry,
        tenants: out,
        db,
    })
}

/// Seeds a project as the superuser and returns its id.
async fn seed_project(
    su: &DatabaseConnection,
    tenant: Uuid,
    name: &str,
    status: &str,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    seed_project_with_id(su, tenant, id, name, status).await?;
    Ok(id)
}

async fn seed_project_with_id(
    su: &DatabaseConnection,
    tenant: Uuid,
    id: Uuid,
    name: &str,
    status: &str,
) -> Result<()> {
    exec(
        su,
        "INSERT INTO public.projects (tenant_id, id, name, status) VALUES ($1, $2, $3, $4)",
        [tenant.into(), id.into(), name.into(), status.into()],
    )
    .await?;
    Ok(())
}

async fn seed_document(
    su: &DatabaseConnection,
    tenant: Uuid,
    project: Uuid,
    title: &str,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    exec(
        su,
        "INSERT INTO public.documents (tenant_id, id, project_id, title) VALUES ($1, $2, $3, $4)",
        [tenant.into(), id.into(), project.into(), title.into()],
    )
    .await?;
    Ok(id)
}

async fn seed_task(
    su: &DatabaseConnection,
    tenant: Uuid,
    project: Uuid,
    title: &str,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    exec(
        su,
        "INSERT INTO public.tasks (tenant_id, id, project_id, title) VALUES ($1, $2, $3, $4)",
        [tenant.into(), id.into(), project.into(), title.into()],
    )
    .await?;
    Ok(id)
}

/// Per tenant: the ids of its projects, documents and tasks, as seeded.
#[derive(Default)]
struct Seeded {
    projects: Vec<Uuid>,
    documents: Vec<Uuid>,
    tasks: Vec<Uuid>,
}

/// Tenant `i` gets `3 + 2i` projects (`p00`, `p01`, ...; odd ones archived), one document and
/// one task per project.
async fn seed_all(f: &Fixture) -> Result<Vec<Seeded>> {
    let mut out = Vec::new();
    for (i, t) in f.tenants.iter().enumerate() {
        let mut s = Seeded::default();
        for k in 0..(3 + 2 * i) {
            let status = if k % 2 == 0 { "active" } else { "archived" };
            let p = seed_project(&f.su, t.id, &format!("p{k:02}"), status).await?;
            s.documents
                .push(seed_document(&f.su, t.id, p, &format!("d{k:02}")).await?);
            s.tasks
                .push(seed_task(&f.su, t.id, p, &format!("t{k:02}")).await?);
            s.projects.push(p);
        }
        out.push(s);
    }
    Ok(out)
}

/// Every row of `table` (as the superuser) as `tenant_id -> {row as JSON text}`.
async fn snapshot(
    su: &DatabaseConnection,
    table: &str,
) -> Result<BTreeMap<Uuid, BTreeSet<String>>> {
    let rows = su
        .query_all_raw(stmt(
            &format!("SELECT tenant_id, to_jsonb(t)::text FROM {table} t"),
            [],
        ))
        .await?;
    let mut out: BTreeMap<Uuid, BTreeSet<String>> = BTreeMap::new();
    for row in rows {
        out.entry(row.try_get_by_index::<Uuid>(0)?)
            .or_default()
            .insert(row.try_get_by_index::<String>(1)?);
    }
    Ok(out)
}

/// The three legacy tables, snapshotted.
async fn snapshot_all(su: &DatabaseConnection) -> Result<Vec<BTreeMap<Uuid, BTreeSet<String>>>> {
    let mut out = Vec::new();
    for table in ["public.projects", "public.documents", "public.tasks"] {
        out.push(snapshot(su, table).await?);
    }
    Ok(out)
}

/// Asserts that `tenant`'s rows are the same in both snapshots of every table.
fn assert_untouched(
    before: &[BTreeMap<Uuid, BTreeSet<String>>],
    after: &[BTreeMap<Uuid, BTreeSet<String>>],
    tenant: Uuid,
) {
    for (table, (b, a)) in ["projects", "documents", "tasks"]
        .iter()
        .zip(before.iter().zip(after))
    {
        assert_eq!(
            b.get(&tenant),
            a.get(&tenant),
            "{table} of tenant {tenant} changed"
        );
    }
}

fn is_invalid(err: &ServiceError, expected: &str) -> bool {
    matches!(err, ServiceError::InvalidInput { field, .. } if *field == expected)
}

fn page(limit: u64, offset: u64) -> Page {
    Page { limit, offset }
}

// ---------------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn reads_return_exactly_the_tenants_rows() -> Result<()> {
    let f = fixture(3).await?;
    let seeded = seed_all(&f).await?;
    // The same id in two tenants: primary keys are (tenant_id, id), so this is allowed, and each
    // tenant must see its own row under that id.
    let shared = Uuid::new_v4();
    seed_project_with_id(&f.su, f.tenants[0].id, shared, "shared in 0", "active").await?;
    seed_project_with_id(&f.su, f.tenants[1].id, shared, "shared in 1", "active").await?;

    for (i, t) in f.tenants.iter().enumerate() {
        let tx = f.tenantry.begin(&t.ctx).await?;
        let mut own: BTreeSet<Uuid> = seeded[i].projects.iter().copied().collect();
        if i < 2 {
            own.insert(shared);
        }

        // find_by_id / get: own rows found, everyone else's not.
        for id in &seeded[i].projects {
            let row = tx.find_by_id::<projects::Entity>(*id).await?;
            let row = row.ok_or_else(|| anyhow::anyhow!("own project {id} not found"))?;
            assert_eq!(row.tenant_id, t.id);
            assert_eq!(tx.get::<projects::Entity>("project", *id).await?.id, *id);
        }
        for (j, other) in seeded.iter().enumerate().filter(|(j, _)| *j != i) {
            for id in &other.projects {
                assert_eq!(
                    tx.find_by_id::<projects::Entity>(*id).await?,
                    None,
                    "tenant {i} sees project of {j}"
                );
                let err = tx
                    .get::<projects::Entity>("project", *id)
                    .await
                    .expect_err("another tenant's project must not be found");
                assert!(matches!(err, ServiceError::NotFound("project")), "{err:?}");
            }
            for id in &other.documents {
                assert_eq!(tx.find_by_id::<documents::Entity>(*id).await?, None);
            }
            for id in &other.tasks {
                assert_eq!(tx.find_by_id::<tasks::Entity>(*id).await?, None);
            }
        }
        let shared_row = tx.find_by_id::<projects::Entity>(shared).await?;
        match i {
            0 => assert_eq!(shared_row.map(|r| r.name), Some("shared in 0".to_owned())),
            1 => assert_eq!(shared_row.map(|r| r.name), Some("shared in 1".to_owned())),
            _ => assert_eq!(shared_row, None),
        }

        // list and count without a filter: exactly the tenant's rows.
        let listed = tx
            .list::<projects::Entity>(all(), vec![], page(1000, 0))
            .await?;
        assert!(listed.iter().all(|r| r.tenant_id == t.id));
        let listed: BTreeSet<Uuid> = listed.iter().map(|r| r.id).collect();
        assert_eq!(listed, own);
        assert_eq!(tx.count::<projects::Entity>(all()).await?, own.len() as u64);
        let docs = tx
            .list::<documents::Entity>(all(), vec![], page(1000, 0))
            .await?;
        let docs: BTreeSet<Uuid> = docs.iter().map(|r| r.id).collect();
        assert_eq!(docs, seeded[i].documents.iter().copied().collect());
        assert_eq!(
            tx.count::<tasks::Entity>(all()).await?,
            seeded[i].tasks.len() as u64
        );
        let task_rows = tx.select::<tasks::Entity>().all(tx.conn()).await?;
        assert_eq!(
            task_rows.iter().map(|r| r.id).collect::<BTreeSet<_>>(),
            seeded[i].tasks.iter().copied().collect()
        );

        // Filters narrow within the tenant; a filter naming another tenant's rows finds nothing.
        let archived = tx
            .list::<projects::Entity>(
                projects::Column::Status.eq("archived"),
                vec![(projects::Column::Name, Order::Asc)],
                page(1000, 0),
            )
            .await?;
        let expected: Vec<String> = (0..(3 + 2 * i))
            .filter(|k| k % 2 == 1)
            .map(|k| format!("p{k:02}"))
            .collect();
        assert_eq!(
            archived.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(
            tx.count::<projects::Entity>(projects::Column::Status.eq("archived"))
                .await?,
            expected.len() as u64
        );
        let foreign: Vec<Uuid> = seeded
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, s)| s.projects.clone())
            .collect();
        assert!(
            tx.list::<projects::Entity>(
                projects::Column::Id.is_in(foreign.clone()),
                vec![],
                page(1000, 0)
            )
            .await?
            .is_empty()
        );
        assert!(
            tx.list::<documents::Entity>(
                documents::Column::ProjectId.is_in(foreign.clone()),
                vec![],
                page(1000, 0)
            )
            .await?
            .is_empty()
        );
        assert_eq!(
            tx.count::<tasks::Entity>(tasks::Column::ProjectId.is_in(foreign))
                .await?,
            0
        );

        // Pagination: pages of two, in name order, add up to the whole ordered list.
        let whole: Vec<String> = tx
            .list::<projects::Entity>(
                all(),
                vec![(projects::Column::Name, Order::Desc)],
                page(1000, 0),
            )
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect();
        let mut sorted = whole.clone();
        sorted.sort();
        sorted.reverse();
        assert_eq!(whole, sorted);
        let mut paged = Vec::new();
        let mut offset = 0;
        loop {
            let chunk = tx
                .list::<projects::Entity>(
                    all(),
                    vec![(projects::Column::Name, Order::Desc)],
                    page(2, offset),
                )
                .await?;
            assert!(chunk.len() <= 2);
            if chunk.is_empty() {
                break;
            }
            offset += chunk.len() as u64;
            paged.extend(chunk.into_iter().map(|r| r.name));
        }
        assert_eq!(paged, whole);
        assert!(
            tx.list::<projects::Entity>(all(), vec![], page(10, own.len() as u64))
                .await?
                .is_empty()
        );

        // Limit bounds.
        for bad in [0, service::tx::MAX_PAGE + 1] {
            let err = tx
                .list::<projects::Entity>(all(), vec![], page(bad, 0))
                .await
                .expect_err("out-of-bounds limit must be refused");
            assert!(is_invalid(&err, "limit"), "{err:?}");
        }
        assert_eq!(
            tx.list::<projects::Entity>(all(), vec![], page(service::tx::MAX_PAGE, 0))
                .await?
                .len(),
            own.len()
        );
        tx.rollback().await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inserts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn inserts_are_claimed_for_the_tenant_and_another_tenant_is_refused() -> Result<()> {
    let f = fixture(3).await?;
    let (a, b) = (&f.tenants[0], &f.tenants[1]);
    let b_project = seed_project(&f.su, b.id, "b's", "active").await?;
    let before = snapshot_all(&f.su).await?;

    let tx = f.tenantry.begin(&a.ctx).await?;
    // The tenant is filled in when absent, accepted when it is the tenant's own.
    let p = tx
        .insert(projects::ActiveModel {
            name: Set("implicit".into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(p.tenant_id, a.id);
    let explicit = tx
        .insert(projects::ActiveModel {
            tenant_id: Set(a.id),
            name: Set("explicit".into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(explicit.tenant_id, a.id);
    // Another tenant is refused before anything is sent.
    let err = tx
        .insert(projects::ActiveModel {
            tenant_id: Set(b.id),
            name: Set("intruder".into()),
            ..Default::default()
        })
        .await
        .expect_err("a row naming another tenant must be refused");
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    let d = tx
        .insert(documents::ActiveModel {
            project_id: Set(p.id),
            title: Set("doc".into()),
            ..Default::default()
        })
        .await?;
    assert_eq!((d.tenant_id, d.project_id), (a.id, p.id));
    let task = tx
        .insert(tasks::ActiveModel {
            project_id: Set(p.id),
            title: Set("task".into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(task.tenant_id, a.id);
    tx.commit().await?;

    // Committed: A's rows are there and A's; nothing named "intruder" exists anywhere.
    let rows = uuids(
        &f.su,
        "SELECT tenant_id FROM public.projects WHERE name IN ('implicit', 'explicit')",
        [],
    )
    .await?;
    assert_eq!(rows, vec![a.id, a.id]);
    assert_eq!(
        scalar_i64(
            &f.su,
            "SELECT count(*) FROM public.projects WHERE name = 'intruder'",
            []
        )
        .await?,
        0
    );
    let after = snapshot_all(&f.su).await?;
    for t in &f.tenants[1..] {
        assert_untouched(&before, &after, t.id);
    }

    // A document pointing at another tenant's project is refused by the composite key.
    let tx = f.tenantry.begin(&a.ctx).await?;
    let err = tx
        .insert(documents::ActiveModel {
            project_id: Set(b_project),
            title: Set("cross".into()),
            ..Default::default()
        })
        .await
        .expect_err("a reference into another tenant must be refused");
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
    drop(tx);
    assert_eq!(
        scalar_i64(
            &f.su,
            "SELECT count(*) FROM public.documents WHERE title = 'cross'",
            []
        )
        .await?,
        0
    );

    // A viewer cannot write at all.
    let viewer = add_member(&f.su, a.id, "viewer").await?;
    let viewer_ctx = f.tenantry.member_context(a.id, viewer).await?;
    let tx = f.tenantry.begin(&viewer_ctx).await?;
    let err = tx
        .insert(projects::ActiveModel {
            name: Set("by viewer".into()),
            ..Default::default()
        })
        .await
        .expect_err("a viewer cannot insert");
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    assert!(matches!(
        tx.update_many::<projects::Entity>(),
        Err(ServiceError::Forbidden(_))
    ));
    assert!(matches!(
        tx.delete_many::<projects::Entity>(),
        Err(ServiceError::Forbidden(_))
    ));
    assert!(matches!(
        tx.delete_by_id::<projects::Entity>(p.id).await,
        Err(ServiceError::Forbidden(_))
    ));
    // ...but reads.
    assert_eq!(tx.count::<projects::Entity>(all()).await?, 2);
    tx.commit().await?;
    assert_eq!(
        scalar_i64(
            &f.su,
            "SELECT count(*) FROM public.projects WHERE tenant_id = $1",
            [a.id.into()]
        )
        .await?,
        2
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Updates and deletes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn updates_and_deletes_touch_only_the_tenants_rows() -> Result<()> {
    let f = fixture(3).await?;
    let seeded = seed_all(&f).await?;
    let (a, b) = (&f.tenants[0], &f.tenants[1]);
    let (mine, theirs) = (&seeded[0].projects, &seeded[1].projects);
    let before = snapshot_all(&f.su).await?;

    // update: own row changes.
    let tx = f.tenantry.begin(&a.ctx).await?;
    let updated = tx
        .update(projects::ActiveModel {
            id: Set(mine[0]),
            name: Set("renamed".into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(
        (updated.tenant_id, updated.name.as_str()),
        (a.id, "renamed")
    );
    // Another tenant's row, by id: not found, unchanged.
    let err = tx
        .update(projects::ActiveModel {
            id: Set(theirs[0]),
            name: Set("hijacked".into()),
            ..Default::default()
        })
        .await
        .expect_err("another tenant's row must not be updated");
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
    // Moving an own row to another tenant: refused.
    let err = tx
        .update(projects::ActiveModel {
            tenant_id: Set(b.id),
            id: Set(mine[1]),
            name: Set("moved".into()),
            ..Default::default()
        })
        .await
        .expect_err("moving a row to another tenant must be refused");
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    // delete_by_id: another tenant's id deletes nothing; an own id deletes one row.
    assert!(!tx.delete_by_id::<projects::Entity>(theirs[0]).await?);
    assert!(
        !tx.delete_by_id::<documents::Entity>(seeded[1].documents[0])
            .await?
    );
    assert!(tx.delete_by_id::<tasks::Entity>(seeded[0].tasks[0]).await?);
    assert!(!tx.delete_by_id::<tasks::Entity>(seeded[0].tasks[0]).await?);
    tx.commit().await?;

    let name_of = |id: Uuid, tenant: Uuid| {
        let su = &f.su;
        async move {
            let row = su
                .query_one_raw(stmt(
                    "SELECT name FROM public.projects WHERE tenant_id = $1 AND id = $2",
                    [tenant.into(), id.into()],
                ))
                .await?;
            Ok::<_, anyhow::Error>(match row {
                Some(r) => Some(r.try_get_by_index::<String>(0)?),
                None => None,
            })
        }
    };
    assert_eq!(name_of(mine[0], a.id).await?.as_deref(), Some("renamed"));
    assert_eq!(name_of(theirs[0], b.id).await?.as_deref(), Some("p00"));
    let after = snapshot_all(&f.su).await?;
    for t in &f.tenants[1..] {
        assert_untouched(&before, &after, t.id);
    }

    // update_many / delete_many: only own rows, whatever the filter says.
    let tx = f.tenantry.begin(&a.ctx).await?;
    let n = tx
        .update_many::<projects::Entity>()?
        .col_expr(projects::Column::Description, Expr::value("bulk"))
        .exec(tx.conn())
        .await?
        .rows_affected;
    assert_eq!(n, mine.len() as u64);
    let n = tx
        .update_many::<projects::Entity>()?
        .col_expr(projects::Column::Description, Expr::value("hijacked"))
        .filter(projects::Column::Id.is_in(theirs.clone()))
        .exec(tx.conn())
        .await?
        .rows_affected;
    assert_eq!(n, 0);
    let n = tx
        .delete_many::<documents::Entity>()?
        .filter(documents::Column::Id.is_in(seeded[1].documents.clone()))
        .exec(tx.conn())
        .await?
        .rows_affected;
    assert_eq!(n, 0);
    let n = tx
        .delete_many::<tasks::Entity>()?
        .exec(tx.conn())
        .await?
        .rows_affected;
    assert_eq!(n, seeded[0].tasks.len() as u64 - 1);
    tx.commit().await?;
    assert_eq!(
        scalar_i64(
            &f.su,
            "SELECT count(*) FROM public.projects WHERE description = 'bulk'",
            []
        )
        .await?,
        mine.len() as i64
    );
    assert_eq!(
        scalar_i64(
            &f.su,
            "SELECT count(*) FROM public.tasks WHERE tenant_id = $1",
            [a.id.into()]
        )
        .await?,
        0
    );

    // update_many moving rows to another tenant: row level security's WITH CHECK refuses it.
    let tx = f.tenantry.begin(&a.ctx).await?;
    let err = tx
        .update_many::<projects::Entity>()?
        .col_expr(projects::Column::TenantId, Expr::value(b.id))
        .exec(tx.conn())
        .await
        .map_err(ServiceError::from)
        .expect_err("moving rows to another tenant must be refused");
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    drop(tx);

    // delete_many without a filter: all own projects (documents cascade), nobody else's.
    let tx = f.tenantry.begin(&a.ctx).await?;
    let n = tx
        .delete_many::<projects::Entity>()?
        .exec(tx.conn())
        .await?
        .rows_affected;
    assert_eq!(n, mine.len() as u64);
    tx.commit().await?;
    for table in ["projects", "documents", "tasks"] {
        assert_eq!(
            scalar_i64(
                &f.su,
                &format!("SELECT count(*) FROM public.{table} WHERE tenant_id = $1"),
                [a.id.into()]
            )
            .await?,
            0,
            "{table} of the deleting tenant"
        );
    }
    let after = snapshot_all(&f.su).await?;
    for t in &f.tenants[1..] {
        assert_untouched(&before, &after, t.id);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Raw SQL and the app login without the service
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn raw_sql_through_conn_is_still_filtered_by_row_level_security() -> Result<()> {
    let f = fixture(3).await?;
    let seeded = seed_all(&f).await?;
    let before = snapshot_all(&f.su).await?;
    let (a, b) = (&f.tenants[1], &f.tenants[2]);

    let tx = f.tenantry.begin(&a.ctx).await?;
    let tenants = uuids(tx.conn(), "SELECT tenant_id FROM public.projects", []).await?;
    assert_eq!(tenants.len(), seeded[1].projects.len());
    assert!(tenants.iter().all(|t| *t == a.id));
    let ids: BTreeSet<Uuid> = uuids(tx.conn(), "SELECT id FROM public.documents", [])
        .await?
        .into_iter()
        .collect();
    assert_eq!(ids, seeded[1].documents.iter().copied().collect());
    // Unfiltered writes reach only own rows.
    let n = exec(
        tx.conn(),
        "UPDATE public.projects SET description = 'raw'",
        [],
    )
    .await?;
    assert_eq!(n, seeded[1].projects.len() as u64);
    let n = exec(tx.conn(), "DELETE FROM public.tasks", []).await?;
    assert_eq!(n, seeded[1].tasks.len() as u64);
    // Naming another tenant explicitly changes nothing either.
    let n = exec(
        tx.conn(),
        "UPDATE public.projects SET name = 'x' WHERE tenant_id = $1",
        [b.id.into()],
    )
    .await?;
    assert_eq!(n, 0);
    tx.commit().await?;

    // Writing a row for another tenant through raw SQL is refused by WITH CHECK.
    let tx = f.tenantry.begin(&a.ctx).await?;
    let err = exec(
        tx.conn(),
        "INSERT INTO public.projects (tenant_id, name) VALUES ($1, 'raw intruder')",
        [b.id.into()],
    )
    .await
    .expect_err("a raw insert for another tenant must be refused");
    assert_eq!(service::error::sqlstate(&err).as_deref(), Some("42501"));
    drop(tx);

    let after = snapshot_all(&f.su).await?;
    for t in [&f.tenants[0], b] {
        assert_untouched(&before, &after, t.id);
    }
    assert_eq!(
        scalar_i64(
            &f.su,
            "SELECT count(*) FROM public.projects WHERE description = 'raw'",
            []
        )
        .await?,
        seeded[1].projects.len() as i64
    );
    Ok(())
}

#[tokio::test]
async fn the_app_login_without_a_context_sees_and_writes_nothing() -> Result<()> {
    let f = fixture(2).await?;
    seed_all(&f).await?;
    // Bypassing the service entirely: the app login on its own connection, no context set.
    let app = f.db.connect(LoginRole::App, 1).await?;
    for table in [
        "public.projects",
        "public.documents",
        "public.tasks",
        "tenancy.usage_events",
    ] {
        assert_eq!(
            scalar_i64(&app, &format!("SELECT count(*) FROM {table}"), []).await?,
            0,
            "{table}"
        );
    }
    assert_eq!(
        exec(&app, "UPDATE public.projects SET name = 'x'", []).await?,
        0
    );
    assert_eq!(exec(&app, "DELETE FROM public.documents", []).await?, 0);
    let err = exec(
        &app,
        "INSERT INTO public.projects (tenant_id, name) VALUES ($1, 'no context')",
        [f.tenants[0].id.into()],
    )
    .await
    .expect_err("an insert without a context must be refused");
    ensure!(
        service::error::sqlstate(&err).is_some(),
        "expected a database refusal, got {err}"
    );
    app.close().await?;
    assert!(
        scalar_i64(
            &f.su,
            "SELECT count(*) FROM public.projects WHERE name = 'x'",
            []
        )
        .await?
            == 0
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------------------------

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .unwrap_or_else(|| panic!("bad test date {y}-{mo}-{d}"))
}

/// `(period, kind, events, quantity, tokens_in, tokens_out, avg_latency_ms)` of a summary row.
type DayRow<'a> = (DateTime<Utc>, &'a str, i64, i64, i64, i64, Option<f64>);

/// Makes one field of a usage event invalid.
type Breaker = Box<dyn Fn(&mut UsageEventInput)>;

fn event(kind: &str, quantity: i64) -> UsageEventInput {
    UsageEventInput::new(kind, quantity)
}

/// Records `input` through the service as `ctx` (committed), then moves it to `when` as the
/// superuser: usage events are append-only for the app login.
async fn record_at(
    f: &Fixture,
    ctx: &TenantContext,
    input: UsageEventInput,
    when: DateTime<Utc>,
) -> Result<Uuid> {
    let tx = f.tenantry.begin(ctx).await?;
    let id = usage::record(&tx, input).await?;
    tx.commit().await?;
    let n = exec(
        &f.su,
        "UPDATE tenancy.usage_events SET occurred_at = $1 WHERE id = $2",
        [when.into(), id.into()],
    )
    .await?;
    ensure!(n == 1, "moving event {id} updated {n} rows");
    Ok(id)
}

#[tokio::test]
async fn usage_is_recorded_and_summarised_per_tenant() -> Result<()> {
    let f = fixture(2).await?;
    let (a, b) = (&f.tenants[0], &f.tenants[1]);

    // Tenant A: January 31st late and February 1st early are different days and months in
    // UTC, whatever the session's time zone.
    let mut e1 = event("request", 3);
    e1.latency_ms = Some(10);
    record_at(&f, &a.ctx, e1, at(2024, 1, 31, 23, 30)).await?;
    let mut e2 = event("request", 2);
    e2.latency_ms = Some(30);
    e2.endpoint = Some("/v1/things".into());
    record_at(&f, &a.ctx, e2, at(2024, 2, 1, 0, 30)).await?;
    let mut e3 = event("tokens", 1);
    e3.tokens_in = 100;
    e3.tokens_out = 50;
    record_at(&f, &a.ctx, e3, at(2024, 2, 1, 12, 0)).await?;
    let e4 = event("request", 4);
    record_at(&f, &a.ctx, e4, at(2024, 2, 1, 13, 0)).await?;
    let tx = f.tenantry.begin(&a.ctx).await?;
    exec(tx.conn(), "SET LOCAL TimeZone = 'Pacific/Auckland'", []).await?;
    // This month's, left at now(): the same transaction, so the same now() as month_to_date's.
    usage::record(&tx, event("request", 5)).await?;
    let mut e6 = event("ocr", 6);
    e6.ocr_pages = 12;
    usage::record(&tx, e6).await?;

    let days = usage::summary(&tx, at(2024, 1, 1, 0, 0), at(2024, 3, 1, 0, 0), Period::Day).await?;
    let got: Vec<DayRow> = days
        .iter()
        .map(|r| {
            (
                r.period_start,
                r.kind.as_str(),
                r.events,
                r.quantity,
                r.tokens_in,
                r.tokens_out,
                r.avg_latency_ms,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (at(2024, 1, 31, 0, 0), "request", 1, 3, 0, 0, Some(10.0)),
            (at(2024, 2, 1, 0, 0), "request", 2, 6, 0, 0, Some(30.0)),
            (at(2024, 2, 1, 0, 0), "tokens", 1, 1, 100, 50, None),
        ]
    );
    let months = usage::summary(
        &tx,
        at(2024, 1, 1, 0, 0),
        at(2024, 3, 1, 0, 0),
        Period::Month,
    )
    .await?;
    let got: Vec<(DateTime<Utc>, &str, i64, i64)> = months
        .iter()
        .map(|r| (r.period_start, r.kind.as_str(), r.events, r.quantity))
        .collect();
    assert_eq!(
        got,
        vec![
            (at(2024, 1, 1, 0, 0), "request", 1, 3),
            (at(2024, 2, 1, 0, 0), "request", 2, 6),
            (at(2024, 2, 1, 0, 0), "tokens", 1, 1),
        ]
    );
    // The range is half-open.
    let feb_only = usage::summary(
        &tx,
        at(2024, 2, 1, 0, 0),
        at(2024, 2, 1, 12, 0),
        Period::Day,
    )
    .await?;
    assert_eq!(feb_only.len(), 1);
    assert_eq!(
        (feb_only[0].kind.as_str(), feb_only[0].quantity),
        ("request", 2)
    );
    assert_eq!(usage::month_to_date(&tx, None).await?, 11);
    assert_eq!(usage::month_to_date(&tx, Some(Uuid::new_v4())).await?, 0);
    let err = usage::summary(&tx, at(2024, 2, 1, 0, 0), at(2024, 2, 1, 0, 0), Period::Day)
        .await
        .expect_err("an empty range must be refused");
    assert!(is_invalid(&err, "to"), "{err:?}");
    tx.commit().await?;

    // Tenant B: its own events only.
    let mut audio = event("transcription", 7);
    audio.audio_seconds = 1.5;
    record_at(&f, &b.ctx, audio, at(2024, 2, 1, 12, 30)).await?;
    let tx = f.tenantry.begin(&b.ctx).await?;
    usage::record(&tx, event("request", 100)).await?;
    let months = usage::summary(
        &tx,
        at(2024, 1, 1, 0, 0),
        at(2024, 3, 1, 0, 0),
        Period::Month,
    )
    .await?;
    assert_eq!(months.len(), 1);
    assert_eq!(
        (
            months[0].kind.as_str(),
            months[0].events,
            months[0].quantity,
            months[0].audio_seconds
        ),
        ("transcription", 1, 7, 1.5)
    );
    assert_eq!(usage::month_to_date(&tx, None).await?, 100);
    tx.commit().await?;

    // A, again: B's events do not show.
    let tx = f.tenantry.begin(&a.ctx).await?;
    let months = usage::summary(
        &tx,
        at(2024, 1, 1, 0, 0),
        at(2024, 3, 1, 0, 0),
        Period::Month,
    )
    .await?;
    assert!(
        months.iter().all(|r| r.kind != "transcription"),
        "{months:?}"
    );
    assert_eq!(months.iter().map(|r| r.quantity).sum::<i64>(), 10);
    tx.rollback().await?;

    // As the superuser: A has 6 events, B has 2, each with its own tenant.
    assert_eq!(
        scalar_i64(
            &f.su,
            "SELECT count(*) FROM tenancy.usage_events WHERE tenant_id = $1",
            [a.id.into()]
        )
        .await?,
        6
    );
    assert_eq!(
        scalar_i64(
            &f.su,
            "SELECT count(*) FROM tenancy.usage_events WHERE tenant_id = $1",
            [b.id.into()]
        )
        .await?,
        2
    );
    assert_eq!(
        scalar_i64(
            &f.su,
            "SELECT count(*) FROM tenancy.usage_events WHERE api_key_id IS NOT NULL",
            []
        )
        .await?,
        0,
        "a user's events carry no key"
    );
    Ok(())
}

#[tokio::test]
async fn usage_of_an_api_key_carries_the_key_and_counts_per_key() -> Result<()> {
    let f = fixture(2).await?;
    let (a, b) = (&f.tenants[0], &f.tenants[1]);
    // Keys issued by each tenant's owner; contexts from authenticating them.
    let mut principals = Vec::new();
    for (t, scopes) in [
        (a, vec!["usage".to_owned()]),
        (a, vec!["read".to_owned()]),
        (b, vec![]),
    ] {
        let tx = f.tenantry.begin(&t.ctx).await?;
        let issued = api_keys::issue(
            &tx,
            NewApiKey {
                name: "metered".into(),
                scopes,
                expires_at: None,
                rate_limit_per_minute: None,
                monthly_quota: None,
            },
        )
        .await?;
        tx.commit().await?;
        principals.push(f.tenantry.authenticate_api_key(&issued.secret).await?);
    }
    let (key_a, reader_a, key_b) = (&principals[0], &principals[1], &principals[2]);
    assert_eq!(key_a.context.tenant_id(), a.id);
    assert_eq!(reader_a.context.role(), MemberRole::Viewer);

    // One transaction per actor; month_to_date shares now() with the records it follows.
    let tx = f.tenantry.begin(&a.ctx).await?;
    let user_event = usage::record(&tx, event("request", 2)).await?;
    tx.commit().await?;
    let tx = f.tenantry.begin(&key_b.context).await?;
    let b_event = usage::record(&tx, event("request", 50)).await?;
    tx.commit().await?;
    // A read-only key is metered too: recording usage is not a change to the tenant's data.
    let tx = f.tenantry.begin(&reader_a.context).await?;
    let read_event = usage::record(&tx, event("request", 1)).await?;
    tx.commit().await?;
    let tx = f.tenantry.begin(&key_a.context).await?;
    let mut ids = Vec::new();
    for q in [3, 4] {
        ids.push(usage::record(&tx, event("request", q)).await?);
    }
    let total = usage::month_to_date(&tx, None).await?;
    let now = tx
        .conn()
        .query_one_raw(stmt("SELECT now()", []))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no now()"))?
        .try_get_by_index::<DateTime<Utc>>(0)?;
    assert_eq!(usage::month_to_date(&tx, Some(key_a.key_id)).await?, 7);
    assert_eq!(usage::month_to_date(&tx, Some(reader_a.key_id)).await?, 1);
    // B's key, asked from A: nothing, although B used it this month.
    assert_eq!(usage::month_to_date(&tx, Some(key_b.key_id)).await?, 0);
    tx.commit().await?;
    // The oracle: A's events (all recorded before `now`) in now's calendar month, in UTC.
    let mut expected = 0;
    for (id, quantity) in [(user_event, 2), (read_event, 1), (ids[0], 3), (ids[1], 4)] {
        let row =
            f.su.query_one_raw(stmt(
                "SELECT occurred_at FROM tenancy.usage_events WHERE id = $1",
                [id.into()],
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("event {id} missing"))?;
        let at = row.try_get_by_index::<DateTime<Utc>>(0)?;
        if (at.year(), at.month()) == (now.year(), now.month()) {
            expected += quantity;
        }
    }
    assert_eq!(total, expected);

    // As the superuser: each event carries its key and its key's tenant.
    let key_of = |id: Uuid| {
        let su = &f.su;
        async move {
            let rows = uuids(
                su,
                "SELECT tenant_id FROM tenancy.usage_events WHERE id = $1 \
                 UNION ALL SELECT api_key_id FROM tenancy.usage_events WHERE id = $1",
                [id.into()],
            )
            .await?;
            Ok::<_, anyhow::Error>(rows)
        }
    };
    for id in &ids {
        assert_eq!(key_of(*id).await?, vec![a.id, key_a.key_id]);
    }
    assert_eq!(key_of(read_event).await?, vec![a.id, reader_a.key_id]);
    assert_eq!(key_of(b_event).await?, vec![b.id, key_b.key_id]);
    assert_eq!(
        scalar_i64(
            &f.su,
            "SELECT count(*) FROM tenancy.usage_events WHERE tenant_id = $1 AND api_key_id IS NULL",
            [a.id.into()]
        )
        .await?,
        1,
        "the user's event carries no key"
    );

    // An event of A's cannot reference B's key, even through raw SQL (composite foreign key).
    let tx = f.tenantry.begin(&a.ctx).await?;
    let err = exec(
        tx.conn(),
        "INSERT INTO tenancy.usage_events (kind, quantity, api_key_id) VALUES ('request', 1, $1)",
        [key_b.key_id.into()],
    )
    .await
    .expect_err("a reference to another tenant's key must be refused");
    assert!(matches!(ServiceError::from(err), ServiceError::Conflict(_)));
    drop(tx);
    Ok(())
}

#[tokio::test]
async fn usage_batches_are_for_background_work_and_stay_in_the_tenant() -> Result<()> {
    let f = fixture(2).await?;
    let (a, b) = (&f.tenants[0], &f.tenants[1]);
    let mut keys = Vec::new();
    for t in [a, b] {
        let tx = f.tenantry.begin(&t.ctx).await?;
        let issued = api_keys::issue(
            &tx,
            NewApiKey {
                name: "metered".into(),
                scopes: vec![],
                expires_at: None,
                rate_limit_per_minute: None,
                monthly_quota: None,
            },
        )
        .await?;
        tx.commit().await?;
        keys.push(issued.key.id);
    }
    let batch = |key: Uuid, n: usize| -> Vec<usage::MeteredEvent> {
        (0..n)
            .map(|_| usage::MeteredEvent {
                api_key_id: Some(key),
                input: event("request", 1),
            })
            .collect()
    };
    let count = "SELECT count(*) FROM tenancy.usage_events WHERE tenant_id = $1";

    // A request's own context may not attribute events to keys.
    let tx = f.tenantry.begin(&a.ctx).await?;
    assert!(matches!(
        usage::record_batch(&tx, batch(keys[0], 2)).await,
        Err(ServiceError::Forbidden(_))
    ));
    tx.rollback().await?;

    // The meter's job context writes a batch in one statement per chunk, all for its tenant.
    let job = a.ctx.for_job("usage.meter");
    let tx = f.tenantry.begin(&job).await?;
    ensure!(usage::record_batch(&tx, batch(keys[0], 3)).await? == 3);
    tx.commit().await?;
    ensure!(scalar_i64(&f.su, count, vec![a.id.into()]).await? == 3);

    // A key of another tenant is refused by the database, and nothing of the batch is written.
    let tx = f.tenantry.begin(&job).await?;
    let mut mixed = batch(keys[0], 1);
    mixed.extend(batch(keys[1], 1));
    assert!(usage::record_batch(&tx, mixed).await.is_err());
    tx.rollback().await?;
    ensure!(scalar_i64(&f.su, count, vec![a.id.into()]).await? == 3);
    ensure!(scalar_i64(&f.su, count, vec![b.id.into()]).await? == 0);

    // One invalid event refuses the whole batch before anything is written.
    let tx = f.tenantry.begin(&job).await?;
    let mut bad = batch(keys[0], 2);
    bad[1].input.quantity = -1;
    assert!(matches!(
        usage::record_batch(&tx, bad).await,
        Err(ServiceError::InvalidInput { .. })
    ));
    tx.rollback().await?;
    ensure!(scalar_i64(&f.su, count, vec![a.id.into()]).await? == 3);
    Ok(())
}

#[tokio::test]
async fn usage_input_is_validated_field_by_field() -> Result<()> {
    let f = fixture(1).await?;
    let a = &f.tenants[0];
    let tx = f.tenantry.begin(&a.ctx).await?;
    let cases: Vec<(&str, Breaker)> = vec![
        ("kind", Box::new(|e| e.kind = String::new())),
        ("kind", Box::new(|e| e.kind = "   ".into())),
        ("kind", Box::new(|e| e.kind = "k".repeat(65))),
        ("quantity", Box::new(|e| e.quantity = -1)),
        ("tokens_in", Box::new(|e| e.tokens_in = -1)),
        ("tokens_out", Box::new(|e| e.tokens_out = i64::MIN)),
        ("audio_seconds", Box::new(|e| e.audio_seconds = -0.5)),
        ("audio_seconds", Box::new(|e| e.audio_seconds = f64::NAN)),
        (
            "audio_seconds",
            Box::new(|e| e.audio_seconds = f64::INFINITY),
        ),
        ("ocr_pages", Box::new(|e| e.ocr_pages = -1)),
        ("latency_ms", Box::new(|e| e.latency_ms = Some(-1))),
        (
            "endpoint",
            Box::new(|e| e.endpoint = Some("/".repeat(2049))),
        ),
        (
            "metadata",
            Box::new(|e| e.metadata = serde_json::json!([1, 2])),
        ),
    ];
    for (field, break_it) in &cases {
        let mut input = event("request", 1);
        break_it(&mut input);
        let err = usage::record(&tx, input)
            .await
            .expect_err("invalid input must be refused");
        assert!(
            is_invalid(&err, field),
            "expected invalid {field}, got {err:?}"
        );
        assert!(err.to_string().contains(field), "{err}");
    }
    // The limits themselves are accepted: 64 characters (not bytes), zeros, null metadata.
    let mut edge = event(&"é".repeat(64), 0);
    edge.metadata = serde_json::Value::Null;
    edge.latency_ms = Some(0);
    usage::record(&tx, edge).await?;
    assert_eq!(
        scalar_i64(tx.conn(), "SELECT count(*) FROM tenancy.usage_events", []).await?,
        1
    );
    let stored = scalar_i64(
        tx.conn(),
        "SELECT count(*) FROM tenancy.usage_events WHERE metadata = '{}'::jsonb",
        [],
    )
    .await?;
    assert_eq!(stored, 1);
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn errors_carry_no_sql_constraint_names_or_other_tenants_ids() -> Result<()> {
    let f = fixture(2).await?;
    let seeded = seed_all(&f).await?;
    let (a, b) = (&f.tenants[0], &f.tenants[1]);
    let (mine, theirs) = (seeded[0].projects[0], seeded[1].projects[0]);
    let mut errors: Vec<(&str, ServiceError)> = Vec::new();

    // Each failing statement aborts its transaction, so each gets its own.
    let tx = f.tenantry.begin(&a.ctx).await?;
    if let Err(e) = tx.get::<projects::Entity>("project", theirs).await {
        errors.push(("get another tenant's", e));
    }
    if let Err(e) = tx.list::<projects::Entity>(all(), vec![], page(0, 0)).await {
        errors.push(("limit 0", e));
    }
    if let Err(e) = tx
        .insert(projects::ActiveModel {
            tenant_id: Set(b.id),
            name: Set("x".into()),
            ..Default::default()
        })
        .await
    {
        errors.push(("insert for another tenant", e));
    }
    if let Err(e) = tx
        .update(projects::ActiveModel {
            id: Set(theirs),
            name: Set("x".into()),
            ..Default::default()
        })
        .await
    {
        errors.push(("update another tenant's", e));
    }
    drop(tx);
    let tx = f.tenantry.begin(&a.ctx).await?;
    if let Err(e) = tx
        .insert(projects::ActiveModel {
            id: Set(mine),
            name: Set("duplicate".into()),
            ..Default::default()
        })
        .await
    {
        errors.push(("duplicate key", e));
    }
    drop(tx);
    let tx = f.tenantry.begin(&a.ctx).await?;
    if let Err(e) = tx
        .insert(documents::ActiveModel {
            project_id: Set(theirs),
            title: Set("x".into()),
            ..Default::default()
        })
        .await
    {
        errors.push(("reference into another tenant", e));
    }
    drop(tx);
    let tx = f.tenantry.begin(&a.ctx).await?;
    if let Err(e) = tx.insert(projects::ActiveModel::default()).await {
        errors.push(("missing not-null column", e));
    }
    drop(tx);
    let tx = f.tenantry.begin(&a.ctx).await?;
    match tx.update_many::<projects::Entity>() {
        Ok(q) => {
            if let Err(e) = q
                .col_expr(projects::Column::TenantId, Expr::value(b.id))
                .exec(tx.conn())
                .await
            {
                errors.push(("move rows to another tenant", ServiceError::from(e)));
            }
        }
        Err(e) => errors.push(("update_many", e)),
    }
    drop(tx);
    let tx = f.tenantry.begin(&a.ctx).await?;
    if let Err(e) = usage::record(&tx, event("", 1)).await {
        errors.push(("invalid usage", e));
    }
    drop(tx);

    let labels: Vec<&str> = errors.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        labels,
        vec![
            "get another tenant's",
            "limit 0",
            "insert for another tenant",
            "update another tenant's",
            "duplicate key",
            "reference into another tenant",
            "missing not-null column",
            "move rows to another tenant",
            "invalid usage",
        ],
        "every operation above must fail"
    );
    // The kinds are right.
    let kinds: Vec<&str> = errors
        .iter()
        .map(|(_, e)| match e {
            ServiceError::NotFound(_) => "not found",
            ServiceError::Forbidden(_) => "forbidden",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::InvalidInput { .. } => "invalid",
            ServiceError::Unauthenticated(_) => "unauthenticated",
            ServiceError::Unavailable(_) => "unavailable",
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "not found",
            "invalid",
            "forbidden",
            "not found",
            "conflict",
            "conflict",
            "invalid",
            "forbidden",
            "invalid"
        ]
    );
    let forbidden_words = [
        "select",
        "insert",
        "update ",
        "delete",
        "violates",
        "constraint",
        "pkey",
        "fkey",
        "public.",
        "tenancy.",
        "policy",
        "sqlstate",
    ];
    let foreign_ids = [
        b.id.to_string(),
        theirs.to_string(),
        b.id.simple().to_string(),
    ];
    for (label, err) in &errors {
        let text = err.to_string();
        let lower = text.to_lowercase();
        for word in forbidden_words {
            assert!(!lower.contains(word), "{label}: {text:?} contains {word:?}");
        }
        for id in &foreign_ids {
            assert!(
                !lower.contains(id.as_str()),
                "{label}: {text:?} names another tenant's id"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Usage: bounds and overflow
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn usage_events_have_upper_bounds() -> Result<()> {
    let f = fixture(1).await?;
    let a = &f.tenants[0];
    let tx = f.tenantry.begin(&a.ctx).await?;
    let cases: Vec<(&str, Breaker)> = vec![
        ("quantity", Box::new(|e| e.quantity = i64::MAX)),
        (
            "quantity",
            Box::new(|e| e.quantity = usage::MAX_QUANTITY + 1),
        ),
        ("tokens_in", Box::new(|e| e.tokens_in = i64::MAX)),
        (
            "tokens_in",
            Box::new(|e| e.tokens_in = usage::MAX_TOKENS + 1),
        ),
        (
            "tokens_out",
            Box::new(|e| e.tokens_out = usage::MAX_TOKENS + 1),
        ),
        ("ocr_pages", Box::new(|e| e.ocr_pages = i32::MAX)),
        (
            "ocr_pages",
            Box::new(|e| e.ocr_pages = usage::MAX_OCR_PAGES + 1),
        ),
        ("audio_seconds", Box::new(|e| e.audio_seconds = f64::MAX)),
        (
            "audio_seconds",
            Box::new(|e| e.audio_seconds = usage::MAX_AUDIO_SECONDS * 1.000_001),
        ),
        ("latency_ms", Box::new(|e| e.latency_ms = Some(i32::MAX))),
        (
            "latency_ms",
            Box::new(|e| e.latency_ms = Some(usage::MAX_LATENCY_MS + 1)),
        ),
    ];
    for (field, break_it) in &cases {
        let mut input = event("request", 1);
        break_it(&mut input);
        let err = usage::record(&tx, input)
            .await
            .expect_err("an event above the bounds must be refused");
        assert!(
            is_invalid(&err, field),
            "expected invalid {field}, got {err:?}"
        );
    }
    assert_eq!(
        scalar_i64(tx.conn(), "SELECT count(*) FROM tenancy.usage_events", []).await?,
        0
    );
    // The bounds themselves are accepted.
    usage::record(&tx, at_the_bounds()).await?;
    tx.commit().await?;
    assert_eq!(
        (
            usage::MAX_QUANTITY,
            usage::MAX_TOKENS,
            usage::MAX_OCR_PAGES,
            usage::MAX_AUDIO_SECONDS,
            usage::MAX_LATENCY_MS
        ),
        (
            1_000_000_000_000,
            1_000_000_000_000,
            1_000_000,
            1e9,
            86_400_000
        )
    );
    Ok(())
}

fn at_the_bounds() -> UsageEventInput {
    let mut e = event("big", usage::MAX_QUANTITY);
    e.tokens_in = usage::MAX_TOKENS;
    e.tokens_out = usage::MAX_TOKENS;
    e.ocr_pages = usage::MAX_OCR_PAGES;
    e.audio_seconds = usage::MAX_AUDIO_SECONDS;
    e.latency_ms = Some(usage::MAX_LATENCY_MS);
    e
}

/// Sums that do not fit a bigint (rows written before the bounds existed, or simply very many
/// large events) saturate at `i64::MAX` instead of failing the whole summary.
#[tokio::test]
async fn usage_sums_saturate_instead_of_failing() -> Result<()> {
    let f = fixture(2).await?;
    let (a, b) = (&f.tenants[0], &f.tenants[1]);
    // Many large events through the service...
    let tx = f.tenantry.begin(&a.ctx).await?;
    for _ in 0..200 {
        usage::record(&tx, at_the_bounds()).await?;
    }
    tx.commit().await?;
    // ... and legacy rows far beyond the bounds, as only the superuser can still write them.
    exec(
        &f.su,
        "INSERT INTO tenancy.usage_events \
         (tenant_id, kind, quantity, tokens_in, tokens_out, audio_seconds, ocr_pages, latency_ms) \
         SELECT $1, kind, 9223372036854775807, 9223372036854775807, 9223372036854775807, \
                1e308, 2147483647, 2147483647 \
         FROM unnest(ARRAY['big', 'legacy']) AS kind, generate_series(1, 500)",
        [a.id.into()],
    )
    .await?;
    exec(
        &f.su,
        "INSERT INTO tenancy.usage_events (tenant_id, kind, quantity) VALUES ($1, 'request', 7)",
        [b.id.into()],
    )
    .await?;

    let tx = f.tenantry.begin(&a.ctx).await?;
    let to = Utc::now() + chrono::Duration::days(1);
    let from = to - chrono::Duration::days(40);
    for period in [Period::Day, Period::Month] {
        let rows = usage::summary(&tx, from, to, period).await?;
        let kinds: BTreeSet<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, BTreeSet::from(["big", "legacy"]), "{period:?}");
        for r in &rows {
            assert_eq!(r.quantity, i64::MAX, "{r:?}");
            assert_eq!(r.tokens_in, i64::MAX, "{r:?}");
            assert_eq!(r.tokens_out, i64::MAX, "{r:?}");
            assert!(
                r.audio_seconds.is_finite() && r.audio_seconds > 1e300,
                "{r:?}"
            );
            assert!(r.ocr_pages > 0, "{r:?}");
            assert!(r.avg_latency_ms.is_some_and(f64::is_finite), "{r:?}");
        }
    }
    assert_eq!(usage::month_to_date(&tx, None).await?, i64::MAX);
    drop(tx);
    // The other tenant's figures are exact, as ever.
    let tx = f.tenantry.begin(&b.ctx).await?;
    assert_eq!(usage::month_to_date(&tx, None).await?, 7);
    let rows = usage::summary(&tx, from, to, Period::Month).await?;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].quantity, rows[0].events), (7, 1));
    Ok(())
}
