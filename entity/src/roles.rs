//! `tenancy.roles`: a tenant's custom roles, each a named set of permissions
//! ([`role_permissions`](crate::role_permissions)) given to members through
//! [`member_roles`](crate::member_roles). Tenant-scoped.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tenant_scoped::tenant_scoped;

/// A row of `tenancy.roles`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(schema_name = "tenancy", table_name = "roles")]
pub struct Model {
    /// The tenant the role belongs to.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The role's id within its tenant (the database fills it when not set).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The role's name, unique within the tenant (1 to 100 characters).
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// A description for people (default empty).
    #[sea_orm(column_type = "Text")]
    pub description: String,
    /// When the row was inserted.
    pub created_at: DateTimeWithTimeZone,
}

/// The entities a role relates to.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The tenant the role belongs to.
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenant,
    /// The role's permissions.
    #[sea_orm(has_many = "super::role_permissions::Entity")]
    RolePermissions,
    /// The role's assignments to members.
    #[sea_orm(has_many = "super::member_roles::Entity")]
    MemberRoles,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::role_permissions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RolePermissions.def()
    }
}

impl Related<super::member_roles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::MemberRoles.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

tenant_scoped!(Entity, Column::TenantId);
