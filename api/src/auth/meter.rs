//! Metering: every API-key request becomes a `request` usage event (quantity 1, the route
//! template as endpoint, the latency, the status in metadata).
//!
//! The event is written after the response is produced, on a spawned task with its own
//! tenant-bound transaction, so metering adds no latency and a metering failure never fails
//! the request (it is logged). The task runs as the key itself (not as a system job), so the
//! event carries the key's id and counts towards its monthly quota. Events of requests still
//! in flight when the process is killed are lost; graceful shutdown waits for connections,
//! not for these tasks.

use std::time::Duration;

use axum::http::StatusCode;
use service::TenantContext;

use crate::state::AppState;
use service::usage::{self, UsageEventInput};

/// Records one request of an API key in the background.
pub fn record_request(
    state: &AppState,
    ctx: TenantContext,
    endpoint: Option<String>,
    latency: Duration,
    status: StatusCode,
) {
    let tenantry = state.tenantry().clone();
    let mut event = UsageEventInput::new("request", 1);
    event.endpoint = endpoint;
    // Clamped to the bound `usage::record` accepts: a refused event would go unmetered.
    event.latency_ms = Some(
        i32::try_from(latency.as_millis())
            .unwrap_or(i32::MAX)
            .min(usage::MAX_LATENCY_MS),
    );
    event.metadata = serde_json::json!({ "status": status.as_u16() });
    tokio::spawn(async move {
        let result = tenantry
            .with_tenant(&ctx, async |tx| usage::record(tx, event).await)
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, tenant_id = %ctx.tenant_id(), "could not meter a request");
        }
    });
}
