//! The one implementation behind a project's child resources (`/v1/projects/{project_id}/...`:
//! documents, tasks): find inside the project, list newest first with a cursor, create, change
//! and delete, each in one tenant transaction with its audit row. A resource module keeps only
//! what is its own: its views, its request bodies and their checks, and the `#[utoipa::path]`
//! handlers that call these functions; a new child resource implements [`ProjectChild`] for its
//! entity (a few lines) and does the same.

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, FixedOffset};
use entity::{TenantScoped, projects};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel,
    QueryFilter,
};
use service::{ServiceError, TenantContext, TenantTx, audit};
use uuid::Uuid;

use crate::pagination::{PageParams, page};
use crate::problem::Problem;
use crate::routes::CursorPage;
use crate::state::AppState;

/// A tenant table whose rows belong to a project.
pub trait ProjectChild: TenantScoped {
    /// The resource's name in errors and audit actions (`document` → `document.create`).
    const NAME: &'static str;
    /// The column referencing the project.
    fn project_column() -> Self::Column;
    /// The row's id column.
    fn id_column() -> Self::Column;
    /// The creation time column (the collection's order, with the id).
    fn created_column() -> Self::Column;
    /// A row's `(created_at, id)`, its position in the collection.
    fn position(row: &Self::Model) -> (DateTime<FixedOffset>, Uuid);
}

impl ProjectChild for entity::documents::Entity {
    const NAME: &'static str = "document";
    fn project_column() -> Self::Column {
        entity::documents::Column::ProjectId
    }
    fn id_column() -> Self::Column {
        entity::documents::Column::Id
    }
    fn created_column() -> Self::Column {
        entity::documents::Column::CreatedAt
    }
    fn position(row: &Self::Model) -> (DateTime<FixedOffset>, Uuid) {
        (row.created_at, row.id)
    }
}

impl ProjectChild for entity::tasks::Entity {
    const NAME: &'static str = "task";
    fn project_column() -> Self::Column {
        entity::tasks::Column::ProjectId
    }
    fn id_column() -> Self::Column {
        entity::tasks::Column::Id
    }
    fn created_column() -> Self::Column {
        entity::tasks::Column::CreatedAt
    }
    fn position(row: &Self::Model) -> (DateTime<FixedOffset>, Uuid) {
        (row.created_at, row.id)
    }
}

/// 404 unless the project exists in this tenant.
pub async fn ensure_project(tx: &TenantTx, project_id: Uuid) -> Result<(), ServiceError> {
    tx.get::<projects::Entity>("project", project_id)
        .await
        .map(|_| ())
}

/// The row `id` of the project `project_id` (404 for either, in another tenant too).
pub async fn find<E: ProjectChild>(
    tx: &TenantTx,
    project_id: Uuid,
    id: Uuid,
) -> Result<E::Model, ServiceError> {
    ensure_project(tx, project_id).await?;
    tx.select::<E>()
        .filter(E::project_column().eq(project_id))
        .filter(E::id_column().eq(id))
        .one(tx.conn())
        .await?
        .ok_or(ServiceError::NotFound(E::NAME))
}

/// Writes `<name>.<verb>` to the audit trail for row `id` of `project_id`.
async fn record<E: ProjectChild>(
    tx: &TenantTx,
    verb: &str,
    project_id: Uuid,
    id: Uuid,
) -> Result<(), ServiceError> {
    audit::record(
        tx,
        &format!("{}.{verb}", E::NAME),
        Some(E::NAME),
        Some(id.to_string()),
        serde_json::json!({ "project_id": project_id }),
    )
    .await
}

/// A page of the project's rows matching `filter`, newest first.
pub async fn list<E, V>(
    state: &AppState,
    ctx: &TenantContext,
    project_id: Uuid,
    filter: Condition,
    params: &PageParams,
) -> Result<Json<CursorPage<V>>, Problem>
where
    E: ProjectChild,
    V: From<E::Model>,
{
    let (limit, cursor) = params.parse()?;
    let filter = filter.add(E::project_column().eq(project_id));
    let (rows, next) = state
        .tenantry()
        .with_tenant(ctx, async |tx| {
            ensure_project(tx, project_id).await?;
            Ok(page::<E>(
                tx,
                filter,
                E::created_column(),
                E::id_column(),
                E::position,
                limit,
                cursor,
            )
            .await)
        })
        .await??;
    Ok(Json(CursorPage::of(rows, next)))
}

/// One row.
pub async fn get<E, V>(
    state: &AppState,
    ctx: &TenantContext,
    project_id: Uuid,
    id: Uuid,
) -> Result<Json<V>, Problem>
where
    E: ProjectChild,
    V: From<E::Model>,
{
    let row = state
        .tenantry()
        .with_tenant(ctx, async |tx| find::<E>(tx, project_id, id).await)
        .await?;
    Ok(Json(row.into()))
}

/// Inserts the row `build` makes (it may check references first) into the project; 201.
pub async fn create<A, V>(
    state: &AppState,
    ctx: &TenantContext,
    project_id: Uuid,
    build: impl AsyncFnOnce(&TenantTx) -> Result<A, ServiceError>,
) -> Result<(StatusCode, Json<V>), Problem>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    A::Entity: ProjectChild,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    V: From<<A::Entity as EntityTrait>::Model>,
{
    ctx.require_write()?;
    let row = state
        .tenantry()
        .with_tenant(ctx, async |tx| {
            ensure_project(tx, project_id).await?;
            let row = tx.insert(build(tx).await?).await?;
            let (_, id) = <A::Entity as ProjectChild>::position(&row);
            record::<A::Entity>(tx, "create", project_id, id).await?;
            Ok(row)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Applies `change` to the row; `change` returns `None` when there is nothing to change (the
/// row is returned as it is, nothing is written or audited).
pub async fn update<A, V>(
    state: &AppState,
    ctx: &TenantContext,
    project_id: Uuid,
    id: Uuid,
    change: impl AsyncFnOnce(
        &TenantTx,
        <A::Entity as EntityTrait>::Model,
    ) -> Result<Option<A>, ServiceError>,
) -> Result<Json<V>, Problem>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    A::Entity: ProjectChild,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A> + Clone,
    V: From<<A::Entity as EntityTrait>::Model>,
{
    ctx.require_write()?;
    let row = state
        .tenantry()
        .with_tenant(ctx, async |tx| {
            let current = find::<A::Entity>(tx, project_id, id).await?;
            let Some(am) = change(tx, current.clone()).await? else {
                return Ok(current);
            };
            let row = tx.update(am).await?;
            record::<A::Entity>(tx, "update", project_id, id).await?;
            Ok(row)
        })
        .await?;
    Ok(Json(row.into()))
}

/// Deletes the row; 204.
pub async fn delete<E: ProjectChild>(
    state: &AppState,
    ctx: &TenantContext,
    project_id: Uuid,
    id: Uuid,
) -> Result<StatusCode, Problem> {
    ctx.require_write()?;
    state
        .tenantry()
        .with_tenant(ctx, async |tx| {
            find::<E>(tx, project_id, id).await?;
            tx.delete_by_id::<E>(id).await?;
            record::<E>(tx, "delete", project_id, id).await
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
