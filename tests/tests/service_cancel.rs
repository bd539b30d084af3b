//! A tenant transaction whose begin (or commit) is cancelled while its message is in flight
//! never hands its connection to the next tenant: the server is stopped (SIGSTOP on the
//! backend) so the answer cannot arrive, the future is dropped by a timeout, the server
//! resumes, and the next transaction, for another tenant on a pool of one connection, runs in
//! a transaction of its own, with its own tenant and no user id.
//!
//! The timeout only decides when the future is dropped: whether the message had been written
//! by then or not, the properties asserted hold, so the test cannot flake on timing.

mod service_support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use sea_orm::{ConnectionTrait, DatabaseConnection, Value};
use service::{NewApiKey, TenantContext, Tenantry, TenantryConfig, api_keys};
use service_support::{Env, env, scalar, stmt, three_tenants};
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

/// The backend pid of the only connection of `svc`'s pool, from a transaction for `ctx`.
async fn backend_pid(svc: &Tenantry, ctx: &TenantContext) -> Result<i32> {
    let pid = svc
        .with_tenant(ctx, async |tx| {
            let row = tx
                .conn()
                .query_one_raw(stmt("SELECT pg_backend_pid() AS pid", []))
                .await?;
            Ok(row.and_then(|r| r.try_get::<i32>("", "pid").ok()))
        })
        .await?;
    pid.context("no backend pid")
}

fn signal(pid: i32, sig: libc::c_int) -> Result<()> {
    // SAFETY: kill(2) with a pid of our own test cluster's backend and a plain signal.
    let rc = unsafe { libc::kill(pid, sig) };
    ensure!(
        rc == 0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// Waits until process `pid` has exited (a pidfd becomes readable when it does): no clock.
async fn exited(pid: i32) -> Result<()> {
    tokio::task::spawn_blocking(move || -> Result<()> {
        // SAFETY: pidfd_open(2) takes a pid and flags, and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            // Already gone.
            ensure!(
                e.raw_os_error() == Some(libc::ESRCH),
                "pidfd_open({pid}): {e}"
            );
            return Ok(());
        }
        let fd = fd as libc::c_int;
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; -1 waits until the process exits.
        let rc = unsafe { libc::poll(&mut p, 1, -1) };
        let e = std::io::Error::last_os_error();
        // SAFETY: fd is ours and closed once.
        unsafe { libc::close(fd) };
        ensure!(rc == 1, "poll(pidfd {pid}): {e}");
        Ok(())
    })
    .await?
}

/// What a transaction sees of itself.
#[derive(Debug)]
struct Seen {
    tenant: Option<String>,
    user: Option<String>,
    pid: i32,
    users_visible: i64,
}

/// Runs a transaction for `ctx` on `svc` and reports its settings, backend and how many rows
/// of `users` with id `user` it can read.
async fn seen(svc: &Tenantry, ctx: &TenantContext, user: Uuid) -> Result<Seen> {
    let seen = svc
        .with_tenant(ctx, async |tx| {
            let row = tx
                .conn()
                .query_one_raw(stmt(
                    "SELECT current_setting('tenantry.tenant_id', true) AS t, \
                            tenancy.current_user_id()::text AS u, \
                            pg_backend_pid() AS pid, \
                            (SELECT count(*) FROM tenancy.users WHERE id = $1) AS n",
                    [Value::from(user)],
                ))
                .await?
                .ok_or_else(|| service::ServiceError::Unavailable("no row".into()))?;
            let get = |c: &str| row.try_get::<Option<String>>("", c);
            Ok((
                get("t")?,
                get("u")?,
                row.try_get::<i32>("", "pid")?,
                row.try_get::<i64>("", "n")?,
            ))
        })
        .await?;
    Ok(Seen {
        tenant: seen.0,
        user: seen.1,
        pid: seen.2,
        users_visible: seen.3,
    })
}

/// Backends of this database idle inside a transaction, as the superuser sees them.
async fn idle_in_transaction(su: &DatabaseConnection) -> Result<i64> {
    scalar(
        su,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        [],
    )
    .await
}

/// The tenants, a user context of tenant A (whose user tenant B must never see) and an API-key
/// context of tenant B, and the service on a pool of one app connection.
async fn setup() -> Result<(Env, TenantContext, Uuid, TenantContext, Tenantry)> {
    let env = env().await?;
    let [a, b, _] = three_tenants(&env.svc).await?;
    ensure!(a.ctx.user_id() == Some(a.owner), "a's context is its owner");
    let tx = env.svc.begin(&b.ctx).await?;
    let key = api_keys::issue(
        &tx,
        NewApiKey {
            name: "b's key".into(),
            scopes: vec!["read".into(), "write".into()],
            expires_at: None,
            rate_limit_per_minute: None,
            monthly_quota: None,
        },
    )
    .await?;
    tx.commit().await?;
    let b_key = env.svc.authenticate_api_key(&key.secret).await?.context;
    ensure!(
        b_key.tenant_id() == b.id && b_key.user_id().is_none(),
        "b's key acts for b, without a user"
    );
    let svc =
        Tenantry::connect(TenantryConfig::new(env.db.url(LoginRole::App)).with_pool(1)).await?;
    Ok((env, a.ctx, a.owner, b_key, svc))
}

/// After the cancelled message on backend `stopped`: tenant B's transaction runs on a
/// connection of its own, sees its tenant, no user and not A's user; the stopped backend ends,
/// and nothing is left idle in a transaction.
async fn next_tenant_is_clean(
    env: &Env,
    svc: &Tenantry,
    stopped: i32,
    b: &TenantContext,
    a_user: Uuid,
) -> Result<()> {
    let s = seen(svc, b, a_user).await?;
    ensure!(
        s.tenant == Some(b.tenant_id().to_string()),
        "b's transaction has b's tenant: {s:?}"
    );
    ensure!(s.user.is_none(), "b's transaction has no user id: {s:?}");
    ensure!(s.users_visible == 0, "b cannot read a's user: {s:?}");
    ensure!(
        s.pid != stopped,
        "b's transaction must not run on the connection whose transaction state is unknown \
         (backend {stopped}): {s:?}"
    );
    // The abandoned backend was disconnected: it ends (rolling back whatever it ran).
    exited(stopped).await?;
    let left = idle_in_transaction(&env.su).await?;
    ensure!(left == 0, "{left} backend(s) left idle in transaction");
    // And the pool keeps working.
    let again = seen(svc, b, a_user).await?;
    ensure!(
        again.user.is_none() && again.users_visible == 0,
        "{again:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_cancelled_begin_never_hands_its_transaction_to_the_next_tenant() -> Result<()> {
    let (env, a, a_user, b, svc) = setup().await?;
    // Warm the only connection as a's user, and let its release (sqlx pings a connection
    // before it is idle again) finish, so the begin below has a connection at once and it is
    // the begin's own message, not the acquire, that waits on the stopped server.
    let pid = backend_pid(&svc, &a).await?;
    while svc.idle_connections() == 0 {
        tokio::task::yield_now().await;
    }

    signal(pid, libc::SIGSTOP)?;
    let cancelled = tokio::time::timeout(Duration::from_millis(300), svc.begin(&a)).await;
    signal(pid, libc::SIGCONT)?;
    ensure!(
        cancelled.is_err(),
        "a stopped server cannot answer the begin: {:?}",
        cancelled.map(|r| r.map(|_| ()))
    );

    next_tenant_is_clean(&env, &svc, pid, &b, a_user).await?;
    svc.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_cancelled_commit_never_hands_its_connection_to_the_next_tenant() -> Result<()> {
    let (env, a, a_user, b, svc) = setup().await?;
    let pid = backend_pid(&svc, &a).await?;
    let tx = svc.begin(&a).await?;

    signal(pid, libc::SIGSTOP)?;
    let cancelled = tokio::time::timeout(Duration::from_millis(300), tx.commit()).await;
    signal(pid, libc::SIGCONT)?;
    ensure!(
        cancelled.is_err(),
        "a stopped server cannot answer the commit: {cancelled:?}"
    );

    next_tenant_is_clean(&env, &svc, pid, &b, a_user).await?;
    svc.close().await?;
    Ok(())
}
