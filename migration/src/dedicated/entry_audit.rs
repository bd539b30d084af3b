//! The catalog audit of `tenancy.enter_tenant_schema()` itself, the function every tenant
//! transaction calls: that it is still the function the migrations wrote.
//!
//! What must hold, and why:
//! * **VOLATILE**: a STABLE or IMMUTABLE function runs its queries in the snapshot of the
//!   statement that called it, taken before the function waited on the tenant's move lock, so
//!   its tenant lookup could read the row as it was before a move committed (m0014).
//! * **SECURITY INVOKER, no `SET` options**: it sets `role` and `search_path` for the caller's
//!   transaction; a definer cannot `SET ROLE`, and a `SET` option is undone on return.
//! * **PL/pgSQL, with the body the newest applied migration that writes it wrote**
//!   ([`ENTRY_BODIES`]): any other body, even one that still works, was written outside the
//!   migrations, and nothing else checks what it does (the lock before the lookup, the READ
//!   COMMITTED check, the resets).
//! * **The app role may EXECUTE it**: otherwise every tenant transaction fails.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use crate::audit::{Finding, findings_of};

/// A function that renders one body of the entry.
pub type Body = fn() -> String;

/// Every body `tenancy.enter_tenant_schema()` has had, oldest first, by the migration that
/// wrote it (its `down` restores the one before). A migration that rewrites the function
/// must add its body here (a unit test checks that every migration writing it is listed).
pub const ENTRY_BODIES: &[(&str, Body)] = &[
    (
        "m0010_dedicated_tenants",
        crate::m0010_dedicated_tenants::enter_body,
    ),
    (
        "m0013_schema_entry",
        crate::m0013_schema_entry::enter_body_fast,
    ),
    (
        "m0014_tenant_moves",
        crate::m0015_qualified_types::enter_body_locked,
    ),
    (
        "m0015_qualified_types",
        crate::m0015_qualified_types::enter_body_qualified,
    ),
    (
        "m0016_entry_unchanged_resets",
        crate::m0016_entry_unchanged_resets::enter_body_unchanged_resets,
    ),
    (
        "m0019_cheaper_entry",
        crate::m0019_cheaper_entry::enter_body_cheaper,
    ),
];

/// The newest of `applied` (migration names) that writes the entry, and the body it wrote.
pub fn expected(applied: &[String]) -> Option<(&'static str, String)> {
    ENTRY_BODIES
        .iter()
        .rev()
        .find(|(name, _)| applied.iter().any(|a| a == name))
        .map(|(name, body)| (*name, body()))
}

/// The migrations `seaql_migrations` records (none when it does not exist), read through the
/// session's own `search_path`, as the runner reads it.
pub async fn applied<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    let recorded = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT to_regclass('seaql_migrations') IS NOT NULL",
        ))
        .await?
        .map(|r| r.try_get_by_index::<bool>(0))
        .transpose()?
        .unwrap_or(false);
    if !recorded {
        return Ok(Vec::new());
    }
    db.query_all_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT version FROM seaql_migrations ORDER BY version",
    ))
    .await?
    .iter()
    .map(|r| r.try_get_by_index::<String>(0))
    .collect()
}

/// `(subject, ok, detail)` of the entry; `$1` the app role, `$2` the expected body, `$3` the
/// migration that wrote it. No record of which (`$2` NULL) fails: an unchecked body is not a
/// checked one.
const ENTRY_SQL: &str = "SELECT 'tenancy.enter_tenant_schema()', \
       coalesce(f.provolatile = 'v' AND NOT f.prosecdef AND f.proconfig IS NULL \
         AND l.lanname = 'plpgsql' AND f.prosrc = $2::text \
         AND has_function_privilege($1, f.oid, 'EXECUTE'), false), \
       CASE WHEN f.oid IS NULL THEN 'missing: every tenant transaction fails' \
            WHEN f.provolatile <> 'v' THEN 'not VOLATILE: its tenant lookup would read the \
              snapshot of the calling statement, taken before it waited on the move lock' \
            WHEN f.prosecdef THEN 'SECURITY DEFINER: it must run as the caller, whose role it sets' \
            WHEN f.proconfig IS NOT NULL THEN 'SET ' || array_to_string(f.proconfig, ', ') \
              || ': a SET option would undo its SET LOCALs on return' \
            WHEN l.lanname <> 'plpgsql' THEN 'LANGUAGE ' || l.lanname || ', not plpgsql' \
            WHEN $2::text IS NULL THEN 'no record of the migration that wrote it (seaql_migrations not \
              found through this session''s search_path, or emptied): its body cannot be checked' \
            WHEN f.prosrc <> $2::text THEN 'its body is not the one ' \
              || $3::text || ' wrote: it was replaced outside the migrations' \
            WHEN NOT has_function_privilege($1, f.oid, 'EXECUTE') THEN $1 || ' may not EXECUTE it' \
            ELSE 'VOLATILE, SECURITY INVOKER, no SET options, ' \
              || 'the body ' || $3::text || ' wrote' END \
     FROM (SELECT pg_catalog.to_regprocedure('tenancy.enter_tenant_schema()') AS oid) x \
     LEFT JOIN pg_catalog.pg_proc f ON f.oid = x.oid \
     LEFT JOIN pg_catalog.pg_language l ON l.oid = f.prolang";

/// The `schema_entry` finding: the entry against what `applied` (from [`applied`]) says the
/// migrations wrote.
pub async fn audit<C: ConnectionTrait>(
    db: &C,
    app_role: &str,
    applied: &[String],
) -> Result<Vec<Finding>, DbErr> {
    let (migration, body) = match expected(applied) {
        Some((name, body)) => (Some(name.to_owned()), Some(body)),
        None => (None, None),
    };
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        ENTRY_SQL,
        [app_role.into(), body.into(), migration.into()],
    );
    findings_of(db, "schema_entry", stmt).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every migration whose `up` writes the entry is in [`ENTRY_BODIES`], in order, with the
    /// body it writes.
    #[test]
    fn every_migration_that_writes_the_entry_is_listed_with_its_body() {
        let writers: Vec<(&str, String)> = crate::planned()
            .into_iter()
            .filter_map(|m| {
                let sql = (m.plan)().render_up().join("\n");
                sql.contains("FUNCTION \"tenancy\".\"enter_tenant_schema\"")
                    .then_some((m.name, sql))
            })
            .collect();
        let listed: Vec<&str> = ENTRY_BODIES.iter().map(|(name, _)| *name).collect();
        let names: Vec<&str> = writers.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, listed);
        for ((name, sql), (_, body)) in writers.iter().zip(ENTRY_BODIES) {
            assert!(
                sql.contains(&body()),
                "{name} does not write its listed body"
            );
        }
    }

    #[test]
    fn the_newest_applied_writer_decides() {
        let applied = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(expected(&applied(&["m0001_legacy_baseline"])), None);
        let (name, body) = expected(&applied(&[
            "m0010_dedicated_tenants",
            "m0016_entry_unchanged_resets",
            "m0017_policy_setting",
        ]))
        .unwrap_or_default();
        assert_eq!(name, "m0016_entry_unchanged_resets");
        assert_eq!(
            body,
            crate::m0016_entry_unchanged_resets::enter_body_unchanged_resets()
        );
    }
}
