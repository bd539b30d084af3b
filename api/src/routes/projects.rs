//! `/v1/projects`: the tenant's projects. Newest first, filtered by status and name prefix,
//! paginated with an opaque cursor.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use entity::projects;
use sea_orm::sea_query::LikeExpr;
use sea_orm::{ActiveValue, ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiPath, ApiQuery, nullable};
use crate::pagination::{PageOf, PageParams};
use crate::problem::Problem;
use crate::routes::{CursorPage, check_json_object, check_long_text, check_member, check_text};
use crate::state::AppState;
use service::audit;

/// A project's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    /// Being worked on (the default).
    Active,
    /// On hold.
    Paused,
    /// Done.
    Completed,
    /// Kept for reference.
    Archived,
}

impl ProjectStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Archived => "archived",
        }
    }
}

/// A project.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProjectView {
    /// The project's id.
    pub id: Uuid,
    /// The member who owns it, if any.
    pub owner_id: Option<Uuid>,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its status (`active`, `paused`, `completed`, `archived`; older rows may hold others).
    pub status: String,
    /// Free-form metadata.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<projects::Model> for ProjectView {
    fn from(m: projects::Model) -> Self {
        Self {
            id: m.id,
            owner_id: m.owner_id,
            name: m.name,
            description: m.description,
            status: m.status,
            metadata: m.metadata,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// A project to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Its name (1 to 200 characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
    /// Its description (up to 10000 characters).
    #[serde(default)]
    #[schema(
        max_length = 10000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub description: String,
    /// Its status (default `active`).
    pub status: Option<ProjectStatus>,
    /// Free-form metadata (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// A member of the tenant who owns it.
    pub owner_id: Option<Uuid>,
}

/// A change to a project; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchProject {
    /// New name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// New description.
    #[schema(
        max_length = 10000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub description: Option<String>,
    /// New status.
    pub status: Option<ProjectStatus>,
    /// New metadata (replaces the old).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// New owner (a member), or `null` for none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>, nullable)]
    pub owner_id: Option<Option<Uuid>>,
}

/// `GET /v1/projects` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProjectQuery {
    /// Only projects with this status.
    pub status: Option<ProjectStatus>,
    /// Only projects whose name starts with this (case-sensitive).
    #[param(
        max_length = 200,
        pattern = "^$|^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name_prefix: Option<String>,
    /// Rows per page (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([A-Za-z0-9_-]{32})?$")]
    pub cursor: Option<String>,
}

/// `LIKE` pattern for "starts with `prefix`", with the wildcards of `prefix` escaped.
pub fn prefix_pattern(prefix: &str) -> LikeExpr {
    let mut escaped = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    LikeExpr::new(escaped).escape('\\')
}

/// The tenant's projects, newest first.
#[utoipa::path(get, path = "/v1/projects", tag = "projects", security(("bearer" = [])),
    params(ProjectQuery),
    responses((status = 200, description = "A page of projects", body = CursorPage<ProjectView>)))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiQuery(q): ApiQuery<ProjectQuery>,
) -> Result<Json<CursorPage<ProjectView>>, Problem> {
    let (limit, cursor) = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .parse()?;
    let mut filter = Condition::all();
    if let Some(status) = q.status {
        filter = filter.add(projects::Column::Status.eq(status.as_str()));
    }
    if let Some(prefix) = q.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        check_text("name_prefix", prefix, 1, 200).map_err(|p| p.as_bad_request())?;
        filter = filter.add(projects::Column::Name.like(prefix_pattern(prefix)));
    }
    // One statement: the list is a unit of work of its own, in one round trip.
    let (rows, next) = PageOf::<projects::Entity, _> {
        filter,
        created_col: projects::Column::CreatedAt,
        id_col: projects::Column::Id,
        key: |m: &projects::Model| (m.created_at, m.id),
        limit,
        after: cursor,
    }
    .read_one_trip(state.tenantry(), &ctx)
    .await?;
    Ok(Json(CursorPage::of(rows, next)))
}

/// Creates a project.
#[utoipa::path(post, path = "/v1/projects", tag = "projects", security(("bearer" = [])),
    request_body = CreateProject,
    responses((status = 201, description = "Created", body = ProjectView)))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(StatusCode, Json<ProjectView>), Problem> {
    check_text("name", &body.name, 1, 200)?;
    check_long_text("description", &body.description, 10_000)?;
    if let Some(m) = &body.metadata {
        check_json_object("metadata", m)?;
    }
    ctx.require_write()?;
    let row = state
        .tenantry()
        .with_tenant(&ctx, async |tx| {
            if let Some(owner) = body.owner_id {
                check_member(tx, "owner_id", owner).await?;
            }
            let row = tx
                .insert(projects::ActiveModel {
                    name: ActiveValue::Set(body.name.trim().to_owned()),
                    description: ActiveValue::Set(body.description),
                    status: ActiveValue::Set(
                        body.status
                            .unwrap_or(ProjectStatus::Active)
                            .as_str()
                            .to_owned(),
                    ),
                    metadata: ActiveValue::Set(
                        body.metadata.unwrap_or_else(|| serde_json::json!({})),
                    ),
                    owner_id: ActiveValue::Set(body.owner_id),
                    ..Default::default()
                })
                .await?;
            audit::record(
                tx,
                "project.create",
                Some("project"),
                Some(row.id.to_string()),
                serde_json::json!({}),
            )
            .await?;
            Ok(row)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// One project.
#[utoipa::path(get, path = "/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    responses((status = 200, description = "The project", body = ProjectView)))]
pub async fn get_one(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ProjectView>, Problem> {
    // One statement: in one round trip (the service adds the tenant filter).
    let row = state
        .tenantry()
        .fetch_one(
            &ctx,
            projects::Entity::find().filter(projects::Column::Id.eq(id)),
        )
        .await?
        .ok_or(service::ServiceError::NotFound("project"))?;
    Ok(Json(row.into()))
}

/// Changes a project.
#[utoipa::path(patch, path = "/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    request_body = PatchProject,
    responses((status = 200, description = "Changed", body = ProjectView)))]
pub async fn patch(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchProject>,
) -> Result<Json<ProjectView>, Problem> {
    if let Some(name) = &body.name {
        check_text("name", name, 1, 200)?;
    }
    if let Some(d) = &body.description {
        check_long_text("description", d, 10_000)?;
    }
    if let Some(m) = &body.metadata {
        check_json_object("metadata", m)?;
    }
    ctx.require_write()?;
    let row = state
        .tenantry()
        .with_tenant(&ctx, async |tx| {
            let current = tx.get::<projects::Entity>("project", id).await?;
            if let Some(Some(owner)) = body.owner_id {
                check_member(tx, "owner_id", owner).await?;
            }
            let mut am = current.clone().into_active_model();
            let mut changed = false;
            if let Some(name) = body.name {
                am.name = ActiveValue::Set(name.trim().to_owned());
                changed = true;
            }
            if let Some(d) = body.description {
                am.description = ActiveValue::Set(d);
                changed = true;
            }
            if let Some(s) = body.status {
                am.status = ActiveValue::Set(s.as_str().to_owned());
                changed = true;
            }
            if let Some(m) = body.metadata {
                am.metadata = ActiveValue::Set(m);
                changed = true;
            }
            if let Some(owner) = body.owner_id {
                am.owner_id = ActiveValue::Set(owner);
                changed = true;
            }
            if !changed {
                return Ok(current);
            }
            let row = tx.update(am).await?;
            audit::record(
                tx,
                "project.update",
                Some("project"),
                Some(id.to_string()),
                serde_json::json!({}),
            )
            .await?;
            Ok(row)
        })
        .await?;
    Ok(Json(row.into()))
}

/// Deletes a project with its documents and tasks.
#[utoipa::path(delete, path = "/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The project")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, Problem> {
    state
        .tenantry()
        .with_tenant(&ctx, async |tx| {
            if !tx.delete_by_id::<projects::Entity>(id).await? {
                return Err(service::ServiceError::NotFound("project"));
            }
            audit::record(
                tx,
                "project.delete",
                Some("project"),
                Some(id.to_string()),
                serde_json::json!({}),
            )
            .await
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
