//! `/v1/projects/{project_id}/documents`: a project's documents, newest first, cursor-paginated.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use entity::documents;
use sea_orm::{ActiveValue, Condition, IntoActiveModel};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::PageParams;
use crate::problem::Problem;
use crate::routes::project_child as child;
use crate::routes::{CursorPage, check_long_text, check_text};
use crate::state::AppState;

/// The longest document body, in characters (the request body limit usually binds first).
const MAX_BODY_CHARS: usize = 100_000;

/// A document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentView {
    /// The document's id.
    pub id: Uuid,
    /// The project holding it.
    pub project_id: Uuid,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<documents::Model> for DocumentView {
    fn from(m: documents::Model) -> Self {
        Self {
            id: m.id,
            project_id: m.project_id,
            title: m.title,
            body: m.body,
            tags: m.tags,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// A document to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDocument {
    /// Its title (1 to 500 characters).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub title: String,
    /// Its text.
    #[serde(default)]
    #[schema(
        max_length = 100000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub body: String,
    /// Its tags (at most 50, each 1 to 64 characters).
    #[serde(default)]
    #[schema(max_items = 50, value_type = Vec<crate::routes::Label>)]
    pub tags: Vec<String>,
}

/// A change to a document; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchDocument {
    /// New title.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub title: Option<String>,
    /// New text.
    #[schema(
        max_length = 100000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub body: Option<String>,
    /// New tags (replace the old).
    #[schema(max_items = 50, value_type = Option<Vec<crate::routes::Label>>)]
    pub tags: Option<Vec<String>>,
}

fn check_tags(tags: &[String]) -> Result<(), Problem> {
    if tags.len() > 50 {
        return Err(Problem::invalid("tags", "at most 50"));
    }
    for (i, tag) in tags.iter().enumerate() {
        check_text(&format!("tags[{i}]"), tag, 1, 64)?;
    }
    Ok(())
}

/// A project's documents, newest first.
#[utoipa::path(get, path = "/v1/projects/{project_id}/documents", tag = "documents", security(("bearer" = [])),
    params(("project_id" = Uuid, Path, description = "The project"), PageParams),
    responses((status = 200, description = "A page of documents", body = CursorPage<DocumentView>)))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath(project_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<CursorPage<DocumentView>>, Problem> {
    child::list::<documents::Entity, _>(&state, &ctx, project_id, Condition::all(), &params).await
}

/// Adds a document to a project.
#[utoipa::path(post, path = "/v1/projects/{project_id}/documents", tag = "documents", security(("bearer" = [])),
    params(("project_id" = Uuid, Path, description = "The project")),
    request_body = CreateDocument,
    responses((status = 201, description = "Created", body = DocumentView)))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath(project_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateDocument>,
) -> Result<(StatusCode, Json<DocumentView>), Problem> {
    check_text("title", &body.title, 1, 500)?;
    check_long_text("body", &body.body, MAX_BODY_CHARS)?;
    check_tags(&body.tags)?;
    child::create(&state, &ctx, project_id, async |_| {
        Ok(documents::ActiveModel {
            project_id: ActiveValue::Set(project_id),
            title: ActiveValue::Set(body.title.trim().to_owned()),
            body: ActiveValue::Set(body.body),
            tags: ActiveValue::Set(body.tags),
            ..Default::default()
        })
    })
    .await
}

/// One document.
#[utoipa::path(get, path = "/v1/projects/{project_id}/documents/{document_id}", tag = "documents", security(("bearer" = [])),
    params(("project_id" = Uuid, Path, description = "The project"), ("document_id" = Uuid, Path, description = "The document")),
    responses((status = 200, description = "The document", body = DocumentView)))]
pub async fn get_one(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath((project_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<DocumentView>, Problem> {
    child::get::<documents::Entity, _>(&state, &ctx, project_id, id).await
}

/// Changes a document.
#[utoipa::path(patch, path = "/v1/projects/{project_id}/documents/{document_id}", tag = "documents", security(("bearer" = [])),
    params(("project_id" = Uuid, Path, description = "The project"), ("document_id" = Uuid, Path, description = "The document")),
    request_body = PatchDocument,
    responses((status = 200, description = "Changed", body = DocumentView)))]
pub async fn patch(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath((project_id, id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<PatchDocument>,
) -> Result<Json<DocumentView>, Problem> {
    if let Some(t) = &body.title {
        check_text("title", t, 1, 500)?;
    }
    if let Some(b) = &body.body {
        check_long_text("body", b, MAX_BODY_CHARS)?;
    }
    if let Some(tags) = &body.tags {
        check_tags(tags)?;
    }
    child::update(
        &state,
        &ctx,
        project_id,
        id,
        async |_, current: documents::Model| {
            if body.title.is_none() && body.body.is_none() && body.tags.is_none() {
                return Ok(None);
            }
            let mut am = current.into_active_model();
            if let Some(t) = body.title {
                am.title = ActiveValue::Set(t.trim().to_owned());
            }
            if let Some(b) = body.body {
                am.body = ActiveValue::Set(b);
            }
            if let Some(tags) = body.tags {
                am.tags = ActiveValue::Set(tags);
            }
            Ok(Some(am))
        },
    )
    .await
}

/// Deletes a document.
#[utoipa::path(delete, path = "/v1/projects/{project_id}/documents/{document_id}", tag = "documents", security(("bearer" = [])),
    params(("project_id" = Uuid, Path, description = "The project"), ("document_id" = Uuid, Path, description = "The document")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath((project_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, Problem> {
    child::delete::<documents::Entity>(&state, &ctx, project_id, id).await
}
