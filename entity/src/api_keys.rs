//! `tenancy.api_keys`: a tenant's API keys, stored as a public prefix and a hash of the
//! secret. Tenant-scoped.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tenant_scoped::tenant_scoped;

/// A row of `tenancy.api_keys`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(schema_name = "tenancy", table_name = "api_keys")]
pub struct Model {
    /// The tenant the key acts for.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The key's id within its tenant (the database fills it when not set).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// A name for people.
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// The public prefix a presented key is looked up by (8 to 32 characters, unique within
    /// the tenant).
    #[sea_orm(column_type = "Text")]
    pub prefix: String,
    /// The 32-byte hash of the secret (`bytea`); the secret itself is never stored.
    pub secret_hash: Vec<u8>,
    /// What the key may do (`text[]`, default empty).
    #[sea_orm(column_type = "Array(RcOrArc::new(ColumnType::Text))")]
    pub scopes: Vec<String>,
    /// Requests allowed per minute; `None` for the plan's default.
    pub rate_limit_per_minute: Option<i32>,
    /// Units allowed per month; `None` for the plan's default.
    pub monthly_quota: Option<i64>,
    /// When the key stops working, if ever.
    pub expires_at: Option<DateTimeWithTimeZone>,
    /// When the key was revoked, if it was.
    pub revoked_at: Option<DateTimeWithTimeZone>,
    /// When the key was last used, if ever.
    pub last_used_at: Option<DateTimeWithTimeZone>,
    /// The user who created the key, if known (not a foreign key).
    pub created_by: Option<Uuid>,
    /// When the row was inserted.
    pub created_at: DateTimeWithTimeZone,
    /// When the row was last updated (kept by a trigger).
    pub updated_at: DateTimeWithTimeZone,
}

/// The entities an API key relates to.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The tenant the key acts for.
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenant,
    /// The usage metered against the key.
    #[sea_orm(has_many = "super::usage_events::Entity")]
    UsageEvents,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::usage_events::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UsageEvents.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

tenant_scoped!(Entity, Column::TenantId);
