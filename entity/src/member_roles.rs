//! `tenancy.member_roles`: custom [`roles`](crate::roles) given to members of the tenant.
//! Tenant-scoped; removing the membership or the role removes the assignment.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tenant_scoped::tenant_scoped;

/// A row of `tenancy.member_roles`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(schema_name = "tenancy", table_name = "member_roles")]
pub struct Model {
    /// The tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The member (a user with a membership in the same tenant).
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// The role, in the same tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub role_id: Uuid,
}

/// The entities an assignment relates to.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The tenant.
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenant,
    /// The membership: `(tenant_id, user_id) -> tenant_users (tenant_id, user_id)`.
    #[sea_orm(
        belongs_to = "super::tenant_users::Entity",
        from = "(Column::TenantId, Column::UserId)",
        to = "(super::tenant_users::Column::TenantId, super::tenant_users::Column::UserId)",
        on_delete = "Cascade"
    )]
    Membership,
    /// The role: `(tenant_id, role_id) -> roles (tenant_id, id)`.
    #[sea_orm(
        belongs_to = "super::roles::Entity",
        from = "(Column::TenantId, Column::RoleId)",
        to = "(super::roles::Column::TenantId, super::roles::Column::Id)",
        on_delete = "Cascade"
    )]
    Role,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::tenant_users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Membership.def()
    }
}

impl Related<super::roles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Role.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

tenant_scoped!(Entity, Column::TenantId);
