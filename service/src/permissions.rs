//! Custom per-tenant roles (seed 002's RBAC): a role is a named set of `(resource, action)`
//! permissions, given to members on top of their membership role.
//!
//! What a member may do, as `tenancy.has_permission(resource, action)` decides it (and
//! [`has_permission`] asks it):
//!
//! | membership role | allows |
//! |---|---|
//! | owner, admin | every action on every resource |
//! | member | `read` and `write` on every resource |
//! | viewer | `read` on every resource |
//!
//! plus every permission of the custom roles assigned to the member, where a resource or
//! action of `*` matches any. API keys and background jobs have no membership: for them the
//! same table is applied to the context's role.

use entity::{member_roles, role_permissions, roles, tenant_users};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DbBackend, FromQueryResult, QueryFilter, Statement,
    Value,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::audit;
use crate::context::MemberRole;
use crate::error::{Result, ServiceError};
use crate::members::is_unique_violation;
use crate::tx::TenantTx;

/// The longest accepted role name, in characters.
pub const MAX_ROLE_NAME_CHARS: usize = 100;
/// The most permissions one role may hold.
pub const MAX_PERMISSIONS: usize = 200;

/// A custom role with its permissions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Role {
    /// The role's id.
    pub id: Uuid,
    /// Its name, unique within the tenant.
    pub name: String,
    /// Its permissions as `(resource, action)`, sorted.
    pub permissions: Vec<(String, String)>,
}

/// Whether `s` is a resource or action: `*`, or a lowercase token of `a-z 0-9 _ . : -`
/// (starting with a letter or digit, at most 64 characters). The table's CHECK agrees.
pub fn valid_permission_token(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

/// The built-in part of the rules, for a membership role.
pub fn role_allows(role: MemberRole, action: &str) -> bool {
    match role {
        MemberRole::Owner | MemberRole::Admin => true,
        MemberRole::Member => matches!(action, "read" | "write"),
        MemberRole::Viewer => action == "read",
    }
}

/// Creates a custom role with its permissions (admins only); returns its id. A name already
/// used in this tenant is [`ServiceError::Conflict`]; duplicates in `permissions` are ignored.
pub async fn create_role(
    tx: &TenantTx,
    name: &str,
    permissions: &[(String, String)],
) -> Result<Uuid> {
    async {
        tx.context().require_admin()?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_ROLE_NAME_CHARS {
            return Err(ServiceError::invalid(
                "name",
                format!("required, at most {MAX_ROLE_NAME_CHARS} characters"),
            ));
        }
        if permissions.len() > MAX_PERMISSIONS {
            return Err(ServiceError::invalid(
                "permissions",
                format!("at most {MAX_PERMISSIONS}"),
            ));
        }
        let mut wanted: Vec<(String, String)> = Vec::with_capacity(permissions.len());
        for (resource, action) in permissions {
            if !valid_permission_token(resource) || !valid_permission_token(action) {
                return Err(ServiceError::invalid(
                    "permissions",
                    "each resource and action is `*` or a lowercase token of a-z 0-9 _ . : -",
                ));
            }
            let p = (resource.clone(), action.clone());
            if !wanted.contains(&p) {
                wanted.push(p);
            }
        }
        if tx
            .select::<roles::Entity>()
            .filter(roles::Column::Name.eq(name))
            .one(tx.conn())
            .await?
            .is_some()
        {
            return Err(ServiceError::Conflict(
                "a role with this name exists".into(),
            ));
        }
        let role = roles::ActiveModel {
            tenant_id: ActiveValue::Set(tx.tenant_id()),
            name: ActiveValue::Set(name.to_owned()),
            ..Default::default()
        };
        let role = match role.insert(tx.conn()).await {
            Ok(role) => role,
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::Conflict(
                    "a role with this name exists".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        for (resource, action) in &wanted {
            tx.insert(role_permissions::ActiveModel {
                role_id: ActiveValue::Set(role.id),
                resource: ActiveValue::Set(resource.clone()),
                action: ActiveValue::Set(action.clone()),
                ..Default::default()
            })
            .await?;
        }
        audit::record(
            tx,
            "role.create",
            Some("role"),
            Some(role.id.to_string()),
            serde_json::json!({ "name": name, "permissions": wanted }),
        )
        .await?;
        Ok(role.id)
    }
    .instrument(tracing::info_span!("permissions.create_role", tenant_id = %tx.tenant_id()))
    .await
}

/// Every custom role of the tenant with its permissions, by name.
pub async fn list_roles(tx: &TenantTx) -> Result<Vec<Role>> {
    let rows = tx
        .select::<roles::Entity>()
        .find_with_related(role_permissions::Entity)
        .all(tx.conn())
        .await?;
    let mut out: Vec<Role> = rows
        .into_iter()
        .map(|(role, perms)| {
            let mut permissions: Vec<(String, String)> = perms
                .into_iter()
                .filter(|p| p.tenant_id == role.tenant_id)
                .map(|p| (p.resource, p.action))
                .collect();
            permissions.sort();
            Role {
                id: role.id,
                name: role.name,
                permissions,
            }
        })
        .collect();
    // `find_with_related` groups by the parent's key; the order asked for is by name.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Gives a member a custom role (admins only); giving it twice changes nothing. A role or
/// user that is not this tenant's is [`ServiceError::NotFound`] (`role`, `member`).
pub async fn assign_role(tx: &TenantTx, user_id: Uuid, role_id: Uuid) -> Result<()> {
    async {
        tx.context().require_admin()?;
        tx.get::<roles::Entity>("role", role_id).await?;
        tx.get::<tenant_users::Entity>("member", user_id).await?;
        let existing = tx
            .select::<member_roles::Entity>()
            .filter(member_roles::Column::UserId.eq(user_id))
            .filter(member_roles::Column::RoleId.eq(role_id))
            .one(tx.conn())
            .await?;
        if existing.is_none() {
            tx.insert(member_roles::ActiveModel {
                user_id: ActiveValue::Set(user_id),
                role_id: ActiveValue::Set(role_id),
                ..Default::default()
            })
            .await?;
        }
        audit::record(
            tx,
            "role.assign",
            Some("role"),
            Some(role_id.to_string()),
            serde_json::json!({ "user_id": user_id, "already_assigned": existing.is_some() }),
        )
        .await
    }
    .instrument(tracing::info_span!("permissions.assign_role", tenant_id = %tx.tenant_id(), %user_id, %role_id))
    .await
}

/// Whether the actor may do `action` on `resource` in this tenant: for a user, the database
/// function `tenancy.has_permission` (membership role plus custom roles); for an API key or a
/// job, [`role_allows`] on the context's role.
pub async fn has_permission(tx: &TenantTx, resource: &str, action: &str) -> Result<bool> {
    if !valid_permission_token(resource) || !valid_permission_token(action) {
        return Err(ServiceError::invalid(
            "permission",
            "resource and action are `*` or lowercase tokens of a-z 0-9 _ . : -",
        ));
    }
    if tx.context().user_id().is_none() {
        return Ok(role_allows(tx.context().role(), action));
    }
    #[derive(FromQueryResult)]
    struct Allowed {
        allowed: bool,
    }
    let row = Allowed::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT tenancy.has_permission($1, $2) AS allowed",
        [Value::from(resource), Value::from(action)],
    ))
    .one(tx.conn())
    .instrument(tracing::debug_span!("permissions.has_permission", tenant_id = %tx.tenant_id()))
    .await?;
    Ok(row.is_some_and(|r| r.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        for ok in ["*", "projects", "read", "agents:run", "a.b-c_d", "0"] {
            assert!(valid_permission_token(ok), "{ok}");
        }
        for bad in ["", "**", "Read", "a b", "-x", "é", &"x".repeat(65)] {
            assert!(!valid_permission_token(bad), "{bad}");
        }
    }

    #[test]
    fn builtin_rules() {
        assert!(role_allows(MemberRole::Admin, "manage"));
        assert!(role_allows(MemberRole::Member, "write"));
        assert!(!role_allows(MemberRole::Member, "manage"));
        assert!(role_allows(MemberRole::Viewer, "read"));
        assert!(!role_allows(MemberRole::Viewer, "write"));
    }
}
