//! API keys and authentication against a real PostgreSQL, as the app login: issuing, listing,
//! revoking, rotating and expiring keys with three tenants; what `authenticate_api_key`
//! accepts and refuses (and why); the throttled `last_used_at` write; `member_context` and
//! `find_login`; cross-tenant key ids are `NotFound` and change nothing.

mod service_support;

use sea_orm::sea_query::value::prelude::chrono::{Duration, Utc};
use sea_orm::{ConnectionTrait, Value};
use service::api_keys::{self, NewApiKey};
use service::{Actor, MemberRole, ServiceError};
use service_support::*;
use uuid::Uuid;

fn new_key(name: &str, scopes: &[&str]) -> NewApiKey {
    NewApiKey {
        name: name.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        expires_at: None,
        rate_limit_per_minute: Some(120),
        monthly_quota: Some(10_000),
    }
}

#[tokio::test]
async fn issued_keys_authenticate_into_their_tenant_with_the_role_of_their_scopes()
-> anyhow::Result<()> {
    let env = env().await?;
    let tenants = three_tenants(&env.svc).await?;
    for t in &tenants {
        let tx = env.svc.begin(&t.ctx).await?;
        let admin = api_keys::issue(&tx, new_key("admin", &["admin"])).await?;
        let reader = api_keys::issue(&tx, new_key("reader", &["read"])).await?;
        let writer = api_keys::issue(&tx, new_key("writer", &["read", "write"])).await?;
        tx.commit().await?;

        for (issued, role) in [
            (&admin, MemberRole::Admin),
            (&reader, MemberRole::Viewer),
            (&writer, MemberRole::Member),
        ] {
            // Format: tk_<12 hex>_<64 hex>, and only its SHA-256 is stored.
            let secret = &issued.secret;
            assert_eq!(secret.len(), 80, "{secret}");
            assert!(secret.starts_with(&format!("tk_{}_", issued.key.prefix)));
            assert_eq!(issued.key.prefix.len(), 12);
            let stored = env
                .su
                .query_one_raw(stmt(
                    "SELECT secret_hash FROM tenancy.api_keys WHERE id = $1",
                    [Value::from(issued.key.id)],
                ))
                .await?
                .expect("the key row");
            let stored: Vec<u8> = stored.try_get_by_index(0)?;
            assert_eq!(stored, service::auth::hash_key(secret).to_vec());

            let p = env.svc.authenticate_api_key(secret).await?;
            assert_eq!(p.context.tenant_id(), t.id);
            assert_eq!(p.key_id, issued.key.id);
            assert_eq!(p.context.role(), role);
            assert_eq!(p.context.api_key_id(), Some(issued.key.id));
            assert_eq!(p.context.user_id(), None);
            assert_eq!(p.rate_limit_per_minute, Some(120));
            assert_eq!(p.monthly_quota, Some(10_000));
            assert_eq!(p.scopes, issued.key.scopes);
        }

        // Listing shows the tenant's keys only, and never a hash or secret.
        let tx = env.svc.begin(&t.ctx).await?;
        let listed = api_keys::list(&tx).await?;
        tx.rollback().await?;
        assert_eq!(listed.len(), 3);
        let json = serde_json::to_string(&listed)?;
        assert!(!json.contains("hash") && !json.contains(&admin.secret[16..]));
        assert_eq!(tenant_audits(&env.su, t.id, "api_key.issue").await?, 3);
    }
    Ok(())
}

#[tokio::test]
async fn malformed_unknown_and_wrong_keys_are_refused_with_their_reason() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    let tx = env.svc.begin(&a.ctx).await?;
    let issued = api_keys::issue(&tx, new_key("k", &["read"])).await?;
    tx.commit().await?;

    let good = issued.secret.clone();
    for malformed in [
        String::new(),
        "tk_".into(),
        "Bearer xyz".into(),
        good.to_uppercase(),
        good[..good.len() - 1].to_owned(),
        format!("{good}0"),
        good.replacen("tk_", "tk-", 1),
        format!("tk_{}", "é".repeat(38)),
        "\0".repeat(80),
    ] {
        assert_unauthenticated(
            env.svc.authenticate_api_key(&malformed).await,
            "malformed api key",
        );
    }
    // Well-formed, but no such key; and the right prefix with another secret.
    let unknown = format!("tk_{}_{}", "0".repeat(12), "a".repeat(64));
    assert_unauthenticated(
        env.svc.authenticate_api_key(&unknown).await,
        "unknown api key",
    );
    let wrong_secret = format!("tk_{}_{}", issued.key.prefix, "b".repeat(64));
    assert_unauthenticated(
        env.svc.authenticate_api_key(&wrong_secret).await,
        "unknown api key",
    );
    // The real one still works.
    env.svc.authenticate_api_key(&good).await?;
    Ok(())
}

#[tokio::test]
async fn revoked_and_expired_keys_are_refused_on_the_next_call() -> anyhow::Result<()> {
    let env = env().await?;
    let tenants = three_tenants(&env.svc).await?;
    for t in &tenants {
        let tx = env.svc.begin(&t.ctx).await?;
        let to_revoke = api_keys::issue(&tx, new_key("revoke me", &["read"])).await?;
        let to_expire = api_keys::issue(&tx, new_key("expire me", &["read"])).await?;
        let soon = api_keys::issue(
            &tx,
            NewApiKey {
                expires_at: Some(Utc::now() + Duration::days(30)),
                ..new_key("expires later", &["read"])
            },
        )
        .await?;
        tx.commit().await?;
        for k in [&to_revoke, &to_expire, &soon] {
            env.svc.authenticate_api_key(&k.secret).await?;
        }

        let tx = env.svc.begin(&t.ctx).await?;
        let revoked = api_keys::revoke(&tx, to_revoke.key.id).await?;
        assert!(revoked.revoked_at.is_some());
        // Idempotent: the same revocation time comes back.
        let again = api_keys::revoke(&tx, to_revoke.key.id).await?;
        assert_eq!(again.revoked_at, revoked.revoked_at);
        let expired = api_keys::expire(&tx, to_expire.key.id, Utc::now()).await?;
        assert!(expired.expires_at.is_some());
        tx.commit().await?;

        assert_unauthenticated(
            env.svc.authenticate_api_key(&to_revoke.secret).await,
            "api key revoked",
        );
        assert_unauthenticated(
            env.svc.authenticate_api_key(&to_expire.secret).await,
            "api key expired",
        );
        env.svc.authenticate_api_key(&soon.secret).await?;
        assert_eq!(tenant_audits(&env.su, t.id, "api_key.revoke").await?, 2);
        assert_eq!(tenant_audits(&env.su, t.id, "api_key.expire").await?, 1);
    }

    // Issuing a key that is already expired is refused.
    let tx = env.svc.begin(&tenants[0].ctx).await?;
    assert_invalid(
        api_keys::issue(
            &tx,
            NewApiKey {
                expires_at: Some(Utc::now() - Duration::seconds(1)),
                ..new_key("past", &[])
            },
        )
        .await,
        "expires_at",
    );
    Ok(())
}

#[tokio::test]
async fn rotation_revokes_the_old_key_and_issues_a_twin_in_one_transaction() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, b, _] = three_tenants(&env.svc).await?;
    let tx = env.svc.begin(&a.ctx).await?;
    let old = api_keys::issue(&tx, new_key("ci", &["read", "write"])).await?;
    tx.commit().await?;

    // Rolled back: nothing happened.
    let tx = env.svc.begin(&a.ctx).await?;
    api_keys::rotate(&tx, old.key.id).await?;
    tx.rollback().await?;
    env.svc.authenticate_api_key(&old.secret).await?;

    let tx = env.svc.begin(&a.ctx).await?;
    let new = api_keys::rotate(&tx, old.key.id).await?;
    tx.commit().await?;
    assert_ne!(new.key.id, old.key.id);
    assert_ne!(new.secret, old.secret);
    assert_eq!(new.key.name, old.key.name);
    assert_eq!(new.key.scopes, old.key.scopes);
    assert_eq!(new.key.rate_limit_per_minute, old.key.rate_limit_per_minute);
    assert_eq!(new.key.monthly_quota, old.key.monthly_quota);
    assert_unauthenticated(
        env.svc.authenticate_api_key(&old.secret).await,
        "api key revoked",
    );
    let p = env.svc.authenticate_api_key(&new.secret).await?;
    assert_eq!(p.context.tenant_id(), a.id);
    assert_eq!(tenant_audits(&env.su, a.id, "api_key.rotate").await?, 1);

    // A revoked key cannot be rotated back to life.
    let tx = env.svc.begin(&a.ctx).await?;
    assert_conflict(api_keys::rotate(&tx, old.key.id).await);
    drop(tx);

    // Another tenant's admin can neither see nor touch the key.
    let tx = env.svc.begin(&b.ctx).await?;
    assert!(api_keys::list(&tx).await?.is_empty());
    assert_not_found(api_keys::rotate(&tx, new.key.id).await, "api key");
    Ok(())
}

#[tokio::test]
async fn another_tenants_key_id_is_not_found_and_nothing_changes() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, b, c] = three_tenants(&env.svc).await?;
    let tx = env.svc.begin(&a.ctx).await?;
    let key = api_keys::issue(&tx, new_key("a's key", &["admin"])).await?;
    tx.commit().await?;
    let before = census(&env.su).await?;

    for other in [&b, &c] {
        let tx = env.svc.begin(&other.ctx).await?;
        assert_not_found(api_keys::revoke(&tx, key.key.id).await, "api key");
        drop(tx);
        let tx = env.svc.begin(&other.ctx).await?;
        assert_not_found(api_keys::rotate(&tx, key.key.id).await, "api key");
        drop(tx);
        let tx = env.svc.begin(&other.ctx).await?;
        assert_not_found(
            api_keys::expire(&tx, key.key.id, Utc::now()).await,
            "api key",
        );
        drop(tx);
    }
    // An id that exists nowhere gives the very same answer.
    let tx = env.svc.begin(&b.ctx).await?;
    assert_not_found(api_keys::revoke(&tx, Uuid::new_v4()).await, "api key");
    drop(tx);

    assert_eq!(
        census(&env.su).await?,
        before,
        "a refused change changed rows"
    );
    let p = env.svc.authenticate_api_key(&key.secret).await?;
    assert_eq!(p.context.tenant_id(), a.id);
    Ok(())
}

#[tokio::test]
async fn only_admins_manage_keys_and_the_audit_names_the_actor() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    let member = user(&env.svc, "member@one.test", "Member").await?;
    let viewer = user(&env.svc, "viewer@one.test", "Viewer").await?;
    let member_ctx = join(&env.svc, &a.ctx, member, MemberRole::Member).await?;
    let viewer_ctx = join(&env.svc, &a.ctx, viewer, MemberRole::Viewer).await?;

    let tx = env.svc.begin(&a.ctx).await?;
    let admin_key = api_keys::issue(&tx, new_key("automation", &["admin"])).await?;
    let read_key = api_keys::issue(&tx, new_key("reader", &["read"])).await?;
    tx.commit().await?;

    for ctx in [&member_ctx, &viewer_ctx] {
        let tx = env.svc.begin(ctx).await?;
        assert_forbidden(api_keys::issue(&tx, new_key("nope", &[])).await);
        assert_forbidden(api_keys::revoke(&tx, read_key.key.id).await);
        assert_forbidden(api_keys::rotate(&tx, read_key.key.id).await);
        // Reading the list is fine for members.
        assert_eq!(api_keys::list(&tx).await?.len(), 2);
    }
    // A read-only key is a viewer; an admin key may manage keys, and the trail names the key.
    let reader = env.svc.authenticate_api_key(&read_key.secret).await?;
    let tx = env.svc.begin(&reader.context).await?;
    assert_forbidden(api_keys::issue(&tx, new_key("nope", &[])).await);
    drop(tx);
    let admin = env.svc.authenticate_api_key(&admin_key.secret).await?;
    let tx = env.svc.begin(&admin.context).await?;
    let issued = api_keys::issue(&tx, new_key("by a key", &["read"])).await?;
    tx.commit().await?;

    let by_key = scalar(
        &env.su,
        "SELECT count(*) FROM tenancy.audit_logs WHERE tenant_id = $1 AND action = 'api_key.issue' \
         AND actor_api_key_id = $2 AND actor_user_id IS NULL AND resource_id = $3",
        [
            Value::from(a.id),
            Value::from(admin_key.key.id),
            Value::from(issued.key.id.to_string()),
        ],
    )
    .await?;
    assert_eq!(by_key, 1);
    let by_owner = scalar(
        &env.su,
        "SELECT count(*) FROM tenancy.audit_logs WHERE tenant_id = $1 AND action = 'api_key.issue' \
         AND actor_user_id = $2",
        [Value::from(a.id), Value::from(a.owner)],
    )
    .await?;
    assert_eq!(by_owner, 2);
    let created_by: Option<Uuid> = env
        .su
        .query_one_raw(stmt(
            "SELECT created_by FROM tenancy.api_keys WHERE id = $1",
            [Value::from(admin_key.key.id)],
        ))
        .await?
        .expect("row")
        .try_get_by_index(0)?;
    assert_eq!(created_by, Some(a.owner));
    Ok(())
}

#[tokio::test]
async fn a_suspended_tenants_keys_and_members_stop_on_the_next_call() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, b, _] = three_tenants(&env.svc).await?;
    let tx = env.svc.begin(&a.ctx).await?;
    let key = api_keys::issue(&tx, new_key("k", &["read"])).await?;
    tx.commit().await?;
    let tx = env.svc.begin(&b.ctx).await?;
    let b_key = api_keys::issue(&tx, new_key("k", &["read"])).await?;
    tx.commit().await?;
    env.svc.authenticate_api_key(&key.secret).await?;
    env.svc.member_context(a.id, a.owner).await?;

    set_status(
        &env.svc,
        "tenant.suspend",
        a.id,
        service::TenantStatus::Suspended,
    )
    .await?;
    assert_unauthenticated(
        env.svc.authenticate_api_key(&key.secret).await,
        "tenant not active",
    );
    assert_unauthenticated(
        env.svc.member_context(a.id, a.owner).await,
        "tenant not active",
    );
    // The other tenants go on.
    env.svc.authenticate_api_key(&b_key.secret).await?;
    env.svc.member_context(b.id, b.owner).await?;

    set_status(
        &env.svc,
        "tenant.reactivate",
        a.id,
        service::TenantStatus::Trial,
    )
    .await?;
    env.svc.authenticate_api_key(&key.secret).await?;
    env.svc.member_context(a.id, a.owner).await?;
    Ok(())
}

/// A column of a key's row, as text, read underneath as the superuser.
async fn key_column(env: &Env, key: Uuid, column: &str) -> anyhow::Result<Option<String>> {
    Ok(env
        .su
        .query_one_raw(stmt(
            &format!("SELECT {column}::text FROM tenancy.api_keys WHERE id = $1"),
            [Value::from(key)],
        ))
        .await?
        .expect("the key row")
        .try_get_by_index(0)?)
}

/// The row version of a key (`xmin` changes with every write of the row): comparing it tells
/// whether a write happened, without waiting for the clock to move.
async fn row_version(env: &Env, key: Uuid) -> anyhow::Result<Option<String>> {
    key_column(env, key, "xmin").await
}

async fn last_used(env: &Env, key: Uuid) -> anyhow::Result<Option<String>> {
    key_column(env, key, "last_used_at").await
}

#[tokio::test]
async fn last_use_is_written_at_most_once_per_interval() -> anyhow::Result<()> {
    let env = env().await?; // default interval: 60 s
    let [a, ..] = three_tenants(&env.svc).await?;
    let tx = env.svc.begin(&a.ctx).await?;
    let key = api_keys::issue(&tx, new_key("k", &["read"])).await?;
    tx.commit().await?;
    assert_eq!(last_used(&env, key.key.id).await?, None);

    env.svc.authenticate_api_key(&key.secret).await?;
    let first = last_used(&env, key.key.id).await?;
    assert!(first.is_some(), "the first use is recorded");
    let version = row_version(&env, key.key.id).await?;
    env.svc.authenticate_api_key(&key.secret).await?;
    assert_eq!(
        row_version(&env, key.key.id).await?,
        version,
        "two immediate authentications must write once"
    );

    // With no interval every use writes (another handle: the memory is per handle).
    let eager = service::Tenantry::connect({
        let mut c = config(&env.db);
        c.last_used_interval = std::time::Duration::ZERO;
        c
    })
    .await?;
    eager.authenticate_api_key(&key.secret).await?;
    let second = row_version(&env, key.key.id).await?;
    assert_ne!(second, version, "another handle writes its first use");
    eager.authenticate_api_key(&key.secret).await?;
    assert_ne!(
        row_version(&env, key.key.id).await?,
        second,
        "with no interval every use writes"
    );
    Ok(())
}

#[tokio::test]
async fn member_context_requires_a_membership_and_says_nothing_about_other_tenants()
-> anyhow::Result<()> {
    let env = env().await?;
    let [a, b, c] = three_tenants(&env.svc).await?;
    let ctx = env.svc.member_context(a.id, a.owner).await?;
    assert_eq!(ctx.tenant_id(), a.id);
    assert_eq!(ctx.role(), MemberRole::Owner);
    assert_eq!(ctx.actor(), &Actor::User { user_id: a.owner });

    // Not a member of an existing tenant, and a tenant that does not exist: the same answer.
    let not_member = env.svc.member_context(b.id, a.owner).await;
    let no_tenant = env.svc.member_context(Uuid::new_v4(), a.owner).await;
    let (Err(ServiceError::Forbidden(m1)), Err(ServiceError::Forbidden(m2))) =
        (&not_member, &no_tenant)
    else {
        panic!("expected Forbidden twice, got {not_member:?} and {no_tenant:?}");
    };
    assert_eq!(m1, m2);
    assert!(!m1.contains(&b.id.to_string()));
    assert_forbidden(env.svc.member_context(c.id, Uuid::new_v4()).await);

    // A member's role is their membership's.
    let viewer = user(&env.svc, "v@one.test", "V").await?;
    let vctx = join(&env.svc, &a.ctx, viewer, MemberRole::Viewer).await?;
    assert_eq!(vctx.role(), MemberRole::Viewer);
    Ok(())
}

#[tokio::test]
async fn find_login_is_case_insensitive_and_unknown_addresses_are_none() -> anyhow::Result<()> {
    let env = env().await?;
    let sa = env.svc.superadmin(grant("user.create", None)).await?;
    let alice = sa
        .create_user("Alice@Acme.com", "Alice", Some("$argon2id$v=19$alice"))
        .await?;
    let sso = sa.create_user("sso@acme.com", "SSO only", None).await?;
    sa.commit().await?;

    assert_eq!(
        env.svc.find_login("alice@acme.com").await?,
        Some((alice, Some("$argon2id$v=19$alice".to_owned())))
    );
    assert_eq!(
        env.svc.find_login("  ALICE@ACME.COM ").await?,
        Some((alice, Some("$argon2id$v=19$alice".to_owned())))
    );
    assert_eq!(env.svc.find_login("sso@ACME.com").await?, Some((sso, None)));
    assert_eq!(env.svc.find_login("nobody@acme.com").await?, None);
    assert_invalid(env.svc.find_login("   ").await, "email");
    // Quotes and the like are just data.
    assert_eq!(
        env.svc.find_login("x'); DROP TABLE users; --@a").await?,
        None
    );
    Ok(())
}

/// The limits a tenant's admin chooses are bounded: at most
/// `MAX_RATE_LIMIT_PER_MINUTE` requests a minute (and at least one), and a monthly quota of at
/// least one unit. Refusals name the field and write nothing.
#[tokio::test]
async fn chosen_rate_limits_and_quotas_are_bounded() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    let before = census(&env.su).await?;
    for (new, field) in [
        (
            NewApiKey {
                rate_limit_per_minute: Some(6_001),
                ..new_key("fast", &[])
            },
            "rate_limit_per_minute",
        ),
        (
            NewApiKey {
                rate_limit_per_minute: Some(u32::MAX),
                ..new_key("fast", &[])
            },
            "rate_limit_per_minute",
        ),
        (
            NewApiKey {
                rate_limit_per_minute: Some(0),
                ..new_key("stopped", &[])
            },
            "rate_limit_per_minute",
        ),
        (
            NewApiKey {
                monthly_quota: Some(0),
                ..new_key("empty", &[])
            },
            "monthly_quota",
        ),
        (
            NewApiKey {
                monthly_quota: Some(u64::MAX),
                ..new_key("endless", &[])
            },
            "monthly_quota",
        ),
    ] {
        let tx = env.svc.begin(&a.ctx).await?;
        assert_invalid(api_keys::issue(&tx, new).await, field);
    }
    assert_eq!(census(&env.su).await?, before, "a refused key was written");

    // The bounds themselves are accepted.
    let tx = env.svc.begin(&a.ctx).await?;
    let edge = api_keys::issue(
        &tx,
        NewApiKey {
            rate_limit_per_minute: Some(6_000),
            monthly_quota: Some(1),
            ..new_key("edge", &[])
        },
    )
    .await?;
    tx.commit().await?;
    let p = env.svc.authenticate_api_key(&edge.secret).await?;
    assert_eq!(p.rate_limit_per_minute, Some(6_000));
    assert_eq!(p.monthly_quota, Some(1));
    Ok(())
}

/// A quota counts the key's lineage (the tenant's keys of the same name), so a rotated key
/// starts where its predecessor stopped; `month_to_date` of one key id still counts that id.
#[tokio::test]
async fn a_rotated_key_counts_its_predecessors_usage() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, b, _] = three_tenants(&env.svc).await?;
    let issue = async |ctx: &service::TenantContext, name: &str| -> anyhow::Result<_> {
        let tx = env.svc.begin(ctx).await?;
        let k = api_keys::issue(
            &tx,
            NewApiKey {
                monthly_quota: Some(2),
                ..new_key(name, &["usage"])
            },
        )
        .await?;
        tx.commit().await?;
        Ok(k)
    };
    let use_key = async |secret: &str, quantity: i64| -> anyhow::Result<()> {
        let p = env.svc.authenticate_api_key(secret).await?;
        let tx = env.svc.begin(&p.context).await?;
        service::usage::record(
            &tx,
            service::usage::UsageEventInput::new("request", quantity),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    };
    let old = issue(&a.ctx, "ci").await?;
    let other = issue(&a.ctx, "other").await?;
    let b_ci = issue(&b.ctx, "ci").await?;
    use_key(&old.secret, 1).await?;
    use_key(&old.secret, 1).await?;
    use_key(&other.secret, 4).await?;
    use_key(&b_ci.secret, 40).await?;

    let tx = env.svc.begin(&a.ctx).await?;
    let new = api_keys::rotate(&tx, old.key.id).await?;
    tx.commit().await?;
    use_key(&new.secret, 3).await?;

    let tx = env.svc.begin(&a.ctx).await?;
    use service::usage::{month_to_date, month_to_date_of_lineage};
    assert_eq!(month_to_date_of_lineage(&tx, new.key.id).await?, 5);
    assert_eq!(month_to_date_of_lineage(&tx, old.key.id).await?, 5);
    assert_eq!(month_to_date(&tx, Some(new.key.id)).await?, 3);
    assert_eq!(month_to_date_of_lineage(&tx, other.key.id).await?, 4);
    // B's key of the same name, asked from A: nothing; an unknown id: nothing.
    assert_eq!(month_to_date_of_lineage(&tx, b_ci.key.id).await?, 0);
    assert_eq!(month_to_date_of_lineage(&tx, Uuid::new_v4()).await?, 0);
    drop(tx);
    let tx = env.svc.begin(&b.ctx).await?;
    assert_eq!(month_to_date_of_lineage(&tx, b_ci.key.id).await?, 40);
    Ok(())
}
