//! Members and custom roles against a real PostgreSQL, as the app login, with three tenants:
//! adding (by id and by address), changing roles and removing members; the owner rules (only
//! owners touch owners, a tenant keeps at least one owner, also when two owners demote each
//! other at the same moment); custom roles and `has_permission`; and cross-tenant ids (a
//! member, a role of another tenant) are `NotFound` and change nothing.

mod service_support;

use service::members;
use service::permissions::{self, has_permission};
use service::{MemberRole, ServiceError};
use service_support::*;
use uuid::Uuid;

fn perms(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(r, a)| ((*r).to_owned(), (*a).to_owned()))
        .collect()
}

#[tokio::test]
async fn admins_add_list_and_remove_members_of_their_own_tenant() -> anyhow::Result<()> {
    let env = env().await?;
    let tenants = three_tenants(&env.svc).await?;
    for (n, t) in tenants.iter().enumerate() {
        let ann = user(&env.svc, &format!("ann{n}@example.com"), "Ann").await?;
        let ben = user(&env.svc, &format!("Ben{n}@Example.com"), "Ben").await?;
        let tx = env.svc.begin(&t.ctx).await?;
        let added = members::add(&tx, ann, MemberRole::Admin).await?;
        assert_eq!(added.user_id, ann);
        assert_eq!(added.role, MemberRole::Admin);
        assert_eq!(added.email, format!("ann{n}@example.com"));
        // By address, whatever its case.
        let by_email =
            members::add_by_email(&tx, &format!("ben{n}@EXAMPLE.com"), MemberRole::Viewer).await?;
        assert_eq!(by_email.user_id, ben);
        assert_conflict(members::add(&tx, ann, MemberRole::Member).await);
        tx.commit().await?;

        let tx = env.svc.begin(&t.ctx).await?;
        let listed = members::list(&tx).await?;
        // The owner joined first; Ann and Ben in one transaction (ties go by user id).
        let mut ids: Vec<Uuid> = listed.iter().map(|m| m.user_id).collect();
        assert_eq!(ids[0], t.owner);
        ids[1..].sort();
        let mut expected = vec![ann, ben];
        expected.sort();
        assert_eq!(ids[1..], expected, "tenant {n} lists only its members");
        assert_not_found(
            members::add_by_email(&tx, "nobody@example.com", MemberRole::Member).await,
            "user",
        );
        drop(tx);
        let tx = env.svc.begin(&t.ctx).await?;
        assert_not_found(
            members::add(&tx, Uuid::new_v4(), MemberRole::Member).await,
            "user",
        );
        drop(tx);

        // The new admin may manage members too, and removes the viewer.
        let ann_ctx = env.svc.member_context(t.id, ann).await?;
        let tx = env.svc.begin(&ann_ctx).await?;
        members::remove(&tx, ben).await?;
        assert_not_found(members::remove(&tx, ben).await, "member");
        tx.commit().await?;
        assert_forbidden(env.svc.member_context(t.id, ben).await);
        for action in ["member.add", "member.remove"] {
            assert!(tenant_audits(&env.su, t.id, action).await? >= 1, "{action}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn members_and_viewers_cannot_change_anything() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    let m = user(&env.svc, "m@one.test", "M").await?;
    let v = user(&env.svc, "v@one.test", "V").await?;
    let other = user(&env.svc, "o@one.test", "O").await?;
    let m_ctx = join(&env.svc, &a.ctx, m, MemberRole::Member).await?;
    let v_ctx = join(&env.svc, &a.ctx, v, MemberRole::Viewer).await?;
    let before = census(&env.su).await?;

    for ctx in [&m_ctx, &v_ctx] {
        let tx = env.svc.begin(ctx).await?;
        assert_forbidden(members::add(&tx, other, MemberRole::Viewer).await);
        assert_forbidden(members::add_by_email(&tx, "o@one.test", MemberRole::Viewer).await);
        assert_forbidden(members::change_role(&tx, v, MemberRole::Admin).await);
        assert_forbidden(members::remove(&tx, v).await);
        assert_forbidden(permissions::create_role(&tx, "x", &[]).await);
        // Reading is fine.
        assert_eq!(members::list(&tx).await?.len(), 3);
    }
    // A viewer cannot write data either.
    let tx = env.svc.begin(&v_ctx).await?;
    assert_forbidden(insert_project(&tx, "nope").await);
    drop(tx);
    assert_eq!(census(&env.su).await?, before);
    Ok(())
}

#[tokio::test]
async fn only_owners_touch_owners_and_the_last_owner_stays() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, b, c] = three_tenants(&env.svc).await?;
    for t in [&a, &b, &c] {
        // The only owner cannot leave or step down.
        let tx = env.svc.begin(&t.ctx).await?;
        assert_conflict(members::change_role(&tx, t.owner, MemberRole::Admin).await);
        drop(tx);
        let tx = env.svc.begin(&t.ctx).await?;
        assert_conflict(members::remove(&tx, t.owner).await);
        drop(tx);
    }

    let admin = user(&env.svc, "admin@one.test", "Admin").await?;
    let second = user(&env.svc, "second@one.test", "Second").await?;
    let admin_ctx = join(&env.svc, &a.ctx, admin, MemberRole::Admin).await?;
    // An admin may not make owners, nor demote or remove one.
    let tx = env.svc.begin(&admin_ctx).await?;
    assert_forbidden(members::add(&tx, second, MemberRole::Owner).await);
    drop(tx);
    let tx = env.svc.begin(&admin_ctx).await?;
    assert_forbidden(members::change_role(&tx, a.owner, MemberRole::Member).await);
    drop(tx);
    let tx = env.svc.begin(&admin_ctx).await?;
    assert_forbidden(members::change_role(&tx, admin, MemberRole::Owner).await);
    drop(tx);
    let tx = env.svc.begin(&admin_ctx).await?;
    assert_forbidden(members::remove(&tx, a.owner).await);
    drop(tx);

    // An owner may; with two owners one can step down, then the other is the last.
    let tx = env.svc.begin(&a.ctx).await?;
    members::add(&tx, second, MemberRole::Owner).await?;
    let changed = members::change_role(&tx, a.owner, MemberRole::Admin).await?;
    assert_eq!(changed.role, MemberRole::Admin);
    tx.commit().await?;
    let second_ctx = env.svc.member_context(a.id, second).await?;
    let tx = env.svc.begin(&second_ctx).await?;
    assert_conflict(members::remove(&tx, second).await);
    drop(tx);
    assert_eq!(
        scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.tenant_users WHERE tenant_id = $1 AND role = 'owner'",
            [a.id.into()],
        )
        .await?,
        1
    );
    Ok(())
}

/// Two owners demote each other at the same moment: the owner rows are locked before counting,
/// so the second change waits for the first, sees one owner left and is refused.
#[tokio::test]
async fn two_owners_demoting_each_other_concurrently_leave_one_owner() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    let second = user(&env.svc, "second@one.test", "Second").await?;
    join(&env.svc, &a.ctx, second, MemberRole::Owner).await?;
    let second_ctx = env.svc.member_context(a.id, second).await?;

    // Deterministic interleaving: tx1 demotes `second` and holds its locks; tx2 tries to
    // demote the first owner and must wait; tx1 commits; tx2 then sees one owner and refuses.
    let tx1 = env.svc.begin(&a.ctx).await?;
    let tx2 = env.svc.begin(&second_ctx).await?;
    members::change_role(&tx1, second, MemberRole::Admin).await?;
    let (second_result, ()) = tokio::join!(
        members::change_role(&tx2, a.owner, MemberRole::Admin),
        async {
            until_a_session_waits_on_a_lock(&env.su)
                .await
                .expect("a waiting session");
            tx1.commit().await.expect("commit tx1");
        }
    );
    assert!(
        matches!(second_result, Err(ServiceError::Conflict(_))),
        "{second_result:?}"
    );
    drop(tx2);

    // And racing freely, many times: never zero owners.
    let third = user(&env.svc, "third@one.test", "Third").await?;
    for round in 0..10 {
        let (x, y) = if round % 2 == 0 {
            (a.owner, third)
        } else {
            (third, a.owner)
        };
        // Make both owners again.
        let tx = env.svc.begin(&a.ctx).await?;
        if members::get(&tx, third).await?.is_none() {
            members::add(&tx, third, MemberRole::Owner).await?;
        }
        tx.commit().await?;
        let sa = env.svc.superadmin(grant("test.reset", Some(a.id))).await?;
        sea_orm::ConnectionTrait::execute_raw(
            sa.conn(),
            stmt(
                "UPDATE tenancy.tenant_users SET role = 'owner' WHERE tenant_id = $1 AND user_id IN ($2, $3)",
                [a.id.into(), x.into(), y.into()],
            ),
        )
        .await?;
        sa.commit().await?;
        let x_ctx = env.svc.member_context(a.id, x).await?;
        let y_ctx = env.svc.member_context(a.id, y).await?;
        let svc1 = env.svc.clone();
        let svc2 = env.svc.clone();
        let h1 = tokio::spawn(async move {
            let tx = svc1.begin(&x_ctx).await?;
            members::change_role(&tx, y, MemberRole::Member).await?;
            tx.commit().await
        });
        let h2 = tokio::spawn(async move {
            let tx = svc2.begin(&y_ctx).await?;
            members::change_role(&tx, x, MemberRole::Member).await?;
            tx.commit().await
        });
        let (r1, r2) = (h1.await?, h2.await?);
        assert!(
            r1.is_ok() != r2.is_ok(),
            "round {round}: exactly one demotion wins: {r1:?} / {r2:?}"
        );
        let owners = scalar(
            &env.su,
            "SELECT count(*) FROM tenancy.tenant_users WHERE tenant_id = $1 AND role = 'owner'",
            [a.id.into()],
        )
        .await?;
        assert!(owners >= 1, "round {round}: no owner left");
    }
    Ok(())
}

#[tokio::test]
async fn another_tenants_member_and_role_ids_are_not_found_and_nothing_changes()
-> anyhow::Result<()> {
    let env = env().await?;
    let [a, b, c] = three_tenants(&env.svc).await?;
    let alice = user(&env.svc, "alice@one.test", "Alice").await?;
    join(&env.svc, &a.ctx, alice, MemberRole::Member).await?;
    let tx = env.svc.begin(&a.ctx).await?;
    let a_role = permissions::create_role(&tx, "billing", &perms(&[("invoices", "read")])).await?;
    tx.commit().await?;
    let before = census(&env.su).await?;

    for other in [&b, &c] {
        let tx = env.svc.begin(&other.ctx).await?;
        assert_not_found(
            members::change_role(&tx, alice, MemberRole::Viewer).await,
            "member",
        );
        drop(tx);
        let tx = env.svc.begin(&other.ctx).await?;
        assert_not_found(members::remove(&tx, alice).await, "member");
        drop(tx);
        let tx = env.svc.begin(&other.ctx).await?;
        assert_not_found(
            members::change_role(&tx, a.owner, MemberRole::Viewer).await,
            "member",
        );
        drop(tx);
        // A's role id, even for B's own owner: not found.
        let tx = env.svc.begin(&other.ctx).await?;
        assert_not_found(
            permissions::assign_role(&tx, other.owner, a_role).await,
            "role",
        );
        drop(tx);
        let tx = env.svc.begin(&other.ctx).await?;
        assert!(members::get(&tx, alice).await?.is_none());
        assert!(permissions::list_roles(&tx).await?.is_empty());
    }
    assert_eq!(
        census(&env.su).await?,
        before,
        "a refused change changed rows"
    );
    let alice_ctx = env.svc.member_context(a.id, alice).await?;
    assert_eq!(alice_ctx.role(), MemberRole::Member);
    Ok(())
}

#[tokio::test]
async fn custom_roles_grant_permissions_on_top_of_membership_roles() -> anyhow::Result<()> {
    let env = env().await?;
    let tenants = three_tenants(&env.svc).await?;
    for (n, t) in tenants.iter().enumerate() {
        let member = user(&env.svc, &format!("m{n}@x.test"), "M").await?;
        let viewer = user(&env.svc, &format!("v{n}@x.test"), "V").await?;
        let stranger = user(&env.svc, &format!("s{n}@x.test"), "S").await?;
        let m_ctx = join(&env.svc, &t.ctx, member, MemberRole::Member).await?;
        let v_ctx = join(&env.svc, &t.ctx, viewer, MemberRole::Viewer).await?;

        let tx = env.svc.begin(&t.ctx).await?;
        let agent = permissions::create_role(
            &tx,
            "agent_user",
            &perms(&[("agents", "run"), ("agents", "run"), ("reports", "*")]),
        )
        .await?;
        let auditor = permissions::create_role(&tx, "auditor", &perms(&[("*", "export")])).await?;
        assert_conflict(permissions::create_role(&tx, "agent_user", &[]).await);
        tx.commit().await?;
        let tx = env.svc.begin(&t.ctx).await?;
        assert_invalid(
            permissions::create_role(&tx, "bad", &perms(&[("Agents", "run")])).await,
            "permissions",
        );
        assert_invalid(permissions::create_role(&tx, "  ", &[]).await, "name");
        assert_not_found(
            permissions::assign_role(&tx, stranger, agent).await,
            "member",
        );
        drop(tx);

        // Before: the built-in rules only.
        let check = async |ctx: &service::TenantContext,
                           resource: &str,
                           action: &str|
               -> anyhow::Result<bool> {
            let tx = env.svc.begin(ctx).await?;
            Ok(has_permission(&tx, resource, action).await?)
        };
        assert!(check(&t.ctx, "anything", "manage").await?);
        assert!(check(&m_ctx, "projects", "write").await?);
        assert!(!check(&m_ctx, "agents", "run").await?);
        assert!(check(&v_ctx, "projects", "read").await?);
        assert!(!check(&v_ctx, "projects", "write").await?);
        assert!(!check(&v_ctx, "reports", "export").await?);

        let tx = env.svc.begin(&t.ctx).await?;
        permissions::assign_role(&tx, member, agent).await?;
        permissions::assign_role(&tx, member, agent).await?; // idempotent
        permissions::assign_role(&tx, viewer, auditor).await?;
        tx.commit().await?;
        assert!(check(&m_ctx, "agents", "run").await?);
        assert!(check(&m_ctx, "reports", "delete").await?);
        assert!(!check(&m_ctx, "agents", "delete").await?);
        assert!(check(&v_ctx, "projects", "export").await?);
        assert!(!check(&v_ctx, "projects", "write").await?);

        let tx = env.svc.begin(&t.ctx).await?;
        let roles = permissions::list_roles(&tx).await?;
        assert_eq!(
            roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["agent_user", "auditor"]
        );
        assert_eq!(
            roles[0].permissions,
            perms(&[("agents", "run"), ("reports", "*")])
        );
        // Removing the member removes their assignments with them.
        members::remove(&tx, member).await?;
        tx.commit().await?;
        assert_eq!(
            scalar(
                &env.su,
                "SELECT count(*) FROM tenancy.member_roles WHERE tenant_id = $1 AND user_id = $2",
                [t.id.into(), member.into()],
            )
            .await?,
            0
        );
        assert_eq!(tenant_audits(&env.su, t.id, "role.create").await?, 2);
        assert_eq!(tenant_audits(&env.su, t.id, "role.assign").await?, 3);
    }

    // A role of tenant one does nothing in tenant two, even for a member of both.
    let [one, two, _] = &tenants;
    let both = user(&env.svc, "both@x.test", "Both").await?;
    join(&env.svc, &one.ctx, both, MemberRole::Viewer).await?;
    let both_two = join(&env.svc, &two.ctx, both, MemberRole::Viewer).await?;
    let tx = env.svc.begin(&one.ctx).await?;
    let wide = permissions::create_role(&tx, "wide", &perms(&[("*", "*")])).await?;
    permissions::assign_role(&tx, both, wide).await?;
    tx.commit().await?;
    let both_one = env.svc.member_context(one.id, both).await?;
    let tx = env.svc.begin(&both_one).await?;
    assert!(has_permission(&tx, "projects", "delete").await?);
    drop(tx);
    let tx = env.svc.begin(&both_two).await?;
    assert!(!has_permission(&tx, "projects", "delete").await?);
    assert_invalid(has_permission(&tx, "Projects", "read").await, "permission");
    Ok(())
}

#[tokio::test]
async fn api_keys_are_judged_by_the_role_their_scopes_give() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    let tx = env.svc.begin(&a.ctx).await?;
    let reader = service::api_keys::issue(
        &tx,
        service::NewApiKey {
            name: "reader".into(),
            scopes: vec!["read".into()],
            expires_at: None,
            rate_limit_per_minute: None,
            monthly_quota: None,
        },
    )
    .await?;
    tx.commit().await?;
    let p = env.svc.authenticate_api_key(&reader.secret).await?;
    let tx = env.svc.begin(&p.context).await?;
    assert!(has_permission(&tx, "projects", "read").await?);
    assert!(!has_permission(&tx, "projects", "write").await?);
    assert_forbidden(insert_project(&tx, "nope").await);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Keys of members who leave or lose their role
// ---------------------------------------------------------------------------------------------

fn key(name: &str, scopes: &[&str]) -> service::NewApiKey {
    service::NewApiKey {
        name: name.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        expires_at: None,
        rate_limit_per_minute: None,
        monthly_quota: None,
    }
}

/// Issues `new` as `ctx` (committed); returns the key's id and secret.
async fn issue_as(
    svc: &service::Tenantry,
    ctx: &service::TenantContext,
    new: service::NewApiKey,
) -> anyhow::Result<(Uuid, String)> {
    let tx = svc.begin(ctx).await?;
    let issued = service::api_keys::issue(&tx, new).await?;
    tx.commit().await?;
    Ok((issued.key.id, issued.secret))
}

/// `api_key.revoked` rows of a tenant's trail with this reason, as the superuser.
async fn revocations(env: &Env, tenant: Uuid, reason: &str) -> anyhow::Result<i64> {
    scalar(
        &env.su,
        "SELECT count(*) FROM tenancy.audit_logs WHERE tenant_id = $1 \
         AND action = 'api_key.revoked' AND resource_type = 'api_key' \
         AND details->>'reason' = $2",
        [tenant.into(), reason.into()],
    )
    .await
}

/// Mallory, an admin, issues keys (one of them with her own admin key), then is removed: every
/// key she created stops working, in the removal's transaction; the owner's keys and her keys
/// in another tenant she belongs to keep working.
#[tokio::test]
async fn removing_a_member_revokes_every_key_they_created() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, b, _] = three_tenants(&env.svc).await?;
    let mallory = user(&env.svc, "mallory@one.test", "Mallory").await?;
    let m_a = join(&env.svc, &a.ctx, mallory, MemberRole::Admin).await?;
    let m_b = join(&env.svc, &b.ctx, mallory, MemberRole::Admin).await?;

    let (admin_id, admin_secret) = issue_as(&env.svc, &m_a, key("backdoor", &["admin"])).await?;
    let (_, plain_secret) = issue_as(&env.svc, &m_a, key("plain", &["read", "write"])).await?;
    // A key minted by her admin key is hers too (created_by follows the key to its human).
    let via_key = env.svc.authenticate_api_key(&admin_secret).await?;
    let (_, laundered_secret) =
        issue_as(&env.svc, &via_key.context, key("laundered", &["admin"])).await?;
    let (_, owner_secret) = issue_as(&env.svc, &a.ctx, key("owner's", &["admin"])).await?;
    let (_, b_secret) = issue_as(&env.svc, &m_b, key("in b", &["admin"])).await?;
    for s in [
        &admin_secret,
        &plain_secret,
        &laundered_secret,
        &owner_secret,
        &b_secret,
    ] {
        env.svc.authenticate_api_key(s).await?;
    }

    // Rolled back: the keys stay (the revocation is part of the removal's transaction).
    let tx = env.svc.begin(&a.ctx).await?;
    members::remove(&tx, mallory).await?;
    tx.rollback().await?;
    env.svc.authenticate_api_key(&admin_secret).await?;

    let tx = env.svc.begin(&a.ctx).await?;
    members::remove(&tx, mallory).await?;
    tx.commit().await?;
    for s in [&admin_secret, &plain_secret, &laundered_secret] {
        assert_unauthenticated(env.svc.authenticate_api_key(s).await, "api key revoked");
    }
    env.svc.authenticate_api_key(&owner_secret).await?;
    env.svc.authenticate_api_key(&b_secret).await?;
    assert_eq!(revocations(&env, a.id, "creator removed").await?, 3);
    assert_eq!(revocations(&env, b.id, "creator removed").await?, 0);
    // The listing says whose keys they were.
    let tx = env.svc.begin(&a.ctx).await?;
    let listed = service::api_keys::list(&tx).await?;
    drop(tx);
    let mallorys: Vec<&str> = listed
        .iter()
        .filter(|k| k.created_by == Some(mallory))
        .map(|k| {
            assert!(k.revoked_at.is_some(), "{k:?}");
            k.name.as_str()
        })
        .collect();
    assert_eq!(mallorys, ["backdoor", "plain", "laundered"]);
    assert!(
        listed.iter().any(|k| k.name == "owner's"
            && k.created_by == Some(a.owner)
            && k.revoked_at.is_none())
    );
    // Revoked by the owner, who is the actor of the trail's rows.
    let by_owner = scalar(
        &env.su,
        "SELECT count(*) FROM tenancy.audit_logs WHERE tenant_id = $1 AND action = 'api_key.revoked' \
         AND actor_user_id = $2 AND resource_id = $3",
        [a.id.into(), a.owner.into(), admin_id.to_string().into()],
    )
    .await?;
    assert_eq!(by_owner, 1);
    Ok(())
}

/// Demoted below admin, a member keeps no key that acts with more than their new role: admin
/// keys go when they become a member, writing keys too when they become a viewer; read-only
/// keys stay. Moving between owner and admin revokes nothing.
#[tokio::test]
async fn demoting_a_member_revokes_their_keys_that_outrank_the_new_role() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    let mallory = user(&env.svc, "mallory@one.test", "Mallory").await?;
    let m_ctx = join(&env.svc, &a.ctx, mallory, MemberRole::Owner).await?;
    let (_, admin_secret) = issue_as(&env.svc, &m_ctx, key("admin", &["admin", "read"])).await?;
    let (_, writer_secret) = issue_as(&env.svc, &m_ctx, key("writer", &["read", "write"])).await?;
    let (_, reader_secret) = issue_as(&env.svc, &m_ctx, key("reader", &["read"])).await?;

    let change = async |role: MemberRole| -> anyhow::Result<()> {
        let tx = env.svc.begin(&a.ctx).await?;
        members::change_role(&tx, mallory, role).await?;
        tx.commit().await?;
        Ok(())
    };
    change(MemberRole::Admin).await?;
    change(MemberRole::Owner).await?;
    change(MemberRole::Admin).await?;
    for s in [&admin_secret, &writer_secret, &reader_secret] {
        env.svc.authenticate_api_key(s).await?;
    }
    assert_eq!(revocations(&env, a.id, "creator demoted").await?, 0);

    change(MemberRole::Member).await?;
    assert_unauthenticated(
        env.svc.authenticate_api_key(&admin_secret).await,
        "api key revoked",
    );
    env.svc.authenticate_api_key(&writer_secret).await?;
    env.svc.authenticate_api_key(&reader_secret).await?;
    assert_eq!(revocations(&env, a.id, "creator demoted").await?, 1);

    change(MemberRole::Viewer).await?;
    assert_unauthenticated(
        env.svc.authenticate_api_key(&writer_secret).await,
        "api key revoked",
    );
    env.svc.authenticate_api_key(&reader_secret).await?;
    assert_eq!(revocations(&env, a.id, "creator demoted").await?, 2);
    Ok(())
}

/// A key issued while its creator is being removed cannot slip through: issuing locks the
/// creator's membership row, so either the removal waits for the key and revokes it, or the
/// issue waits for the removal and is refused.
#[tokio::test]
async fn a_key_issued_during_its_creators_removal_does_not_survive() -> anyhow::Result<()> {
    let env = env().await?;
    let [a, ..] = three_tenants(&env.svc).await?;
    let mallory = user(&env.svc, "mallory@one.test", "Mallory").await?;
    let m_ctx = join(&env.svc, &a.ctx, mallory, MemberRole::Admin).await?;

    // The issue first: the removal waits for it, then revokes the key.
    let tx1 = env.svc.begin(&m_ctx).await?;
    let issued = service::api_keys::issue(&tx1, key("racing", &["admin"])).await?;
    let tx2 = env.svc.begin(&a.ctx).await?;
    let (removed, ()) = tokio::join!(members::remove(&tx2, mallory), async {
        until_a_session_waits_on_a_lock(&env.su)
            .await
            .expect("a waiting session");
        tx1.commit().await.expect("commit the issue");
    });
    removed?;
    tx2.commit().await?;
    assert_unauthenticated(
        env.svc.authenticate_api_key(&issued.secret).await,
        "api key revoked",
    );

    // The removal first: the issue waits for it, then is refused.
    let m_ctx = join(&env.svc, &a.ctx, mallory, MemberRole::Admin).await?;
    let tx2 = env.svc.begin(&a.ctx).await?;
    members::remove(&tx2, mallory).await?;
    let tx1 = env.svc.begin(&m_ctx).await?;
    let (refused, ()) = tokio::join!(
        service::api_keys::issue(&tx1, key("too late", &["admin"])),
        async {
            until_a_session_waits_on_a_lock(&env.su)
                .await
                .expect("a waiting session");
            tx2.commit().await.expect("commit the removal");
        }
    );
    assert_forbidden(refused);
    drop(tx1);
    let live = scalar(
        &env.su,
        "SELECT count(*) FROM tenancy.api_keys WHERE tenant_id = $1 AND created_by = $2 \
         AND revoked_at IS NULL",
        [a.id.into(), mallory.into()],
    )
    .await?;
    assert_eq!(live, 0);
    Ok(())
}
