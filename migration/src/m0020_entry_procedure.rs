//! The schema entry as a procedure: `CALL tenancy.enter_tenant()` in every tenant
//! transaction's opening, where `SELECT tenancy.enter_tenant_schema()` planned and executed a
//! `SELECT` around the call.
//!
//! `CALL` runs the procedure from its own statement: no planner, no executor, no result row
//! for the client to read. Counted with callgrind (`docs/pgbench/entry_instructions.sh`), that is
//! about 23,400 fewer server instructions per tenant transaction (195,400 → 172,000), for the
//! very same body: m0019's, unchanged (the lock before the lookup, the READ COMMITTED check, the
//! resets), SECURITY INVOKER, no `SET` options, `EXECUTE` for the app role only.
//!
//! `tenancy.enter_tenant_schema()` stays, so a binary of the release before this one still
//! opens its transactions during a rolling deploy; its body becomes one `CALL` of the
//! procedure, so there is one entry, not two to keep alike. `down` restores its m0019 body and
//! drops the procedure.

use sea_orm::sea_query::Alias;

use crate::dsl::{
    Function, FunctionCreateStatement, FunctionLanguage, Grant, GrantObject, Privilege, Revoke,
};
use crate::m0010_dedicated_tenants::enter_function;
use crate::m0019_cheaper_entry::enter_body_cheaper;
use crate::names::{APP_ROLE, TENANCY_SCHEMA};
use crate::plan::MigrationPlan;

/// The procedure every tenant transaction's opening calls.
pub const ENTER_PROCEDURE: &str = "enter_tenant";

/// The body of `tenancy.enter_tenant_schema()` from this migration on: the procedure's call.
pub fn enter_body_calls_procedure() -> String {
    format!("BEGIN CALL {TENANCY_SCHEMA}.{ENTER_PROCEDURE}(); END")
}

/// `CREATE OR REPLACE PROCEDURE tenancy.enter_tenant()` with `body`, as the function was made
/// (PL/pgSQL, SECURITY INVOKER, no `SET` options).
pub(crate) fn enter_procedure(body: String) -> FunctionCreateStatement {
    Function::create()
        .procedure()
        .name((TENANCY_SCHEMA, ENTER_PROCEDURE))
        .or_replace()
        .language(FunctionLanguage::PlPgSql)
        .security_invoker()
        .body(body)
        .to_owned()
}

/// The migration (both sets: the entry is in the core).
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    let procedure = enter_procedure(enter_body_cheaper());
    plan.step(
        format!("procedure {TENANCY_SCHEMA}.{ENTER_PROCEDURE}(): m0019's entry, called with CALL"),
        &procedure,
        &procedure.reverse(),
    );
    let name = (TENANCY_SCHEMA, ENTER_PROCEDURE);
    let revoke = Revoke::privileges([Privilege::Execute])
        .on(GrantObject::procedure(name, Vec::<&str>::new()))
        .from_public()
        .to_owned();
    plan.step(
        format!("revoke EXECUTE on {TENANCY_SCHEMA}.{ENTER_PROCEDURE}() from PUBLIC"),
        &revoke,
        &revoke.reverse(),
    );
    let grant = Grant::privileges([Privilege::Execute])
        .on(GrantObject::procedure(name, Vec::<&str>::new()))
        .to(Alias::new(APP_ROLE))
        .to_owned();
    plan.step(
        format!("grant EXECUTE on {TENANCY_SCHEMA}.{ENTER_PROCEDURE}() to {APP_ROLE}"),
        &grant,
        &grant.reverse(),
    );
    plan.step(
        "function tenancy.enter_tenant_schema(): calls the procedure (for binaries of the \
         release before)",
        &enter_function(enter_body_calls_procedure()),
        &enter_function(enter_body_cheaper()),
    );
    plan
}
