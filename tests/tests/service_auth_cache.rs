//! The API-key authentication cache across processes: two `Tenantry` handles (two API
//! processes) cache a key; a change committed through one (revocation, rotation, suspension of
//! the tenant, removal of the key's creator) is announced on `tenantry_auth` and the other
//! refuses the key on its next call. A cached key costs no round trip; a lost listener
//! connection flushes the cache and nothing is served from it until the listener is back.
//!
//! Waiting is on the cache's own event counter (a notification handled), never on a clock.

mod service_support;

use std::time::Duration;

use anyhow::{Result, ensure};
use sea_orm::ConnectionTrait;
use service::api_keys::{self, NewApiKey};
use service::{MemberRole, Tenantry};
use service_support::*;
use tenantry_tests::logins::LoginRole;
use tenantry_tests::proxy::RoundTripProxy;

const TTL: Duration = Duration::from_secs(600);

async fn process(env: &Env) -> Result<Tenantry> {
    let t = Tenantry::connect(config(&env.db).with_auth_cache(TTL)).await?;
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
            .with_auth_cache(TTL),
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
