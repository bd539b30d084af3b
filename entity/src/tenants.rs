//! `tenancy.tenants`: the customers. Global: this table defines the tenants that every
//! tenant-scoped row belongs to.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `tenancy.tenants`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(schema_name = "tenancy", table_name = "tenants")]
pub struct Model {
    /// The tenant's id (the database fills it with `gen_random_uuid()` when not set).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The tenant's display name.
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// The unique URL-safe name: `^[a-z0-9][a-z0-9-]{0,62}$`.
    #[sea_orm(column_type = "Text", unique)]
    pub slug: String,
    /// Where the tenant's data is meant to live (default `eu`).
    #[sea_orm(column_type = "Text")]
    pub region: String,
    /// `free`, `pro` or `enterprise`.
    #[sea_orm(column_type = "Text")]
    pub plan: String,
    /// `active`, `suspended`, `trial` or `cancelled`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    /// The address of the tenant's administrator, if known (`citext`).
    #[sea_orm(column_type = r#"custom("citext")"#, save_as = "citext")]
    pub admin_email: Option<String>,
    /// Free-form settings (`jsonb`, default `{}`).
    #[sea_orm(column_type = "JsonBinary")]
    pub settings: Json,
    /// `shared` (rows in the shared tables) or `dedicated` (its own schema).
    #[sea_orm(column_type = "Text")]
    pub isolation: String,
    /// A dedicated tenant's schema, `t_<32 hex of the id>`; `None` for a shared tenant.
    #[sea_orm(column_type = "Text")]
    pub schema_name: Option<String>,
    /// When the row was inserted.
    pub created_at: DateTimeWithTimeZone,
    /// When the row was last updated (kept by a trigger).
    pub updated_at: DateTimeWithTimeZone,
}

/// The tenant-scoped rows of a tenant.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The tenant's members.
    #[sea_orm(has_many = "super::tenant_users::Entity")]
    TenantUsers,
    /// The tenant's API keys.
    #[sea_orm(has_many = "super::api_keys::Entity")]
    ApiKeys,
    /// The tenant's metered usage.
    #[sea_orm(has_many = "super::usage_events::Entity")]
    UsageEvents,
    /// The tenant's audit trail.
    #[sea_orm(has_many = "super::audit_logs::Entity")]
    AuditLogs,
    /// The tenant's projects.
    #[sea_orm(has_many = "super::projects::Entity")]
    Projects,
    /// The tenant's documents.
    #[sea_orm(has_many = "super::documents::Entity")]
    Documents,
    /// The tenant's tasks.
    #[sea_orm(has_many = "super::tasks::Entity")]
    Tasks,
}

impl Related<super::tenant_users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TenantUsers.def()
    }
}

impl Related<super::api_keys::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApiKeys.def()
    }
}

impl Related<super::usage_events::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UsageEvents.def()
    }
}

impl Related<super::audit_logs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AuditLogs.def()
    }
}

impl Related<super::projects::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Projects.def()
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

/// The tenant's members as users, through `tenant_users`.
impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        super::tenant_users::Relation::User.def()
    }

    fn via() -> Option<RelationDef> {
        Some(super::tenant_users::Relation::Tenant.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}
