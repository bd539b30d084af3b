//! `/admin`: the superadmin API. Every request needs the admin token and an
//! `X-Tenantry-Reason`, and runs in one audited superadmin transaction (actor `admin-token`,
//! the header as reason).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use service::{SuperadminGrant, SuperadminTx};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::admin::{ADMIN_ACTOR, AdminGrant};
use crate::auth::password::{MAX_PASSWORD_CHARS, hash_off_thread};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::problem::{Problem, ProblemKind};
use crate::routes::tenant::TenantView;
use crate::routes::{Items, check_text};
use crate::state::AppState;
use service::tenants::{NewTenant, TenantStatus};

/// The media type of an offboarding export.
pub const NDJSON: &str = "application/x-ndjson";

/// A tenant to provision, with its first owner.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Display name (1 to 200 characters).
    pub name: String,
    /// Unique URL-safe name: `^[a-z0-9][a-z0-9-]{0,62}$`.
    pub slug: String,
    /// `free` (default), `pro` or `enterprise`.
    #[serde(default = "free")]
    pub plan: String,
    /// Where its data is meant to live (default `eu`).
    #[serde(default = "eu")]
    pub region: String,
    /// The administrator's address.
    pub admin_email: Option<String>,
    /// The first owner's address; an existing user is reused, otherwise one is created.
    pub owner_email: String,
    /// The new owner's name (when the user is created).
    #[serde(default)]
    pub owner_full_name: String,
    /// The new owner's password (when the user is created; argon2id-hashed).
    pub owner_password: Option<String>,
    /// `shared` (default: rows in the shared tables) or `dedicated` (its own schema).
    #[serde(default)]
    pub isolation: IsolationMode,
}

/// How a tenant is isolated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IsolationMode {
    /// Rows in the shared tables, kept apart by `tenant_id` and row level security.
    #[default]
    Shared,
    /// Its own schema and database role (the same tables and policies inside).
    Dedicated,
}

impl From<IsolationMode> for service::tenants::Isolation {
    fn from(m: IsolationMode) -> Self {
        match m {
            IsolationMode::Shared => Self::Shared,
            IsolationMode::Dedicated => Self::Dedicated,
        }
    }
}

/// Query parameters of the offboarding call.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OffboardQuery {
    /// Offboard a dedicated tenant that still has members (they are removed with it).
    #[serde(default)]
    pub force: bool,
}

fn free() -> String {
    "free".into()
}

fn eu() -> String {
    "eu".into()
}

/// A provisioned tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProvisionedTenant {
    /// The tenant.
    pub tenant: TenantView,
    /// Its owner.
    pub owner_user_id: Uuid,
}

async fn open(
    state: &AppState,
    grant: &AdminGrant,
    action: &str,
    scope: Option<Uuid>,
) -> Result<SuperadminTx, Problem> {
    Ok(state
        .tenantry()
        .superadmin(SuperadminGrant {
            actor: ADMIN_ACTOR,
            reason: &grant.reason,
            action,
            scope,
        })
        .await?)
}

/// Every tenant.
#[utoipa::path(get, path = "/admin/tenants", tag = "admin", security(("admin" = [])),
    params(("X-Tenantry-Reason" = String, Header, description = "Why (audited)")),
    responses((status = 200, description = "The tenants", body = Items<TenantView>)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    grant: AdminGrant,
) -> Result<Json<Items<TenantView>>, Problem> {
    let sa = open(&state, &grant, "admin.tenants.list", None).await?;
    let tenants = sa.list_tenants().await?;
    sa.commit().await?;
    Ok(Json(Items::new(
        tenants.into_iter().map(Into::into).collect(),
    )))
}

/// Provisions a tenant and its owner.
#[utoipa::path(post, path = "/admin/tenants", tag = "admin", security(("admin" = [])),
    params(("X-Tenantry-Reason" = String, Header, description = "Why (audited)")),
    request_body = CreateTenant,
    responses((status = 201, description = "Provisioned", body = ProvisionedTenant)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    grant: AdminGrant,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<ProvisionedTenant>), Problem> {
    check_text("name", &body.name, 1, 200)?;
    check_text("slug", &body.slug, 1, 63)?;
    check_text("owner_email", &body.owner_email, 3, 320)?;
    if !body.owner_full_name.is_empty() {
        check_text("owner_full_name", &body.owner_full_name, 1, 200)?;
    }
    if let Some(e) = &body.admin_email {
        check_text("admin_email", e, 3, 320)?;
    }
    let password_hash = match body.owner_password {
        Some(p) if p.is_empty() || p.chars().count() > MAX_PASSWORD_CHARS => {
            return Err(Problem::invalid(
                "owner_password",
                format!("1 to {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        Some(p) => Some(hash_off_thread(p).await.map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            Problem::new(ProblemKind::Internal)
        })?),
        None => None,
    };
    let sa = open(&state, &grant, "admin.tenants.create", None).await?;
    let owner_email = body.owner_email.trim();
    let existing = entity::users::Entity::find()
        .filter(entity::users::Column::Email.eq(owner_email))
        .one(sa.conn())
        .await
        .map_err(service::ServiceError::from)?;
    let owner = match existing {
        Some(user) => user.id,
        None => {
            sa.create_user(
                owner_email,
                body.owner_full_name.trim(),
                password_hash.as_deref(),
            )
            .await?
        }
    };
    let (tenant, _) = sa
        .provision_tenant_with(
            NewTenant {
                name: body.name.trim().to_owned(),
                slug: body.slug.trim().to_owned(),
                plan: body.plan,
                region: body.region,
                admin_email: body.admin_email.map(|e| e.trim().to_owned()),
            },
            owner,
            body.isolation.into(),
        )
        .await?;
    sa.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(ProvisionedTenant {
            tenant: tenant.into(),
            owner_user_id: owner,
        }),
    ))
}

async fn set_status(
    state: &AppState,
    grant: &AdminGrant,
    id: Uuid,
    status: TenantStatus,
    action: &str,
) -> Result<Json<TenantView>, Problem> {
    let sa = open(state, grant, action, Some(id)).await?;
    let tenant = sa.set_tenant_status(id, status).await?;
    sa.commit().await?;
    Ok(Json(tenant.into()))
}

/// Suspends a tenant: its keys and tokens stop working.
#[utoipa::path(post, path = "/admin/tenants/{id}/suspend", tag = "admin", security(("admin" = [])),
    params(("id" = Uuid, Path, description = "The tenant"), ("X-Tenantry-Reason" = String, Header, description = "Why (audited)")),
    responses((status = 200, description = "Suspended", body = TenantView)))]
pub async fn suspend(
    State(state): State<AppState>,
    grant: AdminGrant,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TenantView>, Problem> {
    set_status(
        &state,
        &grant,
        id,
        TenantStatus::Suspended,
        "tenant.suspend",
    )
    .await
}

/// Reactivates a suspended tenant.
#[utoipa::path(post, path = "/admin/tenants/{id}/reactivate", tag = "admin", security(("admin" = [])),
    params(("id" = Uuid, Path, description = "The tenant"), ("X-Tenantry-Reason" = String, Header, description = "Why (audited)")),
    responses((status = 200, description = "Active again", body = TenantView)))]
pub async fn reactivate(
    State(state): State<AppState>,
    grant: AdminGrant,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TenantView>, Problem> {
    set_status(
        &state,
        &grant,
        id,
        TenantStatus::Active,
        "tenant.reactivate",
    )
    .await
}

/// Offboards a tenant: exports every row as JSON lines, then purges them, in one audited
/// transaction. The export is the response body (`application/x-ndjson`); it is complete before
/// the purge commits, and if the purge fails nothing is deleted and a problem is returned
/// instead. Row counts are in `X-Tenantry-Exported-Rows` and `X-Tenantry-Purged-Rows`.
#[utoipa::path(post, path = "/admin/tenants/{id}/offboard", tag = "admin", security(("admin" = [])),
    params(("id" = Uuid, Path, description = "The tenant"), OffboardQuery, ("X-Tenantry-Reason" = String, Header, description = "Why (audited)")),
    responses((status = 200, description = "The export, one JSON object per line; the tenant (and a dedicated tenant's schema) is gone", content_type = "application/x-ndjson", body = String)))]
pub async fn offboard(
    State(state): State<AppState>,
    grant: AdminGrant,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<OffboardQuery>,
) -> Result<Response, Problem> {
    let sa = open(&state, &grant, "tenant.offboard", Some(id)).await?;
    let mut export: Vec<u8> = Vec::new();
    let report = sa.offboard_with(id, q.force, &mut export).await?;
    sa.commit().await?;
    let exported: u64 = report.exported.iter().map(|(_, n)| n).sum();
    let purged: u64 = report.purged.iter().map(|(_, n)| n).sum();
    let mut response = (StatusCode::OK, export).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    headers.insert("x-tenantry-exported-rows", HeaderValue::from(exported));
    headers.insert("x-tenantry-purged-rows", HeaderValue::from(purged));
    Ok(response)
}

/// The isolation a tenant is to be moved to.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetIsolation {
    /// `dedicated` (promote into its own schema) or `shared` (demote back).
    pub isolation: IsolationMode,
}

/// How a move call ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MoveOutcomeView {
    /// The tenant already had this isolation and no move was in progress: nothing done.
    AlreadyThere,
    /// The tenant has the new isolation and the old rows are gone.
    Done,
}

/// One table's counts in a move.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TableMoveView {
    /// `schema.table` the rows moved to.
    pub table: String,
    /// Rows copied in batches.
    pub copied: u64,
    /// Rows deleted by the switch (deleted at the source during the copy).
    pub delta_deleted: u64,
    /// Rows written by the switch (written at the source during the copy).
    pub delta_written: u64,
    /// Rows verified equal (count and checksum) before the switch committed.
    pub verified: u64,
    /// Old rows removed after the switch.
    pub removed: u64,
}

/// What a move did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MoveView {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Its isolation now.
    pub isolation: IsolationMode,
    /// How the call ended.
    pub outcome: MoveOutcomeView,
    /// Copy batches run (each its own short transaction).
    pub batches: u32,
    /// Per table, parents first.
    pub tables: Vec<TableMoveView>,
    /// The switch's pause: from asking for the tenant's move lock to the commit, in ms.
    pub switch_ms: Option<f64>,
}

/// Moves a tenant between isolation modes while it keeps working: rows copied in batches,
/// one short switch transaction (the tenant's writes wait for it) that verifies row counts
/// and checksums before the mode flips, then the old rows removed; every step audited. A
/// move interrupted anywhere is resumed by calling again; calling again after it finished
/// changes nothing. A move in progress to the other mode, or a verification mismatch (nothing
/// changed), is a 409; a switch that cannot pause the tenant in time is a 503 (nothing
/// changed; call again).
#[utoipa::path(post, path = "/admin/tenants/{id}/isolation", tag = "admin", security(("admin" = [])),
    params(("id" = Uuid, Path, description = "The tenant"), ("X-Tenantry-Reason" = String, Header, description = "Why (audited)")),
    request_body = SetIsolation,
    responses((status = 200, description = "The tenant has the requested isolation", body = MoveView)))]
pub async fn set_isolation(
    State(state): State<AppState>,
    grant: AdminGrant,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SetIsolation>,
) -> Result<Json<MoveView>, Problem> {
    let report = state
        .tenantry()
        .move_tenant(
            ADMIN_ACTOR,
            &grant.reason,
            id,
            body.isolation.into(),
            &service::MoveOptions::default(),
        )
        .await?;
    Ok(Json(MoveView {
        tenant_id: report.tenant_id,
        isolation: body.isolation,
        outcome: match report.outcome {
            service::MoveOutcome::AlreadyThere => MoveOutcomeView::AlreadyThere,
            _ => MoveOutcomeView::Done,
        },
        batches: report.batches,
        tables: report
            .tables
            .into_iter()
            .map(|t| TableMoveView {
                table: t.table,
                copied: t.copied,
                delta_deleted: t.delta_deleted,
                delta_written: t.delta_written,
                verified: t.verified,
                removed: t.removed,
            })
            .collect(),
        switch_ms: report.switch_ms,
    }))
}
