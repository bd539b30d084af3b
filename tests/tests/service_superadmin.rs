//! The superadmin escape against a real PostgreSQL: unavailable without its pool, refused
//! without an actor and a reason, and every use audited in the same transaction: rolled back,
//! neither the change nor its audit rows remain; committed, both do. The app login can neither
//! read nor write the superadmin trail, and the superadmin login sees nothing without a reason.

mod service_support;

use sea_orm::ConnectionTrait;
use service::{NewTenant, ServiceError, SuperadminGrant, TenantStatus, Tenantry, TenantryConfig};
use service_support::*;
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

#[tokio::test]
async fn without_the_superadmin_pool_the_escape_is_unavailable() -> anyhow::Result<()> {
    let db = tenantry_tests::migrated_db().await?;
    let svc = Tenantry::connect(TenantryConfig::new(db.url(LoginRole::App))).await?;
    match svc.superadmin(grant("tenant.list", None)).await {
        Err(ServiceError::Unavailable(_)) => {}
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("expected Unavailable, got a superadmin transaction"),
    }
    Ok(())
}

#[tokio::test]
async fn an_actor_and_a_reason_are_required() -> anyhow::Result<()> {
    let env = env().await?;
    for (actor, reason, field) in [
        ("", "why", "actor"),
        ("  ", "why", "actor"),
        ("ops", "", "reason"),
        ("ops", " \t ", "reason"),
    ] {
        let r = env
            .svc
            .superadmin(SuperadminGrant {
                actor,
                reason,
                action: "tenant.list",
                scope: None,
            })
            .await;
        match r {
            Err(ServiceError::InvalidInput { field: f, .. }) if f == field => {}
            Err(other) => panic!("expected InvalidInput({field}), got {other:?}"),
            Ok(_) => panic!("expected InvalidInput({field}), got a transaction"),
        }
    }
    assert_eq!(
        scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.superadmin_audit_logs",
            []
        )
        .await?,
        0
    );
    Ok(())
}

/// Every superadmin operation, run once rolled back and once committed: its audit rows (the
/// grant's and the operation's) share the fate of its change.
#[tokio::test]
async fn every_use_is_audited_in_the_same_transaction() -> anyhow::Result<()> {
    let env = env().await?;
    let owner = user(&env.svc, "owner@x.test", "Owner").await?;
    let (victim, _) = tenant(&env.svc, "Victim", "victim", "free", owner).await?;
    let grants = |su| superadmin_audits(su, "test.grant", None);

    // create_user
    for commit in [false, true] {
        let before = superadmin_audits(&env.su, "user.create", None).await?;
        let sa = env.svc.superadmin(grant("test.grant", None)).await?;
        let id = sa.create_user("new@x.test", "New", None).await?;
        if commit {
            sa.commit().await?;
        } else {
            drop(sa);
        }
        let users = scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.users WHERE id = $1",
            [id.into()],
        )
        .await?;
        assert_eq!(users, i64::from(commit));
        assert_eq!(
            superadmin_audits(&env.su, "user.create", None).await?,
            before + i64::from(commit)
        );
    }
    assert_eq!(grants(&env.su).await?, 1);

    // provision_tenant
    for commit in [false, true] {
        let sa = env.svc.superadmin(grant("test.grant", None)).await?;
        let (t, _) = sa
            .provision_tenant(
                NewTenant {
                    name: "P".into(),
                    slug: "provisioned".into(),
                    plan: "free".into(),
                    region: "eu".into(),
                    admin_email: None,
                },
                owner,
            )
            .await?;
        if commit {
            sa.commit().await?;
        } else {
            drop(sa);
        }
        let n = scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.tenants WHERE id = $1",
            [t.id.into()],
        )
        .await?;
        assert_eq!(n, i64::from(commit));
        assert_eq!(
            superadmin_audits(&env.su, "tenant.provision", Some(t.id)).await?,
            i64::from(commit)
        );
    }
    assert_eq!(grants(&env.su).await?, 2);

    // list_tenants
    for commit in [false, true] {
        let before = superadmin_audits(&env.su, "tenant.list", None).await?;
        let sa = env.svc.superadmin(grant("test.grant", None)).await?;
        assert!(sa.list_tenants().await?.len() >= 3);
        if commit {
            sa.commit().await?;
        } else {
            drop(sa);
        }
        assert_eq!(
            superadmin_audits(&env.su, "tenant.list", None).await?,
            before + i64::from(commit)
        );
    }
    assert_eq!(grants(&env.su).await?, 3);

    // set_tenant_status
    for commit in [false, true] {
        let sa = env
            .svc
            .superadmin(grant("test.grant", Some(victim)))
            .await?;
        sa.set_tenant_status(victim, TenantStatus::Suspended)
            .await?;
        if commit {
            sa.commit().await?;
        } else {
            drop(sa);
        }
        let suspended = scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.tenants WHERE id = $1 AND status = 'suspended'",
            [victim.into()],
        )
        .await?;
        assert_eq!(suspended, i64::from(commit));
        assert_eq!(
            superadmin_audits(&env.su, "tenant.set_status", Some(victim)).await?,
            i64::from(commit)
        );
    }
    assert_eq!(grants(&env.su).await?, 4);

    // offboard
    for commit in [false, true] {
        let sa = env
            .svc
            .superadmin(grant("test.grant", Some(victim)))
            .await?;
        sa.offboard(victim, &mut Vec::new()).await?;
        if commit {
            sa.commit().await?;
        } else {
            drop(sa);
        }
        let n = scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.tenants WHERE id = $1",
            [victim.into()],
        )
        .await?;
        assert_eq!(n, 1 - i64::from(commit));
        assert_eq!(
            superadmin_audits(&env.su, "tenant.offboard", Some(victim)).await?,
            i64::from(commit)
        );
    }
    assert_eq!(grants(&env.su).await?, 5);

    // The rows say who, why and what.
    let row = env
        .su
        .query_one_raw(stmt(
            "SELECT actor, reason, scope_tenant_id FROM tenancy.superadmin_audit_logs \
             WHERE action = 'test.grant' ORDER BY created_at DESC LIMIT 1",
            [],
        ))
        .await?
        .expect("a row");
    assert_eq!(row.try_get_by_index::<String>(0)?, "ops@tenantry.test");
    assert_eq!(row.try_get_by_index::<String>(1)?, "integration test");
    assert_eq!(row.try_get_by_index::<Option<Uuid>>(2)?, Some(victim));
    Ok(())
}

#[tokio::test]
async fn superadmin_errors_are_classified_without_sql_details() -> anyhow::Result<()> {
    let env = env().await?;
    let sa = env.svc.superadmin(grant("user.create", None)).await?;
    sa.create_user("dup@x.test", "Dup", None).await?;
    sa.commit().await?;
    let sa = env.svc.superadmin(grant("user.create", None)).await?;
    let err = sa
        .create_user("DUP@x.test", "Dup again", None)
        .await
        .expect_err("a duplicate address");
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
    let text = err.to_string();
    for leak in [
        "users_email_key",
        "duplicate key",
        "SELECT",
        "INSERT",
        "dup@x.test",
    ] {
        assert!(!text.contains(leak), "{text} leaks {leak}");
    }
    let sa = env.svc.superadmin(grant("tenant.suspend", None)).await?;
    let err = sa
        .set_tenant_status(Uuid::new_v4(), TenantStatus::Suspended)
        .await
        .expect_err("no such tenant");
    assert_eq!(err.to_string(), "tenant not found");
    Ok(())
}

#[tokio::test]
async fn the_trail_is_out_of_reach_of_the_app_and_the_escape_needs_its_reason() -> anyhow::Result<()>
{
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;

    // The app login, inside a tenant transaction: no read, no write.
    let tx = env.svc.begin(&a.ctx).await?;
    let err = tx
        .conn()
        .query_all_raw(stmt("SELECT * FROM tenancy.superadmin_audit_logs", []))
        .await
        .expect_err("the app cannot read the superadmin trail");
    assert!(matches!(
        ServiceError::from(err),
        ServiceError::Forbidden(_)
    ));
    drop(tx);
    let tx = env.svc.begin(&a.ctx).await?;
    let err = tx
        .conn()
        .execute_raw(stmt(
            "INSERT INTO tenancy.superadmin_audit_logs (actor, reason, action) VALUES ('x', 'y', 'z')",
            [],
        ))
        .await
        .expect_err("the app cannot write the superadmin trail");
    assert!(matches!(
        ServiceError::from(err),
        ServiceError::Forbidden(_)
    ));
    drop(tx);

    // The superadmin login without a reason in its transaction sees nothing at all.
    let direct = env.db.connect(LoginRole::Superadmin, 1).await?;
    for table in [
        "tenancy.tenants",
        "tenancy.users",
        "tenancy.tenant_users",
        "tenancy.superadmin_audit_logs",
    ] {
        let n = scalar(&direct, &format!("SELECT count(*) FROM {table}"), []).await?;
        assert_eq!(n, 0, "{table} visible without a reason");
    }
    let inserted = direct
        .execute_raw(stmt(
            "INSERT INTO tenancy.tenants (name, slug) VALUES ('sneaky', 'sneaky')",
            [],
        ))
        .await;
    assert!(inserted.is_err(), "wrote a tenant without a reason");
    Ok(())
}
