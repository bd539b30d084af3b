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
//! * **The app role may EXECUTE it, and no one else but its owner, and nobody may hand that
//!   on** (no grant option but the owner's): otherwise every tenant transaction fails; a grant
//!   beyond it is one no migration made (the entry runs as its caller, so it lends no role the
//!   caller lacks, but nobody reviewed who else calls it). The app role is matched by its exact
//!   name, as every other check matches it; the group the migrations grant to
//!   ([`crate::names::APP_ROLE`]) counts as the app role too, for an audit of a login in it.
//! * **The only function of its name in `tenancy`, a plain function returning `void` with no
//!   planner support function, owned by `tenancy`'s owner**: an overload whose arguments all
//!   have defaults makes the call ambiguous, and its owner may replace it.
//!
//! A body that another listed migration wrote is named as such: a migration that writes the
//! entry outside a transaction (m0019) and stopped halfway leaves the function and the record
//! disagreeing, which running the same command again settles. The listed bodies are pinned by
//! digest in a unit test: one edited in place would fail every database it already ran on.

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
    (
        "m0020_entry_procedure",
        crate::m0020_entry_procedure::enter_body_calls_procedure,
    ),
];

/// Every body `tenancy.enter_tenant()` (the procedure every tenant transaction's opening calls
/// since m0020) has had, as [`ENTRY_BODIES`].
pub const PROCEDURE_BODIES: &[(&str, Body)] = &[(
    "m0020_entry_procedure",
    crate::m0019_cheaper_entry::enter_body_cheaper,
)];

/// One of the two entries: the function (which old binaries call) or the procedure.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Its signature, as `to_regprocedure` reads it.
    signature: &'static str,
    /// Its name in `tenancy`.
    name: &'static str,
    /// `pg_proc.prokind`: `f` or `p`.
    kind: &'static str,
    /// Its bodies, oldest first.
    bodies: &'static [(&'static str, Body)],
    /// Whether it is missing when no migration has written it yet (the procedure before
    /// m0020), rather than failed.
    optional: bool,
}

const FUNCTION: Entry = Entry {
    signature: "tenancy.enter_tenant_schema()",
    name: "enter_tenant_schema",
    kind: "f",
    bodies: ENTRY_BODIES,
    optional: false,
};

const PROCEDURE: Entry = Entry {
    signature: "tenancy.enter_tenant()",
    name: crate::m0020_entry_procedure::ENTER_PROCEDURE,
    kind: "p",
    bodies: PROCEDURE_BODIES,
    optional: true,
};

/// The newest of `applied` (migration names) that writes the function, and the body it wrote.
pub fn expected(applied: &[String]) -> Option<(&'static str, String)> {
    expected_of(ENTRY_BODIES, applied)
}

/// The newest of `applied` that wrote one of `bodies`, and that body.
fn expected_of(
    bodies: &'static [(&'static str, Body)],
    applied: &[String],
) -> Option<(&'static str, String)> {
    bodies
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
/// migration that wrote it, `$4` the other migration whose body the function has, if any. No
/// record of which (`$2` NULL) fails: an unchecked body is not a checked one.
///
/// Beyond the body: it must be the only function of its name in `tenancy` (an overload whose
/// arguments all have defaults makes every tenant transaction's call ambiguous), a plain
/// function returning `void` without a planner support function, and owned by the owner of
/// `tenancy` (whoever owns it may replace it, and the app login must never be able to).
fn entry_sql(entry: &Entry) -> String {
    let Entry {
        signature,
        name,
        kind,
        ..
    } = entry;
    format!(
        "SELECT '{signature}', \
       coalesce(f.provolatile = 'v' AND NOT f.prosecdef AND f.proconfig IS NULL \
         AND l.lanname = 'plpgsql' AND f.prosrc = $2::text AND o.n = 1 AND f.proowner = s.nspowner \
         AND f.prokind = '{kind}' AND f.prorettype = 'pg_catalog.void'::pg_catalog.regtype \
         AND NOT f.proretset AND f.prosupport = 0 \
         AND has_function_privilege($1, f.oid, 'EXECUTE') AND g.list IS NULL, false), \
       CASE WHEN f.oid IS NULL THEN 'missing: every tenant transaction fails' \
            WHEN o.n > 1 THEN o.n || ' routines of that name in tenancy (' || o.list \
              || '): one whose arguments all have defaults makes every call ambiguous; \
              drop all but {signature}' \
            WHEN f.proowner <> s.nspowner THEN 'owned by ' || pg_catalog.pg_get_userbyid(f.proowner) \
              || ', not by tenancy''s owner ' || pg_catalog.pg_get_userbyid(s.nspowner) \
              || ': its owner may replace it' \
            WHEN f.prokind <> '{kind}' OR f.proretset \
              OR f.prorettype <> 'pg_catalog.void'::pg_catalog.regtype \
              THEN 'not a plain {what} returning void' \
            WHEN f.prosupport <> 0 THEN 'the planner support function ' || f.prosupport::regproc::text \
              || ' is attached to it' \
            WHEN f.provolatile <> 'v' THEN 'not VOLATILE: its tenant lookup would read the \
              snapshot of the calling statement, taken before it waited on the move lock' \
            WHEN f.prosecdef THEN 'SECURITY DEFINER: it must run as the caller, whose role it sets' \
            WHEN f.proconfig IS NOT NULL THEN 'SET ' || array_to_string(f.proconfig, ', ') \
              || ': a SET option undoes, on return, its own setting of that parameter \
              (search_path, role)' \
            WHEN l.lanname <> 'plpgsql' THEN 'LANGUAGE ' || l.lanname || ', not plpgsql' \
            WHEN $2::text IS NULL THEN 'no record of the migration that wrote it (seaql_migrations not \
              found through this session''s search_path, or emptied): its body cannot be checked' \
            WHEN f.prosrc <> $2::text AND $4::text IS NOT NULL THEN 'its body is the one ' \
              || $4::text || ' wrote, not the one ' || $3::text || ' (the newest applied migration \
              that writes it) wrote: a migration that writes it stopped halfway through `up` or \
              `down`; run the same command again to finish it' \
            WHEN f.prosrc <> $2::text THEN 'its body is not the one ' \
              || $3::text || ' wrote: it was replaced outside the migrations' \
            WHEN NOT has_function_privilege($1, f.oid, 'EXECUTE') THEN $1 || ' may not EXECUTE it' \
            WHEN g.list IS NOT NULL THEN 'EXECUTE is granted beyond ' || $1 || ': ' || g.list \
              || '; only the app role calls it, and nobody hands it on: as each grantor, \
              REVOKE EXECUTE ON {what_upper} {signature} FROM the grantee CASCADE (or REVOKE GRANT \
              OPTION FOR EXECUTE ... CASCADE for a grant option)' \
            ELSE 'VOLATILE, SECURITY INVOKER, no SET options, EXECUTE for ' || $1 || ' alone, ' \
              || 'the body ' || $3::text || ' wrote' END \
     FROM (SELECT pg_catalog.to_regprocedure('{signature}') AS oid) x \
     LEFT JOIN pg_catalog.pg_proc f ON f.oid = x.oid \
     LEFT JOIN pg_catalog.pg_language l ON l.oid = f.prolang \
     LEFT JOIN pg_catalog.pg_namespace s ON s.oid = f.pronamespace \
     CROSS JOIN (SELECT count(*) AS n, string_agg(p.oid::regprocedure::text, ', ') AS list \
       FROM pg_catalog.pg_proc p WHERE p.pronamespace = pg_catalog.to_regnamespace('tenancy') \
       AND p.proname = '{name}') o \
     LEFT JOIN LATERAL (SELECT string_agg(DISTINCT e.item, ', ' ORDER BY e.item) AS list \
       FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' \
           ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END \
           || ' (granted by ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantor)) \
           || CASE WHEN a.is_grantable THEN ', WITH GRANT OPTION' ELSE '' END || ')' AS item \
         FROM pg_catalog.aclexplode(coalesce(f.proacl, pg_catalog.acldefault('f', f.proowner))) a \
         WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> f.proowner \
           AND (a.is_grantable OR a.grantee NOT IN (SELECT r.oid FROM pg_catalog.pg_roles r \
             WHERE r.rolname IN ($1, '{app_group}')))) e) g ON true",
        what = if *kind == "p" {
            "procedure"
        } else {
            "function"
        },
        app_group = crate::names::APP_ROLE,
        what_upper = if *kind == "p" {
            "PROCEDURE"
        } else {
            "FUNCTION"
        },
    )
}

/// The body `entry` has now (`None` when it is missing).
async fn current_body<C: ConnectionTrait>(db: &C, entry: &Entry) -> Result<Option<String>, DbErr> {
    db.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT prosrc FROM pg_catalog.pg_proc WHERE oid = pg_catalog.to_regprocedure($1)",
        [entry.signature.into()],
    ))
    .await?
    .map(|r| r.try_get_by_index::<String>(0))
    .transpose()
}

/// The listed writer of `bodies` other than `expected` whose body is `body`: the entry was
/// written by a migration whose record says otherwise (one that stopped halfway, outside a
/// transaction).
fn other_writer(
    bodies: &'static [(&'static str, Body)],
    body: &str,
    expected: &str,
) -> Option<&'static str> {
    bodies
        .iter()
        .rev()
        .find(|(name, render)| *name != expected && render() == body)
        .map(|(name, _)| *name)
}

/// The `schema_entry` findings: the function and (once m0020 wrote it) the procedure, each
/// against what `applied` (from [`applied`]) says the migrations wrote.
pub async fn audit<C: ConnectionTrait>(
    db: &C,
    app_role: &str,
    applied: &[String],
) -> Result<Vec<Finding>, DbErr> {
    let mut out = Vec::new();
    for entry in [FUNCTION, PROCEDURE] {
        let (migration, body) = match expected_of(entry.bodies, applied) {
            Some((name, body)) => (Some(name.to_owned()), Some(body)),
            None if entry.optional => continue,
            None => (None, None),
        };
        let other = match (&migration, current_body(db, &entry).await?) {
            (Some(expected), Some(now)) => {
                other_writer(entry.bodies, &now, expected).map(str::to_owned)
            }
            _ => None,
        };
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            entry_sql(&entry),
            [app_role.into(), body.into(), migration.into(), other.into()],
        );
        out.extend(findings_of(db, "schema_entry", stmt).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every migration whose `up` writes the function (the procedure) is in [`ENTRY_BODIES`]
    /// ([`PROCEDURE_BODIES`]), in order, with the body it writes.
    #[test]
    fn every_migration_that_writes_the_entry_is_listed_with_its_body() {
        for (writes, bodies) in [
            ("FUNCTION \"tenancy\".\"enter_tenant_schema\"", ENTRY_BODIES),
            ("PROCEDURE \"tenancy\".\"enter_tenant\"", PROCEDURE_BODIES),
        ] {
            let writers: Vec<(&str, String)> = crate::planned()
                .into_iter()
                .filter_map(|m| {
                    let sql = (m.plan)().render_up().join("\n");
                    sql.contains(writes).then_some((m.name, sql))
                })
                .collect();
            let listed: Vec<&str> = bodies.iter().map(|(name, _)| *name).collect();
            let names: Vec<&str> = writers.iter().map(|(name, _)| *name).collect();
            assert_eq!(names, listed, "{writes}");
            for ((name, sql), (_, body)) in writers.iter().zip(bodies) {
                assert!(
                    sql.contains(&body()),
                    "{name} does not write its listed body"
                );
            }
        }
    }

    /// Each listed body, pinned. A body edited in place would make `verify` fail on every
    /// database that migration already ran on (the function there keeps the old text): a
    /// change to the entry is a new migration, with its own line in [`ENTRY_BODIES`].
    #[test]
    fn no_listed_body_changes_once_released() {
        use sha2::{Digest, Sha256};
        let pinned = [
            (
                "m0010_dedicated_tenants",
                "8a5338fabfe7195a7a974611cab8850d13c2502d496c8634a9eb29509492e182",
            ),
            (
                "m0013_schema_entry",
                "12d41bec1d4d4e056bea07792977b318b1163084bd4f7dd1772a5f085cc6729a",
            ),
            (
                "m0014_tenant_moves",
                "3e01729c4d5de1e8a639e3bf35f0aeb46558b91e5373a4f48205d1e295ace974",
            ),
            (
                "m0015_qualified_types",
                "b09cae9c0e6074fea9a7cad8fb9720ffb0b394bef74e2d5d6bf7462d3cd64b33",
            ),
            (
                "m0016_entry_unchanged_resets",
                "dce2c3a44ad1e80bdd115b6469e85a5db30e4b65bfa84e40ff26e27826d38e57",
            ),
            (
                "m0019_cheaper_entry",
                "36854ce743f909bce6cac3ad475162a3147debc628a9c0638ac5b46cc314ed74",
            ),
            (
                "m0020_entry_procedure",
                "37886b496e67f0cf496c1e40fdff45971efaf07bbcfa94a39b920e364e5f87d3",
            ),
            // The procedure's bodies.
            (
                "m0020_entry_procedure",
                "36854ce743f909bce6cac3ad475162a3147debc628a9c0638ac5b46cc314ed74",
            ),
        ];
        let now: Vec<(&str, String)> = ENTRY_BODIES
            .iter()
            .chain(PROCEDURE_BODIES)
            .map(|(name, body)| {
                let digest = Sha256::digest(body().as_bytes());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                (*name, hex)
            })
            .collect();
        let pinned: Vec<(&str, String)> =
            pinned.iter().map(|(n, h)| (*n, (*h).to_owned())).collect();
        assert_eq!(now, pinned);
    }

    /// A body another listed migration wrote is named, so a half-run migration is told apart
    /// from a body written by hand.
    #[test]
    fn a_body_of_another_writer_is_named() {
        let m0016 = crate::m0016_entry_unchanged_resets::enter_body_unchanged_resets();
        assert_eq!(
            other_writer(ENTRY_BODIES, &m0016, "m0019_cheaper_entry"),
            Some("m0016_entry_unchanged_resets")
        );
        assert_eq!(
            other_writer(ENTRY_BODIES, &m0016, "m0016_entry_unchanged_resets"),
            None
        );
        assert_eq!(
            other_writer(ENTRY_BODIES, "BEGIN END", "m0019_cheaper_entry"),
            None
        );
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
