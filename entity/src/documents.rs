//! `public.documents`: documents of a project. Tenant-scoped.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tenant_scoped::tenant_scoped;

/// A row of `public.documents`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
// No schema: the name resolves through `search_path`, to `public.documents` for a shared tenant and
// to the tenant's own schema for a dedicated one (the transaction sets it).
#[sea_orm(table_name = "documents")]
pub struct Model {
    /// The tenant the document belongs to.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The document's id within its tenant (the database fills it when not set).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The project holding the document, in the same tenant.
    pub project_id: Uuid,
    /// The document's title.
    #[sea_orm(column_type = "Text")]
    pub title: String,
    /// The document's text (may be empty).
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// Tags (`text[]`, default empty, GIN-indexed).
    #[sea_orm(column_type = "Array(RcOrArc::new(ColumnType::Text))")]
    pub tags: Vec<String>,
    /// When the row was inserted.
    pub created_at: DateTimeWithTimeZone,
    /// When the row was last updated (kept by a trigger).
    pub updated_at: DateTimeWithTimeZone,
}

/// The entities a document relates to.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The tenant the document belongs to.
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenant,
    /// The project holding the document: `(tenant_id, project_id) -> projects (tenant_id,
    /// id)`, so it is always in the document's own tenant.
    #[sea_orm(
        belongs_to = "super::projects::Entity",
        from = "(Column::TenantId, Column::ProjectId)",
        to = "(super::projects::Column::TenantId, super::projects::Column::Id)",
        on_delete = "Cascade"
    )]
    Project,
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

impl ActiveModelBehavior for ActiveModel {}

tenant_scoped!(Entity, Column::TenantId);
