//! The tenant's audit trail (`tenancy.audit_logs`): what happened inside one tenant, who did it.
//!
//! Rows are append-only for the application (the app role has no UPDATE or DELETE on the
//! table). The actor comes from the transaction's context, never from the caller: a user's id
//! lands in `actor_user_id`, an API key's in `actor_api_key_id`, and background work names its
//! job in `details.job`.

use entity::audit_logs;
use sea_orm::{ActiveModelTrait, ActiveValue, Order};
use tracing::Instrument;

use crate::context::Actor;
use crate::error::{Result, ServiceError};
use crate::tx::{Page, TenantTx, all};

/// The longest accepted action name, in characters.
pub const MAX_ACTION_CHARS: usize = 100;

/// Appends an entry to the tenant's audit trail, in the caller's transaction (so it commits or
/// rolls back with the change it describes).
///
/// Any role may append (a viewer's sign-in is worth recording too); the trail cannot be
/// changed afterwards. `details` should be a JSON object; for background work the job's name
/// is added to it as `job`.
pub async fn record(
    tx: &TenantTx,
    action: &str,
    resource_type: Option<&str>,
    resource_id: Option<String>,
    details: serde_json::Value,
) -> Result<()> {
    let action = action.trim();
    if action.is_empty() || action.chars().count() > MAX_ACTION_CHARS {
        return Err(ServiceError::invalid(
            "action",
            format!("required, at most {MAX_ACTION_CHARS} characters"),
        ));
    }
    let ctx = tx.context();
    let mut details = match details {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        other => other,
    };
    if let (Actor::System { job }, Some(map)) = (ctx.actor(), details.as_object_mut()) {
        map.insert("job".into(), serde_json::Value::from(*job));
    }
    let row = audit_logs::ActiveModel {
        tenant_id: ActiveValue::Set(tx.tenant_id()),
        actor_user_id: ActiveValue::Set(ctx.user_id()),
        actor_api_key_id: ActiveValue::Set(ctx.api_key_id()),
        action: ActiveValue::Set(action.to_owned()),
        resource_type: ActiveValue::Set(resource_type.map(str::to_owned)),
        resource_id: ActiveValue::Set(resource_id),
        details: ActiveValue::Set(details),
        ..Default::default()
    };
    // Not `TenantTx::insert`: that refuses viewers, and the trail records what viewers do too.
    // The tenant is set explicitly above and row level security checks it again.
    row.insert(tx.conn())
        .instrument(tracing::debug_span!("audit.record", tenant_id = %tx.tenant_id(), action))
        .await?;
    Ok(())
}

/// The tenant's audit trail, newest first, one page at a time. Admins only.
pub async fn list(tx: &TenantTx, page: Page) -> Result<Vec<audit_logs::Model>> {
    tx.context().require_admin()?;
    tx.list::<audit_logs::Entity>(
        all(),
        vec![(audit_logs::Column::CreatedAt, Order::Desc)],
        page,
    )
    .instrument(tracing::debug_span!("audit.list", tenant_id = %tx.tenant_id()))
    .await
}
