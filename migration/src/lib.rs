//! Tenantry's migrations and the tenancy DSL.
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

pub mod audit;
pub mod backfill;
pub mod cli;
pub mod ddl;
pub mod dsl;
pub mod guards;
pub mod names;
pub mod plan;
pub mod probes;
pub mod run;
pub mod tables;
pub mod tenant_table;

pub mod m0001_legacy_baseline;
pub mod m0002_tenancy;
pub mod m0003_tenant_columns;
pub mod m0004_backfill;
pub mod m0005_enforce_tenancy;
pub mod m0006_security;
pub mod m0007_permissions;
pub mod m0009_auth_notify;

pub use sea_orm_migration::{MigrationTrait, MigratorTrait};

use sea_orm_migration::{DbErr, MigrationName, SchemaManager, async_trait};

use crate::plan::MigrationPlan;

/// One of our migrations: a name, a plan, and whether it runs inside one transaction.
pub struct Planned {
    name: &'static str,
    plan: fn() -> MigrationPlan,
    transactional: bool,
}

impl Planned {
    /// The migration's name as recorded in `seaql_migrations`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its plan.
    pub fn plan(&self) -> MigrationPlan {
        (self.plan)()
    }
}

impl MigrationName for Planned {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Planned {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.plan().up(manager, self.transactional).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.plan().down(manager, self.transactional).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(self.transactional)
    }
}

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
            name: "m0009_auth_notify",
            plan: m0009_auth_notify::plan,
            transactional: true,
        },
    ]
}

/// The sea-orm-migration migrator over [`planned`].
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        planned()
            .into_iter()
            .map(|m| Box::new(m) as Box<dyn MigrationTrait>)
            .collect()
    }
}
