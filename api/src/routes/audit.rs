//! `GET /v1/audit-logs`: the tenant's audit trail, newest first (owners and admins).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service::Page;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::extract::ApiQuery;
use crate::problem::Problem;
use crate::routes::Items;
use crate::state::AppState;
use service::audit;

/// An audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// The entry's id.
    pub id: Uuid,
    /// The user who acted, if a user did.
    pub actor_user_id: Option<Uuid>,
    /// The API key that acted, if a key did.
    pub actor_api_key_id: Option<Uuid>,
    /// What was done.
    pub action: String,
    /// The kind of thing acted on.
    pub resource_type: Option<String>,
    /// The thing acted on.
    pub resource_id: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<entity::audit_logs::Model> for AuditEntry {
    fn from(m: entity::audit_logs::Model) -> Self {
        Self {
            id: m.id,
            actor_user_id: m.actor_user_id,
            actor_api_key_id: m.actor_api_key_id,
            action: m.action,
            resource_type: m.resource_type,
            resource_id: m.resource_id,
            details: m.details,
            created_at: m.created_at.with_timezone(&Utc),
        }
    }
}

/// `?limit=&offset=` (the audit trail pages by offset, as the service's list does).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Rows (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// Rows to skip (default 0, at most 100000).
    #[param(minimum = 0, maximum = 100000)]
    pub offset: Option<u64>,
}

/// The tenant's audit trail.
#[utoipa::path(get, path = "/v1/audit-logs", tag = "audit", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, description = "Audit entries, newest first", body = Items<AuditEntry>)))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Items<AuditEntry>>, Problem> {
    ctx.require_admin()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(
            Problem::bad_request("limit must be between 1 and 200").field("limit", "1 to 200")
        );
    }
    let offset = q.offset.unwrap_or(0);
    if offset > 100_000 {
        return Err(
            Problem::bad_request("offset is at most 100000").field("offset", "at most 100000")
        );
    }
    let rows = state
        .tenantry()
        .with_tenant(&ctx, async |tx| {
            audit::list(tx, Page { limit, offset }).await
        })
        .await?;
    Ok(Json(Items::new(rows.into_iter().map(Into::into).collect())))
}
