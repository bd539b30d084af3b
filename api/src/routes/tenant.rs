//! `GET/PATCH /v1/tenant`: the caller's own tenant.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::extract::ApiJson;
use crate::problem::Problem;
use crate::state::AppState;
use service::tenants;

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    /// The tenant's id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Unique URL-safe name.
    pub slug: String,
    /// Where its data is meant to live.
    pub region: String,
    /// `free`, `pro` or `enterprise`.
    pub plan: String,
    /// `active`, `suspended`, `trial` or `cancelled`.
    pub status: String,
    /// The administrator's address, if known.
    pub admin_email: Option<String>,
    /// Free-form settings.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// `shared` or `dedicated` (its own schema).
    pub isolation: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<entity::tenants::Model> for TenantView {
    fn from(m: entity::tenants::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            slug: m.slug,
            region: m.region,
            plan: m.plan,
            status: m.status,
            admin_email: m.admin_email,
            settings: m.settings,
            isolation: m.isolation,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// A change to the current tenant (admins).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// New display name (1 to 200 characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// New settings (a JSON object; replaces the old one).
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// The tenant of the credential.
#[utoipa::path(get, path = "/v1/tenant", tag = "tenant", security(("bearer" = [])),
    responses((status = 200, description = "The current tenant", body = TenantView)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<TenantView>, Problem> {
    let tenant = state
        .tenantry()
        .with_tenant(&ctx, async |tx| tenants::current(tx).await)
        .await?;
    Ok(Json(tenant.into()))
}

/// Renames the tenant or replaces its settings (owners and admins).
#[utoipa::path(patch, path = "/v1/tenant", tag = "tenant", security(("bearer" = [])),
    request_body = TenantPatch,
    responses((status = 200, description = "The changed tenant", body = TenantView)))]
pub async fn patch_tenant(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(body): ApiJson<TenantPatch>,
) -> Result<Json<TenantView>, Problem> {
    ctx.require_admin()?;
    if let Some(name) = &body.name {
        crate::routes::check_text("name", name, 1, 200)?;
    }
    if let Some(settings) = &body.settings
        && !settings.is_object()
    {
        return Err(Problem::invalid("settings", "must be a JSON object"));
    }
    let tenant = state
        .tenantry()
        .with_tenant(&ctx, async |tx| {
            tenants::update_current(tx, body.name.map(|n| n.trim().to_owned()), body.settings).await
        })
        .await?;
    Ok(Json(tenant.into()))
}
