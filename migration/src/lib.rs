//! Tenantry's own migrations (m0001..), on the kit ([`migration_kit`]), whose modules are
//! re-exported here at their old paths.
//!
//! * [`dsl`]: typed builders for PostgreSQL's security objects (RLS, policies, functions,
//!   roles, grants, default privileges) in sea-query's style; [`ddl`]: the table-level DDL
//!   sea-query lacks (constraints `NOT VALID`, `SET NOT NULL`, triggers, schemas, owners).
//! * [`plan`]: migrations as data. Every migration is a [`plan::MigrationPlan`] that `up`
//!   runs, `down` undoes in reverse and `plan` prints.
//! * [`tenant_table::TenantTable`]: the one call that makes a table tenant-scoped.
//! * [`run`]: the advisory-locked runner used by the CLI, the test harness and xtask.
//! * [`audit`]: the catalog checks behind `verify`.
#![warn(missing_docs)]

pub use migration_kit::{
    adoption, audit, backfill, cli, ddl, dsl, guards, names, plan, planned, probes, tenant_table,
};
pub mod core_set;
pub mod dedicated;
pub mod generate;
pub mod policy_rewrite;
pub mod tables;

/// The runner ([`migration_kit::run`]) bound to Tenantry's [`Migrator`].
pub mod run {
    pub use migration_kit::run::*;

    use sea_orm::{DatabaseConnection, DbErr};

    use crate::core_set::{CoreMigrator, Installed, Set, detect};

    /// Runs `command` with Tenantry's migrations (see [`migration_kit::run::run`]): the full
    /// set, or the core set on a core-only database ([`crate::core_set`]), where `fresh`
    /// (which drops `public` whole) is refused.
    pub async fn run(db: &DatabaseConnection, command: Command) -> Result<(), DbErr> {
        match detect(db).await? {
            Installed::Set(Set::Core) => {
                if command == Command::Fresh {
                    return Err(DbErr::Custom(
                        "fresh: refused on a core-only database (an adopted database of your \
                         own): it would drop schema public whole; use `down`/`reset`"
                            .into(),
                    ));
                }
                migration_kit::run::run::<CoreMigrator>(db, command).await
            }
            _ => migration_kit::run::run::<crate::Migrator>(db, command).await,
        }
    }

    /// Installs the tenancy core alone (the core set) on `db`, under the migration lock.
    pub async fn install_core(db: &DatabaseConnection) -> Result<(), DbErr> {
        migration_kit::run::run::<CoreMigrator>(db, Command::Up(None)).await
    }

    /// Tenantry's pending migrations, in order (read-only).
    pub async fn pending(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
        match detect(db).await? {
            Installed::Set(Set::Core) => migration_kit::run::pending::<CoreMigrator>(db).await,
            _ => migration_kit::run::pending::<crate::Migrator>(db).await,
        }
    }
}

pub mod m0001_legacy_baseline;
pub mod m0002_tenancy;
pub mod m0003_tenant_columns;
pub mod m0004_backfill;
pub mod m0005_enforce_tenancy;
pub mod m0006_security;
pub mod m0007_permissions;
pub mod m0008_legacy_role;
pub mod m0009_auth_notify;
pub mod m0010_dedicated_tenants;
pub mod m0011_identity_schema;
pub mod m0013_schema_entry;
pub mod m0014_tenant_moves;
pub mod m0015_qualified_types;
pub mod m0016_entry_unchanged_resets;
pub mod m0017_policy_setting;
pub mod m0018_provision_records_what_ran;
pub mod m0019_cheaper_entry;
pub mod m0020_entry_procedure;
// generate: new migration modules above this line

pub use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub use migration_kit::planned::{Planned, PlannedMigrator};

use sea_orm_migration::async_trait;

/// Every migration, in order.
pub fn planned() -> Vec<Planned> {
    vec![
        Planned {
            name: "m0001_legacy_baseline",
            plan: m0001_legacy_baseline::plan,
            transactional: true,
        },
        Planned {
            name: "m0002_tenancy",
            plan: m0002_tenancy::plan,
            transactional: true,
        },
        Planned {
            name: "m0003_tenant_columns",
            plan: m0003_tenant_columns::plan,
            transactional: true,
        },
        Planned {
            name: "m0004_backfill",
            plan: m0004_backfill::plan,
            transactional: false,
        },
        Planned {
            name: "m0005_enforce_tenancy",
            plan: m0005_enforce_tenancy::plan,
            transactional: false,
        },
        Planned {
            name: "m0006_security",
            plan: m0006_security::plan,
            transactional: true,
        },
        Planned {
            name: "m0007_permissions",
            plan: m0007_permissions::plan,
            transactional: true,
        },
        Planned {
            name: "m0008_legacy_role",
            plan: m0008_legacy_role::plan,
            transactional: false,
        },
        Planned {
            name: "m0009_auth_notify",
            plan: m0009_auth_notify::plan,
            transactional: true,
        },
        Planned {
            name: "m0010_dedicated_tenants",
            plan: m0010_dedicated_tenants::plan,
            transactional: true,
        },
        Planned {
            name: "m0011_identity_schema",
            plan: m0011_identity_schema::plan,
            transactional: true,
        },
        Planned {
            name: "m0013_schema_entry",
            plan: m0013_schema_entry::plan,
            transactional: true,
        },
        Planned {
            name: "m0014_tenant_moves",
            plan: m0014_tenant_moves::plan,
            transactional: true,
        },
        Planned {
            name: "m0015_qualified_types",
            plan: m0015_qualified_types::plan,
            transactional: true,
        },
        Planned {
            name: "m0016_entry_unchanged_resets",
            plan: m0016_entry_unchanged_resets::plan,
            transactional: true,
        },
        Planned {
            name: "m0017_policy_setting",
            plan: m0017_policy_setting::plan,
            transactional: true,
        },
        Planned {
            name: "m0018_provision_records_what_ran",
            plan: m0018_provision_records_what_ran::plan,
            transactional: true,
        },
        Planned {
            name: "m0019_cheaper_entry",
            plan: m0019_cheaper_entry::plan,
            transactional: false,
        },
        Planned {
            name: "m0020_entry_procedure",
            plan: m0020_entry_procedure::plan,
            transactional: true,
        },
        // generate: new migrations above this line
    ]
}

/// The sea-orm-migration migrator over [`planned`].
pub struct Migrator;

impl PlannedMigrator for Migrator {
    fn planned() -> Vec<Planned> {
        planned()
    }
}

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        core_set::boxed(planned())
    }
}
