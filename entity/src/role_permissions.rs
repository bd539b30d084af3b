//! `tenancy.role_permissions`: what a custom [`role`](crate::roles) allows, as resource and
//! action (`*` matches any). Tenant-scoped.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tenant_scoped::tenant_scoped;

/// A row of `tenancy.role_permissions`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(schema_name = "tenancy", table_name = "role_permissions")]
pub struct Model {
    /// The tenant the permission belongs to.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The role, in the same tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub role_id: Uuid,
    /// What the permission is about, e.g. `projects`, or `*`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub resource: String,
    /// What it allows, e.g. `read`, `write`, `manage`, or `*`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub action: String,
}

/// The entities a permission relates to.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The tenant the permission belongs to.
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenant,
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

impl Related<super::roles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Role.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

tenant_scoped!(Entity, Column::TenantId);
