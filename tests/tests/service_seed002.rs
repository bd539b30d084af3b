//! Seed 002's scenario through the service, against a real PostgreSQL, as the app login:
//! organizations Acme Corporation, Tech Startup Inc and Healthcare Co; users Alice (admin at
//! Acme), Bob (member at Acme), Charlie (admin at Tech Startup) and Diana (admin at Healthcare);
//! per-tenant RBAC roles with resource + action permissions; projects, documents and tasks per
//! tenant. Then seed 002's RLS test script, as assertions: Alice sees only Acme's data, Bob
//! cannot see Charlie's (by id: not found), a viewer cannot update, and a user in two tenants
//! sees each tenant's data only under that tenant's context.

mod service_support;

use std::collections::BTreeSet;

use entity::{documents, projects, tasks};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter};
use service::permissions::{self, has_permission};
use service::tx::all;
use service::{MemberRole, NewTenant, Page, TenantContext, Tenantry, members};
use service_support::*;
use uuid::Uuid;

struct Org {
    id: Uuid,
    projects: Vec<Uuid>,
    documents: Vec<Uuid>,
    tasks: Vec<Uuid>,
}

struct Seed {
    acme: Org,
    tech: Org,
    health: Org,
    alice: Uuid,
    bob: Uuid,
    charlie: Uuid,
    diana: Uuid,
}

fn perms(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(r, a)| ((*r).to_owned(), (*a).to_owned()))
        .collect()
}

/// Projects, documents and tasks of one organization, written by its admin.
async fn org_data(svc: &Tenantry, admin: &TenantContext, names: &[&str]) -> anyhow::Result<Org> {
    let tx = svc.begin(admin).await?;
    let (mut p, mut d, mut t) = (vec![], vec![], vec![]);
    for name in names {
        let project = insert_project(&tx, name).await?;
        p.push(project);
        d.push(
            tx.insert(documents::ActiveModel {
                id: Set(Uuid::new_v4()),
                project_id: Set(project),
                title: Set(format!("{name}: spec")),
                body: Set("confidential".into()),
                tags: Set(vec!["seed".into()]),
                ..Default::default()
            })
            .await?
            .id,
        );
        t.push(
            tx.insert(tasks::ActiveModel {
                id: Set(Uuid::new_v4()),
                project_id: Set(project),
                title: Set(format!("{name}: first task")),
                ..Default::default()
            })
            .await?
            .id,
        );
    }
    tx.commit().await?;
    Ok(Org {
        id: admin.tenant_id(),
        projects: p,
        documents: d,
        tasks: t,
    })
}

async fn seed(svc: &Tenantry) -> anyhow::Result<Seed> {
    // Users and organizations through the audited superadmin escape, in one transaction.
    let sa = svc.superadmin(grant("seed.002", None)).await?;
    let platform = sa
        .create_user("platform@tenantry.test", "Platform owner", None)
        .await?;
    let alice = sa
        .create_user("alice@acme.com", "Alice", Some("$argon2id$alice"))
        .await?;
    let bob = sa
        .create_user("bob@acme.com", "Bob", Some("$argon2id$bob"))
        .await?;
    let charlie = sa
        .create_user(
            "charlie@techstartup.io",
            "Charlie",
            Some("$argon2id$charlie"),
        )
        .await?;
    let diana = sa
        .create_user("diana@healthcare.com", "Diana", Some("$argon2id$diana"))
        .await?;
    let mut owners = Vec::new();
    for (name, slug, plan) in [
        ("Acme Corporation", "acme-corp", "enterprise"),
        ("Tech Startup Inc", "tech-startup", "pro"),
        ("Healthcare Co", "healthcare-co", "free"),
    ] {
        let (_, ctx) = sa
            .provision_tenant(
                NewTenant {
                    name: name.into(),
                    slug: slug.into(),
                    plan: plan.into(),
                    region: "us-east".into(),
                    admin_email: None,
                },
                platform,
            )
            .await?;
        owners.push(ctx);
    }
    sa.commit().await?;

    // Memberships and RBAC roles, by each organization's owner.
    let admins = [
        (alice, &owners[0]),
        (charlie, &owners[1]),
        (diana, &owners[2]),
    ];
    for (admin, owner) in admins {
        let tx = svc.begin(owner).await?;
        members::add(&tx, admin, MemberRole::Admin).await?;
        if admin == alice {
            members::add(&tx, bob, MemberRole::Member).await?;
        }
        let org_admin = permissions::create_role(&tx, "org_admin", &perms(&[("*", "*")])).await?;
        let org_member = permissions::create_role(
            &tx,
            "org_member",
            &perms(&[
                ("projects", "read"),
                ("projects", "write"),
                ("documents", "read"),
                ("documents", "write"),
                ("tasks", "read"),
                ("tasks", "write"),
            ]),
        )
        .await?;
        let agent_user = permissions::create_role(
            &tx,
            "agent_user",
            &perms(&[("agents", "run"), ("agents", "read")]),
        )
        .await?;
        permissions::assign_role(&tx, admin, org_admin).await?;
        if admin == alice {
            permissions::assign_role(&tx, bob, org_member).await?;
            permissions::assign_role(&tx, bob, agent_user).await?;
        }
        tx.commit().await?;
    }

    // Each organization's data, written by its admin (a context from member_context).
    let acme_admin = svc.member_context(owners[0].tenant_id(), alice).await?;
    let tech_admin = svc.member_context(owners[1].tenant_id(), charlie).await?;
    let health_admin = svc.member_context(owners[2].tenant_id(), diana).await?;
    let acme = org_data(svc, &acme_admin, &["Acme Website", "Acme Mobile"]).await?;
    let tech = org_data(svc, &tech_admin, &["AI Agent Platform"]).await?;
    let health = org_data(
        svc,
        &health_admin,
        &["Patient Portal", "Records", "Billing"],
    )
    .await?;
    Ok(Seed {
        acme,
        tech,
        health,
        alice,
        bob,
        charlie,
        diana,
    })
}

/// What a context sees of projects, documents and tasks (ids), through the service.
async fn visible(
    svc: &Tenantry,
    ctx: &TenantContext,
) -> anyhow::Result<(BTreeSet<Uuid>, BTreeSet<Uuid>, BTreeSet<Uuid>)> {
    let tx = svc.begin(ctx).await?;
    let p = tx
        .list::<projects::Entity>(all(), vec![], Page::default())
        .await?;
    let d = tx
        .list::<documents::Entity>(all(), vec![], Page::default())
        .await?;
    let t = tx
        .list::<tasks::Entity>(all(), vec![], Page::default())
        .await?;
    // Raw SQL on the same transaction is filtered by row level security too.
    let raw = tx
        .conn()
        .query_all_raw(stmt("SELECT id FROM public.projects", []))
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<Uuid>(0))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let p: BTreeSet<Uuid> = p.into_iter().map(|m| m.id).collect();
    assert_eq!(raw, p, "raw SQL and the scoped list disagree");
    Ok((
        p,
        d.into_iter().map(|m| m.id).collect(),
        t.into_iter().map(|m| m.id).collect(),
    ))
}

fn set(ids: &[Uuid]) -> BTreeSet<Uuid> {
    ids.iter().copied().collect()
}

#[tokio::test]
async fn seed_002_isolation_scenario() -> anyhow::Result<()> {
    let env = env().await?;
    let s = seed(&env.svc).await?;

    // Alice sees only Acme's data.
    let alice_acme = env.svc.member_context(s.acme.id, s.alice).await?;
    assert_eq!(alice_acme.role(), MemberRole::Admin);
    let (p, d, t) = visible(&env.svc, &alice_acme).await?;
    assert_eq!(p, set(&s.acme.projects));
    assert_eq!(d, set(&s.acme.documents));
    assert_eq!(t, set(&s.acme.tasks));
    // ... and cannot act in the others at all.
    for org in [&s.tech, &s.health] {
        assert_forbidden(env.svc.member_context(org.id, s.alice).await);
    }

    // Charlie and Diana likewise see only their own organization.
    let charlie = env.svc.member_context(s.tech.id, s.charlie).await?;
    assert_eq!(visible(&env.svc, &charlie).await?.0, set(&s.tech.projects));
    let diana = env.svc.member_context(s.health.id, s.diana).await?;
    assert_eq!(visible(&env.svc, &diana).await?.0, set(&s.health.projects));

    // Bob cannot see Charlie's data: by id it does not exist; changing it touches nothing.
    let bob = env.svc.member_context(s.acme.id, s.bob).await?;
    assert_eq!(bob.role(), MemberRole::Member);
    let charlies_project = s.tech.projects[0];
    let charlies_doc = s.tech.documents[0];
    let tx = env.svc.begin(&bob).await?;
    assert!(
        tx.find_by_id::<projects::Entity>(charlies_project)
            .await?
            .is_none()
    );
    assert_not_found(
        tx.get::<projects::Entity>("project", charlies_project)
            .await,
        "project",
    );
    assert_not_found(
        tx.get::<documents::Entity>("document", charlies_doc).await,
        "document",
    );
    assert!(
        !tx.delete_by_id::<projects::Entity>(charlies_project)
            .await?
    );
    let touched = tx
        .update_many::<projects::Entity>()?
        .col_expr(
            projects::Column::Name,
            sea_orm::sea_query::Expr::value("pwned"),
        )
        .filter(projects::Column::Id.eq(charlies_project))
        .exec(tx.conn())
        .await?;
    assert_eq!(touched.rows_affected, 0);
    // A row naming Charlie's tenant is refused outright.
    let foreign = projects::ActiveModel {
        tenant_id: Set(s.tech.id),
        id: Set(Uuid::new_v4()),
        name: Set("planted".into()),
        ..Default::default()
    };
    assert_forbidden(tx.insert(foreign).await);
    drop(tx);
    // Bob's member rights: writes in Acme work, and his custom roles add agents.
    let tx = env.svc.begin(&bob).await?;
    insert_project(&tx, "Bob's project").await?;
    assert!(has_permission(&tx, "agents", "run").await?);
    assert!(has_permission(&tx, "documents", "write").await?);
    assert!(!has_permission(&tx, "members", "manage").await?);
    assert_forbidden(members::add(&tx, s.diana, MemberRole::Viewer).await);
    tx.commit().await?;
    let still = env
        .su
        .query_one_raw(stmt(
            "SELECT name FROM public.projects WHERE id = $1",
            [charlies_project.into()],
        ))
        .await?
        .expect("Charlie's project is still there");
    assert_eq!(still.try_get_by_index::<String>(0)?, "AI Agent Platform");

    // A user in two tenants: Charlie adds Alice to Tech Startup as a viewer.
    let tx = env.svc.begin(&charlie).await?;
    let added = members::add_by_email(&tx, "ALICE@acme.com", MemberRole::Viewer).await?;
    assert_eq!(added.user_id, s.alice);
    tx.commit().await?;
    let alice_tech = env.svc.member_context(s.tech.id, s.alice).await?;
    assert_eq!(alice_tech.role(), MemberRole::Viewer);
    // Each tenant's data only under that tenant's context.
    let (p, d, t) = visible(&env.svc, &alice_tech).await?;
    assert_eq!(p, set(&s.tech.projects));
    assert_eq!(d, set(&s.tech.documents));
    assert_eq!(t, set(&s.tech.tasks));
    let (p, ..) = visible(&env.svc, &alice_acme).await?;
    assert!(p.is_superset(&set(&s.acme.projects)));
    assert!(p.is_disjoint(&set(&s.tech.projects)));
    assert!(env.svc.member_context(s.health.id, s.alice).await.is_err());

    // A viewer cannot update (nor insert, nor delete) — and nothing changed.
    let tx = env.svc.begin(&alice_tech).await?;
    let mut row: projects::ActiveModel = tx
        .get::<projects::Entity>("project", charlies_project)
        .await?
        .into();
    row.name = Set("renamed by a viewer".into());
    assert_forbidden(tx.update(row).await);
    assert_forbidden(insert_project(&tx, "viewer's").await);
    assert_forbidden(tx.delete_by_id::<projects::Entity>(charlies_project).await);
    assert!(!has_permission(&tx, "agents", "run").await?);
    assert!(has_permission(&tx, "projects", "read").await?);
    drop(tx);
    // Even around the service's checks, row level security and grants hold the line for
    // what the context is (the tenant), and the service holds the line for the role.
    let tx = env.svc.begin(&alice_tech).await?;
    let acme_row = tx
        .find_by_id::<projects::Entity>(s.acme.projects[0])
        .await?;
    assert!(
        acme_row.is_none(),
        "Acme's project visible under Tech's context"
    );
    drop(tx);
    // Alice's Acme context is an admin there, with the org_admin role's wildcard.
    let tx = env.svc.begin(&alice_acme).await?;
    assert!(has_permission(&tx, "agents", "run").await?);
    let mut mine: projects::ActiveModel = tx
        .get::<projects::Entity>("project", s.acme.projects[0])
        .await?
        .into();
    mine.name = Set("Acme Website v2".into());
    let updated = tx.update(mine).await?;
    assert_eq!(updated.name, "Acme Website v2");
    tx.commit().await?;
    assert_eq!(
        scalar(
            &env.su,
            "SELECT count(*) FROM public.projects WHERE name = 'renamed by a viewer'",
            [],
        )
        .await?,
        0
    );

    // Everything was audited where it happened.
    for (org, adds) in [(&s.acme, 2), (&s.tech, 2), (&s.health, 1)] {
        assert_eq!(tenant_audits(&env.su, org.id, "member.add").await?, adds);
        assert_eq!(tenant_audits(&env.su, org.id, "role.create").await?, 3);
    }
    assert_eq!(
        superadmin_audits(&env.su, "tenant.provision", None).await?,
        3
    );
    Ok(())
}
