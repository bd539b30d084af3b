//! `tenancy.superadmin_audit_logs`: every use of the superadmin escape, across tenants. Global:
//! a superadmin action may concern one tenant (`scope_tenant_id`) or all of them.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `tenancy.superadmin_audit_logs`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(schema_name = "tenancy", table_name = "superadmin_audit_logs")]
pub struct Model {
    /// The entry's id (the database fills it with `gen_random_uuid()` when not set).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Who acted (non-empty).
    #[sea_orm(column_type = "Text")]
    pub actor: String,
    /// Why (non-empty).
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    /// The tenant acted on, or `None` when the action spans tenants. Not a foreign key: the
    /// trail outlives deleted tenants.
    pub scope_tenant_id: Option<Uuid>,
    /// What was done.
    #[sea_orm(column_type = "Text")]
    pub action: String,
    /// Details of the action (`jsonb`, default `{}`).
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Json,
    /// When the entry was written.
    pub created_at: DateTimeWithTimeZone,
}

/// `tenancy.superadmin_audit_logs` references no other table.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
