//! Every type name in the bodies of the functions a tenant's transaction runs before (or
//! while) its `search_path` is reset, qualified with `pg_catalog`.
//!
//! PostgreSQL searches the session's temporary schema for **types** (not for functions or
//! operators) ahead of everything unless `pg_temp` is listed in `search_path`. The app login
//! may create temporary objects, so on a pooled connection it can leave a domain
//! `pg_temp.text` (or `pg_temp.uuid`) whose CHECK calls a `pg_temp` function, and a session
//! `search_path` without `pg_temp`:
//!
//! * `tenancy.enter_tenant_schema()` (PL/pgSQL) resolves its DECLARE types when it is compiled
//!   in a backend, before its first statement resets `search_path`: with m0013's `s text;
//!   done text;` the hook ran on every assignment inside the next tenant's entry, after the
//!   resets, with the last word on `role` and `search_path`. Now `pg_catalog.text`.
//! * `tenancy.current_tenant_id()`, `current_user_id()`, `current_superadmin_reason()` and
//!   `row_tenant_id()` are inlined SQL, parsed where they are used (in policies too), under
//!   the caller's `search_path`: their `::uuid` / `::text` casts become `::pg_catalog.uuid` /
//!   `::pg_catalog.text`.
//!
//! The other functions are safe as they are: the SECURITY DEFINER ones pin `search_path =
//! pg_catalog, pg_temp` (pg_temp listed last), applied before their body is compiled;
//! `has_permission` / `is_current_tenant_member` name no type; the auth trigger's casts are
//! planned under the `search_path` of the transaction that fires it, entered first.
//! `down` restores the previous bodies (grants are kept by `CREATE OR REPLACE`).

use crate::m0002_tenancy::{SETTING_READERS, setting_reader};
use crate::m0008_legacy_role::row_tenant_id_function;
use crate::m0010_dedicated_tenants::enter_function;
use crate::m0013_schema_entry::enter_body_fast_with;
use crate::m0014_tenant_moves::move_lock_statement;
use crate::plan::MigrationPlan;

/// m0013's variables, as m0013 (and m0014, which adds the move lock to its body) declared them.
const UNQUALIFIED_DECLARE: &str = "DECLARE s text; done text;";

/// The body of `tenancy.enter_tenant_schema()` before this migration: m0013's with m0014's
/// move lock.
pub(crate) fn enter_body_locked() -> String {
    enter_body_fast_with(&move_lock_statement())
}

/// The body of `tenancy.enter_tenant_schema()` from this migration on: m0014's (m0013's with
/// the move lock), its variables typed `pg_catalog.text`.
pub fn enter_body_qualified() -> String {
    enter_body_locked().replacen(
        UNQUALIFIED_DECLARE,
        "DECLARE s pg_catalog.text; done pg_catalog.text;",
        1,
    )
}

/// The migration (both sets: every function here is in the core).
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.step(
        "function tenancy.enter_tenant_schema(): variables typed pg_catalog.text",
        &enter_function(enter_body_qualified()),
        &enter_function(enter_body_locked()),
    );
    for (name, setting, ty) in SETTING_READERS {
        plan.step(
            format!("function tenancy.{name}(): cast to pg_catalog.{ty}"),
            &setting_reader(name, setting, ty, &format!("pg_catalog.{ty}")),
            &setting_reader(name, setting, ty, ty),
        );
    }
    plan.step(
        "function tenancy.row_tenant_id(): cast to pg_catalog.uuid",
        &row_tenant_id_function("pg_catalog.uuid"),
        &row_tenant_id_function("uuid"),
    );
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::m0013_schema_entry::enter_body_fast;

    #[test]
    fn the_entry_body_names_no_unqualified_type() {
        assert!(enter_body_fast().contains(UNQUALIFIED_DECLARE));
        assert!(enter_body_locked().contains(UNQUALIFIED_DECLARE));
        let body = enter_body_qualified();
        assert!(
            body.contains(&move_lock_statement()),
            "the move lock is kept: {body}"
        );
        assert!(!body.contains(UNQUALIFIED_DECLARE), "{body}");
        assert!(body.contains("DECLARE s pg_catalog.text; done pg_catalog.text;"));
    }
}
