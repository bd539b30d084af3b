//! Background work for a tenant. The context travels explicitly: the job gets a copy of the
//! caller's context turned into [`crate::Actor::System`] (same tenant, same role) by
//! [`TenantContext::for_job`], never a tenant looked up from anywhere else, and runs in its own
//! tenant-bound transaction, committed when the job returns `Ok`.

use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::context::TenantContext;
use crate::error::Result;
use crate::tenantry::Tenantry;
use crate::tx::TenantTx;

impl Tenantry {
    /// Runs `work` for `ctx`'s tenant in the background, in a transaction of its own (committed
    /// on `Ok`, rolled back on `Err`), as `Actor::System { job }`. Must be called within a
    /// Tokio runtime.
    ///
    /// The future of an `AsyncFnOnce` cannot be required to be `Send` on stable Rust, so the
    /// job is driven on Tokio's blocking pool (`spawn_blocking` + `Handle::block_on`), where it
    /// need not be. Each running job therefore holds one blocking-pool thread; keep jobs to
    /// database work of bounded length.
    pub fn spawn_for_tenant<T, F>(
        &self,
        ctx: &TenantContext,
        job: &'static str,
        work: F,
    ) -> JoinHandle<Result<T>>
    where
        T: Send + 'static,
        F: for<'a> AsyncFnOnce(&'a TenantTx) -> Result<T> + Send + 'static,
    {
        let tenantry = self.clone();
        let ctx = ctx.for_job(job);
        let handle = tokio::runtime::Handle::current();
        let span = tracing::info_span!("job", job, tenant_id = %ctx.tenant_id());
        tokio::task::spawn_blocking(move || {
            handle.block_on(
                async move {
                    let out = tenantry.with_tenant(&ctx, work).await;
                    if let Err(error) = &out {
                        tracing::warn!(%error, "background job failed");
                    }
                    out
                }
                .instrument(span),
            )
        })
    }
}

/// Compile-time check: every future of the service's public operations is `Send`, so the api
/// crate's handlers (which must be `Send`) can await them.
#[cfg(test)]
#[allow(dead_code, clippy::let_underscore_future)]
mod send_futures {
    use uuid::Uuid;

    use crate::api_keys::{self, NewApiKey};
    use crate::context::MemberRole;
    use crate::superadmin::SuperadminTx;
    use crate::tenants::{self, NewTenant, TenantStatus};
    use crate::tx::{Page, TenantTx};
    use crate::{Tenantry, audit, members, permissions};

    fn send<T: Send>(_: T) {}

    fn all(
        svc: &Tenantry,
        tx: &TenantTx,
        sa: &SuperadminTx,
        out: &mut (dyn std::io::Write + Send),
        new_key: NewApiKey,
        new_tenant: NewTenant,
    ) {
        let id = Uuid::nil();
        send(svc.authenticate_api_key("tk_"));
        send(svc.member_context(id, id));
        send(svc.find_login("a@b"));
        send(api_keys::issue(tx, new_key));
        send(api_keys::list(tx));
        send(api_keys::revoke(tx, id));
        send(api_keys::rotate(tx, id));
        send(members::list(tx));
        send(members::add(tx, id, MemberRole::Member));
        send(members::add_by_email(tx, "a@b", MemberRole::Member));
        send(members::change_role(tx, id, MemberRole::Member));
        send(members::remove(tx, id));
        send(permissions::create_role(tx, "r", &[]));
        send(permissions::assign_role(tx, id, id));
        send(permissions::has_permission(tx, "a", "b"));
        send(audit::record(tx, "a", None, None, serde_json::Value::Null));
        send(audit::list(tx, Page::default()));
        send(tenants::current(tx));
        send(tenants::update_current(tx, None, None));
        send(sa.create_user("a@b", "n", None));
        send(sa.provision_tenant(new_tenant, id));
        send(sa.list_tenants());
        send(sa.set_tenant_status(id, TenantStatus::Active));
        send(sa.offboard(id, out));
    }
}
