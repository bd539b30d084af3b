//! Property test of tenant isolation under concurrency: random sequences of scoped operations
//! (insert, get, list, count, update, delete, update_many, delete_many on `projects` and
//! `documents`) by three tenants run concurrently over one `Tenantry` with a pool of two
//! connections, checked against an in-memory model per tenant.
//!
//! * Every read returns exactly the model's rows of the reading tenant.
//! * Operations aimed at another tenant's live rows (their ids are shared between the tasks
//!   as they are created) find nothing and change nothing.
//! * After each case the whole database, read as the superuser, equals the union of the models:
//!   no write ever touched another tenant's rows.
//! * The one-round-trip path (`fetch_all`, `fetch_one`, `insert_one`) is mixed in: its reads
//!   return exactly the model's rows too, and its inserts land in the reading tenant only.
//!
//! One migrated database serves every case; the tables are emptied as the superuser in between.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail, ensure};
use entity::{documents, projects};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Order, QueryFilter,
    QueryOrder, Statement, Value,
};
use service::tx::all;
use service::{Page, ServiceError, TenantContext, Tenantry, TenantryConfig};
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

const TENANTS: usize = 3;
const CASES: u32 = 16;
const MAX_OPS: usize = 40;

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Projects,
    Documents,
}

/// Which row an operation aims at, resolved when it runs.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// The n-th (modulo) of the tenant's own live rows (a missing id when it has none).
    Own(usize),
    /// The n-th (modulo) id ever created by the other tenants, live or deleted.
    Foreign(usize),
    /// An id nobody has.
    Missing(u128),
}

#[derive(Debug, Clone)]
enum Op {
    /// A project, or a document in the picked project (own: inserted; else: refused).
    Insert {
        kind: Kind,
        name: u8,
        parent: Pick,
    },
    /// A project naming another tenant: refused before it is sent.
    InsertForOtherTenant {
        name: u8,
    },
    Get {
        kind: Kind,
        pick: Pick,
    },
    List {
        kind: Kind,
        filter: Option<u8>,
        limit: u64,
        offset: u64,
    },
    Count {
        kind: Kind,
        filter: Option<u8>,
    },
    Update {
        kind: Kind,
        pick: Pick,
        name: u8,
    },
    Delete {
        kind: Kind,
        pick: Pick,
    },
    UpdateMany {
        kind: Kind,
        filter: Option<u8>,
        name: u8,
    },
    DeleteMany {
        kind: Kind,
        filter: Option<u8>,
    },
    /// A project inserted through the one-round-trip path.
    OneTripInsert {
        name: u8,
    },
    /// One row by id through the one-round-trip path.
    OneTripGet {
        kind: Kind,
        pick: Pick,
    },
    /// Every row matching `filter` through the one-round-trip path, by name then id.
    OneTripList {
        kind: Kind,
        filter: Option<u8>,
    },
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![3 => Just(Kind::Projects), 2 => Just(Kind::Documents)]
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        5 => (0usize..64).prop_map(Pick::Own),
        3 => (0usize..64).prop_map(Pick::Foreign),
        1 => any::<u128>().prop_map(Pick::Missing),
    ]
}

/// Few distinct names, so filters match several rows.
fn name() -> impl Strategy<Value = u8> {
    0u8..5
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (kind(), name(), pick()).prop_map(|(kind, name, parent)| Op::Insert { kind, name, parent }),
        1 => name().prop_map(|name| Op::InsertForOtherTenant { name }),
        3 => (kind(), pick()).prop_map(|(kind, pick)| Op::Get { kind, pick }),
        3 => (kind(), proptest::option::of(name()), 1u64..5, 0u64..5)
            .prop_map(|(kind, filter, limit, offset)| Op::List { kind, filter, limit, offset }),
        2 => (kind(), proptest::option::of(name())).prop_map(|(kind, filter)| Op::Count { kind, filter }),
        3 => (kind(), pick(), name()).prop_map(|(kind, pick, name)| Op::Update { kind, pick, name }),
        2 => (kind(), pick()).prop_map(|(kind, pick)| Op::Delete { kind, pick }),
        1 => (kind(), proptest::option::of(name()), name())
            .prop_map(|(kind, filter, name)| Op::UpdateMany { kind, filter, name }),
        1 => (kind(), proptest::option::of(name())).prop_map(|(kind, filter)| Op::DeleteMany { kind, filter }),
        3 => name().prop_map(|name| Op::OneTripInsert { name }),
        3 => (kind(), pick()).prop_map(|(kind, pick)| Op::OneTripGet { kind, pick }),
        3 => (kind(), proptest::option::of(name()))
            .prop_map(|(kind, filter)| Op::OneTripList { kind, filter }),
    ]
}

/// Up to [`MAX_OPS`] operations, each by one of the tenants.
fn case() -> impl Strategy<Value = Vec<(usize, Op)>> {
    proptest::collection::vec((0..TENANTS, op()), 1..=MAX_OPS)
}

fn label(n: u8) -> String {
    format!("n{n:02}")
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// One tenant's rows: projects `id -> name`, documents `id -> (project, title)`.
#[derive(Debug, Default, Clone, PartialEq)]
struct Model {
    projects: BTreeMap<Uuid, String>,
    documents: BTreeMap<Uuid, (Uuid, String)>,
}

impl Model {
    fn ids(&self, kind: Kind) -> Vec<Uuid> {
        match kind {
            Kind::Projects => self.projects.keys().copied().collect(),
            Kind::Documents => self.documents.keys().copied().collect(),
        }
    }

    fn name(&self, kind: Kind, id: Uuid) -> Option<&str> {
        match kind {
            Kind::Projects => self.projects.get(&id).map(String::as_str),
            Kind::Documents => self.documents.get(&id).map(|(_, t)| t.as_str()),
        }
    }

    /// `(name, id)` of the rows matching `filter`, in list order (name, then id).
    fn matching(&self, kind: Kind, filter: Option<u8>) -> Vec<(String, Uuid)> {
        let wanted = filter.map(label);
        let mut rows: Vec<(String, Uuid)> = self
            .ids(kind)
            .into_iter()
            .filter_map(|id| self.name(kind, id).map(|n| (n.to_owned(), id)))
            .filter(|(n, _)| wanted.as_ref().is_none_or(|w| w == n))
            .collect();
        rows.sort();
        rows
    }

    fn rename(&mut self, kind: Kind, id: Uuid, name: String) {
        match kind {
            Kind::Projects => {
                self.projects.insert(id, name);
            }
            Kind::Documents => {
                if let Some(d) = self.documents.get_mut(&id) {
                    d.1 = name;
                }
            }
        }
    }

    /// Removes a row; a project's documents go with it (ON DELETE CASCADE).
    fn remove(&mut self, kind: Kind, id: Uuid) {
        match kind {
            Kind::Projects => {
                self.projects.remove(&id);
                self.documents.retain(|_, (p, _)| *p != id);
            }
            Kind::Documents => {
                self.documents.remove(&id);
            }
        }
    }
}

/// Every id any tenant has created in this case, with its tenant and kind (append-only).
type Registry = Arc<Mutex<Vec<(usize, Kind, Uuid)>>>;

fn register(registry: &Registry, tenant: usize, kind: Kind, id: Uuid) -> Result<()> {
    registry
        .lock()
        .map_err(|_| anyhow::anyhow!("registry poisoned"))?
        .push((tenant, kind, id));
    Ok(())
}

/// Resolves a pick to an id and whether it is the tenant's own live row.
fn resolve(
    pick: Pick,
    me: usize,
    kind: Kind,
    model: &Model,
    registry: &Registry,
) -> Result<(Uuid, bool)> {
    Ok(match pick {
        Pick::Own(n) => {
            let ids = model.ids(kind);
            if ids.is_empty() {
                (Uuid::from_u128(n as u128 + 1), false)
            } else {
                (ids[n % ids.len()], true)
            }
        }
        Pick::Foreign(n) => {
            let foreign: Vec<Uuid> = registry
                .lock()
                .map_err(|_| anyhow::anyhow!("registry poisoned"))?
                .iter()
                .filter(|(t, k, _)| *t != me && *k == kind)
                .map(|(_, _, id)| *id)
                .collect();
            if foreign.is_empty() {
                (Uuid::from_u128(u128::MAX - n as u128), false)
            } else {
                (foreign[n % foreign.len()], false)
            }
        }
        Pick::Missing(x) => (Uuid::from_u128(x), false),
    })
}

// ---------------------------------------------------------------------------------------------
// Running one tenant's operations
// ---------------------------------------------------------------------------------------------

struct Actor {
    index: usize,
    ctx: TenantContext,
    /// Another tenant's id, for the refused insert.
    other_tenant: Uuid,
}

fn page(limit: u64, offset: u64) -> Page {
    Page { limit, offset }
}

fn filter_projects(filter: Option<u8>) -> sea_orm::Condition {
    match filter {
        Some(n) => all().add(projects::Column::Name.eq(label(n))),
        None => all(),
    }
}

fn filter_documents(filter: Option<u8>) -> sea_orm::Condition {
    match filter {
        Some(n) => all().add(documents::Column::Title.eq(label(n))),
        None => all(),
    }
}

/// Checks what a get by id returned against the model: the row when it is the tenant's own
/// live row, nothing otherwise.
fn check_get(
    what: &str,
    model: &Model,
    kind: Kind,
    id: Uuid,
    own: bool,
    tenant: Uuid,
    got: Option<(Uuid, String)>,
) -> Result<()> {
    let expected = own
        .then(|| model.name(kind, id).map(|n| (tenant, n.to_owned())))
        .flatten();
    ensure!(
        got == expected,
        "{what} {kind:?} {id}: got {got:?}, model {expected:?}"
    );
    Ok(())
}

/// `(tenant, name, id)` of the rows of `select` through the one-round-trip path, then by id.
async fn one_trip_rows<E: entity::TenantScoped>(
    tenantry: &Tenantry,
    ctx: &TenantContext,
    select: sea_orm::Select<E>,
    key: impl Fn(E::Model) -> (Uuid, String, Uuid),
) -> Result<Vec<(Uuid, String, Uuid)>> {
    let mut rows: Vec<_> = tenantry
        .fetch_all(ctx, select)
        .await?
        .into_iter()
        .map(key)
        .collect();
    // Ordered by name in SQL; ties by id here, as the model orders them.
    rows.sort_by(|a, b| (&a.1, a.2).cmp(&(&b.1, b.2)));
    Ok(rows)
}

/// Runs one operation of the one-round-trip path (a unit of work of its own) and checks it
/// against (and updates) the model; `false` when `op` is not one of them.
async fn apply_one_trip(
    tenantry: &Tenantry,
    actor: &Actor,
    model: &mut Model,
    registry: &Registry,
    op: &Op,
) -> Result<bool> {
    let me = actor.index;
    let tenant = actor.ctx.tenant_id();
    match *op {
        Op::OneTripInsert { name } => {
            let row = tenantry
                .insert_one(
                    &actor.ctx,
                    projects::ActiveModel {
                        name: Set(label(name)),
                        ..Default::default()
                    },
                )
                .await?;
            ensure!(
                row.tenant_id == tenant,
                "one-trip insert carries another tenant"
            );
            model.projects.insert(row.id, row.name);
            register(registry, me, Kind::Projects, row.id)?;
        }
        Op::OneTripGet { kind, pick } => {
            let (id, own) = resolve(pick, me, kind, model, registry)?;
            let got = match kind {
                Kind::Projects => tenantry
                    .fetch_one(
                        &actor.ctx,
                        projects::Entity::find().filter(projects::Column::Id.eq(id)),
                    )
                    .await?
                    .map(|r| (r.tenant_id, r.name)),
                Kind::Documents => tenantry
                    .fetch_one(
                        &actor.ctx,
                        documents::Entity::find().filter(documents::Column::Id.eq(id)),
                    )
                    .await?
                    .map(|r| (r.tenant_id, r.title)),
            };
            check_get("one-trip get", model, kind, id, own, tenant, got)?;
        }
        Op::OneTripList { kind, filter } => {
            let got = match kind {
                Kind::Projects => {
                    let select = projects::Entity::find()
                        .filter(filter_projects(filter))
                        .order_by_asc(projects::Column::Name);
                    one_trip_rows(tenantry, &actor.ctx, select, |r| {
                        (r.tenant_id, r.name, r.id)
                    })
                    .await?
                }
                Kind::Documents => {
                    let select = documents::Entity::find()
                        .filter(filter_documents(filter))
                        .order_by_asc(documents::Column::Title);
                    one_trip_rows(tenantry, &actor.ctx, select, |r| {
                        (r.tenant_id, r.title, r.id)
                    })
                    .await?
                }
            };
            let expected: Vec<(Uuid, String, Uuid)> = model
                .matching(kind, filter)
                .into_iter()
                .map(|(n, id)| (tenant, n, id))
                .collect();
            ensure!(
                got == expected,
                "one-trip list {kind:?} {filter:?}: got {got:?}, model {expected:?}"
            );
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Runs one operation in its own transaction and checks it against (and updates) the model.
async fn apply(
    tenantry: &Tenantry,
    actor: &Actor,
    model: &mut Model,
    registry: &Registry,
    op: &Op,
) -> Result<()> {
    let me = actor.index;
    let tenant = actor.ctx.tenant_id();
    if apply_one_trip(tenantry, actor, model, registry, op).await? {
        return Ok(());
    }
    let tx = tenantry.begin(&actor.ctx).await?;
    match *op {
        Op::Insert {
            kind: Kind::Projects,
            name,
            ..
        } => {
            let row = tx
                .insert(projects::ActiveModel {
                    name: Set(label(name)),
                    ..Default::default()
                })
                .await?;
            ensure!(
                row.tenant_id == tenant,
                "inserted project carries another tenant"
            );
            tx.commit().await?;
            model.projects.insert(row.id, row.name);
            register(registry, me, Kind::Projects, row.id)?;
        }
        Op::Insert {
            kind: Kind::Documents,
            name,
            parent,
        } => {
            let (project, own) = resolve(parent, me, Kind::Projects, model, registry)?;
            let result = tx
                .insert(documents::ActiveModel {
                    project_id: Set(project),
                    title: Set(label(name)),
                    ..Default::default()
                })
                .await;
            match (result, own) {
                (Ok(row), true) => {
                    ensure!(row.tenant_id == tenant && row.project_id == project);
                    tx.commit().await?;
                    model.documents.insert(row.id, (project, row.title));
                    register(registry, me, Kind::Documents, row.id)?;
                }
                (Err(ServiceError::Conflict(_)), false) => {}
                (other, own) => bail!("document into project {project} (own: {own}): {other:?}"),
            }
        }
        Op::InsertForOtherTenant { name } => {
            let result = tx
                .insert(projects::ActiveModel {
                    tenant_id: Set(actor.other_tenant),
                    name: Set(label(name)),
                    ..Default::default()
                })
                .await;
            ensure!(
                matches!(result, Err(ServiceError::Forbidden(_))),
                "insert for another tenant: {result:?}"
            );
            // Committed on purpose: had anything been written, the final comparison would see it.
            tx.commit().await?;
        }
        Op::Get { kind, pick } => {
            let (id, own) = resolve(pick, me, kind, model, registry)?;
            let got = match kind {
                Kind::Projects => tx
                    .find_by_id::<projects::Entity>(id)
                    .await?
                    .map(|r| (r.tenant_id, r.name)),
                Kind::Documents => tx
                    .find_by_id::<documents::Entity>(id)
                    .await?
                    .map(|r| (r.tenant_id, r.title)),
            };
            check_get("get", model, kind, id, own, tenant, got)?;
        }
        Op::List {
            kind,
            filter,
            limit,
            offset,
        } => {
            let got: Vec<(Uuid, String, Uuid)> = match kind {
                Kind::Projects => tx
                    .list::<projects::Entity>(
                        filter_projects(filter),
                        vec![(projects::Column::Name, Order::Asc)],
                        page(limit, offset),
                    )
                    .await?
                    .into_iter()
                    .map(|r| (r.tenant_id, r.name, r.id))
                    .collect(),
                Kind::Documents => tx
                    .list::<documents::Entity>(
                        filter_documents(filter),
                        vec![(documents::Column::Title, Order::Asc)],
                        page(limit, offset),
                    )
                    .await?
                    .into_iter()
                    .map(|r| (r.tenant_id, r.title, r.id))
                    .collect(),
            };
            let expected: Vec<(Uuid, String, Uuid)> = model
                .matching(kind, filter)
                .into_iter()
                .skip(offset as usize)
                .take(limit as usize)
                .map(|(n, id)| (tenant, n, id))
                .collect();
            ensure!(
                got == expected,
                "list {kind:?} {filter:?} {limit}/{offset}: got {got:?}, model {expected:?}"
            );
        }
        Op::Count { kind, filter } => {
            let got = match kind {
                Kind::Projects => {
                    tx.count::<projects::Entity>(filter_projects(filter))
                        .await?
                }
                Kind::Documents => {
                    tx.count::<documents::Entity>(filter_documents(filter))
                        .await?
                }
            };
            let expected = model.matching(kind, filter).len() as u64;
            ensure!(
                got == expected,
                "count {kind:?} {filter:?}: got {got}, model {expected}"
            );
        }
        Op::Update { kind, pick, name } => {
            let (id, own) = resolve(pick, me, kind, model, registry)?;
            let result = match kind {
                Kind::Projects => tx
                    .update(projects::ActiveModel {
                        id: Set(id),
                        name: Set(label(name)),
                        ..Default::default()
                    })
                    .await
                    .map(|r| (r.tenant_id, r.name)),
                Kind::Documents => tx
                    .update(documents::ActiveModel {
                        id: Set(id),
                        title: Set(label(name)),
                        ..Default::default()
                    })
                    .await
                    .map(|r| (r.tenant_id, r.title)),
            };
            match (result, own) {
                (Ok(row), true) => {
                    ensure!(row == (tenant, label(name)), "update returned {row:?}");
                    tx.commit().await?;
                    model.rename(kind, id, label(name));
                }
                (Err(ServiceError::NotFound(_)), false) => tx.commit().await?,
                (other, own) => bail!("update {kind:?} {id} (own: {own}): {other:?}"),
            }
        }
        Op::Delete { kind, pick } => {
            let (id, own) = resolve(pick, me, kind, model, registry)?;
            let deleted = match kind {
                Kind::Projects => tx.delete_by_id::<projects::Entity>(id).await?,
                Kind::Documents => tx.delete_by_id::<documents::Entity>(id).await?,
            };
            ensure!(
                deleted == own,
                "delete {kind:?} {id}: deleted {deleted}, own {own}"
            );
            tx.commit().await?;
            if own {
                model.remove(kind, id);
            }
        }
        Op::UpdateMany { kind, filter, name } => {
            let n = match kind {
                Kind::Projects => {
                    tx.update_many::<projects::Entity>()?
                        .col_expr(projects::Column::Name, Expr::value(label(name)))
                        .filter(filter_projects(filter))
                        .exec(tx.conn())
                        .await?
                        .rows_affected
                }
                Kind::Documents => {
                    tx.update_many::<documents::Entity>()?
                        .col_expr(documents::Column::Title, Expr::value(label(name)))
                        .filter(filter_documents(filter))
                        .exec(tx.conn())
                        .await?
                        .rows_affected
                }
            };
            let hit: Vec<Uuid> = model
                .matching(kind, filter)
                .into_iter()
                .map(|(_, id)| id)
                .collect();
            ensure!(
                n == hit.len() as u64,
                "update_many {kind:?} {filter:?}: {n} rows, model {}",
                hit.len()
            );
            tx.commit().await?;
            for id in hit {
                model.rename(kind, id, label(name));
            }
        }
        Op::DeleteMany { kind, filter } => {
            let n = match kind {
                Kind::Projects => {
                    tx.delete_many::<projects::Entity>()?
                        .filter(filter_projects(filter))
                        .exec(tx.conn())
                        .await?
                        .rows_affected
                }
                Kind::Documents => {
                    tx.delete_many::<documents::Entity>()?
                        .filter(filter_documents(filter))
                        .exec(tx.conn())
                        .await?
                        .rows_affected
                }
            };
            let hit: Vec<Uuid> = model
                .matching(kind, filter)
                .into_iter()
                .map(|(_, id)| id)
                .collect();
            ensure!(
                n == hit.len() as u64,
                "delete_many {kind:?} {filter:?}: {n} rows, model {}",
                hit.len()
            );
            tx.commit().await?;
            for id in hit {
                model.remove(kind, id);
            }
        }
        Op::OneTripInsert { .. } | Op::OneTripGet { .. } | Op::OneTripList { .. } => {
            bail!("{op:?} runs in apply_one_trip")
        }
    }
    Ok(())
}

/// Runs one tenant's operations in order and returns its model.
async fn run_tenant(
    tenantry: Tenantry,
    actor: Actor,
    ops: Vec<Op>,
    registry: Registry,
) -> Result<Model> {
    let mut model = Model::default();
    for (i, op) in ops.iter().enumerate() {
        apply(&tenantry, &actor, &mut model, &registry, op)
            .await
            .with_context(|| format!("tenant {} op {i}: {op:?}", actor.index))?;
    }
    Ok(model)
}

// ---------------------------------------------------------------------------------------------
// The environment and one case
// ---------------------------------------------------------------------------------------------

struct Env {
    su: DatabaseConnection,
    tenantry: Tenantry,
    tenants: Vec<(Uuid, TenantContext)>,
}

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

async fn setup() -> Result<Env> {
    let db = tenantry_tests::migrated_db().await?;
    let su = db.connect_superuser().await?;
    let tenantry =
        Tenantry::connect(TenantryConfig::new(db.url(LoginRole::App)).with_pool(2)).await?;
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
        for (sql, values) in [
            (
                "INSERT INTO tenancy.tenants (id, name, slug) VALUES ($1, $2, $2)",
                vec![tenant.into(), format!("prop-{i}").into()],
            ),
            (
                "INSERT INTO tenancy.users (id, email) VALUES ($1, $2)",
                vec![user.into(), format!("{user}@example.test").into()],
            ),
            (
                "INSERT INTO tenancy.tenant_users (tenant_id, user_id, role) VALUES ($1, $2, 'member')",
                vec![tenant.into(), user.into()],
            ),
        ] {
            su.execute_raw(stmt(sql, values)).await?;
        }
        tenants.push((tenant, tenantry.member_context(tenant, user).await?));
    }
    Ok(Env {
        su,
        tenantry,
        tenants,
    })
}

/// Every project and document in the database, per tenant, read as the superuser.
async fn database_models(su: &DatabaseConnection) -> Result<BTreeMap<Uuid, Model>> {
    let mut out: BTreeMap<Uuid, Model> = BTreeMap::new();
    for row in su
        .query_all_raw(stmt("SELECT tenant_id, id, name FROM public.projects", []))
        .await?
    {
        out.entry(row.try_get_by_index::<Uuid>(0)?)
            .or_default()
            .projects
            .insert(row.try_get_by_index(1)?, row.try_get_by_index(2)?);
    }
    for row in su
        .query_all_raw(stmt(
            "SELECT tenant_id, id, project_id, title FROM public.documents",
            [],
        ))
        .await?
    {
        out.entry(row.try_get_by_index::<Uuid>(0)?)
            .or_default()
            .documents
            .insert(
                row.try_get_by_index(1)?,
                (row.try_get_by_index(2)?, row.try_get_by_index(3)?),
            );
    }
    Ok(out)
}

async fn run_case(env: &Env, ops: Vec<(usize, Op)>) -> Result<()> {
    // Empty (documents and tasks cascade) and check it is empty.
    env.su
        .execute_raw(stmt("DELETE FROM public.projects", []))
        .await?;
    ensure!(
        database_models(&env.su).await?.is_empty(),
        "tables not empty before the case"
    );

    let registry: Registry = Arc::default();
    let mut handles = Vec::new();
    for (i, (_, ctx)) in env.tenants.iter().enumerate() {
        let mine: Vec<Op> = ops
            .iter()
            .filter(|(t, _)| *t == i)
            .map(|(_, op)| op.clone())
            .collect();
        let actor = Actor {
            index: i,
            ctx: ctx.clone(),
            other_tenant: env.tenants[(i + 1) % TENANTS].0,
        };
        handles.push(tokio::spawn(run_tenant(
            env.tenantry.clone(),
            actor,
            mine,
            registry.clone(),
        )));
    }
    let mut expected: BTreeMap<Uuid, Model> = BTreeMap::new();
    for (handle, (tenant, _)) in handles.into_iter().zip(&env.tenants) {
        let model = handle.await.context("tenant task panicked")??;
        if model != Model::default() {
            expected.insert(*tenant, model);
        }
    }
    let actual = database_models(&env.su).await?;
    ensure!(
        actual == expected,
        "the database differs from the models:\n database: {actual:#?}\n models: {expected:#?}"
    );
    Ok(())
}

#[test]
fn concurrent_scoped_operations_of_three_tenants_match_per_tenant_models() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let env = rt.block_on(setup())?;
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    });
    let outcome = runner.run(&case(), |ops| {
        rt.block_on(run_case(&env, ops))
            .map_err(|e| TestCaseError::fail(format!("{e:#}")))
    });
    rt.block_on(async {
        env.tenantry.clone().close().await?;
        env.su.close().await?;
        Ok::<_, anyhow::Error>(())
    })?;
    outcome.map_err(|e| anyhow::anyhow!("{e}"))
}
