//! `tenancy.enter_tenant_schema()` runs only in a READ COMMITTED transaction, and resets
//! `role`, `search_path` and `row_security` only where the session's value differs from the one
//! it resets to.
//!
//! Every tenant transaction runs the entry (the service's openings send it), and for a shared
//! tenant on a connection that never left those values, the three `set_config(.., true)`
//! calls changed nothing but cost the most of the entry after its tenant lookup: each pushes a
//! transaction-local value that `COMMIT` pops again, and the `search_path` pair invalidates the
//! backend's resolved path twice, so the next transaction's first name lookup rebuilds it and
//! every cached plan rechecks it. Reading a setting and comparing it is a string compare.
//!
//! It also refuses a transaction that is not READ COMMITTED (`TN002`), before anything else:
//! under REPEATABLE READ or SERIALIZABLE the snapshot the tenant lookup reads is the one taken
//! when `SELECT tenancy.enter_tenant_schema()` started, before the entry waited on the move lock
//! (m0014), so after a switch it would enter the place the switch just left. A session or role
//! default (`default_transaction_isolation`, which the app login may set for itself) would do
//! that to every tenant transaction; the service's openings pin READ COMMITTED, so this is the
//! guard for any other caller.
//!
//! The end state is the same as m0015's: after the entry, `role` is `none`, `search_path`
//! is `public, pg_temp` and `row_security` is `on` (or the tenant's role and schema, for a
//! dedicated tenant), whatever the session left. The comparisons run before `search_path` is
//! reset, under whatever path the session set, so every name in them is qualified: the
//! function, the operator (`OPERATOR(pg_catalog.<>)`) and the literal's type.
//! `down` restores m0015's body (grants are kept by `CREATE OR REPLACE`).

use crate::dedicated::NOT_READ_COMMITTED_SQLSTATE;
use crate::m0010_dedicated_tenants::enter_function;
use crate::m0015_qualified_types::enter_body_qualified;
use crate::names::ENTRY_SEARCH_PATH;
use crate::plan::MigrationPlan;

/// The settings the entry resets first, and the value each is reset to.
pub const RESETS: [(&str, &str); 3] = [
    ("role", "none"),
    ("search_path", ENTRY_SEARCH_PATH),
    ("row_security", "on"),
];

/// m0015's unconditional reset of one setting, as its body writes it.
fn unconditional(name: &str, value: &str) -> String {
    format!("done := pg_catalog.set_config('{name}', '{value}', true); ")
}

/// The reset of one setting, only where the session's value differs.
pub(crate) fn conditional(name: &str, value: &str) -> String {
    format!(
        "IF pg_catalog.current_setting('{name}') OPERATOR(pg_catalog.<>) \
         '{value}'::pg_catalog.text THEN {}END IF; ",
        unconditional(name, value)
    )
}

/// The refusal of a transaction that is not READ COMMITTED, the body's first statement.
pub(crate) fn read_committed_only() -> String {
    format!(
        "IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) \
         'read committed'::pg_catalog.text THEN RAISE EXCEPTION \
         'a tenant transaction must be READ COMMITTED' \
         USING ERRCODE = '{NOT_READ_COMMITTED_SQLSTATE}'; END IF; "
    )
}

/// Where m0015's body starts its statements.
const BODY_START: &str = "BEGIN ";

/// The body of `tenancy.enter_tenant_schema()` from this migration on: m0015's, refusing a
/// transaction that is not READ COMMITTED first, its three first resets conditional. The
/// resets of a dedicated tenant's role and path, later in the body, stay as they are.
pub fn enter_body_unchanged_resets() -> String {
    let body = enter_body_qualified().replacen(
        BODY_START,
        &format!("{BODY_START}{}", read_committed_only()),
        1,
    );
    RESETS.iter().fold(body, |body, (name, value)| {
        body.replacen(&unconditional(name, value), &conditional(name, value), 1)
    })
}

/// The migration (both sets: the entry is in the core).
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.step(
        "function tenancy.enter_tenant_schema(): READ COMMITTED only; reset role, search_path \
         and row_security only where they differ",
        &enter_function(enter_body_unchanged_resets()),
        &enter_function(enter_body_qualified()),
    );
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_first_reset_becomes_conditional_and_nothing_else_changes() {
        let before = enter_body_qualified();
        let after = enter_body_unchanged_resets();
        for (name, value) in RESETS {
            assert!(
                before.contains(&unconditional(name, value)),
                "{name}: {before}"
            );
            assert!(after.contains(&conditional(name, value)), "{name}: {after}");
        }
        // Undo the four rewrites: what is left is m0015's body, byte for byte.
        let undone = RESETS
            .iter()
            .fold(after.clone(), |body, (name, value)| {
                body.replacen(&conditional(name, value), &unconditional(name, value), 1)
            })
            .replacen(&read_committed_only(), "", 1);
        assert_eq!(undone, before);
        // The dedicated tenant's own resets are still unconditional.
        assert!(
            after.contains("done := pg_catalog.set_config('role', s, true);"),
            "{after}"
        );
        assert!(
            !after.contains(" <> "),
            "every comparison names its operator: {after}"
        );
        let first = after.find(&read_committed_only());
        let statements = after.find(BODY_START).map(|i| i + BODY_START.len());
        assert_eq!(
            first, statements,
            "the isolation check comes first: {after}"
        );
    }
}
