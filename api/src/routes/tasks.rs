//! `/v1/projects/{project_id}/tasks`: a project's tasks, newest first, cursor-paginated,
//! filterable by status.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use entity::tasks;
use sea_orm::{ActiveValue, ColumnTrait, Condition, IntoActiveModel};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiPath, ApiQuery, nullable};
use crate::pagination::PageParams;
use crate::problem::Problem;
use crate::routes::project_child as child;
use crate::routes::{CursorPage, check_member, check_text};
use crate::state::AppState;

/// A task's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started (the default).
    Todo,
    /// Being worked on.
    InProgress,
    /// Finished.
    Done,
    /// Dropped.
    Cancelled,
}

impl TaskStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Todo => "todo",
            Self::InProgress => "in_progress",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    /// The task's id.
    pub id: Uuid,
    /// The project holding it.
    pub project_id: Uuid,
    /// Its title.
    pub title: String,
    /// Its status (`todo`, `in_progress`, `done`, `cancelled`; older rows may hold others).
    pub status: String,
    /// The member it is assigned to.
    pub assignee_id: Option<Uuid>,
    /// When it is due.
    pub due_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<tasks::Model> for TaskView {
    fn from(m: tasks::Model) -> Self {
        Self {
            id: m.id,
            project_id: m.project_id,
            title: m.title,
            status: m.status,
            assignee_id: m.assignee_id,
            due_at: m.due_at.map(|d| d.with_timezone(&Utc)),
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// A task to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// Its title (1 to 500 characters).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub title: String,
    /// Its status (default `todo`).
    pub status: Option<TaskStatus>,
    /// A member of the tenant to assign it to.
    pub assignee_id: Option<Uuid>,
    /// When it is due.
    pub due_at: Option<DateTime<Utc>>,
}

/// A change to a task; absent fields stay as they are, `null` clears a nullable one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTask {
    /// New title.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub title: Option<String>,
    /// New status.
    pub status: Option<TaskStatus>,
    /// New assignee (a member), or `null` for none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>, nullable)]
    pub assignee_id: Option<Option<Uuid>>,
    /// New due date, or `null` for none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>, nullable)]
    pub due_at: Option<Option<DateTime<Utc>>>,
}

/// `GET .../tasks` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Rows per page (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([A-Za-z0-9_-]{32})?$")]
    pub cursor: Option<String>,
}

/// A project's tasks, newest first.
#[utoipa::path(get, path = "/v1/projects/{project_id}/tasks", tag = "tasks", security(("bearer" = [])),
    params(("project_id" = Uuid, Path, description = "The project"), TaskQuery),
    responses((status = 200, description = "A page of tasks", body = CursorPage<TaskView>)))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath(project_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> Result<Json<CursorPage<TaskView>>, Problem> {
    let params = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let mut filter = Condition::all();
    if let Some(status) = q.status {
        filter = filter.add(tasks::Column::Status.eq(status.as_str()));
    }
    child::list::<tasks::Entity, _>(&state, &ctx, project_id, filter, &params).await
}

/// Adds a task to a project.
#[utoipa::path(post, path = "/v1/projects/{project_id}/tasks", tag = "tasks", security(("bearer" = [])),
    params(("project_id" = Uuid, Path, description = "The project")),
    request_body = CreateTask,
    responses((status = 201, description = "Created", body = TaskView)))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath(project_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateTask>,
) -> Result<(StatusCode, Json<TaskView>), Problem> {
    check_text("title", &body.title, 1, 500)?;
    child::create(&state, &ctx, project_id, async |tx| {
        if let Some(a) = body.assignee_id {
            check_member(tx, "assignee_id", a).await?;
        }
        Ok(tasks::ActiveModel {
            project_id: ActiveValue::Set(project_id),
            title: ActiveValue::Set(body.title.trim().to_owned()),
            status: ActiveValue::Set(body.status.unwrap_or(TaskStatus::Todo).as_str().to_owned()),
            assignee_id: ActiveValue::Set(body.assignee_id),
            due_at: ActiveValue::Set(body.due_at.map(Into::into)),
            ..Default::default()
        })
    })
    .await
}

/// One task.
#[utoipa::path(get, path = "/v1/projects/{project_id}/tasks/{task_id}", tag = "tasks", security(("bearer" = [])),
    params(("project_id" = Uuid, Path, description = "The project"), ("task_id" = Uuid, Path, description = "The task")),
    responses((status = 200, description = "The task", body = TaskView)))]
pub async fn get_one(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath((project_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<TaskView>, Problem> {
    child::get::<tasks::Entity, _>(&state, &ctx, project_id, id).await
}

/// Changes a task.
#[utoipa::path(patch, path = "/v1/projects/{project_id}/tasks/{task_id}", tag = "tasks", security(("bearer" = [])),
    params(("project_id" = Uuid, Path, description = "The project"), ("task_id" = Uuid, Path, description = "The task")),
    request_body = PatchTask,
    responses((status = 200, description = "Changed", body = TaskView)))]
pub async fn patch(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath((project_id, id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<PatchTask>,
) -> Result<Json<TaskView>, Problem> {
    if let Some(t) = &body.title {
        check_text("title", t, 1, 500)?;
    }
    child::update(
        &state,
        &ctx,
        project_id,
        id,
        async |tx, current: tasks::Model| {
            if let Some(Some(a)) = body.assignee_id {
                check_member(tx, "assignee_id", a).await?;
            }
            if body.title.is_none()
                && body.status.is_none()
                && body.assignee_id.is_none()
                && body.due_at.is_none()
            {
                return Ok(None);
            }
            let mut am = current.into_active_model();
            if let Some(t) = body.title {
                am.title = ActiveValue::Set(t.trim().to_owned());
            }
            if let Some(s) = body.status {
                am.status = ActiveValue::Set(s.as_str().to_owned());
            }
            if let Some(a) = body.assignee_id {
                am.assignee_id = ActiveValue::Set(a);
            }
            if let Some(d) = body.due_at {
                am.due_at = ActiveValue::Set(d.map(Into::into));
            }
            Ok(Some(am))
        },
    )
    .await
}

/// Deletes a task.
#[utoipa::path(delete, path = "/v1/projects/{project_id}/tasks/{task_id}", tag = "tasks", security(("bearer" = [])),
    params(("project_id" = Uuid, Path, description = "The project"), ("task_id" = Uuid, Path, description = "The task")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiPath((project_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, Problem> {
    child::delete::<tasks::Entity>(&state, &ctx, project_id, id).await
}
