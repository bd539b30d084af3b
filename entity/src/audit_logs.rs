//! `tenancy.audit_logs`: what happened inside one tenant. Append-only for the application.
//! Tenant-scoped.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tenant_scoped::tenant_scoped;

/// A row of `tenancy.audit_logs`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(schema_name = "tenancy", table_name = "audit_logs")]
pub struct Model {
    /// The tenant the entry belongs to.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The entry's id within its tenant (the database fills it when not set).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The user who acted, if a user did (not a foreign key: the trail outlives users).
    pub actor_user_id: Option<Uuid>,
    /// The API key that acted, if a key did (not a foreign key).
    pub actor_api_key_id: Option<Uuid>,
    /// What was done.
    #[sea_orm(column_type = "Text")]
    pub action: String,
    /// The kind of thing acted on, if any.
    #[sea_orm(column_type = "Text")]
    pub resource_type: Option<String>,
    /// The id of the thing acted on, if any.
    #[sea_orm(column_type = "Text")]
    pub resource_id: Option<String>,
    /// Details of the action (`jsonb`, default `{}`).
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Json,
    /// When the entry was written.
    pub created_at: DateTimeWithTimeZone,
}

/// The tenant an audit entry belongs to.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The tenant the entry belongs to.
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenant,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

tenant_scoped!(Entity, Column::TenantId);
