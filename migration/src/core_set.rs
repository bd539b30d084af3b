//! The two sets of Tenantry's migrations: the **core** every database gets (schema `tenancy`:
//! tenants, the identity table `users`, memberships, keys, usage, audit, roles, functions) and
//! our **demo baseline** (m0001's `public.users`, projects, documents and tasks, and their
//! legacy adoption m0003..m0005).
//!
//! * Our own database runs every migration in order ([`crate::Migrator`]); m0011 moves the
//!   identity table from `public` into `tenancy`.
//! * A user's database with none of Tenantry's objects gets the core only ([`CoreMigrator`]),
//!   through `migration adopt`: the same names minus the demo ones, mixed migrations with their
//!   core plan. It never creates or touches a table of the user's `public` schema.
//!
//! Which set a database runs is remembered by `seaql_migrations` itself ([`detect`]): a
//! database that recorded `m0002_tenancy` but not `m0001_legacy_baseline` is core-only, so
//! `up`, `down` and `status` afterwards use the core set and never create our demo tables
//! there. A new migration belongs to both sets (same plan) unless [`variant`] says otherwise.

use migration_kit::planned::{Planned, PlannedMigrator};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use sea_orm_migration::{MigrationTrait, MigratorTrait, async_trait};

use crate::names::{APP_SCHEMA, TENANCY_SCHEMA};

/// Which set of migrations a database runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    /// Every migration: our own database, with the demo baseline.
    Full,
    /// The tenancy core only: a user's adopted database.
    Core,
}

impl Set {
    /// Where the identity table is while this set's migrations m0002..m0010 run: `public`
    /// in the full set (m0011 moves it), `tenancy` in the core set.
    pub fn users_schema(self) -> &'static str {
        match self {
            Set::Full => APP_SCHEMA,
            Set::Core => TENANCY_SCHEMA,
        }
    }
}

/// How a migration of the full set appears in the core set.
enum Variant {
    /// Only in the full set (our demo baseline, and m0011 which moves its identity table).
    FullOnly,
    /// In the core set with another plan.
    Core(fn() -> crate::plan::MigrationPlan),
    /// In the core set, same plan.
    Same,
}

/// The core set's form of the migration named `name`.
fn variant(name: &str) -> Variant {
    match name {
        "m0001_legacy_baseline"
        | "m0003_tenant_columns"
        | "m0004_backfill"
        | "m0005_enforce_tenancy" => Variant::FullOnly,
        "m0002_tenancy" => Variant::Core(crate::m0002_tenancy::core_plan),
        "m0006_security" => Variant::Core(crate::m0006_security::core_plan),
        "m0007_permissions" => Variant::Core(crate::m0007_permissions::core_plan),
        "m0008_legacy_role" => Variant::Core(crate::m0008_legacy_role::core_plan),
        // The core set creates `tenancy.users` where it belongs: nothing to move.
        "m0011_identity_schema" => Variant::FullOnly,
        _ => Variant::Same,
    }
}

/// The core set, in order.
pub fn core() -> Vec<Planned> {
    crate::planned()
        .into_iter()
        .filter_map(|m| match variant(m.name) {
            Variant::FullOnly => None,
            Variant::Core(plan) => Some(Planned { plan, ..m }),
            Variant::Same => Some(m),
        })
        .collect()
}

/// The names of the full set's migrations that the core set leaves out.
pub fn full_only_names() -> Vec<&'static str> {
    crate::planned()
        .into_iter()
        .filter(|m| matches!(variant(m.name), Variant::FullOnly))
        .map(|m| m.name)
        .collect()
}

/// The migrator over [`core`].
pub struct CoreMigrator;

impl PlannedMigrator for CoreMigrator {
    fn planned() -> Vec<Planned> {
        core()
    }
}

#[async_trait::async_trait]
impl MigratorTrait for CoreMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        boxed(core())
    }
}

/// `migrations` as sea-orm-migration wants them.
pub(crate) fn boxed(migrations: Vec<Planned>) -> Vec<Box<dyn MigrationTrait>> {
    migrations
        .into_iter()
        .map(|m| Box::new(m) as Box<dyn MigrationTrait>)
        .collect()
}

/// What a database holds of Tenantry, read from `seaql_migrations` and the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// No migration recorded and no schema `tenancy`: a bare (user's) database.
    Nothing,
    /// Runs the given set.
    Set(Set),
}

/// Which set `db` runs: core-only when `m0002_tenancy` is recorded without
/// `m0001_legacy_baseline`; full otherwise (also for an empty database `up` starts on).
pub async fn detect<C: ConnectionTrait>(db: &C) -> Result<Installed, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT to_regclass('seaql_migrations') IS NOT NULL AS recorded, \
                    to_regnamespace('tenancy') IS NOT NULL AS tenancy",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no row from the catalog".into()))?;
    let recorded: bool = row.try_get("", "recorded")?;
    let tenancy: bool = row.try_get("", "tenancy")?;
    if !recorded {
        return Ok(if tenancy {
            Installed::Set(Set::Full)
        } else {
            Installed::Nothing
        });
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) FILTER (WHERE version = 'm0001_legacy_baseline') AS demo, \
                    count(*) FILTER (WHERE version = 'm0002_tenancy') AS core, \
                    count(*) AS total \
             FROM seaql_migrations",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no row from seaql_migrations".into()))?;
    let demo: i64 = row.try_get("", "demo")?;
    let core: i64 = row.try_get("", "core")?;
    let total: i64 = row.try_get("", "total")?;
    Ok(match (demo, core, total, tenancy) {
        (0, 0, 0, false) => Installed::Nothing,
        (0, c, _, _) if c > 0 => Installed::Set(Set::Core),
        _ => Installed::Set(Set::Full),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_set_leaves_out_the_demo_baseline_and_keeps_the_order() {
        let names: Vec<_> = core().iter().map(|m| m.name).collect();
        let full: Vec<_> = crate::planned().iter().map(|m| m.name).collect();
        for demo in full_only_names() {
            assert!(!names.contains(&demo), "{demo} is in the core set");
        }
        let in_full_order: Vec<_> = full.iter().filter(|n| names.contains(n)).collect();
        assert_eq!(in_full_order, names.iter().collect::<Vec<_>>());
        assert_eq!(names.first(), Some(&"m0002_tenancy"));
    }

    #[test]
    fn the_core_set_names_no_object_in_public() {
        for m in core() {
            let sql = m.render(false).join("\n");
            assert!(
                !sql.contains("\"public\"."),
                "{} names an object in public:\n{sql}",
                m.name
            );
            for down in m.render(true) {
                assert!(!down.contains("\"public\"."), "{}: {down}", m.name);
            }
        }
        let m0002 = core().into_iter().find(|m| m.name == "m0002_tenancy");
        let sql = m0002
            .map(|m| m.render(false).join("\n"))
            .unwrap_or_default();
        assert!(sql.contains("CREATE TABLE \"tenancy\".\"users\""), "{sql}");
    }
}
