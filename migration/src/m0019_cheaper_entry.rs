//! A cheaper `tenancy.enter_tenant_schema()`: the same checks, the same lock, the same lookup,
//! in fewer executor runs.
//!
//! Counted with callgrind (`docs/pgbench/entry_instructions.sh`), PL/pgSQL rebuilds the state
//! of every expression it evaluates once per transaction, and checks `EXECUTE` on each function
//! in it; a `PERFORM` or a query runs the whole executor. The entry runs once per tenant
//! transaction, so what it costs is mostly how many of these it starts:
//!
//! * **The move lock (m0014) is taken by an assignment**, `done :=
//!   pg_advisory_xact_lock_shared(..)`, a PL/pgSQL simple expression, where `PERFORM` ran it as
//!   a query through SPI. Same lock, same moment (before the tenant row is read, which still
//!   takes a snapshot of its own after it).
//! * **One guard over the four first checks**: m0016's READ COMMITTED check and three resets
//!   each compared a setting in an `IF` of its own. Now one `IF` compares all four, and only
//!   when one of them differs do m0016's four statements run, unchanged, in their order (so a
//!   transaction that is not READ COMMITTED still gets `TN002` before anything is reset).
//! * **A partial index of the dedicated tenants** (`tenants_dedicated_idx`: `id`, covering
//!   `schema_name`, where `isolation = 'dedicated'`). Where the planner reads it (with more
//!   than a handful of tenants), a shared tenant's lookup is an empty descent of an index of
//!   the dedicated tenants alone, no heap page, and a dedicated one's an index-only read. Built
//!   concurrently, so this migration runs outside a transaction, behind the long-transaction
//!   guard, each step skipped when already done.
//!
//! Measured with `docs/pgbench/entry_instructions.sh`: 209,000 → 196,000 server instructions
//! per tenant transaction (opening and `COMMIT`), docs/BENCHMARKS.md ("The entry in fewer
//! executor runs"). `down` restores m0016's body and drops the index.

use sea_orm::sea_query::{Alias, ConditionalStatement, Expr, ExprTrait, Index};

use crate::dedicated::MOVE_LOCK_CLASS;
use crate::guards::Guard;
use crate::m0010_dedicated_tenants::enter_function;
use crate::m0014_tenant_moves::move_lock_statement;
use crate::m0016_entry_unchanged_resets::{
    RESETS, conditional, enter_body_unchanged_resets, read_committed_only,
};
use crate::names::TENANCY_SCHEMA;
use crate::plan::{MigrationPlan, concurrent_index_step};

/// The partial index the entry's tenant lookup reads.
pub const DEDICATED_INDEX: &str = "tenants_dedicated_idx";

/// The move lock as a PL/pgSQL assignment (a simple expression, no SPI query).
fn move_lock_assignment() -> String {
    format!(
        "done := pg_catalog.pg_advisory_xact_lock_shared({MOVE_LOCK_CLASS}, \
         pg_catalog.hashtext(tenancy.current_tenant_id()::text)); "
    )
}

/// True when setting `name` is not `value`, as m0016's statements compare it.
fn differs(name: &str, value: &str) -> String {
    format!(
        "pg_catalog.current_setting('{name}') OPERATOR(pg_catalog.<>) '{value}'::pg_catalog.text"
    )
}

/// m0016's four first statements, in their order.
fn first_checks() -> String {
    RESETS
        .iter()
        .fold(read_committed_only(), |checks, (name, value)| {
            checks + &conditional(name, value)
        })
}

/// The four first statements behind one guard: they run only when a setting differs.
fn guarded_checks() -> String {
    let condition = std::iter::once(differs("transaction_isolation", "read committed"))
        .chain(RESETS.iter().map(|(name, value)| differs(name, value)))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!("IF {condition} THEN {}END IF; ", first_checks())
}

/// The body of `tenancy.enter_tenant_schema()` from this migration on.
pub fn enter_body_cheaper() -> String {
    enter_body_unchanged_resets()
        .replacen(&first_checks(), &guarded_checks(), 1)
        .replacen(&move_lock_statement(), &move_lock_assignment(), 1)
}

/// The migration (both sets: the entry and the tenants table are in the core).
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    // The concurrent build waits for every transaction older than it (as m0005's and m0008's).
    plan.guard(Guard::no_long_transactions());
    plan.push(concurrent_index_step(
        format!("index {DEDICATED_INDEX} (id) INCLUDE (schema_name), dedicated tenants"),
        TENANCY_SCHEMA,
        "tenants",
        DEDICATED_INDEX,
        Index::create()
            .col(Alias::new("id"))
            .include(Alias::new("schema_name"))
            .and_where(Expr::col(Alias::new("isolation")).eq("dedicated"))
            .to_owned(),
    ));
    plan.step(
        "function tenancy.enter_tenant_schema(): the move lock as an assignment, one guard \
         over the first checks",
        &enter_function(enter_body_cheaper()),
        &enter_function(enter_body_unchanged_resets()),
    );
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_guard_and_the_lock_change() {
        let before = enter_body_unchanged_resets();
        let after = enter_body_cheaper();
        assert_eq!(before.matches(&first_checks()).count(), 1, "{before}");
        assert_eq!(
            before.matches(&move_lock_statement()).count(),
            1,
            "{before}"
        );
        // Each statement the guard holds compares what the guard compares.
        for (name, value) in RESETS {
            assert!(
                conditional(name, value).starts_with(&format!("IF {} THEN", differs(name, value))),
                "{name}"
            );
        }
        assert!(
            read_committed_only().starts_with(&format!(
                "IF {} THEN",
                differs("transaction_isolation", "read committed")
            )),
            "{}",
            read_committed_only()
        );
        // Undo both rewrites: what is left is m0016's body, byte for byte.
        let undone = after
            .replacen(&guarded_checks(), &first_checks(), 1)
            .replacen(&move_lock_assignment(), &move_lock_statement(), 1);
        assert_eq!(undone, before);
        assert!(!after.contains("PERFORM"), "{after}");
        // The guard still comes first, and the lock still comes before the tenant row is read.
        let body_start = after.find("BEGIN ").map(|i| i + "BEGIN ".len());
        assert_eq!(after.find(&guarded_checks()), body_start, "{after}");
        let lock = after.find(&move_lock_assignment());
        let lookup = after.find("SELECT t.schema_name INTO s");
        assert!(lock.is_some() && lock < lookup, "{after}");
    }
}
