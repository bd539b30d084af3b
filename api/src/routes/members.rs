//! `/v1/members`: the tenant's members (owners and admins change them).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service::MemberRole;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiPath};
use crate::problem::Problem;
use crate::routes::{Items, check_text};
use crate::state::AppState;
use service::members;

/// A member's role, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including managing owners.
    Owner,
    /// Members, keys and settings.
    Admin,
    /// Reads and writes data.
    Member,
    /// Reads only.
    Viewer,
}

impl From<Role> for MemberRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Owner => MemberRole::Owner,
            Role::Admin => MemberRole::Admin,
            Role::Member => MemberRole::Member,
            Role::Viewer => MemberRole::Viewer,
        }
    }
}

impl From<MemberRole> for Role {
    fn from(r: MemberRole) -> Self {
        match r {
            MemberRole::Owner => Role::Owner,
            MemberRole::Admin => Role::Admin,
            MemberRole::Member => Role::Member,
            MemberRole::Viewer => Role::Viewer,
        }
    }
}

/// A member of the tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    /// The user.
    pub user_id: Uuid,
    /// Their address.
    pub email: String,
    /// Their name.
    pub full_name: String,
    /// Their role here.
    pub role: Role,
    /// Member since.
    pub created_at: DateTime<Utc>,
}

impl From<members::Member> for MemberView {
    fn from(m: members::Member) -> Self {
        Self {
            user_id: m.user_id,
            email: m.email,
            full_name: m.full_name,
            role: m.role.into(),
            created_at: m.created_at,
        }
    }
}

/// Adds an existing user by address.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteMember {
    /// The user's address (the user must already exist).
    #[schema(
        min_length = 3,
        max_length = 320,
        pattern = "^[^\\s@\\x00-\\x1f\\x7f-\\x9f]+@[^\\s\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub email: String,
    /// The role to give (only owners may add owners).
    pub role: Role,
}

/// A new role.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    /// The role.
    pub role: Role,
}

/// The members.
#[utoipa::path(get, path = "/v1/members", tag = "members", security(("bearer" = [])),
    responses((status = 200, description = "The members", body = Items<MemberView>)))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Items<MemberView>>, Problem> {
    let rows = state
        .tenantry()
        .with_tenant(&ctx, async |tx| members::list(tx).await)
        .await?;
    Ok(Json(Items::new(rows.into_iter().map(Into::into).collect())))
}

/// Adds an existing user to the tenant (owners and admins).
#[utoipa::path(post, path = "/v1/members", tag = "members", security(("bearer" = [])),
    request_body = InviteMember,
    responses((status = 201, description = "Added", body = MemberView)))]
pub async fn invite(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(body): ApiJson<InviteMember>,
) -> Result<(StatusCode, Json<MemberView>), Problem> {
    check_text("email", &body.email, 3, 320)?;
    let email = body.email.trim().to_owned();
    let member = state
        .tenantry()
        .with_tenant(&ctx, async |tx| {
            members::add_by_email(tx, &email, body.role.into()).await
        })
        .await?;
    Ok((StatusCode::CREATED, Json(member.into())))
}

/// Changes a member's role (owners and admins; the last owner stays an owner).
#[utoipa::path(patch, path = "/v1/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The member")),
    request_body = ChangeRole,
    responses((status = 200, description = "Changed", body = MemberView)))]
pub async fn change_role(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath(user_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ChangeRole>,
) -> Result<Json<MemberView>, Problem> {
    let member = state
        .tenantry()
        .with_tenant(&ctx, async |tx| {
            members::change_role(tx, user_id, body.role.into()).await
        })
        .await?;
    Ok(Json(member.into()))
}

/// Removes a member (owners and admins; the last owner cannot leave).
#[utoipa::path(delete, path = "/v1/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The member")),
    responses((status = 204, description = "Removed")))]
pub async fn remove(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath(user_id): ApiPath<Uuid>,
) -> Result<StatusCode, Problem> {
    state
        .tenantry()
        .with_tenant(&ctx, async |tx| members::remove(tx, user_id).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
