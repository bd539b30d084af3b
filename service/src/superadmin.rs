//! The superadmin escape: crossing tenants is a distinct, named capability.
//!
//! A [`SuperadminTx`] runs on the superadmin pool (a different login, in `tenantry_superadmin`),
//! only when that pool is configured, only with an actor and a reason, and writes a
//! `superadmin_audit_logs` row in the same transaction before anything else. Its policies let it
//! see every row only while `tenantry.superadmin_reason` is set in the transaction, so there is
//! no way to reach "all tenants" by forgetting to set a tenant.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, IsolationLevel, Statement,
    TransactionTrait,
};
use uuid::Uuid;

use crate::error::{Result, ServiceError};

/// What a superadmin transaction is for.
#[derive(Debug, Clone)]
pub struct SuperadminGrant<'a> {
    /// Who (a person or service name; required).
    pub actor: &'a str,
    /// Why (required; lands in the audit trail).
    pub reason: &'a str,
    /// What, e.g. `tenant.suspend`.
    pub action: &'a str,
    /// The tenant concerned, if one.
    pub scope: Option<Uuid>,
}

/// A transaction that may cross tenants, already audited.
pub struct SuperadminTx {
    txn: DatabaseTransaction,
    actor: String,
}

impl SuperadminTx {
    pub(crate) async fn begin(
        pool: &DatabaseConnection,
        grant: SuperadminGrant<'_>,
    ) -> Result<Self> {
        let actor = grant.actor.trim();
        let reason = grant.reason.trim();
        if actor.is_empty() || actor.len() > 200 {
            return Err(ServiceError::invalid(
                "actor",
                "required, at most 200 characters",
            ));
        }
        if reason.is_empty() || reason.len() > 2000 {
            return Err(ServiceError::invalid(
                "reason",
                "required, at most 2000 characters",
            ));
        }
        // READ COMMITTED whatever the database's or the login's default: a move's switch runs in
        // this transaction and reads the rows tenant transactions committed while it waited on
        // the tenant's move lock, which a snapshot taken before the wait would not show
        // (`a_default_repeatable_read_never_makes_the_switch_lose_a_write`).
        let txn = pool
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await?;
        // The reason is free text, so it travels as a bind parameter, never inside SQL text.
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_catalog.set_config('tenantry.superadmin_reason', $1, true)",
            [reason.into()],
        ))
        .await?;
        let tx = Self {
            txn,
            actor: actor.to_owned(),
        };
        tx.audit(
            grant.action,
            grant.scope,
            serde_json::json!({ "reason": reason }),
        )
        .await?;
        tracing::info!(actor = %actor, action = grant.action, scope = ?grant.scope, "superadmin transaction");
        Ok(tx)
    }

    /// The underlying transaction (sees every tenant's rows).
    pub fn conn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Who acts.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Writes one more audit row in this transaction.
    pub async fn audit(
        &self,
        action: &str,
        scope: Option<Uuid>,
        details: serde_json::Value,
    ) -> Result<()> {
        self.txn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO tenancy.superadmin_audit_logs (actor, reason, scope_tenant_id, action, details) \
                 VALUES ($1, pg_catalog.current_setting('tenantry.superadmin_reason'), $2, $3, $4)",
                [self.actor.clone().into(), scope.into(), action.into(), details.into()],
            ))
            .await?;
        Ok(())
    }

    /// Commits the work and its audit rows together.
    pub async fn commit(self) -> Result<()> {
        Ok(self.txn.commit().await?)
    }
}
