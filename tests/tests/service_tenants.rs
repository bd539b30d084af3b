//! Tenant lifecycle against a real PostgreSQL: provisioning (slug rules, duplicates, unknown
//! owners), the current tenant for its members (read, admin-only update limited to name and
//! settings), suspension, listing, offboarding one of three tenants (JSON-lines export of every
//! tenant table, then purge, with the other tenants' rows untouched) and background jobs.

mod service_support;

use std::collections::BTreeMap;

use entity::{documents, tasks};
use sea_orm::ActiveValue::Set;
use sea_orm::Value;
use service::api_keys::{self, NewApiKey};
use service::tenants::{self, TenantSlug};
use service::usage::{self, UsageEventInput};
use service::{MemberRole, NewTenant, ServiceError, TenantStatus, permissions};
use service_support::*;
use uuid::Uuid;

fn new_tenant(slug: &str) -> NewTenant {
    NewTenant {
        name: format!("Tenant {slug}"),
        slug: slug.into(),
        plan: "pro".into(),
        region: "eu-west".into(),
        admin_email: Some(format!("admin@{slug}.test")),
    }
}

#[tokio::test]
async fn provisioning_checks_its_input_and_makes_the_owner() -> anyhow::Result<()> {
    let env = env().await?;
    let owner = user(&env.svc, "owner@x.test", "Owner").await?;

    let sa = env.svc.superadmin(grant("tenant.provision", None)).await?;
    let (t, ctx) = sa.provision_tenant(new_tenant("acme"), owner).await?;
    sa.commit().await?;
    assert_eq!(t.slug, "acme");
    assert_eq!(t.status, "active");
    assert_eq!(t.plan, "pro");
    assert_eq!(ctx.tenant_id(), t.id);
    assert_eq!(ctx.role(), MemberRole::Owner);
    assert_eq!(ctx.user_id(), Some(owner));
    assert_eq!(
        env.svc.member_context(t.id, owner).await?.role(),
        MemberRole::Owner
    );
    assert_eq!(
        superadmin_audits(&env.su, "tenant.provision", Some(t.id)).await?,
        1
    );

    for (bad, field) in [
        (
            NewTenant {
                slug: "Acme".into(),
                ..new_tenant("x")
            },
            "slug",
        ),
        (
            NewTenant {
                slug: "-acme".into(),
                ..new_tenant("x")
            },
            "slug",
        ),
        (
            NewTenant {
                slug: "a".into(),
                ..new_tenant("x")
            },
            "slug",
        ),
        (
            NewTenant {
                plan: "gold".into(),
                ..new_tenant("ok-slug")
            },
            "plan",
        ),
        (
            NewTenant {
                name: " ".into(),
                ..new_tenant("ok-slug")
            },
            "name",
        ),
        (
            NewTenant {
                region: "EU".into(),
                ..new_tenant("ok-slug")
            },
            "region",
        ),
        (
            NewTenant {
                admin_email: Some("nope".into()),
                ..new_tenant("ok-slug")
            },
            "email",
        ),
    ] {
        let sa = env.svc.superadmin(grant("tenant.provision", None)).await?;
        assert_invalid(sa.provision_tenant(bad, owner).await, field);
    }
    let sa = env.svc.superadmin(grant("tenant.provision", None)).await?;
    assert_conflict(sa.provision_tenant(new_tenant("acme"), owner).await);
    drop(sa);
    let sa = env.svc.superadmin(grant("tenant.provision", None)).await?;
    assert_not_found(
        sa.provision_tenant(new_tenant("ghost"), Uuid::new_v4())
            .await,
        "user",
    );
    drop(sa);
    // Nothing of the refused attempts was kept.
    assert_eq!(
        scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.tenants WHERE slug <> 'default'",
            []
        )
        .await?,
        1
    );

    // The slug type parses once and is well-formed for good.
    assert_eq!(
        "tech-startup".parse::<TenantSlug>()?.as_str(),
        "tech-startup"
    );
    assert!(TenantSlug::parse("tech_startup").is_err());
    Ok(())
}

#[tokio::test]
async fn members_read_their_tenant_and_admins_change_only_name_and_settings() -> anyhow::Result<()>
{
    let env = env().await?;
    let [a, b, c] = three_tenants(&env.svc).await?;
    let m = user(&env.svc, "m@one.test", "M").await?;
    let m_ctx = join(&env.svc, &a.ctx, m, MemberRole::Member).await?;

    let tx = env.svc.begin(&m_ctx).await?;
    assert_eq!(tenants::current(&tx).await?.id, a.id);
    assert_forbidden(tenants::update_current(&tx, Some("Hijacked".into()), None).await);
    drop(tx);

    let tx = env.svc.begin(&a.ctx).await?;
    assert_invalid(
        tenants::update_current(&tx, None, Some(serde_json::json!([1, 2]))).await,
        "settings",
    );
    drop(tx);
    let tx = env.svc.begin(&a.ctx).await?;
    let updated = tenants::update_current(
        &tx,
        Some("One, renamed".into()),
        Some(serde_json::json!({ "theme": "dark" })),
    )
    .await?;
    tx.commit().await?;
    assert_eq!(updated.name, "One, renamed");
    assert_eq!(updated.settings, serde_json::json!({ "theme": "dark" }));
    assert_eq!(updated.status, "active");
    assert_eq!(tenant_audits(&env.su, a.id, "tenant.update").await?, 1);

    // Only the own tenant changed.
    for other in [&b, &c] {
        let tx = env.svc.begin(&other.ctx).await?;
        let t = tenants::current(&tx).await?;
        assert!(t.name.starts_with("Tenant "), "{}", t.name);
        assert_eq!(t.settings, serde_json::json!({}));
    }
    // The app role itself cannot change a tenant's status, even its own.
    let tx = env.svc.begin(&a.ctx).await?;
    let err = sea_orm::ConnectionTrait::execute_raw(
        tx.conn(),
        stmt(
            "UPDATE tenancy.tenants SET status = 'active', plan = 'enterprise' WHERE id = $1",
            [Value::from(a.id)],
        ),
    )
    .await
    .expect_err("the app has no UPDATE on tenants");
    let err = ServiceError::from(err);
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn superadmin_lists_suspends_and_reactivates_tenants() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, b, c] = three_tenants(&env.svc).await?;
    let sa = env.svc.superadmin(grant("tenant.list", None)).await?;
    let listed = sa.list_tenants().await?;
    sa.commit().await?;
    let slugs: Vec<&str> = listed.iter().map(|t| t.slug.as_str()).collect();
    assert_eq!(slugs, ["default", "one", "two", "three"]);

    let sa = env
        .svc
        .superadmin(grant("tenant.suspend", Some(b.id)))
        .await?;
    let t = sa.set_tenant_status(b.id, TenantStatus::Suspended).await?;
    assert_eq!(t.status, "suspended");
    assert_not_found(
        sa.set_tenant_status(Uuid::new_v4(), TenantStatus::Active)
            .await,
        "tenant",
    );
    drop(sa); // rolled back: b is still active
    env.svc.member_context(b.id, b.owner).await?;

    let sa = env
        .svc
        .superadmin(grant("tenant.suspend", Some(b.id)))
        .await?;
    sa.set_tenant_status(b.id, TenantStatus::Suspended).await?;
    sa.commit().await?;
    assert_unauthenticated(
        env.svc.member_context(b.id, b.owner).await,
        "tenant not active",
    );
    for ok in [&a, &c] {
        env.svc.member_context(ok.id, ok.owner).await?;
    }
    assert_eq!(
        superadmin_audits(&env.su, "tenant.set_status", Some(b.id)).await?,
        1
    );

    let sa = env
        .svc
        .superadmin(grant("tenant.reactivate", Some(b.id)))
        .await?;
    sa.set_tenant_status(b.id, TenantStatus::Active).await?;
    sa.commit().await?;
    env.svc.member_context(b.id, b.owner).await?;
    assert_eq!(TenantStatus::parse("cancelled")?, TenantStatus::Cancelled);
    assert!(!TenantStatus::Cancelled.allows_use());
    Ok(())
}

/// Fills every tenant table of a tenant with a few rows, through the service.
async fn fill(env: &Env, t: &T, n: usize) -> anyhow::Result<()> {
    let member = user(&env.svc, &format!("member{n}@fill.test"), "Member").await?;
    join(&env.svc, &t.ctx, member, MemberRole::Member).await?;
    let tx = env.svc.begin(&t.ctx).await?;
    for p in 0..2 {
        let project = insert_project(&tx, &format!("project {p}")).await?;
        tx.insert(documents::ActiveModel {
            id: Set(Uuid::new_v4()),
            project_id: Set(project),
            title: Set("doc".into()),
            ..Default::default()
        })
        .await?;
        tx.insert(tasks::ActiveModel {
            id: Set(Uuid::new_v4()),
            project_id: Set(project),
            title: Set("task".into()),
            assignee_id: Set(Some(member)),
            ..Default::default()
        })
        .await?;
    }
    let key = api_keys::issue(
        &tx,
        NewApiKey {
            name: "k".into(),
            scopes: vec!["write".into()],
            expires_at: None,
            rate_limit_per_minute: None,
            monthly_quota: None,
        },
    )
    .await?;
    let role = permissions::create_role(&tx, "ops", &[("agents".into(), "run".into())]).await?;
    permissions::assign_role(&tx, member, role).await?;
    tx.commit().await?;
    // Usage through the key, so usage rows reference the key.
    let p = env.svc.authenticate_api_key(&key.secret).await?;
    let tx = env.svc.begin(&p.context).await?;
    usage::record(&tx, UsageEventInput::new("request", 3)).await?;
    usage::record(&tx, UsageEventInput::new("request", 4)).await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn offboarding_exports_then_purges_one_tenant_and_leaves_the_others() -> anyhow::Result<()> {
    let env = env().await?;
    let tenants = three_tenants(&env.svc).await?;
    for (n, t) in tenants.iter().enumerate() {
        fill(&env, t, n).await?;
    }
    let [a, b, c] = &tenants;
    let before = census(&env.su).await?;
    let of = |census: &BTreeMap<String, i64>, tenant: Uuid| -> BTreeMap<String, i64> {
        census
            .iter()
            .filter(|(k, _)| k.ends_with(&format!("/{tenant}")))
            .map(|(k, v)| (k.split('/').next().unwrap_or_default().to_owned(), *v))
            .collect()
    };
    let b_before = of(&before, b.id);
    // Every tenant table holds rows of b (the fixture covers them all).
    let tables = migration::audit::tenant_tables(&env.su).await?;
    for (schema, table) in &tables {
        assert!(
            b_before
                .get(&format!("{schema}.{table}"))
                .copied()
                .unwrap_or(0)
                > 0,
            "{schema}.{table} has no rows of the tenant to offboard"
        );
    }

    // Rolled back: nothing happens (but the export was written).
    let mut scratch = Vec::new();
    let sa = env
        .svc
        .superadmin(grant("tenant.offboard", Some(b.id)))
        .await?;
    sa.offboard(b.id, &mut scratch).await?;
    drop(sa);
    assert_eq!(census(&env.su).await?, before);

    let mut export = Vec::new();
    let sa = env
        .svc
        .superadmin(grant("tenant.offboard", Some(b.id)))
        .await?;
    let report = sa.offboard(b.id, &mut export).await?;
    sa.commit().await?;

    // The export: JSON lines, every row of b, each naming its table, nothing of a or c.
    let mut exported: BTreeMap<String, i64> = BTreeMap::new();
    let text = String::from_utf8(export)?;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let table = v["table"].as_str().expect("a table name").to_owned();
        let row = &v["row"];
        let owner = if table == "tenancy.tenants" {
            &row["id"]
        } else {
            &row["tenant_id"]
        };
        assert_eq!(owner.as_str(), Some(b.id.to_string().as_str()), "{line}");
        *exported.entry(table).or_default() += 1;
    }
    assert_eq!(exported.remove("tenancy.tenants"), Some(1));
    assert_eq!(exported, b_before, "the export holds exactly b's rows");
    let reported: BTreeMap<String, i64> = report
        .exported
        .iter()
        .filter(|(t, _)| t != "tenancy.tenants")
        .map(|(t, n)| (t.clone(), i64::try_from(*n).unwrap_or(-1)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(reported, b_before);
    // Parents were exported before their children.
    let pos = |name: &str| report.exported.iter().position(|(t, _)| t == name);
    assert!(pos("public.projects") < pos("public.documents"));
    assert!(pos("tenancy.api_keys") < pos("tenancy.usage_events"));
    assert!(pos("tenancy.tenant_users") < pos("tenancy.member_roles"));
    assert_eq!(
        report.purged.last(),
        Some(&("tenancy.tenants".to_owned(), 1))
    );

    // The purge: b is gone everywhere, a and c are exactly as they were.
    let after = census(&env.su).await?;
    assert!(of(&after, b.id).is_empty(), "{:?}", of(&after, b.id));
    for t in [a, c] {
        assert_eq!(of(&after, t.id), of(&before, t.id));
    }
    assert_eq!(
        scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.tenants WHERE id = $1",
            [b.id.into()]
        )
        .await?,
        0
    );
    // Users stay (they are global); the superadmin trail keeps the offboarding.
    assert_eq!(
        scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.users WHERE id = $1",
            [b.owner.into()]
        )
        .await?,
        1
    );
    // Two rows: the grant that opened the escape, and the operation with what it did.
    assert_eq!(
        superadmin_audits(&env.su, "tenant.offboard", Some(b.id)).await?,
        2
    );
    assert_eq!(
        scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.superadmin_audit_logs WHERE action = 'tenant.offboard' \
             AND scope_tenant_id = $1 AND details ? 'purged' AND details ? 'exported'",
            [b.id.into()],
        )
        .await?,
        1
    );
    assert_forbidden(env.svc.member_context(b.id, b.owner).await);

    // Unknown tenants and the default tenant are refused.
    let sa = env.svc.superadmin(grant("tenant.offboard", None)).await?;
    assert_not_found(sa.offboard(b.id, &mut Vec::new()).await, "tenant");
    drop(sa);
    let sa = env.svc.superadmin(grant("tenant.offboard", None)).await?;
    let default = Uuid::parse_str(migration::names::DEFAULT_TENANT_ID)?;
    assert_conflict(sa.offboard(default, &mut Vec::new()).await);
    Ok(())
}

#[tokio::test]
async fn background_jobs_run_in_their_own_tenant_transaction() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, b, _] = three_tenants(&env.svc).await?;
    let handle = env
        .svc
        .spawn_for_tenant(&a.ctx, "import", async |tx: &service::TenantTx| {
            let id = insert_project(tx, "imported").await?;
            service::audit::record(
                tx,
                "import.done",
                Some("project"),
                Some(id.to_string()),
                serde_json::json!({}),
            )
            .await?;
            Ok(id)
        });
    let id = handle.await??;
    assert_eq!(
        scalar(
            &env.su,
            "SELECT count(*) FROM public.projects WHERE id = $1 AND tenant_id = $2",
            [id.into(), a.id.into()],
        )
        .await?,
        1
    );
    // The trail names the job, not a user.
    assert_eq!(
        scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.audit_logs WHERE tenant_id = $1 AND action = 'import.done' \
             AND details->>'job' = 'import' AND actor_user_id IS NULL",
            [a.id.into()],
        )
        .await?,
        1
    );

    // A failing job is rolled back.
    let handle = env
        .svc
        .spawn_for_tenant(&b.ctx, "fails", async |tx: &service::TenantTx| {
            insert_project(tx, "half done").await?;
            Err::<(), _>(ServiceError::Conflict("stop".into()))
        });
    assert!(matches!(handle.await?, Err(ServiceError::Conflict(_))));
    assert_eq!(
        scalar(
            &env.su,
            "SELECT count(*) FROM public.projects WHERE tenant_id = $1",
            [b.id.into()]
        )
        .await?,
        0
    );

    // Many at once, each sees only its own tenant.
    let mut handles = Vec::new();
    for t in [&a, &b] {
        for _ in 0..4 {
            let expect = t.id;
            handles.push(env.svc.spawn_for_tenant(
                &t.ctx,
                "count",
                async move |tx: &service::TenantTx| {
                    let rows: Vec<entity::projects::Model> = tx
                        .list::<entity::projects::Entity>(
                            service::tx::all(),
                            vec![],
                            service::Page::default(),
                        )
                        .await?;
                    Ok(rows.iter().all(|p| p.tenant_id == expect))
                },
            ));
        }
    }
    for h in handles {
        assert!(h.await??);
    }
    Ok(())
}

#[tokio::test]
async fn the_audit_trail_lists_the_tenants_own_entries_for_admins_only() -> anyhow::Result<()> {
    let env = env().await?;
    let tenants = three_tenants(&env.svc).await?;
    for (n, t) in tenants.iter().enumerate() {
        let tx = env.svc.begin(&t.ctx).await?;
        for i in 0..=n {
            service::audit::record(
                &tx,
                "report.export",
                Some("report"),
                Some(format!("r{i}")),
                serde_json::json!({ "n": i }),
            )
            .await?;
        }
        assert_invalid(
            service::audit::record(&tx, " ", None, None, serde_json::json!({})).await,
            "action",
        );
        drop(tx);
        let tx = env.svc.begin(&t.ctx).await?;
        for i in 0..=n {
            service::audit::record(
                &tx,
                "report.export",
                None,
                Some(format!("r{i}")),
                serde_json::Value::Null,
            )
            .await?;
        }
        tx.commit().await?;
    }
    for (n, t) in tenants.iter().enumerate() {
        let viewer = user(&env.svc, &format!("viewer{n}@audit.test"), "Viewer").await?;
        let v_ctx = join(&env.svc, &t.ctx, viewer, MemberRole::Viewer).await?;
        let tx = env.svc.begin(&t.ctx).await?;
        let entries = service::audit::list(
            &tx,
            service::Page {
                limit: 100,
                offset: 0,
            },
        )
        .await?;
        // Newest first: the member.add of the viewer, then this tenant's exports.
        assert_eq!(entries[0].action, "member.add");
        let exports: Vec<_> = entries
            .iter()
            .filter(|e| e.action == "report.export")
            .collect();
        assert_eq!(exports.len(), n + 1, "tenant {n}");
        assert!(entries.iter().all(|e| e.tenant_id == t.id));
        assert!(exports.iter().all(|e| e.actor_user_id == Some(t.owner)));
        assert_invalid(
            service::audit::list(
                &tx,
                service::Page {
                    limit: 0,
                    offset: 0,
                },
            )
            .await,
            "limit",
        );
        drop(tx);
        // A viewer records (the trail is append-only) but cannot read it.
        let tx = env.svc.begin(&v_ctx).await?;
        service::audit::record(&tx, "viewer.signed_in", None, None, serde_json::json!({})).await?;
        assert_forbidden(service::audit::list(&tx, service::Page::default()).await);
        // Nor change it, even with raw SQL.
        let err = sea_orm::ConnectionTrait::execute_raw(
            tx.conn(),
            stmt("DELETE FROM tenancy.audit_logs", []),
        )
        .await
        .expect_err("the trail is append-only");
        assert!(matches!(
            ServiceError::from(err),
            ServiceError::Forbidden(_)
        ));
    }
    Ok(())
}
