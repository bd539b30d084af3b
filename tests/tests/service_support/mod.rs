//! Helpers shared by the service integration tests (`service_auth_keys`, `service_members_roles`,
//! `service_tenants`, `service_seed002`, `service_superadmin`). Each test binary includes this
//! module with `mod service_support;` and uses only part of it.
//!
//! Everything goes through the service as the real logins: tenant work as the app login, users
//! and tenants through the audited superadmin escape. The bootstrap superuser is only used to
//! look underneath (it bypasses row level security) and check what really is in the tables.
#![allow(dead_code)]

use anyhow::Context;
use entity::projects;
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use service::tenants::Isolation;
use service::{
    MemberRole, NewTenant, ServiceError, SuperadminGrant, TenantContext, TenantTx, Tenantry,
    TenantryConfig,
};
use tenantry_tests::TestDb;
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

/// A migrated database, the service on it (app and superadmin pools), and a superuser
/// connection to look underneath.
pub struct Env {
    pub db: TestDb,
    pub svc: Tenantry,
    pub su: DatabaseConnection,
}

/// The configuration every test starts from: the app login, and the superadmin login.
pub fn config(db: &TestDb) -> TenantryConfig {
    TenantryConfig::new(db.url(LoginRole::App))
        .with_superadmin(db.url(LoginRole::Superadmin))
        .with_pool(4)
}

/// A fresh migrated database and the service on it.
pub async fn env() -> anyhow::Result<Env> {
    env_with(|c| c).await
}

/// Like [`env`], with the configuration adjusted.
pub async fn env_with(
    adjust: impl FnOnce(TenantryConfig) -> TenantryConfig,
) -> anyhow::Result<Env> {
    let db = tenantry_tests::migrated_db().await?;
    let svc = Tenantry::connect(adjust(config(&db))).await?;
    let su = db.connect_superuser().await?;
    Ok(Env { db, svc, su })
}

/// A superadmin grant with a test actor and reason.
pub fn grant(action: &'static str, scope: Option<Uuid>) -> SuperadminGrant<'static> {
    SuperadminGrant {
        actor: "ops@tenantry.test",
        reason: "integration test",
        action,
        scope,
    }
}

/// Creates a user through the superadmin escape (committed).
pub async fn user(svc: &Tenantry, email: &str, name: &str) -> anyhow::Result<Uuid> {
    let sa = svc.superadmin(grant("user.create", None)).await?;
    let id = sa.create_user(email, name, Some("$argon2id$test")).await?;
    sa.commit().await?;
    Ok(id)
}

/// Provisions a tenant owned by `owner` (committed); returns its id and the owner's context.
pub async fn tenant(
    svc: &Tenantry,
    name: &str,
    slug: &str,
    plan: &str,
    owner: Uuid,
) -> anyhow::Result<(Uuid, TenantContext)> {
    let sa = svc.superadmin(grant("tenant.provision", None)).await?;
    let (t, ctx) = sa
        .provision_tenant(
            NewTenant {
                name: name.into(),
                slug: slug.into(),
                plan: plan.into(),
                region: "eu".into(),
                admin_email: None,
            },
            owner,
        )
        .await?;
    sa.commit().await?;
    Ok((t.id, ctx))
}

/// Provisions a tenant with `isolation` (committed).
pub async fn tenant_with(
    svc: &Tenantry,
    slug: &str,
    owner: Uuid,
    isolation: Isolation,
) -> anyhow::Result<(Uuid, TenantContext)> {
    let sa = svc.superadmin(grant("tenant.provision", None)).await?;
    let (t, ctx) = sa
        .provision_tenant_with(new_tenant(slug), owner, isolation)
        .await?;
    sa.commit().await?;
    Ok((t.id, ctx))
}

pub fn new_tenant(slug: &str) -> NewTenant {
    NewTenant {
        name: format!("Tenant {slug}"),
        slug: slug.into(),
        plan: "pro".into(),
        region: "eu".into(),
        admin_email: None,
    }
}

/// One tenant of [`three_tenants`]: its id, its owner and the owner's context.
#[derive(Clone)]
pub struct T {
    pub id: Uuid,
    pub owner: Uuid,
    pub ctx: TenantContext,
}

/// Three tenants (`one`, `two`, `three`), each with its own owner.
pub async fn three_tenants(svc: &Tenantry) -> anyhow::Result<[T; 3]> {
    let mut out = Vec::new();
    for (n, slug) in ["one", "two", "three"].iter().enumerate() {
        let owner = user(svc, &format!("owner{n}@{slug}.test"), &format!("Owner {n}")).await?;
        let (id, ctx) = tenant(svc, &format!("Tenant {slug}"), slug, "pro", owner).await?;
        out.push(T { id, owner, ctx });
    }
    out.try_into()
        .map_err(|_| anyhow::anyhow!("three tenants expected"))
}

/// Sets a tenant's status through the superadmin escape (committed); `action` names it in the
/// audit trail (`tenant.suspend`, `tenant.reactivate`).
pub async fn set_status(
    svc: &Tenantry,
    action: &'static str,
    tenant: Uuid,
    status: service::TenantStatus,
) -> anyhow::Result<()> {
    let sa = svc.superadmin(grant(action, Some(tenant))).await?;
    sa.set_tenant_status(tenant, status).await?;
    sa.commit().await?;
    Ok(())
}

/// Adds `user` to the tenant of `admin` with `role` (committed), and returns the user's
/// context there (from `member_context`, the authenticated way).
pub async fn join(
    svc: &Tenantry,
    admin: &TenantContext,
    user: Uuid,
    role: MemberRole,
) -> anyhow::Result<TenantContext> {
    let tx = svc.begin(admin).await?;
    service::members::add(&tx, user, role).await?;
    tx.commit().await?;
    Ok(svc.member_context(admin.tenant_id(), user).await?)
}

/// Inserts a project through the service (committed); returns its id.
pub async fn project(svc: &Tenantry, ctx: &TenantContext, name: &str) -> anyhow::Result<Uuid> {
    let tx = svc.begin(ctx).await?;
    let id = insert_project(&tx, name).await?;
    tx.commit().await?;
    Ok(id)
}

/// Inserts a project in `tx`.
pub async fn insert_project(tx: &TenantTx, name: &str) -> Result<Uuid, ServiceError> {
    let p = tx
        .insert(projects::ActiveModel {
            id: Set(Uuid::new_v4()),
            name: Set(name.into()),
            ..Default::default()
        })
        .await?;
    Ok(p.id)
}

/// A raw statement with values.
pub fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// The first column of the first row as i64.
pub async fn scalar<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> anyhow::Result<i64> {
    let row = conn
        .query_one_raw(stmt(sql, values))
        .await?
        .with_context(|| format!("no row from {sql}"))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// Rows of the superadmin trail with this action (and scope, when given), as the superuser.
pub async fn superadmin_audits(
    su: &DatabaseConnection,
    action: &str,
    scope: Option<Uuid>,
) -> anyhow::Result<i64> {
    scalar(
        su,
        "SELECT count(*) FROM tenancy.superadmin_audit_logs \
         WHERE action = $1 AND ($2::uuid IS NULL OR scope_tenant_id = $2)",
        [Value::from(action), Value::from(scope)],
    )
    .await
}

/// Rows of a tenant's audit trail with this action, as the superuser.
pub async fn tenant_audits(
    su: &DatabaseConnection,
    tenant: Uuid,
    action: &str,
) -> anyhow::Result<i64> {
    scalar(
        su,
        "SELECT count(*) FROM tenancy.audit_logs WHERE tenant_id = $1 AND action = $2",
        [Value::from(tenant), Value::from(action)],
    )
    .await
}

/// Every tenant table's row count per tenant, as the superuser: `schema.table/tenant -> n`.
pub async fn census(
    su: &DatabaseConnection,
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let mut out = std::collections::BTreeMap::new();
    for (schema, table) in migration::audit::tenant_tables(su).await? {
        let rows = su
            .query_all_raw(stmt(
                &format!(
                    "SELECT tenant_id::text, count(*) FROM {} GROUP BY 1",
                    migration::ddl::qualified(&schema, &table)
                ),
                [],
            ))
            .await?;
        for row in rows {
            let tenant: String = row.try_get_by_index(0)?;
            let n: i64 = row.try_get_by_index(1)?;
            out.insert(format!("{schema}.{table}/{tenant}"), n);
        }
    }
    Ok(out)
}

/// Asserts an error is exactly `NotFound(what)`.
#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(r: Result<T, ServiceError>, what: &str) {
    match r {
        Err(ServiceError::NotFound(w)) if w == what => {}
        other => panic!("expected NotFound({what:?}), got {other:?}"),
    }
}

/// Asserts an error is `Forbidden`.
#[track_caller]
pub fn assert_forbidden<T: std::fmt::Debug>(r: Result<T, ServiceError>) {
    match r {
        Err(ServiceError::Forbidden(_)) => {}
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

/// Asserts an error is `Conflict`.
#[track_caller]
pub fn assert_conflict<T: std::fmt::Debug>(r: Result<T, ServiceError>) {
    match r {
        Err(ServiceError::Conflict(_)) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
}

/// Asserts an error is `InvalidInput` naming `field`.
#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(r: Result<T, ServiceError>, field: &str) {
    match r {
        Err(ServiceError::InvalidInput { field: f, .. }) if f == field => {}
        other => panic!("expected InvalidInput({field}), got {other:?}"),
    }
}

/// Asserts an error is `Unauthenticated(reason)`.
#[track_caller]
pub fn assert_unauthenticated<T: std::fmt::Debug>(r: Result<T, ServiceError>, reason: &str) {
    match r {
        Err(ServiceError::Unauthenticated(w)) if w == reason => {}
        other => panic!("expected Unauthenticated({reason:?}), got {other:?}"),
    }
}

/// Waits until some session of this database is blocked on a lock: the observable point at
/// which a concurrent transaction has reached the row another one holds. No timing involved.
pub async fn until_a_session_waits_on_a_lock(su: &DatabaseConnection) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait;
    loop {
        let row = su
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) FROM pg_catalog.pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ))
            .await?;
        let waiting: i64 = row.map(|r| r.try_get_by_index(0)).transpose()?.unwrap_or(0);
        if waiting > 0 {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
}
