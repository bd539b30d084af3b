//! `tenancy.provision_dedicated()` records in `tenancy.tenant_schema_versions` only the
//! tenant-schema migrations whose statements its replay loop ran.
//!
//! m0010's body replayed the stored templates from one query (its snapshot taken when the loop
//! started) and then recorded `SELECT DISTINCT migration FROM tenant_schema_steps`, a second
//! query with a snapshot of its own. A template `up` stored in between (`store_templates`, for
//! a new tenant-schema migration, while a provisioning or a promote waited on a lock inside its
//! loop) was recorded as applied to the new schema without having run there, and `up` never
//! ran it since: the schema silently lacked what that migration adds. Now the loop collects the
//! migrations it ran and only those are recorded; the late one is pending for that schema, and
//! `up` applies it. (The other half: `store_templates` stores each migration's template in one
//! transaction, so no replay sees part of one.)
//!
//! `CREATE OR REPLACE` keeps the owner, the pinned `search_path` and the grants; `down` restores
//! m0010's body.

use crate::dedicated::PLACEHOLDER;
use crate::m0010_dedicated_tenants::{definer, provision_body};
use crate::plan::MigrationPlan;

/// m0010's fragments of the body and what this migration writes instead.
fn replacements() -> [(String, String); 4] {
    [
        (
            "DECLARE s text; st record; tbl record; ".into(),
            "DECLARE s text; st record; tbl record; done text[] := '{}'; ".into(),
        ),
        (
            "FOR st IN SELECT x.statement FROM tenancy.tenant_schema_steps x".into(),
            "FOR st IN SELECT x.migration, x.statement FROM tenancy.tenant_schema_steps x".into(),
        ),
        (
            format!("EXECUTE replace(st.statement, '{PLACEHOLDER}', s); END LOOP; "),
            format!(
                "EXECUTE replace(st.statement, '{PLACEHOLDER}', s); \
                 IF NOT st.migration = ANY (done) THEN done := done || st.migration; END IF; \
                 END LOOP; "
            ),
        ),
        (
            "SELECT DISTINCT s, x.migration FROM tenancy.tenant_schema_steps x; ".into(),
            "SELECT s, m FROM unnest(done) m; ".into(),
        ),
    ]
}

/// The body of `tenancy.provision_dedicated(uuid)` from this migration on.
pub fn provision_body_recording_what_ran() -> String {
    replacements()
        .iter()
        .fold(provision_body(), |body, (from, to)| {
            body.replacen(from, to, 1)
        })
}

/// The migration (both sets).
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.step(
        "function tenancy.provision_dedicated(uuid): records only the migrations it replayed",
        &definer(
            "provision_dedicated",
            "text",
            provision_body_recording_what_ran(),
        ),
        &definer("provision_dedicated", "text", provision_body()),
    );
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fragment_it_replaces_is_in_m0010s_body() {
        let old = provision_body();
        let new = provision_body_recording_what_ran();
        for (from, to) in replacements() {
            assert_eq!(old.matches(from.as_str()).count(), 1, "{from}");
            assert!(new.contains(to.as_str()), "{to}");
        }
        assert!(!new.contains("SELECT DISTINCT s, x.migration"), "{new}");
    }
}
