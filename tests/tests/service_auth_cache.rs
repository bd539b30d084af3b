//! The API-key authentication cache across processes: two `Tenantry` handles (two API
//! processes) cache a key; a change committed through one (revocation, rotation, suspension of
//! the tenant, removal of the key's creator) is announced on `tenantry_auth` and the other
//! refuses the key on its next call. A cached key costs no round trip; a lost listener
//! connection flushes the cache and nothing is served from it until the listener is back.
//!
//! A listener that is connected but hears nothing (behind PgBouncer in transaction mode, or a
//! half-open connection) is found deaf by the heartbeat: the cache is not used until one of its
//! heartbeats comes back, and is flushed when [`HEARTBEAT_MISSES`] go unanswered. The tests
//! drive the heartbeat themselves (the background interval is an hour) and assert on the
//! cache's counters.
//!
//! Waiting is on the cache's own event counter (a notification handled), never on a clock.

mod service_support;

use std::time::Duration;

use anyhow::{Result, ensure};
use sea_orm::ConnectionTrait;
use service::api_keys::{self, NewApiKey};
use service::auth_cache::HEARTBEAT_MISSES;
use service::{MemberRole, Tenantry};
use service_support::*;
use tenantry_tests::isolation::pool::PgBouncer;
use tenantry_tests::logins::{APP_LOGIN, LoginRole};
use tenantry_tests::proxy::RoundTripProxy;

const TTL: Duration = Duration::from_secs(600);

/// Longer than any test: the background heartbeat only sends the first one, on connecting;
/// the tests drive the rest with `AuthCache::heartbeat`.
const HEARTBEAT: Duration = Duration::from_secs(3600);

async fn process(env: &Env) -> Result<Tenantry> {
    let t = Tenantry::connect(
        config(&env.db)
            .with_auth_cache(TTL)
            .with_auth_heartbeat(HEARTBEAT),
    )
    .await?;
    until(&t, |c| c.is_live()).await?;
    Ok(t)
}

/// Waits, event by event, until `cond` holds for `t`'s cache.
async fn until(t: &Tenantry, cond: impl Fn(&service::auth_cache::AuthCache) -> bool) -> Result<()> {
    let cache = t
        .auth_cache()
        .ok_or_else(|| anyhow::anyhow!("cache configured"))?;
    let mut events = cache.events();
    loop {
        if cond(cache) {
            return Ok(());
        }
        // A bound so a broken listener fails the test instead of hanging it; not a sync.
        tokio::time::timeout(Duration::from_secs(30), events.changed()).await??;
    }
}

fn key(name: &str) -> NewApiKey {
    NewApiKey {
        name: name.into(),
        scopes: vec!["read".into()],
        expires_at: None,
        rate_limit_per_minute: None,
        monthly_quota: None,
    }
}

#[tokio::test]
async fn a_change_in_one_process_ends_the_cached_key_in_the_other() -> Result<()> {
    let env = env().await?;
    let [a, b, _] = three_tenants(&env.svc).await?;
    let one = process(&env).await?;
    let two = process(&env).await?;
    let issue = async |ctx, name| -> Result<service::IssuedApiKey> {
        let tx = env.svc.begin(ctx).await?;
        let k = api_keys::issue(&tx, key(name)).await?;
        tx.commit().await?;
        Ok(k)
    };

    // Revocation through process one; process two had the key cached.
    let k = issue(&a.ctx, "revoked").await?;
    let other = issue(&b.ctx, "b's").await?;
    two.authenticate_api_key(&k.secret).await?;
    two.authenticate_api_key(&other.secret).await?;
    ensure!(
        two.auth_cache().map(|c| c.len()) == Some(2),
        "both keys cached"
    );
    let tx = one.begin(&a.ctx).await?;
    api_keys::revoke(&tx, k.key.id).await?;
    tx.commit().await?;
    until(&two, |c| c.len() == 1).await?;
    assert_unauthenticated(two.authenticate_api_key(&k.secret).await, "api key revoked");
    // Only a's entries went: b's key is still served from the cache.
    ensure!(
        two.auth_cache().map(|c| c.len()) == Some(1),
        "b's key stays cached"
    );

    // Rotation: the old secret stops, the new one works.
    let k = issue(&a.ctx, "rotated").await?;
    two.authenticate_api_key(&k.secret).await?;
    let tx = one.begin(&a.ctx).await?;
    let rotated = api_keys::rotate(&tx, k.key.id).await?;
    tx.commit().await?;
    until(&two, |c| c.len() == 1).await?;
    ensure!(
        two.authenticate_api_key(&k.secret).await.is_err(),
        "the old secret is refused"
    );
    two.authenticate_api_key(&rotated.secret).await?;

    // Removal of the key's creator (a member who issued it).
    let admin = user(&env.svc, "creator@one.test", "Creator").await?;
    let admin_ctx = join(&env.svc, &a.ctx, admin, MemberRole::Admin).await?;
    let k = issue(&admin_ctx, "creator's").await?;
    two.authenticate_api_key(&k.secret).await?;
    let tx = one.begin(&a.ctx).await?;
    service::members::remove(&tx, admin).await?;
    tx.commit().await?;
    until(&two, |c| c.len() == 1).await?;
    ensure!(
        two.authenticate_api_key(&k.secret).await.is_err(),
        "the creator's key stops"
    );

    // Suspension of the tenant, through the superadmin escape.
    two.authenticate_api_key(&rotated.secret).await?;
    set_status(
        &env.svc,
        "tenant.suspend",
        a.id,
        service::TenantStatus::Suspended,
    )
    .await?;
    until(&two, |c| c.len() == 1).await?;
    assert_unauthenticated(
        two.authenticate_api_key(&rotated.secret).await,
        "tenant not active",
    );
    Ok(())
}

#[tokio::test]
async fn a_cached_key_costs_no_round_trip_and_a_lost_listener_flushes_the_cache() -> Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    let tx = env.svc.begin(&a.ctx).await?;
    let k = api_keys::issue(&tx, key("k")).await?;
    tx.commit().await?;

    let port = env.db.port();
    let proxy = RoundTripProxy::start(port).await?;
    let t = Tenantry::connect(
        service::TenantryConfig::new(proxy.url(&env.db.url(LoginRole::App), port))
            .with_pool(1)
            .with_auth_cache(TTL)
            .with_auth_heartbeat(HEARTBEAT),
    )
    .await?;
    until(&t, |c| c.is_live()).await?;
    t.authenticate_api_key(&k.secret).await?; // the lookup, and the first last-use write
    t.authenticate_api_key(&k.secret).await?;
    let before = proxy.round_trips();
    for _ in 0..10 {
        t.authenticate_api_key(&k.secret).await?;
    }
    ensure!(
        proxy.round_trips() == before,
        "cache hits sent something to the database"
    );

    // Kill the listener's connection: the cache is flushed and not used until it listens again.
    let mut events = t
        .auth_cache()
        .map(|c| c.events())
        .ok_or_else(|| anyhow::anyhow!("cache"))?;
    events.borrow_and_update();
    env.su
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%tenantry_auth%' \
               AND pid <> pg_backend_pid()",
        )
        .await?;
    tokio::time::timeout(Duration::from_secs(30), events.changed()).await??;
    let cache = t.auth_cache().ok_or_else(|| anyhow::anyhow!("cache"))?;
    ensure!(
        cache.is_empty(),
        "the cache is flushed when the listener is lost"
    );
    until(&t, |c| c.is_live()).await?;
    t.authenticate_api_key(&k.secret).await?;
    ensure!(cache.len() == 1, "cached again once listening");
    Ok(())
}

async fn issue_key(
    env: &Env,
    ctx: &service::TenantContext,
    name: &str,
) -> Result<service::IssuedApiKey> {
    let tx = env.svc.begin(ctx).await?;
    let k = api_keys::issue(&tx, key(name)).await?;
    tx.commit().await?;
    Ok(k)
}

async fn revoke(env: &Env, ctx: &service::TenantContext, id: uuid::Uuid) -> Result<()> {
    let tx = env.svc.begin(ctx).await?;
    api_keys::revoke(&tx, id).await?;
    tx.commit().await?;
    Ok(())
}

/// Runs heartbeats until the cache finds its listener deaf; how many it took.
async fn heartbeats_until_deaf(cache: &service::auth_cache::AuthCache) -> Result<u64> {
    let before = cache.deaf_count();
    for n in 1..=HEARTBEAT_MISSES + 1 {
        cache.heartbeat().await;
        if cache.deaf_count() > before {
            return Ok(n);
        }
    }
    anyhow::bail!(
        "{} heartbeats and the listener is not found deaf",
        HEARTBEAT_MISSES + 1
    )
}

#[tokio::test]
async fn behind_pgbouncer_in_transaction_mode_the_deaf_listener_never_makes_the_cache_live()
-> Result<()> {
    if !PgBouncer::available() {
        eprintln!("pgbouncer is not installed: this test is skipped");
        return Ok(());
    }
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    let k = issue_key(&env, &a.ctx, "k").await?;
    let bouncer = PgBouncer::start(tenantry_tests::shared_cluster()?, APP_LOGIN, 2)
        .map_err(anyhow::Error::msg)?;
    // The listener goes through PgBouncer (as it does when the app URL does): LISTEN succeeds
    // on a server connection that goes back to PgBouncer's pool.
    let t = Tenantry::connect(
        config(&env.db)
            .with_auth_cache(TTL)
            .with_auth_heartbeat(HEARTBEAT)
            .with_auth_listen_url(bouncer.url(APP_LOGIN, &env.db.name)),
    )
    .await?;
    until(&t, |c| c.is_listening() && c.heartbeats_sent() >= 1).await?;
    let cache = t.auth_cache().ok_or_else(|| anyhow::anyhow!("cache"))?;
    // Connected and listening, but no heartbeat came back: nothing is cached.
    t.authenticate_api_key(&k.secret).await?;
    t.authenticate_api_key(&k.secret).await?;
    ensure!(!cache.is_live(), "live before any heartbeat came back");
    ensure!(cache.is_empty(), "cached before any heartbeat came back");
    // The window runs out: found deaf after HEARTBEAT_MISSES unanswered heartbeats.
    let took = heartbeats_until_deaf(cache).await?;
    ensure!(
        took == HEARTBEAT_MISSES,
        "found deaf after {took} heartbeats (the one sent on connecting counts)"
    );
    ensure!(
        cache.heartbeats_received() == 0,
        "a heartbeat came back through PgBouncer"
    );
    ensure!(
        !cache.is_live() && cache.is_empty(),
        "a deaf cache is flushed and unused"
    );
    // Another handle revokes the key: refused here at once, the database is asked.
    revoke(&env, &a.ctx, k.key.id).await?;
    assert_unauthenticated(t.authenticate_api_key(&k.secret).await, "api key revoked");
    ensure!(cache.is_empty(), "nothing cached while deaf");
    Ok(())
}

#[tokio::test]
async fn a_half_open_listener_is_found_deaf_and_a_revoked_cached_key_is_refused() -> Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    let k = issue_key(&env, &a.ctx, "k").await?;
    // The listener goes through a proxy that can go silent; the app pool (heartbeats, lookups)
    // connects directly.
    let port = env.db.port();
    let proxy = RoundTripProxy::start(port).await?;
    let t = Tenantry::connect(
        config(&env.db)
            .with_auth_cache(TTL)
            .with_auth_heartbeat(HEARTBEAT)
            .with_auth_listen_url(proxy.url(&env.db.url(LoginRole::App), port)),
    )
    .await?;
    until(&t, |c| c.is_live()).await?;
    let cache = t.auth_cache().ok_or_else(|| anyhow::anyhow!("cache"))?;
    // A listener that hears is never found deaf, however many heartbeats run.
    for _ in 0..HEARTBEAT_MISSES + 2 {
        let received = cache.heartbeats_received();
        cache.heartbeat().await;
        until(&t, |c| c.heartbeats_received() > received).await?;
    }
    ensure!(
        cache.deaf_count() == 0 && cache.is_live(),
        "a hearing listener was found deaf"
    );
    t.authenticate_api_key(&k.secret).await?;
    ensure!(cache.len() == 1, "the key is cached");

    // The connection stays open and delivers nothing from now on: the revocation's
    // notification never arrives.
    proxy.freeze();
    revoke(&env, &a.ctx, k.key.id).await?;
    let took = heartbeats_until_deaf(cache).await?;
    ensure!(
        took == HEARTBEAT_MISSES + 1,
        "found deaf after {took} heartbeats, not once {HEARTBEAT_MISSES} went unanswered"
    );
    ensure!(
        !cache.is_live() && cache.is_empty(),
        "a deaf cache is flushed and unused"
    );
    assert_unauthenticated(t.authenticate_api_key(&k.secret).await, "api key revoked");
    Ok(())
}
