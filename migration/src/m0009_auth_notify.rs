//! Authentication changes announced on a channel: every API process caches successful API-key
//! authentications and drops a tenant's entries when this channel names the tenant.
//!
//! `tenancy.notify_auth_change()` (PL/pgSQL, SECURITY INVOKER, no table access) sends
//! `pg_notify('tenantry_auth', '<tenant uuid>')`; AFTER UPDATE OR DELETE row triggers call it on
//! `tenancy.api_keys` (revocation, rotation, expiry, limits), `tenancy.tenants` (suspension,
//! status) and `tenancy.tenant_users` (a key's creator removed or demoted). PostgreSQL delivers
//! a notification only when the writing transaction commits, to every session listening on
//! the channel, so a rolled-back change invalidates nothing and a committed one reaches every
//! process. The payload is a tenant id only; a forged notification (any login may `NOTIFY`)
//! can only make a process forget cached entries, never accept a key.

use crate::ddl::TriggerCreate;
use crate::dsl::{Function, FunctionCreateStatement, FunctionLanguage, Volatility};
use crate::names::TENANCY_SCHEMA;
use crate::plan::MigrationPlan;

/// The channel API processes listen on.
pub const AUTH_CHANNEL: &str = "tenantry_auth";

/// `tenancy.notify_auth_change()`, the trigger function.
pub const NOTIFY_AUTH_CHANGE: (&str, &str) = (TENANCY_SCHEMA, "notify_auth_change");

/// The tables whose changes end cached authentications, with their tenant column.
pub const WATCHED: [(&str, &str); 3] = [
    ("api_keys", "tenant_id"),
    ("tenants", "id"),
    ("tenant_users", "tenant_id"),
];

fn notify_function() -> FunctionCreateStatement {
    // Recording a key's last use changes nothing about its validity: no notification. One
    // branch per tenant column: PL/pgSQL prepares each statement on first use, so the
    // branch naming a column the table lacks is never prepared for it.
    Function::create()
        .name(NOTIFY_AUTH_CHANGE)
        .returns("trigger")
        .language(FunctionLanguage::PlPgSql)
        .volatility(Volatility::Volatile)
        .body(format!(
            "BEGIN \
               IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'api_keys' \
                  AND to_jsonb(OLD) - 'last_used_at' - 'updated_at' \
                    = to_jsonb(NEW) - 'last_used_at' - 'updated_at' THEN \
                 RETURN NULL; \
               END IF; \
               IF TG_TABLE_NAME = 'tenants' THEN \
                 PERFORM pg_notify('{AUTH_CHANNEL}', OLD.id::text); \
               ELSE \
                 PERFORM pg_notify('{AUTH_CHANNEL}', OLD.tenant_id::text); \
               END IF; \
               RETURN NULL; \
             END;"
        ))
        .to_owned()
}

/// The plan of this migration.
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    let function = notify_function();
    plan.step(
        "function tenancy.notify_auth_change()",
        &function,
        &function.reverse(),
    );
    for (table, _) in WATCHED {
        let trigger = TriggerCreate::after_update_or_delete(
            &format!("{table}_notify_auth_change"),
            TENANCY_SCHEMA,
            table,
            NOTIFY_AUTH_CHANGE,
        );
        plan.step(
            format!("trigger {table}_notify_auth_change"),
            &trigger,
            &trigger.reverse(),
        );
    }
    plan
}
