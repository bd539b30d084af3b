//! `/v1/api-keys`: the tenant's API keys (owners and admins issue, revoke and rotate them).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiPath};
use crate::problem::Problem;
use crate::routes::{Items, check_text};
use crate::state::AppState;
use service::api_keys;

/// An API key (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    /// The key's id.
    pub id: Uuid,
    /// A name for people.
    pub name: String,
    /// The public prefix (the part after `tk_` of the secret).
    pub prefix: String,
    /// What the key may do (`admin` makes it act as an admin).
    pub scopes: Vec<String>,
    /// Requests per minute (absent: the server's default).
    pub rate_limit_per_minute: Option<u32>,
    /// Units per calendar month (absent: unlimited).
    pub monthly_quota: Option<u64>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// The user the key is attributed to (who issued or rotated it, or the creator of the key
    /// that did); absent when unknown. Removing that user revokes the key, demoting them
    /// revokes it when it acts with more than their new role.
    pub created_by: Option<Uuid>,
}

impl From<api_keys::ApiKeyInfo> for ApiKeyView {
    fn from(k: api_keys::ApiKeyInfo) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            rate_limit_per_minute: k.rate_limit_per_minute,
            monthly_quota: k.monthly_quota,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
            created_at: k.created_at,
            created_by: k.created_by,
        }
    }
}

/// A key and its secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedKeyView {
    /// The key.
    pub key: ApiKeyView,
    /// The secret (`tk_<prefix>_<secret>`): store it now, it cannot be shown again.
    pub secret: String,
}

impl From<api_keys::IssuedApiKey> for IssuedKeyView {
    fn from(k: api_keys::IssuedApiKey) -> Self {
        Self {
            key: k.key.into(),
            secret: k.secret,
        }
    }
}

/// A key to issue.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A name for people (1 to 200 characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
    /// Scopes (default none; `admin` lets the key administer the tenant).
    #[serde(default)]
    #[schema(max_items = 32, value_type = Vec<crate::routes::Label>)]
    pub scopes: Vec<String>,
    /// When it stops working (default never); must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
    /// Requests per minute, 1 to 6000 (default: the server's, 600).
    #[serde(default, deserialize_with = "crate::routes::whole::optional")]
    #[schema(minimum = 1, maximum = 6000)]
    pub rate_limit_per_minute: Option<u32>,
    /// Units per calendar month, at least 1 (default unlimited). Shared with the keys of the
    /// same name: a rotated key keeps counting what its predecessors used this month.
    #[serde(default, deserialize_with = "crate::routes::whole::optional")]
    #[schema(minimum = 1, maximum = 9223372036854775807_u64)]
    pub monthly_quota: Option<u64>,
}

/// The tenant's keys (owners and admins: key metadata is an administrator's concern).
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", security(("bearer" = [])),
    responses((status = 200, description = "The keys", body = Items<ApiKeyView>)))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Items<ApiKeyView>>, Problem> {
    ctx.require_admin()?;
    let keys = state
        .tenantry()
        .with_tenant(&ctx, async |tx| api_keys::list(tx).await)
        .await?;
    Ok(Json(Items::new(keys.into_iter().map(Into::into).collect())))
}

/// Issues a key; the response holds its secret, shown only this once.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", security(("bearer" = [])),
    request_body = CreateApiKey,
    responses((status = 201, description = "Issued", body = IssuedKeyView)))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<IssuedKeyView>), Problem> {
    check_text("name", &body.name, 1, 200)?;
    if body.scopes.len() > 32 {
        return Err(Problem::invalid("scopes", "at most 32"));
    }
    for (i, scope) in body.scopes.iter().enumerate() {
        check_text(&format!("scopes[{i}]"), scope, 1, 64)?;
    }
    if body.rate_limit_per_minute == Some(0) {
        return Err(Problem::invalid(
            "rate_limit_per_minute",
            "must be at least 1",
        ));
    }
    let new = api_keys::NewApiKey {
        name: body.name.trim().to_owned(),
        scopes: body.scopes,
        expires_at: body.expires_at,
        rate_limit_per_minute: body.rate_limit_per_minute,
        monthly_quota: body.monthly_quota,
    };
    let issued = state
        .tenantry()
        .with_tenant(&ctx, async |tx| api_keys::issue(tx, new).await)
        .await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// Revokes a key: its next request is refused.
#[utoipa::path(post, path = "/v1/api-keys/{id}/revoke", tag = "api-keys", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The key")),
    responses((status = 200, description = "Revoked", body = ApiKeyView)))]
pub async fn revoke(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ApiKeyView>, Problem> {
    let key = state
        .tenantry()
        .with_tenant(&ctx, async |tx| api_keys::revoke(tx, id).await)
        .await?;
    Ok(Json(key.into()))
}

/// Replaces a key: the old key is revoked and a new one (a new id, the same name, scopes,
/// limits and expiry) is issued, its secret shown this once. A revoked or expired key cannot
/// be rotated (409).
#[utoipa::path(post, path = "/v1/api-keys/{id}/rotate", tag = "api-keys", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The key")),
    responses((status = 200, description = "The replacement key", body = IssuedKeyView)))]
pub async fn rotate(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<IssuedKeyView>, Problem> {
    let issued = state
        .tenantry()
        .with_tenant(&ctx, async |tx| api_keys::rotate(tx, id).await)
        .await?;
    Ok(Json(issued.into()))
}
