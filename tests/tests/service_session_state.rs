//! Session state a tenant's raw SQL leaves on a pooled connection never reaches the next
//! tenant (pool of ONE connection, so every transaction runs on the same backend): a
//! session-lived temporary table does not shadow a shared table, a session `SET ROLE` is undone
//! by the next opening, so is a session `search_path`, and an opening that fails closes its connection instead of pooling it.
//! Offboarding a dedicated tenant is not blocked by its own temporary table or by a database of
//! the same cluster that still refers to its role.

mod service_support;

use anyhow::ensure;
use entity::documents;
use migration::dedicated::TenantSchema;
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, Value};
use service::tenants::Isolation;
use service::{ServiceError, TenantContext, Tenantry};
use service_support::*;
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

/// Runs `sql` (raw, in order) in a committed transaction of `ctx`; returns the backend pid.
async fn raw(svc: &Tenantry, ctx: &TenantContext, sql: &[&str]) -> anyhow::Result<i64> {
    let tx = svc.begin(ctx).await?;
    for s in sql {
        tx.conn().execute_unprepared(s).await?;
    }
    let pid = scalar(tx.conn(), "SELECT pg_backend_pid()::bigint", []).await?;
    tx.commit().await?;
    Ok(pid)
}

async fn text(tx: &service::TenantTx, sql: &str) -> anyhow::Result<String> {
    let row = tx
        .conn()
        .query_one_raw(stmt(sql, []))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row from {sql}"))?;
    Ok(row.try_get_by_index::<String>(0)?)
}

/// How many of `tenant`'s rows `public.<table>` holds, seen by the superuser.
async fn in_public(env: &Env, table: &str, tenant: Uuid) -> anyhow::Result<i64> {
    scalar(
        &env.su,
        &format!("SELECT count(*) FROM public.{table} WHERE tenant_id = $1"),
        [Value::from(tenant)],
    )
    .await
}

#[tokio::test]
async fn a_session_temp_table_never_shadows_the_next_tenants_table() -> anyhow::Result<()> {
    let env = env_with(|c| c.with_pool(1)).await?;
    let oa = user(&env.svc, "a@temp.test", "A").await?;
    let oc = user(&env.svc, "c@temp.test", "C").await?;
    let (_, a_ctx) = tenant_with(&env.svc, "temp-a", oa, Isolation::Dedicated).await?;
    let (c, c_ctx) = tenant_with(&env.svc, "temp-c", oc, Isolation::Shared).await?;
    let project_id = project(&env.svc, &c_ctx, "C's project").await?;

    // Tenant A plants a session-lived temporary `documents` anyone may write.
    let pid = raw(
        &env.svc,
        &a_ctx,
        &[
            "CREATE TEMP TABLE documents (LIKE public.documents INCLUDING DEFAULTS)",
            "GRANT ALL ON pg_temp.documents TO PUBLIC",
        ],
    )
    .await?;

    // The shared tenant's ordinary service insert, on the same connection.
    let tx = env.svc.begin(&c_ctx).await?;
    ensure!(scalar(tx.conn(), "SELECT pg_backend_pid()::bigint", []).await? == pid);
    tx.insert(documents::ActiveModel {
        id: Set(Uuid::new_v4()),
        project_id: Set(project_id),
        title: Set("C's secret".into()),
        ..Default::default()
    })
    .await?;
    tx.commit().await?;
    let stored = in_public(&env, "documents", c).await?;
    assert_eq!(stored, 1, "C's document is in public.documents, not lost");

    // Tenant A, back on the same connection, finds nothing of C's in its temporary table.
    let tx = env.svc.begin(&a_ctx).await?;
    ensure!(scalar(tx.conn(), "SELECT pg_backend_pid()::bigint", []).await? == pid);
    let seen = scalar(tx.conn(), "SELECT count(*) FROM pg_temp.documents", []).await?;
    assert_eq!(seen, 0, "tenant A reads none of C's rows");
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn a_session_set_role_left_behind_is_undone_by_the_next_opening() -> anyhow::Result<()> {
    let env = env_with(|c| c.with_pool(1)).await?;
    let oa = user(&env.svc, "a@role.test", "A").await?;
    let ob = user(&env.svc, "b@role.test", "B").await?;
    let oc = user(&env.svc, "c@role.test", "C").await?;
    let (_, a_ctx) = tenant_with(&env.svc, "role-a", oa, Isolation::Dedicated).await?;
    let (b, b_ctx) = tenant_with(&env.svc, "role-b", ob, Isolation::Dedicated).await?;
    let (c, c_ctx) = tenant_with(&env.svc, "role-c", oc, Isolation::Shared).await?;
    let b_schema = TenantSchema::for_tenant(b);

    let pid = raw(&env.svc, &a_ctx, &[&format!("SET SESSION ROLE {b_schema}")]).await?;

    let tx = env.svc.begin(&c_ctx).await?;
    ensure!(scalar(tx.conn(), "SELECT pg_backend_pid()::bigint", []).await? == pid);
    let who = text(&tx, "SELECT current_user::text").await?;
    let login = text(&tx, "SELECT session_user::text").await?;
    assert_eq!(
        who, login,
        "the shared tenant runs as the login, not as {b_schema}"
    );
    let path = text(
        &tx,
        "SELECT pg_catalog.array_to_string(current_schemas(true), ',')",
    )
    .await?;
    ensure!(!path.contains(b_schema.as_str()), "search path {path}");
    insert_project(&tx, "C's project").await?;
    tx.commit().await?;
    let stored = in_public(&env, "projects", c).await?;
    assert_eq!(stored, 1);

    // B itself still works, as its own role.
    let tx = env.svc.begin(&b_ctx).await?;
    assert_eq!(
        text(&tx, "SELECT current_user::text").await?,
        b_schema.as_str()
    );
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn a_failed_opening_closes_its_connection() -> anyhow::Result<()> {
    let env = env_with(|c| c.with_pool(1)).await?;
    let o1 = user(&env.svc, "o1@close.test", "O1").await?;
    let o2 = user(&env.svc, "o2@close.test", "O2").await?;
    let (gone, gone_ctx) = tenant_with(&env.svc, "close-gone", o1, Isolation::Dedicated).await?;
    let (_, ok_ctx) = tenant_with(&env.svc, "close-ok", o2, Isolation::Shared).await?;
    let before = raw(&env.svc, &ok_ctx, &[]).await?;
    env.su
        .execute_unprepared(&format!(
            "DROP SCHEMA {} CASCADE",
            TenantSchema::for_tenant(gone)
        ))
        .await?;
    ensure!(matches!(
        env.svc.begin(&gone_ctx).await,
        Err(ServiceError::Unavailable(_))
    ));
    let after = raw(&env.svc, &ok_ctx, &[]).await?;
    ensure!(
        before != after,
        "the failed opening's connection (pid {before}) went back to the pool"
    );
    Ok(())
}

// The entry resets `search_path` only where the session's differs (m0016): a path a tenant
// left at session level differs, so the next shared tenant is back on `public`.
#[tokio::test]
async fn a_session_search_path_left_behind_is_reset_by_the_next_opening() -> anyhow::Result<()> {
    let env = env_with(|c| c.with_pool(1)).await?;
    let oa = user(&env.svc, "a@path.test", "A").await?;
    let oc = user(&env.svc, "c@path.test", "C").await?;
    let (a, a_ctx) = tenant_with(&env.svc, "path-a", oa, Isolation::Dedicated).await?;
    let (c, c_ctx) = tenant_with(&env.svc, "path-c", oc, Isolation::Shared).await?;
    let a_schema = TenantSchema::for_tenant(a);
    let pid = raw(
        &env.svc,
        &a_ctx,
        &[&format!("SET SESSION search_path = {a_schema}, public")],
    )
    .await?;
    let tx = env.svc.begin(&c_ctx).await?;
    ensure!(scalar(tx.conn(), "SELECT pg_backend_pid()::bigint", []).await? == pid);
    let path = text(&tx, "SELECT pg_catalog.current_setting('search_path')").await?;
    assert_eq!(path, "public, pg_temp");
    insert_project(&tx, "C's project").await?;
    tx.commit().await?;
    let stored = in_public(&env, "projects", c).await?;
    assert_eq!(stored, 1, "C's project is in public.projects");
    Ok(())
}

#[tokio::test]
async fn a_session_row_security_off_does_not_poison_the_connection() -> anyhow::Result<()> {
    let env = env_with(|c| c.with_pool(1)).await?;
    let oa = user(&env.svc, "a@rls.test", "A").await?;
    let oc = user(&env.svc, "c@rls.test", "C").await?;
    let (_, a_ctx) = tenant_with(&env.svc, "rls-a", oa, Isolation::Dedicated).await?;
    let (_, c_ctx) = tenant_with(&env.svc, "rls-c", oc, Isolation::Shared).await?;
    project(&env.svc, &c_ctx, "C's project").await?;
    let pid = raw(&env.svc, &a_ctx, &["SET SESSION row_security = off"]).await?;
    for ctx in [&c_ctx, &a_ctx] {
        let tx = env.svc.begin(ctx).await?;
        ensure!(scalar(tx.conn(), "SELECT pg_backend_pid()::bigint", []).await? == pid);
        let projects = scalar(tx.conn(), "SELECT count(*) FROM projects", []).await?;
        assert_eq!(projects, i64::from(ctx == &c_ctx));
        tx.commit().await?;
    }
    Ok(())
}

async fn offboard(env: &Env, d: Uuid) -> anyhow::Result<()> {
    let sa = env
        .svc
        .superadmin(grant("tenant.offboard", Some(d)))
        .await?;
    let mut out = Vec::new();
    sa.offboard_with(d, true, &mut out).await?;
    sa.commit().await?;
    Ok(())
}

/// The app login cannot become `role`, and `role` (if it is left) holds nothing.
async fn powerless(env: &Env, role: &TenantSchema) -> anyhow::Result<()> {
    let app = env
        .db
        .connect(tenantry_tests::logins::LoginRole::App, 1)
        .await?;
    let set = app.execute_unprepared(&format!("SET ROLE {role}")).await;
    ensure!(set.is_err(), "the app login can still SET ROLE {role}");
    let member = scalar(
        &env.su,
        "SELECT count(*) FROM pg_roles r WHERE r.rolname = $1 \
           AND (pg_has_role(r.oid, 'tenantry_app', 'MEMBER') \
             OR pg_has_role('tenantry_dedicated', r.oid, 'MEMBER'))",
        [role.as_str().into()],
    )
    .await?;
    assert_eq!(member, 0, "{role} keeps a membership");
    Ok(())
}

#[tokio::test]
async fn offboarding_survives_the_tenants_own_temp_table() -> anyhow::Result<()> {
    let env = env_with(|c| c.with_pool(1)).await?;
    let o = user(&env.svc, "o@keep.test", "O").await?;
    let (d, d_ctx) = tenant_with(&env.svc, "keep", o, Isolation::Dedicated).await?;
    // Owned by the tenant's role, alive as long as the pooled connection.
    raw(&env.svc, &d_ctx, &["CREATE TEMP TABLE keepme (x int)"]).await?;
    offboard(&env, d).await?;
    let role = TenantSchema::for_tenant(d);
    let left = scalar(
        &env.su,
        "SELECT count(*) FROM pg_roles WHERE rolname = $1",
        [role.as_str().into()],
    )
    .await?;
    assert_eq!(left, 0, "the role is dropped");
    powerless(&env, &role).await
}

#[tokio::test]
async fn offboarding_survives_another_database_using_the_role() -> anyhow::Result<()> {
    let env = env().await?;
    let o = user(&env.svc, "o@clone.test", "O").await?;
    let (d, _) = tenant_with(&env.svc, "cloned", o, Isolation::Dedicated).await?;
    let role = TenantSchema::for_tenant(d);
    // What a copy of the database in the same cluster holds: objects that name the role.
    let other = tenantry_tests::empty_db().await?;
    let other_su = other.connect_superuser().await?;
    other_su
        .execute_unprepared(&format!(
            "CREATE TABLE keep (x int); GRANT SELECT ON keep TO {role}"
        ))
        .await?;
    offboard(&env, d).await?;
    let schemas = scalar(
        &env.su,
        "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
        [role.as_str().into()],
    )
    .await?;
    assert_eq!(schemas, 0, "the schema is dropped");
    let roles = scalar(
        &env.su,
        "SELECT count(*) FROM pg_roles WHERE rolname = $1",
        [role.as_str().into()],
    )
    .await?;
    assert_eq!(roles, 1, "the role is left for the other database");
    powerless(&env, &role).await
}

/// Moves `e` (dedicated) to shared as a move's switch does, by hand: the tenant's move lock,
/// exclusive, and the flip, committed only once `unit` (E's tenant transaction, started
/// meanwhile) is waiting on the lock. Returns where `unit`'s row went: (E's old schema, public).
async fn write_across_a_switch<F>(
    env: &Env,
    e: Uuid,
    name: &str,
    unit: F,
) -> anyhow::Result<(i64, i64)>
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    use sea_orm::TransactionTrait;
    let mover = env.db.connect_superuser().await?;
    let switch = mover.begin().await?;
    switch
        .execute_unprepared(&format!(
            "SELECT pg_catalog.pg_advisory_xact_lock({}, pg_catalog.hashtext('{e}')); \
             UPDATE tenancy.tenants SET isolation = 'shared', schema_name = NULL WHERE id = '{e}'",
            migration::dedicated::MOVE_LOCK_CLASS
        ))
        .await?;
    let unit = tokio::spawn(unit);
    // Until the unit waits on the lock (or ended without reaching it, an error it reports).
    tokio::select! {
        waited = until_a_session_waits_on_a_lock(&env.su) => waited?,
        _ = async { while !unit.is_finished() { tokio::task::yield_now().await } } => {}
    }
    switch.commit().await?;
    unit.await??;
    let schema = TenantSchema::for_tenant(e);
    let count = |table: String| {
        let su = env.su.clone();
        let name = name.to_string();
        async move {
            scalar(
                &su,
                &format!("SELECT count(*) FROM {table} WHERE name = $1"),
                [Value::from(name)],
            )
            .await
        }
    };
    Ok((
        count(format!("{schema}.projects")).await?,
        count("public.projects".into()).await?,
    ))
}

// A default isolation level the app login sets for itself (`ALTER ROLE ... SET`, which reaches
// every new connection, both pools') never makes a tenant transaction read its tenant's mode
// from a snapshot taken before the move lock: the openings pin READ COMMITTED, so a write that
// waited for a switch lands where the switch moved the tenant. The entry itself refuses any
// other level (TN002), for an opening of someone else's.
#[tokio::test]
async fn a_default_isolation_level_never_sends_a_write_to_the_place_a_switch_left()
-> anyhow::Result<()> {
    let env = env().await?;
    let oa = user(&env.svc, "a@iso.test", "A").await?;
    let oe = user(&env.svc, "e@iso.test", "E").await?;
    let (_, a_ctx) = tenant_with(&env.svc, "iso-a", oa, Isolation::Shared).await?;
    let db = env.db.name.clone();
    raw(
        &env.svc,
        &a_ctx,
        &[&format!(
            "ALTER ROLE CURRENT_USER IN DATABASE \"{db}\" SET default_transaction_isolation = 'repeatable read'"
        )],
    )
    .await?;
    // Fresh connections, which start at REPEATABLE READ.
    let svc = Tenantry::connect(config(&env.db).with_pool(1)).await?;
    for (path, piped) in [("sqlx", false), ("pipelined", true)] {
        let (e, e_ctx) =
            tenant_with(&svc, &format!("iso-e-{path}"), oe, Isolation::Dedicated).await?;
        let name = format!("E's write via {path}");
        let (svc2, row) = (svc.clone(), name.clone());
        let unit = async move {
            if piped {
                let project = entity::projects::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    name: Set(row),
                    ..Default::default()
                };
                svc2.insert_one(&e_ctx, project).await?;
            } else {
                let tx = svc2.begin(&e_ctx).await?;
                insert_project(&tx, &row).await?;
                tx.commit().await?;
            }
            anyhow::Ok(())
        };
        let (old, new) = write_across_a_switch(&env, e, &name, unit).await?;
        assert_eq!(
            (old, new),
            (0, 1),
            "{path}: the write went to the place the switch left"
        );
    }
    // The entry refuses a REPEATABLE READ transaction opened by hand.
    let app = env.db.connect(LoginRole::App, 1).await?;
    let refused = app
        .execute_unprepared(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL tenantry.tenant_id = '{}'; \
             SELECT tenancy.enter_tenant_schema(); COMMIT",
            a_ctx.tenant_id()
        ))
        .await;
    let message = format!("{refused:?}");
    ensure!(
        message.contains("TN002") || message.contains("READ COMMITTED"),
        "{message}"
    );
    svc.close().await?;
    Ok(())
}
