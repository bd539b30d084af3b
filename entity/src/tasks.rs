//! `public.tasks`: tasks of a project. Tenant-scoped.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tenant_scoped::tenant_scoped;

/// A row of `public.tasks`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
// No schema: the name resolves through `search_path`, to `public.tasks` for a shared tenant and
// to the tenant's own schema for a dedicated one (the transaction sets it).
#[sea_orm(table_name = "tasks")]
pub struct Model {
    /// The tenant the task belongs to.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The task's id within its tenant (the database fills it when not set).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The project holding the task, in the same tenant.
    pub project_id: Uuid,
    /// The task's title.
    #[sea_orm(column_type = "Text")]
    pub title: String,
    /// The task's status (default `todo`).
    #[sea_orm(column_type = "Text")]
    pub status: String,
    /// The user the task is assigned to, if any (set to `None` when that user is deleted).
    pub assignee_id: Option<Uuid>,
    /// When the task is due, if ever.
    pub due_at: Option<DateTimeWithTimeZone>,
    /// When the row was inserted.
    pub created_at: DateTimeWithTimeZone,
    /// When the row was last updated (kept by a trigger).
    pub updated_at: DateTimeWithTimeZone,
}

/// The entities a task relates to.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The tenant the task belongs to.
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenant,
    /// The project holding the task: `(tenant_id, project_id) -> projects (tenant_id, id)`.
    #[sea_orm(
        belongs_to = "super::projects::Entity",
        from = "(Column::TenantId, Column::ProjectId)",
        to = "(super::projects::Column::TenantId, super::projects::Column::Id)",
        on_delete = "Cascade"
    )]
    Project,
    /// The user the task is assigned to (`assignee_id`).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::AssigneeId",
        to = "super::users::Column::Id",
        on_delete = "SetNull"
    )]
    Assignee,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::projects::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Project.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Assignee.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

tenant_scoped!(Entity, Column::TenantId);
