//! `public.projects`: a tenant's projects, which hold [`documents`](crate::documents) and
//! [`tasks`](crate::tasks). Tenant-scoped.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tenant_scoped::tenant_scoped;

/// A row of `public.projects`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
// No schema: the name resolves through `search_path`, to `public.projects` for a shared tenant and
// to the tenant's own schema for a dedicated one (the transaction sets it).
#[sea_orm(table_name = "projects")]
pub struct Model {
    /// The tenant the project belongs to.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The project's id within its tenant (the database fills it when not set).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The user who owns the project, if any (set to `None` when that user is deleted).
    pub owner_id: Option<Uuid>,
    /// The project's name.
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// A description (may be empty).
    #[sea_orm(column_type = "Text")]
    pub description: String,
    /// The project's status (default `active`).
    #[sea_orm(column_type = "Text")]
    pub status: String,
    /// Free-form metadata (`jsonb`, default `{}`).
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    /// When the row was inserted.
    pub created_at: DateTimeWithTimeZone,
    /// When the row was last updated (kept by a trigger).
    pub updated_at: DateTimeWithTimeZone,
}

/// The entities a project relates to.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The tenant the project belongs to.
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenant,
    /// The user who owns the project (`owner_id`).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::OwnerId",
        to = "super::users::Column::Id",
        on_delete = "SetNull"
    )]
    Owner,
    /// The project's documents.
    #[sea_orm(has_many = "super::documents::Entity")]
    Documents,
    /// The project's tasks.
    #[sea_orm(has_many = "super::tasks::Entity")]
    Tasks,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Owner.def()
    }
}

impl Related<super::documents::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Documents.def()
    }
}

impl Related<super::tasks::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tasks.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

tenant_scoped!(Entity, Column::TenantId);
