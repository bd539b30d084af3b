//! A tenant's members (`tenancy.tenant_users`): list, add, change role, remove.
//!
//! Rules, all enforced here in the caller's transaction:
//! * changes need an admin ([`crate::TenantContext::require_admin`]); a viewer or member
//!   changes nothing;
//! * only an owner may make someone an owner, or change or remove an owner;
//! * a tenant always keeps at least one owner. Under concurrency too: every change that could
//!   take an owner away first locks all of the tenant's owner rows (`SELECT ... FOR UPDATE`,
//!   in user order), so two admins demoting the last two owners at once serialise, and the
//!   second sees one owner left and is refused.
//!
//! A user id that is not a member of this tenant (including a member of another tenant) is
//! [`ServiceError::NotFound`] (`member`).
//!
//! API keys follow the person they are attributed to (`api_keys.created_by`), in the same
//! transaction as the change, each revocation written to the trail as `api_key.revoked`:
//! * removing a member revokes every key of this tenant attributed to them (`creator removed`);
//! * demoting a member revokes their keys that act with more than the new role
//!   (`creator demoted`): below admin, the keys with the `admin` scope; below member (viewer),
//!   every key but the read-only ones (`["read"]`). Keys that act with no more than the new role
//!   stay: a member may keep a non-admin key, as they could use the same access themselves.
//!   Moving between owner and admin revokes nothing (a key never acts as an owner).
//!
//! Keys of other tenants the user belongs to are not touched.

use chrono::{DateTime, Utc};
use entity::{tenant_users, users};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DbBackend, DbErr, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, SqlErr, Statement, Value,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::api_keys::{self, CreatorChange};
use crate::audit;
use crate::context::MemberRole;
use crate::error::{Result, ServiceError};
use crate::tx::TenantTx;

/// A member of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    /// The user.
    pub user_id: Uuid,
    /// Their sign-in address.
    pub email: String,
    /// Their name.
    pub full_name: String,
    /// Their role in this tenant.
    pub role: MemberRole,
    /// When they joined the tenant.
    pub created_at: DateTime<Utc>,
}

fn member(m: tenant_users::Model, u: users::Model) -> Result<Member> {
    Ok(Member {
        user_id: m.user_id,
        email: u.email,
        full_name: u.full_name,
        role: MemberRole::parse(&m.role)?,
        created_at: m.created_at.with_timezone(&Utc),
    })
}

/// Every member, in the order they joined.
pub async fn list(tx: &TenantTx) -> Result<Vec<Member>> {
    let rows = tx
        .select::<tenant_users::Entity>()
        .find_also_related(users::Entity)
        .order_by_asc(tenant_users::Column::CreatedAt)
        .order_by_asc(tenant_users::Column::UserId)
        .all(tx.conn())
        .instrument(tracing::debug_span!("members.list", tenant_id = %tx.tenant_id()))
        .await?;
    rows.into_iter()
        .filter_map(|(m, u)| u.map(|u| member(m, u)))
        .collect()
}

/// One member, or `None`.
pub async fn get(tx: &TenantTx, user_id: Uuid) -> Result<Option<Member>> {
    let row = tx
        .select::<tenant_users::Entity>()
        .filter(tenant_users::Column::UserId.eq(user_id))
        .find_also_related(users::Entity)
        .one(tx.conn())
        .await?;
    match row {
        Some((m, Some(u))) => Ok(Some(member(m, u)?)),
        _ => Ok(None),
    }
}

async fn get_member(tx: &TenantTx, user_id: Uuid) -> Result<Member> {
    get(tx, user_id)
        .await?
        .ok_or(ServiceError::NotFound("member"))
}

fn require_owner_for(tx: &TenantTx, what: &str) -> Result<()> {
    if tx.context().role() == MemberRole::Owner {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(format!("only an owner can {what}")))
    }
}

/// Adds an existing user as a member (admins; only owners add owners). An unknown user is
/// [`ServiceError::NotFound`] (`user`); a user who is already a member is
/// [`ServiceError::Conflict`].
pub async fn add(tx: &TenantTx, user_id: Uuid, role: MemberRole) -> Result<Member> {
    async {
        tx.context().require_admin()?;
        if role == MemberRole::Owner {
            require_owner_for(tx, "add an owner")?;
        }
        if tx
            .find_by_id::<tenant_users::Entity>(user_id)
            .await?
            .is_some()
        {
            return Err(ServiceError::Conflict(
                "the user is already a member".into(),
            ));
        }
        let row = tenant_users::ActiveModel {
            tenant_id: ActiveValue::Set(tx.tenant_id()),
            user_id: ActiveValue::Set(user_id),
            role: ActiveValue::Set(role.as_str().to_owned()),
            ..Default::default()
        };
        match row.insert(tx.conn()).await {
            Ok(_) => {}
            Err(e) if is_foreign_key_violation(&e) => return Err(ServiceError::NotFound("user")),
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::Conflict(
                    "the user is already a member".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        audit::record(
            tx,
            "member.add",
            Some("member"),
            Some(user_id.to_string()),
            serde_json::json!({ "role": role }),
        )
        .await?;
        get_member(tx, user_id).await
    }
    .instrument(tracing::info_span!("members.add", tenant_id = %tx.tenant_id(), %user_id))
    .await
}

/// Adds the existing user with this address (admins; only owners add owners). An unknown
/// address is [`ServiceError::NotFound`] (`user`): users are created by the superadmin path.
pub async fn add_by_email(tx: &TenantTx, email: &str, role: MemberRole) -> Result<Member> {
    // Admin first: nobody else may learn whether an address is registered.
    tx.context().require_admin()?;
    let email = email.trim();
    if email.is_empty() || email.chars().count() > crate::tenants::MAX_EMAIL_CHARS {
        return Err(ServiceError::invalid("email", "required"));
    }
    #[derive(FromQueryResult)]
    struct Found {
        user_id: Option<Uuid>,
    }
    let found = Found::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT tenancy.find_user_id_by_email(CAST($1 AS public.citext)) AS user_id",
        [Value::from(email)],
    ))
    .one(tx.conn())
    .await?;
    let user_id = found
        .and_then(|f| f.user_id)
        .ok_or(ServiceError::NotFound("user"))?;
    add(tx, user_id, role).await
}

/// Locks every owner row of the tenant (in user order, so concurrent callers queue instead of
/// deadlocking) and returns the owners' ids.
async fn lock_owners(tx: &TenantTx) -> Result<Vec<Uuid>> {
    let owners = tx
        .select::<tenant_users::Entity>()
        .filter(tenant_users::Column::Role.eq(MemberRole::Owner.as_str()))
        .order_by_asc(tenant_users::Column::UserId)
        .lock_exclusive()
        .all(tx.conn())
        .await?;
    Ok(owners.into_iter().map(|m| m.user_id).collect())
}

/// The membership of `user_id`, locked.
async fn lock_member(tx: &TenantTx, user_id: Uuid) -> Result<tenant_users::Model> {
    tx.select::<tenant_users::Entity>()
        .filter(tenant_users::Column::UserId.eq(user_id))
        .lock_exclusive()
        .one(tx.conn())
        .await?
        .ok_or(ServiceError::NotFound("member"))
}

const LAST_OWNER: &str = "a tenant must keep at least one owner";

/// Changes a member's role (admins; only owners grant or take away owner). Taking owner from
/// the last owner is [`ServiceError::Conflict`]. A demotion revokes the member's keys that act
/// with more than the new role (see the module documentation).
pub async fn change_role(tx: &TenantTx, user_id: Uuid, role: MemberRole) -> Result<Member> {
    async {
        tx.context().require_admin()?;
        let owners = lock_owners(tx).await?;
        let current = lock_member(tx, user_id).await?;
        let was = MemberRole::parse(&current.role)?;
        if was == role {
            return get_member(tx, user_id).await;
        }
        if was == MemberRole::Owner || role == MemberRole::Owner {
            require_owner_for(tx, "grant or take away owner")?;
        }
        if was == MemberRole::Owner && owners.iter().filter(|o| **o != user_id).count() == 0 {
            return Err(ServiceError::Conflict(LAST_OWNER.into()));
        }
        let mut row: tenant_users::ActiveModel = current.into();
        row.role = ActiveValue::Set(role.as_str().to_owned());
        tx.update(row).await?;
        // Roles order strongest first: a greater role is a demotion.
        let revoked = if role > was {
            api_keys::revoke_keys_of_creator(tx, user_id, CreatorChange::Demoted(role)).await?
        } else {
            Vec::new()
        };
        audit::record(
            tx,
            "member.change_role",
            Some("member"),
            Some(user_id.to_string()),
            serde_json::json!({ "from": was, "to": role, "revoked_api_keys": revoked }),
        )
        .await?;
        get_member(tx, user_id).await
    }
    .instrument(tracing::info_span!("members.change_role", tenant_id = %tx.tenant_id(), %user_id))
    .await
}

/// Removes a member (admins; only owners remove owners), with their custom-role assignments,
/// and revokes every API key of this tenant attributed to them. Removing the last owner is
/// [`ServiceError::Conflict`].
pub async fn remove(tx: &TenantTx, user_id: Uuid) -> Result<()> {
    async {
        tx.context().require_admin()?;
        let owners = lock_owners(tx).await?;
        let current = lock_member(tx, user_id).await?;
        let was = MemberRole::parse(&current.role)?;
        if was == MemberRole::Owner {
            require_owner_for(tx, "remove an owner")?;
            if owners.iter().filter(|o| **o != user_id).count() == 0 {
                return Err(ServiceError::Conflict(LAST_OWNER.into()));
            }
        }
        if !tx.delete_by_id::<tenant_users::Entity>(user_id).await? {
            return Err(ServiceError::NotFound("member"));
        }
        let revoked = api_keys::revoke_keys_of_creator(tx, user_id, CreatorChange::Removed).await?;
        audit::record(
            tx,
            "member.remove",
            Some("member"),
            Some(user_id.to_string()),
            serde_json::json!({ "role": was, "revoked_api_keys": revoked }),
        )
        .await
    }
    .instrument(tracing::info_span!("members.remove", tenant_id = %tx.tenant_id(), %user_id))
    .await
}

pub(crate) fn is_foreign_key_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_)))
}

pub(crate) fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}
