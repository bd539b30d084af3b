//! `tenancy.usage_events`: metered usage (requests, tokens, audio, OCR pages), append-mostly.
//! Tenant-scoped.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tenant_scoped::tenant_scoped;

/// A row of `tenancy.usage_events`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(schema_name = "tenancy", table_name = "usage_events")]
pub struct Model {
    /// The tenant the usage is billed to.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The event's id within its tenant (the database fills it when not set).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The API key used, if any (in the same tenant).
    pub api_key_id: Option<Uuid>,
    /// What was used.
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    /// How many units (default 1).
    pub quantity: i64,
    /// Input tokens (default 0).
    pub tokens_in: i64,
    /// Output tokens (default 0).
    pub tokens_out: i64,
    /// Seconds of audio (default 0).
    pub audio_seconds: f64,
    /// Pages read by OCR (default 0).
    pub ocr_pages: i32,
    /// How long the request took, if measured.
    pub latency_ms: Option<i32>,
    /// The endpoint called, if any.
    #[sea_orm(column_type = "Text")]
    pub endpoint: Option<String>,
    /// Free-form details (`jsonb`, default `{}`).
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    /// When the usage happened.
    pub occurred_at: DateTimeWithTimeZone,
    /// When the row was inserted.
    pub created_at: DateTimeWithTimeZone,
}

/// The entities a usage event relates to.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The tenant the usage is billed to.
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenant,
    /// The API key used: `(tenant_id, api_key_id) -> api_keys (tenant_id, id)`.
    #[sea_orm(
        belongs_to = "super::api_keys::Entity",
        from = "(Column::TenantId, Column::ApiKeyId)",
        to = "(super::api_keys::Column::TenantId, super::api_keys::Column::Id)"
    )]
    ApiKey,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::api_keys::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApiKey.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

tenant_scoped!(Entity, Column::TenantId);
