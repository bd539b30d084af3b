//! `/healthz` (the process is up), `/readyz` (the database answers and no migration is
//! pending), `/openapi.json`.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::{Problem, ProblemKind};
use crate::readiness::MigrationState;
use crate::state::AppState;

/// The answer of `/healthz` and `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` (healthz) or `ready` (readyz).
    pub status: String,
    /// `ok` when the database answered (readyz only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// `current`, or `unknown` when the probe's login may not read the migrations table
    /// (readyz only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<String>,
}

/// Liveness: the process answers. Never touches the database.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        database: None,
        migrations: None,
    })
}

/// Readiness: the database answers and every migration this build knows is applied.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "The database does not answer or migrations are pending",
         body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    let unavailable = |detail: String| {
        Problem::new(ProblemKind::Unavailable)
            .detail(detail)
            .retry_after(5)
    };
    if let Err(err) = state.tenantry().ping().await {
        tracing::warn!(error = %err, "readyz: database does not answer");
        return Err(unavailable("the database does not answer".into()));
    }
    let migrations = match state.readiness().migrations().await {
        Ok(MigrationState::Current) => "current",
        Ok(MigrationState::Unknown) => "unknown",
        Ok(MigrationState::Pending(names)) => {
            return Err(unavailable(format!("{} migration(s) pending", names.len())));
        }
        Err(err) => {
            tracing::warn!(error = %err, "readyz: migration check failed");
            return Err(unavailable("the migration state could not be read".into()));
        }
    };
    Ok(Json(Health {
        status: "ready".into(),
        database: Some("ok".into()),
        migrations: Some(migrations.into()),
    }))
}

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}
