//! Dedicated tenants (one schema per tenant): the isolation mode, and the superadmin's calls
//! into the database's provisioning functions.
//!
//! The superadmin login cannot create schemas or roles. `tenancy.provision_dedicated(uuid)`
//! and `tenancy.drop_dedicated(uuid)` (SECURITY DEFINER, owned by the migration login,
//! EXECUTE for `tenantry_superadmin` only, refused without a superadmin reason) do the DDL,
//! inside the caller's audited transaction: the names come from the uuid, in the database;
//! the statements from the tenant-schema templates the migrations stored.

use migration::dedicated::TenantSchema;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use uuid::Uuid;

use crate::error::{Result, ServiceError};
use crate::superadmin::SuperadminTx;

/// How a tenant is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Rows in the shared tables, kept apart by `tenant_id` and row level security.
    #[default]
    Shared,
    /// Its own schema `t_<hex>` (and role); the same tables, policies and `tenant_id` inside.
    Dedicated,
}

impl Isolation {
    /// `shared` or `dedicated`, as stored in `tenancy.tenants.isolation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Dedicated => "dedicated",
        }
    }
}

/// The schema of a tenant row (`None` for a shared tenant), validated again.
pub fn schema_of(tenant: &entity::tenants::Model) -> Result<Option<TenantSchema>> {
    match (tenant.isolation.as_str(), tenant.schema_name.as_deref()) {
        ("dedicated", Some(name)) => {
            let schema = TenantSchema::parse(name).map_err(|e| {
                tracing::warn!(error = %e, tenant_id = %tenant.id, "corrupt tenant schema name");
                ServiceError::Unavailable("the tenant's schema is unavailable".into())
            })?;
            if schema.tenant_id() != tenant.id {
                return Err(ServiceError::Unavailable(
                    "the tenant's schema is unavailable".into(),
                ));
            }
            Ok(Some(schema))
        }
        _ => Ok(None),
    }
}

async fn call(sa: &SuperadminTx, function: &str, tenant_id: Uuid) -> Result<TenantSchema> {
    let row = sa
        .conn()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT tenancy.{function}($1)"),
            [Value::from(tenant_id)],
        ))
        .await
        .map_err(|e| match crate::error::sqlstate(&e).as_deref() {
            Some("42P06") | Some("42710") => ServiceError::Conflict(
                "a schema or role with this tenant's name already exists".into(),
            ),
            _ => e.into(),
        })?
        .ok_or(ServiceError::NotFound("tenant"))?;
    let name: String = row.try_get_by_index(0)?;
    TenantSchema::parse(&name)
        .map_err(|_| ServiceError::Unavailable("the tenant's schema is unavailable".into()))
}

/// Creates tenant `tenant_id`'s schema, role, tables and reference data (its row must already
/// say `dedicated`), in the superadmin transaction.
pub(crate) async fn create_schema(sa: &SuperadminTx, tenant_id: Uuid) -> Result<TenantSchema> {
    let schema = call(sa, "provision_dedicated", tenant_id).await?;
    tracing::info!(tenant_id = %tenant_id, schema = %schema, "tenant schema provisioned");
    Ok(schema)
}

/// Drops tenant `tenant_id`'s schema and role, in the superadmin transaction.
pub(crate) async fn drop_schema(sa: &SuperadminTx, tenant_id: Uuid) -> Result<TenantSchema> {
    let schema = call(sa, "drop_dedicated", tenant_id).await?;
    tracing::info!(tenant_id = %tenant_id, schema = %schema, "tenant schema dropped");
    Ok(schema)
}
